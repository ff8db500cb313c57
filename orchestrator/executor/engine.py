"""One run's assembly and the engines that run it.

A run is the compiled plan, an *inventory view* and the run's identity (``RunInfo``); an ``Engine`` takes them
and returns the ``RunResult``, telling a ``Reporter`` as it goes. Three engines implement the protocol, chosen by
the caller (``api`` for the CLI, as nornir's runner plugins are chosen):

- ``ThreadEngine`` (here): the ``Runner`` in this process, ``forks`` threads;
- ``executor.multiproc.ProcessEngine``: ``--processes N``, the PCs dealt over N local worker processes;
- ``distributed.controller.DistributedEngine``: ``--distributed``, per-site Celery workers.

The inventory view is built here, once, for every engine and for a distributed worker's batch
(``assemble_view``): each host's variables plus the magic variables (``inventory.magic.magic_host_vars``,
the one builder of ``inventory_hostname``, ``group_names``, ``inventory_file`` … that ``Inventory`` uses
too). ``groups`` is ONE mapping shared by every host: a copy per host is O(hosts²) memory (210 MB of a
5,000-PC audit's 672 MB peak); nothing changes it (templates are sandboxed, read-only).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from orchestrator.executor.plan import Plan, PlaySpec
from orchestrator.executor.reporter import Reporter
from orchestrator.executor.runner import InventoryView, Runner
from orchestrator.executor.state import RunOptions
from orchestrator.inventory.magic import magic_host_vars
from orchestrator.inventory.model import Inventory
from orchestrator.results.models import RunInfo, RunResult

PlayVars = Callable[[PlaySpec, Mapping[str, Any]], Mapping[str, Any]]


class RunView(InventoryView):
    """The runner's ``InventoryView`` plus what an engine that ships hosts elsewhere needs: each host's own
    variables without the magic ones (``variables``), its ``group_names`` and the inventory file it came from."""

    def __init__(
        self,
        view: InventoryView,
        variables: Callable[[str], dict[str, Any]],
        group_names: Callable[[str], Sequence[str]],
        inventory_file: Callable[[str], str | None],
    ) -> None:
        super().__init__(view.hosts, view.host_vars, view.groups_of, view.select, view.groups)
        self.variables = variables
        self.group_names = group_names
        self.inventory_file = inventory_file


def assemble_view(
    hosts: Sequence[str],
    variables: Callable[[str], dict[str, Any]],
    group_names: Callable[[str], Sequence[str]],
    inventory_file: Callable[[str], str | None],
    select: Callable[[str], list[str]],
    groups: Mapping[str, Sequence[str]],
) -> RunView:
    """The one builder of an inventory view. ``variables(host)`` must return a fresh copy (callers may change
    what ``host_vars`` returns); ``groups`` is shared by every host's magic ``groups``."""

    def host_vars(host: str) -> dict[str, Any]:
        out = variables(host)
        out.update(magic_host_vars(host, group_names(host), groups, inventory_file(host)))
        return out

    def groups_of(host: str) -> tuple[str, ...]:
        return ("all", *group_names(host))

    view = InventoryView(hosts=hosts, host_vars=host_vars, groups_of=groups_of, select=select, groups=groups)
    return RunView(view, variables, group_names, inventory_file)


def inventory_view(inv: Inventory) -> RunView:
    """The view of a loaded inventory (every host, patterns evaluated on the whole inventory)."""

    return assemble_view(
        list(inv.hosts), inv.inventory_vars, inv.host_groups, inv.inventory_file, inv.select, inv.groups_dict()
    )


class Engine(Protocol):
    """Runs a compiled plan on the PCs of ``view`` (within ``limit`` when given) and returns its result; every
    play, task line and finished host is told to ``reporter`` as it happens, the run's start and end once."""

    def run(
        self, plan: Plan, view: RunView, info: RunInfo, reporter: Reporter, limit: Sequence[str] | None
    ) -> RunResult: ...


@dataclass(frozen=True)
class ThreadEngine:
    """The ``Runner`` in this process: ``options.forks`` threads."""

    options: RunOptions
    cancel: threading.Event | None = None
    play_vars: PlayVars | None = None

    def run(
        self, plan: Plan, view: RunView, info: RunInfo, reporter: Reporter, limit: Sequence[str] | None
    ) -> RunResult:
        runner = Runner(
            plan,
            view,
            info,
            self.options,
            reporter,
            limit_hosts=limit,
            cancel=self.cancel,
            play_vars=self.play_vars,
        )
        return runner.run()
