"""Ansible INI inventories: ``[group]``, ``[group:vars]``, ``[group:children]``, ``host key=value …``.

Values are parsed as Ansible does: each is tried as a Python literal (``5985`` → int, ``True`` → bool,
``['a', 'b']`` → list, ``'text'`` → str) and kept as text otherwise (``yes``, ``C:\\Temp``). Host lines are split
shell-style (quotes group words, ``#`` starts a comment); in ``:vars`` sections everything after ``=`` is the
value.
"""

from __future__ import annotations

import ast
import re
import shlex
from typing import Any

from orchestrator.errors import InputError, Location
from orchestrator.hostranges import RangeError, expand
from orchestrator.inventory.builder import InventoryBuilder
from orchestrator.inventory.hostpattern import split_port
from orchestrator.varsfile import register_secrets

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:[#;].*)?$")
_MAX_LITERAL = 100_000


def parse_value(text: str) -> Any:
    """Ansible's INI value rule: a Python literal when it is one, the text otherwise."""
    if len(text) > _MAX_LITERAL:
        return text
    try:
        return _plain(ast.literal_eval(text))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, _NotPlain):
        return text


class _NotPlain(Exception):
    """A literal that is not plain data (a set, bytes, a complex number): keep the text."""


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str | int | float | bool):
                raise _NotPlain
            out[str(k)] = _plain(v)
        return out
    raise _NotPlain


def parse_ini_inventory(text: str, filename: str, builder: InventoryBuilder) -> None:
    group = "ungrouped"
    state = "hosts"
    vars_seen: dict[str, Location] = {}
    # Ansible's rule: [g] or [g:children] declares a group; [g:vars] and a [p:children] entry may name a group
    # only if it is declared (here, before or after, or in an earlier source). name -> (kind, where, parents)
    pending: dict[str, tuple[str, Location, list[str]]] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        col = len(raw) - len(raw.lstrip()) + 1
        loc = Location(filename, lineno, col)
        if line.startswith("["):
            match = _SECTION.match(line)
            if match is None:
                raise InputError(
                    f"invalid section header {line!r}",
                    loc,
                    hint="sections look like [group], [group:vars] or [group:children]",
                )
            group, kind = match.group(1), match.group(2) or "hosts"
            if kind not in ("hosts", "vars", "children"):
                raise InputError(
                    f"unknown section type ':{kind}' in [{line[1:].split(']')[0]}]",
                    Location(filename, lineno, col + len(group) + 2),
                    hint="use [group], [group:vars] or [group:children]",
                )
            if group not in builder.groups and kind == "vars" and group not in pending:
                pending[group] = ("vars", loc, [])
            if group in pending and kind != "vars":
                waiting_kind, _where, parents = pending.pop(group)
                builder.add_group(group, loc)
                for parent in parents if waiting_kind == "children" else ():
                    builder.add_child(parent, group, loc)
            builder.add_group(group, loc)
            state = kind
            if kind == "vars":
                vars_seen.setdefault(group, loc)
            continue
        if state == "hosts":
            _host_line(builder, group, raw, line, loc, filename)
        elif state == "children":
            child = line.split("#", 1)[0].split(";", 1)[0].strip()
            if not child or len(child.split()) != 1:
                raise InputError(
                    f"expected one group name per line in [{group}:children], got {line!r}",
                    loc,
                )
            if child in builder.groups:
                builder.add_child(group, child, loc)
            elif child in pending:
                pending[child][2].append(group)
            else:
                pending[child] = ("children", loc, [group])
        else:
            if "=" not in line:
                raise InputError(
                    f"expected key=value in [{group}:vars], got {line!r}", loc, hint="write one key=value per line"
                )
            key, value = (part.strip() for part in line.split("=", 1))
            if not key:
                raise InputError("empty variable name", loc)
            builder.set_group_var(group, key, parse_value(value), loc)
            register_secrets({key: builder.groups[group].vars.get(key)})
    for name, (waiting_kind, where, parents) in pending.items():
        if waiting_kind == "vars":
            raise InputError(
                f"section [{name}:vars] is for a group that is never declared",
                where,
                hint=f"declare it with [{name}] (hosts) or [{name}:children], as Ansible requires",
            )
        raise InputError(
            f"section [{parents[-1]}:children] names group '{name}', which is never declared",
            where,
            hint=f"add a [{name}] section with its hosts (or [{name}:children]), as Ansible requires",
        )
    for group_name, loc in vars_seen.items():
        entry = builder.groups[group_name]
        if group_name not in ("all", "ungrouped") and not entry.hosts and not entry.children and not entry.parents:
            builder.warnings.append(f"{loc}: group '{group_name}' has variables but no hosts and no child groups")


def _host_line(builder: InventoryBuilder, group: str, raw: str, line: str, loc: Location, filename: str) -> None:
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as exc:
        raise InputError(f"cannot split host line: {exc}", loc, hint="check the quotes on this line") from None
    if not tokens:
        return
    pattern, *assignments = tokens
    variables: dict[str, Any] = {}
    for token in assignments:
        if "=" not in token:
            raise InputError(
                f"expected key=value after the host name, got {token!r}",
                Location(filename, loc.line, max(raw.find(token), 0) + 1 or loc.column),
                hint="quote values that contain spaces: key='two words'",
            )
        key, value = token.split("=", 1)
        if not key:
            raise InputError(f"empty variable name in {token!r}", loc)
        variables[key] = parse_value(value)
    base, port = split_port(pattern)
    try:
        names = expand(base)
    except RangeError as exc:
        raise InputError(f"bad host range: {exc}", loc) from None
    for host in names:
        builder.add_host(host, loc, filename, group, port)
        for key, value in variables.items():
            builder.set_host_var(host, key, value)
    register_secrets(variables)
