"""``kmsfleet run --processes N``: one run's PCs spread over N worker processes on this machine (every core).

Python's threads share one interpreter lock, so a run that makes thousands of WS-Management requests is bound to
one core by the CPU each request costs (XML, NTLM sealing, HTTP parsing). Here the PCs are dealt round-robin
into N shards; each shard runs in a worker process started with ``spawn`` (no fork of a threaded process) and
runs the usual ``Runner`` on the compiled plan (frozen dataclasses, pickled to it) with ``limit`` = its shard and
``forks`` / N threads. Its reporter events are streamed back over one queue to this process, which alone talks
to the run's reporters: the history writer and the terminal see the same events as in a single-process run, in
the order they happen. The run's start (every targeted PC, pending) and end are reported here, once.

Limits: plays whose PCs depend on each other (``serial``, ``max_fail_percentage``, ``any_errors_fatal``) need all
PCs in one process and are refused (``check_shardable``); the magic variables ``play_hosts``/``ansible_play_hosts``
and ``hostvars`` of other PCs name the PCs of the worker's shard only.

Ctrl-C: workers ignore SIGINT (set before they are started, so none is lost in their start-up); this process
catches it, sets the shared stop event, and the workers' runners stop as a single run does (in-flight PCs are
interrupted, PCs not started are "not run"); their results are kept. A worker that dies leaves its unfinished
PCs failed with the reason, the others go on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import queue
import signal
import threading
import time
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.reduction import ForkingPickler
from typing import Any

from orchestrator.errors import InputError
from orchestrator.executor.engine import PlayVars
from orchestrator.executor.plan import Plan
from orchestrator.executor.reporter import Reporter
from orchestrator.executor.runner import InventoryView, Runner, _interrupts_held, play_targets, targeted_hosts
from orchestrator.executor.state import RunOptions
from orchestrator.redact import (
    register_digests,
    register_secret_name,
    register_secrets,
    registered_digests,
    registered_secrets,
)
from orchestrator.results.models import HostResult, HostStatus, HostTaskResult, RunInfo, RunResult, utcnow


def _mappingproxy(data: dict[Any, Any]) -> types.MappingProxyType[Any, Any]:
    return types.MappingProxyType(data)


def _reduce_mappingproxy(m: types.MappingProxyType[Any, Any]) -> tuple[Any, tuple[dict[Any, Any]]]:
    return _mappingproxy, (dict(m),)


# results freeze their mappings (``models.freeze``): let them travel between processes as they are
ForkingPickler.register(types.MappingProxyType, _reduce_mappingproxy)

POLL_S = 0.25
JOIN_GRACE_S = 30.0
REAP_GRACE_S = 2.0


def resolve_processes(value: str | int) -> int:
    """``auto`` → the CPUs this process may run on; otherwise a positive number."""
    if isinstance(value, int):
        count = value
    elif value.strip().lower() == "auto":
        try:
            count = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            count = os.cpu_count() or 1
    else:
        try:
            count = int(value)
        except ValueError:
            raise InputError(f"--processes {value!r}: give a number of processes or 'auto'") from None
    if not 1 <= count <= 256:
        raise InputError(f"--processes {value!r}: give a number from 1 to 256, or 'auto'")
    return count


def check_shardable(plan: Plan) -> None:
    """Refuse plays whose PCs depend on each other: they need one process."""
    for play in plan.plays:
        why = None
        if play.serial:
            why = "serial"
        elif play.max_fail_percentage is not None:
            why = "max_fail_percentage"
        elif play.any_errors_fatal:
            why = "any_errors_fatal"
        if why:
            raise InputError(
                f"play '{play.name}' uses {why}: its PCs depend on each other and must run in one process",
                hint="run it without --processes (or with --processes 1)",
            )


def shard(hosts: Sequence[str], count: int) -> list[list[str]]:
    """Round-robin: neighbouring PCs (one classroom) land in different processes."""
    return [s for s in (list(hosts[i::count]) for i in range(count)) if s]


class _QueueReporter:
    """A worker's reporter: play/task/host events go to the parent; run start and end are the parent's."""

    def __init__(self, events: Any, index: int) -> None:
        self.events = events
        self.index = index

    def run_started(self, info: RunInfo, hosts: Sequence[str]) -> None:
        pass

    def play_started(self, name: str, hosts: Sequence[str]) -> None:
        self.events.put((self.index, "play", name))

    def task_done(self, result: HostTaskResult) -> None:
        self.events.put((self.index, "task", result))

    def host_done(self, result: HostResult) -> None:
        self.events.put((self.index, "host", result))

    def run_done(self, result: RunResult) -> None:
        pass


@dataclass(frozen=True)
class ShardInventory:
    """What a worker's runner needs from the inventory, for its shard only, in a form that pickles: each PC's
    variables (as the single-process run sees them), its groups, the PCs each play's pattern selects, and the
    groups (the magic ``groups``). ``hostvars`` in a worker knows the PCs of its shard."""

    hosts: tuple[str, ...]
    host_vars: Mapping[str, Mapping[str, Any]]
    groups_of: Mapping[str, tuple[str, ...]]
    selections: Mapping[str, list[str]]
    groups: Mapping[str, Sequence[str]]

    def view(self) -> InventoryView:
        return InventoryView(
            hosts=self.hosts,
            host_vars=lambda h: dict(self.host_vars[h]),
            groups_of=lambda h: self.groups_of[h],
            select=lambda pattern: list(self.selections.get(pattern, ())),
            groups=self.groups,
        )


def shard_inventory(plan: Plan, view: InventoryView, hosts: Sequence[str]) -> ShardInventory:
    mine = set(hosts)
    return ShardInventory(
        hosts=tuple(hosts),
        host_vars={h: view.host_vars(h) for h in hosts},
        groups_of={h: view.groups_of(h) for h in hosts},
        selections={p.hosts: [h for h in view.select(p.hosts) if h in mine] for p in plan.plays},
        groups=view.groups,
    )


@dataclass(frozen=True)
class _Job:
    plan: Plan
    inventory: ShardInventory
    info: RunInfo
    options: RunOptions
    play_vars: PlayVars | None  # a module-level function (pickled by name)
    secrets: tuple[str, ...]
    secret_names: tuple[str, ...]
    index: int
    digests: tuple[str, ...] = ()


def _adopt_secrets(job: _Job) -> None:
    """Mask in this process what the parent masks: its secrets, hex digests and secret names."""
    register_secrets(job.secrets)
    register_digests(job.digests)
    for name in job.secret_names:
        register_secret_name(name)


def _run_shard(job: _Job, reporter: Reporter, cancel: threading.Event) -> RunResult:
    _adopt_secrets(job)
    runner = Runner(
        job.plan,
        job.inventory.view(),
        job.info,
        job.options,
        reporter,
        limit_hosts=job.inventory.hosts,
        cancel=cancel,
        play_vars=job.play_vars,
    )
    return runner.run()


def _worker(job: _Job, events: Any, stop: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; it sets ``stop``
    cancel = threading.Event()

    parent = os.getppid()

    def relay() -> None:  # the parent's stop, or the parent gone (killed): this shard stops as after Ctrl-C
        while not stop.wait(1.0) and os.getppid() == parent:
            pass
        cancel.set()

    threading.Thread(target=relay, name="kmsfleet-stop-relay", daemon=True).start()
    try:
        result = _run_shard(job, _QueueReporter(events, job.index), cancel)
    except BaseException as exc:  # told to the parent, which fails this shard's unfinished PCs with it
        events.put((job.index, "error", f"{type(exc).__name__}: {exc}"))
    else:
        events.put((job.index, "result", result.interrupted))
    finally:
        events.close()
        events.join_thread()


class _Pump:
    """The parent's side of the event stream: one event per call, passed on to the run's reporters."""

    def __init__(
        self,
        reporter: Reporter,
        targets: Sequence[Sequence[str]],
        procs: list[Any],
        ended: dict[int, bool | str],
        results: dict[str, HostResult],
    ) -> None:
        self.reporter = reporter
        self.targets = targets
        self.procs = procs
        self.ended = ended
        self.results = results
        self.announced = 0  # plays announced to the reporters
        self.plays_seen = [0] * len(procs)  # plays each worker has started
        self.dead_since: float | None = None

    def one(self, events: Any, stop: Any, cancel: threading.Event | None) -> None:
        try:
            index, kind, value = events.get(timeout=POLL_S)
        except queue.Empty:
            if cancel is not None and cancel.is_set():
                stop.set()
            self._reap()
            return
        if kind == "play":  # each play once, when the first worker starts it
            self.plays_seen[index] += 1
            if self.plays_seen[index] > self.announced:
                self.announced = self.plays_seen[index]
                hosts = self.targets[self.announced - 1] if self.announced <= len(self.targets) else []
                self.reporter.play_started(value, [h for h in hosts if h not in self.results])
        elif kind == "task":
            self.reporter.task_done(value)
        elif kind == "host":
            self.results[value.host] = value
            self.reporter.host_done(value)
        else:
            self.ended[index] = value if kind == "error" else bool(value)

    def _reap(self) -> None:
        """A worker gone without its last word (killed, crashed): its shard ends after a moment's grace."""
        gone = [i for i, p in enumerate(self.procs) if i not in self.ended and not p.is_alive()]
        if not gone:
            self.dead_since = None
            return
        self.dead_since = self.dead_since or time.monotonic()
        if time.monotonic() - self.dead_since > REAP_GRACE_S:  # its last events may still be in the pipe
            for i in gone:
                self.ended[i] = f"worker process exited with code {self.procs[i].exitcode}"


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Children inherit an ignored SIGINT through exec, so Ctrl-C during their start-up cannot kill them."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: nothing to hold
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclass(frozen=True)
class ProcessEngine:
    """``--processes N``: the run's PCs over N worker processes (an ``executor.engine.Engine``)."""

    processes: int
    options: RunOptions
    cancel: threading.Event | None = None
    play_vars: PlayVars | None = None  # a module-level function (pickled by name)

    def run(
        self, plan: Plan, view: InventoryView, info: RunInfo, reporter: Reporter, limit: Sequence[str] | None
    ) -> RunResult:
        """Each play's PCs (within ``limit``) dealt over the workers; see the module docstring."""
        targets = play_targets(plan, view.select, set(limit) if limit is not None else None)
        all_hosts = targeted_hosts(targets)
        shards = shard(all_hosts, self.processes)
        with _interrupts_held() as held:  # every targeted PC is recorded before Ctrl-C can cut in
            reporter.run_started(info, all_hosts)
        events, stop, procs = _start(self._jobs(plan, view, info, shards))
        if held:
            stop.set()
        pump = _Pump(reporter, targets, procs, {}, {})
        interrupted = _collect(pump, events, stop, self.cancel) | bool(held)
        interrupted = _settle(pump, shards) | interrupted | stop.is_set()
        result = RunResult(
            info=info,
            hosts=tuple(pump.results[h] for h in all_hosts if h in pump.results),
            finished=utcnow(),
            interrupted=interrupted,
        )
        reporter.run_done(result)
        return result

    def _jobs(self, plan: Plan, view: InventoryView, info: RunInfo, shards: Sequence[Sequence[str]]) -> list[_Job]:
        """One job per shard: the plan, the shard's inventory, ``forks`` shared out, this process's secrets."""
        secrets, names = registered_secrets()
        digests = registered_digests()
        forks = max(1, -(-self.options.forks // len(shards))) if shards else 1
        options = dataclasses.replace(self.options, forks=forks)
        return [
            _Job(plan, shard_inventory(plan, view, hosts), info, options, self.play_vars, secrets, names, i, digests)
            for i, hosts in enumerate(shards)
        ]


def _start(jobs: Sequence[_Job]) -> tuple[Any, Any, list[Any]]:
    """(event queue, stop event, processes): one ``spawn``-started worker per job, SIGINT ignored meanwhile."""
    ctx = multiprocessing.get_context("spawn")
    events: Any = ctx.Queue()
    stop = ctx.Event()
    procs = []
    with _sigint_ignored():
        for job in jobs:
            name = f"kmsfleet-shard-{job.index + 1}"
            proc = ctx.Process(target=_worker, args=(job, events, stop), name=name, daemon=True)
            proc.start()
            procs.append(proc)
    return events, stop, procs


def _collect(pump: _Pump, events: Any, stop: Any, cancel: threading.Event | None) -> bool:
    """Pass events on until every worker has ended; True when Ctrl-C arrived meanwhile."""
    interrupted = False
    while len(pump.ended) < len(pump.procs):
        try:
            pump.one(events, stop, cancel)
        except KeyboardInterrupt:  # Ctrl-C here (the workers ignore it): they stop as a single run does
            interrupted = True
            stop.set()
    for proc in pump.procs:
        proc.join(JOIN_GRACE_S)
    return interrupted


def _settle(pump: _Pump, shards: Sequence[Sequence[str]]) -> bool:
    """A shard whose worker failed or vanished: its PCs without a result fail with the reason. True when a
    shard reported its runner interrupted."""
    interrupted = False
    for i, outcome in pump.ended.items():
        if isinstance(outcome, str):
            for h in shards[i]:
                if h not in pump.results:
                    hr = HostResult(host=h, status=HostStatus.FAILED, msg=f"internal error: {outcome}")
                    pump.results[h] = hr
                    pump.reporter.host_done(hr)
        elif outcome:
            interrupted = True
    return interrupted
