"""Small helpers the store, the summary and the reports share: natural host order and a PC's room."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key putting pc2 before pc10 (digits compare as numbers, the rest case-insensitively)."""
    parts: list[tuple[int, int | str]] = []
    for i, part in enumerate(_DIGITS.split(name)):
        if i % 2:
            parts.append((0, int(part)))
        elif part:
            parts.append((1, part.casefold()))
    return tuple(parts)


def natural_sorted(names: Iterable[str]) -> list[str]:
    return sorted(names, key=lambda n: (natural_key(n), n))


def room_of(groups: Sequence[str]) -> str | None:
    """A PC's room: its first inventory group other than ``all`` / ``ungrouped``."""
    for group in groups:
        if group not in ("all", "ungrouped"):
            return group
    return None
