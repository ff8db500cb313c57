"""``update_latest_many`` folds a batch of PCs into the latest tables exactly as one PC at a time would."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any

from results_factory import make_run
from sqlalchemy import select

from orchestrator.results.latest import update_latest_many
from orchestrator.results.schema import FLEET
from orchestrator.results.store import HistoryStore, prepare_host


def _latest(store: HistoryStore) -> tuple[list[Any], list[Any]]:
    hl, ll = FLEET.host_latest, FLEET.licence_latest
    return store.read(
        lambda conn: (
            [tuple(r) for r in conn.execute(select(hl).order_by(hl.c.host))],
            [tuple(r) for r in conn.execute(select(ll).order_by(ll.c.host, ll.c.product, ll.c.seq))],
        )
    )


def test_a_batch_gives_the_same_latest_tables_as_one_host_at_a_time(tmp_path: Path) -> None:
    first, second = make_run(40, seed=3), make_run(40, seed=4, run_id="run0000000002")
    # the second run is newer, except for a few PCs whose older result arrives late (an import)
    late = {h.host for h in second.hosts[::7]}
    second = dataclasses.replace(
        second,
        hosts=tuple(
            dataclasses.replace(h, finished=h.finished - timedelta(days=30)) if h.host in late else h
            for h in second.hosts
        ),
    )
    stores = {mode: HistoryStore(tmp_path / f"{mode}.db") for mode in ("batch", "single")}
    for run in (first, second):
        for store in stores.values():
            store.begin_run(run.info, [h.host for h in run.hosts])
        rows = [prepare_host(run.info.id, h) for h in run.hosts]
        stores["batch"].record_prepared(run.info.id, rows)
        for one in rows:
            stores["single"].record_prepared(run.info.id, [one])
    batch, single = _latest(stores["batch"]), _latest(stores["single"])
    assert batch == single
    assert len(batch[0]) == 40 and batch[1]
    for store in stores.values():
        store.close()


def test_a_host_given_twice_in_one_batch_is_folded_in_the_order_given(tmp_path: Path) -> None:
    run = make_run(3)
    store = HistoryStore(tmp_path / "history.db")
    store.begin_run(run.info, [h.host for h in run.hosts])
    last = run.hosts[0]
    earlier = dataclasses.replace(last, msg="an earlier attempt", finished=last.finished - timedelta(minutes=5))
    rows = [prepare_host(run.info.id, h) for h in (earlier, *run.hosts)]
    with store._engine.begin() as conn:
        update_latest_many(conn, [(r.host, r.licences) for r in rows])
    hl = FLEET.host_latest
    msgs = store.read(lambda conn: list(conn.scalars(select(hl.c.msg).where(hl.c.host == last.host))))
    assert msgs == [last.msg]
    store.close()
