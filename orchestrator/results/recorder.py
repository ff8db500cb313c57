"""The history database as a run's reporter: every finished host is saved while the run goes on, in batches.

``host_done`` turns the host into rows (redacted, encoded) on the worker's own thread and queues them. The queue
is saved in one transaction (``HistoryStore.record_prepared``: one ``executemany`` per table for the whole batch)
once ``batch_hosts`` hosts wait or the oldest has waited ``flush_seconds``: whichever worker notices it takes the
one writer's seat without waiting (a worker that finds it taken goes on; the one in the seat looks at the queue
again before leaving). A flusher thread saves a queue no worker comes back to (the last PCs of a run, a slow
classroom): it sleeps while the queue is empty (the host that starts a queue wakes it) and otherwise until the
oldest queued host is due, so every finished host is in the database within about ``flush_seconds`` plus one
transaction, whatever the run does next, and an idle or slow run costs no periodic wake-ups (a flusher that looked
8 times a second woke ~8,800 times in a 5,000-PC audit on Windows timing): a run killed with ``kill -9`` loses at most
that last moment's hosts, which stay *pending* and are retried by ``--limit @failed``.

Why batches: a transaction and its statements cost the same for one host as for a hundred; at 300–5,000 PCs
the per-host transactions were a tenth of the controller's CPU (docs/performance.md). Why not a dedicated writer
thread doing all the writing: in a busy process a thread that does not hold the GIL often gets it rarely;
measured on a CPU-bound 300-PC audit, such a writer fell 50–100 PCs behind. The flusher only writes what no
worker did.

``run_done`` saves what is left and marks the run finished (``finish_run`` also saves any host a write could
not). ``close`` saves what is left for a run that ended without ``run_done`` (an internal error), so every
finished host is saved either way. A database error never stops the run: it is raised from ``run_done``/
``close`` for the caller to report, and the other reporters carry on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from orchestrator.results.codec import HostRows
from orchestrator.results.models import HostResult, HostTaskResult, RunInfo, RunResult
from orchestrator.results.store import HistoryError, HistoryStore, prepare_host

BATCH_LIMIT = 500  # hosts per transaction at most: keeps each write short for other kmsfleet processes
BATCH_HOSTS = 100  # hosts queued that make a batch worth saving at once
FLUSH_SECONDS = 0.5  # longest a finished host waits in the queue (plus one transaction)


class HistoryWriteError(HistoryError):
    """Some results could not be written to the history database (they are still in the run's reports)."""


class StoreReporter:
    """Records a run in a ``HistoryStore`` as it happens (see the module docstring)."""

    label = "history"  # how a failure of this reporter is named to the others (Fanout.report_error)

    def __init__(
        self, store: HistoryStore, *, batch_hosts: int = BATCH_HOSTS, flush_seconds: float = FLUSH_SECONDS
    ) -> None:
        self.store = store
        self.run_id: str | None = None
        self.errors: list[BaseException] = []
        self.batch_hosts = max(1, batch_hosts)
        self.flush_seconds = max(0.01, flush_seconds)
        self._queue: list[HostRows] = []
        self._oldest: float | None = None  # when the oldest queued host was queued (monotonic)
        self._guard = threading.Lock()  # the queue and _oldest (held for a few list operations only)
        self._seat = threading.Lock()  # held by the one thread writing
        self._stop = threading.Event()
        self._queued = threading.Event()  # set while the queue holds hosts (wakes the flusher), or to stop it
        self._flusher: threading.Thread | None = None

    # ------------------------------------------------------------------ Reporter

    def run_started(self, info: RunInfo, hosts: Sequence[str]) -> None:
        self.store.begin_run(info, hosts)  # every targeted host pending: a killed run still lists them
        self.run_id = info.id
        if self._flusher is None:
            self._stop.clear()
            self._flusher = threading.Thread(target=self._flush_loop, name="kmsfleet-history-flush", daemon=True)
            self._flusher.start()

    def play_started(self, name: str, hosts: Sequence[str]) -> None:
        pass

    def task_done(self, result: HostTaskResult) -> None:
        pass

    def host_done(self, result: HostResult) -> None:
        if self.run_id is None:
            return
        rows = prepare_host(self.run_id, result)
        with self._guard:
            self._queue.append(rows)
            if self._oldest is None:
                self._oldest = time.monotonic()
                self._queued.set()
        if self._due():
            self._save_queued(wait=False)

    def run_done(self, result: RunResult) -> None:
        self._stop_flusher()
        self._save_queued(wait=True)
        self.store.finish_run(result.info.id, result)  # also saves every host a write could not
        self.errors = []

    def close(self) -> None:
        """Save what is still queued (a run that ended without ``run_done``); idempotent."""
        self._stop_flusher()
        self._save_queued(wait=True)
        if self.errors:
            first, count = self.errors[0], len(self.errors)
            self.errors = []
            more = f" (and {count - 1} more write errors)" if count > 1 else ""
            raise HistoryWriteError(f"some results could not be saved in the history database: {first}{more}")

    # ------------------------------------------------------------------ when to save

    def _due(self) -> bool:
        """Enough hosts wait for a batch, or the oldest has waited ``flush_seconds``."""
        with self._guard:
            if not self._queue or self._oldest is None:
                return False
            return len(self._queue) >= self.batch_hosts or time.monotonic() - self._oldest >= self.flush_seconds

    def _flush_loop(self) -> None:
        """Sleep until a host is queued, then until the oldest queued host is due; save if no worker did."""
        while not self._stop.is_set():
            self._queued.wait()
            with self._guard:
                oldest = self._oldest
                if oldest is None:  # saved meanwhile: sleep until the next host starts a queue
                    self._queued.clear()
                    continue
            if self._stop.wait(max(0.0, oldest + self.flush_seconds - time.monotonic())):
                return
            if self._due():
                self._save_queued(wait=False)
                # Still due: a worker holds the seat (a transaction under way); look again a little later
                # instead of at once, which would spin for as long as that transaction takes.
                if self._due() and self._stop.wait(self.flush_seconds / 4):
                    return

    def _stop_flusher(self) -> None:
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            self._stop.set()
            self._queued.set()
            flusher.join()

    # ------------------------------------------------------------------ the seat

    def _take_batch(self) -> list[HostRows]:
        with self._guard:
            batch, self._queue = self._queue[:BATCH_LIMIT], self._queue[BATCH_LIMIT:]
            if not self._queue:
                self._oldest = None  # else the rest is older still: due, saved before the seat is left
        return batch

    def _save_queued(self, *, wait: bool) -> None:
        """Save the queue if the seat is free (or, with ``wait``, once it is, and whether due or not). Looks at
        the queue again after each batch: what became due meanwhile is saved before the seat is left."""
        while (self._queue if wait else self._due()) and self._seat.acquire(blocking=wait):
            try:
                batch = self._take_batch()
                if batch and self.run_id is not None:
                    try:
                        self.store.record_prepared(self.run_id, batch)
                    except Exception as exc:  # kept for run_done/close; finish_run saves these hosts if it can
                        self.errors.append(exc)
            finally:
                self._seat.release()
