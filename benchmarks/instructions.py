"""Instructions per PC: the controller's user-space instructions for one PC's audit, counted by valgrind's
callgrind, which counts instructions rather than seconds: the same figure on a quiet machine and on a busy one,
so a change worth 2 % shows, where CPU seconds on this VM vary by ±10 % between runs.

    .venv/bin/python benchmarks/instructions.py                 # this tree, 30 PCs (about 3 minutes)
    .venv/bin/python benchmarks/instructions.py --tree ../old   # another checkout of kmsfleet, same lab

An instant lab (``kmsfleet lab serve --timing instant``) serves ``--hosts`` PCs on loopback. ``kmsfleet run
playbooks/audit.yml --forks 1`` (history on, as users run it) is counted under callgrind three times at once:
against the first PC alone and twice against all ``--hosts``. Instructions per PC = (all - one) / (hosts - 1),
from each of the two full runs; start = one - per PC (start-up, plan, reports and exit). One worker thread:
with several, the instructions spent handing the GIL over grow with the wall time a run takes under valgrind's
50-fold slowdown, which depends on what else the machine does (with 5 forks one tree counted 64.1 M per PC on a
quiet machine and 67.6 M beside a test run). Kernel work (system calls, context switches) is not counted:
callgrind sees user space only. Both full runs are printed; they differ by what still depends on time (how many
hosts share a history transaction).

Keys: ``instr_per_pc_m`` (millions, the mean of the two), ``instr_per_pc_runs_m``, ``start_g`` (billions),
``hosts``, ``tree``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import bench_env, emit_json, running_lab  # noqa: E402
from orchestrator.lab.profiles import ROOM_SIZE  # noqa: E402

COLLECTED = re.compile(r"Collected : (\d+)")
ROOM = ROOM_SIZE  # PCs in a room of ``kmsfleet lab serve --hosts N``; the counted runs use the first room


def _inventory(lab_inventory: Path, out: Path, count: int) -> Path:
    """The lab's first room, cut to ``count`` PCs, with its group variables (KMS host, ports)."""
    data = yaml.safe_load(lab_inventory.read_text(encoding="utf-8"))
    name, room = next(iter(data["all"]["children"].items()))
    hosts = dict(list(room["hosts"].items())[:count])
    out.write_text(yaml.safe_dump({"all": {"children": {name: {**room, "hosts": hosts}}}}), encoding="utf-8")
    os.chmod(out, 0o600)
    return out


def _counted(tree: Path, inventory: Path, workdir: Path, tag: str) -> subprocess.Popen[str]:
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={workdir / (tag + '.callgrind')}"]
    argv += [sys.executable, "-m", "orchestrator", "run", str(tree / "playbooks" / "audit.yml"), "-i", str(inventory)]
    argv += ["--forks", "1", "--db", str(workdir / f"{tag}.db")]
    env = bench_env(PYTHONPATH=str(tree))
    return subprocess.Popen(argv, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _instructions(proc: subprocess.Popen[str], timeout: float) -> int:
    _, err = proc.communicate(timeout=timeout)
    found = COLLECTED.search(err or "")
    if proc.returncode not in (0, 2) or found is None:
        raise RuntimeError(f"counted run exit {proc.returncode}: {(err or '')[-1500:]}")
    return int(found.group(1))


def _check_finished(db: Path, hosts: int) -> None:
    """Every PC of a counted run finished (ok, changed, or a licence finding), so the count is of whole audits."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = dict(conn.execute("SELECT status, COUNT(*) FROM host_results GROUP BY status").fetchall())
    if sum(rows.values()) != hosts or set(rows) - {"ok", "changed"}:
        raise RuntimeError(f"{db.name}: not every PC's audit finished: {rows}")


def measure(tree: Path, hosts: int, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="kmsfleet-instr-") as tmp:
        work = Path(tmp)
        with running_lab(work / "lab", hosts=hosts, timing="instant", name="instr") as lab:
            one = _inventory(lab.inventory, work / "one.yml", 1)
            every = _inventory(lab.inventory, work / "all.yml", hosts)
            runs = [_counted(tree, one, work, "one")] + [_counted(tree, every, work, f"all{i}") for i in (1, 2)]
            try:
                first, *full = [_instructions(p, timeout) for p in runs]
            finally:
                for proc in runs:
                    if proc.poll() is None:
                        proc.kill()
                    proc.wait(30)
            for tag, count in (("one", 1), ("all1", hosts), ("all2", hosts)):
                _check_finished(work / f"{tag}.db", count)
    per_pc = [(n - first) / (hosts - 1) for n in full]
    mean = sum(per_pc) / len(per_pc)
    return {
        "tree": str(tree),
        "hosts": hosts,
        "instr_per_pc_m": round(mean / 1e6, 2),
        "instr_per_pc_runs_m": [round(x / 1e6, 2) for x in per_pc],
        "start_g": round((first - mean) / 1e9, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=Path, default=ROOT, help="the kmsfleet checkout to count (default: this)")
    parser.add_argument("--hosts", type=int, default=30, help="PCs in the full runs (at least 2)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds each counted run may take")
    opts = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    if not 2 <= opts.hosts <= ROOM:
        parser.error(f"--hosts must be 2 to {ROOM} (the PCs of the lab's first room)")
    result = measure(opts.tree.resolve(), opts.hosts, opts.timeout)
    print(f"instructions per PC   {result['instr_per_pc_m']:8.2f} M   (runs: {result['instr_per_pc_runs_m']})")
    print(f"start, plan and exit  {result['start_g']:8.3f} G")
    emit_json(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
