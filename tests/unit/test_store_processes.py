"""The history store across real processes: two writers on one file, and a writer killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from results_factory import make_host, make_run

from orchestrator.results.models import HostStatus
from orchestrator.results.store import HistoryStore

TESTS_DIR = Path(__file__).resolve().parents[1]
REPO = TESTS_DIR.parent

WRITER = """
import sys
from results_factory import make_run
from orchestrator.results.store import HistoryStore

path, run_id, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
result = make_run(n, run_id=run_id, seed=len(run_id))
print("ready", flush=True)
sys.stdin.readline()  # both writers start together: opening (and migrating) a fresh file included
store = HistoryStore(path, busy_timeout_ms=2_000)
store.begin_run(result.info)
for host in result.hosts:
    store.record_host(run_id, host)
store.finish_run(run_id, result)
store.close()
print("done", flush=True)
"""

KILLED = """
import sys
from results_factory import make_host, make_info
from orchestrator.results.store import HistoryStore

store = HistoryStore(sys.argv[1])
info = make_info("killed000001")
store.begin_run(info)
for i in range(1, 5001):
    store.record_host(info.id, make_host(i))
    print(i, flush=True)
"""


def _spawn(code: str, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS_DIR), str(REPO)]))
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_two_writer_processes_on_one_file_both_complete(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    n = 120
    procs = [_spawn(WRITER, str(path), run_id, str(n)) for run_id in ("writerA00001", "writerB00002")]
    try:
        for p in procs:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready"
        for p in procs:  # release both at once
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        assert out.strip() == "done"
    with HistoryStore(path) as store:
        summaries = {s.id: s for s in store.runs()}
        assert set(summaries) == {"writerA00001", "writerB00002"}
        for run_id, summary in summaries.items():
            assert summary.state == "finished"
            assert summary.hosts == n
            assert store.load_run(run_id) == make_run(n, run_id=run_id, seed=len(run_id))


def test_sigkill_mid_run_keeps_every_finished_host(tmp_path: Path) -> None:
    path = tmp_path / "killed.db"
    proc = _spawn(KILLED, str(path))
    seen = 0
    deadline = time.monotonic() + 60
    try:
        assert proc.stdout is not None
        while seen < 25 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen = int(line)
        assert seen >= 25, proc.stderr.read() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)  # mid-run: it is recording more hosts right now
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    with sqlite3.connect(path) as conn:  # the file is consistent after WAL recovery
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []

    with HistoryStore(path) as store:
        (summary,) = store.runs()
        assert summary.id == "killed000001"
        assert summary.state == "incomplete"  # never finished, and its writer is gone
        assert summary.finished is None
        assert summary.hosts >= seen
        loaded = store.load_run("killed000001")
        assert loaded.interrupted
        assert len(loaded.hosts) == summary.hosts
        for i, host in enumerate(loaded.hosts, start=1):
            assert host == make_host(i)  # each host whole: its tasks and licences with it
        failed = store.hosts_with_status("killed000001", [HostStatus.FAILED])
        assert set(failed) == {h.host for h in loaded.hosts if h.status is HostStatus.FAILED}
        # the history keeps working on the recovered file
        store.save(make_run(2, run_id="after0000001"))
        assert {s.id for s in store.runs()} == {"killed000001", "after0000001"}
