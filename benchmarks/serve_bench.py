"""How fast `kmsfleet serve` answers on a city-sized history: 30,000 PCs × 365 nightly runs.

Generates the history in bulk straight into the store's tables (``runs``, ``host_results``, ``licence_state`` and
the per-PC ``host_latest`` / ``licence_latest`` that schema version 2 keeps), in chunks of executemany, then
times the pages the way the server builds them (query + HTML, or CSV): the overview, the "running out" list, one
PC's page and the CSV of every PC. ``task_results`` rows are not generated (no page reads them), so the reported
database size is a lower bound of a real history's.

    .venv/bin/python benchmarks/serve_bench.py            # 30,000 PCs × 365 runs (SQLite; long: minutes)
    .venv/bin/python benchmarks/serve_bench.py --quick    # 2,000 PCs × 30 runs
    .venv/bin/python benchmarks/serve_bench.py --db postgresql+psycopg://…   # an empty PostgreSQL database

Last line: one JSON object (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import ROOT, BenchTimeout, emit_json, time_limit

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, update

from orchestrator.results.latest import category_of, runs_out, store_run_licence_counts
from orchestrator.results.schema import FLEET, TABLES, encode_json
from orchestrator.results.store import HistoryStore
from orchestrator.web import views
from orchestrator.web.page import render

CHUNK = 20_000
PCS_PER_ROOM = 40
ROOMS_PER_SCHOOL = 25
START = datetime(2026, 1, 1, 18, 0, tzinfo=UTC)
# Failure causes of the generated fleet: real catalogue keys (orchestrator/knowledge/catalogue.yaml).
CAUSES = ("0xC004F074", "KF_UNREACHABLE", "KF_NON_VOLUME_WINDOWS", "0xC004F035", "KF_OEM_OFFICE")


def pc_name(i: int) -> tuple[str, str, str]:
    room = i // PCS_PER_ROOM
    school = room // ROOMS_PER_SCHOOL
    site = f"school{school:03d}"
    room_group = f"{site}_room{room % ROOMS_PER_SCHOOL:02d}"
    return f"s{school:03d}-r{room % ROOMS_PER_SCHOOL:02d}-pc{i % PCS_PER_ROOM:02d}", site, room_group


def outcome(i: int, r: int) -> str:
    """Deterministic: a few PCs always fail, some are often off, the rest mostly fine."""
    if i % 997 == 0:
        return "failed"
    h = (i * 2654435761 + r * 40503) % 1000
    if h < 15:
        return "unreachable"
    if h < 25:
        return "failed"
    return "ok" if h > 200 else "changed"


def _run_row(run_id: str, started: datetime, finished: datetime, pcs: int) -> dict[str, Any]:
    """One night's run as the runs table stores it."""
    return {
        "id": run_id,
        "playbook": "playbooks/site.yml",
        "inventory": ["inventories/city"],
        "limit_pattern": None,
        "check_mode": False,
        "tags": [],
        "skip_tags": [],
        "forks": 50,
        "strategy": "linear",
        "lang": "zh-TW",
        "started": started,
        "finished": finished,
        "state": "finished",
        "exit_code": 2,
        "interrupted": False,
        "counts": {},
        "hosts_total": pcs,
        "kmsfleet_version": "bench",
        "controller": "bench",
    }


def generate(store: HistoryStore, pcs: int, runs: int) -> dict[str, float]:
    t0 = time.monotonic()
    rows_written = 0
    names = [pc_name(i) for i in range(pcs)]
    groups = [encode_json([site, room]) for _, site, room in names]
    empty = encode_json({})
    for r in range(runs):
        started = START + timedelta(days=r)
        finished = started + timedelta(minutes=20)
        run_id = f"run{r:06d}"
        with store._writer.begin() as conn:
            conn.execute(insert(TABLES.runs), [_run_row(run_id, started, finished, pcs)])
            for lo in range(0, pcs, CHUNK):
                hosts, lics = [], []
                for i in range(lo, min(pcs, lo + CHUNK)):
                    name, _site, room = names[i]
                    st = outcome(i, r)
                    cause = CAUSES[i % len(CAUSES)] if st == "failed" else "KF_UNREACHABLE" if st != "ok" else None
                    hosts.append(
                        {
                            "run_id": run_id,
                            "host": name,
                            "position": i,
                            "status": st,
                            "msg": "" if st in ("ok", "changed") else "activation failed",
                            "address": f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}",
                            "groups": groups[i],
                            "room": room,
                            "started": started,
                            "finished": finished,
                            "error_code": None,
                            "diagnosis": cause if st in ("failed", "unreachable") else None,
                            "facts": empty,
                        }
                    )
                    if st == "unreachable":
                        continue
                    lics += [
                        _licence(run_id, name, 0, "Windows", i, finished),
                        _licence(run_id, name, 1, "Office", i, finished),
                    ]
                conn.execute(insert(TABLES.host_results), hosts)
                conn.execute(insert(TABLES.licence_state), lics)
                rows_written += len(hosts) + len(lics)
            # as finish_run does: the run's counts and its licences by state
            counts = Counter(outcome(i, r) for i in range(pcs))
            conn.execute(update(TABLES.runs).where(TABLES.runs.c.id == run_id).values(counts=dict(counts)))
            store_run_licence_counts(conn, run_id)
    t_history = time.monotonic() - t0
    _latest(store, names, runs)
    return {"generate_s": time.monotonic() - t0, "history_rows": rows_written, "history_s": t_history}


def _licence(run_id: str, host: str, seq: int, product: str, i: int, seen: datetime) -> dict[str, Any]:
    days = (i * 7 + seq * 13) % 180
    status = 1 if days > 20 else 5 if days == 0 else 2
    return {
        "run_id": run_id,
        "host": host,
        "seq": seq,
        "product": product,
        "name": f"{product} volume licence",
        "channel": "Volume:GVLK",
        "status": {1: "Licensed", 2: "Initial grace period", 5: "Notification"}[status],
        "license_status": status,
        "days_left": days,
        "expires": None,
        "kms_host": "kms.city.example:1688",
        "last_error": 0,
        "version": None,
        "edition": None,
        "partial_key": "XXXXX",
        "cmid": None,
        "activation_id": None,
        "seen_at": seen,
    }


def _latest(store: HistoryStore, names: list[tuple[str, str, str]], runs: int) -> None:
    """The per-PC tables as the store would have left them after the last run."""
    last = runs - 1
    run_id = f"run{last:06d}"
    finished = START + timedelta(days=last, minutes=20)
    with store._writer.begin() as conn:
        for lo in range(0, len(names), CHUNK):
            hosts, lics = [], []
            for i in range(lo, min(len(names), lo + CHUNK)):
                name, site, room = names[i]
                st = outcome(i, last)
                streak = 0
                while streak < runs and outcome(i, last - streak) in ("failed", "unreachable"):
                    streak += 1
                # the newest licences: from the newest run in which the PC answered
                seen_run = next((r for r in range(last, -1, -1) if outcome(i, r) != "unreachable"), None)
                mine = []
                if seen_run is not None:
                    seen = START + timedelta(days=seen_run, minutes=20)
                    for seq, product in enumerate(("Windows", "Office")):
                        row = _licence(f"run{seen_run:06d}", name, seq, product, i, seen)
                        row["runs_out"] = runs_out(None, row["days_left"], seen)
                        for key in ("version", "edition", "partial_key", "cmid", "activation_id"):
                            row.pop(key)
                        mine.append(row)
                lics += mine
                cause = CAUSES[i % len(CAUSES)] if st == "failed" else "KF_UNREACHABLE" if st != "ok" else None
                hosts.append(
                    {
                        "host": name,
                        "run_id": run_id,
                        "status": st,
                        "category": category_of(st, [m["license_status"] for m in mine]),
                        "msg": "",
                        "address": None,
                        "site": site,
                        "room": room,
                        "finished": finished,
                        "error_code": None,
                        "diagnosis": cause if st in ("failed", "unreachable") else None,
                        "fail_streak": streak,
                    }
                )
            conn.execute(insert(FLEET.host_latest), hosts)
            if lics:
                conn.execute(insert(FLEET.licence_latest), lics)


def timed(work: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.monotonic()
        work()
        times.append(time.monotonic() - t0)
    return statistics.median(times) * 1000


def pages(store: HistoryStore, pcs: int, repeat: int) -> dict[str, float]:
    chrome = {"lang": "en", "site_title": "", "nav": [], "other_lang": "zh-TW", "other_lang_label": "",
              "other_lang_url": "/", "csv_label": "", "no_data": "", "prev_label": "", "next_label": ""}  # fmt: skip

    def ask(path: str, **query: str) -> views.Ask:
        csv = query.pop("csv", None)
        return views.Ask(path, query, "en", False, csv)

    host = pc_name(pcs // 2)[0]
    return {
        "overview_ms": timed(lambda: render(views.overview(store, ask("/")), chrome), repeat),
        "due_ms": timed(lambda: render(views.due(store, ask("/due", days="30")), chrome), repeat),
        "pc_ms": timed(lambda: render(views.pc(store, ask(f"/pc/{host}"), host), chrome), repeat),
        "hosts_page_ms": timed(lambda: render(views.hosts(store, ask("/hosts", category="failing")), chrome), repeat),
        "runs_ms": timed(lambda: render(views.runs(store, ask("/runs")), chrome), repeat),
        "csv_all_pcs_ms": timed(lambda: views.hosts(store, ask("/hosts", csv="hosts")).table("hosts").csv(), 1),  # type: ignore[union-attr]
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 PCs × 30 runs")
    parser.add_argument("--pcs", type=int, default=30_000)
    parser.add_argument("--runs", type=int, default=365)
    parser.add_argument("--db", help="database URL (default: a new SQLite file in a temporary folder)")
    parser.add_argument("--dir", help="folder for that temporary folder (default: the system's)")
    parser.add_argument("--time-limit", type=float, default=3 * 3600)
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.pcs, opts.runs = 2_000, 30
    result: dict[str, Any] = {"pcs": opts.pcs, "runs": opts.runs}
    with tempfile.TemporaryDirectory(prefix="kmsfleet-serve-bench-", dir=opts.dir) as folder:
        path = Path(folder) / "history.db"
        try:
            with time_limit(opts.time_limit), HistoryStore(opts.db or path) as store:
                result["backend"] = store.dialect
                result.update(generate(store, opts.pcs, opts.runs))
                if store.dialect == "sqlite":
                    with store._writer.begin() as conn:
                        conn.exec_driver_sql("ANALYZE")
                result.update(pages(store, opts.pcs, 3))
                result["db_mb"] = _size(store, path) / 1e6
        except BenchTimeout as exc:
            result["error"] = str(exc)
    print(f"serve bench: {opts.pcs} PCs × {opts.runs} runs on {result.get('backend')}")
    for key, value in result.items():
        print(f"  {key:>16}: {value:,.1f}" if isinstance(value, float) else f"  {key:>16}: {value}")
    emit_json(result)
    return 1 if "error" in result else 0


def _size(store: HistoryStore, path: Path) -> int:
    if store.dialect == "sqlite":
        return sum(p.stat().st_size for p in _files(path))
    return int(store.read(lambda conn: conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()))


def _files(path: Path) -> Iterator[Path]:
    for suffix in ("", "-wal", "-shm"):
        candidate = Path(str(path) + suffix)
        if candidate.exists():
            yield candidate


if __name__ == "__main__":
    os.environ.setdefault("KMSFLEET_I18N_STRICT", "0")
    sys.exit(main())
