"""Ansible YAML (and JSON) inventories: ``all:`` / groups with ``hosts``, ``vars`` and ``children``."""

from __future__ import annotations

from typing import Any

from orchestrator.errors import InputError, Location
from orchestrator.hostranges import RangeError, expand
from orchestrator.inventory._util import did_you_mean
from orchestrator.inventory.builder import InventoryBuilder
from orchestrator.inventory.hostpattern import split_port
from orchestrator.varsfile import register_secrets
from orchestrator.yamlsource import LocatedDict, location_of

GROUP_KEYS = ("hosts", "vars", "children")


def parse_yaml_inventory(data: Any, filename: str, builder: InventoryBuilder) -> None:
    """Add the groups and hosts of one parsed YAML inventory document to ``builder``."""
    if data is None:
        builder.warnings.append(f"{filename}: the inventory is empty")
        return
    if not isinstance(data, dict):
        raise InputError(
            f"an inventory must be a mapping of groups, not {_kind(data)}",
            _where(data, filename),
            hint="start the file with 'all:' and list hosts under 'hosts:'",
        )
    if "plugin" in data:
        raise InputError(
            "inventory plugins are not supported",
            _key_loc(data, "plugin", filename),
            hint="write the hosts out (host ranges like pc[01:40] keep it short)",
        )
    for name, body in data.items():
        _parse_group(builder, str(name), body, None, _key_loc(data, name, filename), filename)


def _parse_group(
    builder: InventoryBuilder, name: str, body: Any, parent: str | None, loc: Location, filename: str
) -> None:
    builder.add_group(name, loc)
    if parent is not None:
        builder.add_child(parent, name, loc)
    if body is None:
        return
    if not isinstance(body, dict):
        hint = "a group holds 'hosts:', 'vars:' and 'children:'"
        if isinstance(body, list):
            hint = f"list the hosts under '{name}:' as 'hosts:' followed by one 'pc01:' line per host"
        raise InputError(f"group '{name}' must be a mapping, not {_kind(body)}", loc, hint=hint)
    for key in body:
        if key in GROUP_KEYS:
            continue
        key_loc = _key_loc(body, key, filename)
        suggestion = did_you_mean(str(key), GROUP_KEYS)
        if suggestion is None:
            suggestion = "a group may only contain 'hosts:', 'vars:' and 'children:'"
            if body[key] is None or isinstance(body[key], dict):
                suggestion += f" (is '{key}' a host? put it under 'hosts:'; a group? under 'children:')"
        raise InputError(f"unknown key '{key}' in group '{name}'", key_loc, hint=suggestion)
    for key, value in body.items():
        key_loc = _key_loc(body, key, filename)
        if key == "vars":
            _parse_group_vars(builder, name, value, key_loc, filename)
        elif key == "children":
            _parse_children(builder, name, value, key_loc, filename)
        else:
            _parse_hosts(builder, name, value, key_loc, filename)


def _parse_group_vars(builder: InventoryBuilder, group: str, value: Any, loc: Location, filename: str) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise InputError(f"'vars' of group '{group}' must be a mapping, not {_kind(value)}", loc)
    for var, val in value.items():
        var_loc = _key_loc(value, var, filename)
        if not var:
            raise InputError("empty variable name", var_loc)
        builder.set_group_var(group, var, val, var_loc)
    register_secrets(value)


def _parse_children(builder: InventoryBuilder, group: str, value: Any, loc: Location, filename: str) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        hint = "write each child group as 'name:' on its own line" if isinstance(value, list) else None
        raise InputError(f"'children' of group '{group}' must be a mapping, not {_kind(value)}", loc, hint=hint)
    for child, body in value.items():
        _parse_group(builder, str(child), body, group, _key_loc(value, child, filename), filename)


def _parse_hosts(builder: InventoryBuilder, group: str, value: Any, loc: Location, filename: str) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        hint = None
        if isinstance(value, list):
            hint = "'hosts' is a mapping: write 'pc01:' (with a colon) on each line instead of '- pc01'"
        raise InputError(f"'hosts' of group '{group}' must be a mapping, not {_kind(value)}", loc, hint=hint)
    for pattern, host_vars in value.items():
        host_loc = _key_loc(value, pattern, filename)
        if host_vars is not None and not isinstance(host_vars, dict):
            raise InputError(
                f"host '{pattern}' must map to its variables (or nothing), not {_kind(host_vars)}",
                host_loc,
                hint=f"write '{pattern}:' alone, or with 'ansible_host: …' indented below it",
            )
        base, port = split_port(str(pattern))
        try:
            names = expand(base)
        except RangeError as exc:
            raise InputError(f"bad host range: {exc}", host_loc) from None
        for host in names:
            builder.add_host(host, host_loc, filename, group, port)
            for var, val in (host_vars or {}).items():
                if not var:
                    raise InputError("empty variable name", _key_loc(host_vars, var, filename))
                builder.set_host_var(host, var, val)
        if host_vars:
            register_secrets(host_vars)


def _key_loc(mapping: Any, key: Any, filename: str) -> Location:
    if isinstance(mapping, LocatedDict):
        loc = mapping.key_locations.get(str(key))
        if loc is not None:
            return loc
    return location_of(mapping, []) or Location(filename)


def _where(data: Any, filename: str) -> Location:
    return getattr(data, "location", None) or Location(filename)


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the text {value!r}" if len(value) < 40 else "a text"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    return type(value).__name__
