"""The loaded inventory: hosts, groups and variables merged with Ansible's precedence.

Variable precedence for a host, lowest first (Ansible's documented order for inventory sources):

1. inventory-file vars of group ``all``
2. inventory-file vars of every other group of the host, sorted by depth (parents before children), then
   ``ansible_group_priority`` (default 1), then name
3. ``group_vars/all`` (per inventory source, in ``-i`` order)
4. ``group_vars/<group>`` for the host's groups (per source; within a source in the order of 2.)
5. inventory-file host vars (a host listed several times: later lines win)
6. ``host_vars/<host>`` (per source)

Values replace whole keys (Ansible's default ``hash_behaviour=replace``). Nothing is templated here: host vars
are rendered per host at run time by ``orchestrator.templating``.
"""

from __future__ import annotations

import copy
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import InputError, Location
from orchestrator.inventory._util import did_you_mean
from orchestrator.inventory.builder import InventoryBuilder
from orchestrator.inventory.magic import magic_host_vars
from orchestrator.inventory.patterns import Selection, match, select
from orchestrator.inventory.vars_dirs import VarsDir


@dataclass(frozen=True)
class Group:
    name: str
    hosts: tuple[str, ...]  # direct members, inventory order (``all`` lists none: every host is in it)
    children: tuple[str, ...]
    parents: tuple[str, ...]
    vars: Mapping[str, Any]  # inventory-file vars, then group_vars/ files (read-only)
    depth: int  # 0 for all, 1 for its children, …
    priority: int  # ansible_group_priority
    location: Location | None


@dataclass(frozen=True)
class Host:
    name: str
    groups: tuple[str, ...]  # direct groups
    vars: Mapping[str, Any]  # inventory-file host vars, then host_vars/ files (read-only)
    location: Location
    source: str  # the inventory file that first listed it


@dataclass(frozen=True)
class SourceVars:
    source: str
    group_vars: VarsDir | None
    host_vars: VarsDir | None


VarsFiles = dict[str, list[dict[str, Any]]]


def _vars_files(
    builder: InventoryBuilder, source_vars: list[SourceVars], warnings: list[str]
) -> tuple[VarsFiles, VarsFiles]:
    """group_vars/ and host_vars/ values per group and per host, in source order; a warning for each file that
    names no group or host of the inventory."""
    group_vars_files: VarsFiles = {g: [] for g in builder.groups}
    host_vars_files: VarsFiles = {h: [] for h in builder.hosts}
    for sv in source_vars:
        for vdir, known, target, kind in (
            (sv.group_vars, builder.groups, group_vars_files, "group"),
            (sv.host_vars, builder.hosts, host_vars_files, "host"),
        ):
            if vdir is None:
                continue
            for name, values in vdir.entities.items():
                if name in known:
                    target[name].append(values)
                    continue
                where = vdir.files[name][0] if vdir.files.get(name) else vdir.path / name
                hint = did_you_mean(name, known)
                warnings.append(
                    f"{where}: no {kind} named '{name}' in the inventory, so these variables are not used"
                    + (f" — {hint}" if hint else "")
                )
    return group_vars_files, host_vars_files


def _groups(builder: InventoryBuilder, group_vars_files: VarsFiles, depths: dict[str, int]) -> dict[str, Group]:
    """Every group, its inventory variables overridden by its group_vars files."""
    groups: dict[str, Group] = {}
    for name, entry in builder.groups.items():
        merged: dict[str, Any] = dict(entry.vars)
        for values in group_vars_files[name]:
            merged.update(values)
        groups[name] = Group(
            name=name,
            hosts=() if name == "all" else tuple(entry.hosts),
            children=tuple(entry.children),
            parents=tuple(entry.parents),
            vars=types.MappingProxyType(merged),
            depth=depths[name],
            priority=entry.priority,
            location=entry.location,
        )
    return groups


def _hosts(builder: InventoryBuilder, host_vars_files: VarsFiles) -> dict[str, Host]:
    """Every host, its inventory variables overridden by its host_vars files."""
    hosts: dict[str, Host] = {}
    for name, host_entry in builder.hosts.items():
        own: dict[str, Any] = dict(host_entry.vars)
        for values in host_vars_files[name]:
            own.update(values)
        hosts[name] = Host(
            name, tuple(host_entry.groups), types.MappingProxyType(own), host_entry.location, host_entry.source
        )
    return hosts


class Inventory:
    """Immutable once loaded. ``load_inventory()`` builds it."""

    def __init__(self, builder: InventoryBuilder, source_vars: list[SourceVars]) -> None:
        self.sources: tuple[str, ...] = tuple(builder.sources)
        warnings = list(builder.warnings)
        _reconcile(builder)
        self._inventory_group_vars = {name: dict(g.vars) for name, g in builder.groups.items()}
        self._inventory_host_vars = {name: dict(h.vars) for name, h in builder.hosts.items()}
        self.hosts: tuple[str, ...] = tuple(builder.hosts)
        self._index = {name: i for i, name in enumerate(self.hosts)}
        depths = _depths(builder)

        group_vars_files, host_vars_files = _vars_files(builder, source_vars, warnings)
        self.warnings: tuple[str, ...] = tuple(warnings)
        groups = _groups(builder, group_vars_files, depths)
        self.groups: Mapping[str, Group] = types.MappingProxyType(groups)
        self._host_objs: dict[str, Host] = _hosts(builder, host_vars_files)
        self._group_hosts: dict[str, tuple[str, ...]] = self._hosts_per_group()
        self._host_groups: dict[str, tuple[str, ...]] = {
            name: self._groups_of(host) for name, host in self._host_objs.items()
        }
        self._merged: dict[str, dict[str, Any]] = {}
        for name in self.hosts:
            self._merged[name] = self._merge_host(name, group_vars_files, source_vars)

    def _hosts_per_group(self) -> dict[str, tuple[str, ...]]:
        """Descendants' hosts per group, in Ansible's order (Group.get_hosts): the group's own hosts, then its
        children's, then grandchildren's …, each level in definition order, a host where it is first seen."""
        group_hosts: dict[str, tuple[str, ...]] = {}
        for name in self.groups:
            members: dict[str, None] = {}
            for g in self._descendants_by_level(name):
                members.update(dict.fromkeys(self.groups[g].hosts))
            group_hosts[name] = tuple(members)
        all_members = dict.fromkeys(group_hosts["all"])
        all_members.update(dict.fromkeys(self.hosts))
        group_hosts["all"] = tuple(all_members)
        return group_hosts

    def _groups_of(self, host: Host) -> tuple[str, ...]:
        """The groups ``host`` is in, directly or through a child group (``all`` left out), sorted."""
        found: set[str] = set()
        for g in host.groups:
            found.add(g)
            found.update(self._ancestors(g))
        found.discard("all")
        return tuple(sorted(found))

    # ------------------------------------------------------------------------------------------- queries

    def host(self, name: str) -> Host:
        try:
            return self._host_objs[name]
        except KeyError:
            raise self._unknown_host(name) from None

    def host_vars(self, name: str) -> dict[str, Any]:
        """Every variable the inventory gives ``name`` (merged by precedence), plus the magic variables
        ``inventory_hostname``, ``inventory_hostname_short``, ``group_names``, ``groups``, ``inventory_file``
        and ``inventory_dir``. A fresh copy: callers may change it."""
        if name not in self._merged:
            raise self._unknown_host(name)
        out = copy.deepcopy(self._merged[name])
        out.update(self.magic_vars(name))
        return out

    def inventory_vars(self, name: str) -> dict[str, Any]:
        """The merged variables of ``name`` without magic variables (what ``--list`` and ``--host`` show)."""
        if name not in self._merged:
            raise self._unknown_host(name)
        return copy.deepcopy(self._merged[name])

    def magic_vars(self, name: str) -> dict[str, Any]:
        return magic_host_vars(name, self._host_groups[name], self.groups_dict(), self.inventory_file(name))

    def inventory_file(self, name: str) -> str | None:
        """The inventory source ``name`` came from (the magic ``inventory_file``), if any."""
        source = self.host(name).source
        return str(Path(source)) if source else None

    def groups_dict(self) -> dict[str, list[str]]:
        """The ``groups`` magic variable: every group name → all its hosts (children included)."""
        return {name: list(hosts) for name, hosts in self._group_hosts.items()}

    def group_hosts(self, group: str) -> list[str]:
        """Hosts of ``group`` and of its descendants, in Ansible's order: the group's own, then its children's
        (breadth first, each group's in definition order)."""
        if group not in self.groups:
            hint = did_you_mean(group, self.groups)
            raise InputError(f"unknown group '{group}'", hint=hint)
        return list(self._group_hosts[group])

    def host_groups(self, name: str) -> list[str]:
        """The ``group_names`` of a host: its groups and their ancestors except ``all``, sorted."""
        if name not in self._host_groups:
            raise self._unknown_host(name)
        return list(self._host_groups[name])

    def select(self, pattern: str | None, *, limit: str | None = None, location: Location | None = None) -> list[str]:
        """Hosts matching an Ansible host pattern (and ``limit``, when given), in inventory order.

        Raises ``InputError`` (with a did-you-mean) when nothing matches and some term named no known host or
        group. An existing but empty group, or an empty intersection, just gives an empty list."""
        return select(self, pattern, limit=limit, location=location)

    def match(self, pattern: str | None, *, limit: str | None = None) -> Selection:
        """Like ``select`` but never raises for unmatched terms: reports them instead."""
        return match(self, pattern, limit=limit)

    def to_list_json(self, limit: str | None = None, *, export: bool = False) -> dict[str, Any]:
        """The structure ``ansible-inventory --list`` prints (``--export`` keeps group vars on the groups)."""
        from orchestrator.inventory.output import list_json

        return list_json(self, limit=limit, export=export)

    def graph(
        self, pattern: str = "all", *, show_vars: bool = False, limit: str | None = None, mask_secrets: bool = False
    ) -> str:
        """The tree ``ansible-inventory --graph [GROUP] [--vars]`` prints."""
        from orchestrator.inventory.output import graph

        return graph(self, pattern, show_vars=show_vars, limit=limit, mask_secrets=mask_secrets)

    def index_of(self, host: str) -> int:
        return self._index[host]

    # ------------------------------------------------------------------------------------------- internals

    def _unknown_host(self, name: str) -> InputError:
        return InputError(f"unknown host '{name}'", hint=did_you_mean(name, self.hosts))

    def _descendants_by_level(self, name: str) -> list[str]:
        """``name``, its children, their children … (breadth first, each group once, definition order)."""
        ordered = [name]
        seen = {name}
        level = [name]
        while level:
            following: list[str] = []
            for g in level:
                for child in self.groups[g].children:
                    if child not in seen:
                        seen.add(child)
                        ordered.append(child)
                        following.append(child)
            level = following
        return ordered

    def _descendants(self, name: str) -> list[str]:
        return self._walk(name, "children")

    def _ancestors(self, name: str) -> list[str]:
        return self._walk(name, "parents")

    def _walk(self, name: str, relation: str) -> list[str]:
        out: list[str] = []
        seen: set[str] = set()
        queue = list(getattr(self.groups[name], relation))
        while queue:
            g = queue.pop()
            if g not in seen:
                seen.add(g)
                out.append(g)
                queue.extend(getattr(self.groups[g], relation))
        return out

    def sorted_groups(self, names: list[str] | tuple[str, ...]) -> list[str]:
        """Ansible's group order for precedence: depth, then ansible_group_priority, then name."""
        return sorted(names, key=lambda g: (self.groups[g].depth, self.groups[g].priority, g))

    def _merge_host(
        self, name: str, group_vars_files: dict[str, list[dict[str, Any]]], source_vars: list[SourceVars]
    ) -> dict[str, Any]:
        ordered = self.sorted_groups(self._host_groups[name])
        builder_vars = {g: self._inventory_group_vars[g] for g in ("all", *ordered)}
        merged: dict[str, Any] = {}
        merged.update(builder_vars["all"])
        for g in ordered:
            merged.update(builder_vars[g])
        for sv in source_vars:
            if sv.group_vars is not None and "all" in sv.group_vars.entities:
                merged.update(sv.group_vars.entities["all"])
        for sv in source_vars:
            if sv.group_vars is None:
                continue
            for g in ordered:
                if g in sv.group_vars.entities:
                    merged.update(sv.group_vars.entities[g])
        merged.update(self._inventory_host_vars[name])
        for sv in source_vars:
            if sv.host_vars is not None and name in sv.host_vars.entities:
                merged.update(sv.host_vars.entities[name])
        return merged


def _reconcile(builder: InventoryBuilder) -> None:
    """Ansible's finishing touches: top-level groups become children of ``all``; hosts in no group other than
    ``all`` go to ``ungrouped``; hosts that are also elsewhere leave ``ungrouped``."""
    all_group = builder.groups["all"]
    for name, entry in builder.groups.items():
        if name != "all" and not entry.parents:
            entry.parents.append("all")
            if name not in all_group.children:
                all_group.children.append(name)
    ungrouped = builder.groups["ungrouped"]
    for name, host in builder.hosts.items():
        real = [g for g in host.groups if g not in ("all", "ungrouped")]
        if real:
            if "ungrouped" in host.groups:
                host.groups.remove("ungrouped")
                ungrouped.hosts.remove(name)
        elif "ungrouped" not in host.groups:
            host.groups.append("ungrouped")
            ungrouped.hosts.append(name)
        if "all" in host.groups:
            host.groups.remove("all")
    all_group.hosts.clear()


def _depths(builder: InventoryBuilder) -> dict[str, int]:
    """Longest distance from ``all`` (Ansible's group depth), computed without recursion."""
    depths: dict[str, int] = {"all": 0}
    for start in builder.groups:
        stack = [start]
        while stack:
            name = stack[-1]
            if name in depths:
                stack.pop()
                continue
            parents = builder.groups[name].parents or ["all"]
            pending = [p for p in parents if p not in depths and p not in stack]
            if pending:
                stack.extend(pending)
                continue
            depths[name] = 1 + max(depths.get(p, 0) for p in parents)
            stack.pop()
    return depths
