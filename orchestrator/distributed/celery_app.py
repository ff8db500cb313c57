"""The Celery app, the per-site queues and the Redis keys of a distributed run.

Redis is the broker (no result backend: task results are ignored, every result travels on the run's signed
stream). Workers do not listen to Celery's remote control (``worker_enable_remote_control=False``): a
``shutdown`` or ``pool_restart`` broadcast through the broker reaches no worker. Messages are JSON only (pickle is
refused both ways) and each batch argument is an Ed25519-signed envelope (``signing``). Tasks
are acknowledged late (after the batch finished) and rejected back to the queue when the pool process running
them dies (``task_reject_on_worker_lost``); each worker process reserves one message at a time. A message
that was taken by a worker which then vanished entirely is restored by Redis after ``VISIBILITY_TIMEOUT``; the
controller does not wait that long: it re-queues a batch as soon as the batch's lease expires (see
``controller``), and the lease check makes the later copy harmless.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from orchestrator.errors import InputError
from orchestrator.redact import register_secret

TASK_NAME = "kmsfleet.run_batch"
QUEUE_PREFIX = "kmsfleet.site."
KEY_PREFIX = "kmsfleet:run:"
PRESENCE_PREFIX = "kmsfleet:presence:"  # + site + ":" + node: a worker's signed "I consume this queue"
BROKER_ENV = "KMSFLEET_BROKER_URL"
BROKER_ENV_OLD = "KMSFLEET_BROKER"
# Longer than a batch can run (a batch is at most `forks` PCs, each bounded by its time budget, 600 s by
# default): a message is only restored by Redis when its worker died; the controller re-queues much earlier.
VISIBILITY_TIMEOUT = 3600
RESULT_EXPIRES = 3600
KEY_TTL = 24 * 3600  # every key of a run expires even if its controller is killed
LEASE_TTL = 10.0  # seconds: a batch whose lease is this old belongs to a dead worker
LEASE_REFRESH = 2.0
SITE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def queue_name(site: str) -> str:
    return QUEUE_PREFIX + site


def check_site(site: str) -> str:
    if not isinstance(site, str) or not SITE_NAME.match(site):
        raise InputError(
            f"site name {site!r} is not usable as a queue name",
            hint="letters, digits, '_', '-' and '.', at most 64 characters, e.g. school_a",
        )
    return site


def check_broker(url: str) -> str:
    """A redis:// (or rediss://, unix://) URL; its password, if any, is registered as a secret."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise InputError(
            f"--broker must be a Redis URL (redis://HOST:PORT/DB), not {url!r}",
            hint="e.g. --broker redis://127.0.0.1:6379/0",
        )
    if parts.password:
        register_secret(unquote(parts.password))
    return url


def resolve_broker(url: str | None, url_file: str | Path | None) -> str | None:
    """The broker URL from ``--broker-url-file`` (first line), ``--broker``, or the environment
    (``KMSFLEET_BROKER_URL``, then ``KMSFLEET_BROKER``); None when none is given. A file keeps the password off
    the command line (where ``ps`` shows it to every user) and out of shell history."""
    if url_file:
        path = Path(url_file).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"--broker-url-file: cannot read {path}: {getattr(exc, 'strerror', exc)}") from None
        lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
        if not lines:
            raise InputError(f"--broker-url-file: {path} holds no URL")
        return check_broker(lines[0])
    found = url or os.environ.get(BROKER_ENV) or os.environ.get(BROKER_ENV_OLD)
    return check_broker(found) if found else None


def presence_key(site: str, node: str) -> str:
    return f"{PRESENCE_PREFIX}{site}:{node}"


class RunKeys:
    """Redis keys of one run. Everything a worker writes for the run lives under ``kmsfleet:run:<id>:``."""

    def __init__(self, run_id: str) -> None:
        base = f"{KEY_PREFIX}{run_id}:"
        self.run_id = run_id
        self.events = base + "events"  # stream: every event of the run, in order
        self.open = base + "open"  # exists while the controller is waiting for results
        self.cancel = base + "cancel"  # set by the controller on Ctrl-C
        self.hosts_done = base + "hosts_done"  # set: hosts whose final result was streamed
        self.batches_done = base + "batches_done"  # set: batches whose worker streamed batch_done
        self._lease = base + "lease:"

    def lease(self, batch_id: str) -> str:
        return self._lease + batch_id

    def all_fixed(self) -> list[str]:
        return [self.events, self.open, self.cancel, self.hosts_done, self.batches_done]


def make_app(broker: str, *, task: Callable[[Any], dict[str, Any]] | None = None) -> Any:
    """The Celery app for ``broker``; on a worker, ``task`` is the body of the batch task (the controller only
    sends by name)."""
    from celery import Celery  # lazy: start-up speed (Celery takes ~0.5 s to import; most commands never need it)

    check_broker(broker)
    app = Celery("kmsfleet", broker=broker, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        event_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT},
        result_expires=RESULT_EXPIRES,
        task_ignore_result=True,
        worker_enable_remote_control=False,  # no inspect/shutdown/pool_restart broadcasts through the broker
        task_create_missing_queues=True,
        task_default_queue=QUEUE_PREFIX + "default",
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=5.0,
        redis_socket_connect_timeout=5.0,
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )

    if task is not None:
        # The worker's consumer: kombu's Redis transport with malformed entries dropped (``kombu_guard``).
        app.conf.broker_transport = "orchestrator.distributed.kombu_guard:GuardedTransport"

        def run_batch_task(*args: Any, **kwargs: Any) -> dict[str, Any]:
            # Any argument shape is accepted here and judged by ``task`` (a poison message is refused, not fatal).
            return task(args[0] if len(args) == 1 and not kwargs else {"args": len(args), "kwargs": sorted(kwargs)})

        app.task(name=TASK_NAME, acks_late=True, reject_on_worker_lost=True, ignore_result=True)(run_batch_task)
    return app


def redis_client(url: str, *, timeout: float = 10.0) -> Any:
    """A redis-py client for ``url`` with bounded connect and socket timeouts."""
    import redis  # lazy: start-up speed (only distributed runs and workers talk to Redis)

    return redis.Redis.from_url(
        url, socket_connect_timeout=min(timeout, 5.0), socket_timeout=timeout, health_check_interval=30
    )
