"""What WinRS runs on a simulated PC.

WinRS executes every command line through ``cmd.exe /c`` (unless a client asks to skip the shell), so
``run`` hands the line to the small cmd interpreter in ``cmd.py``, which finds programs by path, in the current
directory or on PATH/PATHEXT like cmd.exe: cmd, cscript/wscript (slmgr.vbs, OSPP.VBS), powershell, w32tm,
tzutil, reg, hostname, whoami, ipconfig, findstr, more, net, chcp, ping, timeout. Output is CRLF text encoded in
the shell's codepage (437 by default, 65001 = UTF-8), except cscript's, which is in the PC's OEM code page (cp950 on
a zh-TW PC; ``base.as_code_page``); texts are in the PC's language where ``lab/locales.yaml`` has them (see
``base.console_locale``); exit codes are unsigned 32-bit values.

``prepare`` decides whether the command reads stdin (``powershell -`` / ``powershell -Command -``, an
interactive ``cmd`` without /c, ``findstr`` and ``more`` without a file): the front end then collects the ``Send``
data (until ``End``) before calling ``run``, so such a command runs only once its stdin is closed. An interactive
``cmd`` alone on its line is instead started at once and reads each line as it arrives, its output released as it
is written, as Windows' cmd.exe does: pywinrm's recording of an interactive cmd of Windows 10.0.17763 fed
``echo "hello world" && exit`` in a Send with ``End="false"`` answers Done with exit code 0 without the end of
stdin (pywinrm ``winrm/tests/conftest.py``, tests/data/recordings/pywinrm).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from orchestrator.lab.commands import cmd, powershell, tools, wsh
from orchestrator.lab.commands.base import (
    HANG_SECONDS,
    Ctx,
    Program,
    ProgResult,
    decode_input,
    encode_output,
    new_ctx,
    split_args,
)
from orchestrator.lab.provider import CommandOutcome, CommandPipe, PreparedCommand, ShellContext
from orchestrator.lab.timing import PcTiming

if TYPE_CHECKING:  # pragma: no cover
    from orchestrator.lab.machine import Machine

PROGRAMS: dict[str, Program] = {
    "cmd": cmd.prog_cmd,
    "cscript": wsh.prog_cscript,
    "wscript": wsh.prog_wscript,
    "slmgr.vbs": wsh.prog_script_direct,
    "ospp.vbs": wsh.prog_script_direct,
    "powershell": powershell.prog_powershell,
    "w32tm": tools.prog_w32tm,
    "tzutil": tools.prog_tzutil,
    "reg": tools.prog_reg,
    "hostname": tools.prog_hostname,
    "whoami": tools.prog_whoami,
    "ipconfig": tools.prog_ipconfig,
    "findstr": tools.prog_findstr,
    "more": tools.prog_more,
    "net": tools.prog_net,
    "chcp": tools.prog_chcp,
    "ping": tools.prog_ping,
    "timeout": tools.prog_timeout,
}


async def run_program(ctx: Ctx, prog_id: str, args_text: str, path: str) -> ProgResult:
    """Run one resolved program with its raw argument text. Its start-up time (lab/timing.py) is added to the
    simulated run time that Receive waits for."""
    del path
    program = PROGRAMS[prog_id]
    argv = split_args(args_text)
    result = await program(ctx, args_text, argv)
    if not result.hang:
        result.duration += _timing(ctx).program_start(prog_id, _what_it_runs(ctx, prog_id, args_text, argv))
    return result


def _what_it_runs(ctx: Ctx, prog_id: str, args_text: str, argv: list[str]) -> str:
    """The text the timing model reads: PowerShell's script (decoded from -EncodedCommand or read from stdin),
    else the arguments."""
    if prog_id != "powershell":
        return args_text
    mode, script = powershell.parse_command_line(argv)
    return ctx.stdin if mode == "stdin" else script or ""


def _timing(ctx: Ctx) -> PcTiming:
    return ctx.machine.world.timing.pc(ctx.machine.name)


def command_line(command: str, arguments: list[str]) -> str:
    """WinRS joins the command and its arguments with single spaces, without adding quotes."""
    return " ".join([command.strip(), *[a for a in arguments]]).strip()


def _reads_stdin(machine: Machine, line: str, shell: ShellContext) -> tuple[bool, bool]:
    """(reads stdin, line by line as it arrives)."""
    ctx = new_ctx(machine, shell, run_program=run_program)
    segments = cmd.split_chain(cmd.expand_vars(ctx, line))
    first = segments[0].text if segments else ""
    token, rest = cmd.first_token(first)
    found = cmd.resolve_program(ctx, token) if token else None
    if found is None:
        return False, False
    argv = split_args(rest)
    if found[0] == "powershell":
        mode, _ = powershell.parse_command_line(argv)
        return mode == "stdin", False
    if found[0] == "cmd":
        reads = not any(a.lower().startswith(("/c", "/k")) for a in argv)
        return reads, reads and len(segments) == 1  # piped into another program, its output is not released
    if found[0] == "more":  # ``more`` without a file pages its stdin
        return not any(not a.startswith(("/", "+")) for a in argv), False
    if found[0] == "findstr":  # findstr [options] strings [files]: without files it filters stdin
        if any(a.lower().startswith("/f:") for a in argv):
            return False, False
        plain = [a for a in argv if not a.startswith("/")]
        literal = any(a.lower().startswith(("/c:", "/g:")) for a in argv)
        return len(plain) <= (0 if literal else 1), False
    return False, False


def prepare(machine: Machine, command: str, arguments: list[str], shell: ShellContext) -> PreparedCommand:
    line = command_line(command, arguments)
    reads, interactive = _reads_stdin(machine, line, shell)
    return PreparedCommand(command_line=line, needs_stdin=reads, interactive=interactive)


async def run(
    machine: Machine, prepared: PreparedCommand, stdin: bytes, shell: ShellContext, pipe: CommandPipe | None = None
) -> CommandOutcome:
    ctx = new_ctx(machine, shell, decode_input(stdin, shell.codepage), run_program=run_program)
    line = cmd.cmd_c_rest(prepared.command_line, ctx)
    if pipe is not None and prepared.interactive:
        # WinRS's cmd.exe /c and the interactive cmd start before the banner; each line's own time passes
        # before its output is written (cmd.prog_cmd).
        ctx.pipe = pipe
        await asyncio.sleep(2 * _timing(ctx).program_start("cmd"))
    result = await cmd.run_line(ctx, line)
    if ctx.pipe is not None and not result.hang:
        result.duration = 0.0
    elif not result.hang:  # WinRS starts every command line through cmd.exe /c
        result.duration += _timing(ctx).program_start("cmd")
    return CommandOutcome(
        stdout=encode_output(result.stdout, shell.codepage),
        stderr=encode_output(result.stderr, shell.codepage),
        exit_code=result.code & 0xFFFFFFFF,
        duration_s=HANG_SECONDS if result.hang else result.duration,
    )
