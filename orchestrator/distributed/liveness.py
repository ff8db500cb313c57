"""Which sites have a live worker: Celery's remote-control ``inspect().active_queues()``, asked every few
seconds from a background thread (each broadcast waits at most ``reply_timeout``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from orchestrator.distributed.celery_app import QUEUE_PREFIX


class SiteWatcher:
    def __init__(self, app: Any, sites: Iterable[str], *, interval: float = 2.0, reply_timeout: float = 1.0) -> None:
        self.app = app
        self.sites = set(sites)
        self.interval = interval
        self.reply_timeout = reply_timeout
        self._lock = threading.Lock()
        self._workers: dict[str, set[str]] = {s: set() for s in self.sites}
        self._last_seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0

    def check_once(self, reply_timeout: float | None = None) -> None:
        """Ask every worker which queues it consumes; update the per-site view."""
        try:
            wait = self.reply_timeout if reply_timeout is None else reply_timeout
            replies = self.app.control.inspect(timeout=wait).active_queues() or {}
        except Exception:
            self.errors += 1
            return
        found: dict[str, set[str]] = {s: set() for s in self.sites}
        for node, queues in replies.items():
            for queue in queues or ():
                name = str(queue.get("name", "")) if isinstance(queue, dict) else ""
                site = name[len(QUEUE_PREFIX) :] if name.startswith(QUEUE_PREFIX) else ""
                if site in found:
                    found[site].add(str(node))
        now = time.monotonic()
        with self._lock:
            self._workers = found
            for site, nodes in found.items():
                if nodes:
                    self._last_seen[site] = now

    def seen(self, site: str) -> None:
        """Something from ``site`` arrived (a stream event): its worker is alive now."""
        with self._lock:
            self._last_seen[site] = time.monotonic()

    def workers(self, site: str) -> int:
        with self._lock:
            return len(self._workers.get(site, ()))

    def last_seen(self, site: str) -> float | None:
        with self._lock:
            return self._last_seen.get(site)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="kmsfleet-site-watcher", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.check_once()

    def stop(self, wait: float = 0.2) -> None:
        """Stop asking; a question in flight is not waited for (its thread is a daemon and ends on its own)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(wait)
