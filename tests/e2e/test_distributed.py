"""Distributed runs end to end: a real redis-server on loopback, real `kmsfleet worker` subprocesses, real labs.

- Two sites, two workers, 200 lab PCs give the same per-host results as one controller on an identical lab
  (same spec and seed), and nothing sent to Redis holds the PCs' password.
- A worker SIGKILLed mid-batch: its batch is re-queued and finished by a new worker; every PC ends with
  exactly one final status, in the report and in the history database.
- A site without a worker is reported after --site-timeout while the other site finishes.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from distkit import Keyring, Monitor, RedisServer, WorkerProcess, children_of, kombu_bodies, serve_redis
from labkit import KMSFLEET, PASSWORD, hosts_by_name, read_report, room_spec, run_cli, start_lab

from orchestrator.lab.addresses import Claim, claim_prefix
from orchestrator.lab.profiles import mixed_layout
from orchestrator.lab.runner import LabThread

pytestmark = [pytest.mark.redis, pytest.mark.xdist_group("distributed"), pytest.mark.timeout(240)]

PLAYBOOK = Path(__file__).resolve().parent.parent / "fixtures" / "distributed" / "light.yml"
N = 200
SEED = 11
LAYOUT = [(name, label, fields) for name, label, fields in mixed_layout(N, SEED)]
LABEL = {name: label for name, label, _ in LAYOUT}
NAMES = [name for name, _, _ in LAYOUT]
DEFAULTS = {
    "os": "Windows 10 Education",
    "windows_channel": "volume",
    "windows_state": "unlicensed",
    "office": {"version": 2016, "bitness": "x86", "channel": "volume", "state": "unlicensed"},
    "timezone": "Taipei Standard Time",
}


def half(name: str, first: str, second: str) -> str:
    return first if NAMES.index(name) < N // 2 else second


def expected(name: str) -> tuple[str, str | None]:
    """(status, error code) from the lab spec: a PC that is off is unreachable; where the account is not an
    administrator, pointing the PC at the KMS host is refused; everywhere else it changes the PC."""
    label = LABEL[name]
    if label == "powered-off":
        return "unreachable", None
    if label == "not-admin":
        return "failed", "0x80070005"
    return "changed", None


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def keyring(tmp_path_factory: pytest.TempPathFactory) -> Keyring:
    return Keyring(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    yield from serve_redis(tmp_path_factory.mktemp("redis"))


def _spec(claim: Claim) -> dict[str, Any]:
    # The bureau's mix of problems, without the deliberately slow PCs (they only make the test longer).
    hosts = [{"name": name, **({} if label == "slow" else fields)} for name, label, fields in LAYOUT]
    return {"rooms": [room_spec(claim, hosts, defaults=DEFAULTS)], "seed": SEED}


@pytest.fixture(scope="module")
def labs() -> Iterator[tuple[LabThread, LabThread]]:
    """Two identical labs (same spec, same seed) on two claimed loopback blocks."""
    claims = [claim_prefix(), claim_prefix()]
    started: list[LabThread] = []
    try:
        for claim in claims:
            started.append(start_lab(_spec(claim)))
        yield started[0], started[1]
    finally:
        for lab in started:
            lab.stop()
        for claim in claims:
            claim.release()


@pytest.fixture(scope="module")
def school_workers(
    redis_server: RedisServer, keyring: Keyring, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, WorkerProcess]]:
    logs = tmp_path_factory.mktemp("workers")
    workers = {
        site: WorkerProcess(site, redis_server.url, logs / f"{site}.log", keyring.worker(site)).start()
        for site in ("school_a", "school_b")
    }
    try:
        yield workers
    finally:
        for w in workers.values():
            w.terminate()  # all at once: each waits for its own shutdown
        codes = {site: w.stop() for site, w in workers.items()}
        assert codes == {"school_a": 0, "school_b": 0}, "SIGTERM must shut a worker down cleanly"


def write_inventory(lab: LabThread, path: Path, site_of: Callable[[str], str | None]) -> Path:
    data = yaml.safe_load(lab.inventory_path.read_text())
    for group in data["all"]["children"].values():
        for name, hv in group["hosts"].items():
            site = site_of(name)
            if site is not None:
                hv["site"] = site
    path.write_text(yaml.safe_dump(data))
    return path


def outcomes(report: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    """Per host: status, and per task name/status/changed/error code/diagnosis/failure kind."""
    return {
        h["host"]: (
            h["status"],
            tuple(
                (t["task"], t["status"], t["changed"], t["error_code"], t["diagnosis"], t["failure"])
                for t in h["tasks"]
            ),
        )
        for h in report["hosts"]
    }


def history_rows(db: Path, run_id: str) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT host, COUNT(*) FROM host_results WHERE run_id = ? GROUP BY host", (run_id,))
        return {str(h): int(n) for h, n in rows}


def password_forms() -> list[str]:
    raw = PASSWORD.encode()
    return [PASSWORD, base64.b64encode(raw).decode(), base64.b64encode(PASSWORD.encode("utf-16-le")).decode()]


def redis_contents(client: Any) -> str:
    """Every key and value left in Redis, as text."""
    out: list[str] = []
    for key in client.scan_iter(count=500):
        kind = client.type(key).decode()
        if kind == "string":
            value: Any = client.get(key)
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "hash":
            value = client.hgetall(key)
        elif kind == "set":
            value = client.smembers(key)
        elif kind == "zset":
            value = client.zrange(key, 0, -1)
        elif kind == "stream":
            value = client.xrange(key)
        else:
            value = kind
        out.append(f"{key!r} {value!r}")
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------ tests


def test_two_sites_match_one_controller_and_no_secret_crosses_the_broker(
    labs: tuple[LabThread, LabThread],
    redis_server: RedisServer,
    keyring: Keyring,
    school_workers: dict[str, WorkerProcess],
    tmp_path: Path,
) -> None:
    single_lab, dist_lab = labs
    single_inv = write_inventory(single_lab, tmp_path / "single.yml", lambda n: None)
    single = run_cli(
        "run", str(PLAYBOOK), "-i", str(single_inv), "--report", str(tmp_path / "single.json"),
        "--db", str(tmp_path / "single.db"),
    )  # fmt: skip
    assert "Traceback" not in single.stdout + single.stderr

    inv = write_inventory(dist_lab, tmp_path / "city.yml", lambda n: half(n, "school_a", "school_b"))
    monitor = Monitor(redis_server.port, tmp_path / "monitor.log")
    try:
        started = time.monotonic()
        proc = run_cli(
            "run", str(PLAYBOOK), "-i", str(inv), "--distributed", "--broker", redis_server.url,
            "--keys", str(keyring.controller),
            "--batch-size", "50", "--report", str(tmp_path / "dist.json"), "--db", str(tmp_path / "dist.db"),
        )  # fmt: skip
        took = time.monotonic() - started
    finally:
        log = monitor.stop()
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out
    assert proc.returncode == single.returncode, out[-3000:]

    a, b = read_report(tmp_path / "single.json"), read_report(tmp_path / "dist.json")
    assert len(a["hosts"]) == len(b["hosts"]) == N
    assert outcomes(b) == outcomes(a)
    for name, h in hosts_by_name(b).items():
        status, code = expected(name)
        assert (h["status"], h["error_code"]) == (status, code), (name, h["msg"])
    assert {h["status"] for h in b["hosts"]} == {"changed", "failed", "unreachable"}

    # the same history as a local run: one row per PC, recorded as they finished
    assert history_rows(tmp_path / "dist.db", b["run"]["id"]) == dict.fromkeys(NAMES, 1)
    # live progress per site, then the usual recap
    assert "site school_a:" in out and "site school_b:" in out and "PLAY RECAP" in out
    assert took < 120

    # What crossed the broker: the batch messages (JSON, bodies base64 inside kombu's envelope) and the
    # result stream. They carry PCs and variables, never the password, in any encoding.
    bodies = kombu_bodies(log)
    # (each message is seen twice: pushed on its queue, then kept in kombu's "unacked" hash while it runs)
    # (the batch argument is a signed envelope: its body is the message as canonical JSON text)
    envelopes = [json.loads(b)[0][0] for b in bodies if "batch_id" in b]
    assert all(set(e) == {"v", "kid", "body", "sig"} for e in envelopes)
    by_batch = {m["batch_id"]: m for m in (json.loads(e["body"]) for e in envelopes)}
    messages = list(by_batch.values())
    assert sorted(by_batch) == ["school_a-0001", "school_a-0002", "school_b-0001", "school_b-0002"]
    assert sorted(h["name"] for m in messages for h in m["hosts"]) == sorted(NAMES)
    assert all("ansible_password" in m["withheld"] for m in messages)
    assert all("ansible_password" not in h["vars"] for m in messages for h in m["hosts"])
    assert "XADD" in log.upper() and "pc001" in log
    leftovers = redis_contents(redis_server.client())
    for form in password_forms():
        assert form not in log
        assert all(form not in body for body in bodies)
        assert form not in leftovers


def test_a_killed_worker_has_its_batch_redelivered_and_every_pc_ends_once(
    labs: tuple[LabThread, LabThread], redis_server: RedisServer, keyring: Keyring, tmp_path: Path
) -> None:
    _, lab = labs
    first_half = NAMES[: N // 2]
    # Slow site A's PCs a little, and give its worker few forks, so a batch takes a few seconds.
    lab.call(lambda: [lab.lab.set_latency(n, 40.0) for n in first_half])
    inv = write_inventory(lab, tmp_path / "city.yml", lambda n: half(n, "kill_a", "kill_b"))
    worker_a = WorkerProcess(
        "kill_a", redis_server.url, tmp_path / "kill_a.log", keyring.worker("kill_a"), forks=5
    ).start()
    worker_b = WorkerProcess("kill_b", redis_server.url, tmp_path / "kill_b.log", keyring.worker("kill_b")).start()
    replacement: WorkerProcess | None = None
    client = redis_server.client()
    out_path = tmp_path / "controller.out"
    try:
        with open(out_path, "w", encoding="utf-8") as out_file:
            controller = subprocess.Popen(
                [
                    KMSFLEET, "run", str(PLAYBOOK), "-i", str(inv), "--distributed", "--broker", redis_server.url,
            "--keys", str(keyring.controller),
                    "--batch-size", "25", "--report", str(tmp_path / "run.json"), "--db", str(tmp_path / "run.db"),
                ],
                stdout=out_file, stderr=subprocess.STDOUT, text=True, env={**_env(), "COLUMNS": "160"},
            )  # fmt: skip
        # Kill site A's worker while its second batch is half done.
        site_a = set(first_half)
        deadline = time.monotonic() + 90
        done_a = 0
        while time.monotonic() < deadline and controller.poll() is None:
            keys = list(client.scan_iter(match="kmsfleet:run:*:hosts_done"))
            if keys:
                done_a = sum(1 for m in client.smembers(keys[0]) if m.decode() in site_a)
                if 30 <= done_a < 40:
                    break
            time.sleep(0.05)
        assert 30 <= done_a < 40, f"site A never reached its second batch ({done_a} done)"
        worker_a.kill()
        replacement = WorkerProcess(
            "kill_a", redis_server.url, tmp_path / "kill_a2.log", keyring.worker("kill_a"), forks=5
        ).start()
        controller.wait(150)
    finally:
        lab.call(lambda: [lab.lab.set_latency(n, 0.0) for n in first_half])
        for w in (worker_b, replacement):
            if w is not None:
                w.terminate()
        codes = [w.stop() for w in (worker_b, replacement) if w is not None]
        worker_a.kill()
    out = out_path.read_text()
    assert "Traceback" not in out, out[-3000:]
    assert codes == [0, 0], f"SIGTERM must shut the workers down cleanly: {codes}"

    report = read_report(tmp_path / "run.json")
    hosts = [h["host"] for h in report["hosts"]]
    assert sorted(hosts) == sorted(NAMES), out[-3000:]  # every PC, each exactly once
    for h in report["hosts"]:
        assert (h["status"], h["error_code"]) == expected(h["host"]), (h["host"], h["msg"], out[-2000:])
    assert history_rows(tmp_path / "run.db", report["run"]["id"]) == dict.fromkeys(NAMES, 1)
    # the controller saw the lease of the killed batch expire and re-queued what had no result yet …
    assert re.search(r"site kill_a: .*lost during batch kill_a-0002 \(attempt 1\); re-queued \d+ PCs", out), out[-3000:]
    # … and the new worker ran it as attempt 2
    log2 = (tmp_path / "kill_a2.log").read_text()
    assert re.search(r"'batch': 'kill_a-0002', 'attempt': 2", log2), log2[-3000:]
    # repeating "point the PC at the KMS host" left each PC as one pass would have
    kms = str(yaml.safe_load(inv.read_text())["all"]["children"]["room101"]["vars"]["kms_host"])
    for name in first_half:
        if expected(name)[0] == "changed":
            assert lab.lab.host_snapshot(name)["machine"]["kms_host"] == kms


def _env() -> dict[str, str]:
    return dict(os.environ)


def test_a_killed_pool_process_has_its_batch_requeued_by_celery(
    labs: tuple[LabThread, LabThread], redis_server: RedisServer, keyring: Keyring, tmp_path: Path
) -> None:
    """acks_late + reject_on_worker_lost with Redis: the pool process running a batch is SIGKILLed, Celery puts
    the message back on the queue at once, the new pool process takes over the dead one's lease and runs what
    has no result yet; the controller never has to re-queue anything."""
    _, lab = labs
    names = NAMES[150:200]
    lab.call(lambda: [lab.lab.set_latency(n, 40.0) for n in names])
    inv = write_inventory(lab, tmp_path / "city.yml", lambda n: "pool_a" if n in names else None)
    worker = WorkerProcess(
        "pool_a", redis_server.url, tmp_path / "pool_a.log", keyring.worker("pool_a"), forks=5
    ).start()
    client = redis_server.client()
    try:
        with open(tmp_path / "controller.out", "w", encoding="utf-8") as out_file:
            controller = subprocess.Popen(
                [
                    KMSFLEET, "run", str(PLAYBOOK), "-i", str(inv), "--distributed", "--broker", redis_server.url,
            "--keys", str(keyring.controller),
                    "--batch-size", "25", "--limit", ",".join(names), "--report", str(tmp_path / "run.json"),
                    "--db", str(tmp_path / "run.db"),
                ],
                stdout=out_file, stderr=subprocess.STDOUT, text=True, env={**_env(), "COLUMNS": "160"},
            )  # fmt: skip
        deadline = time.monotonic() + 60
        done = 0
        while time.monotonic() < deadline and controller.poll() is None:
            keys = list(client.scan_iter(match="kmsfleet:run:*:hosts_done"))
            done = client.scard(keys[0]) if keys else 0
            if 5 <= done < 20:
                break
            time.sleep(0.05)
        assert 5 <= done < 20, f"the first batch was not caught half done ({done})"
        pool = children_of(worker.pid)
        assert len(pool) == 1
        os.kill(pool[0], signal.SIGKILL)
        controller.wait(120)
    finally:
        lab.call(lambda: [lab.lab.set_latency(n, 0.0) for n in names])
        code = worker.stop()
    assert code == 0
    out = (tmp_path / "controller.out").read_text()
    log = (tmp_path / "pool_a.log").read_text()
    assert "WorkerLostError" in log
    assert "lost during batch" not in out  # Celery redelivered it; the controller did not have to
    first = re.search(r"Task kmsfleet\.run_batch\[([0-9a-f-]+)\] received", log)
    assert first and log.count(f"run_batch[{first.group(1)}] received") == 2, log[-3000:]
    report = read_report(tmp_path / "run.json")
    assert sorted(h["host"] for h in report["hosts"]) == sorted(names)
    for h in report["hosts"]:
        assert (h["status"], h["error_code"]) == expected(h["host"]), (h["host"], h["msg"])
    assert history_rows(tmp_path / "run.db", report["run"]["id"]) == dict.fromkeys(names, 1)


def test_a_site_without_worker_is_reported_after_the_timeout(
    labs: tuple[LabThread, LabThread],
    redis_server: RedisServer,
    keyring: Keyring,
    school_workers: dict[str, WorkerProcess],
    tmp_path: Path,
) -> None:
    _, lab = labs
    keyring.pin_sites("school_c")  # the controller knows the site's key; no worker of it runs
    with_worker = NAMES[:20]
    orphans = NAMES[100:110]
    inv = write_inventory(
        lab, tmp_path / "city.yml", lambda n: "school_a" if n in with_worker else "school_c" if n in orphans else None
    )
    started = time.monotonic()
    proc = run_cli(
        "run", str(PLAYBOOK), "-i", str(inv), "--distributed", "--broker", redis_server.url,
            "--keys", str(keyring.controller),
        "--site-timeout", "4", "--limit", ",".join(with_worker + orphans),
        "--report", str(tmp_path / "run.json"), "--db", str(tmp_path / "run.db"),
    )  # fmt: skip
    took = time.monotonic() - started
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out
    hosts = hosts_by_name(read_report(tmp_path / "run.json"))
    assert sorted(hosts) == sorted(with_worker + orphans)
    for name in orphans:
        assert hosts[name]["status"] == "unreachable"
        assert "no worker for site school_c" in hosts[name]["msg"]
    for name in with_worker:
        assert (hosts[name]["status"], hosts[name]["error_code"]) == expected(name)
    assert re.search(r"site school_c: no worker", out), out[-2000:]
    assert "site school_a: done" in out
    assert proc.returncode in (2, 3)
    assert took < 60
