"""The batches a worker has finished, kept in a local file so a replayed copy is refused.

The broker cannot be trusted to say what is done (anyone who can write to it can delete ``batches_done``), so
each worker also remembers, on its own disk, every batch it finished: ``<state>/worker-<SITE>.done``, one line
``<unix time> <run id> <nonce> <batch id> <attempt>`` per batch, appended with ``O_APPEND`` (atomic for one
short line, so the pool processes of one worker can share the file), lines older than a day dropped when the
file grows past ``MAX_BYTES``. ``<state>`` is ``$XDG_STATE_HOME/kmsfleet`` (default ``~/.local/state/kmsfleet``).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

KEEP_SECONDS = 24 * 3600  # a batch message expires long before this (and its run's keys too)
MAX_BYTES = 1024 * 1024


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "kmsfleet"


class DoneBatches:
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def for_site(cls, site: str) -> DoneBatches:
        return cls(state_dir() / f"worker-{site}.done")

    @staticmethod
    def key(run_id: str, nonce: str, batch_id: str, attempt: int) -> str:
        return f"{run_id} {nonce} {batch_id} {attempt}"

    def _lines(self) -> list[str]:
        try:
            with open(self.path, encoding="utf-8", errors="replace") as fh:
                return fh.read(MAX_BYTES * 2).splitlines()
        except FileNotFoundError:
            return []

    def contains(self, key: str) -> bool:
        return any(line.partition(" ")[2] == key for line in self._lines())

    def add(self, key: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, f"{int(time.time())} {key}\n".encode())
        finally:
            os.close(fd)
        with contextlib.suppress(OSError):
            if self.path.stat().st_size > MAX_BYTES:
                self._prune()

    def _prune(self) -> None:
        cutoff = time.time() - KEEP_SECONDS
        kept = [
            line for line in self._lines() if line.split(" ", 1)[0].isdigit() and int(line.split(" ", 1)[0]) >= cutoff
        ]
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        tmp.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
        os.replace(tmp, self.path)
