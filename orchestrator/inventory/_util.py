"""Small helpers shared by the inventory loaders."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from orchestrator.errors import InputError, Location

_BAD_NAME_START = ("!", "&", "~", "@")


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The closest of ``choices`` to ``word``, formatted as a hint, or None."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{match[0]}'?" if match else None


def check_entity_name(name: str, kind: str, location: Location) -> None:
    """Host and group names must be usable in host patterns."""
    if not name:
        raise InputError(f"empty {kind} name", location)
    if any(ch.isspace() for ch in name) or "," in name:
        raise InputError(
            f"{kind} name {name!r} contains a space or a comma", location, hint="host patterns split on those"
        )
    if name.startswith(_BAD_NAME_START):
        raise InputError(
            f"{kind} name {name!r} starts with {name[0]!r}",
            location,
            hint="'!', '&', '~' and '@' have a meaning at the start of a host pattern",
        )
