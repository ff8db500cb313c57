"""The runner: plays in order, hosts in parallel (up to ``forks``), each host through its own pipeline.

Strategies:
- ``free`` (default): each host runs the whole play start to end; nobody waits for the slowest PC.
- ``linear``: lock-step; task N starts on any host only when every host finished task N-1.
``serial`` splits a play's hosts into batches. Between plays there is a barrier (as in Ansible).

Robustness:
- Each host has a time budget. A host still running past it (plus a short grace) is finished by the runner
  as ``unreachable`` (timed out) with every result it already produced; its stuck thread is abandoned.
- Ctrl-C (KeyboardInterrupt in the main thread) stops new work at once, gives in-flight requests ``grace``
  seconds, then finishes every host: ``interrupted`` for those in flight, ``not_run`` for those never started.
  Every result already gathered is kept and reported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import queue
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from concurrent.futures import Future, wait
from pathlib import Path
from typing import Any

from orchestrator import __version__
from orchestrator.errors import InputError
from orchestrator.executor.pipeline import HostPipeline, PlayRun, stop_exception
from orchestrator.executor.plan import BlockSpec, Plan, PlaySpec, TaskSpec
from orchestrator.executor.pool import WorkerPool
from orchestrator.executor.reporter import Reporter
from orchestrator.executor.state import HostState, RunOptions
from orchestrator.executor.taskresult import TaskEnd, TaskRef, task_result
from orchestrator.results.hostpack import KeptHosts
from orchestrator.results.models import (
    FailureKind,
    HostResult,
    HostStatus,
    HostTaskResult,
    RunInfo,
    RunResult,
    TaskStatus,
    utcnow,
)
from orchestrator.results.packed import Packer
from orchestrator.templating import HostVars
from orchestrator.transport import connection

DEFAULT_BUDGET = connection.DEFAULT_BUDGET  # a host's time budget when neither it nor --host-timeout sets one

WATCHDOG_GRACE = 5.0
SUPERVISE_TICK = 0.25  # seconds between budget checks of the running hosts
FACT_KEYS = (
    "ansible_os_name",
    "kmsfleet_os_caption",  # Win32_OperatingSystem.Caption as the PC names itself (e.g. in Chinese), from license_facts
    "ansible_distribution_version",
    "ansible_hostname",
    "kmsfleet_timezone",
    "kmsfleet_clock_offset_seconds",
    "kmsfleet_mac",
    "kmsfleet_office_versions",
    "kmsfleet_sql_services",
    "kmsfleet_is_server",
)


class InventoryView:
    """What the runner needs from an inventory (``orchestrator.inventory.Inventory`` provides it)."""

    def __init__(
        self,
        hosts: Sequence[str],
        host_vars: Callable[[str], Mapping[str, Any]],
        groups_of: Callable[[str], tuple[str, ...]],
        select: Callable[[str], list[str]],
        groups: Mapping[str, Sequence[str]],
    ) -> None:
        self.hosts = list(hosts)
        self.host_vars = host_vars
        self.groups_of = groups_of
        self.select = select
        self.groups = groups


def play_targets(plan: Plan, select: Callable[[str], list[str]], limit: Set[str] | None) -> list[list[str]]:
    """The PCs of each play of ``plan``, in inventory order, within ``limit`` when given."""
    targets: list[list[str]] = []
    for play in plan.plays:
        hosts = select(play.hosts)
        targets.append(hosts if limit is None else [h for h in hosts if h in limit])
    return targets


def targeted_hosts(targets: Sequence[Sequence[str]]) -> list[str]:
    """Every PC of a run once, in the order the plays first name them."""
    seen: set[str] = set()
    out: list[str] = []
    for hosts in targets:
        for h in hosts:
            if h not in seen:
                seen.add(h)
                out.append(h)
    return out


def _batches(hosts: list[str], serial: tuple[int | str, ...]) -> list[list[str]]:
    if not serial:
        return [hosts]
    out: list[list[str]] = []
    i = 0
    step_index = 0
    while i < len(hosts):
        spec = serial[min(step_index, len(serial) - 1)]
        if isinstance(spec, str) and spec.strip().endswith("%"):
            size = max(1, int(len(hosts) * float(spec.strip()[:-1]) / 100))
        else:
            size = max(1, int(spec))
        out.append(hosts[i : i + size])
        i += size
        step_index += 1
    return out


def _tag_filter(tags: frozenset[str], skip_tags: frozenset[str]) -> Callable[[TaskSpec | BlockSpec], bool]:
    """Ansible's tag rules, including the special tags always, never, tagged, untagged and all."""

    def should_run(node: TaskSpec | BlockSpec) -> bool:
        if isinstance(node, BlockSpec):
            # A block runs if it or anything inside it could run; children are filtered individually.
            return _block_may_run(node, should_run)
        node_tags = set(node.tags)
        return not _skipped(node_tags, skip_tags) and _selected(node_tags, tags)

    return should_run


def _skipped(node_tags: set[str], skip_tags: frozenset[str]) -> bool:
    """``--skip-tags``: ``all`` skips everything but ``always``; ``tagged``/``untagged`` skip by having tags."""
    if not skip_tags:
        return False
    if "all" in skip_tags and "always" not in node_tags:
        return True
    if node_tags & skip_tags:
        return True
    return ("tagged" in skip_tags and bool(node_tags - {"always"})) or ("untagged" in skip_tags and not node_tags)


def _selected(node_tags: set[str], tags: frozenset[str]) -> bool:
    """``--tags`` (not skipped): ``always`` runs; ``never`` only when one of its tags is asked for."""
    if "always" in node_tags:  # "--skip-tags always" was handled by _skipped
        return True
    if not tags or tags == {"all"}:
        return "never" not in node_tags
    if "never" in node_tags and not (node_tags & tags):
        return False
    if node_tags & tags:
        return True
    if "tagged" in tags and node_tags:
        return True
    return "untagged" in tags and not node_tags


def _block_may_run(block: BlockSpec, should_run: Callable[[TaskSpec | BlockSpec], bool]) -> bool:
    return any(should_run(n) for n in (*block.block, *block.rescue, *block.always))


class Runner:
    def __init__(
        self,
        plan: Plan,
        inventory: InventoryView,
        info: RunInfo,
        options: RunOptions,
        reporter: Reporter,
        *,
        limit_hosts: Sequence[str] | None = None,
        cancel: threading.Event | None = None,
        play_vars: Callable[[PlaySpec, Mapping[str, Any]], Mapping[str, Any]] | None = None,
    ) -> None:
        self.plan = plan
        self.inventory = inventory
        self.info = info
        self.options = options
        self.reporter = reporter
        self.limit = set(limit_hosts) if limit_hosts is not None else None
        self.cancel = cancel or threading.Event()
        self.play_vars = play_vars or (lambda play, extra: play.vars)
        self.states: dict[str, HostState] = {}
        self.packer = Packer()  # finished PCs' variables, packed with one preset dictionary (HostState.compact)
        self.results = KeptHosts()  # finished PCs' results, packed until the run ends (results/hostpack.py)
        self.pool = WorkerPool(max(1, options.forks))
        self._begun: queue.SimpleQueue[str] = queue.SimpleQueue()  # hosts whose job just started (``_supervise``)
        self.should_run = _tag_filter(options.tags, options.skip_tags)

    # ------------------------------------------------------------------ host bookkeeping

    def _state(self, host: str) -> HostState:
        st = self.states.get(host)
        if st is None:
            st = HostState(host, self.inventory.host_vars(host), self.inventory.groups_of(host))
            self.states[host] = st
        return st

    def _budget(self, st: HostState) -> float:
        """The host's ``kmsfleet_host_budget_sec`` (read by the transport's one rule), else the run's. A value the
        rule refuses falls back here; the host's connection then fails with the error naming it."""
        raw = st.inventory_vars.get(connection.BUDGET_VAR)
        if raw is not None:
            with contextlib.suppress(InputError):
                return connection.host_budget(st.name, raw)
        return self.options.host_budget or DEFAULT_BUDGET

    def _finish_host(self, host: str, status: HostStatus | None = None, msg: str = "") -> None:
        st = self.states[host]
        results = st.finish()
        if results is None:
            return
        if status is None:
            status, msg = self._final_status(st, results)
        facts = {k: st.facts[k] for k in FACT_KEYS if k in st.facts}
        hr = HostResult(
            host=host,
            status=status,
            tasks=results,
            msg=msg,
            started=st.started,
            finished=utcnow(),
            address=st.address or str(st.inventory_vars.get("ansible_host", host)),
            groups=tuple(g for g in st.groups if g != "all"),
            licences=tuple(st.licences.values()),
            facts=facts,
        )
        self.results[host] = hr
        self.reporter.host_done(hr)

    @staticmethod
    def _final_status(st: HostState, results: tuple[HostTaskResult, ...]) -> tuple[HostStatus, str]:
        last_bad = next(
            (
                t
                for t in reversed(results)
                if t.status in (TaskStatus.FAILED, TaskStatus.UNREACHABLE) and not t.ignored and not t.rescued
            ),
            None,
        )
        if st.interrupted:
            return HostStatus.INTERRUPTED, "interrupted before the host finished"
        if st.stopped is FailureKind.AUTH:
            return HostStatus.AUTH_REFUSED, last_bad.msg if last_bad else "authentication refused"
        if st.stopped is not None:
            return HostStatus.UNREACHABLE, last_bad.msg if last_bad else "unreachable"
        if st.failed:
            return HostStatus.FAILED, last_bad.msg if last_bad else "a task failed"
        if any(t.status is TaskStatus.CHANGED for t in results):
            return HostStatus.CHANGED, ""
        return HostStatus.OK, ""

    # ------------------------------------------------------------------ the run

    def run(self) -> RunResult:
        plays = self.plan.plays
        targets = play_targets(self.plan, self.inventory.select, self.limit)
        all_hosts = targeted_hosts(targets)
        last_play = {h: i for i, hosts in enumerate(targets) for h in hosts}
        for h in all_hosts:
            self._state(h)
        with _interrupts_held() as held:  # every targeted PC is recorded before Ctrl-C can cut in
            self.reporter.run_started(self.info, all_hosts)
        interrupted = False
        try:
            if held:
                raise KeyboardInterrupt
            for index, (play, hosts) in enumerate(zip(plays, targets, strict=True)):
                if self.cancel.is_set():
                    break
                active = [h for h in hosts if self.states[h].active and not self.states[h].finished]
                self.reporter.play_started(play.name, active)
                if not active:
                    continue
                self._run_play(play, active, index, last_play)
        except KeyboardInterrupt:
            interrupted = True
            self.cancel.set()
            self._drain()
        if self.cancel.is_set():
            interrupted = True
        # Ctrl-C while the results are being finished and reported is held until they are: the run then counts
        # as interrupted (a follow-up loop stops), with every result it produced.
        with _interrupts_held() as late:
            for host in all_hosts:
                st = self.states[host]
                if st.finished:
                    continue
                if st.started_mono is None and interrupted:
                    self._finish_host(host, HostStatus.NOT_RUN, "not started: the run was interrupted")
                elif interrupted and st.active:
                    st.interrupted = True
                    self._finish_host(host)
                else:
                    self._finish_host(host)
            self.pool.shutdown()
            hosts_out = self.results.ordered(all_hosts)
            result = RunResult(
                info=self.info, hosts=hosts_out, finished=utcnow(), interrupted=interrupted or bool(late)
            )
            self.reporter.run_done(result)
        if late and not result.interrupted:  # arrived while run_done was reporting a finished run
            result = dataclasses.replace(result, interrupted=True)
        return result

    def _drain(self) -> None:
        """After Ctrl-C: let in-flight requests finish for up to ``grace`` seconds."""
        deadline = time.monotonic() + self.options.grace
        pending = [f for f in getattr(self, "_inflight", []) if not f.done()]
        while pending and time.monotonic() < deadline:
            try:
                wait(pending, timeout=max(0.05, deadline - time.monotonic()))
            except KeyboardInterrupt:
                break  # a second Ctrl-C: stop waiting now
            pending = [f for f in pending if not f.done()]

    def _play_run(
        self, play: PlaySpec, hosts: list[str], aborted: threading.Event, play_hosts: list[str] | None = None
    ) -> PlayRun:
        """``hosts`` is the batch (``serial``); ``play_hosts`` every host of the play."""
        everyone = play_hosts if play_hosts is not None else hosts
        in_batch = set(hosts)
        still = [h for h in everyone if h in in_batch or self.states[h].active]  # failed in an earlier batch: gone
        magic = {
            "play_hosts": still,
            "ansible_play_hosts": still,
            "ansible_play_batch": hosts,
            "ansible_play_hosts_all": everyone,
            "groups": {g: list(m) for g, m in self.inventory.groups.items()},
            "playbook_dir": play.base_dir,
            "ansible_run_tags": sorted(self.options.tags) or ["all"],
            "ansible_skip_tags": sorted(self.options.skip_tags),
            "ansible_play_name": play.name,
            "ansible_version": {"full": __version__, "string": f"kmsfleet {__version__}"},
            "hostvars": HostVars(_OwnVars(self), extra=self.options.extra_vars, base_dir=Path(play.base_dir)),
        }
        play_vars = self.play_vars(play, self.options.extra_vars)
        return PlayRun(
            play=play, play_vars=play_vars, play_hosts=hosts, magic=magic, aborted=aborted.is_set, abort=aborted.set
        )

    def _run_play(self, play: PlaySpec, hosts: list[str], index: int, last_play: dict[str, int]) -> None:
        strategy = (play.strategy or self.options.strategy or "free").lower()
        aborted = threading.Event()
        for batch in _batches(hosts, play.serial):
            if self.cancel.is_set() or aborted.is_set():
                break
            run = self._play_run(play, batch, aborted, hosts)
            if strategy == "linear":
                self._linear(run, batch, index, last_play, aborted)
            else:
                self._free(run, batch, index, last_play, aborted)
            self._check_failures(play, batch, aborted)

    def _check_failures(self, play: PlaySpec, batch: list[str], aborted: threading.Event) -> None:
        failed = [h for h in batch if self.states[h].failed or self.states[h].stopped is not None]
        if play.any_errors_fatal and failed:
            aborted.set()
        if (
            play.max_fail_percentage is not None
            and batch
            and 100.0 * len(failed) / len(batch) > play.max_fail_percentage
        ):
            aborted.set()

    def _pipeline(self, host: str) -> HostPipeline:
        return HostPipeline(self.states[host], self.options, self.reporter, self.cancel, self.should_run)

    def _host_job(self, host: str, work: Callable[[HostPipeline], None], finish: bool) -> Callable[[], None]:
        def job() -> None:
            st = self.states[host]
            if self.cancel.is_set() or st.finished:
                return
            st.begin(self._budget(st))
            self._begun.put(host)  # its budget is watched from now on (``_supervise``)
            pipeline = self._pipeline(host)
            try:
                work(pipeline)
            except stop_exception():
                pass
            except Exception as exc:  # a bug past the pipeline's own handling: the host fails, the error shown
                self._crashed(st, exc)
            finally:
                if finish or not st.active:
                    with contextlib.suppress(Exception):
                        st.close()
                    self._finish_host(host)
                    st.compact(self.packer)  # the host's last job: its variables shrink to what hostvars shows

        return job

    def _supervise(self, futures: dict[Future[None], str]) -> None:
        """Wait for jobs; finish hosts that overrun their budget. KeyboardInterrupt propagates.

        Completions arrive on one queue (a done-callback per job), and budgets are checked on a 0.25 s tick: the
        cost is O(1) per finished job plus O(running) per tick. (``concurrent.futures.wait`` over the pending set
        after every completion installed and removed a waiter on every pending future: O(PCs²) per play, the
        largest cost of the controller at 5,000 PCs.) A tick looks only at the hosts whose job has started
        (each job puts its host on ``_begun`` as it starts), about ``--forks`` of them, not at every PC still
        waiting for a thread: a 5,000-PC audit's tick walked up to 5,000 futures four times a second (about
        1.4 s of CPU per audit, docs/performance.md). A host whose budget ran out while it waited for a thread is
        caught as its job starts (its exchanges already fail on the spent deadline)."""
        self._inflight = list(futures)
        pending = set(futures)
        future_of = {host: fut for fut, host in futures.items()}
        running: dict[Future[None], HostState] = {}
        self._take_begun(future_of, pending, running)  # jobs that started before this call (and leftovers)
        finished: queue.SimpleQueue[Future[None]] = queue.SimpleQueue()
        for fut in futures:
            fut.add_done_callback(finished.put)
        next_tick = time.monotonic() + SUPERVISE_TICK
        while pending:
            try:
                fut = finished.get(timeout=max(0.0, next_tick - time.monotonic()))
            except queue.Empty:
                pass
            else:
                if fut in pending:
                    pending.discard(fut)
                    running.pop(fut, None)
                    exc = fut.exception()
                    if exc is not None and not isinstance(exc, stop_exception()):
                        self._crashed(self.states[futures[fut]], exc)
            now = time.monotonic()
            if now < next_tick:
                continue
            next_tick = now + SUPERVISE_TICK
            self._take_begun(future_of, pending, running)
            for fut, st in list(running.items()):
                if st.deadline is not None and now > st.deadline + WATCHDOG_GRACE and not st.finished:
                    self._overrun(st)
                    pending.discard(fut)
                    del running[fut]

    def _take_begun(
        self, future_of: Mapping[str, Future[None]], pending: Set[Future[None]], running: dict[Future[None], HostState]
    ) -> None:
        """Hosts whose job started since the last look join ``running`` (those of this call's futures; others,
        left from an earlier play or step, are dropped). Bounded: each job puts its host once."""
        for _ in range(4 * len(future_of) + 1024):
            try:
                host = self._begun.get_nowait()
            except queue.Empty:
                return
            fut = future_of.get(host)
            if fut is not None and fut in pending:
                running[fut] = self.states[host]

    def _overrun(self, st: HostState) -> None:
        """A host past its time budget (and the grace): finished as timed out with the results it has."""
        budget = st.budget or 0
        st.stopped = FailureKind.TIMEOUT
        msg = f"the host did not finish within its time budget of {budget:.0f}s; abandoned"
        end = TaskEnd(TaskStatus.UNREACHABLE, msg, failure=FailureKind.TIMEOUT, diagnosis="KF_TIMEOUT")
        self._add_result(st, "(time budget)", end)
        self._finish_host(st.name)

    def _crashed(self, st: HostState, exc: BaseException) -> None:
        """A host whose job raised past its pipeline (a bug): finished as failed, the error recorded."""
        st.failed = True
        msg = f"internal error: {type(exc).__name__}: {exc}"
        self._add_result(st, "(internal error)", TaskEnd(TaskStatus.FAILED, msg, failure=FailureKind.TASK))
        self._finish_host(st.name, HostStatus.FAILED, msg)

    def _add_result(self, st: HostState, name: str, end: TaskEnd) -> None:
        """A result the runner records for a host (not a task of the play), built as every task result is."""
        result = task_result(TaskRef(st.name, "", name, ""), end)
        if st.add(result):
            self.reporter.task_done(result)

    def _free(
        self, run: PlayRun, batch: list[str], index: int, last_play: dict[str, int], aborted: threading.Event
    ) -> None:
        futures: dict[Future[None], str] = {}
        for host in batch:
            finish = last_play.get(host) == index
            futures[self.pool.submit(self._host_job(host, lambda p: p.run_play(run), finish))] = host
        self._supervise(futures)

    def _linear(
        self, run: PlayRun, batch: list[str], index: int, last_play: dict[str, int], aborted: threading.Event
    ) -> None:
        steps: list[Any] = []  # node lists, and `flush` markers
        if run.play.gather_facts:
            steps.append(
                [
                    TaskSpec(
                        name="Gathering Facts",
                        module="setup",
                        args={},
                        location=run.play.location,
                        tags=frozenset({"always"}),
                    )
                ]
            )
        flush = object()  # after each section: the notified handlers (as Ansible after pre_tasks, tasks, post_tasks)
        for section in run.play.all_sections():
            steps.extend([node] for node in section)
            steps.append(flush)
        for step in steps:
            if self.cancel.is_set() or aborted.is_set():
                return
            active = [h for h in batch if self.states[h].active and not self.states[h].finished]
            if not active:
                break

            def work(p: HostPipeline, nodes: Any = step) -> None:
                if nodes is flush:
                    p.flush_handlers(run)
                else:
                    p.run_nodes(nodes, run, (), in_block=False)

            futures = {self.pool.submit(self._host_job(h, work, False)): h for h in active}
            self._supervise(futures)
            self._check_failures(run.play, batch, aborted)  # Ansible checks max_fail_percentage after each task
        active = [h for h in batch if not self.states[h].finished]
        futures = {
            self.pool.submit(self._host_job(h, lambda p: p.flush_handlers(run), last_play.get(h) == index)): h
            for h in active
        }
        self._supervise(futures)


class _OwnVars(Mapping[str, Mapping[str, Any]]):
    """Each PC's own variables, unrendered (Ansible's ``HostVars.raw_get``), for ``templating.HostVars``: a PC of
    the run's as it stands (a copy of the live ones, or the compact frozen form once it finished,
    ``HostState.compact``), any other PC of the inventory its inventory's."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self._names: frozenset[str] | None = None  # the inventory's PCs, made on the first look-up of one

    def _inventory_names(self) -> frozenset[str]:
        if self._names is None:
            self._names = frozenset(self._runner.inventory.hosts)
        return self._names

    def __getitem__(self, key: str) -> Mapping[str, Any]:
        st = self._runner.states.get(key)
        if st is not None:
            return st.hostvars()
        if key in self._inventory_names():
            return self._runner.inventory.host_vars(key)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return key in self._runner.states or key in self._inventory_names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._runner.inventory.hosts)

    def __len__(self) -> int:
        return len(self._runner.inventory.hosts)


def new_run_info(
    run_id: str,
    playbook: str,
    inventory: Sequence[str],
    options: RunOptions,
    limit: str | None,
) -> RunInfo:
    return RunInfo(
        id=run_id,
        playbook=playbook,
        inventory=tuple(inventory),
        limit=limit,
        check=options.check,
        tags=tuple(sorted(options.tags)),
        skip_tags=tuple(sorted(options.skip_tags)),
        forks=options.forks,
        strategy=options.strategy,
        controller=f"{socket.gethostname()} pid {os.getpid()}",
        kmsfleet_version=__version__,
        lang=options.lang,
    )


@contextlib.contextmanager
def _interrupts_held() -> Iterator[list[int]]:
    """Hold Ctrl-C and SIGTERM while a block runs (the run's start is being recorded): the signals that arrived
    are listed in the yielded list for the caller to act on afterwards. Outside the main thread (a run driven
    in-process by tests or a worker) signals cannot be handled here, and nothing is held."""
    held: list[int] = []
    previous: dict[int, Any] = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda signum, _frame: held.append(signum))
    except ValueError:  # not the main thread
        pass
    try:
        yield held
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
