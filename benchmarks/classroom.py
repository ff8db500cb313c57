"""Classroom benchmark: does a 40-PC room take as long as its slowest PC, and no longer?

    .venv/bin/python benchmarks/classroom.py                 # 40 PCs, free and linear strategy
    .venv/bin/python benchmarks/classroom.py --repeat 3      # median of 3 measurements per contender

The lab: 40 PCs in a ``kmsfleet lab serve`` child process (so lab CPU does not compete for kmsfleet's GIL).
Every PC adds a latency to every HTTP request it answers, drawn uniformly from [0.6 m, 1.4 m] where the PC's
median m comes from a lognormal distribution (median ``--median-ms`` 20 ms, sigma 0.5, clipped to 5..150 ms: wired
PCs of varied age and load), and ``--slow`` PCs (default 3) have m drawn from 150..300 ms (an old PC, a PC on
Wi-Fi). Real Windows answers WMI licensing queries more slowly than that (hundreds of ms); ``--median-ms 100
--slow-min-ms 400 --slow-max-ms 800`` models such PCs.
Per-PC medians and per-request draws are seeded: every fresh lab built from the same spec and seed answers the
same request sequence with the same delays.

The playbook is ``playbooks/site.yml`` (its stand-in ``benchmarks/playbooks/site-standin.yml`` while it does not
exist; the JSON says which).

kmsfleet runs in this process through ``orchestrator.api.run_playbook`` — the same load → validate → run → store
path as the CLI, minus interpreter start-up and imports. Both sides of every ratio are timed around the same
call, so the fixed costs (loading the playbook and inventory, opening the history database) are in both;
leaving out the ~0.5 s of process start-up keeps it out of both and makes the ratio stricter, not kinder.

- ``wall_s``: wall time of the whole room, free strategy (default forks 250 > 40 PCs), on a fresh lab.
- ``critical_path_s``: MEASURED, not computed: the K PCs with the highest median latency (K = ``--solo``,
  default 3) are each run ALONE (``--limit PC``) on a fresh lab with the same spec and seed, so each sees exactly
  the delays it sees in the room run; the longest of these solo runs is the slowest PC's own sequential time.
  (The sum of the slowest PC's task durations in the room run is printed too, as a cross-check.)
- ``ratio`` = wall_s / critical_path_s (target <= 1.10); ``ratio_linear`` the same for ``--strategy linear``,
  where every task waits for the slowest PC before the next starts (expected well above 1).

The last line is one JSON object: wall_s, critical_path_s, ratio, wall_linear_s, ratio_linear, plus extras.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import (  # noqa: E402
    BenchTimeout,
    add_timing_options,
    emit_json,
    fmt,
    measure_with_instant,
    playbook,
    print_table,
    running_lab,
    time_limit,
    write_inventory,
)

PASSWORD = "Classroom-Bench-1!"


def build_spec(
    hosts: int, slow: int, seed: int, median_ms: float = 20.0, slow_ms: tuple[float, float] = (150.0, 300.0)
) -> tuple[dict[str, Any], dict[str, float]]:
    """A one-room spec with per-PC latency ranges, and each PC's median latency (ms)."""
    rng = random.Random(seed)
    medians: dict[str, float] = {}
    width = max(2, len(str(hosts)))
    names = [f"pc{i:0{width}d}" for i in range(1, hosts + 1)]
    slow_names = set(rng.sample(names, min(slow, hosts)))
    entries = []
    for name in names:
        if name in slow_names:
            m = rng.uniform(*slow_ms)
        else:
            m = min(slow_ms[0], max(median_ms / 4, median_ms * math.exp(rng.gauss(0.0, 0.5))))
        medians[name] = m
        entries.append({"name": name, "latency_ms": [round(0.6 * m, 1), round(1.4 * m, 1)]})
    spec = {
        "room": "room101",
        "subnet": "127.0.1",
        "credentials": {"user": "administrator", "password": PASSWORD},
        "defaults": {
            "os": "Windows 10 Education",
            "office": {"version": 2016, "bitness": "x86", "channel": "volume", "state": "unlicensed"},
        },
        "hosts": entries,
    }
    return spec, medians


def run_in_process(
    playbook_path: Path, inventory: Path, workdir: Path, *, strategy: str = "free", limit: str | None = None
) -> tuple[float, Any]:
    from orchestrator.api import RunRequest, run_playbook
    from orchestrator.executor.state import RunOptions

    request = RunRequest(
        playbook=str(playbook_path),
        inventory=[str(inventory)],
        limit=limit,
        options=RunOptions(strategy=strategy, forks=50),
        db=str(workdir / "history.db"),
    )
    started = time.perf_counter()
    result = run_playbook(request)
    return time.perf_counter() - started, result


def _check(result: Any, expected: int, what: str) -> None:
    good = sum(1 for h in result.hosts if h.status.succeeded)
    if good != expected:
        bad = [(h.host, h.status.value, h.msg[:120]) for h in result.hosts if not h.status.succeeded][:5]
        raise RuntimeError(f"{what}: {good}/{expected} PCs succeeded; first problems: {bad}")


def measure(opts: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    spec, medians = build_spec(opts.hosts, opts.slow, opts.seed, opts.median_ms, (opts.slow_min_ms, opts.slow_max_ms))
    pb, real = playbook("site.yml", standin_only=opts.standin)
    slowest = sorted(medians, key=lambda h: medians[h], reverse=True)[: opts.solo]
    fastest = min(medians, key=lambda h: medians[h])
    solo_walls: dict[str, list[float]] = {h: [] for h in slowest}
    free_walls: list[float] = []
    linear_walls: list[float] = []
    task_sum_slowest: list[float] = []

    for rep in range(opts.repeat):
        # Solo runs: every candidate PC alone, on one fresh lab (PCs do not share state or latency draws).
        with running_lab(workdir / f"solo{rep}", spec=spec, seed=opts.seed, timing=opts.timing, name="solo") as lab:
            inv = write_inventory(lab.inventory, workdir / f"solo{rep}.yml")
            run_in_process(pb, inv, workdir, limit=fastest)  # warm-up (imports, template cache); not measured
            for host in slowest:
                wall, result = run_in_process(pb, inv, workdir, limit=host)
                _check(result, 1, f"solo run of {host}")
                solo_walls[host].append(wall)
        for strategy, walls in (("free", free_walls), ("linear", linear_walls)):
            with running_lab(
                workdir / f"{strategy}{rep}", spec=spec, seed=opts.seed, timing=opts.timing, name=strategy
            ) as lab:
                inv = write_inventory(lab.inventory, workdir / f"{strategy}{rep}.yml")
                wall, result = run_in_process(pb, inv, workdir, strategy=strategy)
                _check(result, opts.hosts, f"{strategy} run")
                walls.append(wall)
                if strategy == "free":
                    worst = max(result.hosts, key=lambda h: sum(t.duration_ms for t in h.tasks))
                    task_sum_slowest.append(sum(t.duration_ms for t in worst.tasks) / 1000.0)

    solo = {h: statistics.median(w) for h, w in solo_walls.items()}
    critical = max(solo.values())
    wall = statistics.median(free_walls)
    wall_linear = statistics.median(linear_walls)
    return {
        "wall_s": wall,
        "critical_path_s": critical,
        "ratio": wall / critical,
        "wall_linear_s": wall_linear,
        "ratio_linear": wall_linear / critical,
        "hosts": opts.hosts,
        "slowest_pc": max(solo, key=lambda h: solo[h]),
        "slowest_task_sum_s": statistics.median(task_sum_slowest),
        "solo_s": {h: round(v, 3) for h, v in solo.items()},
        "repeat": opts.repeat,
        "median_ms": opts.median_ms,
        "slow_ms": [opts.slow_min_ms, opts.slow_max_ms],
        "playbook": pb.name,
        "real_playbook": real,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=40)
    parser.add_argument("--slow", type=int, default=3, help="PCs with a slow median latency (--slow-min/max-ms)")
    parser.add_argument("--median-ms", type=float, default=20.0, help="median of the ordinary PCs' medians")
    parser.add_argument("--slow-min-ms", type=float, default=150.0)
    parser.add_argument("--slow-max-ms", type=float, default=300.0)
    parser.add_argument("--solo", type=int, default=3, help="how many of the slowest PCs to time alone")
    parser.add_argument("--repeat", type=int, default=1, help="measurements per contender (median)")
    parser.add_argument("--seed", type=int, default=7)
    add_timing_options(parser)
    parser.add_argument("--standin", action="store_true", help="use the stand-in playbook even if site.yml exists")
    parser.add_argument("--quick", action="store_true", help="same sizes (the run is short already)")
    parser.add_argument("--timeout", type=float, default=900.0, help="overall time limit, seconds")
    opts = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kmsfleet-classroom-") as tmp:
        try:
            with time_limit(opts.timeout):
                res = measure_with_instant(
                    measure, opts, Path(tmp), ("wall_s", "critical_path_s", "ratio", "wall_linear_s", "ratio_linear")
                )
        except BenchTimeout as exc:
            print(f"classroom: {exc}", file=sys.stderr)
            emit_json({"error": str(exc)})
            return 1
    print_table(
        f"classroom: {res['hosts']} PCs, {res['playbook']} ({'real' if res['real_playbook'] else 'stand-in'}), "
        f"median of {res['repeat']}",
        [
            ("wall, free strategy", fmt(res["wall_s"], "s"), ""),
            ("critical path (slowest PC alone)", fmt(res["critical_path_s"], "s"), ""),
            ("  slowest PC", str(res["slowest_pc"]), ""),
            ("  its task durations summed (room run)", fmt(res["slowest_task_sum_s"], "s"), ""),
            ("ratio free", fmt(res["ratio"], "", 3), "<= 1.10"),
            ("wall, linear strategy", fmt(res["wall_linear_s"], "s"), ""),
            ("ratio linear", fmt(res["ratio_linear"], "", 3), ""),
        ],
    )
    emit_json(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
