"""How the core tells the world what happens: the executor never prints, it calls a ``Reporter``.

Reporters are called from worker threads (``task_done``/``host_done``) and must be thread-safe. The terminal
output, the history database and the distributed result stream are all reporters.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from orchestrator.results.models import HostResult, HostTaskResult, RunInfo, RunResult


class Reporter(Protocol):
    def run_started(self, info: RunInfo, hosts: Sequence[str]) -> None: ...

    def play_started(self, name: str, hosts: Sequence[str]) -> None: ...

    def task_done(self, result: HostTaskResult) -> None: ...

    def host_done(self, result: HostResult) -> None: ...

    def run_done(self, result: RunResult) -> None: ...


class NullReporter:
    def run_started(self, info: RunInfo, hosts: Sequence[str]) -> None:
        pass

    def play_started(self, name: str, hosts: Sequence[str]) -> None:
        pass

    def task_done(self, result: HostTaskResult) -> None:
        pass

    def host_done(self, result: HostResult) -> None:
        pass

    def run_done(self, result: RunResult) -> None:
        pass


class Fanout:
    """Sends every event to several reporters. A failing reporter never stops the others (a broken terminal or
    a full disk loses none of the other reporters' results); its first failure is passed on to the others'
    ``reporter_failed(name, error)`` when they have one (the terminal prints it), and every failure is kept in
    ``errors``."""

    def __init__(self, reporters: Sequence[Reporter]) -> None:
        self.reporters = list(reporters)
        self.errors: list[tuple[str, BaseException]] = []
        self._lock = threading.Lock()

    def _each(self, method: str, *args: object) -> None:
        for r in list(self.reporters):
            try:
                getattr(r, method)(*args)
            except Exception as exc:
                self.report_error(r, exc)

    def report_error(self, reporter: object, error: BaseException) -> None:
        """Record that ``reporter`` failed; tell the other reporters the first time it happens."""
        name = str(getattr(reporter, "label", type(reporter).__name__))
        with self._lock:
            first = all(n != name for n, _ in self.errors)
            self.errors.append((name, error))
        if not first:
            return
        for other in list(self.reporters):
            tell = getattr(other, "reporter_failed", None)
            if other is not reporter and callable(tell):
                try:
                    tell(name, error)
                except Exception:  # a reporter that cannot even show a warning has nothing more to lose
                    pass

    def run_started(self, info: RunInfo, hosts: Sequence[str]) -> None:
        self._each("run_started", info, hosts)

    def play_started(self, name: str, hosts: Sequence[str]) -> None:
        self._each("play_started", name, hosts)

    def task_done(self, result: HostTaskResult) -> None:
        self._each("task_done", result)

    def host_done(self, result: HostResult) -> None:
        self._each("host_done", result)

    def run_done(self, result: RunResult) -> None:
        self._each("run_done", result)
