"""City scale: one audit of a whole city's PCs (20,000 by default) in one kmsfleet run, on one machine.

    .venv/bin/python benchmarks/city.py                      # 20,000 PCs, kmsfleet --processes auto
    .venv/bin/python benchmarks/city.py --quick              # 2,000 PCs
    .venv/bin/python benchmarks/city.py --processes 1        # one process (threads only)

The lab runs in its own processes (``kmsfleet lab serve``, up to 10,000 PCs each: one listening socket per PC;
loopback only, Windows timing unless ``--timing instant``); kmsfleet runs ``audit.yml`` over their inventories
as a child process (history on, as users run it), measured with ``os.wait4``: wall, CPU (kmsfleet and the
worker processes it waited for) and peak RSS of the largest single process (with ``--processes``: the parent
or one worker); ``rss_total_mb`` samples the sum of kmsfleet and its workers every 0.5 s. The labs' request
counters give the WS-Management requests made.

Keys: hosts, processes, wall_s, cpu_s, cpu_ms_per_request, soap_requests, rss_mb (target <= 1000),
rss_total_mb, statuses, lab_start_s, lab_rss_mb.

``--distributed``: the same audit through ``kmsfleet run --distributed`` over two local per-site workers. Each
lab's first half of PCs has the host variable ``site: site1``, the rest ``site2``; one ``kmsfleet worker --site``
each, ``--forks`` split between them; a ``redis-server`` on a free loopback port and signed batches with a key
pair per site, as benchmarks/distributed.py sets them up. The controller is measured with ``os.wait4``; the
workers, which it does not start, through /proc (CPU of each worker and its prefork pool before and after, peak
RSS ``VmHWM`` of every worker process). Extra keys: distributed, sites, batch_size, controller_cpu_s,
workers_cpu_s, workers_cpu_ms_per_request, workers_rss_mb (the largest worker process), workers_rss_total_mb
(all of them); ``cpu_ms_per_request`` and ``rss_mb`` are then the controller's.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import (  # noqa: E402
    BenchTimeout,
    ChildUsage,
    LabProcess,
    bench_env,
    emit_json,
    fmt,
    kmsfleet_run,
    playbook,
    print_table,
    proc_rss_mb,
    running_lab,
    time_limit,
)
from benchmarks.audit_scale import _soap_total, _statuses  # noqa: E402
from benchmarks.distributed import Redis, cpu_s, make_keys, start_workers, stop_workers  # noqa: E402

PASSWORD = "City-Passw0rd!"
SITES = ("site1", "site2")


def _tree_rss_mb(root_pid: int) -> float:
    """RSS of a process and its direct children (kmsfleet and its workers), MB."""
    total = proc_rss_mb(root_pid)
    try:
        children = Path(f"/proc/{root_pid}/task/{root_pid}/children").read_text().split()
    except OSError:
        return total
    return total + sum(proc_rss_mb(int(pid)) for pid in children)


class _RssSampler:
    """Peak summed RSS of every ``kmsfleet run`` process tree started while it runs (one at a time here)."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        import os

        me = os.getpid()
        while not self._stop.wait(0.5):
            try:
                kids = Path(f"/proc/{me}/task/{me}/children").read_text().split()
            except OSError:
                continue
            for pid in kids:
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if b"\0run\0" in cmd:
                    self.peak = max(self.peak, _tree_rss_mb(int(pid)))

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


LAB_MAX = 10_000  # PCs per lab process: one listening socket each, under the usual 20,000 open-file limit


def _spec(index: int, hosts: int) -> dict[str, Any]:
    """Lab ``index``'s rooms of 250 PCs, named apart from the other labs' (``c<lab>r<room>pc<nnn>``)."""
    rooms = []
    for r in range((hosts + 249) // 250):
        n = min(250, hosts - r * 250)
        rooms.append(
            {
                "room": f"c{index}r{r + 1:02d}",
                "subnet": f"127.0.{r + 1}",  # the octet is the lab's claimed block
                "credentials": {"user": "administrator", "password": PASSWORD},
                "hosts": [{"name": f"c{index}r{r + 1:02d}pc[001:{n:03d}]"}],
            }
        )
    return {"rooms": rooms}


def measure(opts: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    pb, real = playbook("audit.yml")
    out: dict[str, Any] = {"hosts": opts.hosts, "processes": opts.processes, "timing": opts.timing}
    sizes = [min(LAB_MAX, opts.hosts - i) for i in range(0, opts.hosts, LAB_MAX)]
    with contextlib.ExitStack() as stack:
        labs = [
            stack.enter_context(
                running_lab(
                    workdir / f"lab{i}",
                    spec=_spec(i, n),
                    seed=opts.seed,
                    name=f"lab{i}",
                    timeout=1800,
                    timing=opts.timing,
                )
            )
            for i, n in enumerate(sizes)
        ]
        out["labs"] = len(labs)
        out["lab_start_s"] = max(lab.start_s for lab in labs)
        out["lab_rss_mb"] = sum(lab.rss_mb() for lab in labs)
        before = sum(_soap_total(lab.ctl.stats()) for lab in labs)
        if opts.distributed:
            usage = _run_distributed(opts, pb, labs, workdir, out)
        else:
            usage = _run_local(opts, pb, labs, workdir, out)
        requests = sum(_soap_total(lab.ctl.stats()) for lab in labs) - before
        if usage.returncode not in (0, 2):
            raise RuntimeError(f"kmsfleet exit {usage.returncode}\n{usage.stdout[-1500:]}{usage.stderr[-1500:]}")
    out["statuses"] = _statuses(workdir / "c.db")
    out["failures"] = _failure_reasons(workdir / "c.db")
    out["wall_s"] = usage.wall_s
    out["cpu_s"] = usage.cpu_s
    out["soap_requests"] = requests
    out["cpu_ms_per_request"] = usage.cpu_s * 1000 / max(requests, 1)
    if "workers_cpu_s" in out:
        out["workers_cpu_ms_per_request"] = out["workers_cpu_s"] * 1000 / max(requests, 1)
    out["rss_mb"] = usage.maxrss_mb
    out["playbook"] = pb.name
    out["real_playbook"] = real
    return out


def _failure_reasons(db: Path, top: int = 3) -> dict[str, int]:
    """The most common messages of failed PCs (first 100 characters), read after the run (not measured)."""
    import sqlite3

    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT msg FROM host_results WHERE status = 'failed'").fetchall()
    counts: dict[str, int] = {}
    for (msg,) in rows:
        key = str(msg)[:100]
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1])[:top])


def _run_local(
    opts: argparse.Namespace, pb: Path, labs: list[LabProcess], workdir: Path, out: dict[str, Any]
) -> ChildUsage:
    """One ``kmsfleet run`` over every lab's inventory (``--processes``), its process tree's RSS sampled."""
    more = [a for lab in labs[1:] for a in ("-i", str(lab.inventory))]
    args = [*more, "--forks", str(opts.forks), "--processes", str(opts.processes), "--db", str(workdir / "c.db")]
    with _RssSampler() as sampler:
        usage = kmsfleet_run(pb, labs[0].inventory, workdir, timeout=opts.run_timeout, args=args)
    out["rss_total_mb"] = sampler.peak
    return usage


def _site_inventory(lab: LabProcess, out: Path) -> Path:
    """The lab's inventory with the host variable ``site`` on every PC: the first half of the lab's PCs in
    ``site1``, the rest in ``site2`` (two schools of whole rooms when there are several rooms)."""
    data = yaml.safe_load(lab.inventory.read_text(encoding="utf-8"))
    hosts = [hv for group in data["all"]["children"].values() for hv in (group.get("hosts") or {}).values()]
    for index, hv in enumerate(hosts):
        hv["site"] = SITES[index * len(SITES) // len(hosts)]
    out.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    out.chmod(0o600)
    return out


def _run_distributed(
    opts: argparse.Namespace, pb: Path, labs: list[LabProcess], workdir: Path, out: dict[str, Any]
) -> ChildUsage:
    """``kmsfleet run --distributed`` over one local worker per site (Redis on loopback, signed batches)."""
    inventories = [_site_inventory(lab, workdir / f"site-inventory-{i}.yml") for i, lab in enumerate(labs)]
    batch = opts.batch_size or max(opts.forks, opts.hosts // 20)
    forks = max(1, opts.forks // len(SITES))
    keys = make_keys(workdir, SITES)
    redis = Redis(workdir)
    workers: list[Any] = []
    try:
        for site in SITES:
            workers += start_workers(1, redis.url, workdir, forks, site=site, password=PASSWORD)
        cpu_before = sum(cpu_s(w.pid) for w in workers)
        args = [a for inv in inventories[1:] for a in ("-i", str(inv))]
        args += ["--distributed", "--broker", redis.url, "--keys", str(keys), "--batch-size", str(batch)]
        args += ["--forks", str(opts.forks), "--db", str(workdir / "c.db")]
        usage = kmsfleet_run(
            pb, inventories[0], workdir, timeout=opts.run_timeout, args=args, env=bench_env(KMSFLEET_PASSWORD=PASSWORD)
        )
        out["workers_cpu_s"] = sum(cpu_s(w.pid) for w in workers) - cpu_before
        peaks = [mb for w in workers for mb in peak_rss_mb(w.pid)]
    finally:
        stop_workers(workers)
        redis.stop()
    out.update(distributed=True, sites=len(SITES), worker_forks=forks, batch_size=batch)
    out.update(controller_cpu_s=usage.cpu_s, workers_rss_mb=max(peaks), workers_rss_total_mb=sum(peaks))
    return usage


def peak_rss_mb(pid: int) -> list[float]:
    """Peak RSS (``VmHWM``, MB) of a live process and of each of its children (a worker's prefork pool)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    peaks = []
    for each in [pid, *map(int, children)]:
        try:
            status = Path(f"/proc/{each}/status").read_text().splitlines()
        except OSError:
            continue
        peaks += [int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:")]
    return peaks


def _title(res: dict[str, Any]) -> str:
    how = f"{res['sites']} per-site workers" if res.get("distributed") else f"--processes {res['processes']}"
    return f"city: {res['hosts']} PCs, audit.yml, {how}, lab timing {res['timing']}"


def _rows(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    who = "controller" if res.get("distributed") else "kmsfleet"
    rows = [
        ("wall", fmt(res["wall_s"], "s"), ""),
        (f"{who} CPU (with the processes it waited for)", fmt(res["cpu_s"], "s"), ""),
        ("WS-Man requests", str(res["soap_requests"]), ""),
        (f"{who} CPU per request", fmt(res["cpu_ms_per_request"], "ms"), "<= 1.2 ms"),
        (f"peak RSS ({who}, largest process)", fmt(res["rss_mb"], "MB", 0), "<= 1000 MB"),
    ]
    if res.get("distributed"):
        rows += [
            ("workers CPU", fmt(res["workers_cpu_s"], "s"), ""),
            ("workers CPU per request", fmt(res["workers_cpu_ms_per_request"], "ms"), ""),
            (
                "peak RSS (largest worker / all workers)",
                f"{res['workers_rss_mb']:.0f} / {res['workers_rss_total_mb']:.0f} MB",
                "",
            ),
        ]
    else:
        rows.append(("peak RSS (kmsfleet + workers)", fmt(res["rss_total_mb"], "MB", 0), ""))
    rows += [
        ("PC statuses", str(res["statuses"]), ""),
        ("lab start / RSS", f"{fmt(res['lab_start_s'], 's')} / {fmt(res['lab_rss_mb'], 'MB', 0)}", ""),
    ]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=20000)
    parser.add_argument("--forks", type=int, default=200, help="kmsfleet --forks (spread over the processes)")
    parser.add_argument("--processes", default="auto", help="kmsfleet --processes (N or auto)")
    parser.add_argument("--timing", choices=("windows", "instant"), default="windows", help="the lab's timing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="2,000 PCs")
    parser.add_argument(
        "--distributed", action="store_true", help="over two local per-site workers (kmsfleet worker, Redis)"
    )
    parser.add_argument("--batch-size", type=int, default=0, help="--distributed: default max(forks, hosts / 20)")
    parser.add_argument("--run-timeout", type=float, default=7200.0, help="limit for the kmsfleet run, seconds")
    parser.add_argument("--timeout", type=float, default=9000.0, help="overall time limit, seconds")
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.hosts = min(opts.hosts, 2000)
    with tempfile.TemporaryDirectory(prefix="kmsfleet-city-") as tmp:
        try:
            with time_limit(opts.timeout):
                res = measure(opts, Path(tmp))
        except BenchTimeout as exc:
            print(f"city: {exc}", file=sys.stderr)
            emit_json({"error": str(exc)})
            return 1
    print_table(_title(res), _rows(res))
    emit_json(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
