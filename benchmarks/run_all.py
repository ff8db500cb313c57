"""Run every benchmark and proof in sequence and print one table of their results.

    python3 dev.py bench                             # all of them, at the sizes their defaults use
    .venv/bin/python benchmarks/run_all.py --quick   # smaller sizes (a few minutes in all)
    .venv/bin/python benchmarks/run_all.py --only classroom,soak

Each script runs as its own process (its output streams through); its LAST line is its JSON result. The final
table lists every key of every script with the target where the issue sets one, and whether it is met. The last
line is one JSON object: {script: its JSON line}. Exit 0 when every script ran and printed its JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"

# script, extra args for the full run, extra args for --quick, time limit (s)
SCRIPTS: list[tuple[str, list[str], list[str], float]] = [
    ("lab_bench", [], ["--quick"], 900),
    ("classroom", [], ["--quick"], 900),
    ("ansible_compare", [], ["--quick"], 1800),
    ("audit_scale", [], ["--quick"], 7200),
    ("city", [], ["--quick"], 9000),
    ("soak", ["--hosts", "1000", "--fault-rate", "0.1"], ["--quick"], 3600),
    ("fuzz", ["--cases", "10000"], ["--quick"], 3600),
    ("serve_bench", [], ["--quick"], 3 * 3600),
]

TARGETS: dict[tuple[str, str], tuple[str, float]] = {
    ("lab_bench", "start_s_5000"): ("<", 30.0),
    ("lab_bench", "rss_mb_5000"): ("<", 1024.0),
    ("classroom", "ratio"): ("<=", 1.10),
    ("ansible_compare", "speedup_forks5"): (">=", 20.0),
    ("ansible_compare", "speedup_forks40"): (">=", 3.0),
    ("lab_bench", "lab_cpu_ms_per_request"): ("<=", 0.5),
    ("audit_scale", "wall_ratio"): ("<=", 1.0),
    ("audit_scale", "cpu_ratio"): ("<=", 1.0),
    ("audit_scale", "cpu_ms_per_request"): ("<=", 1.2),
    ("audit_scale", "rss_mb"): ("<=", 250.0),
    ("city", "rss_mb"): ("<=", 1000.0),
    ("soak", "wrong_status"): ("==", 0),
    ("soak", "lost"): ("==", 0),
    ("soak", "hung"): ("==", 0),
    ("fuzz", "tracebacks"): ("==", 0),
    ("fuzz", "hangs"): ("==", 0),
    ("serve_bench", "overview_ms"): ("<", 1000.0),
    ("serve_bench", "due_ms"): ("<", 1000.0),
    ("serve_bench", "pc_ms"): ("<", 1000.0),
}
SHOWN_KEYS = {
    "lab_bench": [
        "start_s_40",
        "rss_mb_40",
        "start_s_5000",
        "rss_mb_5000",
        "receive_rps",
        "wql_rps",
        "lab_cpu_ms_per_request",
        "windows_lab_cpu_ms_per_request",
    ],
    "classroom": ["wall_s", "critical_path_s", "ratio", "ratio_linear"],
    "ansible_compare": ["kmsfleet_s", "ansible_forks5_s", "ansible_forks40_s", "speedup_forks5", "speedup_forks40"],
    "audit_scale": ["hosts", "wall_ratio", "cpu_ratio", "cpu_ms_per_request", "rss_mb"],
    "soak": ["hosts", "final_statuses", "wrong_status", "lost", "hung", "wall_s"],
    "fuzz": ["cases", "tracebacks", "hangs"],
    "serve_bench": ["pcs", "runs", "overview_ms", "due_ms", "pc_ms", "csv_all_pcs_ms", "db_mb"],
}


def _met(script: str, key: str, value: Any, result: dict[str, Any]) -> str:
    if script == "soak" and key == "final_statuses":
        return "yes" if value == result.get("hosts") else "NO"
    target = TARGETS.get((script, key))
    if target is None or value is None:
        return ""
    op, bound = target
    ok = {"<": value < bound, "<=": value <= bound, ">=": value >= bound, "==": value == bound}[op]
    return "yes" if ok else "NO"


def run_one(script: str, args: list[str], limit: float) -> dict[str, Any]:
    argv = [sys.executable, str(BENCH / f"{script}.py"), *args]
    print(f"\n=== {script}: {' '.join(argv[1:])}", flush=True)
    started = time.monotonic()
    last = ""
    try:
        with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT) as proc:
            assert proc.stdout is not None
            deadline = started + limit
            for line in proc.stdout:
                print(line, end="", flush=True)
                if line.strip():
                    last = line.strip()
                if time.monotonic() > deadline:
                    proc.kill()
                    break
            proc.wait(60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    try:
        result: dict[str, Any] = json.loads(last)
    except ValueError:
        return {"error": f"no JSON line (exit {proc.returncode})"}
    result.setdefault("_seconds", round(time.monotonic() - started, 1))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes for every script")
    parser.add_argument("--only", help="comma list of scripts to run (default: all)")
    opts = parser.parse_args(argv)
    wanted = set(opts.only.split(",")) if opts.only else None
    results: dict[str, dict[str, Any]] = {}
    for script, full, quick, limit in SCRIPTS:
        if wanted is not None and script not in wanted:
            continue
        results[script] = run_one(script, quick if opts.quick else full, limit)

    print("\n=== Benchmarks and proofs" + (" (--quick)" if opts.quick else ""))
    print(f"{'script':<17}{'key':<20}{'value':>14}  {'target':<10}{'met':<4}")
    for script, result in results.items():
        if "error" in result:
            print(f"{script:<17}{'error':<20}{result['error'][:60]}")
            continue
        for key in SHOWN_KEYS.get(script, list(result)):
            value = result.get(key)
            target = TARGETS.get((script, key))
            shown = f"{value:,.3f}" if isinstance(value, float) else str(value)
            goal = f"{target[0]} {target[1]:g}" if target else ("= hosts" if key == "final_statuses" else "")
            print(f"{script:<17}{key:<20}{shown:>14}  {goal:<10}{_met(script, key, value, result):<4}")
    print(json.dumps(results, sort_keys=False, default=str), flush=True)
    return 0 if all("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
