"""Ansible host-range expansion (``pc[01:40]``, ``127.0.1.[1:40]``, ``lab-[a:f]``, ``x[0:10:2]``).

A leaf shared by the inventory loader and the lab spec. Numeric ranges keep the width of the start bound
(``[01:10]`` gives ``01`` … ``10``); alphabetic ranges take single letters. Several ranges in one pattern
expand as a product, left to right.
"""

from __future__ import annotations

import re
import string

_RANGE = re.compile(r"\[([^\[\]]*)\]")
MAX_EXPANSION = 100_000


class RangeError(ValueError):
    """A malformed range; the message says what was expected."""


def has_range(pattern: str) -> bool:
    return _RANGE.search(pattern) is not None


def _expand_one(body: str) -> list[str]:
    parts = body.split(":")
    if len(parts) not in (2, 3):
        raise RangeError(f"range '[{body}]' must look like [start:end] or [start:end:step]")
    start, end = parts[0].strip(), parts[1].strip()
    step_text = parts[2].strip() if len(parts) == 3 else "1"
    if not step_text.isdigit() or int(step_text) < 1:
        raise RangeError(f"range '[{body}]' has an invalid step {step_text!r} (a whole number ≥ 1)")
    step = int(step_text)
    if start.isdigit() and end.isdigit():
        lo, hi = int(start), int(end)
        if lo > hi:
            raise RangeError(f"range '[{body}]' starts after it ends")
        if (hi - lo) // step + 1 > MAX_EXPANSION:
            raise RangeError(f"range '[{body}]' expands to more than {MAX_EXPANSION} names")
        width = len(start) if start.startswith("0") and len(start) > 1 else 0
        return [str(i).zfill(width) for i in range(lo, hi + 1, step)]
    letters = string.ascii_letters
    if len(start) == 1 and len(end) == 1 and start in letters and end in letters:
        lo_i, hi_i = letters.index(start), letters.index(end)
        if lo_i > hi_i:
            raise RangeError(f"range '[{body}]' starts after it ends")
        return [letters[i] for i in range(lo_i, hi_i + 1, step)]
    raise RangeError(f"range '[{body}]' must be numbers ([01:40]) or single letters ([a:f])")


def expand(pattern: str) -> list[str]:
    """All names a pattern stands for, in order. A pattern without ``[`` is returned as is."""
    match = _RANGE.search(pattern)
    if match is None:
        if "[" in pattern or "]" in pattern:
            raise RangeError(f"unbalanced bracket in host pattern {pattern!r}")
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    if "[" in head or "]" in head:
        raise RangeError(f"unbalanced bracket in host pattern {pattern!r}")
    tails = expand(tail)
    out: list[str] = []
    for piece in _expand_one(match.group(1)):
        for t in tails:
            out.append(f"{head}{piece}{t}")
            if len(out) > MAX_EXPANSION:
                raise RangeError(f"host pattern {pattern!r} expands to more than {MAX_EXPANSION} names")
    return out
