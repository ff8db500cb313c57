"""The worker side of a distributed run: one batch through the ordinary engine, every event streamed to Redis.

``run_batch`` (the Celery task body) first decides whether to run the message at all: it must carry the
pinned controller key's signature (``signing``), match the batch schema, be for this worker's site, be within
its validity window, belong to a run whose controller is waiting *now* (the run's ``open`` key holds a token
the controller signs afresh every second or so, with the run's nonce: an old batch replayed after its run
ended finds no fresh token), and stay inside the worker's own policy (``policy``). Anything else is refused,
logged, and acknowledged: a poison message never stops the worker. A batch that passes takes the batch's
*lease* (a Redis key with a short TTL that a background thread keeps refreshing while the batch runs), skips
PCs whose final result is already in the run's stream (a redelivered batch repeats only what was not
finished), and runs the message's compiled plan (decoded strictly by ``executor.plan_codec`` when the
message is accepted; a plan that does not decode is refused like any poison message) with the local
``ThreadEngine`` and a reporter that appends each event, signed with the worker's key, to the run's Redis
stream the moment it happens.

Duplicates are harmless by construction: a batch whose lease is held by a live process, a batch already
done, or a run whose controller is gone is skipped; a lease left by a dead process on this machine is taken
over at once (Celery's ``task_reject_on_worker_lost`` redelivers such a batch immediately).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orchestrator import __version__
from orchestrator.distributed.celery_app import KEY_TTL, LEASE_REFRESH, LEASE_TTL, RunKeys, redis_client
from orchestrator.distributed.keys import WorkerKeys
from orchestrator.distributed.message import BatchMessage, HostEntry, decode_value, run_options
from orchestrator.distributed.policy import PASSWORD_ENV, PolicyError, WorkerPolicy, check_plan
from orchestrator.distributed.replay import DoneBatches
from orchestrator.distributed.signing import DOMAIN_BATCH, DOMAIN_EVENT, DOMAIN_OPEN, SignatureError, Signer
from orchestrator.errors import InputError
from orchestrator.executor.engine import RunView, ThreadEngine, assemble_view
from orchestrator.executor.plan import BlockSpec, Node, Plan, TaskSpec
from orchestrator.executor.plan_codec import PlanCodecError, decode_plan
from orchestrator.executor.runner import new_run_info
from orchestrator.redact import redact, redact_text, register_secret
from orchestrator.results.codec import host_result_to_json, task_result_to_json
from orchestrator.results.models import HostResult, HostTaskResult, RunInfo, RunResult

BATCH_DIR_PREFIX = "kmsfleet-batch-"  # + pid: a folder left by a killed process is swept by the next worker
MAX_STREAM_EVENTS = 2_000_000  # a safety cap only; a run's stream is deleted when its controller finishes
CLOCK_SKEW = 60.0  # seconds the clocks of controller and worker may differ (both NTP-synced in practice)
OPEN_MAX_AGE = 60.0  # the run's open token must have been signed this recently (the controller re-signs every ~1 s)

log = logging.getLogger("kmsfleet.worker")


@dataclass(frozen=True)
class WorkerContext:
    """What a worker brings itself: its keys and its policy (never from the broker)."""

    keys: WorkerKeys
    policy: WorkerPolicy
    done: DoneBatches
    forks: int | None = None


class Refused(Exception):
    """A batch message this worker will not run (logged and acknowledged; the text names the rule)."""


_clients: dict[tuple[int, str], Any] = {}
_clients_lock = threading.Lock()


def shared_redis(url: str) -> Any:
    """One client per process and URL (a prefork child gets its own after the fork)."""
    key = (os.getpid(), url)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = redis_client(url)
        return client


def worker_name() -> str:
    try:
        from celery import current_task  # lazy: start-up speed (Celery is loaded only in a worker process)

        request = getattr(current_task, "request", None)
        hostname = getattr(request, "hostname", None)
        if hostname:
            return f"{hostname} pid {os.getpid()}"
    except Exception:
        pass
    return f"{socket.gethostname()} pid {os.getpid()}"


# ------------------------------------------------------------------------------------------------ the stream


class EventStream:
    """Appends events of one batch to the run's Redis stream. Thread-safe (redis-py pools connections)."""

    def __init__(self, client: Any, keys: RunKeys, msg: BatchMessage, signer: Signer) -> None:
        self.client = client
        self.keys = keys
        self.signer = signer
        self.tag = {"run": msg.run_id, "n": msg.nonce, "b": msg.batch_id, "a": msg.attempt, "s": msg.site}

    def _entry(self, event: Mapping[str, Any]) -> dict[str, str]:
        # Everything leaving the worker is scrubbed of the worker's own secrets (its password …), then signed.
        envelope = self.signer.sign(DOMAIN_EVENT, redact({**self.tag, **event}))
        return {"m": json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))}

    def emit(self, event: Mapping[str, Any]) -> None:
        self.client.xadd(self.keys.events, self._entry(event), maxlen=MAX_STREAM_EVENTS, approximate=True)

    def start(self, event: Mapping[str, Any]) -> None:
        """The first event of a batch; (re)arms the stream's expiry in case its controller never cleans up."""
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(self.keys.events, self._entry(event), maxlen=MAX_STREAM_EVENTS, approximate=True)
        pipe.expire(self.keys.events, KEY_TTL)
        pipe.execute()

    def host_done(self, result: HostResult) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(
            self.keys.events,
            self._entry({"t": "host", "r": host_result_to_json(result)}),
            maxlen=MAX_STREAM_EVENTS,
            approximate=True,
        )
        pipe.sadd(self.keys.hosts_done, result.host)
        pipe.expire(self.keys.hosts_done, KEY_TTL)
        pipe.execute()

    def batch_done(self, summary: Mapping[str, Any]) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(self.keys.events, self._entry({"t": "batch_done", **summary}), maxlen=MAX_STREAM_EVENTS)
        pipe.sadd(self.keys.batches_done, self.tag["b"])
        pipe.expire(self.keys.batches_done, KEY_TTL)
        pipe.execute()


class StreamReporter:
    """A ``Reporter`` that streams: plays and task lines for live output, whole hosts as they finish."""

    def __init__(self, stream: EventStream) -> None:
        self.stream = stream

    def run_started(self, info: RunInfo, hosts: Sequence[str]) -> None:
        pass

    def play_started(self, name: str, hosts: Sequence[str]) -> None:
        self.stream.emit({"t": "play", "name": name, "hosts": len(hosts)})

    def task_done(self, result: HostTaskResult) -> None:
        self.stream.emit({"t": "task", "r": task_result_to_json(result, data=False)})

    def host_done(self, result: HostResult) -> None:
        self.stream.host_done(result)

    def run_done(self, result: RunResult) -> None:
        pass


# ------------------------------------------------------------------------------------------------ the lease

# Keep the lease; take it back if it lapsed (Redis restarted, a long pause) and nobody else took it meanwhile.
_REFRESH = (
    "local v = redis.call('get', KEYS[1]) "
    "if v == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end "
    "if not v then redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end "
    "return 0"
)
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_TAKE_OVER = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) end "
    "return false"
)


def _pid_dead_here(owner: str) -> bool:
    """True when ``owner`` (host|pid|nonce) is a process of this machine that no longer exists."""
    host, _, rest = owner.partition("|")
    pid_text = rest.partition("|")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Lease:
    """Who runs a batch right now. Refreshed every ``LEASE_REFRESH`` s by a thread; while it refreshes it also
    watches the run's cancel flag and whether the controller still waits (``open``), and sets ``cancel``."""

    def __init__(self, client: Any, keys: RunKeys, batch_id: str, is_open: Callable[[Any], bool]) -> None:
        self.client = client
        self.keys = keys
        self.is_open = is_open
        self.key = keys.lease(batch_id)
        self.token = f"{socket.gethostname()}|{os.getpid()}|{uuid.uuid4().hex}"
        self.cancel = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refresh_errors = 0

    def acquire(self) -> bool:
        ttl = int(LEASE_TTL * 1000)
        if self.client.set(self.key, self.token, nx=True, px=ttl):
            return self._started()
        current = self.client.get(self.key)
        owner = current.decode() if isinstance(current, bytes) else str(current or "")
        if owner and _pid_dead_here(owner) and self.client.eval(_TAKE_OVER, 1, self.key, owner, self.token, ttl):
            return self._started()
        return False

    def _started(self) -> bool:
        self._thread = threading.Thread(target=self._keep, name="kmsfleet-lease", daemon=True)
        self._thread.start()
        return True

    def _keep(self) -> None:
        ttl = int(LEASE_TTL * 1000)
        while not self._stop.wait(LEASE_REFRESH):
            try:
                pipe = self.client.pipeline(transaction=False)
                pipe.eval(_REFRESH, 1, self.key, self.token, ttl)
                pipe.exists(self.keys.cancel)
                pipe.get(self.keys.open)
                _refreshed, cancelled, token = pipe.execute()
                if cancelled or not self.is_open(token):
                    self.cancel.set()
            except Exception:
                self.refresh_errors += 1  # Redis away for a moment: the next refresh may still make it

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(LEASE_REFRESH + 5)
        with contextlib.suppress(Exception):
            self.client.eval(_RELEASE, 1, self.key, self.token)


# ------------------------------------------------------------------------------------------------ the batch


def sweep_batch_dirs() -> int:
    """Remove the private batch folders left in the temporary directory by worker processes that were killed."""
    removed = 0
    for folder in Path(tempfile.gettempdir()).glob(BATCH_DIR_PREFIX + "*"):
        pid_text = folder.name[len(BATCH_DIR_PREFIX) :].split("-", 1)[0]
        if not folder.is_dir() or not pid_text.isdigit():
            continue
        try:
            os.kill(int(pid_text), 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    return removed


def batch_view(msg: BatchMessage) -> RunView:
    """The batch's PCs as the runner sees them (``executor.engine.assemble_view``, as a local run builds it):
    ``groups`` holds the batch's PCs, patterns select what the controller selected on the whole inventory."""
    entries: dict[str, HostEntry] = {h.name: h for h in msg.hosts}
    names = [h.name for h in msg.hosts]
    groups: dict[str, list[str]] = {"all": list(names)}
    for h in msg.hosts:
        for g in h.groups:
            groups.setdefault(g, []).append(h.name)
    host_vars = {h.name: decode_value(h.vars) for h in msg.hosts}
    return assemble_view(
        names,
        lambda name: copy.deepcopy(host_vars[name]),
        lambda name: entries[name].groups,
        lambda name: entries[name].inventory_file,
        lambda pattern: list(msg.selections.get(pattern, ())),
        groups,
    )


def worker_plan(plan: Plan, folder: Path) -> Plan:
    """The plan with every place it would read a controller file from (each play's folder, each role's
    ``role_path``) pointed at ``folder``, the batch's empty private folder: a worker reads no file of its own
    for a batch (``win_copy``/``win_template`` sources and ``include_vars`` files are not sent)."""
    place = str(folder)

    def task(t: TaskSpec) -> TaskSpec:
        return dataclasses.replace(t, vars={**t.vars, "role_path": place}) if "role_path" in t.vars else t

    def nodes(ns: tuple[Node, ...]) -> tuple[Node, ...]:
        return tuple(block(n) if isinstance(n, BlockSpec) else task(n) for n in ns)

    def block(b: BlockSpec) -> BlockSpec:
        vars_ = {**b.vars, "role_path": place} if "role_path" in b.vars else b.vars
        return dataclasses.replace(b, vars=vars_, block=nodes(b.block), rescue=nodes(b.rescue), always=nodes(b.always))

    plays = tuple(
        dataclasses.replace(
            p,
            base_dir=place,
            pre_tasks=nodes(p.pre_tasks),
            tasks=nodes(p.tasks),
            post_tasks=nodes(p.post_tasks),
            handlers=tuple(task(h) for h in p.handlers),
        )
        for p in plan.plays
    )
    return dataclasses.replace(plan, plays=plays)


def _run(
    msg: BatchMessage, plan: Plan, todo: list[str], stream: EventStream, cancel: threading.Event, forks: int | None
) -> RunResult:
    password = os.environ.get(PASSWORD_ENV) or None
    register_secret(password)
    options = run_options(msg.options, password=password, forks=forks)
    with tempfile.TemporaryDirectory(prefix=f"{BATCH_DIR_PREFIX}{os.getpid()}-") as tmp:
        info = new_run_info(msg.run_id, msg.playbook, (), options, None)
        engine = ThreadEngine(options, cancel)
        return engine.run(worker_plan(plan, Path(tmp)), batch_view(msg), info, StreamReporter(stream), todo)


def open_token(raw: Any, ctx: WorkerContext, run_id: str) -> Mapping[str, Any] | None:
    """The run's open token if the pinned controller key signed it recently for ``run_id`` and the run is not
    closed; else None."""
    if raw is None:
        return None
    try:
        token = ctx.keys.controller.open(DOMAIN_OPEN, json.loads(raw))
    except (SignatureError, ValueError, TypeError):
        return None
    if not isinstance(token, dict) or token.get("run") != run_id or token.get("closed"):
        return None
    ts = token.get("ts")
    if not isinstance(ts, int | float) or isinstance(ts, bool) or abs(time.time() - ts) > OPEN_MAX_AGE + CLOCK_SKEW:
        return None
    return token


def accept(raw: Any, client: Any, ctx: WorkerContext) -> tuple[BatchMessage, Plan]:
    """The batch inside ``raw`` and its decoded plan if this worker may run it now; else ``Refused`` saying
    why (a plan with an unknown type tag or a malformed shape included)."""
    try:
        body = ctx.keys.controller.open(DOMAIN_BATCH, raw)
    except SignatureError as exc:
        raise Refused(f"not signed by the pinned controller key: {exc}") from None
    try:
        msg = BatchMessage.model_validate(body)
    except ValidationError as exc:
        first = str(exc).splitlines()
        raise Refused(f"not a batch this worker can read (kmsfleet {__version__}): {' '.join(first[:3])}") from None
    try:
        plan = decode_plan(msg.plan)
    except PlanCodecError as exc:
        raise Refused(f"not a plan this worker can read (kmsfleet {__version__}): {exc}") from None
    try:
        ctx.policy.check_site(msg.site)
    except PolicyError as exc:
        raise Refused(str(exc)) from None
    now = time.time()
    if now > msg.expires:
        raise Refused(f"batch {msg.batch_id} of run {msg.run_id} expired {now - msg.expires:.0f}s ago")
    if msg.issued > now + CLOCK_SKEW:
        raise Refused(f"batch {msg.batch_id} is dated {msg.issued - now:.0f}s in the future")
    token = open_token(client.get(RunKeys(msg.run_id).open), ctx, msg.run_id)
    if token is None or token.get("n") != msg.nonce:
        raise Refused(f"run {msg.run_id} has no fresh signed open token: its controller is not waiting for it")
    if ctx.done.contains(DoneBatches.key(msg.run_id, msg.nonce, msg.batch_id, msg.attempt)):
        raise Refused(f"batch {msg.batch_id} attempt {msg.attempt} of run {msg.run_id} was already run here (replay)")
    return msg, plan


def _report_refusal(raw: Any, client: Any, ctx: WorkerContext, reason: str) -> None:
    """A refused message that names a batch of a live run of this site: tell that run's controller (signed), so
    it can send the batch again instead of waiting for it. The message itself is not trusted: the run must be
    open (fresh token signed by the controller, whose nonce is used), and the event names this worker's site."""
    try:
        body = json.loads(raw["body"]) if isinstance(raw, dict) and isinstance(raw.get("body"), str) else None
    except ValueError:
        return
    if not isinstance(body, dict):
        return
    run_id, batch_id, attempt = body.get("run_id"), body.get("batch_id"), body.get("attempt")
    if not isinstance(run_id, str) or not isinstance(batch_id, str) or len(run_id) > 64 or len(batch_id) > 80:
        return
    token = open_token(client.get(RunKeys(run_id).open), ctx, run_id)
    if token is None or not isinstance(token.get("n"), str):
        return
    event = {
        "run": run_id,
        "n": token["n"],
        "b": batch_id,
        "a": attempt if isinstance(attempt, int) and not isinstance(attempt, bool) and 1 <= attempt <= 100 else 1,
        "s": ctx.policy.site,
        "t": "batch_refused",
        "error": reason[:2000],
        "worker": worker_name(),
    }
    envelope = ctx.keys.signer.sign(DOMAIN_EVENT, event)
    pipe = client.pipeline(transaction=True)
    pipe.xadd(RunKeys(run_id).events, {"m": json.dumps(envelope)}, maxlen=MAX_STREAM_EVENTS, approximate=True)
    pipe.expire(RunKeys(run_id).events, KEY_TTL)
    pipe.execute()


def _check_policy(msg: BatchMessage, plan: Plan, ctx: WorkerContext) -> None:
    check_plan(plan)
    extra = decode_value(msg.options.extra_vars)
    for host in msg.hosts:
        ctx.policy.check_vars(host.name, {**decode_value(host.vars), **extra})


def run_batch(raw: Any, broker: str, ctx: WorkerContext) -> dict[str, Any]:
    """The body of the Celery task: run one batch, stream it, return a small summary (logged by Celery)."""
    client = shared_redis(broker)
    try:
        msg, plan = accept(raw, client, ctx)
    except Refused as exc:
        log.warning("refused a batch message: %s", exc)
        with contextlib.suppress(Exception):
            _report_refusal(raw, client, ctx, str(exc))
        return {"refused": str(exc)}
    except Exception as exc:  # Redis away, …: refuse this one, keep serving
        log.warning("could not check a batch message: %s", redact_text(f"{type(exc).__name__}: {exc}"))
        return {"refused": "could not be checked"}
    keys = RunKeys(msg.run_id)
    summary: dict[str, Any] = {"batch": msg.batch_id, "attempt": msg.attempt, "site": msg.site}
    stream = EventStream(client, keys, msg, ctx.keys.signer)
    try:
        _check_policy(msg, plan, ctx)
    except PolicyError as exc:
        log.warning("refused batch %s of run %s: %s", msg.batch_id, msg.run_id, exc)
        with contextlib.suppress(Exception):
            stream.emit({"t": "batch_failed", "error": f"refused by the worker's policy: {exc}"})
        return {**summary, "refused": str(exc)}
    if client.sismember(keys.batches_done, msg.batch_id):
        return {**summary, "skipped": "the batch was already done"}
    lease = Lease(client, keys, msg.batch_id, lambda raw: open_token(raw, ctx, msg.run_id) is not None)
    if not lease.acquire():
        return {**summary, "skipped": "another live worker is running this batch"}
    try:
        done = {m.decode() if isinstance(m, bytes) else str(m) for m in client.smembers(keys.hosts_done)}
        todo = [h.name for h in msg.hosts if h.name not in done]
        stream.start(
            {"t": "batch_started", "worker": worker_name(), "hosts": len(todo), "skipped": len(msg.hosts) - len(todo)}
        )
        counts: dict[str, int] = {}
        if todo:
            result = _run(msg, plan, todo, stream, lease.cancel, ctx.forks)
            counts = {k: v for k, v in result.counts().items() if v}
        summary.update(hosts=len(todo), counts=counts)
        stream.batch_done({"hosts": len(todo), "counts": counts})
        with contextlib.suppress(OSError):
            ctx.done.add(DoneBatches.key(msg.run_id, msg.nonce, msg.batch_id, msg.attempt))
        return summary
    except Exception as exc:
        text = exc.render() if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
        error = redact_text(text)
        with contextlib.suppress(Exception):
            stream.emit({"t": "batch_failed", "error": error, "worker": worker_name()})
        return {**summary, "error": error}
    finally:
        lease.release()
