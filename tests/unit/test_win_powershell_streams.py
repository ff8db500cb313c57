"""win_powershell's return values from powershell.exe's stdout and stderr: the line endings real Windows writes
(pypsrp's recordings in tests/data/shared/wsman/recorded-winrs), the error view's records, the console host's
WARNING:/VERBOSE:/DEBUG: lines."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from orchestrator.modules.win_powershell import PowershellArgs, build_script
from orchestrator.modules.win_powershell_streams import parse_streams

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
