"""Which sites have a live worker: each worker announces itself with a *signed* presence key, the controller
reads them every few seconds.

A worker's main process writes ``kmsfleet:presence:<SITE>:<NODE>`` every ``PRESENCE_REFRESH`` seconds (TTL
``PRESENCE_TTL``): an envelope signed with the worker's key holding its site, node name and the time. The
controller counts a node as live only if the signature verifies with that site's pinned key, the body names
the same site and node as the key, and the time is recent. (Celery's remote-control ``inspect`` is not used:
workers do not listen to remote control at all, see ``celery_app``.) A forged or replayed announcement cannot
make the controller send a site's batches into a queue nobody consumes for longer than ``PRESENCE_MAX_AGE``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from orchestrator.distributed.celery_app import PRESENCE_PREFIX, presence_key
from orchestrator.distributed.signing import DOMAIN_PRESENCE, SignatureError, Signer, Verifier

PRESENCE_REFRESH = 2.0
PRESENCE_TTL = 10
MAX_NODES = 200  # presence keys read per site and check (a flood of fake ones costs the controller nothing more)
PRESENCE_MAX_AGE = 30.0  # seconds (both ways: clocks of controller and workers are assumed NTP-synced)


def announce(client: Any, signer: Signer, site: str, node: str) -> None:
    body = {"site": site, "node": node, "ts": time.time()}
    client.set(presence_key(site, node), json.dumps(signer.sign(DOMAIN_PRESENCE, body)), ex=PRESENCE_TTL)


class Announcer:
    """The worker side: a daemon thread that keeps the presence key fresh until ``stop``."""

    def __init__(self, client: Any, signer: Signer, site: str, node: str) -> None:
        self.client, self.signer, self.site, self.node = client, signer, site, node
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0

    def start(self) -> None:
        with contextlib.suppress(Exception):
            announce(self.client, self.signer, self.site, self.node)
        self._thread = threading.Thread(target=self._loop, name="kmsfleet-presence", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(PRESENCE_REFRESH):
            try:
                announce(self.client, self.signer, self.site, self.node)
            except Exception:
                self.errors += 1  # Redis away for a moment

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(PRESENCE_REFRESH + 2)
        with contextlib.suppress(Exception):
            self.client.delete(presence_key(self.site, self.node))


class SiteWatcher:
    """The controller side: which sites have live (verified) workers."""

    def __init__(
        self, client: Any, verifiers: Mapping[str, Verifier], sites: Iterable[str], *, interval: float = 2.0
    ) -> None:
        self.client = client
        self.verifiers = verifiers
        self.sites = set(sites)
        self.interval = interval
        self._lock = threading.Lock()
        self._workers: dict[str, set[str]] = {s: set() for s in self.sites}
        self._last_seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0
        self.refused = 0

    def _live(self, site: str, key: bytes | str, raw: Any) -> str | None:
        node = (key.decode() if isinstance(key, bytes) else key)[len(PRESENCE_PREFIX) + len(site) + 1 :]
        try:
            body = self.verifiers[site].open(DOMAIN_PRESENCE, json.loads(raw))
        except (SignatureError, ValueError, TypeError):
            self.refused += 1
            return None
        if not isinstance(body, dict) or body.get("site") != site or body.get("node") != node:
            self.refused += 1
            return None
        ts = body.get("ts")
        if not isinstance(ts, int | float) or abs(time.time() - float(ts)) > PRESENCE_MAX_AGE:
            self.refused += 1
            return None
        return node

    def check_once(self) -> None:
        found: dict[str, set[str]] = {s: set() for s in self.sites}
        try:
            for site in self.sites:
                found_keys = self.client.scan_iter(match=f"{PRESENCE_PREFIX}{site}:*", count=200)
                keys = list(itertools.islice(found_keys, MAX_NODES))
                values = self.client.mget(keys) if keys else []
                for key, raw in zip(keys, values, strict=True):
                    node = self._live(site, key, raw) if raw is not None else None
                    if node is not None:
                        found[site].add(node)
        except Exception:
            self.errors += 1
            return
        now = time.monotonic()
        with self._lock:
            self._workers = found
            for site, nodes in found.items():
                if nodes:
                    self._last_seen[site] = now

    def seen(self, site: str) -> None:
        """A verified event from ``site`` arrived: its worker is alive now."""
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
        self._stop.set()
        if self._thread is not None:
            self._thread.join(wait)
