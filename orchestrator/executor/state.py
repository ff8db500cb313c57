"""Per-host state (and, re-exported, the run-wide ``RunOptions``).

``RunOptions`` is what the user asked for (frozen). ``HostState`` belongs to one host: only the thread running
that host touches it, except ``snapshot()``, which the runner may call when it must finish a host early
(Ctrl-C, time budget), and ``hostvars()``, which other hosts' threads read. Results in it are frozen
``HostTaskResult`` values, appended in order.

When the host has finished its last play, ``compact()`` replaces its variables by a ``FrozenVars`` (one
compressed blob, decoded when another PC reads ``hostvars[this_pc]``) and lets go of its result list and licence
table (the runner's ``HostResult`` holds them): a finished PC then costs a few hundred bytes instead of tens of
kilobytes of live Python objects until the run ends.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from orchestrator.executor.options import RunOptions
from orchestrator.results.models import FailureKind, HostTaskResult, LicenceRecord, TaskStatus, utcnow
from orchestrator.results.packed import Packer
from orchestrator.templating import FrozenVars, freeze_vars
from orchestrator.transport.connection import connection_spec
from orchestrator.transport.winrm import WinRMConnection

__all__ = ["HostState", "RunOptions"]


# A PC has one Windows (or Windows Server) licence with a key: installing a GVLK over a retail/MAK key gives the
# same product a new ActivationID, and the re-read must replace the old record, not sit beside it.
SINGLE_LICENCE_PRODUCTS = frozenset({"windows", "server"})


def licence_slot(lic: LicenceRecord) -> tuple[str, str]:
    """Key of a licence in the PC's latest-known licence table."""
    if lic.product in SINGLE_LICENCE_PRODUCTS:
        return (lic.product, "")
    return (lic.product, lic.activation_id or lic.name)


def facts_namespace(facts: Mapping[str, Any]) -> dict[str, Any]:
    """``ansible_facts``: the gathered facts without their ``ansible_`` prefix (``ansible_facts.os_family``)."""
    return {k.removeprefix("ansible_"): v for k, v in facts.items()}


class HostState:
    def __init__(self, name: str, inventory_vars: Mapping[str, Any], groups: tuple[str, ...]) -> None:
        self.name = name
        self.inventory_vars = dict(inventory_vars)
        self.groups = groups
        self.facts: dict[str, Any] = {}
        self.scope: dict[str, Any] = {}  # set_fact and registered variables
        self.notified: set[str] = set()
        self.results: list[HostTaskResult] = []
        self.licences: dict[tuple[str, str], LicenceRecord] = {}
        self.stopped: FailureKind | None = None  # why the host stopped running tasks (unreachable, auth, …)
        self.ended_play: object | None = None  # the play `meta: end_host`/`end_play` ended for this host
        self.failed = False
        self.interrupted = False
        self.started: datetime = utcnow()
        self.started_mono: float | None = None
        self.deadline: float | None = None
        self.budget: float | None = None
        self.conn: WinRMConnection | None = None
        self.finished = False
        self.address: str | None = None
        self.frozen: FrozenVars | None = None  # set by compact(): the variables, once the host is done
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return self.stopped is None and not self.failed and not self.interrupted

    def begin(self, budget: float) -> None:
        if self.started_mono is None:
            self.started = utcnow()
            self.started_mono = time.monotonic()
            self.budget = budget
            self.deadline = self.started_mono + budget

    def add(self, result: HostTaskResult) -> bool:
        """Keep a result; False when the host was already finished by the runner (abandoned)."""
        with self._lock:
            if self.finished:
                return False
            self.results.append(result)
            for lic in result.licences:
                self.licences[licence_slot(lic)] = lic
        if result.status is TaskStatus.FAILED and not (result.ignored or result.rescued):
            self.failed = True
        return True

    def finish(self) -> tuple[HostTaskResult, ...] | None:
        """Mark the host finished and return its results, once; None if it was already finished."""
        with self._lock:
            if self.finished:
                return None
            self.finished = True
            return tuple(self.results)

    def set_facts(self, facts: Mapping[str, Any]) -> None:
        with self._lock:
            self.facts.update(facts)

    def set_var(self, name: str, value: Any) -> None:
        with self._lock:
            self.scope[name] = value

    def update_vars(self, values: Mapping[str, Any]) -> None:
        with self._lock:
            self.scope.update(values)

    def vars_snapshot(self) -> dict[str, Any]:
        """Inventory vars, facts and set_fact/registered vars, copied under the lock (for ``hostvars``)."""
        with self._lock:
            if self.frozen is not None:
                return self.frozen.thaw()
            return self._vars()

    def hostvars(self) -> Mapping[str, Any]:
        """What ``hostvars[this host]`` shows: a copy of the live variables, or the frozen ones once compacted."""
        with self._lock:
            return self.frozen if self.frozen is not None else self._vars()

    def _vars(self) -> dict[str, Any]:
        return {**self.inventory_vars, **self._own_vars()}

    def _own_vars(self) -> dict[str, Any]:
        """Facts (and their ``ansible_facts`` namespace), then set_fact/registered vars: what the host gathered."""
        out = dict(self.facts)
        if self.facts:
            out["ansible_facts"] = facts_namespace(self.facts)
        out.update(self.scope)
        return out

    def compact(self, packer: Packer) -> bool:
        """Freeze a finished host's variables (see the module's doc) and drop what only a running host needs.
        The inventory variables stay as they are (their values are shared with the inventory and other PCs).
        Call it from the host's own thread once no task of it can run any more. False (nothing changed) when the
        host is not finished or a value cannot be frozen: the live form then stays, with the same meaning."""
        with self._lock:
            if not self.finished or self.frozen is not None:
                return self.frozen is not None
            frozen = freeze_vars(self.inventory_vars, self._own_vars(), packer)
            if frozen is None:
                return False
            self.frozen = frozen
            self.facts, self.scope = {}, {}
            self.results, self.licences, self.notified = [], {}, set()
            return True

    def snapshot(self) -> tuple[HostTaskResult, ...]:
        with self._lock:
            return tuple(self.results)

    def connection(
        self,
        render: Callable[[Any], Any],
        cancel: threading.Event,
        password: str | None,
        extra_vars: Iterable[str] = (),
        defaults: Mapping[str, Any] | None = None,
    ) -> WinRMConnection:
        """The host's one connection, created on first use from its (templated) connection variables: the
        inventory's, those set by the play, and ``-e`` ones (which win, as in Ansible, through ``render``)."""
        if self.conn is None:
            keys = [k for k in self.inventory_vars if k.startswith(("ansible_", "kmsfleet_"))]
            keys += [k for k in self.scope if k.startswith(("ansible_", "kmsfleet_")) and k not in keys]
            keys += [k for k in extra_vars if k.startswith(("ansible_", "kmsfleet_")) and k not in keys]
            conn_vars = {k: render("{{ " + k + " }}") for k in keys}
            for key, value in (defaults or {}).items():
                # Ansible: connection variables (ansible_user …) win over play keywords (remote_user) and
                # ansible.cfg, which only fill in what the host leaves unset
                if value is not None and key not in conn_vars:
                    conn_vars[key] = render(value)
            if password is not None and "ansible_password" not in conn_vars:
                conn_vars["ansible_password"] = password
            spec = connection_spec(self.name, conn_vars)
            if self.budget is not None:  # the budget the runner gave this host (--host-timeout or the variable)
                spec = dataclasses.replace(spec, budget=self.budget)
            self.address = spec.address
            self.conn = WinRMConnection(spec, deadline=self.deadline, cancel=cancel)
        return self.conn

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()
