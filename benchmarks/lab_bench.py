"""Lab benchmark: how fast `kmsfleet lab serve` starts and how much memory it holds at 40 and 5,000 PCs, and how
many WinRS Receive and WQL Enumerate requests per second it answers to unmodified pypsrp clients.

    .venv/bin/python benchmarks/lab_bench.py            # full run (5,000 PCs included)
    .venv/bin/python benchmarks/lab_bench.py --quick    # 40 PCs only, shorter load phases

The lab runs as a real `kmsfleet lab serve` subprocess (so clients and server do not share a GIL); start time is
measured from launching the process to its ready line, RSS is the process's VmRSS right after. The load phases
drive the 40-PC lab from client threads, one pypsrp ``WSMan`` per PC, NTLM with message encryption over HTTP:
- Receive: on a reused WinRS shell, Command ``hostname`` then Receive until Done; counts Receive requests.
- WQL: Enumerate ``SELECT * FROM SoftwareLicensingProduct WHERE ApplicationID=…`` then Pull until EndOfSequence
  (Windows sends one item per response); counts Enumerate and Pull requests. Each PC's client signs in during a
  warm-up and is reused, so a phase measures requests, not NTLM sign-ins. The lab process's own CPU over a phase
  (scheduler run time, ``/proc/<pid>/task/*/schedstat``) divided by its request count is the lab's CPU per
  request. ``lab_cpu_ms_per_request`` (target <= 0.5 ms) is measured as the issue measured the lab's 1.5 ms it
  asks to cut to a third: one client sending its WQL requests one after the other, NTLM with encryption, on a lab
  that answers at once. Beside it: ``instant_lab_cpu_ms_per_request``, the same lab driven by ``--threads``
  clients at once, and ``windows_lab_cpu_ms_per_request``, the 40-PC lab with its Windows timing model
  (docs/lab-timing.md) driven by ``--threads`` clients: a few requests a second, each arriving at a process that
  slept, which this machine charges more for than the lab's work (docs/lab-performance.md).
- Floor: ``bare_cpu_ms_per_request`` is the CPU per request of a bare asyncio HTTP responder (a fixed 4 KB
  answer: no parsing, no NTLM, no WS-Man) driven at the Windows-timed phase's pace by the same number of client
  threads: what the machine charges any Python server for a request that wakes it up.

Targets: 5,000 PCs up in < 30 s and < 1 GB RSS. The last line of output is one JSON object with the keys
start_s_40, rss_mb_40, start_s_5000, rss_mb_5000, receive_rps, wql_rps, lab_cpu_ms_per_request,
instant_lab_cpu_ms_per_request, windows_lab_cpu_ms_per_request, bare_cpu_ms_per_request.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import yaml
from pypsrp.shell import Process, WinRS
from pypsrp.wsman import NAMESPACES, WSMan

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import proc_cpu_s, proc_rss_mb  # noqa: E402
from orchestrator.lab.addresses import claim_prefix  # noqa: E402

READY = re.compile(r"^lab ready: (\d+) hosts, inventory (.+), control (http://\S+)$")
PASSWORD = "Bench-Passw0rd!"
WMI = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2"
QUERY = "SELECT * FROM SoftwareLicensingProduct WHERE ApplicationID='55c92734-d682-4d71-983e-d6ec3f16059f'"


class RunningLab:
    def __init__(self, proc: subprocess.Popen[str], start_s: float, rss_mb: float, hosts: list[dict[str, Any]]):
        self.proc = proc
        self.start_s = start_s
        self.rss_mb = rss_mb
        self.hosts = hosts

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


LAB_SERVE = (sys.executable, "-m", "orchestrator", "lab", "serve")


def start_lab(count: int, workdir: Path, timing: str = "windows") -> RunningLab:
    claim = claim_prefix(low=150, high=250)  # a block far from the test fixtures' range
    prefix = claim.prefix
    claim.release()
    rooms = []
    for r in range((count + 249) // 250):
        n = min(250, count - r * 250)
        rooms.append(
            {
                "room": f"room{r + 1:02d}",
                "subnet": f"{prefix}.{r + 1}",
                "credentials": {"user": "administrator", "password": PASSWORD},
                "hosts": [{"name": f"r{r + 1:02d}pc[001:{n:03d}]"}],
            }
        )
    spec = workdir / f"spec{count}.yml"
    spec.write_text(yaml.safe_dump({"rooms": rooms}), encoding="utf-8")
    inventory = workdir / f"inventory{count}.yml"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*LAB_SERVE, "--spec", str(spec), "--inventory-out", str(inventory), "--timing", timing],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    assert proc.stdout is not None
    deadline = started + 180
    line = ""
    while time.perf_counter() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            line = proc.stdout.readline().strip()
            break
        if proc.poll() is not None:
            raise RuntimeError(f"lab serve exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
    if not READY.match(line):
        proc.kill()
        raise RuntimeError(f"no ready line: {line!r}")
    start_s = time.perf_counter() - started
    rss = proc_rss_mb(proc.pid)
    data = yaml.safe_load(inventory.read_text(encoding="utf-8"))
    hosts = [h for group in data["all"]["children"].values() for h in group["hosts"].values()]
    return RunningLab(proc, start_s, rss, hosts)


def _wsman(host: dict[str, Any]) -> WSMan:
    return WSMan(
        host["ansible_host"],
        username=host["ansible_user"],
        password=host["ansible_password"],
        ssl=False,
        auth="ntlm",
        reconnection_backoff=0.1,
    )


_CLIENTS: dict[str, WSMan] = {}  # one signed-in client per PC, kept from the warm-up to the measured phase


def _client(host: dict[str, Any]) -> WSMan:
    key = host["ansible_host"]
    if key not in _CLIENTS:
        _CLIENTS[key] = _wsman(host)
    return _CLIENTS[key]


def _close_clients() -> None:
    for client in _CLIENTS.values():
        client.close()
    _CLIENTS.clear()


def _run_threads(hosts: list[dict[str, Any]], threads: int, seconds: float, work: Any) -> tuple[int, float]:
    counts = [0] * threads
    errors: list[BaseException] = []
    deadline = time.perf_counter() + seconds

    def worker(i: int) -> None:
        try:
            counts[i] = work(hosts[i % len(hosts)], deadline)
        except BaseException as exc:
            errors.append(exc)

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(seconds + 60)
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return sum(counts), elapsed


def _receive_work(host: dict[str, Any], deadline: float) -> int:
    receives = 0
    with WinRS(_wsman(host)) as shell:
        for _ in range(100_000):
            if time.perf_counter() >= deadline:
                break
            proc = Process(shell, "hostname")
            proc.begin_invoke()
            for _ in range(20):
                proc.poll_invoke()
                receives += 1
                if proc.state.endswith("/Done"):
                    break
    return receives


def _wql_work(host: dict[str, Any], deadline: float) -> int:
    """Counts WQL requests: the Enumerate and every Pull it takes to reach EndOfSequence (Windows hands out one
    item per response, so a query over several products is one Enumerate and a few Pulls)."""
    wsman = _client(host)  # signed in during the warm-up: the phase measures requests, not NTLM sign-ins
    wsen, wsm = NAMESPACES["wsen"], NAMESPACES["wsman"]
    done = 0
    for _ in range(100_000):
        if time.perf_counter() >= deadline:
            break
        enum = ET.Element(f"{{{wsen}}}Enumerate")
        ET.SubElement(enum, f"{{{wsm}}}OptimizeEnumeration")
        ET.SubElement(enum, f"{{{wsm}}}MaxElements").text = "32000"
        ET.SubElement(enum, f"{{{wsm}}}Filter", Dialect="http://schemas.microsoft.com/wbem/wsman/1/WQL").text = QUERY
        body = wsman.enumerate(f"{WMI}/*", enum)
        done += 1
        resp = body.find("wsen:EnumerateResponse", NAMESPACES)
        if resp is None:
            raise RuntimeError("no EnumerateResponse")
        for _ in range(100):
            if (
                resp.find("wsman:EndOfSequence", NAMESPACES) is not None
                or resp.find("wsen:EndOfSequence", NAMESPACES) is not None
            ):
                break
            context = resp.find("wsen:EnumerationContext", NAMESPACES)
            if context is None or not context.text:
                break
            pull = ET.Element(f"{{{wsen}}}Pull")
            ET.SubElement(pull, f"{{{wsen}}}EnumerationContext").text = context.text
            ET.SubElement(pull, f"{{{wsen}}}MaxElements").text = "32000"
            body = wsman.pull(f"{WMI}/*", pull)
            done += 1
            resp = body.find("wsen:PullResponse", NAMESPACES)
            if resp is None:
                raise RuntimeError("no PullResponse")
        else:
            raise RuntimeError("WQL answer did not end within 100 Pulls")
    return done


def _wql_phase(lab: RunningLab, threads: int, seconds: float) -> tuple[float, float]:
    """WQL requests per second and the lab's CPU ms per request, on clients signed in during a warm-up."""
    _run_threads(lab.hosts, threads, 0.5, _wql_work)
    cpu_before = proc_cpu_s(lab.proc.pid)
    queries, elapsed = _run_threads(lab.hosts, threads, seconds, _wql_work)
    return queries / elapsed, (proc_cpu_s(lab.proc.pid) - cpu_before) * 1000 / max(queries, 1)


def _instant_wql_cpu(work: Path, threads: int, seconds: float) -> tuple[float, float]:
    """The WQL phase on an instant lab with ``threads`` clients, then with one client sending its requests one
    after the other: (lab CPU ms per request with ``threads`` clients, with one). The second is how the issue
    measured the lab's 1.5 ms ("sequential, NTLM with encryption"), before the timing model existed."""
    lab = start_lab(40, work, timing="instant")
    try:
        shared = _wql_phase(lab, threads, seconds)[1]
        return shared, _wql_phase(lab, 1, seconds)[1]
    finally:
        _close_clients()
        lab.stop()


# A bare asyncio HTTP/1.1 responder on a loopback port: reads each request's head and Content-Length body and
# answers a fixed 4 KB (the size of a sealed WQL answer); prints its port.
BARE_SERVER = """
import asyncio
ANSWER = b"HTTP/1.1 200 OK\\r\\nServer: bare\\r\\nContent-Length: 4096\\r\\n\\r\\n" + b"x" * 4096
class Bare(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buf = transport, b""
    def data_received(self, data):
        self.buf += data
        end = self.buf.find(b"\\r\\n\\r\\n")
        if end < 0:
            return
        length = int(self.buf[:end].lower().split(b"content-length:")[1].split(b"\\r\\n")[0])
        if len(self.buf) >= end + 4 + length:
            self.buf = self.buf[end + 4 + length:]
            self.transport.write(ANSWER)
async def main():
    server = await asyncio.get_running_loop().create_server(Bare, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""


def _bare_cpu(threads: int, seconds: float, rate: float) -> float:
    """CPU ms per request of the bare responder, each client thread pausing so that all together send about
    ``rate`` requests per second (the Windows-timed WQL phase's pace)."""
    proc = subprocess.Popen([sys.executable, "-c", BARE_SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        pause = threads / max(rate, 0.1)
        body = b"y" * 3000

        def work(_host: dict[str, Any], deadline: float) -> int:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            sent = 0
            for _ in range(100_000):
                if time.perf_counter() >= deadline:
                    break
                conn.request("POST", "/wsman", body=body, headers={"Content-Type": "application/soap+xml"})
                conn.getresponse().read()
                sent += 1
                time.sleep(min(pause * random.uniform(0.5, 1.5), max(0.0, deadline - time.perf_counter())))
            conn.close()
            return sent

        cpu_before = proc_cpu_s(proc.pid)
        requests, _ = _run_threads([{}], threads, seconds, work)
        return (proc_cpu_s(proc.pid) - cpu_before) * 1000 / max(requests, 1)
    finally:
        proc.kill()
        proc.wait()


def _print_table(results: dict[str, float | None], threads: int) -> None:
    def fmt(v: float | None, unit: str) -> str:
        return "-" if v is None else f"{v:,.1f} {unit}"

    print(f"{'measure':<34}{'value':>16}{'target':>16}")
    print(f"{'start, 40 PCs':<34}{fmt(results['start_s_40'], 's'):>16}{'':>16}")
    print(f"{'RSS, 40 PCs':<34}{fmt(results['rss_mb_40'], 'MB'):>16}{'':>16}")
    print(f"{'RSS, 40 PCs after load':<34}{fmt(results['rss_mb_40_after_load'], 'MB'):>16}{'':>16}")
    print(f"{'start, 5,000 PCs':<34}{fmt(results['start_s_5000'], 's'):>16}{'< 30 s':>16}")
    print(f"{'RSS, 5,000 PCs':<34}{fmt(results['rss_mb_5000'], 'MB'):>16}{'< 1,024 MB':>16}")
    print(f"{'WinRS Receive (NTLM+enc, ' + str(threads) + ' thr)':<34}{fmt(results['receive_rps'], 'req/s'):>16}")
    print(f"{'WQL Enumerate (NTLM+enc, ' + str(threads) + ' thr)':<34}{fmt(results['wql_rps'], 'req/s'):>16}")
    print(f"{'lab CPU per WQL request':<34}{fmt(results['lab_cpu_ms_per_request'], 'ms'):>16}{'<= 0.5 ms':>16}")
    many = results["instant_lab_cpu_ms_per_request"]
    print(f"{'  ' + str(threads) + ' clients at once':<34}{fmt(many, 'ms'):>16}{'':>16}")
    timed = results["windows_lab_cpu_ms_per_request"]
    print(f"{'  ' + str(threads) + ' clients, Windows timing':<34}{fmt(timed, 'ms'):>16}{'':>16}")
    print(f"{'  bare asyncio responder, same pace':<34}{fmt(results['bare_cpu_ms_per_request'], 'ms'):>16}{'':>16}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="skip the 5,000-PC start; 3 s load phases")
    parser.add_argument("--threads", type=int, default=8, help="client threads (one PC each)")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each load phase")
    args = parser.parse_args()
    seconds = 3.0 if args.quick else args.seconds
    results: dict[str, float | None] = {}
    with tempfile.TemporaryDirectory(prefix="kmsfleet-bench-") as tmp:
        work = Path(tmp)
        lab = start_lab(40, work)
        try:
            results["start_s_40"], results["rss_mb_40"] = lab.start_s, lab.rss_mb
            # warm-up: first NTLM handshakes and shells
            _run_threads(lab.hosts, args.threads, 0.5, _wql_work)
            receives, elapsed = _run_threads(lab.hosts, args.threads, seconds, _receive_work)
            results["receive_rps"] = receives / elapsed
            results["wql_rps"], results["windows_lab_cpu_ms_per_request"] = _wql_phase(lab, args.threads, seconds)
            results["rss_mb_40_after_load"] = proc_rss_mb(lab.proc.pid)
        finally:
            _close_clients()
            lab.stop()
        results["instant_lab_cpu_ms_per_request"], results["lab_cpu_ms_per_request"] = _instant_wql_cpu(
            work, args.threads, seconds
        )
        results["bare_cpu_ms_per_request"] = _bare_cpu(args.threads, seconds, results["wql_rps"] or 1.0)
        if args.quick:
            results["start_s_5000"] = results["rss_mb_5000"] = None
        else:
            big = start_lab(5000, work)
            try:
                results["start_s_5000"], results["rss_mb_5000"] = big.start_s, big.rss_mb
            finally:
                big.stop()

    _print_table(results, args.threads)
    keys = (
        "start_s_40",
        "rss_mb_40",
        "start_s_5000",
        "rss_mb_5000",
        "receive_rps",
        "wql_rps",
        "lab_cpu_ms_per_request",
        "instant_lab_cpu_ms_per_request",
        "windows_lab_cpu_ms_per_request",
        "bare_cpu_ms_per_request",
    )
    print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in results.items() if k in keys}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
