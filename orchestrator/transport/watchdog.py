"""One daemon thread that ends HTTP exchanges past their wall time, whatever they are blocked in.

A socket timeout bounds each ``recv``, not an exchange: an endpoint that trickles its status line and headers a
byte at a time keeps http.client reading for as long as it likes (100 headers of 64 KiB each). The watchdog
holds each exchange's deadline and, once it passes, shuts the exchange's socket down: the blocked read returns at
once and the exchange fails (``BoundedSession`` turns that into ``SlowResponse``). Exchanges that end in time
cancel their watch; nothing is shut down after it ends.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from collections.abc import Callable


class Watch:
    """One exchange under watch: ``fired`` once its socket was shut down."""

    __slots__ = ("done", "fired", "seq", "sock_of", "until")

    def __init__(self, until: float, seq: int, sock_of: Callable[[], object | None]) -> None:
        self.until = until
        self.seq = seq
        self.sock_of = sock_of
        self.fired = False
        self.done = False

    def __lt__(self, other: Watch) -> bool:
        return (self.until, self.seq) < (other.until, other.seq)


class Watchdog:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[Watch] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, until: float, sock_of: Callable[[], object | None]) -> Watch:
        """Watch an exchange that must be over by the monotonic time ``until``; ``sock_of()`` gives its socket."""
        entry = Watch(until, next(self._seq), sock_of)
        with self._cond:
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="kmsfleet-exchange-watchdog", daemon=True)
                self._thread.start()
            if self._heap[0] is entry:
                self._cond.notify()
        return entry

    def release(self, entry: Watch) -> None:
        """The exchange is over (or failed): never shut its socket down from now on."""
        with self._cond:
            entry.done = True
            entry.sock_of = _no_socket  # let go of the connection now, not when the entry leaves the heap

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0].until - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                entry = heapq.heappop(self._heap)
                entry.fired = True
                _shutdown(entry.sock_of())


def _no_socket() -> None:
    return None


def _shutdown(sock: object | None) -> None:
    if isinstance(sock, socket.socket):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


WATCHDOG = Watchdog()
