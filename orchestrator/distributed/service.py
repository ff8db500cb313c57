"""Starting a Celery worker for one site (``kmsfleet worker``).

The worker consumes only ``kmsfleet.site.<SITE>``, runs ``concurrency`` batches at once (one prefork pool
process each, so a worker uses several cores), and takes one message per pool process at a time. Celery's own
signal handling gives the clean shutdown: SIGTERM or a first SIGINT is a warm shutdown (no new batches, the
running ones finish and are acknowledged); a second SIGINT/SIGTERM is a cold shutdown, which puts unacknowledged
batches back on the queue.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.distributed.celery_app import check_site, make_app, queue_name, redis_client
from orchestrator.distributed.controller import BrokerError
from orchestrator.distributed.keys import load_worker_keys
from orchestrator.distributed.liveness import Announcer
from orchestrator.distributed.policy import (
    PASSWORD_ENV,
    WorkerPolicy,
    guard_connections,
    guard_lookups,
    guard_modules,
)
from orchestrator.distributed.replay import DoneBatches
from orchestrator.distributed.worker import WorkerContext, run_batch, sweep_batch_dirs
from orchestrator.redact import redact_text, register_secret


def node_name(site: str) -> str:
    return f"kmsfleet-{site}-{os.getpid()}@{socket.gethostname()}"


def _preload_engine() -> None:
    """Import the engine once in the main process, so every pool process forked from it starts warm (the
    first batch would otherwise pay for importing the transport, modules and templating). Imports inside a
    function on purpose: importing them is this function's job, when a worker starts."""
    import orchestrator.distributed.worker
    import orchestrator.executor.engine
    import orchestrator.executor.plan_codec
    import orchestrator.modules.base
    import orchestrator.templating
    import orchestrator.transport.winrm  # noqa: F401


def serve_worker(
    policy: WorkerPolicy,
    broker: str,
    keys: Path,
    *,
    concurrency: int = 1,
    forks: int | None = None,
    loglevel: str = "info",
    on_ready: Callable[[str], None] | None = None,
) -> int:
    """Run a worker until it is told to stop; its exit code."""
    site = check_site(policy.site)
    register_secret(os.environ.get(PASSWORD_ENV) or None)
    ctx = WorkerContext(load_worker_keys(keys), policy, DoneBatches.for_site(site), forks)

    def task(message: Any) -> dict[str, Any]:
        return run_batch(message, broker, ctx)

    app = make_app(broker, task=task)
    client = redis_client(broker, timeout=5.0)
    try:
        client.ping()
    except Exception as exc:
        raise BrokerError(f"cannot reach the broker {redact_text(broker)}: {exc}") from None
    _preload_engine()
    guard_connections(policy)  # before the pool forks: every pool process inherits them
    guard_lookups(policy)
    guard_modules()
    sweep_batch_dirs()
    node = node_name(site)
    announcer = Announcer(client, ctx.keys.signer, site, node)
    from celery.signals import worker_ready  # lazy: start-up speed (Celery loads only when a worker starts)

    def announce(sender: Any = None, **_: Any) -> None:
        announcer.start()  # first: a controller may act on "worker ready" at once
        if on_ready is not None:
            on_ready(node)

    worker_ready.connect(announce, weak=False)
    from celery.signals import worker_shutting_down  # lazy: as above

    shutdown: dict[str, Any] = {}

    def shutting_down(sig: Any = None, how: Any = None, exitcode: Any = None, **_: Any) -> None:
        shutdown.setdefault("how", how)
        announcer.stop()  # no new batches will be taken: stop saying so

    worker_shutting_down.connect(shutting_down, weak=False)
    worker = app.Worker(
        hostname=node,
        queues=[queue_name(site)],
        concurrency=concurrency,
        pool="prefork",
        loglevel=loglevel.upper(),
        without_gossip=True,
        without_mingle=True,
        without_heartbeat=True,
        quiet=True,
        optimization="fair",
    )
    try:
        worker.start()
    finally:
        announcer.stop()
    if shutdown.get("how") == "Warm":
        return 0  # SIGTERM or a first Ctrl-C: asked to stop, and every running batch finished (Celery says 1)
    return int(getattr(worker, "exitcode", 0) or 0)
