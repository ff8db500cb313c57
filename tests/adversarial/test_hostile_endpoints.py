"""Hostile WS-Man endpoints beside healthy lab PCs in one real ``kmsfleet run`` (a subprocess): the controller's
memory, time, report and terminal stay bounded, healthy PCs finish, hostile ones end with an honest status.

The hostile endpoints are this package's own servers (``hostile_wsman``), not lab features: no lab setting can
switch this suite off. docs/hardening.md lists the bounds each case proves.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hostile_wsman import ESCAPE_STDOUT, SEND_CAP, Hostile, HostileThread
from labkit import KMSFLEET, PASSWORD, hosts_by_name, read_report, room_spec, start_lab

from orchestrator.lab.addresses import Claim, claim_prefix

pytestmark = pytest.mark.timeout(120)

RSS_LIMIT = 500 * 1024 * 1024  # peak resident memory of the kmsfleet process
HOSTILE_SECONDS = 30.0  # each hostile PC's result within this (its own duration)
RUN_SECONDS = 60.0  # the whole run
REPORT_LIMIT = 64 * 1024 * 1024  # the JSON report (one PC's output is kept up to the 16 MiB cap)
KINDS = ("gzip_bomb", "huge_body", "ntlm_loop", "slowloris", "slow_headers", "endless_stdout", "escapes")
WINRS_KINDS = ("endless_stdout", "escapes")  # sign in with Basic (the fake WinRS has no NTLM)

PLAYBOOK = """\
- name: hostile neighbours
  hosts: all
  gather_facts: false
  tasks:
    - name: who am I
      win_command: whoami
"""


@pytest.fixture(scope="module")
def claim() -> Iterator[Claim]:
    block = claim_prefix()
    try:
        yield block
    finally:
        block.release()


def _inventory(lab_inventory: Path, hostile: list[Hostile], path: Path) -> Path:
    data: dict[str, Any] = yaml.safe_load(lab_inventory.read_text(encoding="utf-8"))
    hosts: dict[str, Any] = {}
    for ep in hostile:
        vars_: dict[str, Any] = {
            "ansible_host": ep.address,
            "ansible_port": ep.port,
            "ansible_user": "administrator",
            "ansible_password": PASSWORD,
            "ansible_winrm_operation_timeout_sec": 3,
            "ansible_winrm_read_timeout_sec": 5,
            "ansible_winrm_connection_timeout_sec": 3,
            "kmsfleet_host_budget_sec": 45,
        }
        if ep.kind in WINRS_KINDS:
            vars_ |= {"ansible_winrm_transport": "basic", "kmsfleet_allow_insecure_basic": True}
        hosts[ep.kind.replace("_", "-")] = vars_
    data["all"]["children"]["hostile"] = {"hosts": hosts}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _run(args: list[str], env: dict[str, str], out: Path, err: Path) -> tuple[int, int, float]:
    """Run the CLI; (exit code, peak RSS in bytes, seconds). The RSS comes from the child's own rusage."""
    started = time.monotonic()
    with out.open("wb") as fo, err.open("wb") as fe:
        proc = subprocess.Popen([KMSFLEET, *args], stdout=fo, stderr=fe, env=env)
        deadline = started + RUN_SECONDS + 30
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                pytest.fail("kmsfleet run did not end in time")
            time.sleep(0.1)
    proc.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting again
    return proc.returncode, usage.ru_maxrss * 1024, time.monotonic() - started


def test_hostile_endpoints_beside_healthy_pcs(claim: Claim, tmp_path: Path) -> None:
    lab = start_lab({"rooms": [room_spec(claim, [{"name": "pc[01:03]"}])], "seed": 5})
    hostile = [Hostile(kind, f"{claim.prefix}.9.{i}") for i, kind in enumerate(KINDS, start=1)]
    servers = HostileThread(hostile)
    servers.start()
    try:
        inv = _inventory(lab.inventory_path, hostile, tmp_path / "inventory.yml")
        playbook = tmp_path / "play.yml"
        playbook.write_text(PLAYBOOK, encoding="utf-8")
        report = tmp_path / "report.json"
        env = {**os.environ, "COLUMNS": "160", "NO_COLOR": "1", "KMSFLEET_DB": str(tmp_path / "history.db")}
        out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
        code, peak_rss, seconds = _run(
            ["run", str(playbook), "-i", str(inv), "--report", str(report), "-v"], env, out, err
        )
    finally:
        servers.stop()
        lab.stop()
    terminal = out.read_bytes() + err.read_bytes()
    text = terminal.decode("utf-8", "replace")
    assert code == 2, text[-3000:]  # tasks failed on some PCs; not a crash (250), not "credentials refused" (5)
    assert "Traceback" not in text
    assert peak_rss <= RSS_LIMIT, f"peak RSS {peak_rss / 2**20:.0f} MiB"
    assert seconds <= RUN_SECONDS, seconds
    assert report.stat().st_size <= REPORT_LIMIT, report.stat().st_size
    assert b"\x1b" not in terminal and b"\x07" not in terminal and "\x9b" not in text, text[-2000:]
    assert "tail link" in text and "evil.example" not in text  # the PC's text is shown, its sequences are not

    hosts = hosts_by_name(read_report(report))
    print(  # the figures docs/hardening.md quotes (pytest -s)
        f"peak RSS {peak_rss / 2**20:.0f} MiB, run {seconds:.1f}s, report {report.stat().st_size / 2**20:.1f} MiB, "
        + ", ".join(f"{n} {h['duration_ms'] / 1000:.1f}s" for n, h in hosts.items())
    )
    for name in ("pc01", "pc02", "pc03"):
        assert hosts[name]["status"] in ("ok", "changed"), hosts[name]
    expected = {
        "gzip-bomb": "compressed",
        "huge-body": "over the limit of 16 MiB",
        "ntlm-loop": "sign-in round",
        "slowloris": "still arriving",
        "slow-headers": "still arriving",
        "endless-stdout": "kmsfleet_max_output_bytes",
        "escapes": "rc 1",
    }
    for name, phrase in expected.items():
        host = hosts[name]
        assert host["status"] in ("failed", "unreachable"), host
        msgs = " | ".join([host.get("msg") or ""] + [t.get("msg") or "" for t in host["tasks"]])
        assert phrase in msgs, (name, msgs)
        assert "refused the credentials" not in msgs and host["status"] != "auth_refused", (name, msgs)
        assert host["duration_ms"] <= HOSTILE_SECONDS * 1000, (name, host["duration_ms"])

    by_kind = {ep.kind: ep for ep in hostile}
    assert not any(ep.capped for ep in hostile), [(ep.kind, ep.sent) for ep in hostile]
    assert by_kind["huge_body"].sent < 40 * 1024 * 1024  # the client hung up soon after its 16 MiB
    assert by_kind["ntlm_loop"].requests <= 12, by_kind["ntlm_loop"].requests  # ~2,500/s without the round cap
    assert by_kind["gzip_bomb"].requests <= 2  # refused unread, and not contacted again
    assert SEND_CAP > 64 * 1024 * 1024
    task = hosts["endless-stdout"]["tasks"][0]
    stdout = task["data"]["stdout"]
    assert task["data"].get("truncated") is True
    assert 15 * 1024 * 1024 < len(stdout) <= 16 * 1024 * 1024 + 200 and stdout.endswith("command was stopped]")
    escapes = hosts["escapes"]["tasks"][0]["data"]["stdout"]
    assert escapes == ESCAPE_STDOUT.replace("\r\n", "\n") or escapes == ESCAPE_STDOUT  # the report keeps the data
