"""The history database as a run's reporter: every finished host is saved while the run goes on.

Worker threads never wait for the database. ``host_done`` hands the result to one writer thread and returns; the
writer saves whatever has arrived in one transaction: one host at a time when PCs trickle in, dozens at once
when a room finishes together. (Saving on the worker threads made every PC queue behind one write lock: at
300 PCs the workers spent more time waiting for it than sending requests.)

``run_done`` waits for the writer, then marks the run finished (``finish_run`` also saves any host the writer
could not). ``close`` saves what is queued for a run that ended without ``run_done`` (an internal error), so
every finished host is saved either way. A database error never stops the run: it is raised from
``run_done``/``close`` for the caller to report, and the other reporters carry on.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence

from orchestrator.results.models import HostResult, HostTaskResult, RunInfo, RunResult
from orchestrator.results.store import HistoryError, HistoryStore

BATCH_LIMIT = 500  # hosts per transaction at most: keeps each write short for other kmsfleet processes
_STOP = object()


class HistoryWriteError(HistoryError):
    """Some results could not be written to the history database (they are still in the run's reports)."""


class StoreReporter:
    """Records a run in a ``HistoryStore`` as it happens (see the module docstring)."""

    label = "history"  # how a failure of this reporter is named to the others (Fanout.report_error)

    def __init__(self, store: HistoryStore) -> None:
        self.store = store
        self.run_id: str | None = None
        self.errors: list[BaseException] = []
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ Reporter

    def run_started(self, info: RunInfo, hosts: Sequence[str]) -> None:
        self.store.begin_run(info)
        self.run_id = info.id
        self._writer = threading.Thread(target=self._write_loop, args=(info.id,), name="history-writer", daemon=True)
        self._writer.start()

    def play_started(self, name: str, hosts: Sequence[str]) -> None:
        pass

    def task_done(self, result: HostTaskResult) -> None:
        pass

    def host_done(self, result: HostResult) -> None:
        if self._writer is not None:
            self._queue.put(result)

    def run_done(self, result: RunResult) -> None:
        self._stop_writer()
        self.store.finish_run(result.info.id, result)  # also saves every host the writer could not
        self.errors = []

    def close(self) -> None:
        """Save what is still queued (a run that ended without ``run_done``); idempotent."""
        self._stop_writer()
        self._raise_errors()

    # ------------------------------------------------------------------ the writer

    def _stop_writer(self) -> None:
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            self._queue.put(_STOP)
            writer.join()

    def _write_loop(self, run_id: str) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < BATCH_LIMIT:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            hosts = [item for item in batch if isinstance(item, HostResult)]
            if hosts:
                try:
                    self.store.record_hosts(run_id, hosts)
                except Exception as exc:  # kept for run_done; finish_run saves these hosts if it can
                    self.errors.append(exc)
            if any(item is _STOP for item in batch):
                return

    def _raise_errors(self) -> None:
        if self.errors:
            first, count = self.errors[0], len(self.errors)
            self.errors = []
            more = f" (and {count - 1} more write errors)" if count > 1 else ""
            raise HistoryWriteError(f"some results could not be saved in the history database: {first}{more}")
