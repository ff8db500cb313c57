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
    parse = _IniParse(builder, filename)
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        col = len(raw) - len(raw.lstrip()) + 1
        loc = Location(filename, lineno, col)
        if line.startswith("["):
            parse.section(line, loc)
        elif parse.state == "hosts":
            _host_line(builder, parse.group, raw, line, loc, filename)
        elif parse.state == "children":
            parse.child(line, loc)
        else:
            parse.variable(line, loc)
    parse.finish()


class _IniParse:
    """Where an INI inventory's reading is: the current section, and the groups named before being declared."""

    def __init__(self, builder: InventoryBuilder, filename: str) -> None:
        self.builder = builder
        self.filename = filename
        self.group = "ungrouped"
        self.state = "hosts"
        self.vars_seen: dict[str, Location] = {}
        # Ansible's rule: [g] or [g:children] declares a group; [g:vars] and a [p:children] entry may name a group
        # only if it is declared (here, before or after, or in an earlier source). name -> (kind, where, parents)
        self.pending: dict[str, tuple[str, Location, list[str]]] = {}

    def section(self, line: str, loc: Location) -> None:
        """A ``[group]``, ``[group:vars]`` or ``[group:children]`` header."""
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
                f"unknown section type ':{kind}' in [{line[1:].split(']', maxsplit=1)[0]}]",
                Location(self.filename, loc.line, loc.column + len(group) + 2),
                hint="use [group], [group:vars] or [group:children]",
            )
        builder, pending = self.builder, self.pending
        if group not in builder.groups and kind == "vars" and group not in pending:
            pending[group] = ("vars", loc, [])
        if group in pending and kind != "vars":
            waiting_kind, _where, parents = pending.pop(group)
            builder.add_group(group, loc)
            for parent in parents if waiting_kind == "children" else ():
                builder.add_child(parent, group, loc)
        builder.add_group(group, loc)
        self.group, self.state = group, kind
        if kind == "vars":
            self.vars_seen.setdefault(group, loc)

    def child(self, line: str, loc: Location) -> None:
        """A group name in ``[group:children]``."""
        group = self.group
        child = line.split("#", 1)[0].split(";", 1)[0].strip()
        if not child or len(child.split()) != 1:
            raise InputError(f"expected one group name per line in [{group}:children], got {line!r}", loc)
        if child in self.builder.groups:
            self.builder.add_child(group, child, loc)
        elif child in self.pending:
            self.pending[child][2].append(group)
        else:
            self.pending[child] = ("children", loc, [group])

    def variable(self, line: str, loc: Location) -> None:
        """A ``key=value`` line in ``[group:vars]``: everything after ``=`` is the value."""
        group = self.group
        if "=" not in line:
            raise InputError(
                f"expected key=value in [{group}:vars], got {line!r}", loc, hint="write one key=value per line"
            )
        key, value = (part.strip() for part in line.split("=", 1))
        if not key:
            raise InputError("empty variable name", loc)
        self.builder.set_group_var(group, key, parse_value(value), loc)
        register_secrets({key: self.builder.groups[group].vars.get(key)})

    def finish(self) -> None:
        """Groups named but never declared are errors; groups with variables and nothing else, warnings."""
        for name, (waiting_kind, where, parents) in self.pending.items():
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
        for group_name, loc in self.vars_seen.items():
            entry = self.builder.groups[group_name]
            if group_name not in ("all", "ungrouped") and not entry.hosts and not entry.children and not entry.parents:
                self.builder.warnings.append(
                    f"{loc}: group '{group_name}' has variables but no hosts and no child groups"
                )


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
