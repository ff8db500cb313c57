"""Ansible host patterns (``hosts:`` of a play and ``--limit``).

A pattern is a list of terms separated by commas (or colons): ``room101,room102``, ``room101:&win10``,
``room101:!pc05``. Each term is one of

- ``all`` or ``*``; a group name (all its hosts, children included); a host name;
- a glob (``pc0*``, ``127.0.1.?``) matched against group names, then host names;
- ``~regex`` (Python ``re.match`` against group and host names);
- a subscript of a group: ``room101[0]``, ``room101[-1]``, ``room101[0:4]`` (end inclusive, as in Ansible),
  ``room101[2:]``, ``room101[:3]``;
- a host range, as in inventories: ``pc[01:05]`` (when no group/host is named like the part before ``[``);
- ``@file``: one pattern per line of a file (relative to the current directory), e.g. a retry file.

``!term`` removes hosts, ``&term`` keeps only hosts also in the term; plain terms are applied first, then
``&``, then ``!`` (with only ``!``/``&`` terms, ``all`` is implied). The result is in inventory order.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import InputError, Location
from orchestrator.hostranges import RangeError, expand, has_range
from orchestrator.inventory._util import did_you_mean
from orchestrator.inventory.hostpattern import split_pattern

if TYPE_CHECKING:
    from orchestrator.inventory.model import Inventory


@dataclass(frozen=True)
class Selection:
    """What a host pattern matched: the hosts (inventory order) and the terms that matched nothing."""

    hosts: tuple[str, ...]
    unmatched: tuple[str, ...]
    hints: tuple[str, ...]


_SUBSCRIPT = re.compile(r"^(.+)\[(?:(-?\d+)|(\d*)([:-])(\d*))\]$")
_GLOB_CHARS = ("*", "?", "[", ".")
MAX_PATTERN_CHARS = 64 * 1024
MAX_LIMIT_FILE = 1024 * 1024


def match(inventory: Inventory, pattern: str | None, *, limit: str | None = None) -> Selection:
    chosen, unmatched, hints = _evaluate(inventory, pattern if pattern is not None else "all")
    if limit is not None and limit.strip():
        limited, l_unmatched, l_hints = _evaluate(inventory, limit)
        keep = set(limited)
        chosen = [h for h in chosen if h in keep]
        unmatched += l_unmatched
        hints += l_hints
    return Selection(tuple(dict.fromkeys(chosen)), tuple(unmatched), tuple(hints))


def select(
    inventory: Inventory, pattern: str | None, *, limit: str | None = None, location: Location | None = None
) -> list[str]:
    selection = match(inventory, pattern, limit=limit)
    if not selection.hosts and selection.unmatched:
        terms = ", ".join(f"'{t}'" for t in selection.unmatched)
        noun = "term" if len(selection.unmatched) == 1 else "terms"
        hint = "; ".join(selection.hints) if selection.hints else None
        raise InputError(f"no host matches the pattern ({noun} {terms} matched no host or group)", location, hint)
    return list(selection.hosts)


def _ordered_terms(pattern: str) -> list[str]:
    """The pattern's terms as Ansible applies them: plain terms (``all`` if none), then ``&``, then ``!``."""
    if not isinstance(pattern, str):
        raise InputError(f"a host pattern must be text, not {type(pattern).__name__}")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise InputError(f"the host pattern is longer than {MAX_PATTERN_CHARS} characters")
    if not pattern.strip():
        raise InputError("empty host pattern", hint="use 'all' for every host")
    terms = split_pattern(pattern)
    if not terms:  # only separators, e.g. ',' from an unset shell variable: never "every host"
        raise InputError(f"the host pattern {pattern!r} names no host or group", hint="use 'all' for every host")
    regular = [t for t in terms if t[0] not in "!&"]
    intersect = [t for t in terms if t[0] == "&"]
    exclude = [t for t in terms if t[0] == "!"]
    return (regular or ["all"]) + intersect + exclude


def _apply_term(hosts: list[str], operator: str, found: list[str]) -> list[str]:
    """``hosts`` after one term: ``!`` removes, ``&`` keeps only, a plain term adds the hosts not yet there."""
    if operator == "!":
        drop = set(found)
        return [h for h in hosts if h not in drop]
    if operator == "&":
        keep = set(found)
        return [h for h in hosts if h in keep]
    seen = set(hosts)
    return hosts + [h for h in dict.fromkeys(found) if h not in seen]


def _evaluate(inventory: Inventory, pattern: str) -> tuple[list[str], list[str], list[str]]:
    hosts: list[str] = []
    unmatched: list[str] = []
    hints: list[str] = []
    for term in _ordered_terms(pattern):
        body = term[1:] if term[0] in "!&" else term
        if not body:
            raise InputError(f"incomplete host pattern term {term!r}", hint="write '!name' or '&name'")
        if body.startswith("@"):
            found, known, hint = _file_term(inventory, body), True, None
        else:
            found, known, hint = _term(inventory, body)
        if not known:
            unmatched.append(body)
            if hint:
                hints.append(hint)
        hosts = _apply_term(hosts, term[0], found)
    return hosts, unmatched, hints


def _file_term(inventory: Inventory, term: str) -> list[str]:
    """``@file``: the union of the patterns on each line (a retry file lists one host per line)."""
    found: dict[str, None] = {}
    for line in _read_file(term):
        hosts, _unmatched, _hints = _evaluate(inventory, line)
        found.update(dict.fromkeys(hosts))
    return list(found)


def _read_file(term: str) -> list[str]:
    path = Path(term[1:])
    if not term[1:]:
        raise InputError("'@' must be followed by a file name", hint="e.g. --limit @failed-hosts.txt")
    try:
        with path.open("rb") as fh:  # a bounded read: /dev/zero or a FIFO reports no size
            data = fh.read(MAX_LIMIT_FILE + 1)
        if len(data) > MAX_LIMIT_FILE:
            raise InputError("the limit file is larger than 1 MiB", Location(str(path)))
        text = data.decode("utf-8-sig")
    except FileNotFoundError:
        if term[1:].partition(":")[0] in ("failed", "unreachable"):  # the history's words, where they do not apply
            raise InputError(
                f"{term.partition(':')[0]} (from the history) works only as a whole --limit term of run, audit "
                "or wake, e.g. --limit @failed or --limit @failed,pc10",
                hint="not inside :& or :! patterns, nor with kmsfleet inventory; '@FILE' reads a file of hosts",
            ) from None
        raise InputError(f"limit file not found: {path}", hint="'@FILE' reads one host or pattern per line") from None
    except IsADirectoryError:
        raise InputError(f"'@{path}' is a directory, expected a file of host names") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read limit file {path}: {exc}") from None
    out: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", "@")):
            out.append(line)
    return out


def _term(inventory: Inventory, term: str) -> tuple[list[str], bool, str | None]:
    """Hosts of one term, whether it named something that exists, and a hint when it did not."""
    if term in inventory.groups:
        return inventory.group_hosts(term), True, None
    if term in inventory._index:
        return [term], True, None
    if term.startswith("~"):
        try:
            regex = re.compile(term[1:])
        except re.error as exc:
            raise InputError(f"invalid regular expression in host pattern {term!r}: {exc}") from None
        found = _union(inventory, [g for g in inventory.groups if regex.match(g)], _regex_hosts(inventory, regex))
        return found, bool(found) or _any_group(inventory, regex), None
    subscript = _SUBSCRIPT.match(term)
    if subscript is not None:
        base = subscript.group(1)
        found, known = _enumerate(inventory, base)
        if known:
            return _apply_subscript(found, subscript), True, None
    if has_range(term):
        try:
            names = expand(term)
        except RangeError:
            names = []
        if names:
            found = [n for n in names if n in inventory._index]
            return found, bool(found), None if found else _hint(inventory, names[0])
    found, known = _enumerate(inventory, term)
    return found, known, None if known else _hint(inventory, term)


def _enumerate(inventory: Inventory, expr: str) -> tuple[list[str], bool]:
    groups = [g for g in inventory.groups if fnmatch.fnmatchcase(g, expr)]
    hosts: list[str] = []
    if not groups or any(ch in expr for ch in _GLOB_CHARS):
        hosts = [h for h in inventory.hosts if fnmatch.fnmatchcase(h, expr)]
    found = _union(inventory, groups, hosts)
    return found, bool(groups) or bool(hosts)


def _union(inventory: Inventory, groups: list[str], hosts: list[str]) -> list[str]:
    """Ansible's order: the matching groups' hosts (group definition order), then the matching hosts."""
    out: dict[str, None] = {}
    for g in groups:
        out.update(dict.fromkeys(inventory.group_hosts(g)))
    out.update(dict.fromkeys(hosts))
    return list(out)


def _regex_hosts(inventory: Inventory, regex: re.Pattern[str]) -> list[str]:
    return [h for h in inventory.hosts if regex.match(h)]


def _any_group(inventory: Inventory, regex: re.Pattern[str]) -> bool:
    return any(regex.match(g) for g in inventory.groups)


def _apply_subscript(hosts: list[str], m: re.Match[str]) -> list[str]:
    single, start, _sep, end = m.group(2), m.group(3), m.group(4), m.group(5)
    if single is not None:
        index = int(single)
        if -len(hosts) <= index < len(hosts):
            return [hosts[index]]
        return []
    if not start and not end:
        raise InputError(f"invalid subscript in host pattern '{m.group(0)}'", hint="use [0], [-1], [0:4], [2:] or [:3]")
    first = int(start) if start else 0
    last = int(end) if end else len(hosts) - 1
    if last < first:
        return []
    return hosts[first : last + 1]


def _hint(inventory: Inventory, term: str) -> str | None:
    bare = term.strip("*?")
    suggestion = did_you_mean(bare, [*inventory.groups, *inventory.hosts])
    return f"'{term}': {suggestion}" if suggestion else None
