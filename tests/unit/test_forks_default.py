"""The default ``--forks``: at most DEFAULT_FORKS PCs at once, and a run on fewer PCs works on all of them at once
(the worker pool starts a thread only for a waiting PC), which is what a Windows-timed room needs."""

from __future__ import annotations

import threading

from labkit import run_cli

from orchestrator.executor.options import DEFAULT_FORKS, RunOptions
from orchestrator.executor.pool import WorkerPool


def test_the_default_covers_a_school_and_stays_bounded() -> None:
    assert RunOptions().forks == DEFAULT_FORKS
    assert 120 <= DEFAULT_FORKS <= 500  # a school's PCs in one wave; threads and sockets bounded


def test_a_pool_of_the_default_size_runs_every_pc_of_a_room_at_once_with_one_thread_each() -> None:
    room = 40
    pool = WorkerPool(DEFAULT_FORKS, name="forks-default-test")
    everyone = threading.Barrier(room, timeout=20)  # passes only when all 40 jobs wait at the same time
    try:
        done = [pool.submit(everyone.wait) for _ in range(room)]
        assert sorted(f.result(timeout=30) for f in done) == list(range(room))
        workers = [t for t in threading.enumerate() if t.name.startswith("forks-default-test-")]
        assert len(workers) == room
    finally:
        pool.shutdown()


def test_run_help_names_the_default() -> None:
    proc = run_cli("run", "--help", env={"COLUMNS": "400"})
    assert proc.returncode == 0
    assert f"default {DEFAULT_FORKS}" in " ".join(proc.stdout.split())
