"""The working folder on a simulated PC, as cmd.exe and Windows PowerShell 5.1 handle it: ``cd /d`` with quotes
and ``&&`` in the one cmd.exe WinRS starts, the nested ``cmd.exe /c cd /d X && Y`` trap (Y runs in the profile
folder), and ``Set-Location [-Path|-LiteralPath] X`` (a folder literally named ``-LiteralPath`` was the old lab's
answer). The command lines kmsfleet's win_command/win_shell build for ``chdir`` are run here as they are sent."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass

import pytest

from orchestrator.lab.addresses import Claim
from orchestrator.lab.machine import Machine, build_machine
from orchestrator.lab.provider import ShellContext
from orchestrator.lab.spec import parse_spec, resolve
from orchestrator.lab.world import LabWorld
from orchestrator.modules.windows import cmd_line_in, powershell_in
from orchestrator.transport import clixml

SYSTEM32 = "C:\\Windows\\system32"
PROFILE = "C:\\Users\\administrator"


@dataclass
class Out:
    stdout: str
    stderr: str
    rc: int


@pytest.fixture
def pc(lab_block: Claim) -> Machine:
    data = {"room": "r", "subnet": f"{lab_block.prefix}.1", "hosts": [{"name": "pc01"}]}
    world = LabWorld(resolve(parse_spec(data)))
    cfg = world.resolved.hosts[0]
    return build_machine(cfg, world)


def run(m: Machine, line: str) -> Out:
    async def go() -> Out:
        shell = ShellContext(user=m.config.user, codepage=65001)
        outcome = await m.run(m.prepare(line, [], shell), b"", shell)
        return Out(outcome.stdout.decode("utf-8"), outcome.stderr.decode("utf-8"), outcome.exit_code)

    return asyncio.run(go())


def ps(script: str) -> str:
    encoded = base64.b64encode(script.encode("utf-16-le")).decode()
    return f"powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Unrestricted -EncodedCommand {encoded}"


def test_cd_d_and_chain_run_in_the_one_cmd(pc: Machine) -> None:
    assert run(pc, "cd").stdout == PROFILE + "\r\n"  # WinRS starts in the user's profile folder
    out = run(pc, 'cd /d "C:\\Windows\\system32" && cd')
    assert (out.stdout, out.rc) == (SYSTEM32 + "\r\n", 0)
    out = run(pc, "cd /D C:\\Windows\\system32\\ && cd")  # /D in any case, trailing backslash
    assert out.stdout == SYSTEM32 + "\r\n"
    out = run(pc, 'cd /d "C:\\Program Files" && cd')  # a blank inside the quotes
    assert out.stdout == "C:\\Program Files\r\n"
    out = run(pc, "cd /d C:\\Program Files && cd")  # cd takes the rest of its text, blanks included
    assert out.stdout == "C:\\Program Files\r\n"
    missing = run(pc, 'cd /d "C:\\nope" && echo ran')
    assert (missing.stdout, missing.stderr, missing.rc) == ("", "The system cannot find the path specified.\r\n", 1)
    unc = run(pc, 'cd /d "\\\\server\\share" && echo ran')
    assert (unc.stdout, unc.stderr, unc.rc) == ("", "CMD does not support UNC paths as current directories.\r\n", 1)


def test_nested_cmd_c_splits_at_the_outer_ampersands(pc: Machine) -> None:
    """``cmd.exe /c cd /d X && Y`` sent through WinRS: the outer cmd runs ``cmd.exe /c cd /d X``, then Y in the
    profile folder — the chdir bug of a public KMS client role."""
    out = run(pc, "cmd.exe /c cd /d C:\\Windows\\system32 && cscript //nologo slmgr.vbs /dlv")
    assert out.rc == 1
    assert out.stderr == f'Input Error: Can not find script file "{PROFILE}\\slmgr.vbs".\r\n'
    # quoted as cmd parses it, the && belongs to the inner cmd
    quoted = run(pc, 'cmd.exe /c "cd /d "C:\\Windows\\system32" && cd"')
    assert quoted.stdout == SYSTEM32 + "\r\n"


def test_kmsfleet_chdir_lines_run_in_the_folder(pc: Machine) -> None:
    skms = run(pc, cmd_line_in(SYSTEM32, "cscript //nologo slmgr.vbs /skms 127.0.0.2"))
    assert (skms.rc, skms.stdout.strip()) == (0, "Key Management Service machine name set to 127.0.0.2 successfully.")
    assert run(pc, cmd_line_in("C:\\Program Files (x86)", "cd")).stdout == "C:\\Program Files (x86)\r\n"
    located = run(pc, ps(powershell_in("C:\\Program Files", "(Get-Location).Path")))
    assert (located.stdout, located.rc) == ("C:\\Program Files\r\n", 0)
    native = run(pc, ps(powershell_in(SYSTEM32, "cscript //nologo slmgr.vbs /skms 127.0.0.3")))
    assert native.rc == 0 and "127.0.0.3 successfully" in native.stdout


def test_set_location_parameters(pc: Machine) -> None:
    for form in (
        "Set-Location -LiteralPath 'C:\\Windows'",
        "Set-Location -Path C:\\Windows",
        "Set-Location C:\\Windows",
        "sl -LP 'C:\\Windows'",
        "cd -Lit C:\\Windows",
        "chdir -PSPath C:\\Windows",
        "Set-Location C:\\Users; Set-Location ..\\Windows",
    ):
        out = run(pc, ps(form + "; (Get-Location).Path"))
        assert (out.stdout, out.rc) == ("C:\\Windows\r\n", 0), form
    passthru = run(pc, ps("Set-Location C:\\Windows -PassThru"))
    assert passthru.stdout == "\r\nPath\r\n----\r\nC:\\Windows\r\n\r\n\r\n"
    ambiguous = run(pc, ps("Set-Location -Pa C:\\Windows"))
    assert ambiguous.rc == 1 and "parameter name 'Pa'" in ambiguous.stderr


def test_set_location_to_a_missing_folder(pc: Machine) -> None:
    # non-terminating: the error is printed, the script goes on in the old folder
    out = run(pc, ps("Set-Location -LiteralPath 'C:\\nope'; (Get-Location).Path"))
    assert out.stdout == PROFILE + "\r\n"
    assert out.stderr.startswith("#< CLIXML\r\n")  # 5.1 under -EncodedCommand serializes its error stream
    assert clixml.decode(out.stderr).startswith(
        "Set-Location : Cannot find path 'C:\\nope' because it does not exist.\r\n"
    )
    assert "PathNotFound,Microsoft.PowerShell.Commands.SetLocationCommand" in out.stderr
    # -ErrorAction Stop (what win_shell's chdir sends) ends the script with exit code 1
    stop = run(pc, ps(powershell_in("C:\\nope", "Write-Output ran")))
    assert (stop.stdout, stop.rc) == ("", 1)
    assert "Cannot find path 'C:\\nope'" in stop.stderr
    relative = run(pc, ps("Set-Location nope"))
    assert f"Cannot find path '{PROFILE}\\nope'" in relative.stderr
    unc = run(pc, ps("Set-Location -LiteralPath '\\\\server\\share'"))  # no share in the lab
    assert "Cannot find path '\\\\server\\share' because it does not exist." in unc.stderr
