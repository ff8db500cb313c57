"""Shared pieces of the simulated command line: the execution context, program results, Windows argument
parsing, the tiny file system the programs can find, and the output encoding."""

from __future__ import annotations

import codecs
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from orchestrator.lab.locales import DEFAULT_LOCALE, Locale, locale_for
from orchestrator.lab.provider import CommandPipe, ShellContext

if TYPE_CHECKING:  # pragma: no cover
    from orchestrator.lab.machine import Machine

CRLF = "\r\n"
HANG_SECONDS = 86_400.0  # a command that never finishes (a GUI dialog nobody can click)


@dataclass
class ProgResult:
    stdout: str = ""
    stderr: str = ""
    code: int = 0
    hang: bool = False
    duration: float = 0.0

    def extend(self, other: ProgResult) -> None:
        self.stdout += other.stdout
        self.stderr += other.stderr
        self.code = other.code
        self.hang = self.hang or other.hang
        self.duration += other.duration


@dataclass
class Ctx:
    machine: Machine
    shell: ShellContext
    env: dict[str, str]
    cwd: str
    admin: bool
    stdin: str = ""
    errorlevel: int = 0
    depth: int = 0
    extra: dict[str, object] = field(default_factory=dict)
    pipe: CommandPipe | None = None  # live stdin/output of an interactive cmd (commands.run); None: ``stdin``
    #: Runs a resolved program (``cmd /c``, ``powershell`` calling an .exe …): the commands package passes its
    #: dispatcher in, so the interpreters never import the package that imports them.
    run_program: RunProgram = field(kw_only=True, repr=False)

    def nested(self, stdin: str) -> Ctx:
        """The context of a nested ``cmd`` (``cmd /c``, or one reading its commands from ``stdin``): a copy of
        the environment, one level deeper, the same program dispatcher."""
        return Ctx(
            self.machine,
            self.shell,
            dict(self.env),
            self.cwd,
            self.admin,
            stdin,
            self.errorlevel,
            self.depth + 1,
            run_program=self.run_program,
        )

    def getenv(self, name: str) -> str | None:
        wanted = name.lower()
        for k, v in self.env.items():
            if k.lower() == wanted:
                return v
        return None


Program = Callable[[Ctx, str, list[str]], Awaitable[ProgResult]]
#: ``run_program(ctx, prog_id, args_text, path)``
RunProgram = Callable[[Ctx, str, str, str], Awaitable[ProgResult]]


def default_env(machine: Machine, shell: ShellContext) -> dict[str, str]:
    user = shell.user.split("\\")[-1].split("@")[0] if shell.user else machine.config.user
    win7 = machine.os.is_win7
    sysroot = "C:\\Windows" if win7 else "C:\\WINDOWS"
    profile = f"C:\\Users\\{user}"
    env = {
        "ALLUSERSPROFILE": "C:\\ProgramData",
        "APPDATA": f"{profile}\\AppData\\Roaming",
        "CommonProgramFiles": "C:\\Program Files\\Common Files",
        "CommonProgramFiles(x86)": "C:\\Program Files (x86)\\Common Files",
        "CommonProgramW6432": "C:\\Program Files\\Common Files",
        "COMPUTERNAME": machine.computer_name,
        "ComSpec": f"{sysroot}\\system32\\cmd.exe",
        "LOCALAPPDATA": f"{profile}\\AppData\\Local",
        "NUMBER_OF_PROCESSORS": str(machine.hardware.logical_processors),
        "OS": "Windows_NT",
        "Path": f"{sysroot}\\system32;{sysroot};{sysroot}\\System32\\Wbem;"
        f"{sysroot}\\System32\\WindowsPowerShell\\v1.0\\",
        "PATHEXT": ".COM;.EXE;.BAT;.CMD;.VBS;.VBE;.JS;.JSE;.WSF;.WSH;.MSC",
        "PROCESSOR_ARCHITECTURE": "AMD64",
        "ProgramData": "C:\\ProgramData",
        "ProgramFiles": "C:\\Program Files",
        "ProgramFiles(x86)": "C:\\Program Files (x86)",
        "ProgramW6432": "C:\\Program Files",
        "PROMPT": "$P$G",
        "PSModulePath": "%ProgramFiles%\\WindowsPowerShell\\Modules;"
        f"{sysroot}\\system32\\WindowsPowerShell\\v1.0\\Modules",
        "PUBLIC": "C:\\Users\\Public",
        "SystemDrive": "C:",
        "SystemRoot": sysroot,
        "TEMP": f"{profile}\\AppData\\Local\\Temp",
        "TMP": f"{profile}\\AppData\\Local\\Temp",
        "USERDOMAIN": machine.computer_name,
        "USERNAME": user,
        "USERPROFILE": profile,
        "windir": sysroot,
    }
    env.update(shell.environment)
    return env


def new_ctx(machine: Machine, shell: ShellContext, stdin: str = "", *, run_program: RunProgram) -> Ctx:
    env = default_env(machine, shell)
    cwd = shell.working_directory or env["USERPROFILE"]
    admin = machine.is_admin(shell.user)
    return Ctx(machine=machine, shell=shell, env=env, cwd=cwd, admin=admin, stdin=stdin, run_program=run_program)


def console_locale(ctx: Ctx, codepage: int | None = None) -> Locale:
    """The language a console program (cmd, w32tm, whoami, ipconfig, net, chcp, cscript's own messages) prints
    in: the PC's display language when the console's code page can show it (its OEM or ANSI code page), else
    English. Such programs ask ``SetThreadUILanguage(0)``, which picks "the language that best supports the
    console display" (Microsoft's SetThreadUILanguage reference); on zh-TW Windows ``chcp`` answers
    "使用中的字碼頁: 950" but, after ``chcp 65001``, "Active code page: 65001" and ``help`` prints English
    (a public transcript from Windows 10.0.26200). So under kmsfleet's WINRS_CODEPAGE 65001 a zh-TW PC's console
    tools speak English, and Chinese in a cp950 shell. Scripts choose their own language (slmgr.vbs: the PC's;
    ospp.vbs: always English)."""
    own = ctx.machine.locale
    page = ctx.shell.codepage if codepage is None else codepage
    return own if page in (own.oem_codepage, own.ansi_codepage) else locale_for(DEFAULT_LOCALE)


def tr(ctx: Ctx, english: str, *, codepage: int | None = None, **values: object) -> str:
    """What a console program prints for an English template (``lab/locales.yaml``), in ``console_locale``."""
    return console_locale(ctx, codepage).text(english, **values)


# Console output crosses the lab as text. A program that writes bytes in another code page than the console's
# (cscript.exe: always the OEM code page) marks them with ``as_code_page``: its non-ASCII bytes travel as lone
# surrogates U+DC80..U+DCFF, and ``encode_output`` writes those back as the very same bytes.
_RAW_BYTES = "kmsfleet-lab-raw-bytes"


def _raw_bytes_or_question_mark(exc: UnicodeError) -> tuple[bytes, int]:
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    out = bytearray()
    for ch in exc.object[exc.start : exc.end]:
        point = ord(ch)
        out += bytes([point - 0xDC00]) if 0xDC80 <= point <= 0xDCFF else b"?"  # ? = what Windows writes
    return bytes(out), exc.end


codecs.register_error(_RAW_BYTES, _raw_bytes_or_question_mark)


def _codec(codepage: int) -> str:
    if codepage == 65001:
        return "utf-8"
    try:
        return codecs.lookup(f"cp{codepage}").name
    except LookupError:
        return "cp437"


def as_code_page(text: str, codepage: int) -> str:
    """``text`` as a program writing in ``codepage`` puts it on its stdout, whatever the console's code page."""
    data = text.encode(_codec(codepage), errors=_RAW_BYTES)
    return "".join(chr(b) if b < 0x80 else chr(0xDC00 + b) for b in data)


def encode_output(text: str, codepage: int) -> bytes:
    """The console's bytes for ``text`` (characters the code page lacks become ``?``)."""
    return text.encode(_codec(codepage), errors=_RAW_BYTES)


def decode_input(data: bytes, codepage: int) -> str:
    return data.decode(_codec(codepage), errors="replace")


def split_args(cmdline: str) -> list[str]:
    """Split a command line the way the Microsoft C runtime (CommandLineToArgvW) does."""
    args: list[str] = []
    i, n = 0, len(cmdline)
    while i < n:
        while i < n and cmdline[i] in " \t":
            i += 1
        if i >= n:
            break
        buf: list[str] = []
        in_quotes = False
        while i < n:
            ch = cmdline[i]
            if ch == "\\":
                j = i
                while j < n and cmdline[j] == "\\":
                    j += 1
                count = j - i
                if j < n and cmdline[j] == '"':
                    buf.append("\\" * (count // 2))
                    if count % 2:
                        buf.append('"')
                        i = j + 1
                    else:
                        i = j
                    continue
                buf.append("\\" * count)
                i = j
                continue
            if ch == '"':
                if in_quotes and i + 1 < n and cmdline[i + 1] == '"':
                    buf.append('"')
                    i += 2
                    continue
                in_quotes = not in_quotes
                i += 1
                continue
            if ch in " \t" and not in_quotes:
                break
            buf.append(ch)
            i += 1
        args.append("".join(buf))
    return args


def norm_path(path: str) -> str:
    return path.replace("/", "\\").strip().strip('"').rstrip("\\").lower()


def join_path(base: str, rel: str) -> str:
    rel = rel.replace("/", "\\")
    if len(rel) >= 2 and rel[1] == ":":
        return rel
    if rel.startswith("\\"):
        return base[:2] + rel
    parts = [p for p in base.split("\\") if p]
    for piece in rel.split("\\"):
        if piece in ("", "."):
            continue
        if piece == "..":
            if len(parts) > 1:
                parts.pop()
            continue
        parts.append(piece)
    return "\\".join(parts)


def files(machine: Machine) -> dict[str, str]:
    """Files the lab's programs can find: lowercase full path -> program id."""
    sysroot = "c:\\windows"
    sys32 = f"{sysroot}\\system32"
    table = {
        f"{sys32}\\cmd.exe": "cmd",
        f"{sys32}\\cscript.exe": "cscript",
        f"{sys32}\\wscript.exe": "wscript",
        f"{sys32}\\windowspowershell\\v1.0\\powershell.exe": "powershell",
        f"{sys32}\\w32tm.exe": "w32tm",
        f"{sys32}\\tzutil.exe": "tzutil",
        f"{sys32}\\reg.exe": "reg",
        f"{sys32}\\hostname.exe": "hostname",
        f"{sys32}\\whoami.exe": "whoami",
        f"{sys32}\\ipconfig.exe": "ipconfig",
        f"{sys32}\\findstr.exe": "findstr",
        f"{sys32}\\net.exe": "net",
        f"{sys32}\\more.com": "more",
        f"{sys32}\\chcp.com": "chcp",
        f"{sys32}\\ping.exe": "ping",
        f"{sys32}\\timeout.exe": "timeout",
        f"{sys32}\\slmgr.vbs": "slmgr.vbs",
        f"{sys32}\\sysnative": "dir",
        "c:\\program files\\microsoft office": "dir",
    }
    office = machine.office_install
    if office is not None:
        table[norm_path(office.ospp_path)] = "ospp.vbs"
    return table


def vb_date(ctx: Ctx, moment: datetime) -> str:
    """A date as VBScript's CStr(Date) prints it in the PC's locale (en-US: 5/24/2025 3:14:07 PM)."""
    return ctx.machine.locale.vb_date(moment)
