"""Claiming a free block of loopback addresses (127.<A>.0.0/16) for one lab.

Several labs may run at once on one machine (parallel tests, a demo beside `lab serve`). A lab claims the
second octet ``A`` by binding a small TCP "claim" socket on ``127.<A>.0.1:CLAIM_PORT`` and holding it while it
runs; a second lab finds that address busy and moves on. Nothing is ever bound outside 127.0.0.0/8.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass

CLAIM_PORT = 5984


@dataclass
class Claim:
    octet: int
    sock: socket.socket

    @property
    def prefix(self) -> str:
        return f"127.{self.octet}"

    def release(self) -> None:
        self.sock.close()


def claim_prefix(preferred: int | None = None, low: int = 10, high: int = 250) -> Claim:
    """Claim ``127.<A>`` for a lab. ``preferred`` is tried first (e.g. 0 for the documented 127.0.1.x)."""
    candidates = ([preferred] if preferred is not None else []) + [a for a in range(low, high + 1) if a != preferred]
    for octet in candidates:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((f"127.{octet}.0.1", CLAIM_PORT))
            sock.listen(1)
        except OSError as exc:
            sock.close()
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                continue
            raise
        return Claim(octet, sock)
    raise RuntimeError(f"no free loopback block between 127.{low}.x.x and 127.{high}.x.x")
