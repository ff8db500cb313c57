"""Windows command-line quoting, shared by the engine (building command lines) and the lab (reading them back).
A leaf: anyone may import it."""

from __future__ import annotations

import re

_NEEDS_QUOTES = re.compile(r'[\s"]')


def quote_arg(arg: str) -> str:
    """Quote one argument so that CommandLineToArgvW (and the lab's parser) reads it back unchanged."""
    if arg and not _NEEDS_QUOTES.search(arg):
        return arg
    out = ['"']
    backslashes = 0
    for ch in arg:
        if ch == "\\":
            backslashes += 1
        elif ch == '"':
            out.append("\\" * (backslashes * 2 + 1) + '"')
            backslashes = 0
        else:
            out.append("\\" * backslashes + ch)
            backslashes = 0
    out.append("\\" * (backslashes * 2) + '"')
    return "".join(out)
