"""Follow-up runs: keep re-running only the PCs that were switched off, until they answer or time runs out.

``kmsfleet run … --retry-unreachable-for 2h --every 10m``: after the first pass, every ``every`` the PCs that
ended *unreachable* are run again (and only those), until none is left, the window closes or the pass limit
is reached. Each pass is its own run in the history, linked to the one before by its limit
``@unreachable:<previous run id>``. The final state of a PC is its result in the last pass that included it;
the exit code is computed from those final states, so a PC that answered on the third pass counts as reached.

The loop knows nothing about playbooks or terminals: the caller passes ``run_pass(limit, hosts)`` (run the
same playbook with this ``--limit``), a clock and a wait function, which is what makes it testable without a
network. Also here: ``parse_duration`` for ``2h``/``10m``/``30d``-style options.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from orchestrator.errors import InputError
from orchestrator.results.models import HostResult, HostStatus, RunResult

MAX_PASSES = 500  # a hard cap on follow-up passes whatever window and interval say
MAX_WINDOW_SECONDS = 7 * 86400.0  # a follow-up loop never runs for more than a week
MIN_EVERY_SECONDS = 1.0

_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hrs": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
    "w": 604800.0,
    "week": 604800.0,
    "weeks": 604800.0,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")


def parse_duration(text: str, *, default_unit: str = "s", option: str = "duration") -> float:
    """Seconds in ``text``: ``90``, ``90s``, ``10m``, ``2h``, ``1h30m``, ``30d``, ``2w`` (a plain number is in
    ``default_unit``). Raises ``InputError`` naming ``option`` for anything else, zero or negative."""
    raw = str(text).strip().lower()
    pos = 0
    total = 0.0
    parts = 0
    while pos < len(raw):
        if raw[pos].isspace():
            pos += 1
            continue
        m = _PART.match(raw, pos)
        if m is None or m.end() == pos:
            break
        number, unit = m.group(1), m.group(2) or default_unit
        if unit not in _UNITS:
            raise InputError(
                f"{option} {text!r}: unknown unit {unit!r}",
                hint="use s, m, h, d or w, e.g. 90s, 10m, 2h, 30d, 2w",
            )
        total += float(number) * _UNITS[unit]
        parts += 1
        pos = m.end()
    if parts == 0 or pos < len(raw):
        raise InputError(f"{option} {text!r} is not a duration", hint="write it like 90s, 10m, 2h, 1h30m, 30d or 2w")
    if not math.isfinite(total) or total <= 0:
        raise InputError(f"{option} {text!r}: must be more than zero")
    return total


def format_duration(seconds: float) -> str:
    """``2h``, ``10m``, ``1h30m``, ``45s``: a duration as people write it."""
    s = max(0, round(seconds))
    if s == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= size:
            out.append(f"{s // size}{unit}")
            s %= size
    return "".join(out)


# --------------------------------------------------------------------------------------------- the loop


@dataclass(frozen=True)
class Waiting:
    """Told to the caller before each wait: who is still off, when the next pass starts, when we give up."""

    hosts: tuple[str, ...]
    next_pass_in: float  # seconds
    remaining: float  # seconds until the window closes
    passes_done: int  # including the first run


@dataclass(frozen=True)
class FollowUpResult:
    runs: tuple[RunResult, ...]  # the first run, then each follow-up pass, in order
    final: tuple[HostResult, ...]  # every PC of the first run with the result of the last pass that included it
    still_unreachable: tuple[str, ...]
    interrupted: bool
    reason: str  # "all_reached" | "window" | "max_passes" | "cancelled" | "interrupted" | "not_needed"

    @property
    def combined(self) -> RunResult:
        """The first run's description with every PC's final result: what the reports of the whole
        follow-up show."""
        first = self.runs[0]
        return RunResult(
            info=first.info,
            hosts=self.final,
            finished=self.runs[-1].finished,
            interrupted=self.interrupted,
        )

    @property
    def exit_code(self) -> int:
        """The exit code from the final state of every PC (interrupted wins, then failed, refused, unreachable)."""
        return int(self.combined.exit_code)


def unreachable_hosts(result: RunResult) -> tuple[str, ...]:
    return tuple(h.host for h in result.hosts if h.status is HostStatus.UNREACHABLE)


def followup_limit(previous: RunResult, hosts: Sequence[str], *, history: bool) -> str:
    """The ``--limit`` of the next pass: ``@unreachable:<previous run>`` when the runs are recorded (which
    both selects exactly those PCs and links the pass to the run before it), else the host names."""
    if history:
        return f"@unreachable:{previous.info.id}"
    return ",".join(hosts)


@dataclass(frozen=True)
class Timing:
    """The follow-up loop's time: when its window opened (None: when the loop starts), the clock it reads,
    how it waits (``wait(seconds)`` returns True when cancelled; default ``cancel.wait``) and the event that
    cancels it between passes. Tests give a fake clock."""

    started: float | None = None
    now: Callable[[], float] = time.monotonic
    wait: Callable[[float], bool] | None = None
    cancel: threading.Event | None = None


def _pause(delay: float, sleep: Callable[[float], bool], stop: threading.Event) -> str | None:
    """Wait ``delay`` seconds before the next pass; why the loop must stop instead (or None to go on)."""
    try:
        cancelled = delay > 0 and sleep(delay)
    except KeyboardInterrupt:  # Ctrl-C (or SIGTERM) between passes: every PC keeps its latest result
        return "interrupted"
    if cancelled or stop.is_set():
        return "cancelled"
    return None


def _keep_latest(final: dict[str, HostResult], order: list[str], result: RunResult) -> None:
    """Every PC's latest result, in the order the PCs were first seen."""
    for h in result.hosts:
        if h.host not in final:  # not in the first run (inventory changed between passes): keep it too
            order.append(h.host)
        final[h.host] = h


def _outcome(runs: list[RunResult], hosts: list[HostResult], interrupted: bool, reason: str) -> FollowUpResult:
    still = tuple(h.host for h in hosts if h.status is HostStatus.UNREACHABLE)
    return FollowUpResult(tuple(runs), tuple(hosts), still, interrupted, reason)


def retry_unreachable(
    first: RunResult,
    run_pass: Callable[[str, tuple[str, ...]], RunResult],
    *,
    window: float,
    every: float,
    history: bool = True,
    max_passes: int = MAX_PASSES,
    on_wait: Callable[[Waiting], None] | None = None,
    timing: Timing = Timing(),
) -> FollowUpResult:
    """Re-run the unreachable PCs of ``first`` every ``every`` seconds for at most ``window`` seconds
    (counted from ``timing.started``, default: now) and at most ``max_passes`` follow-up passes.

    ``run_pass(limit, hosts)`` runs the same playbook with that ``--limit`` (which selects ``hosts``) and
    returns its result. A pass starts
    ``every`` seconds after the previous pass *started* (at once if that pass took longer), and only while
    the window is open. ``timing`` says when the window opened and where the time comes from; its ``cancel``
    stops the loop between passes (its ``wait(seconds)``, default ``cancel.wait``, sleeps and returns True
    when cancelled). A pass that was interrupted (Ctrl-C), or a Ctrl-C while waiting
    (KeyboardInterrupt from ``wait``), ends the loop as interrupted, with every PC's latest result."""
    if every <= 0 or window <= 0:
        raise ValueError("window and every must be positive")
    window = min(window, MAX_WINDOW_SECONDS)
    max_passes = max(0, min(max_passes, MAX_PASSES))
    now = timing.now
    stop = timing.cancel or threading.Event()
    sleep = timing.wait or stop.wait
    last_start = t0 = now() if timing.started is None else timing.started
    deadline = t0 + window
    runs: list[RunResult] = [first]
    final: dict[str, HostResult] = {h.host: h for h in first.hosts}
    order = [h.host for h in first.hosts]
    pending = unreachable_hosts(first)
    interrupted = first.interrupted
    reason = "interrupted" if interrupted else ("all_reached" if pending else "not_needed")
    if interrupted:
        pending = ()
    passes = 0
    while pending:
        if passes >= max_passes:
            reason = "max_passes"
            break
        start_at = last_start + every
        current = now()
        if start_at > deadline:
            reason = "window"
            break
        delay = max(0.0, start_at - current)
        if on_wait is not None:
            on_wait(Waiting(pending, delay, max(0.0, deadline - current), len(runs)))
        stopped = _pause(delay, sleep, stop)
        if stopped is not None:
            interrupted, reason = stopped == "interrupted", stopped
            break
        last_start = now()
        result = run_pass(followup_limit(runs[-1], pending, history=history), pending)
        passes += 1
        runs.append(result)
        _keep_latest(final, order, result)
        if result.interrupted:
            interrupted = True
            reason = "interrupted"
            break
        pending = unreachable_hosts(result)
        if not pending:
            reason = "all_reached"
    return _outcome(runs, [final[name] for name in order], interrupted, reason)


__all__ = [
    "MAX_PASSES",
    "FollowUpResult",
    "Timing",
    "Waiting",
    "followup_limit",
    "format_duration",
    "parse_duration",
    "retry_unreachable",
    "unreachable_hosts",
]
