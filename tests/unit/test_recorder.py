"""The history recorder on real SQLite files: workers hand results over, saved in batches by whoever is due."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from results_factory import make_run
from sqlalchemy import text

from orchestrator.executor.reporter import Fanout
from orchestrator.results.models import HostResult, HostTaskResult, RunInfo, RunResult
from orchestrator.results.recorder import HistoryWriteError, StoreReporter
from orchestrator.results.store import PENDING_MSG, HistoryStore


def _stored_hosts(db: Path, run_id: str) -> set[str]:
    with HistoryStore(db) as store:
        return {h.host for h in store.load_run(run_id).hosts}


def test_hosts_finished_on_many_threads_are_all_saved_before_the_run_is_finished(tmp_path: Path) -> None:
    result = make_run(120)
    db = tmp_path / "history.db"
    recorder = StoreReporter(HistoryStore(db))
    recorder.run_started(result.info, [h.host for h in result.hosts])
    workers = [
        threading.Thread(target=lambda part=part: [recorder.host_done(h) for h in part])
        for part in (result.hosts[i::8] for i in range(8))
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    recorder.close()  # no run_done yet: a run that stopped on an internal error
    assert _stored_hosts(db, result.info.id) == {h.host for h in result.hosts}
    with HistoryStore(db) as store:
        assert store.load_run(result.info.id).hosts  # readable while unfinished
    recorder.store.close()


def test_run_done_waits_for_the_writer_and_keeps_the_later_result_of_a_host(tmp_path: Path) -> None:
    result = make_run(10)
    db = tmp_path / "history.db"
    recorder = StoreReporter(HistoryStore(db))
    recorder.run_started(result.info, [h.host for h in result.hosts])
    first = result.hosts[0]
    recorder.host_done(dataclasses.replace(first, msg="an earlier attempt"))
    for h in result.hosts:
        recorder.host_done(h)
    recorder.run_done(result)
    recorder.store.close()
    with HistoryStore(db) as store:
        assert store.load_run(result.info.id) == result


def test_a_failed_write_is_repaired_by_finish_run_and_reported_only_when_it_cannot_be(tmp_path: Path) -> None:
    result = make_run(6)
    store = HistoryStore(tmp_path / "history.db")
    recorder = StoreReporter(store)
    recorder.run_started(result.info, [h.host for h in result.hosts])
    real = store.record_prepared
    calls: list[int] = []

    def failing(run_id: str, hosts: Any) -> None:
        calls.append(len(hosts))
        raise OSError("disk full")

    store.record_prepared = failing  # type: ignore[method-assign]
    for h in result.hosts:
        recorder.host_done(h)
    recorder.run_done(result)  # finish_run saves the hosts the writer could not: nothing to report
    store.record_prepared = real  # type: ignore[method-assign]
    assert sum(calls) == len(result.hosts)
    assert store.load_run(result.info.id) == result

    second = make_run(3, run_id="run0000000002")
    recorder = StoreReporter(store)
    recorder.run_started(second.info, [])
    store.record_prepared = failing  # type: ignore[method-assign]
    recorder.host_done(second.hosts[0])
    with pytest.raises(HistoryWriteError, match="disk full"):
        recorder.close()  # no run_done to repair it: the caller must be told
    store.close()


class _Broken:
    label = "history"

    def __getattr__(self, name: str) -> Any:
        def fail(*args: object) -> None:
            raise OSError(f"{name} failed")

        return fail


class _Listener:
    def __init__(self) -> None:
        self.failures: list[tuple[str, str]] = []
        self.hosts: list[str] = []

    def run_started(self, info: RunInfo, hosts: Any) -> None:
        pass

    def play_started(self, name: str, hosts: Any) -> None:
        pass

    def task_done(self, result: HostTaskResult) -> None:
        pass

    def host_done(self, result: HostResult) -> None:
        self.hosts.append(result.host)

    def run_done(self, result: RunResult) -> None:
        pass

    def reporter_failed(self, name: str, error: BaseException) -> None:
        self.failures.append((name, str(error)))


def test_fanout_keeps_going_past_a_broken_reporter_and_tells_the_others_once() -> None:
    result = make_run(5)
    listener = _Listener()
    fanout = Fanout([_Broken(), listener])  # type: ignore[list-item]
    fanout.run_started(result.info, [])
    for h in result.hosts:
        fanout.host_done(h)
    fanout.run_done(result)
    assert listener.hosts == [h.host for h in result.hosts]
    assert listener.failures == [("history", "run_started failed")]
    assert len(fanout.errors) == 2 + len(result.hosts)


def test_workers_never_wait_for_the_seat_and_hosts_queued_meanwhile_are_saved_together(tmp_path: Path) -> None:
    result = make_run(200)
    store = HistoryStore(tmp_path / "history.db")
    recorder = StoreReporter(store, batch_hosts=1)  # every host due at once: the seat is the only limit
    entered, gate = threading.Event(), threading.Event()
    real = store.record_prepared
    sizes: list[int] = []

    def slow_first(run_id: str, hosts: Any) -> None:
        sizes.append(len(hosts))
        if len(sizes) == 1:
            entered.set()
            gate.wait(10)
        real(run_id, hosts)

    store.record_prepared = slow_first  # type: ignore[method-assign]
    recorder.run_started(result.info, [])
    seated = threading.Thread(target=recorder.host_done, args=(result.hosts[0],))
    seated.start()
    assert entered.wait(10)
    started = time.monotonic()
    for h in result.hosts[1:]:
        recorder.host_done(h)  # the seat is taken: queue and go on
    assert time.monotonic() - started < 5
    gate.set()
    seated.join(10)
    assert sizes[0] == 1 and sum(sizes) == 200 and len(sizes) <= 3  # the worker in the seat took the rest
    recorder.run_done(result)
    with store._engine.connect() as conn:
        assert conn.scalar(text("select count(*) from host_results")) == 200
    store.close()


def _counting(store: HistoryStore) -> list[int]:
    """Wrap ``store.record_prepared`` to note the size of every batch it is given."""
    real = store.record_prepared
    sizes: list[int] = []

    def counted(run_id: str, hosts: Any) -> None:
        sizes.append(len(hosts))
        real(run_id, hosts)

    store.record_prepared = counted  # type: ignore[method-assign]
    return sizes


def test_hosts_are_saved_in_batches_of_the_configured_size(tmp_path: Path) -> None:
    result = make_run(230)
    store = HistoryStore(tmp_path / "history.db")
    sizes = _counting(store)
    recorder = StoreReporter(store, batch_hosts=50, flush_seconds=60)
    recorder.run_started(result.info, [h.host for h in result.hosts])
    for h in result.hosts:
        recorder.host_done(h)
    assert sizes == [50, 50, 50, 50]  # the last 30 are not due yet
    assert len(_stored_finished(store, result.info.id)) == 200
    recorder.run_done(result)
    assert sizes == [50, 50, 50, 50, 30]
    assert store.load_run(result.info.id) == result
    store.close()


def _stored_finished(store: HistoryStore, run_id: str) -> set[str]:
    with store._engine.connect() as conn:
        rows = conn.execute(
            text("select host from host_results where run_id = :r and msg != :pending"),
            {"r": run_id, "pending": PENDING_MSG},
        )
        return {str(r[0]) for r in rows}


def test_a_host_no_worker_comes_back_for_reaches_the_database_within_the_flush_time(tmp_path: Path) -> None:
    result = make_run(3)
    db = tmp_path / "history.db"
    store = HistoryStore(db)
    recorder = StoreReporter(store, batch_hosts=1000, flush_seconds=0.3)
    recorder.run_started(result.info, [h.host for h in result.hosts])
    started = time.monotonic()
    for h in result.hosts:
        recorder.host_done(h)  # far from a batch: only the flusher saves them
    expected = {h.host for h in result.hosts}
    with HistoryStore(db) as reader:  # another connection, as ``kmsfleet history`` during the run
        while _stored_finished(reader, result.info.id) != expected and time.monotonic() - started < 10:
            time.sleep(0.02)
        assert _stored_finished(reader, result.info.id) == expected
    assert time.monotonic() - started < 2.0
    flusher = recorder._flusher
    assert flusher is not None and flusher.is_alive()
    recorder.close()
    assert not flusher.is_alive()  # closing stops the flusher
    store.close()


def _count_looks(recorder: StoreReporter) -> list[float]:
    """Every time anyone asks whether the queue is due (the flusher, or a worker finishing a host)."""
    looks: list[float] = []
    due = recorder._due

    def counted() -> bool:
        looks.append(time.monotonic())
        return due()

    recorder._due = counted  # type: ignore[method-assign]
    return looks


def test_the_flusher_sleeps_while_nothing_waits_and_wakes_for_the_next_host(tmp_path: Path) -> None:
    """No periodic looks while the queue is empty (a slow classroom, a scheduled run waiting for PCs); the host
    that starts a queue wakes the flusher, each time."""
    result = make_run(2)
    first, second = result.hosts
    db = tmp_path / "history.db"
    store = HistoryStore(db)
    recorder = StoreReporter(store, batch_hosts=1000, flush_seconds=0.2)
    looks = _count_looks(recorder)
    recorder.run_started(result.info, [h.host for h in result.hosts])
    time.sleep(0.6)
    assert looks == []  # nothing queued: the flusher never looked (it used to look every 0.05 s here)
    with HistoryStore(db) as reader:
        for host in (first, second):
            started = time.monotonic()
            recorder.host_done(host)
            while host.host not in _stored_finished(reader, result.info.id) and time.monotonic() - started < 10:
                time.sleep(0.02)
            assert host.host in _stored_finished(reader, result.info.id)
            assert time.monotonic() - started < 2.0
            time.sleep(0.3)
            idle = len(looks)
            time.sleep(0.6)
            assert len(looks) == idle  # saved: asleep again until the next host
    recorder.close()
    store.close()


def test_the_flusher_waits_its_turn_while_a_worker_holds_the_seat(tmp_path: Path) -> None:
    """A host overdue while another thread is writing: the flusher looks again every quarter of the flush time
    (it used to look again at once, spinning for the whole transaction), then saves once the seat is free."""
    result = make_run(1)
    db = tmp_path / "history.db"
    store = HistoryStore(db)
    recorder = StoreReporter(store, batch_hosts=1000, flush_seconds=0.2)
    looks = _count_looks(recorder)
    recorder.run_started(result.info, [h.host for h in result.hosts])
    assert recorder._seat.acquire()  # a worker's transaction that lasts a second
    try:
        recorder.host_done(result.hosts[0])
        time.sleep(1.0)
        assert len(looks) < 60  # about 4 per flush time; a spinning flusher looks thousands of times
    finally:
        recorder._seat.release()
    with HistoryStore(db) as reader:
        started = time.monotonic()
        while not _stored_finished(reader, result.info.id) and time.monotonic() - started < 10:
            time.sleep(0.02)
        assert _stored_finished(reader, result.info.id) == {result.hosts[0].host}
    recorder.close()
    store.close()
