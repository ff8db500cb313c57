"""A small pool of daemon worker threads.

Why not ``concurrent.futures.ThreadPoolExecutor``: its threads are joined at interpreter exit, so one host stuck
in a socket read would keep kmsfleet from exiting after Ctrl-C or a time budget. Here workers are daemons: the
runner can abandon a stuck host (its results so far are kept) and the process still exits promptly.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")
_STOP = object()


class WorkerPool:
    def __init__(self, size: int, name: str = "kmsfleet-worker") -> None:
        if size < 1:
            raise ValueError("pool size must be at least 1")
        self.size = size
        self.name = name
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._pending = 0
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        if self._closed:
            raise RuntimeError("pool is closed")
        fut: Future[T] = Future()
        with self._lock:
            self._pending += 1
            if self._pending > self._idle and len(self._threads) < self.size:
                t = threading.Thread(target=self._work, name=f"{self.name}-{len(self._threads) + 1}", daemon=True)
                self._threads.append(t)
                t.start()
        self._queue.put((fn, fut))
        return fut

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            item = self._queue.get()
            with self._lock:
                self._idle -= 1
                if item is not _STOP:
                    self._pending -= 1
            if item is _STOP:
                return
            fn, fut = item
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn())
                except BaseException as exc:
                    fut.set_exception(exc)

    def shutdown(self) -> None:
        """Stop accepting work; idle workers exit. Busy (possibly stuck) workers are left to finish as daemons."""
        self._closed = True
        for _ in self._threads:
            self._queue.put(_STOP)
