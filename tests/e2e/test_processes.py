"""``kmsfleet run --processes N``: the real CLI as a subprocess against a lab over NTLM with encryption.

A run over two worker processes ends with the same per-PC statuses, the same task results per PC, the same
report and the same history rows as a single-process run; Ctrl-C (sent to the whole process group, as a
terminal does) keeps the finished PCs in the report and the history. Unit checks of the pieces beside them.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from labkit import KMSFLEET, hosts_by_name, read_report, room_spec, start_lab, wait_finished_in_history

from orchestrator.errors import InputError
from orchestrator.executor.multiproc import check_shardable, resolve_processes, shard
from orchestrator.executor.plan import Plan, PlaySpec
from orchestrator.lab.addresses import Claim, claim_prefix
from orchestrator.lab.runner import LabThread

FEATURES = Path(__file__).resolve().parent.parent / "fixtures" / "engine" / "features.yml"


@pytest.fixture(scope="module")
def lab12() -> Iterator[LabThread]:
    claim: Claim = claim_prefix()
    spec = {"rooms": [room_spec(claim, [{"name": "pc[01:10]"}, {"name": "pc[11:12]", "power": "off"}])]}
    lab = start_lab(spec)
    try:
        yield lab
    finally:
        lab.stop()
        claim.release()


def _argv(lab: LabThread, report: Path, db: Path) -> list[str]:
    return [KMSFLEET, "run", str(FEATURES), "-i", str(lab.inventory_path), "--report", str(report), "--db", str(db)]


def _run(lab: LabThread, tmp: Path, processes: str) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    report, db = tmp / f"r{processes}.json", tmp / f"h{processes}.db"
    proc = subprocess.run(
        [*_argv(lab, report, db), "--forks", "6", "--processes", processes],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc, report, db


def _tasks(host: dict[str, Any]) -> list[tuple[str, str]]:
    return [(t["task"], t["status"]) for t in host["tasks"]]


def _history(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as con:
        return {r[0]: r[1] for r in con.execute("select host, status from host_results")}


def test_two_processes_give_the_results_of_one(lab12: LabThread, tmp_path: Path) -> None:
    one, report1, db1 = _run(lab12, tmp_path, "1")
    two, report2, db2 = _run(lab12, tmp_path, "2")
    assert "Traceback" not in two.stdout + two.stderr, two.stderr[-2000:]
    assert two.returncode == one.returncode, one.stdout[-1500:] + two.stdout[-1500:] + two.stderr[-1500:]
    r1, r2 = read_report(report1), read_report(report2)
    h1, h2 = hosts_by_name(r1), hosts_by_name(r2)
    assert list(h2) == list(h1)  # same PCs, same (inventory) order
    assert {n: h["status"] for n, h in h2.items()} == {n: h["status"] for n, h in h1.items()}
    assert {h["status"] for n, h in h2.items() if n in ("pc11", "pc12")} == {"unreachable"}
    assert {n: _tasks(h) for n, h in h2.items()} == {n: _tasks(h) for n, h in h1.items()}
    assert r2["stats"] == r1["stats"]
    assert r2["run"]["interrupted"] is False
    assert _history(db2) == _history(db1) == {n: h["status"] for n, h in h1.items()}
    # the terminal shows the play once, and every PC in the recap
    assert two.stdout.count("engine features") == one.stdout.count("engine features")


def test_ctrl_c_keeps_finished_pcs(tmp_path: Path) -> None:
    claim = claim_prefix()
    spec = {"rooms": [room_spec(claim, [{"name": "pc[01:04]"}, {"name": "pc[05:12]", "latency_ms": 400}])]}
    lab = start_lab(spec)
    report, db = tmp_path / "r.json", tmp_path / "h.db"
    try:
        proc = subprocess.Popen(
            [*_argv(lab, report, db), "--forks", "12", "--processes", "2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: Ctrl-C reaches the workers too, as in a terminal
        )
        wait_finished_in_history(db, 4, 90)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=90)
    finally:
        lab.stop()
        claim.release()
    assert proc.returncode == 99, out[-2000:] + err[-2000:]
    assert "Traceback" not in out + err
    data = read_report(report)
    hosts = hosts_by_name(data)
    assert data["run"]["interrupted"] is True
    assert len(hosts) == 12
    assert {n for n, h in hosts.items() if h["status"] in ("ok", "changed")} >= {"pc01", "pc02", "pc03", "pc04"}
    assert {h["status"] for n, h in hosts.items() if n >= "pc05"} <= {"interrupted", "not_run", "changed", "ok"}
    assert _history(db) == {n: h["status"] for n, h in hosts.items()}


def test_processes_option_values() -> None:
    assert resolve_processes("auto") >= 1
    assert resolve_processes("3") == 3
    for bad in ("0", "many", "-2", "1000"):
        with pytest.raises(InputError):
            resolve_processes(bad)


def test_shards_are_round_robin_and_never_empty() -> None:
    assert shard(["a", "b", "c", "d", "e"], 2) == [["a", "c", "e"], ["b", "d"]]
    assert shard(["a"], 4) == [["a"]]


def test_plays_whose_pcs_depend_on_each_other_are_refused() -> None:
    check_shardable(Plan("p", (PlaySpec(name="audit", hosts="all"),)))
    for play in (
        PlaySpec(name="rolling", hosts="all", serial=(2,)),
        PlaySpec(name="strict", hosts="all", any_errors_fatal=True),
        PlaySpec(name="quota", hosts="all", max_fail_percentage=10.0),
    ):
        with pytest.raises(InputError, match=play.name):
            check_shardable(Plan("p", (play,)))


def test_bad_processes_value_is_a_clear_error(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  hosts:\n    pc01:\n      ansible_host: 127.0.0.1\n")
    proc = subprocess.run(
        [KMSFLEET, "run", str(FEATURES), "-i", str(inv), "--processes", "lots", "--no-history"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "--processes" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
