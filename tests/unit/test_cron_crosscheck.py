"""kmsfleet's cron parser (``orchestrator.schedule``) fires at the same times as cronsim, a maintained cron
evaluator (the one Healthchecks.io uses), on lists, ranges, steps, names, Sunday as 0 or 7 and the Vixie rule
for a restricted day-of-month *and* day-of-week. kmsfleet keeps its own parser because the parsed fields feed
the systemd ``OnCalendar`` and ``schtasks`` translations and its errors name the field and its range;
this test keeps its meaning tied to a well-kept implementation."""

from __future__ import annotations

from datetime import datetime

import cronsim
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.schedule import MACROS, CronError, parse_cron

EXPRESSIONS = [
    "0 7 * * 1-5",
    "*/15 * * * *",
    "5/15 * * * *",
    "0 0 1 * *",
    "0 0 * * 0",
    "0 0 * * 7",
    "30 6 1,15 * *",
    "0 12 * * mon,wed,fri",
    "0 0 13 * 5",
    "0 0 */10 * 1",
    "0 9-17/2 * * *",
    "0 0 29 2 *",
    "0 0 31 * *",
    "15 3 * jan-mar *",
    "0 0 * * sun-sat",
    "0 0 1-7 * 1",
    "*/7 */5 * * *",
    "59 23 31 12 *",
    "0 8 * * 1-5/2",
    "0 0 */2 * *",
    "0 22 * * 6,0",
]
START = datetime(2024, 2, 27, 13, 37)  # a leap year, just before 29 February


def _theirs(expr: str, start: datetime, count: int) -> list[datetime]:
    it = cronsim.CronSim(expr, start)
    return [next(it) for _ in range(count)]


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_same_times_as_cronsim(expr: str) -> None:
    assert parse_cron(expr).next_times(START, 40) == _theirs(expr, START, 40)


@pytest.mark.parametrize("macro", sorted(MACROS))
def test_macros_fire_as_their_expansion(macro: str) -> None:
    assert parse_cron(macro).next_times(START, 10) == _theirs(MACROS[macro], START, 10)


def _field(low: int, high: int) -> st.SearchStrategy[str]:
    number = st.integers(low, high)
    single = number.map(str)
    span = st.tuples(number, number).map(lambda t: f"{min(t)}-{max(t)}")
    stepped = st.tuples(st.sampled_from(["*"]) | span, st.integers(1, high - low + 1)).map(lambda t: f"{t[0]}/{t[1]}")
    item = single | span | stepped
    return st.just("*") | st.lists(item, min_size=1, max_size=3).map(",".join)


@settings(max_examples=150, deadline=None)
@given(_field(0, 59), _field(0, 23), _field(1, 31), _field(1, 12), _field(0, 7), st.datetimes(datetime(2020, 1, 1)))
def test_random_expressions_agree(m: str, h: str, dom: str, mon: str, dow: str, start: datetime) -> None:
    expr = f"{m} {h} {dom} {mon} {dow}"
    try:
        ours = parse_cron(expr)
    except CronError:  # an expression that never fires (31 February) is refused by kmsfleet
        return
    start = start.replace(microsecond=0)
    assert ours.next_times(start, 5) == _theirs(expr, start, 5)
