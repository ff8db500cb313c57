"""What every benchmark shares: a lab in its own process on a claimed loopback block, a bounded subprocess
runner that measures wall time, CPU and peak RSS of one child exactly (``os.wait4``), the choice between the real
bundled playbooks and the stand-ins in ``benchmarks/playbooks/``, an overall time limit, and the output convention
(a human table, then ONE JSON object as the last line).

Nothing here contacts anything but loopback addresses: labs bind 127.<A>.x.y only, and the control API is reached
through ``LabControl`` (which refuses non-loopback URLs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
STANDINS = BENCH / "playbooks"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from orchestrator.lab.addresses import claim_prefix  # noqa: E402
from orchestrator.lab.control_client import LabControl  # noqa: E402

READY = re.compile(r"^lab ready: (\d+) hosts, inventory (.+), control (http://\S+)$")
KMSFLEET = [sys.executable, "-m", "orchestrator"]
# The real playbooks (being written in playbooks/) and the stand-ins used until they exist.
STANDIN_FOR = {
    "site.yml": "site-standin.yml",
    "seed-procedure.yml": "seed-procedure-standin.yml",
    "audit.yml": "audit-standin.yml",
}


class BenchTimeout(Exception):
    """The script's overall time limit ran out."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise ``BenchTimeout`` in the main thread after ``seconds`` (SIGALRM); cleanup runs in ``finally``."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise BenchTimeout(f"the overall time limit of {seconds:.0f} s ran out")

    # Keep an outer timer (pytest-timeout uses SIGALRM too): restore its handler and remaining time afterwards.
    outer_remaining, _interval = signal.getitimer(signal.ITIMER_REAL)
    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, max(1.0, seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_remaining > 0:
            signal.setitimer(signal.ITIMER_REAL, max(0.01, outer_remaining - (time.monotonic() - started)))


def playbook(name: str, *, standin_only: bool = False) -> tuple[Path, bool]:
    """(path, is_real): ``playbooks/NAME`` when it exists, else the stand-in in ``benchmarks/playbooks``."""
    real = ROOT / "playbooks" / name
    if real.is_file() and not standin_only:
        return real, True
    return STANDINS / STANDIN_FOR[name], False


def fmt(value: Any, unit: str = "", digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{(' ' + unit) if unit else ''}"
    return f"{value}{(' ' + unit) if unit else ''}"


def print_table(title: str, rows: Sequence[tuple[str, str, str]]) -> None:
    """A small fixed-width table: measure, value, target."""
    width = max([len(r[0]) for r in rows] + [30]) + 2
    print(title)
    print(f"{'measure':<{width}}{'value':>18}{'target':>14}")
    for name, value, target in rows:
        print(f"{name:<{width}}{value:>18}{target:>14}")


def emit_json(result: Mapping[str, Any]) -> None:
    """The LAST line of every benchmark: one JSON object."""
    out = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in result.items()}
    print(json.dumps(out, sort_keys=False), flush=True)


# ---------------------------------------------------------------------------------------------------- processes


@dataclass
class ChildUsage:
    """What one child process cost, from ``os.wait4``: exact for that child plus the descendants it waited for
    (Linux adds a reaped child's usage to its parent's), so Ansible's forks count, a lab started elsewhere not."""

    returncode: int
    wall_s: float
    user_s: float
    sys_s: float
    maxrss_mb: float
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s


def wait_child(proc: subprocess.Popen[Any], started: float, deadline: float) -> ChildUsage:
    """Wait for ``proc`` until ``deadline`` (monotonic); kill it after that. Returns its exact rusage."""
    timed_out = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            break
        if time.monotonic() > deadline:
            timed_out = True
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.02)
    wall = time.monotonic() - started
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    return ChildUsage(code, wall, usage.ru_utime, usage.ru_stime, usage.ru_maxrss / 1024.0, timed_out=timed_out)


def run_measured(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin_text: str | None = None,
    out_dir: Path | None = None,
) -> ChildUsage:
    """Run a command to completion (bounded by ``timeout``), measuring it. Output goes to files (no pipe
    deadlock on large output) and is read back."""
    out_dir = out_dir or Path(os.environ.get("TMPDIR", "/tmp"))
    tag = f"{os.getpid()}-{time.monotonic_ns()}"
    out_path, err_path = out_dir / f"out-{tag}.txt", out_dir / f"err-{tag}.txt"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.monotonic()
        proc = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=err,
            stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
        if stdin_text is not None and proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(stdin_text.encode())
                proc.stdin.close()
        try:
            usage = wait_child(proc, started, started + timeout)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(ChildProcessError):
                proc.wait(5)
            raise
    usage.stdout = out_path.read_text("utf-8", "replace")
    usage.stderr = err_path.read_text("utf-8", "replace")
    out_path.unlink(missing_ok=True)
    err_path.unlink(missing_ok=True)
    return usage


def bench_env(**extra: str) -> dict[str, str]:
    """The environment for kmsfleet child processes: unbuffered, no proxy for anything (loopback only)."""
    env = dict(os.environ)
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(key, None)
    env.update({"PYTHONUNBUFFERED": "1", "NO_PROXY": "*", "no_proxy": "*", "COLUMNS": "140"})
    env.update(extra)
    return env


# ---------------------------------------------------------------------------------------------------- labs


@dataclass
class LabProcess:
    """A ``kmsfleet lab serve`` child process. The lab itself holds the claim on its 127.<A> block."""

    proc: subprocess.Popen[str]
    hosts: int
    inventory: Path
    control_url: str
    start_s: float
    octet: int
    log: Path
    ctl: LabControl = field(init=False)

    def __post_init__(self) -> None:
        self.ctl = LabControl(self.control_url, timeout=60.0)

    def rss_mb(self) -> float:
        return proc_rss_mb(self.proc.pid)

    def cpu_s(self) -> float:
        """The lab process's CPU seconds so far (``proc_cpu_s``)."""
        return proc_cpu_s(self.proc.pid)

    def inventory_hosts(self) -> dict[str, dict[str, Any]]:
        data = yaml.safe_load(self.inventory.read_text(encoding="utf-8"))
        out: dict[str, dict[str, Any]] = {}
        for group in data["all"]["children"].values():
            for name, hv in (group.get("hosts") or {}).items():
                out[name] = {**(group.get("vars") or {}), **hv}
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def proc_cpu_s(pid: int) -> float:
    """CPU seconds one process has run so far: the scheduler's run time of its threads in nanoseconds
    (``/proc/<pid>/task/*/schedstat``, first field), else user + system from ``/proc/<pid>/stat`` (fields 14 and
    15, counted in clock ticks of 10 ms: too coarse for the few dozen requests a Windows-timed phase makes)."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
        return sum(int((task / "schedstat").read_text().split()[0]) for task in tasks) / 1e9
    except (OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _spec_with_octet(spec: Mapping[str, Any], octet: int) -> dict[str, Any]:
    """A copy of a spec (single room or ``rooms:``) with every subnet moved to 127.<octet>.*."""
    data: dict[str, Any] = json.loads(json.dumps(spec))
    rooms = data.get("rooms", [data])
    for room in rooms:
        parts = str(room["subnet"]).split(".")
        room["subnet"] = f"127.{octet}.{parts[2]}"
    return data


def start_lab(
    workdir: Path,
    *,
    spec: Mapping[str, Any] | None = None,
    hosts: int | None = None,
    seed: int = 0,
    name: str = "lab",
    timeout: float = 240.0,
    attempts: int = 5,
    timing: str = "windows",
) -> LabProcess:
    """Start ``kmsfleet lab serve`` (``--spec`` written from ``spec`` on a freshly claimed block, or ``--hosts``)
    and wait for its ready line. The claim is released just before the child claims the same block itself;
    if another lab grabs it in that instant, the child exits and we try the next free block. ``timing``: the
    lab's ``--timing`` (windows by default, so figures include Windows' own start-up and query times)."""
    workdir.mkdir(parents=True, exist_ok=True)
    inventory = workdir / f"{name}-inventory.yml"
    last_error = ""
    for _attempt in range(attempts):
        claim = claim_prefix(low=60, high=240)
        octet = claim.octet
        argv = [*KMSFLEET, "lab", "serve", "--no-https", "--seed", str(seed), "--inventory-out", str(inventory)]
        argv += ["--timing", timing]
        if spec is not None:
            spec_path = workdir / f"{name}-spec.yml"
            spec_path.write_text(yaml.safe_dump(_spec_with_octet(spec, octet), sort_keys=False), encoding="utf-8")
            argv += ["--spec", str(spec_path)]
        else:
            argv += ["--hosts", str(hosts or 40)]
        log = workdir / f"{name}-serve.log"
        started = time.monotonic()
        claim.release()
        with open(log, "w", encoding="utf-8") as err:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True, cwd=workdir, env=bench_env())
        assert proc.stdout is not None
        line = ""
        try:
            while time.monotonic() < started + timeout:
                ready, _, _ = select.select([proc.stdout], [], [], 0.2)
                if ready:
                    line = proc.stdout.readline().strip()
                    break
                if proc.poll() is not None:
                    break
        except BaseException:
            proc.kill()
            proc.wait(10)
            raise
        match = READY.match(line)
        if match:
            return LabProcess(
                proc=proc,
                hosts=int(match.group(1)),
                inventory=Path(match.group(2)),
                control_url=match.group(3),
                start_s=time.monotonic() - started,
                octet=octet,
                log=log,
            )
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        last_error = f"exit {proc.returncode}: {log.read_text(errors='replace')[-800:]}"
    raise RuntimeError(f"the lab did not start: {last_error}")


@contextlib.contextmanager
def running_lab(workdir: Path, **kwargs: Any) -> Iterator[LabProcess]:
    lab = start_lab(workdir, **kwargs)
    try:
        yield lab
    finally:
        lab.stop()


def write_inventory(lab_inventory: Path, out: Path, extra_vars: Mapping[str, Any] | None = None) -> Path:
    """The lab's inventory plus ``all: vars:`` (timeouts, budgets …) for a benchmark."""
    data = yaml.safe_load(lab_inventory.read_text(encoding="utf-8"))
    if extra_vars:
        data["all"].setdefault("vars", {}).update(dict(extra_vars))
    out.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    os.chmod(out, 0o600)
    return out


def kmsfleet_run(
    playbook_path: Path,
    inventory: Path,
    workdir: Path,
    *,
    timeout: float,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> ChildUsage:
    """``kmsfleet run PLAYBOOK -i INVENTORY ARGS`` as a child process, measured."""
    argv = [*KMSFLEET, "run", str(playbook_path), "-i", str(inventory), *args]
    return run_measured(argv, timeout=timeout, env=env or bench_env(), cwd=workdir, out_dir=workdir)


def load_report(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def licensed_products(snapshot: Mapping[str, Any]) -> dict[str, bool]:
    """Ground truth from a lab host snapshot: product → LicenseStatus == 1 (Licensed)."""
    machine = snapshot.get("machine") or {}
    return {str(p["product"]): p.get("license_status") == 1 for p in machine.get("products", [])}


def add_timing_options(parser: argparse.ArgumentParser) -> None:
    """``--timing`` (the lab's, windows by default) and ``--no-instant`` (skip the second, instant-lab pass)."""
    if not any("--timing" in a.option_strings for a in parser._actions):
        parser.add_argument(
            "--timing", choices=("windows", "instant"), default="windows", help="the lab's timing (docs/lab-timing.md)"
        )
    parser.add_argument(
        "--no-instant",
        dest="instant",
        action="store_false",
        help="skip the second pass on an instant lab (its figures are the instant_* keys)",
    )


def measure_with_instant(
    measure: Callable[[argparse.Namespace, Path], dict[str, Any]],
    opts: argparse.Namespace,
    workdir: Path,
    keys: Sequence[str],
) -> dict[str, Any]:
    """``measure`` on the lab's timing (windows by default); then, unless ``--no-instant``, once more on an
    instant lab, whose ``keys`` are added as ``instant_<key>`` (the client's own cost, without Windows' waits)."""
    (workdir / "main").mkdir(parents=True, exist_ok=True)
    res = measure(opts, workdir / "main")
    res["timing"] = opts.timing
    if opts.instant and opts.timing != "instant":
        (workdir / "instant").mkdir(parents=True, exist_ok=True)
        extra = measure(argparse.Namespace(**{**vars(opts), "timing": "instant"}), workdir / "instant")
        for key in keys:
            if key in extra:
                res[f"instant_{key}"] = extra[key]
    return res
