"""Mutable collection of hosts, groups and their inventory-file variables while sources are parsed.

Loaders (YAML, INI, host lists) call ``add_group`` / ``add_host`` / ``add_child`` / ``set_*_var``; the result is
frozen into an ``Inventory`` by ``orchestrator.inventory.model``. Every entry remembers where it was first
defined so conflicts can name both places.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import InputError, Location
from orchestrator.inventory._util import check_entity_name

IMPLICIT_GROUPS = ("all", "ungrouped")


@dataclass
class HostEntry:
    name: str
    location: Location
    source: str
    vars: dict[str, Any] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)  # direct groups, in the order they were added


@dataclass
class GroupEntry:
    name: str
    location: Location | None
    vars: dict[str, Any] = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    priority: int = 1


class InventoryBuilder:
    def __init__(self) -> None:
        self.hosts: dict[str, HostEntry] = {}
        self.groups: dict[str, GroupEntry] = {name: GroupEntry(name, None) for name in IMPLICIT_GROUPS}
        self.groups["all"].children.append("ungrouped")
        self.groups["ungrouped"].parents.append("all")
        self.sources: list[str] = []
        self.warnings: list[str] = []

    # ------------------------------------------------------------------------------------------- groups

    def add_group(self, name: str, location: Location) -> GroupEntry:
        check_entity_name(name, "group", location)
        existing = self.groups.get(name)
        if existing is not None:
            if existing.location is None:
                existing.location = location
            return existing
        host = self.hosts.get(name)
        if host is not None:
            raise InputError(
                f"'{name}' is both a group and a host (the host is defined at {host.location})",
                location,
                hint="host patterns could not tell them apart: rename one of them",
            )
        entry = GroupEntry(name, location)
        self.groups[name] = entry
        return entry

    def add_child(self, parent: str, child: str, location: Location) -> None:
        if child == "all":
            raise InputError("'all' cannot be a child group: every group is already inside it", location)
        if parent == child:
            raise InputError(f"group '{child}' cannot be a child of itself", location)
        if child in self.ancestors(parent):
            raise InputError(
                f"making '{child}' a child of '{parent}' creates a loop ('{parent}' is already inside '{child}')",
                location,
            )
        p, c = self.groups[parent], self.groups[child]
        if child not in p.children:
            p.children.append(child)
        if parent not in c.parents:
            c.parents.append(parent)

    def ancestors(self, name: str) -> list[str]:
        out: list[str] = []
        stack = list(self.groups[name].parents) if name in self.groups else []
        while stack:
            g = stack.pop()
            if g in out:
                continue
            out.append(g)
            stack.extend(self.groups[g].parents)
        return out

    def set_group_var(self, group: str, key: str, value: Any, location: Location) -> None:
        if key == "ansible_group_priority":
            if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().isdigit():
                raise InputError(f"ansible_group_priority must be a whole number, not {value!r}", location)
            self.groups[group].priority = int(value)
            return
        self.groups[group].vars[key] = value

    # ------------------------------------------------------------------------------------------- hosts

    def add_host(
        self, name: str, location: Location, source: str, group: str | None, port: int | None = None
    ) -> HostEntry:
        """Add a host (or a group membership of a known one). A ``name:port`` port is kept only when the host is
        new, as Ansible does: a later ``pc01:5999`` line does not change a known host's ``ansible_port``."""
        check_entity_name(name, "host", location)
        entry = self.hosts.get(name)
        if entry is None:
            conflict = self.groups.get(name)
            if conflict is not None:
                where = f" (the group is defined at {conflict.location})" if conflict.location else ""
                raise InputError(
                    f"'{name}' is both a host and a group{where}",
                    location,
                    hint="host patterns could not tell them apart: rename one of them",
                )
            entry = HostEntry(name, location, source)
            if port is not None:
                entry.vars["ansible_port"] = port
            self.hosts[name] = entry
        # The group's host list and the host's group list are only ever appended together (here), so the
        # host's short group list answers "already a member?" without scanning the group's (possibly
        # 10,000-long) host list: a range like pc[1:10000] loads in linear, not quadratic, time.
        if group is not None and group not in entry.groups:
            self.groups[group].hosts.append(name)
            entry.groups.append(group)
        return entry

    def set_host_var(self, host: str, key: str, value: Any) -> None:
        self.hosts[host].vars[key] = value
