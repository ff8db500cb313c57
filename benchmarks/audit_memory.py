"""Where an audit's memory goes, measured in ONE process (docs/performance.md, "Memory").

    .venv/bin/python benchmarks/audit_memory.py --hosts 1000
    .venv/bin/python benchmarks/audit_memory.py --hosts 300 --tracemalloc   # + the top allocation sites
    .venv/bin/python benchmarks/audit_memory.py --hosts 5000 --cli          # through the CLI (issue 16's figure)

The lab (``--timing instant``) runs in its own process, so its memory is not counted. The bundled ``audit.yml``
runs in this process through ``orchestrator.api.run_playbook`` (history off, ``--forks`` 50). A sampling thread
reads this process's RSS from ``/proc/self/statm`` every 0.2 s. Printed as one JSON line: hosts, rss_start_mb
(everything imported, lab up), rss_peak_mb, kb_per_pc ((peak - start) / PCs), the run's wall and CPU time, and with
``--tracemalloc`` the Python heap traced when the run ends (the ``RunResult`` still held) and its largest sites.

``--cli``: the figure ``audit_scale.py`` reports (``rss_mb``), in a few minutes on an instant lab: ``kmsfleet run
audit.yml -i INV --forks 50 --processes 1 --db FILE`` as a child process (history on, as users run it), its peak
RSS from ``os.wait4`` (``ru_maxrss``) as ``rss_mb``. The child is this file with ``--child``: it runs the CLI in
its own process after wrapping a few end-of-run steps (the terminal's ``run_done``, the history's ``run_done``,
the recap's summary) so that each writes its own RSS on entry and exit to stderr; the parent reads the child's
RSS from ``/proc/PID/status`` every 0.2 s. Printed: rss_mb, the RSS at each phase (``phases``), when the peak was
reached (``peak_at_s``, seconds from start, against ``wall_s``) and a coarse timeline. ``--trace-at PHASE``:
tracemalloc's largest sites at that phase instead (the child stops there); ``--reports``: every report format
written too. Experiments through the child's environment: ``KF_MEM_GC_EVERY=5`` (a full collection every 5 s),
``MALLOC_ARENA_MAX=N`` (glibc's own; ``kmsfleet run`` then keeps it).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
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

from benchmarks._common import bench_env, playbook, running_lab, wait_child  # noqa: E402
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


# ------------------------------------------------------------------------------ through the CLI (--cli)

PHASE_MARK = "kf-mem-phase "  # a stderr line of the child: this prefix, then JSON {"phase": ..., "rss_mb": ...}
TIMELINE_POINTS = 24
REPORT_FORMATS = ("json", "csv", "xml", "html")
GC_EVERY = "KF_MEM_GC_EVERY"  # environment of the child: see _collect_every
TRACE_AT = "KF_MEM_TRACE_AT"  # environment of the child: the phase where --trace-at snapshots the heap


def _mark(phase: str) -> None:
    sys.stderr.write(PHASE_MARK + json.dumps({"phase": phase, "rss_mb": round(rss_mb(), 1)}) + "\n")
    if os.environ.get(TRACE_AT) == phase:  # --trace-at PHASE: the Python heap's largest sites there, then stop
        snap = tracemalloc.take_snapshot()
        total = round(sum(s.size for s in snap.statistics("filename")) / 1e6, 1)
        sys.stderr.write(PHASE_MARK + json.dumps({"phase": "trace", "traced_mb": total, "top": top_sites(snap, 30)}))
        sys.stderr.write("\n")
        sys.stderr.flush()
        os._exit(0)
    sys.stderr.flush()


def _wrap(owner: Any, name: str, phase: str) -> None:
    inner = getattr(owner, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        _mark(phase + ":enter")
        try:
            return inner(*args, **kwargs)
        finally:
            _mark(phase + ":exit")

    setattr(owner, name, wrapped)


def _collect_every(seconds: float) -> None:
    while True:
        time.sleep(seconds)
        freed = gc.collect()
        sys.stderr.write(PHASE_MARK + json.dumps({"phase": "gc", "freed": freed, "rss_mb": round(rss_mb(), 1)}) + "\n")


def child_main(argv: list[str]) -> int:
    """``kmsfleet ARGV`` in this process, the end-of-run steps marked (see the module docstring)."""
    from orchestrator.cli import output
    from orchestrator.cli.app import main as cli_main
    from orchestrator.results import recorder, reports

    _wrap(output.TerminalReporter, "run_started", "run_started")
    _wrap(output.TerminalReporter, "run_done", "terminal_run_done")
    _wrap(output.TerminalReporter, "print_summary", "summary")
    _wrap(recorder.StoreReporter, "run_done", "history_run_done")
    _wrap(reports, "write_report", "write_report")
    if os.environ.get(TRACE_AT):
        tracemalloc.start(int(os.environ.get(TRACE_AT + "_FRAMES", "1")))
    if os.environ.get(GC_EVERY):  # an experiment: a full collection every N seconds (is cyclic garbage the growth?)
        every = float(os.environ[GC_EVERY])
        threading.Thread(target=_collect_every, args=(every,), daemon=True).start()
    sys.argv = ["kmsfleet", *argv]
    try:
        cli_main()
    except SystemExit as exc:
        _mark("exit")
        return exc.code if isinstance(exc.code, int) else 1
    _mark("exit")
    return 0


class ChildSampler(threading.Thread):
    """Reads a child's RSS (``VmRSS`` of ``/proc/PID/status``) until it ends: the peak and when it was seen."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.path = f"/proc/{pid}/status"
        self.started = time.monotonic()
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def read(self) -> float | None:
        try:
            with open(self.path, encoding="ascii") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024.0
        except OSError:
            return None
        return None

    def run(self) -> None:
        while not self.stop.wait(SAMPLE_EVERY):
            value = self.read()
            if value is not None:
                self.samples.append((time.monotonic() - self.started, value))


def _phases(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line[len(PHASE_MARK) :]) for line in stderr.splitlines() if line.startswith(PHASE_MARK)]


def _timeline(samples: list[tuple[float, float]]) -> list[list[float]]:
    step = max(1, len(samples) // TIMELINE_POINTS)
    return [[round(t, 1), round(mb, 1)] for t, mb in samples[::step]]


def measure_cli(opts: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    pb, _ = playbook("audit.yml")
    with running_lab(workdir / "lab", hosts=opts.hosts, seed=0, name="memcli", timeout=600, timing="instant") as lab:
        args = ["run", str(pb), "-i", str(lab.inventory), "--forks", str(opts.forks), "--processes", "1"]
        args += ["--db", str(workdir / "audit.db")]
        if opts.reports:
            args += [arg for ext in REPORT_FORMATS for arg in ("--report", str(workdir / f"report.{ext}"))]
        argv = [sys.executable, str(Path(__file__).resolve()), "--child", *args]
        out_path, err_path = workdir / "out.txt", workdir / "err.txt"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            started = time.monotonic()
            env = bench_env(**({TRACE_AT: opts.trace_at} if opts.trace_at else {}))
            proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=workdir)
            sampler = ChildSampler(proc.pid)
            sampler.start()
            usage = wait_child(proc, started, started + opts.run_timeout)
            sampler.stop.set()
            sampler.join()
    stderr = err_path.read_text("utf-8", "replace")
    if usage.returncode not in (0, 2):
        raise RuntimeError(f"kmsfleet exit {usage.returncode}: {stderr[-1500:]}")
    peak_t, peak = max(sampler.samples, key=lambda s: s[1], default=(0.0, 0.0))
    return {
        "hosts": opts.hosts,
        "mode": "cli",
        "rss_mb": round(usage.maxrss_mb, 1),
        "sampled_peak_mb": round(peak, 1),
        "peak_at_s": round(peak_t, 1),
        "wall_s": round(usage.wall_s, 1),
        "cpu_s": round(usage.cpu_s, 1),
        "exit": usage.returncode,
        "phases": _phases(stderr),
        "timeline": _timeline(sampler.samples),
    }


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        return child_main(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--forks", type=int, default=50)
    parser.add_argument("--tracemalloc", action="store_true", help="trace the Python heap (1 frame; slower)")
    parser.add_argument("--cli", action="store_true", help="through the CLI in a child process, history on")
    parser.add_argument("--run-timeout", type=float, default=1800.0, help="--cli: kill the child after this (s)")
    parser.add_argument("--reports", action="store_true", help="--cli: also write every report format")
    parser.add_argument("--trace-at", metavar="PHASE", help="--cli: tracemalloc's top sites at PHASE (then stop)")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kf-mem-") as tmp:
        print(json.dumps((measure_cli if opts.cli else measure)(opts, Path(tmp))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
