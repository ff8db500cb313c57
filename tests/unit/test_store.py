"""The history store on real SQLite files: round trips, history queries, migrations, locations, secrets."""

from __future__ import annotations

import base64
import dataclasses
import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from results_factory import BASE, make_host, make_info, make_run
from sqlalchemy import event, insert
from sqlalchemy.exc import IntegrityError

from orchestrator.errors import InputError
from orchestrator.redact import MASK, register_secret
from orchestrator.results.models import HostStatus, LicenceRecord, RunResult
from orchestrator.results.schema import LATEST_VERSION, TABLES
from orchestrator.results.store import (
    ENV_DB,
    HistoryError,
    HistoryStore,
    RunNotFound,
    default_db_path,
    resolve_db_url,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HistoryStore]:
    """The history on a SQLite file, and on a real PostgreSQL server (tests/pgkit.py)."""
    where = str(tmp_path / "history.db") if request.param == "sqlite" else request.getfixturevalue("pg_url")
    s = HistoryStore(where)
    yield s
    s.close()


def _record_all(store: HistoryStore, result: RunResult) -> None:
    store.begin_run(result.info)
    for host in result.hosts:
        store.record_host(result.info.id, host)
    store.finish_run(result.info.id, result)


def test_round_trip_reconstructs_the_frozen_models_exactly(store: HistoryStore) -> None:
    result = make_run()
    _record_all(store, result)
    loaded = store.load_run(result.info.id)
    assert loaded.info == result.info
    for got, want in zip(loaded.hosts, result.hosts, strict=True):
        assert got == want, got.host
    assert loaded == result
    assert loaded.exit_code == result.exit_code
    assert [h.to_json() for h in loaded.hosts] == [h.to_json() for h in result.hosts]


def test_host_order_comes_from_the_result_not_from_completion_order(store: HistoryStore) -> None:
    result = make_run(12)
    store.begin_run(result.info)
    for host in reversed(result.hosts[3:]):  # finish out of order; 3 hosts never recorded individually
        store.record_host(result.info.id, host)
    store.finish_run(result.info.id, result)
    assert store.load_run(result.info.id) == result


def test_finish_run_alone_stores_a_whole_result(store: HistoryStore) -> None:
    result = make_run(8, run_id="imported0001")
    store.save(result)
    assert store.load_run("imported0001") == result


def test_runs_summaries_newest_first_with_counts_and_state(store: HistoryStore) -> None:
    first = make_run(10, run_id="aaaa00000001")
    second = make_run(6, run_id="bbbb00000002")
    second = dataclasses.replace(second, info=dataclasses.replace(second.info, started=BASE + timedelta(days=1)))
    _record_all(store, first)
    _record_all(store, second)
    summaries = store.runs()
    assert [s.id for s in summaries] == ["bbbb00000002", "aaaa00000001"]
    assert [s.id for s in store.runs(last=1)] == ["bbbb00000002"]
    top = summaries[0]
    assert dict(top.counts) == second.counts()
    assert top.hosts == 6
    assert top.exit_code == second.exit_code
    assert top.state == "finished"
    assert top.finished == second.finished
    assert top.to_json()["counts"] == second.counts()


def test_a_run_without_finish_is_running_while_its_writer_lives_and_loads_as_interrupted(
    store: HistoryStore,
) -> None:
    result = make_run(6)
    store.begin_run(result.info)
    for host in result.hosts[:4]:
        store.record_host(result.info.id, host)
    (summary,) = store.runs()
    assert summary.state == "running"  # this very process is the writer
    assert summary.finished is None and summary.exit_code is None
    assert summary.hosts == 4
    loaded = store.load_run(result.info.id)
    assert loaded.interrupted
    assert loaded.hosts == result.hosts[:4]
    assert loaded.finished == max(h.finished for h in result.hosts[:4])


def test_interrupted_run_is_reported_so(store: HistoryStore) -> None:
    result = make_run(4, interrupted=True)
    _record_all(store, result)
    (summary,) = store.runs()
    assert summary.state == "interrupted"
    assert summary.exit_code == 99
    assert store.load_run(result.info.id).interrupted


def test_recording_a_host_twice_replaces_it(store: HistoryStore) -> None:
    info = make_info("replace00001")
    store.begin_run(info)
    first = make_host(3)  # failed, with tasks and licences
    store.record_host(info.id, first)
    second = dataclasses.replace(make_host(4), host=first.host, tasks=(), licences=first.licences[:1])
    store.record_host(info.id, second)
    loaded = store.load_run(info.id)
    assert loaded.hosts == (second,)


def test_record_host_for_an_unknown_run_is_refused(store: HistoryStore) -> None:
    with pytest.raises(RunNotFound):
        store.record_host("nosuchrun", make_host(1))
    with pytest.raises(RunNotFound):
        store.load_run("nosuchrun")
    with pytest.raises(RunNotFound):
        store.hosts_with_status("nosuchrun", [HostStatus.FAILED])


def test_begin_run_twice_is_an_error(store: HistoryStore) -> None:
    info = make_info("dup000000001")
    store.begin_run(info)
    with pytest.raises(HistoryError):
        store.begin_run(info)


def test_hosts_with_status_in_natural_order(store: HistoryStore) -> None:
    result = make_run()
    _record_all(store, result)
    wanted = {HostStatus.FAILED, HostStatus.UNREACHABLE}
    got = store.hosts_with_status(result.info.id, wanted)
    expected = [h.host for h in result.hosts if h.status in wanted]  # factory order is pc1..pc40
    assert got == expected
    assert store.hosts_with_status(result.info.id, ["auth_refused"]) == [
        h.host for h in result.hosts if h.status is HostStatus.AUTH_REFUSED
    ]
    assert store.hosts_with_status(result.info.id, []) == []


def test_last_run_matches_playbook_and_inventory(store: HistoryStore) -> None:
    a = make_run(3, run_id="lastrun00001")
    b = make_run(3, run_id="lastrun00002")
    b = dataclasses.replace(b, info=dataclasses.replace(b.info, started=BASE + timedelta(hours=2)))
    other = make_run(3, run_id="lastrun00003")
    other = dataclasses.replace(
        other, info=dataclasses.replace(other.info, playbook="playbooks/office.yml", started=BASE + timedelta(days=3))
    )
    for r in (a, b, other):
        _record_all(store, r)
    assert store.last_run("playbooks/windows.yml", ["inventories/school.yml"]) == "lastrun00002"
    assert store.last_run("playbooks/office.yml", ("inventories/school.yml",)) == "lastrun00003"
    assert store.last_run("playbooks/windows.yml", ["inventories/other.yml"]) is None
    assert store.resolve_run("last") == "lastrun00003"
    assert store.resolve_run("lastrun00001") == "lastrun00001"
    with pytest.raises(RunNotFound):
        store.resolve_run("lastrun")  # ambiguous prefix
    with pytest.raises(RunNotFound):
        store.resolve_run("zzz")


def test_latest_licences_per_host_and_product(store: HistoryStore) -> None:
    monday = make_run(6, run_id="monday000001")
    _record_all(store, monday)
    # Friday: pc2 re-activated (Windows changes), pc3 was off (keeps Monday's state), pc4 lost Visio
    pc2 = make_host(2)
    win = dataclasses.replace(pc2.licences[0], status="Licensed", days_left=180, expires=None)
    pc2 = dataclasses.replace(pc2, licences=(win,), finished=BASE + timedelta(days=4))
    pc3 = dataclasses.replace(make_host(3), status=HostStatus.UNREACHABLE, licences=(), tasks=())
    pc3 = dataclasses.replace(pc3, finished=BASE + timedelta(days=4))
    pc4 = make_host(4)
    pc4 = dataclasses.replace(pc4, licences=pc4.licences[:2], finished=BASE + timedelta(days=4))
    friday = RunResult(
        info=dataclasses.replace(make_info("friday000001"), started=BASE + timedelta(days=4)),
        hosts=(pc2, pc3, pc4),
        finished=BASE + timedelta(days=4, minutes=1),
    )
    _record_all(store, friday)
    rows = store.latest_licences(now=BASE + timedelta(days=5))
    by_host: dict[str, list[tuple[str, str, str]]] = {}
    for row in rows:
        by_host.setdefault(row.host, []).append((row.licence.product, row.licence.name, row.run_id))
    assert [r.host for r in rows] == sorted((r.host for r in rows), key=lambda h: int(h[2:]))
    assert ("windows", win.name, "friday000001") in by_host["pc2"]
    assert ("office", make_host(2).licences[1].name, "monday000001") in by_host["pc2"]  # not re-read Friday
    assert all(run == "monday000001" for _, _, run in by_host["pc3"])
    assert len(by_host["pc3"]) == len(make_host(3).licences)
    pc4_office = [name for product, name, _ in by_host["pc4"] if product == "office"]
    assert pc4_office == [make_host(4).licences[1].name]  # Visio gone with the newer reading
    pc2_win = next(r for r in rows if r.host == "pc2" and r.licence.product == "windows")
    assert pc2_win.seen_at == pc2.finished
    assert pc2_win.days_left_now == 179  # 180 read on day 4, asked on day 5
    assert pc2_win.room == "room101" and pc2_win.address == "127.0.1.2"
    assert pc2_win.licence == win


def test_latest_licences_within_days(store: HistoryStore) -> None:
    result = make_run(10)
    _record_all(store, result)
    now = max(h.finished for h in result.hosts)
    everything = store.latest_licences(now=now)
    due = store.latest_licences(30, now=now)
    assert due and len(due) < len(everything)
    assert all(r.days_left_now is not None and r.days_left_now <= 30 for r in due)
    not_due = [r for r in everything if r not in due]
    assert all(r.days_left_now is None or r.days_left_now > 30 for r in not_due)
    permanent = [r for r in everything if r.licence.days_left is None and r.licence.expires is None]
    assert permanent and not any(r in due for r in permanent)


def _schema_rows(path: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(path) as conn:
        return [(int(v), str(k)) for v, k in conn.execute("SELECT version, kmsfleet_version FROM schema_version")]


def test_migrations_from_an_empty_file_and_idempotent_reopen(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    HistoryStore(path).close()
    rows = _schema_rows(path)
    assert [v for v, _ in rows] == list(range(1, LATEST_VERSION + 1))
    with HistoryStore(path) as again:
        assert again.schema_version == LATEST_VERSION
        again.save(make_run(2))
    assert _schema_rows(path) == rows
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
        assert {"runs", "host_results", "task_results", "licence_state", "latest_licence"} <= tables
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT count(*) FROM latest_licence").fetchone()[0] == 4  # 2 PCs x 2 products
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def test_a_database_from_a_newer_kmsfleet_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    HistoryStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO schema_version (version, applied_at, kmsfleet_version) VALUES (?, '2030-01-01', '9')",
            (LATEST_VERSION + 1,),
        )
    with pytest.raises(HistoryError, match="newer"):
        HistoryStore(path)


def test_foreign_keys_are_enforced(store: HistoryStore, tmp_path: Path) -> None:
    store.save(make_run(2))
    if store.dialect == "sqlite":
        with store._engine.connect() as conn:  # a pooled connection: the hook ran on it
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    with pytest.raises(IntegrityError), store._engine.begin() as conn:  # PostgreSQL always enforces them
        conn.execute(insert(TABLES.task_results).values(**_orphan_task()))


def _orphan_task() -> dict[str, object]:
    return {
        "run_id": "no-such-run",
        "host": "pc1",
        "seq": 0,
        "play": "p",
        "task": "t",
        "module": "m",
        "status": "ok",
        "changed": False,
        "msg": "",
        "ignored": False,
        "rescued": False,
        "started": BASE,
        "duration_ms": 0,
        "data": {},
        "licences": [],
        "no_log": False,
    }


def test_location_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_DB, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    assert default_db_path() == tmp_path / "home" / ".local" / "share" / "kmsfleet" / "history.db"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    assert default_db_path() == tmp_path / "home" / ".local" / "share" / "kmsfleet" / "history.db"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    url = resolve_db_url()
    assert url.database == str(tmp_path / "xdg" / "kmsfleet" / "history.db")
    assert (tmp_path / "xdg" / "kmsfleet").is_dir()
    monkeypatch.setenv(ENV_DB, str(tmp_path / "env.db"))
    assert resolve_db_url().database == str(tmp_path / "env.db")
    assert resolve_db_url(tmp_path / "arg.db").database == str(tmp_path / "arg.db")
    given = f"sqlite:///{tmp_path}/sub/url.db"
    assert resolve_db_url(given).render_as_string() == given
    assert (tmp_path / "sub").is_dir()
    with pytest.raises(InputError):
        resolve_db_url("::not a url://")


def test_a_url_works_like_a_path(tmp_path: Path) -> None:
    with HistoryStore(f"sqlite:///{tmp_path}/by-url.db") as s:
        s.save(make_run(3))
    with HistoryStore(tmp_path / "by-url.db") as s:
        assert len(s.load_run("run0000000001").hosts) == 3


def test_in_memory_database_for_quick_use() -> None:
    with HistoryStore("sqlite://") as s:
        result = make_run(3)
        s.save(result)
        assert s.load_run(result.info.id) == result


def test_record_host_is_a_fixed_number_of_statements_whatever_the_task_count(store: HistoryStore) -> None:
    info = make_info("stmts0000001")
    store.begin_run(info)
    statements: list[tuple[str, bool]] = []

    def count(conn: object, cursor: object, statement: str, params: object, context: object, many: bool) -> None:
        statements.append((statement.split(maxsplit=1)[0].upper(), many))

    event.listen(store._engine, "before_cursor_execute", count)
    try:
        small = make_host(1)
        big = dataclasses.replace(make_host(2), tasks=make_host(2).tasks * 30)
        store.record_host(info.id, small)
        n_small = len(statements)
        statements.clear()
        store.record_host(info.id, big)
        # host, tasks, licences, and the PC's latest result and licences (results/latest.py)
        assert len(statements) == n_small <= 12
        assert sum(1 for verb, many in statements if verb == "INSERT" and many) == 3  # tasks, licences, latest
    finally:
        event.remove(store._engine, "before_cursor_execute", count)
    assert len(store.load_run(info.id).hosts[1].tasks) == len(make_host(2).tasks) * 30


def test_worker_threads_record_hosts_concurrently(store: HistoryStore) -> None:
    result = make_run(40)
    store.begin_run(result.info)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            barrier.wait(timeout=10)
            for host in result.hosts[k::8]:
                store.record_host(result.info.id, host)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    store.finish_run(result.info.id, result)
    assert store.load_run(result.info.id) == result


def _forms(secret: str) -> list[bytes]:
    return [
        secret.encode(),
        base64.b64encode(secret.encode()),
        secret.encode("utf-16-le"),
        base64.b64encode(secret.encode("utf-16-le")),
    ]


def test_registered_secrets_never_reach_the_database_files(tmp_path: Path) -> None:
    secret = f"Pw-{uuid.uuid4().hex[:10]}!"
    register_secret(secret)
    path = tmp_path / "secret.db"
    result = make_run(6, secret=secret)
    store = HistoryStore(path)
    try:
        _record_all(store, result)
        files = [p for p in tmp_path.iterdir() if p.name.startswith("secret.db")]
        assert any(p.name.endswith("-wal") for p in files)
        for p in files:
            raw = p.read_bytes()
            for form in _forms(secret):
                assert form not in raw, (p.name, form)
        loaded = store.load_run(result.info.id)
    finally:
        store.close()
    raw = path.read_bytes()
    for form in _forms(secret):
        assert form not in raw
    task = next(t for t in loaded.hosts[0].tasks if t.task == "Map share")
    assert task.data["password"] == MASK
    assert MASK in task.msg and MASK in task.data["cmd"]
    assert task.data["encoded"] == MASK and task.data["utf16"] == MASK
    assert loaded.hosts[0].facts["secret_note"] == MASK
    assert MASK in loaded.hosts[0].msg


def test_licence_record_fields_survive_including_nulls(store: HistoryStore) -> None:
    bare = LicenceRecord(product="sql", name="SQL Server 2019", channel="None", status="Licensed")
    host = dataclasses.replace(make_host(1), licences=(bare,))
    result = RunResult(info=make_info("sqlonly00001"), hosts=(host,), finished=BASE + timedelta(hours=1))
    store.save(result)
    assert store.load_run("sqlonly00001").hosts[0].licences == (bare,)


def test_secrets_with_json_special_characters_are_masked_before_encoding(tmp_path: Path) -> None:
    secret = f'q"uo\\te-{uuid.uuid4().hex[:6]}'
    register_secret(secret)
    host = dataclasses.replace(make_host(1), facts={"note": f"pw={secret}"}, msg=f"login {secret}")
    path = tmp_path / "escape.db"
    with HistoryStore(path) as store:
        store.save(RunResult(make_info("escape000001"), (host,), finished=BASE + timedelta(hours=1)))
        raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("escape.db"))
    escaped = json.dumps(secret)[1:-1]  # the form the secret would take inside a JSON column
    for form in (secret, escaped):
        assert form.encode() not in raw


def test_the_schema_is_portable_to_postgresql() -> None:
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateIndex, CreateTable

    from orchestrator.results.schema import METADATA, TABLES, latest_licence_select

    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    ddl = [str(CreateTable(t).compile(dialect=dialect)) for t in METADATA.sorted_tables]
    ddl += [str(CreateIndex(i).compile(dialect=dialect)) for t in METADATA.sorted_tables for i in t.indexes]
    view = str(latest_licence_select(TABLES).compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    text = "\n".join([*ddl, view]).upper()
    assert "BIGSERIAL" in text and "TIMESTAMP WITH TIME ZONE" in text
    for sqlite_only in ("AUTOINCREMENT", "PRAGMA", "DATETIME(", "JULIANDAY", "STRFTIME", "IMMEDIATE"):
        assert sqlite_only not in text


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text("all:\n  hosts:\n    pc1:\n" * 200, encoding="utf-8")
    with pytest.raises(HistoryError, match="not a database"):
        HistoryStore(path)
