"""Fault soak: a room full of trouble, one Ctrl-C, then ``--limit @failed`` until every PC has a final status.

    .venv/bin/python benchmarks/soak.py --hosts 1000 --fault-rate 0.1     # the issue's size (a few minutes)
    .venv/bin/python benchmarks/soak.py --quick                           # 100 PCs (what CI runs)

The lab (``kmsfleet lab serve --spec``, its own process): ``--hosts`` healthy classroom PCs (Windows 10 Education +
Office 2016 volume, not activated; rooms of 250), 0..``--latency-ms`` ms per request. A seeded draw makes
``--fault-rate`` of them TROUBLED, each with one kind of trouble:
  drop         the PC drops 5 % of its requests (connection closed without an answer)
  http500      answers 5 % of its requests with HTTP 500 (an internal-error fault)
  hang         never answers 3 % of its requests (the client's read timeout has to fire)
  unauthorized answers 3 % of its requests with 401 as if the password were wrong
  power_off    is powered off through the control API at a seeded moment of the first run, and stays off
On top, the lab's KMS host is DOWN through the control API from ``--kms-down-at`` seconds into the first run for
``--kms-down-for`` seconds (activations in that window fail with 0xC004F074, as on Windows).

The runs (kmsfleet's CLI as a child process, ``site.yml`` (real playbook when present), ``--db`` one SQLite file,
``--report runK.json``, ``--host-timeout`` = the per-PC budget, operation/read timeouts 3/6 s in the inventory):
  1. the first run gets ONE SIGINT at a seeded random moment: once a seeded fraction (20-60 %) of the PCs has
     been recorded in the database. It must exit 99 within its grace (+ 30 s) keeping every result gathered.
  2. then ``--limit @failed`` follow-ups (at most ``--max-followups``), after the KMS host is back, until no PC
     is left without success or the follow-ups run out.

Measured (the last JSON line):
  hosts           PCs in the lab.
  final_statuses  PCs whose LAST status (from the last run that included them) is final: ok, changed, failed,
                  unreachable or auth_refused (not interrupted / not_run). Must equal hosts.
  wrong_status    PCs whose final status contradicts the lab's ground truth, read through the control API after
                  the last run (GET /hosts: each product's LicenseStatus; the soak's own record of which PCs
                  were troubled). Ground truth: a PC is LICENSED when every product the playbook activates on it
                  (Windows, and Office when installed) has LicenseStatus 1; it is HEALTHY when it had no faults and
                  was never powered off. A status is wrong when
                    (a) it is ok/changed but the PC is not licensed (success claimed that did not happen);
                    (b) it is failed while the PC is licensed, and the PC is healthy or the failure names an
                        activation error (0xC004xxxx): a licensing failure claimed that did not happen (a
                        troubled PC whose last request failed in transport after activating is reported with
                        that transport error, which is true);
                    (c) it is unreachable or auth_refused while the PC is healthy (an answering PC with the right
                        password must never be reported so).
  lost            results missing: for every run, PCs it targeted that are absent from its JSON report or from
                  the database, plus PCs whose status differs between report and database.
  hung            PCs that ran past their budget: a host whose recorded duration exceeds --host-timeout plus the
                  runner's watchdog grace (5 s) plus 5 s, plus every PC of a run that did not exit in time.
  wall_s          the whole soak (all runs).
Extras: runs (exit codes and counts), troubled PCs by kind, healthy PCs left unlicensed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import (  # noqa: E402
    KMSFLEET,
    BenchTimeout,
    LabProcess,
    bench_env,
    emit_json,
    fmt,
    licensed_products,
    playbook,
    print_table,
    running_lab,
    time_limit,
    wait_child,
    write_inventory,
)

PASSWORD = "Soak-Lab-Passw0rd!"
FAULTS = {
    "drop": {"drop": 0.05},
    "http500": {"http500": 0.05},
    "hang": {"hang": 0.03},
    "unauthorized": {"unauthorized": 0.03},
}
KINDS = ("drop", "http500", "hang", "unauthorized", "power_off")
FINAL = {"ok", "changed", "failed", "unreachable", "auth_refused"}
SUCCESS = {"ok", "changed"}
WATCHDOG_GRACE = 5.0  # orchestrator.executor.runner.WATCHDOG_GRACE


def build_spec(hosts: int, fault_rate: float, latency_ms: float, seed: int) -> tuple[dict[str, Any], dict[str, str]]:
    """A multi-room spec and the troubled PCs (name -> kind)."""
    rng = random.Random(seed)
    width = max(3, len(str(hosts)))
    names = [f"pc{i:0{width}d}" for i in range(1, hosts + 1)]
    troubled = {n: rng.choice(KINDS) for n in rng.sample(names, round(hosts * fault_rate))}
    rooms = []
    for r in range(0, hosts, 250):
        entries: list[dict[str, Any]] = []
        for name in names[r : r + 250]:
            entry: dict[str, Any] = {"name": name}
            kind = troubled.get(name)
            if kind in FAULTS:
                entry["faults"] = FAULTS[kind]
            entries.append(entry)
        rooms.append(
            {
                "room": f"room{101 + r // 250}",
                "subnet": f"127.0.{r // 250 + 1}",
                "credentials": {"user": "administrator", "password": PASSWORD},
                "defaults": {
                    "os": "Windows 10 Education",
                    "office": {"version": 2016, "bitness": "x86", "channel": "volume", "state": "unlicensed"},
                    "latency_ms": [0.0, float(latency_ms)],
                },
                "hosts": entries,
            }
        )
    return {"rooms": rooms, "seed": seed}, troubled


def _recorded(db: Path) -> int:
    """Hosts finished so far (any run), read-only; 0 while the database does not exist yet. A run writes every
    targeted PC as pending (``not_run``) when it starts: those rows are not counted."""
    if not db.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0)) as conn:
            query = "SELECT count(*) FROM host_results WHERE status != 'not_run'"
            return int(conn.execute(query).fetchone()[0])
    except sqlite3.Error:
        return 0


class Chaos:
    """The first run's scheduled trouble: power-offs and the KMS outage (control API), from a thread."""

    def __init__(self, lab: LabProcess, troubled: dict[str, str], opts: argparse.Namespace, rng: random.Random):
        self.lab = lab
        self.opts = opts
        self.events: list[tuple[float, str, Any]] = []
        for name, kind in troubled.items():
            if kind == "power_off":
                self.events.append((rng.uniform(0.5, opts.power_off_within), "power_off", name))
        self.events.append((opts.kms_down_at, "kms", False))
        self.events.append((opts.kms_down_at + opts.kms_down_for, "kms", True))
        self.events.sort(key=lambda e: e[0])
        self.done = threading.Event()
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.kms_up_again = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-chaos", daemon=True)

    def start(self) -> None:
        self.started = time.monotonic()
        self._thread.start()

    def _run(self) -> None:
        try:
            for at, what, arg in self.events:
                while not self.stop.is_set() and time.monotonic() < self.started + at:
                    self.stop.wait(0.05)
                if self.stop.is_set() and not (what == "kms" and arg):
                    continue  # when stopping early, still bring the KMS host back
                try:
                    if what == "power_off":
                        self.lab.ctl.power(str(arg), False)
                    else:
                        self.lab.ctl.set_kms(up=bool(arg))
                        if arg:
                            self.kms_up_again.set()
                except Exception as exc:
                    self.errors.append(f"{what} {arg}: {exc}")
        finally:
            self.done.set()

    def finish(self) -> None:
        self.stop.set()
        self._thread.join(30)


def run_cli(
    argv: list[str], workdir: Path, timeout: float, interrupt_when: Any = None
) -> tuple[int, float, bool, bool]:
    """Run one kmsfleet CLI process. ``interrupt_when()`` is polled; when true, ONE SIGINT is sent.
    Returns (exit code, wall seconds, interrupted, timed_out)."""
    log = workdir / f"cli-{time.monotonic_ns()}.log"
    with open(log, "wb") as out:
        started = time.monotonic()
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=bench_env(), cwd=workdir
        )
        sent = False
        try:
            deadline = started + timeout
            while interrupt_when is not None and not sent and proc.poll() is None and time.monotonic() < deadline:
                if interrupt_when():
                    proc.send_signal(signal.SIGINT)
                    sent = True
                    deadline = min(deadline, time.monotonic() + 60.0)  # grace 5 s; generous bound
                    break
                time.sleep(0.1)
            usage = wait_child(proc, started, deadline)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            raise
    return usage.returncode, usage.wall_s, sent, usage.timed_out


def soak(opts: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    rng = random.Random(opts.seed)
    spec, troubled = build_spec(opts.hosts, opts.fault_rate, opts.latency_ms, opts.seed)
    pb, real = playbook("site.yml", standin_only=opts.standin)
    db = workdir / "soak.db"
    started = time.monotonic()
    out: dict[str, Any] = {"hosts": opts.hosts}
    with running_lab(workdir / "lab", spec=spec, seed=opts.seed, name="lab", timeout=300) as lab:
        names = list(lab.inventory_hosts())
        inv = write_inventory(
            lab.inventory,
            workdir / "soak-inventory.yml",
            {
                "ansible_winrm_operation_timeout_sec": opts.op_timeout,
                "ansible_winrm_read_timeout_sec": opts.op_timeout + 3,
                "ansible_winrm_connection_timeout_sec": 5,
            },
        )
        base = [*KMSFLEET, "run", str(pb), "-i", str(inv), "--db", str(db), "--host-timeout", str(opts.budget)]
        base += ["--forks", str(opts.forks)]
        runs: list[dict[str, Any]] = []
        expected: list[set[str]] = [set(names)]
        fraction = rng.uniform(0.2, 0.6)
        target = max(1, int(fraction * len(names)))

        # ---- run 1: chaos + one SIGINT
        chaos = Chaos(lab, troubled, opts, rng)
        chaos.start()
        report = workdir / "run1.json"
        code, wall, sent, timed_out = run_cli(
            [*base, "--report", str(report)], workdir, opts.run_timeout, lambda: _recorded(db) >= target
        )
        runs.append({"report": report, "exit": code, "wall_s": wall, "sigint": sent, "timed_out": timed_out})
        # the KMS outage ends on schedule even if the run ended first
        chaos.kms_up_again.wait(
            max(0.0, opts.kms_down_at + opts.kms_down_for - (time.monotonic() - chaos.started)) + 10
        )
        chaos.finish()

        # ---- follow-ups
        latest = _latest_statuses(runs, names)
        for _k in range(opts.max_followups):
            todo = {h for h in names if latest.get(h) not in SUCCESS}
            if not todo:
                break
            expected.append(todo)
            report = workdir / f"run{len(runs) + 1}.json"
            code, wall, sent, timed_out = run_cli(
                [*base, "--limit", "@failed", "--report", str(report)], workdir, opts.run_timeout
            )
            runs.append({"report": report, "exit": code, "wall_s": wall, "sigint": False, "timed_out": timed_out})
            latest = _latest_statuses(runs, names)
        truth = {h["name"]: h for h in lab.ctl.hosts()}
    out["wall_s"] = time.monotonic() - started
    out.update(_judge(opts, runs, expected, names, latest, truth, troubled, db))
    out["sigint_after_recorded"] = target
    out["chaos_errors"] = chaos.errors[:3]
    out["troubled"] = dict(Counter(troubled.values()))
    out["playbook"] = pb.name
    out["real_playbook"] = real
    return out


def _report_hosts(report: Path) -> dict[str, dict[str, Any]]:
    if not report.exists():
        return {}
    data = json.loads(report.read_text(encoding="utf-8"))
    return {h["host"]: h for h in data.get("hosts", [])}


def _latest_statuses(runs: list[dict[str, Any]], names: list[str]) -> dict[str, str]:
    latest: dict[str, str] = {}
    for run in runs:
        for host, h in _report_hosts(run["report"]).items():
            latest[host] = h["status"]
    return latest


def _wrong_statuses(
    names: list[str],
    latest: dict[str, str],
    truth: dict[str, dict[str, Any]],
    troubled: dict[str, str],
    last_failed_task: dict[str, dict[str, Any] | None],
) -> tuple[list[str], int]:
    """Each PC's final status against the lab's truth: the wrong ones, and how many healthy PCs are unlicensed."""
    wrong: list[str] = []
    healthy_unlicensed = 0
    for name in names:
        status = latest.get(name)
        products = licensed_products(truth[name])
        licensed = bool(products) and all(products.values())
        healthy = name not in troubled
        failed_task = last_failed_task.get(name) or {}
        code = str(failed_task.get("error_code") or "")
        if status in SUCCESS and not licensed:
            wrong.append(f"{name}: {status} but not licensed ({products})")
        elif status == "failed" and licensed and (healthy or code.upper().startswith("0XC004")):
            wrong.append(f"{name}: failed ({code or failed_task.get('msg', '')}) but licensed")
        elif status in ("unreachable", "auth_refused") and healthy:
            wrong.append(f"{name}: {status} but healthy")
        if healthy and not licensed:
            healthy_unlicensed += 1
    return wrong, healthy_unlicensed


def _judge(
    opts: argparse.Namespace,
    runs: list[dict[str, Any]],
    expected: list[set[str]],
    names: list[str],
    latest: dict[str, str],
    truth: dict[str, dict[str, Any]],
    troubled: dict[str, str],
    db: Path,
) -> dict[str, Any]:
    from orchestrator.results.store import HistoryStore

    lost = 0
    hung = 0
    limit_ms = (opts.budget + WATCHDOG_GRACE + 5.0) * 1000
    summaries: list[dict[str, Any]] = []
    last_failed_task: dict[str, dict[str, Any] | None] = {}
    store = HistoryStore(str(db))
    try:
        for run, targets in zip(runs, expected, strict=True):
            hosts = _report_hosts(run["report"])
            run_id = None
            if run["report"].exists():
                run_id = json.loads(run["report"].read_text(encoding="utf-8"))["run"]["id"]
            stored = {h.host: h.status.value for h in store.load_run(run_id).hosts} if run_id else {}
            missing_report = targets - set(hosts)
            missing_db = targets - set(stored)
            differs = {h for h in targets & set(hosts) & set(stored) if hosts[h]["status"] != stored[h]}
            lost += len(missing_report | missing_db | differs)
            if run["timed_out"]:
                hung += len(targets)
            hung += sum(1 for h in hosts.values() if h["duration_ms"] > limit_ms)
            for name, h in hosts.items():
                bad = [t for t in h["tasks"] if t["status"] in ("failed", "unreachable") and not t["ignored"]]
                last_failed_task[name] = bad[-1] if bad else None
                if h.get("error_code"):
                    last_failed_task[name] = {**(last_failed_task[name] or {}), "error_code": h["error_code"]}
            summaries.append(
                {
                    "exit": run["exit"],
                    "sigint": run["sigint"],
                    "wall_s": round(run["wall_s"], 2),
                    "targets": len(targets),
                    "counts": dict(Counter(h["status"] for h in hosts.values())),
                }
            )
    finally:
        store.close()

    wrong, healthy_unlicensed = _wrong_statuses(names, latest, truth, troubled, last_failed_task)
    return {
        "final_statuses": sum(1 for n in names if latest.get(n) in FINAL),
        "wrong_status": len(wrong),
        "lost": lost,
        "hung": hung,
        "runs": summaries,
        "final_counts": dict(Counter(latest.get(n, "missing") for n in names)),
        "healthy_unlicensed": healthy_unlicensed,
        "wrong_examples": wrong[:5],
    }


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--fault-rate", type=float, default=0.1, help="fraction of PCs with trouble")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--latency-ms", type=float, default=5.0, help="per-request latency drawn from 0..this")
    parser.add_argument("--forks", type=int, default=50)
    parser.add_argument("--budget", type=float, default=90.0, help="--host-timeout for every run, seconds")
    parser.add_argument("--op-timeout", type=int, default=3, help="WinRM operation timeout (read timeout +3 s)")
    parser.add_argument("--kms-down-at", type=float, default=2.0, help="seconds into the first run")
    parser.add_argument("--kms-down-for", type=float, default=20.0, help="seconds the KMS host stays down")
    parser.add_argument("--power-off-within", type=float, default=20.0, help="power-offs happen in 0.5..this s")
    parser.add_argument("--max-followups", type=int, default=4)
    parser.add_argument("--standin", action="store_true", help="use the stand-in site playbook")
    parser.add_argument("--quick", action="store_true", help="100 PCs, shorter outages (the CI size)")
    parser.add_argument("--run-timeout", type=float, default=1200.0, help="limit for one kmsfleet run, seconds")
    parser.add_argument("--timeout", type=float, default=3600.0, help="overall time limit, seconds")
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.hosts = min(opts.hosts, 100)
        opts.kms_down_for = min(opts.kms_down_for, 5.0)
        opts.power_off_within = min(opts.power_off_within, 5.0)
        opts.budget = min(opts.budget, 45.0)
        opts.max_followups = min(opts.max_followups, 3)
        opts.run_timeout = min(opts.run_timeout, 240.0)
        opts.timeout = min(opts.timeout, 600.0)
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    with tempfile.TemporaryDirectory(prefix="kmsfleet-soak-") as tmp:
        try:
            with time_limit(opts.timeout):
                res = soak(opts, Path(tmp))
        except BenchTimeout as exc:
            print(f"soak: {exc}", file=sys.stderr)
            emit_json({"error": str(exc), "hosts": opts.hosts})
            return 1
    rows = [
        ("PCs", str(res["hosts"]), ""),
        ("PCs with a final status", str(res["final_statuses"]), f"= {res['hosts']}"),
        ("wrong status (vs lab ground truth)", str(res["wrong_status"]), "0"),
        ("results lost (report/database)", str(res["lost"]), "0"),
        ("hosts past their budget", str(res["hung"]), "0"),
        ("wall, all runs", fmt(res["wall_s"], "s"), ""),
        ("healthy PCs left unlicensed", str(res["healthy_unlicensed"]), ""),
        ("final statuses", json.dumps(res["final_counts"]), ""),
    ]
    for i, run in enumerate(res["runs"], 1):
        label = "run 1 (SIGINT)" if run["sigint"] else f"run {i} (@failed)"
        rows.append((f"{label}: exit {run['exit']}, {run['targets']} PCs", fmt(run["wall_s"], "s"), ""))
    print_table(
        f"soak: {res['hosts']} PCs, troubled {res['troubled']}, {res['playbook']}",
        rows,
    )
    for line in res["wrong_examples"]:
        print(f"  wrong: {line}")
    emit_json(res)
    ok = res["final_statuses"] == res["hosts"] and not (res["wrong_status"] or res["lost"] or res["hung"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
