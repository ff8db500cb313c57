"""``ansible-inventory``-compatible views of an inventory: ``--list`` JSON and the ``--graph`` tree."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from orchestrator.errors import InputError
from orchestrator.inventory._util import did_you_mean
from orchestrator.redact import is_secret_name, redact

if TYPE_CHECKING:
    from orchestrator.inventory.model import Group, Inventory


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TEMPLATE_BODY = re.compile(r"\{\{(.*?)\}\}|\{%(.*?)%\}", re.DOTALL)


def _referenced(value: Any) -> set[str]:
    """Names a template value may read (every identifier inside its ``{{ }}``/``{% %}``: over-approximate)."""
    if isinstance(value, str):
        return {name for m in _TEMPLATE_BODY.finditer(value) for name in _IDENTIFIER.findall(m.group(0))}
    if isinstance(value, Mapping):
        return set().union(*(_referenced(v) for v in value.values())) if value else set()
    if isinstance(value, list | tuple):
        return set().union(*(_referenced(v) for v in value)) if value else set()
    return set()


def secret_names(variable_sets: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """Variable names holding secrets directly or indirectly: ``ansible_password: "{{ winrm_pw }}"`` makes
    ``winrm_pw`` secret too (and whatever ``winrm_pw``'s own template reads), across every host and group."""
    sets = list(variable_sets)
    values: dict[str, list[Any]] = {}
    for variables in sets:
        for key, value in variables.items():
            values.setdefault(str(key), []).append(value)
    found = {name for name in values if is_secret_name(name)}
    todo = list(found)
    while todo:
        name = todo.pop()
        for value in values.get(name, ()):
            for ref in _referenced(value):
                if ref in values and ref not in found:
                    found.add(ref)
                    todo.append(ref)
    return frozenset(found)


def inventory_secret_names(inventory: Inventory) -> frozenset[str]:
    """``secret_names`` over every host's and group's own variables."""
    sets: list[Mapping[str, Any]] = [inventory.host(h).vars for h in inventory.hosts]
    sets += [g.vars for g in inventory.groups.values()]
    return secret_names(sets)


def mask_secrets(inventory: Inventory, data: Any) -> Any:
    """``data`` (a ``--list``/``--host`` view) with direct and indirect secrets masked."""
    return redact(data, inventory_secret_names(inventory))


def list_json(inventory: Inventory, *, limit: str | None = None, export: bool = False) -> dict[str, Any]:
    """``{"_meta": {"hostvars": …}, "all": {"children": […]}, "<group>": {"hosts": […], "children": […]}}``.

    Children and hosts keep inventory order, as ansible-core does. Without ``export`` (Ansible's default)
    group variables are merged into each host's ``hostvars``; with it,
    ``hostvars`` hold only host-level variables and each group shows its own ``vars``. Empty keys and empty
    groups are left out, as Ansible does."""
    available = set(inventory.select(limit)) if limit else set(inventory.hosts)
    hostvars: dict[str, Any] = {}
    for host in inventory.hosts:
        if host not in available:
            continue
        values = dict(inventory.host(host).vars) if export else inventory.inventory_vars(host)
        if values:
            hostvars[host] = values
    out: dict[str, Any] = {"_meta": {"hostvars": hostvars}}
    seen: set[str] = set()
    stack = ["all"]
    while stack:
        name = stack.pop(0)
        if name in seen:
            continue
        seen.add(name)
        group = inventory.groups[name]
        entry: dict[str, Any] = {}
        if name != "all":
            entry["hosts"] = [h for h in group.hosts if h in available]
        entry["children"] = list(group.children)
        if export:
            entry["vars"] = _group_vars(group)
        entry = {k: v for k, v in entry.items() if v}
        if entry:
            out[name] = entry
        stack.extend(group.children)
    return out


def graph(
    inventory: Inventory,
    pattern: str = "all",
    *,
    show_vars: bool = False,
    limit: str | None = None,
    mask_secrets: bool = False,
) -> str:
    """The ``@group:`` / ``|--host`` tree, children and hosts in inventory order (as ansible-core 2.19 prints
    them); ``show_vars`` adds
    ``{name = value}`` lines (host vars merged, group vars as loaded)."""
    if pattern not in inventory.groups:
        hint = did_you_mean(pattern, inventory.groups)
        raise InputError(
            f"--graph takes a group name, and there is no group '{pattern}'",
            hint=hint or f"groups: {', '.join(sorted(inventory.groups))}",
        )
    available = set(inventory.select(limit)) if limit else None
    hidden = inventory_secret_names(inventory) if mask_secrets else frozenset()
    lines: list[str] = []

    def name(text: str, depth: int) -> str:
        return ("  |" * depth + "--" + text) if depth else text

    def show(values: dict[str, Any], depth: int) -> None:
        shown = redact(values, hidden) if mask_secrets else values
        for key in sorted(shown):
            lines.append(name(f"{{{key} = {shown[key]}}}", depth))

    def walk(group_name: str, depth: int, trail: tuple[str, ...]) -> None:
        group = inventory.groups[group_name]
        lines.append(name(f"@{group_name}:", depth))
        if group_name in trail:
            return
        for child in group.children:
            walk(child, depth + 1, (*trail, group_name))
        if group_name != "all":
            for host in group.hosts:
                if available is not None and host not in available:
                    continue
                lines.append(name(host, depth + 1))
                if show_vars:
                    show(inventory.inventory_vars(host), depth + 2)
        if show_vars:
            show(_group_vars(group), depth + 1)

    walk(pattern, 0, ())
    return "\n".join(lines)


def _group_vars(group: Group) -> dict[str, Any]:
    """A group's own variables as ansible-inventory shows them: ``ansible_group_priority`` is listed when it is
    not the default 1."""
    values = dict(group.vars)
    if group.priority != 1:
        values["ansible_group_priority"] = group.priority
    return values
