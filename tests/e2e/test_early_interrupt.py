"""Ctrl-C at the very start of a run, while every targeted PC is being recorded as pending: the run still ends
as an interrupted run with its report (every PC not_run or interrupted), the same statuses in the history, and a
recap that does not call the room fine."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from labkit import KMSFLEET, room_spec, start_lab

from orchestrator.lab.addresses import claim_prefix


def test_ctrl_c_as_soon_as_the_run_is_recorded_keeps_report_and_history(tmp_path: Path) -> None:
    claim = claim_prefix()
    lab = start_lab({"rooms": [room_spec(claim, [{"name": "pc[01:30]", "latency_ms": 200}])]})
    db, report = tmp_path / "h.db", tmp_path / "r.json"
    try:
        proc = subprocess.Popen(
            [KMSFLEET, "run", "site.yml", "-i", str(lab.inventory_path), "--db", str(db), "--report", str(report)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        rows = 0
        while time.monotonic() < deadline and not rows and proc.poll() is None:
            time.sleep(0.02)
            if db.exists():
                try:
                    with sqlite3.connect(db) as con:
                        rows = con.execute("select count(*) from host_results").fetchone()[0]
                except sqlite3.Error:
                    rows = 0
        assert rows, "the run never recorded its PCs"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        lab.stop()
        claim.release()
    assert proc.returncode == 99, out[-2000:] + err[-2000:]
    assert "Traceback" not in out + err
    data = json.loads(report.read_text(encoding="utf-8"))
    reported = {h["host"]: h["status"] for h in data["hosts"]}
    assert len(reported) == 30 and data["run"]["interrupted"] is True
    with sqlite3.connect(db) as con:
        stored = dict(con.execute("select host, status from host_results").fetchall())
    assert stored == reported
    if set(reported.values()) <= {"not_run", "interrupted"}:
        assert "All 30 PCs are fine" not in out
