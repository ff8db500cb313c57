"""``powershell.exe`` as remote tooling uses it: ``-Command <script>``, ``-EncodedCommand <base64 UTF-16LE>``
(pywinrm's ``run_ps``, Ansible's ``raw``/``win_shell`` wrappers) and ``-`` / ``-Command -`` (script on stdin).

The script language is a small subset, enough for wrappers around native tools:
statements separated by newlines or ``;``; ``& <exe> args`` and bare native commands (cscript, cmd, w32tm, reg,
…, resolved on PATH); ``$LASTEXITCODE``, ``$?``; ``exit [n|$LASTEXITCODE]``; ``If (cond) {…} ElseIf (…) {…}
Else {…}`` with ``-not``, ``!``, ``-eq/-ne/-gt/-ge/-lt/-le``, ``-and/-or`` and ``Get-Variable NAME``;
``Write-Host`` (LF-terminated, like the console host under WinRS), ``Write-Output``/``echo`` and bare
values (CRLF-terminated); ``Set-StrictMode``, ``$ProgressPreference = …`` and similar preferences (ignored);
``| Out-Null``; ``Test-NetConnection -ComputerName H -Port P [-InformationLevel Quiet]``; ``Test-Path [-LiteralPath] P``
(as a statement printing True/False, or inside an ``If`` condition) over the lab's small file system; a
``System.Net.Sockets.TcpClient`` port test (``ps_tcpclient``); ``$PSVersionTable`` (``ps_versions``).

The version is the PC's: Windows PowerShell 2.0 on Windows 7, 5.1 elsewhere. On 2.0, cmdlets and syntax of 3.0+
fail with 2.0's own error texts (``ps_versions``).

Windows PowerShell 5.1 under ``-EncodedCommand`` writes its error stream as CLIXML (``ps_clixml``, pywinrm's
recording); ``Write-Error`` on 5.1 prefixes the statement (``Write-Error "Error" : Error``, same recording).

Deviations/choices:
- A native program's stderr is passed through as is; PowerShell 5.1 in a redirected host would wrap it in
  NativeCommandError records.
- Unknown commands produce PowerShell's CommandNotFoundException text on stderr and set ``$?`` to false; the
  process exits 1 when the last statement failed (``-Command`` semantics).
- ``Test-NetConnection`` makes a real TCP connection only to loopback addresses (1 s timeout); any other
  address or name answers False without network traffic.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.lab.commands import ps_files, ps_objects, ps_tcpclient, ps_versions
from orchestrator.lab.commands.base import CRLF, HANG_SECONDS, Ctx, ProgResult
from orchestrator.lab.commands.location import ALIASES, set_location
from orchestrator.lab.commands.ps_clixml import errors_as_clixml
from orchestrator.winargs import quote_arg

_FLAGS = ("noprofile", "noninteractive", "nologo", "noexit", "sta", "mta")
_VALUED = ("executionpolicy", "inputformat", "outputformat", "windowstyle", "version", "configurationname")


def _match(name: str, full: str, minimum: int) -> bool:
    return len(name) >= minimum and full.startswith(name)


def parse_command_line(argv: list[str]) -> tuple[str, str | None]:
    """Returns (mode, script): mode is "command", "stdin" or "file"."""
    i = 0
    while i < len(argv):
        low = argv[i].lower()
        if low == "-":
            return "stdin", None
        if not low.startswith(("-", "/")):
            return "command", " ".join(argv[i:])
        name = low.lstrip("-/")
        script = _script_option(name, argv, i)
        if script is not None:
            return script
        skip = _skipped_option(name)
        if skip == 0:
            return "command", " ".join(argv[i:])
        i += skip
    return "command", ""


def _script_option(name: str, argv: list[str], i: int) -> tuple[str, str | None] | None:
    """-Command, -EncodedCommand, -File at ``argv[i]``: the script they give; None for any other option."""
    rest = argv[i + 1 :]
    if name in ("c",) or _match(name, "command", 2):
        return ("stdin", None) if rest[:1] == ["-"] else ("command", " ".join(rest))
    if name in ("e", "ec") or _match(name, "encodedcommand", 2):
        if not rest:
            return "command", ""
        try:
            return "command", base64.b64decode(rest[0], validate=False).decode("utf-16-le", errors="replace")
        except (binascii.Error, ValueError):
            return "command", ""
    if name in ("f",) or _match(name, "file", 2):
        return "file", rest[0] if rest else ""
    return None


def _skipped_option(name: str) -> int:
    """How many arguments an option that does not change the script takes up (2 with its value, 1 for a flag);
    0 when ``name`` is no option of powershell.exe (then it starts the command)."""
    if name in ("ep", "ex") or any(_match(name, v, 3) for v in _VALUED) or name in ("if", "of", "w", "v"):
        return 2
    if any(_match(name, f, 3) for f in _FLAGS) or name in ("nop", "noni", "nol", "noe"):
        return 1
    return 0


# -- statement splitting ---------------------------------------------------------------------------------


def split_statements(text: str) -> list[str]:
    """Statements at newlines and ``;`` outside quotes and brackets; comments and backtick line continuations
    dropped; ``else``/``elseif`` joined to the ``if`` before them."""
    out: list[str] = []
    buf: list[str] = []
    quote: str | None = None
    depth = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            i, quote = _in_quote(text, i, quote, buf)
            continue
        if ch == "`" and i + 1 < len(text) and text[i + 1] in "\r\n":
            i = _skip(text, i + 1, lambda c: c in "\r\n")  # line continuation
            continue
        if ch == "#" and depth == 0 and (not buf or buf[-1] in " \t\n;"):
            i = _skip(text, i, lambda c: c != "\n")  # comment to the end of the line
            continue
        if ch in "\r\n;" and depth == 0:
            out.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
            quote = ch if ch in "'\"" else None
            depth = depth + 1 if ch in "({" else max(0, depth - 1) if ch in ")}" else depth
        i += 1
    out.append("".join(buf))
    merged: list[str] = []
    for stmt in (s.strip() for s in out if s.strip()):
        if merged and re.match(r"(?i)else(if)?\b", stmt):
            merged[-1] += " " + stmt
        else:
            merged.append(stmt)
    return merged


def _in_quote(text: str, i: int, quote: str, buf: list[str]) -> tuple[int, str | None]:
    """One step inside a quoted string: the next index and the quote still open (None once it closed). A doubled
    quote is one literal quote; in double quotes a backtick escapes the next character."""
    ch = text[i]
    buf.append(ch)
    if ch == "`" and quote == '"' and i + 1 < len(text):
        buf.append(text[i + 1])
        return i + 2, quote
    if ch != quote:
        return i + 1, quote
    if i + 1 < len(text) and text[i + 1] == quote:
        buf.append(quote)
        return i + 2, quote
    return i + 1, None


def _skip(text: str, i: int, skipped: Callable[[str], bool]) -> int:
    while i < len(text) and skipped(text[i]):
        i += 1
    return i


def _balanced(text: str, start: int, open_ch: str, close_ch: str) -> int:
    """Index just past the bracket closing the one at ``start``."""
    depth = 0
    quote: str | None = None
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = None
            continue
        if ch in "'\"":
            quote = ch
        elif ch == open_ch:
            depth += 1
        elif ch == close_ch:
            depth -= 1
            if depth == 0:
                return i + 1
    raise ValueError("unbalanced")


# -- words ----------------------------------------------------------------------------------------------


@dataclass
class Word:
    text: str
    quoted: bool = False
    variable: str | None = None


def tokenize(stmt: str, state: PsState) -> list[Word]:
    words: list[Word] = []
    i = 0
    n = len(stmt)
    while i < n:
        ch = stmt[i]
        if ch in " \t":
            i += 1
            continue
        if ch == "'":
            j = i + 1
            buf = []
            while j < n:
                if stmt[j] == "'":
                    if j + 1 < n and stmt[j + 1] == "'":
                        buf.append("'")
                        j += 2
                        continue
                    break
                buf.append(stmt[j])
                j += 1
            words.append(Word("".join(buf), quoted=True))
            i = j + 1
            continue
        if ch == '"':
            j = i + 1
            buf = []
            while j < n and stmt[j] != '"':
                if stmt[j] == "`" and j + 1 < n:
                    nxt = stmt[j + 1]
                    buf.append({"n": "\n", "r": "\r", "t": "\t", "0": "\0"}.get(nxt, nxt))
                    j += 2
                    continue
                buf.append(stmt[j])
                j += 1
            words.append(Word(state.expand("".join(buf)), quoted=True))
            i = j + 1
            continue
        j = i
        while j < n and stmt[j] not in " \t":
            j += 1
        raw = stmt[i:j]
        if raw.startswith("$") and re.fullmatch(r"\$[\w:?]+", raw):
            words.append(Word(state.value_text(raw), variable=raw[1:]))
        else:
            words.append(Word(raw))
        i = j
    return words


@dataclass
class PsState:
    ctx: Ctx
    out: str = ""
    err: str = ""
    ok: bool = True
    last_exit: int | None = None
    exit_code: int | None = None
    variables: dict[str, str] = field(default_factory=dict)
    objects: dict[str, object] = field(default_factory=dict)  # .NET objects a script made (ps_tcpclient)
    duration: float = 0.0  # simulated run time: Start-Sleep and the programs the script ran

    def value_text(self, token: str) -> str:
        name = token[1:].lower()
        if name == "lastexitcode":
            return "" if self.last_exit is None else str(self.last_exit)
        if name == "?":
            return "True" if self.ok else "False"
        if name in ("true", "false"):
            return name.capitalize()
        if name == "null":
            return ""
        if name.startswith("env:"):
            return self.ctx.getenv(name[4:]) or ""
        return self.variables.get(name, "")

    def expand(self, text: str) -> str:
        return re.sub(r"\$(env:\w+|[A-Za-z_]\w*|\?)", lambda m: self.value_text(m.group(0)), text)


_NOT_FOUND = (
    "{name} : The term '{name}' is not recognized as the name of a cmdlet, function, script file, or operable "
    "program. Check the spelling of the name, or if a path was included, verify that the path is correct and try "
    "again.\r\nAt line:1 char:1\r\n+ {stmt}\r\n+ {marks}\r\n"
    "    + CategoryInfo          : ObjectNotFound: ({name}:String) [], CommandNotFoundException\r\n"
    "    + FullyQualifiedErrorId : CommandNotFoundException\r\n \r\n"
)


class _ExitScript(Exception):
    pass


async def run_script(ctx: Ctx, script: str) -> ProgResult:
    state = PsState(ctx)
    if ps_versions.is_ps2(ctx.machine):
        parse_error = ps_versions.parse_error_v2(script)
        if parse_error is not None:  # PowerShell parses the whole script first: nothing runs
            return ProgResult("", parse_error, 1)
    try:
        await _run_block(state, script)
    except _ExitScript:
        pass
    code = state.exit_code if state.exit_code is not None else (0 if state.ok else 1)
    return ProgResult(state.out, state.err, code & 0xFFFFFFFF, duration=min(state.duration, HANG_SECONDS))


async def _run_block(state: PsState, text: str) -> None:
    for stmt in split_statements(text):
        await _run_statement(state, stmt)


async def _run_statement(state: PsState, stmt: str) -> None:
    low = stmt.lower()
    if ps_versions.is_ps2(state.ctx.machine):
        error = ps_versions.runtime_error_v2(stmt)
        if error is not None:
            state.err += error
            state.ok = False
            return
    if await _run_special(state, stmt):
        return
    if re.match(r"if\s*\(", low):
        await _run_if(state, stmt)
        return
    m = re.match(r"(?i)exit\b\s*(.*)$", stmt)
    if m:
        arg = m.group(1).strip()
        value = state.expand(arg) if arg.startswith("$") else arg
        try:
            state.exit_code = int(value) if value else 0
        except ValueError:
            state.exit_code = 0
        raise _ExitScript
    assign = re.match(r"\$([\w:]+)\s*=\s*(.*)$", stmt, re.DOTALL)
    if assign and not stmt.startswith("$?"):
        name, rhs = assign.group(1).lower(), assign.group(2).strip()
        if name.startswith("env:"):
            words = tokenize(rhs, state)
            state.ctx.env[name[4:]] = words[0].text if words else ""
            state.ok = True
            return
        if "preference" in name or rhs.startswith(("'", '"', "$", "[")) or re.fullmatch(r"-?\d+", rhs):
            words = tokenize(rhs, state)
            state.variables[name] = words[0].text if words else ""
            state.ok = True
            return
        saved = state.out
        state.out = ""
        await _run_pipeline(state, rhs)
        state.variables[name] = state.out.rstrip("\r\n")
        state.out = saved
        return
    if low.startswith("[console]::") or low.startswith("set-strictmode") or low.startswith("$progresspreference"):
        state.ok = True
        return
    await _run_pipeline(state, stmt)


async def _run_special(state: PsState, stmt: str) -> bool:
    """The statements the helper modules know (a TcpClient test, kmsfleet's file calls, PSObjects) and a script
    block invoked with ``&`` (about_Script_Blocks; the lab gives it no scope of its own). False: none of them."""
    if await ps_tcpclient.run_statement(state, stmt):
        return True
    if await ps_files.run_statement(state, stmt):  # kmsfleet's file modules (lab.files)
        return True
    if await ps_objects.run_statement(state, stmt):  # New-Object PSObject -Property, $o.P (win_powershell)
        return True
    block = re.fullmatch(r"&\s*\{(.*)\}", stmt, re.DOTALL)
    if block:
        await _run_block(state, block.group(1))
        return True
    return False


async def _run_if(state: PsState, stmt: str) -> None:
    rest = stmt
    while rest:
        m = re.match(r"(?i)\s*(if|elseif)\s*\(", rest)
        if m:
            open_at = m.end() - 1
            close = _balanced(rest, open_at, "(", ")")
            cond = rest[open_at + 1 : close - 1]
            brace = rest.index("{", close)
            end = _balanced(rest, brace, "{", "}")
            body = rest[brace + 1 : end - 1]
            try:
                truth = await _condition(state, cond)
            except _MissingOperand as err:
                state.err += _missing_operand(stmt, err.operator)
                state.ok = False
                state.exit_code = 1
                raise _ExitScript from err
            if truth:
                await _run_block(state, body)
                return
            rest = rest[end:]
            continue
        m = re.match(r"(?i)\s*else\s*\{", rest)
        if m:
            brace = m.end() - 1
            end = _balanced(rest, brace, "{", "}")
            await _run_block(state, rest[brace + 1 : end - 1])
        return


async def _condition(state: PsState, cond: str) -> bool:
    """An ``if`` condition: comparisons, ``-not``/``!``, ``-and``/``-or``, parentheses, variables, ``Test-Path``
    and ``Get-Variable``."""
    tokens = _COND_TOKEN.findall(cond)
    if not tokens:
        return False
    return _truthy(_Condition(state, tokens).expr())


_COND_TOKEN = re.compile(
    r"\(|\)|-not\b|!|-and\b|-or\b|-eq\b|-ne\b|-gt\b|-ge\b|-lt\b|-le\b|'[^']*'|\"[^\"]*\"|[^\s()!]+", re.IGNORECASE
)
_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "-eq": lambda a, b: a == b,
    "-ne": lambda a, b: a != b,
    "-gt": lambda a, b: a > b,
    "-ge": lambda a, b: a >= b,
    "-lt": lambda a, b: a < b,
    "-le": lambda a, b: a <= b,
}


def _truthy(v: object) -> bool:
    if v is None:
        return False
    if isinstance(v, str):
        return v != ""
    return bool(v)


class _MissingOperand(Exception):
    """A condition ends right after an operator (PowerShell's parser rejects it)."""

    def __init__(self, operator: str) -> None:
        super().__init__(operator)
        self.operator = operator


def _missing_operand(stmt: str, operator: str) -> str:
    """PowerShell's ParserError for an operator with nothing after it (MissingExpressionAfterOperator)."""
    if operator.lower() in ("-not", "!"):
        message = f"Missing expression after unary operator '{operator}'."
    else:
        message = f"You must provide a value expression following the '{operator}' operator."
    column = stmt.lower().find(operator.lower()) + len(operator) + 1
    return (
        f"At line:1 char:{column}{CRLF}+ {stmt}{CRLF}+ {' ' * (column - 1)}~{CRLF}{message}{CRLF}"
        f"    + CategoryInfo          : ParserError: (:) [], ParentContainsErrorRecordException{CRLF}"
        f"    + FullyQualifiedErrorId : MissingExpressionAfterOperator{CRLF} {CRLF}"
    )


class _Condition:
    """A recursive-descent reading of one condition's tokens."""

    def __init__(self, state: PsState, tokens: list[str]) -> None:
        self.state = state
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> str:
        return self.tokens[self.pos].lower() if self.pos < len(self.tokens) else ""

    def take(self) -> str:
        if self.pos >= len(self.tokens):  # "if (-not)", "if ($a -eq)": nothing after the operator
            raise _MissingOperand(self.tokens[-1] if self.tokens else "(")
        tok = str(self.tokens[self.pos])
        self.pos += 1
        return tok

    def more(self) -> bool:
        return self.pos < len(self.tokens)

    def expr(self) -> object:
        value = self.comparison()
        while self.peek() in ("-and", "-or"):
            op = self.take().lower()
            right = self.comparison()
            value = (_truthy(value) and _truthy(right)) if op == "-and" else (_truthy(value) or _truthy(right))
        return value

    def comparison(self) -> object:
        left = self.atom()
        op = self.peek()
        if op not in _COMPARISONS:
            return left
        self.take()
        right = self.atom()
        try:
            lv = int(left) if left is not None and not isinstance(left, bool) else left  # type: ignore[call-overload]
            rv = int(right) if right is not None and not isinstance(right, bool) else right  # type: ignore[call-overload]
        except (TypeError, ValueError):
            lv, rv = str(left).lower(), str(right).lower()
        try:
            return bool(_COMPARISONS[op](lv, rv))
        except TypeError:
            return False

    def atom(self) -> object:
        tok = self.peek()
        if tok in ("-not", "!"):
            self.take()
            return not _truthy(self.atom())
        if tok == "(":
            self.take()
            value = self.expr()
            if self.peek() == ")":
                self.take()
            return value
        raw = self.take()
        low = raw.lower()
        if low == "test-path":
            return self.test_path()
        if low == "get-variable":
            return self.get_variable()
        return self.value(raw, low)

    def test_path(self) -> object:
        words: list[str] = []
        while self.more() and self.peek() not in (")", "-and", "-or"):
            tok = self.take()
            words.append(tok[1:-1] if tok[:1] in "'\"" and len(tok) > 1 else tok)
        return _test_path(self.state.ctx, words)

    def get_variable(self) -> object:
        name = self.take() if self.more() else ""
        while (
            self.more() and self.tokens[self.pos].startswith("-") and self.peek() not in ("-and", "-or", "-eq", "-ne")
        ):
            self.take()
            if self.more() and not self.tokens[self.pos].startswith(("-", ")")):
                self.take()
        name = name.lower().lstrip("$")
        return (name == "lastexitcode" and self.state.last_exit is not None) or name in self.state.variables

    def value(self, raw: str, low: str) -> object:
        """A variable, an automatic variable, a quoted string, a number, or the bare word itself."""
        state = self.state
        automatic = {"$?": state.ok, "$true": True, "$false": False, "$null": None, "$lastexitcode": state.last_exit}
        if low in automatic:
            return automatic[low]
        found, prop = ps_objects.property_value(state, raw)
        if found:
            return prop
        if low.startswith("$psversiontable"):
            return ps_versions.psversion_value(state.ctx.machine, raw)
        if low.startswith("$"):
            return state.variables.get(low[1:])
        if raw[:1] in "'\"":
            return raw[1:-1]
        try:
            return int(raw, 0)
        except ValueError:
            return raw


def _split_pipeline(stmt: str) -> list[str]:
    return [part.strip() for part in ps_objects.split_outside(stmt, "|") if part.strip()]


async def _run_pipeline(state: PsState, stmt: str) -> None:
    parts = _split_pipeline(stmt)
    if not parts:
        return
    saved = state.out
    state.out = ""
    await _run_command(state, parts[0])
    produced = state.out
    state.out = saved
    for sink in parts[1:]:
        name = sink.split()[0].lower()
        if name in ps_versions.NEWER_CMDLETS and ps_versions.is_ps2(state.ctx.machine):
            state.err += ps_versions.not_recognized_v2(sink.split()[0], sink)
            state.ok = False
            produced = ""
            break
        if name in ("out-null",):
            produced = ""
        elif name in ("out-string", "out-host", "out-default", "write-output"):
            continue
    state.out += produced


async def _run_command(state: PsState, stmt: str) -> None:
    version_text = ps_versions.psversiontable(state.ctx.machine, stmt)
    if version_text is not None:
        state.out += version_text
        state.ok = True
        return
    words = tokenize(stmt, state)
    call = bool(words) and words[0].text == "&" and not words[0].quoted
    if call:
        words = words[1:]
    if not words:
        return
    head, args = words[0], words[1:]
    name = head.text.lower()
    if not call and name in ps_versions.NEWER_CMDLETS and ps_versions.is_ps2(state.ctx.machine):
        state.err += ps_versions.not_recognized_v2(head.text, stmt)
        state.ok = False
        return
    if not call and (head.quoted or head.variable is not None or re.fullmatch(r"-?\d+", head.text)):
        state.out += " ".join(w.text for w in words) + CRLF  # a value, not a command: PowerShell writes it out
        state.ok = True
        return
    builtin = _BUILTINS.get(name)
    if builtin is not None and await builtin(state, stmt, args):
        return
    await _run_program(state, stmt, head, args)


async def _write_host(state: PsState, stmt: str, args: list[Word]) -> bool:
    texts = [w.text for w in args if not (w.text.startswith("-") and not w.quoted)]
    state.out += " ".join(texts) + "\n"
    state.ok = True
    return True


async def _write_output(state: PsState, stmt: str, args: list[Word]) -> bool:
    for w in args:
        state.out += w.text + CRLF
    state.ok = True
    return True


async def _write_error(state: PsState, stmt: str, args: list[Word]) -> bool:
    message = " ".join(w.text for w in args if not (w.text.startswith("-") and not w.quoted))
    if not ps_versions.is_ps2(state.ctx.machine):  # 5.1 names the statement (pywinrm's recording)
        message = f"{stmt.strip()} : {message}"
    state.err += (
        f"{message}{CRLF}    + CategoryInfo          : NotSpecified: (:) [Write-Error], WriteErrorException{CRLF}"
    )
    state.err += f"    + FullyQualifiedErrorId : Microsoft.PowerShell.Commands.WriteErrorException{CRLF} {CRLF}"
    state.ok = False
    return True


async def _location_path(state: PsState, stmt: str, args: list[Word]) -> bool:
    """``(pwd).Path``, ``$pwd``: the current directory alone (with arguments: not this builtin)."""
    if args:
        return False
    state.out += state.ctx.cwd + CRLF
    state.ok = True
    return True


async def _location_table(state: PsState, stmt: str, args: list[Word]) -> bool:
    """``pwd`` / ``Get-Location``: the PathInfo table (with arguments: not this builtin)."""
    if args:
        return False
    state.out += f"{CRLF}Path{CRLF}----{CRLF}{state.ctx.cwd}{CRLF}{CRLF}{CRLF}"
    state.ok = True
    return True


async def _start_sleep(state: PsState, stmt: str, args: list[Word]) -> bool:
    seconds = _sleep_seconds([w.text for w in args])
    if seconds is None:
        state.err += _SLEEP_BAD.format(stmt=stmt, marks="~" * max(1, len(stmt)))
        state.ok = False
        return True
    state.duration += seconds
    state.ok = True
    return True


async def _change_location(state: PsState, stmt: str, args: list[Word]) -> bool:
    moved = set_location(
        state.ctx, [(w.text, w.quoted) for w in args], stmt, state.variables.get("erroractionpreference", "")
    )
    state.out += moved.stdout
    state.err += moved.stderr
    state.ok = moved.ok
    if moved.stop:
        raise _ExitScript
    return True


async def _no_op(state: PsState, stmt: str, args: list[Word]) -> bool:
    state.ok = True
    return True


async def _tnc(state: PsState, stmt: str, args: list[Word]) -> bool:
    await _test_netconnection(state, args)
    return True


async def _test_path_cmd(state: PsState, stmt: str, args: list[Word]) -> bool:
    state.out += ("True" if _test_path(state.ctx, [w.text for w in args]) else "False") + CRLF
    state.ok = True
    return True


_Builtin = Callable[[PsState, str, list[Word]], Awaitable[bool]]
# Cmdlets the lab answers itself (lower-case name -> handler; a handler returning False leaves the name to the
# program search, as ``pwd`` with arguments)
_BUILTINS: dict[str, _Builtin] = {
    "write-host": _write_host,
    **dict.fromkeys(("write-output", "echo", "write"), _write_output),
    "write-error": _write_error,
    **dict.fromkeys(("(pwd).path", "(get-location).path", "$pwd.path", "$pwd"), _location_path),
    **dict.fromkeys(("pwd", "get-location", "gl"), _location_table),
    **dict.fromkeys(("start-sleep", "sleep"), _start_sleep),
    **dict.fromkeys(ALIASES, _change_location),
    **dict.fromkeys(("set-strictmode", "out-null", "clear-host"), _no_op),
    **dict.fromkeys(("test-netconnection", "tnc"), _tnc),
    "test-path": _test_path_cmd,
}


async def _run_program(state: PsState, stmt: str, head: Word, args: list[Word]) -> None:
    """A program found on the PC (``cscript``, ``w32tm``, ``cmd`` …), or PowerShell's not-recognized error."""
    from orchestrator.lab.commands.cmd import resolve_program

    found = resolve_program(state.ctx, head.text if not head.quoted else '"' + head.text + '"')
    if found is None:
        if ps_versions.is_ps2(state.ctx.machine):
            state.err += ps_versions.not_recognized_v2(head.text, stmt)
        else:
            state.err += _NOT_FOUND.format(name=head.text, stmt=stmt, marks="~" * max(1, len(head.text)))
        state.ok = False
        return
    args_text = " ".join(quote_arg(w.text) if w.quoted or " " in w.text else w.text for w in args)
    result = await state.ctx.run_program(state.ctx, found[0], args_text, found[1])
    state.out += result.stdout
    state.err += result.stderr
    state.duration += result.duration
    code = result.code & 0xFFFFFFFF
    state.last_exit = code - (1 << 32) if code & 0x80000000 else code
    state.ok = code == 0
    if result.hang:
        state.ctx.extra["hang"] = True
        raise _ExitScript


_SLEEP_BAD = (
    "Start-Sleep : Cannot validate argument on parameter 'Seconds'. The argument is null, empty, or not a number.{crlf}"
    "At line:1 char:1{crlf}+ {stmt}{crlf}+ {marks}{crlf}"
    "    + CategoryInfo          : InvalidData: (:) [Start-Sleep], ParameterBindingValidationException{crlf}"
    "    + FullyQualifiedErrorId : ParameterArgumentValidationError,Microsoft.PowerShell.Commands.StartSleepCommand"
    "{crlf} {crlf}"
).replace("{crlf}", CRLF)


def _sleep_seconds(argv: list[str]) -> float | None:
    """``Start-Sleep [-Seconds] n`` / ``-Milliseconds n`` (also ``-s`` / ``-m``) → seconds, None when invalid."""
    scale = 1.0
    value: str | None = None
    i = 0
    while i < len(argv):
        low = argv[i].lower()
        if low.startswith("-") and not re.fullmatch(r"-?[\d.]+", low):
            name = low.lstrip("-")
            if name and "milliseconds".startswith(name):
                scale = 0.001
            elif not (name and "seconds".startswith(name)):
                return None
            if i + 1 < len(argv):
                value = argv[i + 1]
            i += 2
            continue
        value = argv[i] if value is None else value
        i += 1
    try:
        number = float(value) if value is not None else -1.0
    except ValueError:
        return None
    if number < 0:
        return None
    return number * scale


def _test_path(ctx: Ctx, argv: list[str]) -> bool:
    """``Test-Path [-Path|-LiteralPath] P [-PathType Leaf|Container]`` against the lab's small file system."""
    from orchestrator.lab import files as lab_files
    from orchestrator.lab.commands.base import files, join_path, norm_path
    from orchestrator.lab.commands.cmd import known_dirs

    path: str | None = None
    kind = "any"
    i = 0
    while i < len(argv):
        low = argv[i].lower()
        if low in ("-path", "-literalpath", "-lp"):
            path = argv[i + 1] if i + 1 < len(argv) else None
            i += 2
            continue
        if low == "-pathtype":
            kind = argv[i + 1].lower() if i + 1 < len(argv) else "any"
            i += 2
            continue
        if not low.startswith("-") and path is None:
            path = argv[i]
        i += 1
    if not path:
        return False
    full = norm_path(join_path(ctx.cwd, path))
    written = lab_files.lookup(ctx.machine, full)  # files and folders written to the PC (lab.files)
    if written is not None and full not in files(ctx.machine):
        return kind == "any" or kind == {"file": "leaf", "dir": "container"}[written]
    found = files(ctx.machine).get(full)
    is_dir = found == "dir" or full in known_dirs(ctx)
    is_file = found is not None and found != "dir"
    if kind == "leaf":
        return is_file
    if kind == "container":
        return is_dir
    return is_file or is_dir


async def _test_netconnection(state: PsState, args: list[Word]) -> None:
    from orchestrator.lab.commands.tools import tcp_test
    from orchestrator.lab.licensing import resolve_kms_address

    host: str | None = None
    port: int | None = None
    quiet = False
    i = 0
    while i < len(args):
        text = args[i].text
        low = text.lower()
        if low in ("-computername", "-cn", "-remoteaddress"):
            host = args[i + 1].text if i + 1 < len(args) else None
            i += 2
            continue
        if low in ("-port", "-remoteport"):
            try:
                port = int(args[i + 1].text) if i + 1 < len(args) else None
            except ValueError:
                port = None
            i += 2
            continue
        if low == "-informationlevel":
            quiet = i + 1 < len(args) and args[i + 1].text.lower() == "quiet"
            i += 2
            continue
        if not low.startswith("-") and host is None:
            host = text
        i += 1
    host = host or "internetbeacon.msedge.net"
    address = resolve_kms_address(host)
    ok = address is not None
    if ok and address is not None and port is not None:
        ok = await tcp_test(address, port)
    m = state.ctx.machine
    if quiet:
        state.out += ("True" if ok else "False") + CRLF
    else:
        if address is None and not re.fullmatch(r"[\d.]+", host):
            state.out += f"WARNING: Name resolution of {host} failed{CRLF}"
        elif not ok and port is not None:
            state.out += f"WARNING: TCP connect to ({address or host} : {port}) failed{CRLF}"
        lines = [
            "",
            f"ComputerName     : {host}",
            f"RemoteAddress    : {address or host}",
        ]
        if port is not None:
            lines += [f"RemotePort       : {port}"]
        lines += ["InterfaceAlias   : Ethernet", f"SourceAddress    : {m.address}"]
        if port is not None:
            lines += [f"TcpTestSucceeded : {'True' if ok else 'False'}"]
        else:
            lines += [f"PingSucceeded    : {'True' if ok else 'False'}"]
        state.out += CRLF.join(lines) + CRLF + CRLF + CRLF
    state.ok = True


async def prog_powershell(ctx: Ctx, args_text: str, argv: list[str]) -> ProgResult:
    del args_text
    mode, script = parse_command_line(argv)
    if mode == "stdin":
        script = ctx.stdin
    elif mode == "file":
        path = script or ""
        return ProgResult(
            stderr=(
                f"The argument '{path}' to the -File parameter does not exist. Provide the path to an existing "
                f"'.ps1' file as an argument to the -File parameter.{CRLF}"
            ),
            code=0xFFFD0000,
        )
    ctx.extra.pop("hang", None)
    result = await run_script(ctx, script or "")
    if ctx.extra.pop("hang", False):
        result.hang = True
        result.duration = HANG_SECONDS
    if _errors_serialized(ctx, argv):
        result.stderr = errors_as_clixml(result.stderr)
    return result


def _errors_serialized(ctx: Ctx, argv: list[str]) -> bool:
    """Windows PowerShell 5.1 run with ``-EncodedCommand`` and without ``-NoExit`` writes its error stream as
    CLIXML (``ps_clixml``). Whether 2.0 does is unconfirmed; the lab keeps its text plain."""
    if ps_versions.is_ps2(ctx.machine):
        return False
    encoded = no_exit = False
    i = 0
    while i < len(argv) and argv[i].startswith(("-", "/")) and argv[i] != "-":
        name = argv[i].lower().lstrip("-/")
        if name == "c" or _match(name, "command", 2) or name == "f" or _match(name, "file", 2):
            break  # the rest is the script (or the file and its arguments)
        if name in ("e", "ec") or _match(name, "encodedcommand", 2):
            encoded = True
            i += 2
            continue
        no_exit = no_exit or name == "noe" or _match(name, "noexit", 3)
        valued = name in ("ep", "ex", "if", "of", "w", "v") or any(_match(name, v, 3) for v in _VALUED)
        i += 2 if valued else 1
    return encoded and not no_exit
