"""Ansible's ``key=value`` module-argument syntax: ``debug: msg="hello {{ name }}"``,
``win_command: whoami chdir=C:\\\\Temp``.

Words are split on spaces outside quotes and outside ``{{ }}``/``{% %}``/``{# #}``. For a module with a
free-form argument only the few keys Ansible extracts from command lines (``chdir``, ``creates``,
``removes``, ``executable``, ``stdin`` …) are taken out; everything else is the command text, kept as written.
Other modules take only ``key=value`` words. Values are unquoted and backslash escapes decoded as Ansible
does (``\\t`` becomes a TAB — the classic ``C:\\temp`` trap, reported as a warning).
"""

from __future__ import annotations

import codecs
import re

RAW_PARAM_KEYS = frozenset(
    {"creates", "removes", "chdir", "executable", "warn", "stdin", "stdin_add_newline", "strip_empty_ends"}
)
_ESCAPE = re.compile(r"\\(?:U[0-9A-Fa-f]{8}|u[0-9A-Fa-f]{4}|x[0-9A-Fa-f]{2}|[0-7]{1,3}|N\{[^}]+\}|[\\'\"abfnrtv])")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PAIRS = {"{{": "}}", "{%": "%}", "{#": "#}"}


class KVError(ValueError):
    """Text that cannot be split (unbalanced quotes or template braces)."""


def split_args(text: str) -> list[str]:
    """Split on whitespace outside quotes and template blocks; tokens keep their quotes."""
    tokens: list[str] = []
    current: list[str] = []
    quote: str | None = None
    closers: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        pair = text[i : i + 2]
        if quote is None and pair in _PAIRS:
            closers.append(_PAIRS[pair])
            current.append(pair)
            i += 2
            continue
        if quote is None and closers and pair == closers[-1]:
            closers.pop()
            current.append(pair)
            i += 2
            continue
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if quote is not None:
            if ch == quote and not closers:
                quote = None
            current.append(ch)
        elif ch in "'\"" and not closers:
            quote = ch
            current.append(ch)
        elif ch.isspace() and not closers:
            if current:
                tokens.append("".join(current))
                current = []
        else:
            current.append(ch)
        i += 1
    if quote is not None:
        raise KVError(f"unbalanced quote {quote} in {text!r}")
    if closers:
        raise KVError(f"unclosed template (missing {closers[-1]!r}) in {text!r}")
    if current:
        tokens.append("".join(current))
    return tokens


def _split_kv(token: str) -> tuple[str, str] | None:
    depth = 0
    quote: str | None = None
    i = 0
    while i < len(token):
        ch = token[i]
        pair = token[i : i + 2]
        if quote is None and pair in _PAIRS:
            depth += 1
            i += 2
            continue
        if quote is None and depth and pair in _PAIRS.values():
            depth -= 1
            i += 2
            continue
        if ch == "\\":
            i += 2
            continue
        if quote is not None:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "=" and depth == 0:
            key = token[:i]
            return (key, token[i + 1 :]) if _KEY.match(key) else None
        i += 1
    return None


def decode_escapes(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        try:
            return codecs.decode(m.group(0), "unicode-escape")
        except (UnicodeDecodeError, ValueError):
            return m.group(0)

    return _ESCAPE.sub(repl, text)


def unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def parse_kv(text: str, free_form: str | None) -> tuple[dict[str, str], list[str], list[str]]:
    """``(args, non_kv_words, warnings)``. For a free-form module the non-key=value words are already joined
    into ``args[free_form]`` (and ``non_kv_words`` is empty)."""
    warnings: list[str] = []
    if free_form is not None and "\n" in text.strip():
        return {free_form: text}, [], warnings  # multi-line scripts stay exactly as written
    tokens = split_args(text)
    args: dict[str, str] = {}
    raw: list[str] = []
    for token in tokens:
        kv = _split_kv(token)
        if kv is None or (free_form is not None and kv[0] not in RAW_PARAM_KEYS):
            raw.append(token)
            continue
        key, value = kv
        decoded = decode_escapes(value)
        if decoded != value and any(c in decoded for c in "\t\n\r\a\b\f\v"):
            warnings.append(
                f"in {key}={value} a backslash escape became a control character; "
                f"write {key}={value.replace(chr(92), chr(92) * 2)} or use the mapping form"
            )
        args[key] = unquote(decoded)
    if free_form is not None:
        if raw:
            extracted = len(raw) != len(tokens)
            args[free_form] = " ".join(raw) if extracted else text.strip()
        return args, [], warnings
    return args, raw, warnings
