"""Windows Script Host: ``cscript.exe`` (console) and ``wscript.exe`` (the default host, GUI).

``cscript [//nologo] [//B] [//E:vbscript] [//T:nn] script.vbs args...`` runs the two scripts the lab knows:
``%SystemRoot%\\System32\\slmgr.vbs`` and ``...\\Microsoft Office\\Office1x\\OSPP.VBS`` (only where that Office
is installed). A relative script path is resolved against the current directory, as cscript does.

Deviations/choices:
- A script that is not there prints ``Input Error: Can not find script file "<full path>".`` on stderr
  (cscript's channel for host errors is not confirmed) and exits 1.
- cscript writes its output in the PC's OEM code page (cp950 on zh-TW Windows) whatever WINRS_CODEPAGE or
  ``chcp`` says: WSH converts its Unicode text with the OEM code page when stdout is not a console (Eric Lippert,
  "Unicode output and the Windows Script Host", 2004; saltstack/salt#64948, ansible/ansible#54896 for cp950).
  ``//U`` (Unicode output) is not modelled.
- Anything run by ``wscript.exe`` (including ``slmgr.vbs /ato`` typed without ``cscript``, which Windows hands
  to the default host) shows a dialog in real Windows; in the non-interactive WinRS session nobody can close
  it, so the lab models it as a command that prints nothing and never ends (``duration_s`` = 86400 s).
"""

from __future__ import annotations

from orchestrator.lab.commands.base import (
    CRLF,
    HANG_SECONDS,
    Ctx,
    ProgResult,
    as_code_page,
    files,
    join_path,
    norm_path,
    tr,
)


def banner(ctx: Ctx) -> str:
    version = "5.8" if ctx.machine.os.is_win7 else "5.812"
    return (
        f"Microsoft (R) Windows Script Host Version {version}{CRLF}"
        f"{tr(ctx, 'Copyright (C) Microsoft Corporation. All rights reserved.')}{CRLF}{CRLF}"
    )


CSCRIPT_USAGE = (
    "Usage: CScript scriptname.extension [option...] [arguments...]\r\n\r\n"
    "Options:\r\n"
    " //B         Batch mode: Suppresses script errors and prompts from displaying\r\n"
    " //D         Enable Active Debugging\r\n"
    " //E:engine  Use engine for executing script\r\n"
    " //H:CScript Changes the default script host to CScript.exe\r\n"
    " //H:WScript Changes the default script host to WScript.exe (default)\r\n"
    " //I         Interactive mode (default, opposite of //B)\r\n"
    " //Job:xxxx  Execute a WSF job\r\n"
    " //Logo      Display logo (default)\r\n"
    " //Nologo    Prevent logo display: No banner will be shown at execution time\r\n"
    " //S         Save current command line options for this user\r\n"
    " //T:nn      Time out in seconds:  Maximum time a script is permitted to run\r\n"
    " //X         Execute script in debugger\r\n"
    " //U         Use Unicode for redirected I/O from the console\r\n"
)


def parse_host_args(argv: list[str]) -> tuple[dict[str, str], str | None, list[str]]:
    options: dict[str, str] = {}
    script: str | None = None
    script_args: list[str] = []
    for arg in argv:
        if arg.startswith("//"):
            name, _, value = arg[2:].partition(":")
            options[name.lower()] = value
        elif script is None:
            script = arg
        else:
            script_args.append(arg)
    return options, script, script_args


def locate(ctx: Ctx, script: str) -> tuple[str, str | None]:
    """(full path as cscript reports it, program id or None when the file does not exist)."""
    full = join_path(ctx.cwd, script.strip('"'))
    return full, files(ctx.machine).get(norm_path(full))


async def run_script(ctx: Ctx, prog: str, script_name: str, args: list[str]) -> ProgResult:
    from orchestrator.lab.commands import ospp, slmgr

    if prog == "slmgr.vbs":
        return await slmgr.run(ctx, args)
    if prog == "ospp.vbs":
        return await ospp.run(ctx, args, script_name)
    return ProgResult(
        stderr=f'Input Error: There is no script engine for file extension ".{script_name.rsplit(".", 1)[-1]}".{CRLF}',
        code=1,
    )


async def prog_cscript(ctx: Ctx, args_text: str, argv: list[str]) -> ProgResult:
    """cscript.exe, its output in the PC's OEM code page (see the module's notes)."""
    result = await _cscript(ctx, argv)
    oem = ctx.machine.locale.oem_codepage
    result.stdout = as_code_page(result.stdout, oem)
    result.stderr = as_code_page(result.stderr, oem)
    return result


async def _cscript(ctx: Ctx, argv: list[str]) -> ProgResult:
    options, script, script_args = parse_host_args(argv)
    head = "" if ("nologo" in options or "b" in options) else banner(ctx)
    if script is None or "?" in options:
        return ProgResult(head + CSCRIPT_USAGE, code=0)
    full, prog = locate(ctx, script)
    if prog is None or prog == "dir":
        return ProgResult(head, f'Input Error: Can not find script file "{full}".{CRLF}', code=1)
    name = script.replace("/", "\\").rsplit("\\", 1)[-1]
    result = await run_script(ctx, prog, name, script_args)
    result.stdout = head + result.stdout
    return result


async def prog_wscript(ctx: Ctx, args_text: str, argv: list[str]) -> ProgResult:
    """wscript.exe: every outcome is a dialog box -> no output, never finishes."""
    del ctx, args_text, argv
    return ProgResult(hang=True, duration=HANG_SECONDS)


async def prog_script_direct(ctx: Ctx, args_text: str, argv: list[str]) -> ProgResult:
    """A .vbs typed as a command runs under the default host, wscript.exe."""
    return await prog_wscript(ctx, args_text, argv)
