"""Where an audit's memory goes, measured in ONE process (docs/performance.md, "Memory").

    .venv/bin/python benchmarks/audit_memory.py --hosts 1000
    .venv/bin/python benchmarks/audit_memory.py --hosts 300 --tracemalloc   # + the top allocation sites

The lab (``--timing instant``) runs in its own process, so its memory is not counted. The bundled ``audit.yml``
runs in this process through ``orchestrator.api.run_playbook`` (history off, ``--forks`` 50). A sampling thread
reads this process's RSS from ``/proc/self/statm`` every 0.2 s. Printed as one JSON line: hosts, rss_start_mb
(everything imported, lab up), rss_peak_mb, kb_per_pc ((peak - start) / PCs), the run's wall and CPU time, and with
``--tracemalloc`` the Python heap traced when the run ends (the ``RunResult`` still held) and its largest sites.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import playbook, running_lab  # noqa: E402
from orchestrator.api import RunRequest, run_playbook  # noqa: E402
from orchestrator.executor.state import RunOptions  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")
SAMPLE_EVERY = 0.2  # seconds


def rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * PAGE / 1e6


class PeakSampler(threading.Thread):
    """Reads the RSS until stopped; keeps the highest value seen."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = rss_mb()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(SAMPLE_EVERY):
            self.peak = max(self.peak, rss_mb())


def top_sites(snapshot: tracemalloc.Snapshot, count: int) -> list[dict[str, Any]]:
    out = []
    for stat in snapshot.statistics("lineno")[:count]:
        frame = stat.traceback[0]
        out.append({"site": f"{Path(frame.filename).name}:{frame.lineno}", "kb": stat.size // 1024})
    return out


def measure(opts: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    pb, _ = playbook("audit.yml")
    with running_lab(workdir / "lab", hosts=opts.hosts, seed=0, name="mem", timeout=600, timing="instant") as lab:
        gc.collect()
        if opts.tracemalloc:
            tracemalloc.start(1)
        start = rss_mb()
        sampler = PeakSampler()
        sampler.start()
        t0, cpu0 = time.monotonic(), time.process_time()
        request = RunRequest(
            playbook=str(pb), inventory=[str(lab.inventory)], history=False, options=RunOptions(forks=opts.forks)
        )
        result = run_playbook(request)
        wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
        sampler.stop.set()
        sampler.join()
        out: dict[str, Any] = {"hosts": opts.hosts, "rss_start_mb": round(start, 1)}
        out["rss_peak_mb"] = round(max(sampler.peak, rss_mb()), 1)
        out["kb_per_pc"] = round((out["rss_peak_mb"] - start) * 1000 / opts.hosts, 1)
        out["wall_s"] = round(wall, 1)
        out["cpu_s"] = round(cpu, 1)  # this process only (the lab runs in its own)
        out["statuses"] = {s: sum(1 for h in result.hosts if h.status == s) for s in {h.status for h in result.hosts}}
        if opts.tracemalloc:
            snap = tracemalloc.take_snapshot()
            out["traced_mb"] = round(sum(s.size for s in snap.statistics("filename")) / 1e6, 1)
            out["top"] = top_sites(snap, 15)
            tracemalloc.stop()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--forks", type=int, default=50)
    parser.add_argument("--tracemalloc", action="store_true", help="trace the Python heap (1 frame; slower)")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kf-mem-") as tmp:
        print(json.dumps(measure(opts, Path(tmp))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
