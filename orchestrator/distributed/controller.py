"""The controller of a distributed run: split by site, dispatch batches, collect the stream, keep one result per PC.

``DistributedEngine`` (an ``executor.engine.Engine``, chosen by ``api.run_distributed`` after the usual loading
and validation) runs a ``Controller``, which

1. turns the compiled plan into its wire form once (``message.plan_for_workers``), groups the targeted PCs
   by their inventory variable ``site`` (``default_site`` for PCs without one, else an error listing them)
   and cuts each site's PCs into batches of ``batch_size``;
2. watches which sites have a live worker (signed presence keys, ``liveness``) and sends each such site's
   batches, signed with the controller's key, to its queue ``kmsfleet.site.<NAME>``; a site without a worker
   is polled until ``site_timeout`` runs out, then its PCs end ``unreachable`` ("no worker for site X") while
   the other sites go on; the run's ``open`` key holds a token the controller re-signs every second, without
   which no worker starts a batch of the run;
3. reads the run's Redis stream and feeds every event to the reporters (history database, terminal) after
   checking it: signed by the pinned key of the batch's site, valid against the event schema, carrying this
   run's id and nonce, about a PC of that batch. Anything else is refused and counted (a forged "all fine"
   never reaches the history). The first final result of a PC wins, later copies are counted and ignored;
4. re-queues a started batch whose lease expired (its worker died: SIGKILL, power cut) with the PCs that have
   no final result yet, at most ``max_attempts`` times;
5. on Ctrl-C sets the run's cancel flag (workers interrupt their hosts and stream them), waits a bounded time,
   and ends the rest ``interrupted`` / ``not_run``.

Every wait is bounded: stream reads block at most 0.5 s, and the run as a whole ends by a deadline computed
from the number of batches, the per-PC time budget and ``site_timeout``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from orchestrator.distributed.celery_app import (
    KEY_TTL,
    TASK_NAME,
    RunKeys,
    check_site,
    make_app,
    queue_name,
    redis_client,
)
from orchestrator.distributed.keys import ControllerKeys, keys_dir, load_controller_keys
from orchestrator.distributed.liveness import SiteWatcher
from orchestrator.distributed.message import (
    BatchMessage,
    BatchOptions,
    HostEntry,
    StreamEvent,
    batch_options,
    encode_value,
    plan_for_workers,
    sanitise_vars,
)
from orchestrator.distributed.signing import DOMAIN_BATCH, DOMAIN_EVENT, DOMAIN_OPEN, SignatureError
from orchestrator.errors import InputError, KmsfleetError
from orchestrator.executor.engine import PlayVars, RunView
from orchestrator.executor.plan import Plan, PlaySpec
from orchestrator.executor.reporter import Reporter
from orchestrator.executor.runner import DEFAULT_BUDGET
from orchestrator.executor.state import RunOptions
from orchestrator.redact import redact_text
from orchestrator.results.codec import host_result_from_json, task_result_from_json
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

SITE_VAR = "site"
READ_BLOCK_MS = 500
LEASE_CHECK_EVERY = 1.0
CANCEL_WAIT_EXTRA = 15.0
OPEN_REFRESH = 1.0
CLOSED_TTL = 600  # seconds the signed "closed" token stays (longer than a worker accepts an old open token)

log = logging.getLogger("kmsfleet.controller")


class BrokerError(KmsfleetError):
    """The broker cannot be reached or used."""


class _Refused(Exception):
    """A stream entry the controller does not accept (the text says why; counted and logged)."""


@dataclass(frozen=True)
class DistributedOptions:
    broker: str
    site_timeout: float = 60.0
    batch_size: int = 50
    default_site: str | None = None
    max_attempts: int = 3
    keys: str | None = None  # the key folder (None: $KMSFLEET_KEYS or ~/.config/kmsfleet/keys)


@dataclass(frozen=True)
class SiteProgress:
    """One line of live progress for a site."""

    site: str
    state: str  # waiting (for a worker) | running | done | no_worker
    workers: int
    total: int
    done: int
    problems: int
    note: str = ""


@dataclass(frozen=True)
class DistributedEngine:
    """``--distributed``: the run's PCs on per-site Celery workers (an ``executor.engine.Engine``)."""

    options: RunOptions
    dist: DistributedOptions
    cancel: threading.Event | None = None
    progress: Callable[[SiteProgress], None] | None = None
    play_vars: PlayVars | None = None  # reads each play's vars_files on the controller

    def run(
        self, plan: Plan, view: RunView, info: RunInfo, reporter: Reporter, limit: Sequence[str] | None
    ) -> RunResult:
        return Controller(plan, view, info, reporter, self, limit).run()


@dataclass(frozen=True)
class _Wire:
    """What every batch message of a run shares."""

    plan: dict[str, Any]
    options: BatchOptions
    entries: dict[str, HostEntry]
    by_pattern: dict[str, list[str]]
    withheld: list[str]


@dataclass
class _Batch:
    id: str
    site: str
    hosts: list[str]
    attempt: int = 0  # 0: not sent yet
    started: bool = False
    worker: str | None = None
    done: bool = False


@dataclass
class _Site:
    name: str
    hosts: list[str]
    batches: list[_Batch] = field(default_factory=list)
    done: int = 0
    problems: int = 0
    state: str = "waiting"
    given_up: bool = False
    last_reported: int = -1


def _decode(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Controller:
    def __init__(
        self,
        plan: Plan,
        view: RunView,
        info: RunInfo,
        reporter: Reporter,
        engine: DistributedEngine,
        limit_hosts: Sequence[str] | None = None,
    ) -> None:
        dist = engine.dist
        if dist.batch_size < 1:
            raise InputError("--batch-size must be at least 1")
        if any(play.wake_on_lan for play in plan.plays):
            raise InputError(
                "wake_on_lan plays cannot run with --distributed yet",
                hint="wake the PCs first (kmsfleet wake at the site), or run without --distributed",
            )
        self.plan = plan
        self.view = view
        self.info = info
        self.options = engine.options
        self.reporter = reporter
        self.dist = dist
        self.play_vars = engine.play_vars
        self.limit = set(limit_hosts) if limit_hosts is not None else None
        self.cancel = engine.cancel or threading.Event()
        self.progress = engine.progress
        self.final: dict[str, HostResult] = {}
        self.duplicates = 0
        self.requeued = 0
        self._plays_seen: set[str] = set()
        self._host_started: set[str] = set()
        self.started_mono = time.monotonic()
        self.started_at = utcnow()
        self._last_id = "0-0"
        self.nonce = secrets.token_hex(16)
        self.refused = 0
        self._refused_reasons: dict[str, int] = {}

    # ------------------------------------------------------------------ planning

    def _selections(self) -> tuple[list[str], dict[str, list[str]], dict[str, list[str]]]:
        """(every targeted host in order, play name -> its hosts, host pattern -> its hosts)."""
        by_pattern: dict[str, list[str]] = {}
        by_play: dict[str, list[str]] = {}
        targets: list[str] = []
        seen: set[str] = set()
        for play in self.plan.plays:
            if play.hosts not in by_pattern:
                hosts = self.view.select(play.hosts)
                if self.limit is not None:
                    hosts = [h for h in hosts if h in self.limit]
                by_pattern[play.hosts] = hosts
            chosen = by_pattern[play.hosts]
            by_play.setdefault(play.name, list(chosen))
            for h in chosen:
                if h not in seen:
                    seen.add(h)
                    targets.append(h)
        return targets, by_play, by_pattern

    def _site_of(self, hosts: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        missing: list[str] = []
        for h in hosts:
            value = self.view.variables(h).get(SITE_VAR)
            if value in (None, ""):
                if self.dist.default_site is None:
                    missing.append(h)
                    continue
                value = self.dist.default_site
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise InputError(f"host {h}: the variable 'site' must be a name, not {value!r}")
            out[h] = check_site(str(value))
        if missing:
            shown = ", ".join(missing[:20]) + (f" … ({len(missing)} in all)" if len(missing) > 20 else "")
            raise InputError(
                f"--distributed: these hosts have no 'site' variable: {shown}",
                hint="set site: NAME for each school (group vars are easiest), or give --default-site NAME",
            )
        return out

    def _entries(self, hosts: Sequence[str]) -> tuple[dict[str, HostEntry], set[str]]:
        entries: dict[str, HostEntry] = {}
        withheld: set[str] = set()
        for h in hosts:
            safe, kept_back = sanitise_vars(self.view.variables(h))
            withheld |= kept_back
            entries[h] = HostEntry(
                name=h,
                groups=list(self.view.group_names(h)),
                vars=encode_value(safe),
                inventory_file=self.view.inventory_file(h),
            )
        return entries, withheld

    # ------------------------------------------------------------------ the run

    def run(self) -> RunResult:
        targets, self.by_play, by_pattern = self._selections()
        self.targets = targets
        self.site_of = self._site_of(targets)
        self.wire = self._wire(targets, by_pattern)
        self._cut_batches()
        self.crypto: ControllerKeys = load_controller_keys(keys_dir(self.dist.keys), self.sites)
        self._kid_sites = self.crypto.sites_of_kid()
        self._verifiers = {site: self.crypto.verifier(site) for site in self.sites}
        label = f"{self.info.controller} (distributed: {len(self.sites)} sites)"
        self.info = dataclasses.replace(self.info, controller=label)
        self._connect()
        self.reporter.run_started(self.info, targets)
        interrupted = False
        try:
            self.watcher.check_once()
            self.watcher.start()
            try:
                self._loop()
            except KeyboardInterrupt:
                self.cancel.set()
            if self.cancel.is_set():
                interrupted = True
                self._wind_down()
        finally:
            self.watcher.stop()
            self._cleanup()
        if self.refused or self.watcher.refused:
            self._warn_refused()
        hosts = tuple(self.final[h] for h in targets if h in self.final)
        result = RunResult(info=self.info, hosts=hosts, finished=utcnow(), interrupted=interrupted)
        self.reporter.run_done(result)
        return result

    def _wire(self, targets: Sequence[str], by_pattern: dict[str, list[str]]) -> _Wire:
        """What every batch message of the run shares, computed once (secrets withheld, the plan checked)."""
        plan = plan_for_workers(self.plan, self.options.extra_vars, self.play_vars or _own_vars)
        opts, withheld = batch_options(self.options)
        entries, host_withheld = self._entries(targets)
        return _Wire(plan, opts, entries, by_pattern, sorted(withheld | host_withheld))

    def _cut_batches(self) -> None:
        """Each site's PCs, in order, cut into batches of ``batch_size``."""
        self.sites: dict[str, _Site] = {}
        for h in self.targets:
            self.sites.setdefault(self.site_of[h], _Site(self.site_of[h], [])).hosts.append(h)
        self.batches: dict[str, _Batch] = {}
        size = self.dist.batch_size
        for site in self.sites.values():
            for start in range(0, len(site.hosts), size):
                batch = _Batch(f"{site.name}-{start // size + 1:04d}", site.name, site.hosts[start : start + size])
                site.batches.append(batch)
                self.batches[batch.id] = batch

    def _connect(self) -> None:
        """The broker reached, the run opened (signed token), the Celery app and the site watcher ready."""
        client = redis_client(self.dist.broker)
        try:
            client.ping()
        except Exception as exc:
            raise BrokerError(f"cannot reach the broker {_safe_url(self.dist.broker)}: {exc}") from None
        self.client = client
        self.keys = RunKeys(self.info.id)
        self._next_open = 0.0
        self._refresh_open()
        self.app = make_app(self.dist.broker)
        self.watcher = SiteWatcher(client, self._verifiers, self.sites)

    def _message(self, batch: _Batch, hosts: list[str]) -> dict[str, Any]:
        """The signed message of ``batch`` (its ``hosts`` still without a result)."""
        chosen = set(hosts)
        now = time.time()
        msg = BatchMessage(
            run_id=self.info.id,
            nonce=self.nonce,
            batch_id=batch.id,
            attempt=batch.attempt,
            site=batch.site,
            issued=now,
            expires=now + max(60.0, self._deadline() - time.monotonic()),
            playbook=self.info.playbook,
            plan=self.wire.plan,
            options=self.wire.options,
            hosts=[self.wire.entries[h] for h in hosts],
            selections={p: [h for h in sel if h in chosen] for p, sel in self.wire.by_pattern.items()},
            withheld=self.wire.withheld,
        )
        return self.crypto.signer.sign(DOMAIN_BATCH, msg.model_dump(mode="json"))

    def _deadline(self) -> float:
        budget = self.options.host_budget or DEFAULT_BUDGET
        forks = max(1, self.options.forks)
        work = sum(math.ceil(len(b.hosts) / forks) * (budget + 30.0) for b in self.batches.values())
        return self.started_mono + self.dist.site_timeout + work + 60.0

    def _pending(self) -> list[str]:
        return [h for h in self.targets if h not in self.final]

    def _loop(self) -> None:
        deadline = self._deadline()
        next_lease_check = 0.0
        while self._pending():
            now = time.monotonic()
            if self.cancel.is_set():
                return
            if now > deadline:
                for h in self._pending():
                    self._finish(
                        h, HostStatus.UNREACHABLE, "no result from the site's worker within the run's time limit"
                    )
                return
            self._refresh_open()
            self._dispatch(now)
            self._read(READ_BLOCK_MS)
            if time.monotonic() >= next_lease_check:
                self._check_leases()
                next_lease_check = time.monotonic() + LEASE_CHECK_EVERY

    # ------------------------------------------------------------------ dispatch and liveness

    def _refresh_open(self) -> None:
        """Re-sign the run's open token (workers start a batch of this run only while it is fresh)."""
        now = time.monotonic()
        if now < self._next_open:
            return
        self._next_open = now + OPEN_REFRESH
        token = self.crypto.signer.sign(DOMAIN_OPEN, {"run": self.info.id, "n": self.nonce, "ts": time.time()})
        try:
            self.client.set(self.keys.open, json.dumps(token), ex=KEY_TTL)
        except Exception as exc:
            log.warning("could not refresh the run's open token: %s", type(exc).__name__)

    def _send(self, batch: _Batch, hosts: list[str]) -> None:
        batch.attempt += 1
        batch.started = False
        self.app.send_task(
            TASK_NAME,
            args=[self._message(batch, hosts)],
            queue=queue_name(batch.site),
            argsrepr=f"[batch {batch.id} attempt {batch.attempt}: {len(hosts)} PCs]",  # logs: not the message
        )

    def _dispatch(self, now: float) -> None:
        for site in self.sites.values():
            if site.given_up or site.state == "done":
                continue
            unfinished = [h for h in site.hosts if h not in self.final]
            if not unfinished:
                continue
            workers = self.watcher.workers(site.name)
            last = self.watcher.last_seen(site.name)
            if workers:
                if site.state == "waiting":
                    site.state = "running"
                    self._report(site, force=True)
                for batch in site.batches:
                    if batch.attempt == 0:
                        self._send(batch, batch.hosts)
                continue
            since = last if last is not None else self.started_mono
            if now - since > self.dist.site_timeout:
                self._give_up(site, last is None)

    def _give_up(self, site: _Site, never: bool) -> None:
        site.given_up = True
        queue = queue_name(site.name)
        if never:
            msg = f"no worker for site {site.name}: nothing consumed queue {queue} within {self.dist.site_timeout:.0f}s"
        else:
            msg = f"no worker for site {site.name}: its workers stopped answering for {self.dist.site_timeout:.0f}s"
        for h in site.hosts:
            if h not in self.final:
                self._finish(h, HostStatus.UNREACHABLE, msg)
        site.state = "no_worker"
        self._report(site, force=True, note=msg)

    def _check_leases(self) -> None:
        running = [b for b in self.batches.values() if b.started and not b.done]
        if not running:
            return
        pipe = self.client.pipeline(transaction=False)
        for b in running:
            pipe.exists(self.keys.lease(b.id))
            pipe.sismember(self.keys.batches_done, b.id)
        replies = pipe.execute()
        for i, b in enumerate(running):
            alive, done = replies[2 * i], replies[2 * i + 1]
            if alive or done:
                continue  # running, or finished with its batch_done event still on the way
            remaining = [h for h in b.hosts if h not in self.final]
            site = self.sites[b.site]
            if not remaining:
                b.done = True
                continue
            if b.attempt >= self.dist.max_attempts:
                b.done = True
                text = f"the worker running this PC's batch {b.id} was lost {b.attempt} times"
                for h in remaining:
                    self._finish(h, HostStatus.UNREACHABLE, text)
                self._report(site, force=True, note=text)
                continue
            self.requeued += 1
            note = (
                f"worker {b.worker or '?'} lost during batch {b.id} (attempt {b.attempt}); "
                f"re-queued {len(remaining)} PCs without a result"
            )
            self._send(b, remaining)
            self._report(site, force=True, note=note)

    # ------------------------------------------------------------------ the stream

    def _read(self, block_ms: int | None) -> None:
        reply = self.client.xread({self.keys.events: self._last_id}, count=500, block=block_ms)
        if isinstance(reply, dict):  # RESP3
            reply = list(reply.items())
        for _stream, entries in reply or ():
            for entry_id, fields in entries:
                self._last_id = _decode(entry_id)
                raw = fields.get(b"m") if b"m" in fields else fields.get("m")
                try:
                    event, batch = self._verify(raw)
                    self._handle(event, batch)
                except _Refused as exc:
                    self._refuse(str(exc))
                except Exception as exc:  # a signed event the engine cannot read: never stop the run for it
                    self._refuse(f"unreadable event ({type(exc).__name__})")

    def _verify(self, raw: Any) -> tuple[StreamEvent, _Batch]:
        """The event in a stream entry, if a site's pinned key signed it for this run and batch."""
        if raw is None:
            raise _Refused("an entry without a signed message")
        try:
            envelope = json.loads(_decode(raw))
        except ValueError:
            raise _Refused("an entry that is not JSON") from None
        kid = envelope.get("kid") if isinstance(envelope, dict) else None
        sites = self._kid_sites.get(kid, set()) if isinstance(kid, str) else set()
        sites &= self.sites.keys()
        if not sites:
            raise _Refused("an event not signed by any pinned worker key of this run's sites")
        site = sorted(sites)[0]
        try:
            body = self._verifiers[site].open(DOMAIN_EVENT, envelope)
            event = StreamEvent.model_validate(body)
        except SignatureError as exc:
            raise _Refused(f"an event with {exc}") from None
        except ValidationError as exc:
            raise _Refused(f"an event that does not match the schema ({exc.error_count()} errors)") from None
        if event.run != self.info.id or event.n != self.nonce:
            raise _Refused("an event of another run (or replayed from one)")
        batch = self.batches.get(event.b)
        if batch is None or batch.site != event.s or event.s not in sites:
            raise _Refused(f"an event for batch {event.b!r} of site {event.s!r}, which its key does not serve")
        return event, batch

    def _refuse(self, reason: str) -> None:
        self.refused += 1
        count = self._refused_reasons.get(reason, 0)
        self._refused_reasons[reason] = count + 1
        if count == 0:
            log.warning("refused %s", reason)

    def _warn_refused(self) -> None:
        parts = [f"{n}× {reason}" for reason, n in sorted(self._refused_reasons.items())]
        if self.watcher.refused:
            parts.append(f"{self.watcher.refused}× a worker presence key not signed by its site's pinned key")
        note = "refused from the broker: " + "; ".join(parts)
        log.warning(note)
        if self.progress is not None:
            self.progress(
                SiteProgress(site="(broker)", state="warning", workers=0, total=0, done=0, problems=0, note=note)
            )

    def _handle(self, event: StreamEvent, batch: _Batch) -> None:
        self.watcher.seen(batch.site)
        handlers = {
            "batch_started": self._on_batch_started,
            "play": self._on_play,
            "task": self._on_task,
            "host": self._on_host,
            "batch_done": self._on_batch_done,
            "batch_refused": self._on_batch_refused,
            "batch_failed": self._on_batch_failed,
        }
        handlers[event.t](event, batch)

    def _on_batch_started(self, event: StreamEvent, batch: _Batch) -> None:
        batch.started = True
        batch.worker = event.worker or ""
        site = self.sites[batch.site]
        if site.state == "waiting":
            site.state = "running"
            self._report(site, force=True)

    def _on_play(self, event: StreamEvent, batch: _Batch) -> None:
        name = str(event.name)
        if name not in self._plays_seen:
            self._plays_seen.add(name)
            self.reporter.play_started(name, self.by_play.get(name, []))

    def _on_task(self, event: StreamEvent, batch: _Batch) -> None:
        if event.r is None:
            raise _Refused("a task event without its task")
        task = task_result_from_json(event.r)
        if task.host not in batch.hosts:
            raise _Refused(f"a task event for {task.host!r}, which is not in batch {batch.id}")
        if task.host not in self.final:
            self._host_started.add(task.host)
            self.reporter.task_done(task)

    def _on_host(self, event: StreamEvent, batch: _Batch) -> None:
        if event.r is None:
            raise _Refused("a host event without its result")
        result = host_result_from_json(event.r)
        if result.host not in batch.hosts:
            raise _Refused(f"a result for {result.host!r}, which is not in batch {batch.id}")
        if result.host in self.final:
            self.duplicates += 1
            return
        self._accept(result)

    def _on_batch_done(self, event: StreamEvent, batch: _Batch) -> None:
        batch.done = True

    def _on_batch_refused(self, event: StreamEvent, batch: _Batch) -> None:
        self._refused_batch(batch, str(event.error or "refused"))

    def _on_batch_failed(self, event: StreamEvent, batch: _Batch) -> None:
        batch.done = True
        error = str(event.error or "unknown error")
        text = f"the worker at site {batch.site} could not run batch {batch.id}: {error}"
        for h in batch.hosts:
            if h not in self.final:
                self._finish(h, HostStatus.FAILED, text, failure=FailureKind.INPUT)

    def _refused_batch(self, batch: _Batch, reason: str) -> None:
        """The site's worker refused a message claiming to be ``batch`` (tampered, forged, outside its policy …).
        Send the genuine batch again (a copy still queued is harmless), at most ``max_attempts`` times."""
        site = self.sites[batch.site]
        remaining = [h for h in batch.hosts if h not in self.final]
        if batch.done or batch.started or not remaining or batch.attempt == 0:
            return
        if batch.attempt >= self.dist.max_attempts:
            batch.done = True
            text = f"the worker at site {batch.site} refused batch {batch.id} {batch.attempt} times: {reason}"
            for h in remaining:
                self._finish(h, HostStatus.FAILED, text, failure=FailureKind.INPUT)
            self._report(site, force=True, note=text)
            return
        self._send(batch, remaining)
        self._report(site, force=True, note=f"the worker refused a copy of batch {batch.id} ({reason}); sent again")

    def _accept(self, result: HostResult) -> None:
        self.final[result.host] = result
        site = self.sites[self.site_of[result.host]]
        site.done += 1
        if not result.status.succeeded:
            site.problems += 1
        self.reporter.host_done(result)
        if site.done == len(site.hosts) and site.state not in ("no_worker",):
            site.state = "done"
            self._report(site, force=True)
        else:
            self._report(site)

    def _finish(
        self, host: str, status: HostStatus, msg: str, *, failure: FailureKind = FailureKind.UNREACHABLE
    ) -> None:
        """A final result made by the controller (no worker, lost worker, Ctrl-C, time limit)."""
        tasks: tuple[HostTaskResult, ...] = ()
        if status in (HostStatus.UNREACHABLE, HostStatus.FAILED):
            tasks = (
                HostTaskResult(
                    host=host,
                    play="",
                    task="(distributed run)",
                    module="",
                    status=TaskStatus.UNREACHABLE if status is HostStatus.UNREACHABLE else TaskStatus.FAILED,
                    msg=msg,
                    failure=failure,
                ),
            )
        address = self.view.variables(host).get("ansible_host", host)
        result = HostResult(
            host=host,
            status=status,
            tasks=tasks,
            msg=msg,
            started=self.started_at,
            finished=utcnow(),
            address=str(address),
            groups=tuple(self.view.group_names(host)),
        )
        self._accept(result)

    def _report(self, site: _Site, *, force: bool = False, note: str = "") -> None:
        if self.progress is None:
            return
        quarter = (4 * site.done) // max(1, len(site.hosts))
        if not force and quarter == site.last_reported:
            return
        site.last_reported = quarter
        self.progress(
            SiteProgress(
                site=site.name,
                state=site.state,
                workers=self.watcher.workers(site.name),
                total=len(site.hosts),
                done=site.done,
                problems=site.problems,
                note=note,
            )
        )

    # ------------------------------------------------------------------ the end

    def _wind_down(self) -> None:
        """After Ctrl-C: workers see the cancel flag within a lease refresh, interrupt their hosts and stream
        them; wait for that (bounded), then end every PC still without a result."""
        try:
            self.client.set(self.keys.cancel, "1", ex=KEY_TTL)
            deadline = time.monotonic() + self.options.grace + CANCEL_WAIT_EXTRA
            while self._pending() and time.monotonic() < deadline:
                if not any(b.started and not b.done for b in self.batches.values()):
                    break
                self._refresh_open()
                self._read(READ_BLOCK_MS)
        except KeyboardInterrupt:
            pass  # a second Ctrl-C: stop waiting now
        started_hosts = {h for b in self.batches.values() if b.started for h in b.hosts}
        for h in self._pending():
            if h in started_hosts or h in self._host_started:
                self._finish(h, HostStatus.INTERRUPTED, "interrupted before the host finished")
            else:
                self._finish(h, HostStatus.NOT_RUN, "not started: the run was interrupted")

    def _cleanup(self) -> None:
        try:
            keys = [*self.keys.all_fixed(), *(self.keys.lease(b) for b in self.batches)]
            self.client.delete(*[k for k in keys if k != self.keys.open])
            # The open key now says "closed" (signed): a batch of this run replayed later is refused at once.
            closed = {"run": self.info.id, "n": self.nonce, "ts": time.time(), "closed": True}
            self.client.set(self.keys.open, json.dumps(self.crypto.signer.sign(DOMAIN_OPEN, closed)), ex=CLOSED_TTL)
        except Exception:
            pass  # every key expires on its own (KEY_TTL)
        try:
            self.app.close()
        except Exception:
            pass


def _own_vars(play: PlaySpec, extra_vars: Mapping[str, Any]) -> Mapping[str, Any]:
    return play.vars


def _safe_url(url: str) -> str:
    return redact_text(url)
