"""The follow-up loop (``orchestrator.followup``) with a fake clock and a fake pass runner: who is re-run,
when, how it stops, and what the final state and exit code are. The real thing runs against the lab in
tests/e2e/test_followup.py."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from orchestrator.errors import InputError
from orchestrator.exitcodes import ExitCode
from orchestrator.followup import (
    MAX_PASSES,
    FollowUpResult,
    Timing,
    Waiting,
    followup_limit,
    format_duration,
    parse_duration,
    retry_unreachable,
)
from orchestrator.results.models import HostResult, HostStatus, RunInfo, RunResult, new_run_id


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.waits: list[float] = []

    def now(self) -> float:
        return self.t

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.t += seconds
        return False


def run_of(statuses: dict[str, HostStatus], *, limit: str | None = None, interrupted: bool = False) -> RunResult:
    info = RunInfo(id=new_run_id(), playbook="audit.yml", inventory=("school.yml",), limit=limit)
    hosts = tuple(HostResult(host=h, status=s) for h, s in statuses.items())
    return RunResult(info, hosts, interrupted=interrupted)


class Classroom:
    """PCs that come on at given (fake) times; each pass reports the asked-for PCs as on or off."""

    def __init__(self, clock: FakeClock, on_at: dict[str, float], pass_seconds: float = 5.0) -> None:
        self.clock = clock
        self.on_at = on_at
        self.pass_seconds = pass_seconds
        self.calls: list[tuple[str, tuple[str, ...], float]] = []

    def status(self, host: str) -> HostStatus:
        return HostStatus.OK if self.clock.t >= self.on_at.get(host, 0.0) else HostStatus.UNREACHABLE

    def first(self) -> RunResult:
        hosts = sorted(self.on_at)
        result = run_of({h: self.status(h) for h in hosts})
        self.clock.t += self.pass_seconds
        return result

    def run_pass(self, limit: str, hosts: tuple[str, ...]) -> RunResult:
        self.calls.append((limit, hosts, self.clock.t))
        result = run_of({h: self.status(h) for h in hosts}, limit=limit)
        self.clock.t += self.pass_seconds
        return result


def follow(
    room: Classroom, clock: FakeClock, *, window: float, every: float, **kw: object
) -> tuple[RunResult, FollowUpResult]:
    started = clock.t
    first = room.first()
    out = retry_unreachable(
        first,
        room.run_pass,
        window=window,
        every=every,
        timing=Timing(started=started, now=clock.now, wait=clock.wait),
        **kw,  # type: ignore[arg-type]
    )
    return first, out


def test_reruns_only_the_unreachable_pcs_until_they_answer() -> None:
    clock = FakeClock()
    t0 = clock.t
    room = Classroom(clock, {"pc1": 0, "pc2": t0 + 1500, "pc3": t0 + 2500, "pc4": 0})
    first, out = follow(room, clock, window=7200, every=600)

    assert [h for h, s in ((h.host, h.status) for h in first.hosts) if s is HostStatus.UNREACHABLE] == ["pc2", "pc3"]
    # every pass asks for exactly the PCs still off after the pass before it, linked by run id
    asked = [hosts for _, hosts, _ in room.calls]
    assert asked == [("pc2", "pc3"), ("pc2", "pc3"), ("pc2", "pc3"), ("pc3",), ("pc3",)]
    for (limit, _, _), previous in zip(room.calls, out.runs, strict=False):
        assert limit == f"@unreachable:{previous.info.id}"
    # a pass starts `every` after the previous one started
    starts = [t0] + [at for _, _, at in room.calls]
    assert [b - a for a, b in itertools.pairwise(starts)] == [600.0] * 5
    assert out.reason == "all_reached" and out.still_unreachable == ()
    assert [h.host for h in out.final] == ["pc1", "pc2", "pc3", "pc4"]
    assert all(h.status is HostStatus.OK for h in out.final)
    assert out.exit_code == ExitCode.OK
    assert len(out.runs) == 6 and out.combined.info.id == first.info.id


def test_gives_up_when_the_window_closes_and_the_exit_code_says_unreachable() -> None:
    clock = FakeClock()
    room = Classroom(clock, {"pc1": 0, "pc2": float("inf")})
    waits: list[Waiting] = []
    _, out = follow(room, clock, window=1800, every=600, on_wait=waits.append)
    assert out.reason == "window"
    assert len(room.calls) == 3  # at +600, +1200, +1800; +2400 is past the window
    assert out.still_unreachable == ("pc2",)
    assert out.exit_code == ExitCode.UNREACHABLE
    assert [w.hosts for w in waits] == [("pc2",)] * 3
    assert waits[0].next_pass_in == pytest.approx(595.0)  # the first pass itself took 5 s
    assert all(w.remaining <= 1800 for w in waits)


def test_pass_count_is_bounded() -> None:
    clock = FakeClock()
    room = Classroom(clock, {"pc2": float("inf")}, pass_seconds=0.0)
    _, out = follow(room, clock, window=10**9, every=1, max_passes=4)
    assert out.reason == "max_passes" and len(room.calls) == 4
    _, out = follow(Classroom(clock, {"pc2": float("inf")}, 0.0), clock, window=10**9, every=1, max_passes=10**6)
    assert len(out.runs) - 1 <= MAX_PASSES


def test_nothing_to_do_when_every_pc_answered() -> None:
    clock = FakeClock()
    room = Classroom(clock, {"pc1": 0, "pc2": 0})
    _, out = follow(room, clock, window=3600, every=60)
    assert room.calls == [] and out.reason == "not_needed" and len(out.runs) == 1 and out.exit_code == 0


def test_a_failed_pc_is_not_retried_and_keeps_the_exit_code() -> None:
    clock = FakeClock()
    first = run_of({"pc1": HostStatus.FAILED, "pc2": HostStatus.UNREACHABLE})

    def run_pass(limit: str, hosts: tuple[str, ...]) -> RunResult:
        assert hosts == ("pc2",)
        return run_of(dict.fromkeys(hosts, HostStatus.OK), limit=limit)

    out = retry_unreachable(first, run_pass, window=60, every=10, timing=Timing(now=clock.now, wait=clock.wait))
    assert [h.status for h in out.final] == [HostStatus.FAILED, HostStatus.OK]
    assert out.exit_code == ExitCode.TASK_FAILED


def test_interrupted_pass_ends_the_loop_with_99() -> None:
    clock = FakeClock()
    first = run_of({"pc1": HostStatus.UNREACHABLE, "pc2": HostStatus.UNREACHABLE})
    calls: list[str] = []

    def run_pass(limit: str, hosts: tuple[str, ...]) -> RunResult:
        calls.append(limit)
        return run_of({"pc1": HostStatus.INTERRUPTED, "pc2": HostStatus.NOT_RUN}, interrupted=True)

    out = retry_unreachable(first, run_pass, window=600, every=10, timing=Timing(now=clock.now, wait=clock.wait))
    assert len(calls) == 1 and out.reason == "interrupted" and out.exit_code == ExitCode.INTERRUPTED


def test_cancel_between_passes() -> None:
    clock = FakeClock()
    first = run_of({"pc1": HostStatus.UNREACHABLE})
    never: Callable[[str, tuple[str, ...]], RunResult] = lambda limit, hosts: pytest.fail("must not run")  # noqa: E731
    out = retry_unreachable(first, never, window=600, every=10, timing=Timing(now=clock.now, wait=lambda s: True))
    assert out.reason == "cancelled" and out.exit_code == ExitCode.UNREACHABLE


def test_ctrl_c_while_waiting_ends_the_loop_with_99_and_the_latest_results() -> None:
    clock = FakeClock()
    first = run_of({"pc1": HostStatus.UNREACHABLE, "pc2": HostStatus.UNREACHABLE})
    waits = iter([False])

    def wait(seconds: float) -> bool:
        if next(waits, None) is None:
            raise KeyboardInterrupt
        return clock.wait(seconds)

    def run_pass(limit: str, hosts: tuple[str, ...]) -> RunResult:
        return run_of({"pc1": HostStatus.OK, "pc2": HostStatus.UNREACHABLE})

    out = retry_unreachable(first, run_pass, window=600, every=10, timing=Timing(now=clock.now, wait=wait))
    assert out.reason == "interrupted" and out.exit_code == ExitCode.INTERRUPTED
    assert [h.status for h in out.final] == [HostStatus.OK, HostStatus.UNREACHABLE]
    assert out.combined.interrupted


def test_without_history_the_limit_names_the_hosts() -> None:
    first = run_of({"pc1": HostStatus.UNREACHABLE})
    assert followup_limit(first, ("pc1", "pc7"), history=False) == "pc1,pc7"
    assert followup_limit(first, ("pc1",), history=True) == f"@unreachable:{first.info.id}"


@pytest.mark.parametrize(
    ("text", "unit", "seconds"),
    [
        ("90", "s", 90),
        ("90s", "s", 90),
        ("10m", "s", 600),
        ("2h", "s", 7200),
        ("1h30m", "s", 5400),
        ("1h 30m", "s", 5400),
        ("30d", "s", 30 * 86400),
        ("2w", "s", 14 * 86400),
        ("30", "d", 30 * 86400),
        ("12h", "d", 43200),
        ("1.5h", "s", 5400),
        ("2 hours", "s", 7200),
    ],
)
def test_parse_duration(text: str, unit: str, seconds: float) -> None:
    assert parse_duration(text, default_unit=unit) == seconds


@pytest.mark.parametrize("bad", ["", "abc", "10x", "0", "0m", "-5m", "5m!", "m"])
def test_parse_duration_refuses(bad: str) -> None:
    with pytest.raises(InputError) as err:
        parse_duration(bad, option="--every")
    assert "--every" in str(err.value)


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0, 45, 600, 5400, 90061)] == ["0s", "45s", "10m", "1h30m", "1d1h1m1s"]
