"""cmd.exe's ``if`` and ``( … )`` blocks, as Microsoft documents them (``if /?``; Microsoft Learn, Windows
Commands, "if": https://learn.microsoft.com/windows-server/administration/windows-commands/if).

- ``if [not] exist <filename> <command>``: true when the file or folder exists (the lab's file system,
  ``lab.files.lookup``); ``if [not] errorlevel <n>``: true when the last exit code is ``n`` or more;
  ``if [/i] [not] <s1>==<s2>``; ``if defined <variable>``.
- ``<command>`` is the rest of the line: ``if exist a echo 1 & echo 2`` runs both only when ``a`` exists, which
  is why each test of a chain goes in its own ``( … )`` group. ``else <expression>`` is recognised only after a
  ``( … )`` command (``if /?``: the command before ``ELSE`` must end on the same line, e.g. ``IF EXIST filename.
  (del filename.) ELSE echo filename. missing``).
- Inside a group, ``)`` outside double quotes closes it; a ``)`` inside quotes (``"C:\\Program Files (x86)\\…"``)
  is text.
- A false condition runs nothing and leaves the error level as it was.

Deviations: wildcards in ``exist`` (looked up literally), the comparison operators (``EQU``, ``LSS``, …) and
``cmdextversion`` are not modelled (answered with cmd's syntax error).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from orchestrator.lab import files as lab_files
from orchestrator.lab.commands.base import Ctx, ProgResult, join_path

RunChain = Callable[[Ctx, str], Awaitable[ProgResult]]

_IF_START = re.compile(r"[ \t@]*if[ \t]", re.IGNORECASE)


def starts_if(text: str) -> bool:
    """Does this command text begin with the ``if`` built-in?"""
    return _IF_START.match(text) is not None


def block_end(text: str, start: int) -> int:
    """The index of the ``)`` that closes the group opened at ``text[start] == "("`` (-1 when unclosed); quotes
    and ``^`` escapes are skipped, inner groups nest."""
    depth = 0
    in_quotes = False
    i = start
    while i < len(text):
        ch = text[i]
        if ch == '"':
            in_quotes = not in_quotes
        elif not in_quotes and ch == "^":
            i += 1
        elif not in_quotes and ch == "(":
            depth += 1
        elif not in_quotes and ch == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


@dataclass(frozen=True)
class Group:
    inner: str  # the text between the parentheses
    tail: str  # what follows the closing parenthesis (redirections)


def as_group(text: str) -> Group | None:
    """``( … ) [redirections]`` split into its parts, or None when the text is not a group."""
    stripped = text.lstrip(" \t@")
    if not stripped.startswith("("):
        return None
    end = block_end(stripped, 0)
    if end == -1:
        return Group(stripped[1:], "")  # cmd waits for "More?" lines; on a /c line the group ends at the end
    return Group(stripped[1:end], stripped[end + 1 :])


_COMPARE = re.compile(r'[ \t]*("[^"]*"|[^\s=]+)[ \t]*==[ \t]*("[^"]*"|[^\s=]+)')
_TOKEN = re.compile(r'"[^"]*"|[^\s"=]+(?:"[^"]*"[^\s"=]*)*')


def _take_word(text: str) -> tuple[str, str]:
    """The next blank-separated word (quotes kept) and the text after it."""
    text = text.lstrip(" \t")
    m = _TOKEN.match(text)
    if m is None:
        return "", text
    return m.group(0), text[m.end() :]


def _condition(ctx: Ctx, text: str, ignore_case: bool) -> tuple[bool, str] | None:
    """Evaluate the condition at the start of ``text``: (truth, the command text after it); None when the
    condition cannot be read (cmd: "The syntax of the command is incorrect.")."""
    word, rest = _take_word(text)
    low = word.lower()
    if low == "exist":
        path, rest = _take_word(rest)
        found = lab_files.lookup(ctx.machine, join_path(ctx.cwd, path.strip('"'))) if path else None
        return found is not None, rest
    if low == "errorlevel":
        number, rest = _take_word(rest)
        return (ctx.errorlevel >= int(number), rest) if re.fullmatch(r"-?\d+", number) else None
    if low == "defined":
        name, rest = _take_word(rest)
        return ctx.getenv(name) is not None, rest
    m = _COMPARE.match(text)
    if m is None:
        return None
    left, right = (m.group(1).lower(), m.group(2).lower()) if ignore_case else (m.group(1), m.group(2))
    return left == right, text[m.end() :]


def _then_else(command: str) -> tuple[str, str | None]:
    """The command to run when true and the ``else`` expression (only after a ``( … )`` group)."""
    stripped = command.lstrip(" \t")
    if not stripped.startswith("("):
        return command, None
    end = block_end(stripped, 0)
    if end == -1:
        return command, None
    m = re.match(r"[ \t]*else(?=[ \t(])", stripped[end + 1 :], re.IGNORECASE)
    if m is None:
        return command, None
    return stripped[: end + 1], stripped[end + 1 + m.end() :]


async def run_if(ctx: Ctx, text: str, run_chain: RunChain) -> ProgResult:
    """``if [/i] [not] <condition> <command> [else <expression>]``; ``text`` is everything after ``if``."""
    rest = text
    ignore_case = negate = False
    while True:
        word, after = _take_word(rest)
        if word.lower() == "/i" and not ignore_case:
            ignore_case, rest = True, after
        elif word.lower() == "not" and not negate:
            negate, rest = True, after
        else:
            break
    parsed = _condition(ctx, rest, ignore_case)
    if parsed is None:
        return ProgResult(stderr="The syntax of the command is incorrect.\r\n", code=255)
    truth, command = parsed
    then, otherwise = _then_else(command)
    if not command.strip():
        return ProgResult(stderr="The syntax of the command is incorrect.\r\n", code=255)
    chosen = then if truth != negate else otherwise
    if chosen is None:
        return ProgResult(code=ctx.errorlevel)
    return await run_chain(ctx, chosen)
