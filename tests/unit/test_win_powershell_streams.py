"""win_powershell's return values from powershell.exe's stdout and stderr: the line endings real Windows writes
(pypsrp's recordings in tests/data/shared/wsman/recorded-winrs), the error view's records, the console host's
WARNING:/VERBOSE:/DEBUG: lines."""

from __future__ import annotations

import base64
import re
import threading
from pathlib import Path
from typing import Any, cast

import pytest

from orchestrator.modules.base import ModuleContext, TaskFailed
from orchestrator.modules.win_powershell import PowershellArgs, WinPowershell, build_script, take_state
from orchestrator.modules.win_powershell_streams import parse_streams
from orchestrator.transport.winrm import CommandResult

RECORDED = Path(__file__).resolve().parents[1] / "data" / "shared" / "wsman" / "recorded-winrs"


def recorded_stdout(name: str) -> str:
    """The stdout a recorded real Windows command wrote, joined from its Receive answers."""
    text = (RECORDED / name).read_text(encoding="utf-8")
    chunks = re.findall(r'<rsp:Stream Name="stdout"[^>]*>([A-Za-z0-9+/=]+)</rsp:Stream>', text)
    return "".join(base64.b64decode(c).decode("utf-8") for c in chunks)


def test_recorded_write_host_is_host_output_and_formatted_output_is_output() -> None:
    host = recorded_stdout("test_winrs_send.yml")  # Write-Host "output 1"; Write-Host "output 2"
    formatted = recorded_stdout("test_winrs_extra_opts.yml")  # (pwd).Path
    assert host == "output 1\noutput 2\n" and formatted == "C:\\Windows\r\n"
    streams = parse_streams(host + formatted, "")
    assert streams.host_out == "output 1\noutput 2\n"
    assert streams.output == ["C:\\Windows"]


def test_warning_verbose_debug_lines_on_either_stream() -> None:
    streams = parse_streams(
        "VERBOSE: reading\r\nvalue\r\nDEBUG: x=1\r\nno newline",
        "WARNING: disk nearly full\n",
    )
    assert streams.output == ["value"] and streams.host_out == "no newline"
    assert streams.verbose == ["reading"] and streams.debug == ["x=1"]
    assert streams.warning == ["disk nearly full"] and streams.error == []


def test_error_records_with_category_info() -> None:
    stderr = (
        'Write-Error "Error" : Error\r\n'
        "    + CategoryInfo          : NotSpecified: (:) [Write-Error], WriteErrorException\r\n"
        "    + FullyQualifiedErrorId : Microsoft.PowerShell.Commands.WriteErrorException\r\n \r\n"
        "Get-Item : Cannot find path 'C:\\nope' because it does not exist.\r\n"
        "At line:1 char:1\r\n+ Get-Item C:\\nope\r\n+ ~~~~~~~~~~~~~~~~\r\n"
        "    + CategoryInfo          : ObjectNotFound: (C:\\nope:String) [Get-Item], ItemNotFoundException\r\n"
        "    + FullyQualifiedErrorId : PathNotFound,Microsoft.PowerShell.Commands.GetItemCommand\r\n"
    )
    first, second = parse_streams("", stderr).error
    assert first["message"] == 'Write-Error "Error" : Error'
    assert first["category_info"] == {
        "category": "NotSpecified",
        "category_id": 0,
        "activity": "Write-Error",
        "reason": "WriteErrorException",
        "target_name": "",
        "target_type": "",
    }
    assert first["fully_qualified_error_id"] == "Microsoft.PowerShell.Commands.WriteErrorException"
    assert second["message"] == "Get-Item : Cannot find path 'C:\\nope' because it does not exist."
    assert second["category_info"]["category_id"] == 13 and second["category_info"]["target_name"] == "C:\\nope"
    assert second["category_info"]["target_type"] == "String"
    assert second["output"].splitlines()[1] == "At line:1 char:1"
    assert second["exception"]["message"] == second["message"] and second["script_stack_trace"] is None


def test_plain_error_lines_are_one_record_each_once_complete() -> None:
    streams = parse_streams("", "first problem\nsecond line of it\n")
    assert [e["message"] for e in streams.error] == ["first problem\nsecond line of it"]
    assert streams.host_err == "first problem\nsecond line of it\n"


def test_script_as_sent() -> None:
    args = PowershellArgs(script="param($Room)\nWrite-Output $Room", parameters={"Room": "r101"}, chdir="C:\\x")
    assert (
        build_script(args) == "Set-Location -LiteralPath 'C:\\x'\n& {\nparam($Room)\nWrite-Output $Room\n} -Room 'r101'"
    )
    stop = PowershellArgs(script="x", error_action="stop")
    assert build_script(stop) == "$ErrorActionPreference = 'Stop'\nx"


class _Conn:
    """Answers run_powershell as powershell.exe would for a script reporting $Ansible (kmsfleet's line last)."""

    def __init__(self, stdout: str, rc: int = 0) -> None:
        self.stdout, self.rc, self.scripts = stdout, rc, []

    def run_powershell(self, script: str, **_kw: Any) -> CommandResult:
        self.scripts.append(script)
        return CommandResult(rc=self.rc, stdout=self.stdout, stderr="", duration_ms=1)


def _run(conn: _Conn, script: str) -> Any:
    ctx = ModuleContext(
        host="pc01",
        hostvars={},
        check_mode=False,
        diff=False,
        connect=lambda: cast(Any, conn),
        cancel=threading.Event(),
        verbosity=3,
    )
    return WinPowershell().run(ctx, PowershellArgs(script=script))


def test_ansible_object_wraps_a_script_that_uses_it() -> None:
    script = "[CmdletBinding()]\nparam()\nif (Test-Path C:\\x) { $Ansible.Changed = $false }"
    sent = build_script(PowershellArgs(script=script), verbosity=3)
    lines = sent.split("\n")
    first, wrapped, report = lines[0], "\n".join(lines[1:-1]), lines[-1]
    assert first.startswith("$Ansible = New-Object PSObject -Property @{Changed = $true; Failed = $false;")
    assert "Verbosity = 3;" in first
    assert wrapped == "& {\n" + script + "\n}"  # param() stays the script block's first statement
    assert report.startswith("Write-Host ('kmsfleet-ansible-state changed=' + [bool]$Ansible.Changed")
    assert build_script(PowershellArgs(script="Write-Output $ansible_host_name")) == "Write-Output $ansible_host_name"


def test_changed_and_failed_from_the_report_line() -> None:
    unchanged = _run(_Conn("checked\nkmsfleet-ansible-state changed=False failed=False\n"), "$Ansible.Changed = $false")
    assert unchanged.changed is False and unchanged.data["host_out"] == "checked\n"
    with pytest.raises(TaskFailed, match=r"set \$Ansible\.Failed"):
        _run(_Conn("kmsfleet-ansible-state changed=True failed=True\n"), "$Ansible.Failed = $true")
    ended_early = _run(_Conn("bye\n"), "$Ansible.Changed = $false; exit 0")  # exit skips the report
    assert ended_early.changed is True and take_state("x\n") == ("x\n", None, False)
