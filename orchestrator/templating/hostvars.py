"""``hostvars``: every PC's variables, each rendered in that PC's own context.

As in Ansible (ansible-core ``lib/ansible/vars/hostvars.py``): ``hostvars[host]`` is a view (``HostVarsVars``) over
the variables that host has on its own — its inventory variables and magic variables (``inventory_hostname``,
``group_names``, …), its facts, set_fact and registered results, and the ``-e`` extra variables, which win; no
play variables and no ``hostvars`` — and a value read from it is templated with those variables only. So with
``greeting: "hi {{ inventory_hostname }}"`` on every PC, ``hostvars['pc02'].greeting`` is "hi pc02" whichever PC
asks. The magic variables Ansible never templates (its ``STATIC_VARS``) are returned as they are. A variable the
host lacks is undefined (``| default`` works; using it fails with "'… HostVarsVars object' has no attribute 'x'",
the shape of Ansible's message).

Both mappings are ``LazyMapping``: the asking template passes them through untouched and ``has_template`` does not
walk them. Nothing is copied per PC: a host's view is made when a template reads ``hostvars[host]``, from what
``sources[host]`` gives at that moment (the host may still be running), and is not cached (views are read from
many threads, a templar is not thread-safe, and a cache would grow to one entry per PC).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from orchestrator.templating.templar import Templar
from orchestrator.templating.values import LazyMapping, _has_template

#: Ansible's ``STATIC_VARS`` of ``HostVarsVars`` (ansible-core ``constants.INTERNAL_STATIC_VARS``): returned as
#: they are, never templated (``groups`` names every PC: walking it for templates would cost O(PCs) per read).
STATIC_VARS = frozenset(
    {
        "ansible_version",
        "ansible_play_hosts",
        "ansible_dependent_role_names",
        "ansible_play_role_names",
        "ansible_role_names",
        "inventory_hostname",
        "inventory_hostname_short",
        "inventory_file",
        "inventory_dir",
        "groups",
        "group_names",
        "omit",
        "playbook_dir",
        "play_hosts",
        "role_names",
        "ungrouped",
    }
)


class HostVars(LazyMapping):
    """``hostvars``: ``sources[host]`` is the host's own variables, unrendered (Ansible's ``HostVars.raw_get``);
    ``extra`` (the ``-e`` variables) win over them."""

    def __init__(
        self,
        sources: Mapping[str, Mapping[str, Any]],
        *,
        extra: Mapping[str, Any] | None = None,
        base_dir: Path | None = None,
    ) -> None:
        self._sources = sources
        self._extra = extra or {}
        self._base_dir = base_dir

    def __getitem__(self, host: str) -> HostVarsVars:
        own = self._sources[host]
        return HostVarsVars(host, _Over(self._extra, own) if self._extra else own, self._base_dir)

    def __contains__(self, host: object) -> bool:
        return host in self._sources

    def __iter__(self) -> Iterator[str]:
        return iter(self._sources)

    def __len__(self) -> int:
        return len(self._sources)


class HostVarsVars(LazyMapping):
    """One host's variables; a value that is a template is rendered with this host's variables, on read."""

    def __init__(self, host: str, variables: Mapping[str, Any], base_dir: Path | None) -> None:
        self._host = host
        self._vars = variables
        self._base_dir = base_dir
        self._templar: Templar | None = None  # made on the first templated read (most reads need none)

    def __getitem__(self, key: str) -> Any:
        value = self._vars[key]
        if key in STATIC_VARS or not _has_template(value):
            return value
        if self._templar is None:
            self._templar = Templar(self._vars, base_dir=self._base_dir, context=f"hostvars of {self._host}")
        return self._templar.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._vars

    def __iter__(self) -> Iterator[str]:
        return iter(self._vars)

    def __len__(self) -> int:
        return len(self._vars)


class _Over(Mapping[str, Any]):
    """``over`` winning over ``under``, without copying either."""

    __slots__ = ("_over", "_under")

    def __init__(self, over: Mapping[str, Any], under: Mapping[str, Any]) -> None:
        self._over = over
        self._under = under

    def __getitem__(self, key: str) -> Any:
        if key in self._over:
            return self._over[key]
        return self._under[key]

    def __contains__(self, key: object) -> bool:
        return key in self._over or key in self._under

    def __iter__(self) -> Iterator[str]:
        yield from self._over
        yield from (k for k in self._under if k not in self._over)

    def __len__(self) -> int:
        return sum(1 for _ in self)
