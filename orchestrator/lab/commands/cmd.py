"""A small ``cmd.exe``: what WinRS runs every command line through (``cmd.exe /c <command line>``).

Supported: ``&``, ``&&``, ``||``, ``|`` (pipes feed stdout to the next program's stdin), ``^`` escapes,
redirections (``>file``, ``>>file``, ``2>file``, ``>nul``, ``2>&1``, ``1>&2``/``>&2``; files are discarded),
``%VAR%`` expansion (done once for the whole line, as cmd does), built-ins ``echo``, ``exit [/b] [n]``,
``ver``, ``set``, ``cd``/``chdir``/``pushd``, ``rem``, ``cls``, ``title``, and external programs found by path,
in the current directory or on ``PATH`` with ``PATHEXT``. ``cmd /c`` applies cmd's quote-stripping rule.

Deviations/choices:
- An unknown program prints cmd's "is not recognized" message on stderr and the command line exits with 1
  (``%ERRORLEVEL%`` would be 9009 inside a batch file; the process exit code of ``cmd /c`` is 1).
- ``if`` and ``( … )`` groups follow cmd_if; ``for``, ``goto`` and ``call`` are not interpreted.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.lab.commands import cmd_if
from orchestrator.lab.commands.base import (
    CRLF,
    Ctx,
    ProgResult,
    decode_input,
    encode_output,
    files,
    join_path,
    norm_path,
    tr,
)

NOT_RECOGNIZED = "'{name}' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"


@dataclass
class Segment:
    text: str
    op: str | None  # operator that follows: "&", "&&", "||", "|" or None at the end


def expand_vars(ctx: Ctx, line: str) -> str:
    def repl(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == "":
            return "%"
        low = name.lower()
        if low == "errorlevel":
            return str(ctx.errorlevel)
        if low == "cd":
            return ctx.cwd
        if low == "date":
            now = ctx.machine.local_now()
            return f"{now:%a} {now:%m/%d/%Y}"
        if low == "time":
            now = ctx.machine.local_now()
            return f"{now.hour:2d}:{now:%M:%S}.{now.microsecond // 10000:02d}"
        value = ctx.getenv(name)
        return value if value is not None else m.group(0)

    return re.sub(r"%([^%\r\n]*)%", repl, line)


def split_chain(line: str) -> list[Segment]:
    """Split at ``&``, ``&&``, ``||`` and ``|`` outside double quotes and ``( … )`` groups; ``^`` escapes the next
    character. An ``if`` command takes the rest of the line (cmd_if). Linear in the line's length (a command
    line may be ~150 KB: WinRM's largest envelope)."""
    segments: list[Segment] = []
    buf: list[str] = []
    started = False  # the current command has more than blanks and @ so far
    in_quotes = False
    i, n = 0, len(line)
    while i < n:
        ch = line[i]
        if not in_quotes and not started:
            if cmd_if.starts_if(line[i : i + 4]):
                buf.append(line[i:])
                break
            if ch == "(":
                end = cmd_if.block_end(line, i)
                end = n - 1 if end == -1 else end
                buf.append(line[i : end + 1])
                started = True
                i = end + 1
                continue
        if ch == '"':
            in_quotes = not in_quotes
            buf.append(ch)
            started = True
            i += 1
            continue
        if not in_quotes and ch == "^" and i + 1 < n:
            buf.append(line[i + 1])
            started = started or line[i + 1] not in " \t@"
            i += 2
            continue
        if not in_quotes and ch in "&|":
            prev = buf[-1] if buf else ""
            if ch == "&" and prev in (">", "<"):  # 2>&1, >&2
                buf.append(ch)
                i += 1
                continue
            op = ch
            if i + 1 < n and line[i + 1] == ch:
                op = ch * 2
            segments.append(Segment("".join(buf), op))
            buf, started = [], False
            i += len(op)
            continue
        buf.append(ch)
        started = started or ch not in " \t@"
        i += 1
    segments.append(Segment("".join(buf), None))
    return segments


_REDIR = re.compile(r'(?P<fd>[12])?(?P<op>>>|>)\s*(?P<target>&[12]|"[^"]*"|[^\s"]+)')


@dataclass
class Redirects:
    stdout: str | None = None  # None = console, "nul"/file = discarded, "&2" = to stderr
    stderr: str | None = None


def extract_redirects(text: str) -> tuple[str, Redirects]:
    red = Redirects()
    out: list[str] = []
    pos = 0
    in_quotes = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            in_quotes = not in_quotes
        elif not in_quotes and ch == ">":
            start = i
            if i > 0 and text[i - 1] in "12" and (i == 1 or text[i - 2] in " \t"):
                start = i - 1
            m = _REDIR.match(text, start)
            if m:
                out.append(text[pos:start])
                fd = m.group("fd") or "1"
                target = m.group("target").strip('"')
                if fd == "1":
                    red.stdout = target.lower()
                else:
                    red.stderr = target.lower()
                pos = i = m.end()
                continue
        i += 1
    out.append(text[pos:])
    return "".join(out), red


def apply_redirects(result: ProgResult, red: Redirects) -> ProgResult:
    stdout, stderr = result.stdout, result.stderr
    new_out, new_err = "", ""
    for stream, target in ((stdout, red.stdout), (stderr, red.stderr)):
        is_out = stream is stdout
        dest = target
        if dest is None:
            dest = "&1" if is_out else "&2"
        if dest == "&1":
            new_out += stream
        elif dest == "&2":
            new_err += stream
        # anything else (nul or a file) is discarded
    return ProgResult(new_out, new_err, result.code, result.hang, result.duration)


def first_token(text: str) -> tuple[str, str]:
    """The program token (quotes kept) and the rest of the command text (leading blank kept)."""
    text = text.lstrip(" \t@")
    if text.startswith('"'):
        end = text.find('"', 1)
        if end == -1:
            return text, ""
        end += 1
        while end < len(text) and text[end] not in " \t":
            end += 1
        return text[:end], text[end:]
    m = re.match(r"[^\s/]+", text)
    if m is None:
        m = re.match(r"\S+", text)
    token = m.group(0) if m else ""
    rest = text[len(token) :]
    # echo. / echo, / cd.. style built-in separators
    for builtin in ("echo", "cd"):
        if token.lower().startswith(builtin) and len(token) > len(builtin) and token[len(builtin)] in ".,;:(\\":
            return token[: len(builtin)], token[len(builtin) :] + rest
    return token, rest


def known_dirs(ctx: Ctx) -> set[str]:
    dirs = {
        "c:",
        "c:\\users",
        "c:\\program files",
        "c:\\program files (x86)",
        "c:\\programdata",
        norm_path(ctx.env.get("USERPROFILE", "")),
    }
    for path in files(ctx.machine):
        parts = path.split("\\")
        for k in range(1, len(parts)):
            dirs.add("\\".join(parts[:k]))
    return dirs


def resolve_program(ctx: Ctx, token: str) -> tuple[str, str] | None:
    """(program id, full path) for a command token, searching like cmd.exe does."""
    raw = token.strip('"')
    if not raw:
        return None
    table = files(ctx.machine)
    exts = [e.lower() for e in (ctx.getenv("PATHEXT") or ".COM;.EXE;.BAT;.CMD;.VBS").split(";") if e]
    has_ext = "." in raw.split("\\")[-1]
    candidates: list[str] = []
    if "\\" in raw or "/" in raw or ":" in raw:
        base = join_path(ctx.cwd, raw)
        candidates = [base] if has_ext else [base + e for e in exts]
    else:
        dirs = [ctx.cwd] + [d for d in (ctx.getenv("PATH") or "").split(";") if d]
        for entry in dirs:
            d = expand_vars(ctx, entry)
            if has_ext:
                candidates.append(join_path(d, raw))
                candidates.extend(join_path(d, raw) + e for e in exts)
            else:
                candidates.extend(join_path(d, raw) + e for e in exts)
    for cand in candidates:
        prog = table.get(norm_path(cand))
        if prog is not None and prog != "dir":
            return prog, cand
    return None


async def run_line(ctx: Ctx, line: str) -> ProgResult:
    """Run one cmd.exe command line (the text after ``cmd /c``): variables expanded once, then the chain."""
    return await run_chain(ctx, expand_vars(ctx, line))


async def run_chain(ctx: Ctx, line: str) -> ProgResult:
    """Run commands joined by ``&``, ``&&``, ``||`` and ``|`` (variables already expanded)."""
    total = ProgResult(code=ctx.errorlevel)
    segments = split_chain(line)
    skip = False
    pipe_input: str | None = None
    for idx, seg in enumerate(segments):
        op_before = segments[idx - 1].op if idx else None
        if op_before == "&&":
            skip = total.code != 0
        elif op_before == "||":
            skip = total.code == 0
        elif op_before != "|":
            skip = False
        if skip or not seg.text.strip():
            pipe_input = None
            continue
        saved_stdin = ctx.stdin
        if pipe_input is not None:
            ctx.stdin, pipe_input = pipe_input, None
        result = await run_command(ctx, seg.text)
        ctx.stdin = saved_stdin
        total.stderr += result.stderr
        total.duration += result.duration
        if seg.op == "|" and not result.hang:
            pipe_input = result.stdout
            continue
        total.stdout += result.stdout
        total.code = result.code
        total.hang = total.hang or result.hang
        ctx.errorlevel = result.code
        if result.hang or ctx.extra.get("exit"):
            break
    return total


async def run_command(ctx: Ctx, text: str) -> ProgResult:
    """One command of a chain: an ``if``, a ``( … )`` group (with the redirections after it) or a simple
    command (with its redirections)."""
    if cmd_if.starts_if(text):
        return await cmd_if.run_if(ctx, text.lstrip(" \t@")[2:], run_chain)
    group = cmd_if.as_group(text)
    if group is not None:
        _, red = extract_redirects(group.tail)
        return apply_redirects(await run_chain(ctx, group.inner), red)
    body, red = extract_redirects(text)
    return apply_redirects(await run_simple(ctx, body), red)


async def run_simple(ctx: Ctx, text: str) -> ProgResult:
    """One simple command: a built-in or an external program."""
    token, rest = first_token(text)
    if not token:
        return ProgResult(code=ctx.errorlevel)
    name = token.lower()
    args_text = rest[1:] if rest[:1] in (" ", "\t") else rest
    builtin = _BUILTINS.get(name)
    if builtin is not None:
        return builtin(ctx, rest, args_text)
    found = resolve_program(ctx, token)
    if found is None:
        return ProgResult(stderr=tr(ctx, NOT_RECOGNIZED, name=token), code=1)
    return await ctx.run_program(ctx, found[0], args_text, found[1])


def _exit(ctx: Ctx, rest: str, args_text: str) -> ProgResult:
    """``exit [/b] [code]``: ends the script (the code parsed like cmd's, 0 when it is not a number)."""
    parts = args_text.split()
    if parts and parts[0].lower() == "/b":
        parts = parts[1:]
    code = ctx.errorlevel
    if parts:
        try:
            code = int(parts[0], 0)
        except ValueError:
            code = 0
    ctx.extra["exit"] = True
    return ProgResult(code=code & 0xFFFFFFFF)


def _nothing(ctx: Ctx, rest: str, args_text: str) -> ProgResult:
    return ProgResult(code=ctx.errorlevel)


# cmd.exe's built-ins the lab runs (lower-case name -> handler of (ctx, rest of the line, its arguments))
_BUILTINS: dict[str, Callable[[Ctx, str, str], ProgResult]] = {
    "echo": lambda ctx, rest, args_text: _echo(ctx, rest),
    **dict.fromkeys(("rem", "::", "cls", "title", "setlocal", "endlocal"), _nothing),
    "exit": _exit,
    "ver": lambda ctx, rest, args_text: ProgResult(f"{CRLF}{_version_line(ctx)}{CRLF}", code=ctx.errorlevel),
    "set": lambda ctx, rest, args_text: _set(ctx, args_text),
    **dict.fromkeys(("cd", "chdir", "pushd"), lambda ctx, rest, args_text: _cd(ctx, args_text)),
    "dir": lambda ctx, rest, args_text: _dir(ctx, args_text),
}


def _ver(ctx: Ctx) -> str:
    os = ctx.machine.os
    return os.version if os.is_win7 else os.full_build


def _version_line(ctx: Ctx) -> str:
    """``ver``'s line and the first line of cmd's banner ("Microsoft Windows [版本 …]" in a zh-TW console)."""
    return tr(ctx, "Microsoft Windows [Version {version}]", version=_ver(ctx))


# The copyright line of an interactive cmd's banner differs by cmd.exe build (public console transcripts):
# Windows 7 "Copyright (c) 2009 Microsoft Corporation.  All rights reserved." (two blanks); 10.0.14393 "(c) 2016
# …" [unconfirmed]; 10.0.17763 "(c) 2018 …" (pywinrm's recording of 17763.107; transcripts of 17763.1457/.1821);
# later builds (19042.1052 on, Windows 11) "(c) Microsoft Corporation. All rights reserved.".
_COPYRIGHT_YEAR = {"7601": "2009", "14393": "2016", "17763": "2018"}


def _banner(ctx: Ctx) -> str:
    year = _COPYRIGHT_YEAR.get(ctx.machine.os.build)
    if ctx.machine.os.is_win7:
        line = tr(ctx, "Copyright (c) {year} Microsoft Corporation.  All rights reserved.", year=year)
    elif year:
        line = tr(ctx, "(c) {year} Microsoft Corporation. All rights reserved.", year=year)
    else:
        line = tr(ctx, "(c) Microsoft Corporation. All rights reserved.")
    return f"{_version_line(ctx)}{CRLF}{line}{CRLF}{CRLF}"


def _echo(ctx: Ctx, rest: str) -> ProgResult:
    """``echo text`` prints text as typed (trailing blanks included); ``echo.`` prints an empty line."""
    if rest == "":
        return ProgResult("ECHO is on." + CRLF, code=ctx.errorlevel)
    sep, text = rest[0], rest[1:]
    if sep in " \t":
        if text.strip() == "":
            return ProgResult("ECHO is on." + CRLF, code=ctx.errorlevel)
        if text.strip().lower() in ("on", "off"):
            return ProgResult(code=ctx.errorlevel)
    return ProgResult(text + CRLF, code=ctx.errorlevel)


def _set(ctx: Ctx, args: str) -> ProgResult:
    args = args.strip()
    if args.startswith('"') and args.endswith('"'):
        args = args[1:-1]
    if not args:
        lines = [f"{k}={v}" for k, v in sorted(ctx.env.items(), key=lambda kv: kv[0].lower())]
        return ProgResult(CRLF.join(lines) + CRLF, code=0)
    if "=" in args:
        name, value = args.split("=", 1)
        for k in list(ctx.env):
            if k.lower() == name.lower():
                del ctx.env[k]
        if value:
            ctx.env[name] = value
        return ProgResult(code=0)
    matches = [
        f"{k}={v}"
        for k, v in sorted(ctx.env.items(), key=lambda kv: kv[0].lower())
        if k.lower().startswith(args.lower())
    ]
    if not matches:
        return ProgResult(stderr=f"Environment variable {args} not defined{CRLF}", code=1)
    return ProgResult(CRLF.join(matches) + CRLF, code=0)


def full_folder(cwd: str, path: str) -> str:
    """The full path of folder ``path`` seen from ``cwd``, as cmd and PowerShell show it afterwards: ``.`` and
    ``..`` resolved, no trailing backslash except on a drive root (``C:\\``)."""
    path = path.replace("/", "\\")
    if path.startswith("\\\\"):  # a UNC path (two leading backslashes) stays as it is
        return path.rstrip("\\")
    if len(path) >= 2 and path[1] == ":":
        cwd, path = path[:2], path[2:]
    if path.startswith("\\"):
        cwd, path = cwd[:2], path.lstrip("\\")
    full = join_path(cwd, path)
    return full + "\\" if len(full) == 2 else full


def _cd(ctx: Ctx, args: str) -> ProgResult:
    """``cd [/d] [path]`` (Microsoft Learn "cd"): the rest of the line is the path (blanks allowed, quotes
    removed); /d also changes the drive; a missing folder prints the error and exits 1, the folder unchanged.
    cmd.exe cannot make a UNC path (``\\\\server\\share``) its current folder and says so (exit 1)."""
    args = args.strip()
    if args.lower().startswith("/d"):
        args = args[2:].strip()
    args = args.replace('"', "").strip()
    if not args:
        return ProgResult(ctx.cwd + CRLF, code=0)
    if args.replace("/", "\\").startswith("\\\\"):
        return ProgResult(stderr="CMD does not support UNC paths as current directories." + CRLF, code=1)
    target = full_folder(ctx.cwd, args)
    if norm_path(target) not in known_dirs(ctx):
        return ProgResult(stderr=tr(ctx, "The system cannot find the path specified.") + CRLF, code=1)
    ctx.cwd = target
    return ProgResult(code=0)


def _dir(ctx: Ctx, args: str) -> ProgResult:
    """``dir [path]``: a listing of a known folder (its known sub-folders; the lab models no files)."""
    target = args.strip().strip('"')
    path = join_path(ctx.cwd, target) if target and not target.startswith("/") else ctx.cwd
    folders = known_dirs(ctx)
    if norm_path(path) not in folders:
        return ProgResult(stderr=tr(ctx, "The system cannot find the path specified.") + CRLF, code=1)
    prefix = norm_path(path).rstrip("\\") + "\\"
    children = sorted(
        {f[len(prefix) :].split("\\")[0] for f in folders if f.startswith(prefix) and len(f) > len(prefix)}
    )
    stamp = ctx.machine.local_now().strftime("%m/%d/%Y  %I:%M %p")
    serial = ctx.machine.cmid.replace("-", "")[:8].upper()
    lines = [
        " Volume in drive C has no label.",
        f" Volume Serial Number is {serial[:4]}-{serial[4:]}",
        "",
        f" Directory of {path}",
        "",
        f"{stamp}    <DIR>          .",
        f"{stamp}    <DIR>          ..",
    ]
    lines += [f"{stamp}    <DIR>          {name.title()}" for name in children]
    lines += [
        "               0 File(s)              0 bytes",
        f"{len(children) + 2:>16} Dir(s)  52,428,800,000 bytes free",
        "",
    ]
    return ProgResult(CRLF.join(lines), code=0)


def cmd_c_rest(rest: str, ctx: Ctx) -> str:
    """cmd's rule for the text after ``/c``: keep quotes if there are exactly two around an existing
    executable path with a blank inside and no special characters; otherwise strip the first and last quote."""
    text = rest.lstrip()
    if not text.startswith('"'):
        return text
    if text.count('"') == 2:
        inner = text[1 : text.index('"', 1)]
        plain = not any(c in inner for c in "&<>()@^|") and any(c in inner for c in " \t")
        if plain and resolve_program(ctx, '"' + inner + '"') is not None:
            return text
    last = text.rfind('"')
    return text[1:last] + text[last + 1 :]


async def prog_cmd(ctx: Ctx, args_text: str, argv: list[str]) -> ProgResult:
    """``cmd.exe [/q] [/d] [/s] [/v:on] /c|/k <command line>``; without /c reads commands from stdin."""
    del argv
    rest = args_text
    while True:
        stripped = rest.lstrip()
        m = re.match(r"/(\w)(:\w+)?", stripped)
        if not m:
            break
        switch = m.group(1).lower()
        rest = stripped[m.end() :]
        if switch in ("c", "k"):
            ctx2 = ctx.nested(ctx.stdin)
            if ctx.depth > 16:
                return ProgResult(stderr="The command line is too deeply nested." + CRLF, code=1)
            result = await run_line(ctx2, cmd_c_rest(rest, ctx))
            return result
    # interactive cmd reading its commands from stdin
    banner = _banner(ctx)
    ctx2 = ctx.nested("")
    return await _interactive(ctx, ctx2, banner)


async def _interactive(ctx: Ctx, inner: Ctx, banner: str) -> ProgResult:
    """cmd reading its commands from stdin: each line is echoed after the prompt and run. With a live pipe
    (``ctx.pipe``) a line runs as soon as it arrives and its output is written once its time has passed; else the
    lines come from ``ctx.stdin`` and the output is returned at the end. A blank line follows each line's output,
    except after ``exit``, which ends cmd at once: Windows 10.0.17763's cmd fed ``echo hello world && exit``
    wrote the prompt, the line, ``hello world `` and CRLF, then ended (pywinrm's recording)."""
    pipe = ctx.pipe
    out = ProgResult()
    lines = iter(ctx.stdin.splitlines())

    def emit(text: str, err: str = "") -> None:
        if pipe is None:
            out.stdout += text
            out.stderr += err
        else:
            pipe.write(encode_output(text, ctx.shell.codepage), encode_output(err, ctx.shell.codepage))

    emit(banner)
    while True:
        if pipe is None:
            raw = next(lines, None)
        else:
            data = await pipe.read_line()
            raw = None if data is None else decode_input(data, ctx.shell.codepage).rstrip("\r\n")
        if raw is None:
            break
        prompt = f"{inner.cwd}>{raw}{CRLF}"
        if not raw.strip():
            emit(prompt)
            continue
        result = await run_line(inner, raw)
        out.code = result.code
        if result.hang:
            emit(prompt + result.stdout, result.stderr)
            out.hang = True
            return out
        if pipe is None:
            out.duration += result.duration
        else:
            await asyncio.sleep(result.duration)
        if inner.extra.get("exit"):  # no blank line after the last output (pywinrm's recording)
            emit(prompt + result.stdout, result.stderr)
            return out
        emit(prompt + result.stdout + CRLF, result.stderr)
    emit(f"{inner.cwd}>")
    return out
