"""Nothing is lost on ``kill -9``: every targeted PC is in the history from the moment the run starts, so a run
killed mid-way leaves the PCs it had not finished as ``not_run``, shows as unfinished in ``history``, and
``--limit @failed`` (and ``@unreachable``) retry every one of them. Real CLI subprocesses on a lab whose PCs
answer slowly; the database is real SQLite."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from labkit import KMSFLEET, read_report, room_spec, run_cli, start_lab

from orchestrator.lab.addresses import claim_prefix
from orchestrator.lab.runner import LabThread

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - win_ping:
    - win_ping:
    - win_ping:
"""
HOSTS = [f"pc{n:02d}" for n in range(1, 11)]


@pytest.fixture(scope="module")
def slow_lab() -> Iterator[LabThread]:
    claim = claim_prefix()
    spec = {
        "rooms": [room_spec(claim, [{"name": "pc[01:02]"}, {"name": "pc[03:10]", "latency_ms": 700}])],
        "seed": 11,
    }
    lab = start_lab(spec)
    try:
        yield lab
    finally:
        lab.stop()
        claim.release()


def _finished_hosts(db: Path) -> set[str]:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            rows = conn.execute("SELECT host FROM host_results WHERE status != 'not_run'").fetchall()
    except sqlite3.Error:
        return set()
    return {str(r[0]) for r in rows}


def test_kill_9_mid_run_then_failed_retries_every_unfinished_pc(slow_lab: LabThread, tmp_path: Path) -> None:
    inv = str(slow_lab.inventory_path)
    playbook = tmp_path / "slow.yml"
    playbook.write_text(PLAYBOOK, encoding="utf-8")
    db = tmp_path / "history.db"
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [KMSFLEET, "run", str(playbook), "-i", inv, "--db", str(db), "--forks", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 90
        while not _finished_hosts(db) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert proc.poll() is None, "the run ended before it could be killed"
        finished = _finished_hosts(db)
        assert finished, "no PC finished within 90 s"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finished = _finished_hosts(db)
    unfinished = sorted(set(HOSTS) - finished)
    assert unfinished, "every PC had finished: the kill came too late to test anything"
    assert db.stat().st_mode & 0o777 == 0o600

    # the killed run lists every PC and is unfinished
    listed = run_cli("history", "--json", "--db", str(db))
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert runs[0]["state"] == "incomplete", runs[0]
    assert runs[0]["hosts"] == len(HOSTS)
    shown = run_cli("report", "last", "--format", "json", "--db", str(db))
    report = json.loads(shown.stdout)
    status = {h["host"]: h["status"] for h in report["hosts"]}
    assert sorted(status) == sorted(HOSTS)
    assert {h for h, s in status.items() if s == "not_run"} >= set(unfinished) - finished

    # @unreachable covers the PCs never reached (documented), @failed retries every PC that had not finished
    retry = run_cli(
        "run", str(playbook), "-i", inv, "--db", str(db), "--limit", "@failed", "--forks", "10",
        "--report", str(tmp_path / "retry.json"), timeout=240,
    )  # fmt: skip
    assert retry.returncode == 0, retry.stdout[-2000:] + retry.stderr[-2000:]
    retried = sorted(h["host"] for h in read_report(tmp_path / "retry.json")["hosts"])
    assert retried == unfinished


def test_a_report_never_replaces_the_database(slow_lab: LabThread, tmp_path: Path) -> None:
    db = tmp_path / "H.db"
    playbook = tmp_path / "fast.yml"
    playbook.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - win_ping:\n", encoding="utf-8")
    first = run_cli("run", str(playbook), "-i", str(slow_lab.inventory_path), "--db", str(db), "--limit", "pc01")
    assert first.returncode == 0, first.stderr
    before = db.read_bytes()
    for args in (
        ["report", "last", "--output", str(db), "--db", str(db)],
        ["report", "last", "--format", "json", "--output", str(db), "--db", str(db)],
    ):
        proc = run_cli(*args)
        assert proc.returncode == 4, proc.stdout + proc.stderr
        assert "is a database" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli(
        "run", str(playbook), "-i", str(slow_lab.inventory_path), "--db", str(tmp_path / "other.db"),
        "--limit", "pc01", "--report", str(tmp_path / "H.db-wal.json"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert db.read_bytes()[:16] == before[:16] == b"SQLite format 3\x00"
    assert run_cli("history", "--db", str(db)).returncode == 0
