"""The fleet queries behind `kmsfleet serve` (results/latest.py, results/fleet.py) and its views, on SQLite and a
real PostgreSQL: the per-PC latest tables agree with a plain recomputation from every stored run."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from results_factory import BASE, make_run
from sqlalchemy import MetaData, create_engine, insert

from orchestrator.redact import register_secret
from orchestrator.results import fleet
from orchestrator.results.latest import category_of, licence_state_of, site_and_room
from orchestrator.results.models import HostStatus, RunResult, utcnow
from orchestrator.results.schema import LATEST_VERSION, SCHEMA_VERSION_TABLE, define_v1, migration_0001_initial
from orchestrator.results.store import HistoryStore
from orchestrator.web import views
from orchestrator.web.app import choose_lang
from orchestrator.web.page import Table


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HistoryStore]:
    where = str(tmp_path / "history.db") if request.param == "sqlite" else request.getfixturevalue("pg_url")
    s = HistoryStore(where)
    yield s
    s.close()


def _shifted(result: RunResult, run_id: str, days: int) -> RunResult:
    delta = timedelta(days=days)
    hosts = tuple(
        dataclasses.replace(
            h,
            started=h.started + delta,
            finished=h.finished + delta,
            licences=tuple(
                dataclasses.replace(lic, expires=lic.expires + delta if lic.expires else None) for lic in h.licences
            ),
        )
        for h in result.hosts
    )
    info = dataclasses.replace(result.info, id=run_id, started=result.info.started + delta)
    return dataclasses.replace(result, info=info, hosts=hosts, finished=result.finished + delta)


def _expected_categories(runs: list[RunResult]) -> Counter[str]:
    """Each PC's category recomputed from scratch: its newest result and, per product, the newest licences."""
    newest: dict[str, tuple[object, str]] = {}
    licences: dict[tuple[str, str], tuple[object, list[int | None]]] = {}
    for run in runs:
        for h in run.hosts:
            if h.host not in newest or h.finished >= newest[h.host][0]:  # type: ignore[operator]
                newest[h.host] = (h.finished, h.status.value)
            for product in {lic.product for lic in h.licences}:
                key = (h.host, product)
                if key not in licences or h.finished >= licences[key][0]:  # type: ignore[operator]
                    licences[key] = (h.finished, [lic.license_status for lic in h.licences if lic.product == product])
    out: Counter[str] = Counter()
    for host, (_, status) in newest.items():
        statuses = [s for (h, _p), (_, ss) in licences.items() if h == host for s in ss]
        out[category_of(status, statuses)] += 1
    return out


def _overview_counts(store: HistoryStore) -> Counter[str]:
    total: Counter[str] = Counter()
    for rc in fleet.overview(store):
        total.update({c: n for c, n in rc.counts.items() if n})
    return total


def test_latest_tables_agree_with_a_recomputation_over_every_run(store: HistoryStore) -> None:
    first = make_run(30, seed=1, run_id="run-a")
    second = _shifted(make_run(20, seed=2, run_id="run-b"), "run-b", 1)
    old_import = _shifted(make_run(25, seed=3, run_id="run-c"), "run-c", -5)  # written last, older than all
    for run in (first, second, old_import):
        store.save(run)
    got = _overview_counts(store)
    assert got == _expected_categories([first, second, old_import])
    assert sum(got.values()) == 30


def test_fail_streak_counts_consecutive_problem_results(store: HistoryStore) -> None:
    base = make_run(12, seed=7, run_id="s0")
    failing = {h.host for h in base.hosts if h.status.value in ("failed", "unreachable", "auth_refused")}
    assert failing
    for day in range(3):
        store.save(_shifted(base, f"s{day}", day))
    page = fleet.hosts(store, fleet.HostFilter(min_streak=3), per_page=100)
    assert {r["host"] for r in page.rows} == failing
    fixed = dataclasses.replace(
        base, hosts=tuple(dataclasses.replace(h, status=HostStatus.OK, tasks=()) for h in base.hosts)
    )
    store.save(_shifted(fixed, "s3", 3))
    assert fleet.hosts(store, fleet.HostFilter(min_streak=1)).total == 0


def test_due_counts_down_from_when_the_licence_was_read(store: HistoryStore) -> None:
    run = make_run(20, seed=4, run_id="due1")
    store.save(run)
    now = BASE + timedelta(days=10)
    page, per_product = fleet.due(store, 30, now=now, per_page=1000)
    expected = 0
    for h in run.hosts:
        for lic in h.licences:
            ends = lic.expires or (h.finished + timedelta(days=lic.days_left) if lic.days_left is not None else None)
            if ends is not None and ends <= now + timedelta(days=30):
                expected += 1
    assert page.total == expected == sum(n for _, n in per_product)
    ends = [r["runs_out"] for r in page.rows]
    assert ends == sorted(ends)


def test_a_history_written_before_version_2_is_filled_in(tmp_path: Path) -> None:
    db = tmp_path / "v1.db"
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        metadata = MetaData()
        define_v1(metadata)
        metadata.tables[SCHEMA_VERSION_TABLE].create(conn)
        migration_0001_initial(conn)
        conn.execute(insert(metadata.tables[SCHEMA_VERSION_TABLE]).values(version=1, applied_at=utcnow()))
    engine.dispose()
    with HistoryStore(db, lock_retry_seconds=1) as s:  # writes through the current code, then downgrade
        run = make_run(15, run_id="old1")
        s.save(run)
    with create_engine(f"sqlite:///{db}").begin() as conn:
        conn.exec_driver_sql("DELETE FROM host_latest")
        conn.exec_driver_sql("DELETE FROM licence_latest")
        conn.exec_driver_sql("DROP TABLE host_latest")
        conn.exec_driver_sql("DROP TABLE licence_latest")
        conn.exec_driver_sql("DROP INDEX ix_host_results_host_finished")
        conn.exec_driver_sql("DELETE FROM schema_version WHERE version > 1")
    with HistoryStore(db) as s:
        assert s.schema_version == LATEST_VERSION
        assert _overview_counts(s) == _expected_categories([run])


def test_site_and_room_from_nested_groups() -> None:
    assert site_and_room(["school_a", "school_a_room101"]) == ("school_a", "school_a_room101")
    assert site_and_room(["room101"]) == ("", "room101")
    assert site_and_room([]) == ("", "")


def _ask(path: str, lang: str = "en", **query: str) -> views.Ask:
    return views.Ask(path, query, lang, lang != "en")


@pytest.mark.parametrize("lang", ["en", "zh-TW"])
def test_every_view_builds_and_exports_csv(store: HistoryStore, lang: str) -> None:
    secret = "S3cret-Serve-Value"
    run = make_run(20, seed=5, run_id="view1")
    store.save(run)
    register_secret(secret)
    host = run.hosts[2].host
    pages = [
        views.overview(store, _ask("/", lang)),
        views.hosts(store, _ask("/hosts", lang, category="failing")),
        views.due(store, _ask("/due", lang, days="400")),
        views.pc(store, _ask(f"/pc/{host}", lang), host),
        views.runs(store, _ask("/runs", lang)),
        views.run(store, _ask("/runs/view1", lang), "view1"),
        views.schedules(store, _ask("/schedules", lang)),
    ]
    for page in pages:
        for block in page.blocks:
            if isinstance(block, Table):
                data = block.csv()
                assert data.startswith("\ufeff".encode())
                assert secret not in data.decode("utf-8")
    assert pages[3].table("history") is not None
    assert pages[3].table("history").rows  # type: ignore[union-attr]


def test_accept_language() -> None:
    assert choose_lang(None, "zh-TW,zh;q=0.9,en;q=0.8") == ("zh-TW", False)
    assert choose_lang(None, "en-US,en;q=0.9,zh-TW;q=0.5") == ("en", False)
    assert choose_lang("zh-TW", "en") == ("zh-TW", True)
    assert choose_lang("xx", "fr, de") == ("en", False)
    assert choose_lang(None, ";;;" * 1000) == ("en", False)


def test_licence_trend_counts_each_runs_licences_by_state(store: HistoryStore) -> None:
    first = make_run(16, seed=8, run_id="trend-a")
    second = _shifted(make_run(10, seed=9, run_id="trend-b"), "trend-b", 1)
    store.save(first)
    store.save(second)
    trend = fleet.licence_trend(store, 10)
    assert [run_id for _, run_id, _ in trend] == ["trend-a", "trend-b"]
    for (_, _, counts), run in zip(trend, (first, second), strict=True):
        want = Counter(licence_state_of(lic.license_status) for h in run.hosts for lic in h.licences)
        assert counts == {s: want.get(s, 0) for s in fleet.TREND_STATES}


def test_csv_holds_every_row_not_just_the_page(store: HistoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.save(make_run(20, seed=6, run_id="csv1"))
    monkeypatch.setattr(views, "PER_PAGE", 5)
    page = views.hosts(store, _ask("/hosts"))
    shown = page.table("hosts")
    assert shown is not None and len(shown.rows) == 5 and shown.pager is not None and shown.pager.pages == 4
    whole = views.hosts(store, views.Ask("/hosts", {}, "en", False, "hosts")).table("hosts")
    assert whole is not None
    assert len(whole.csv().decode("utf-8").splitlines()) == 1 + 20
