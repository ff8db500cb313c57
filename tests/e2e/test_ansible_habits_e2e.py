"""Habits of public Windows playbooks, through the real `kmsfleet` CLI against en-US, zh-TW and Windows 7 lab
PCs, judged by the JSON report and the lab's ground truth (the control API): a read-only ``win_command`` with
``changed_when: false`` and ``failed_when`` on its ``rc`` must not fail under --check (Ansible skips the command
and evaluates neither condition), and the OS facts carry setup.ps1's four-part versions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from labkit import hosts_by_name, read_report, room_spec, run_cli, start_lab

from orchestrator.lab.addresses import claim_prefix
from orchestrator.lab.control_client import LabControl
from orchestrator.lab.runner import LabThread

BOOKS = Path(__file__).resolve().parents[1] / "fixtures" / "ansible_habits"
HOSTS = [
    {"name": "pc01", "os": "Windows 10 Education"},
    {"name": "pc02", "os": "Windows 7 Professional"},
    {"name": "pc03", "os": "Windows 10 Education", "locale": "zh-TW"},
]


@pytest.fixture(scope="module")
def lab() -> Iterator[LabThread]:
    claim = claim_prefix()
    running = start_lab({"rooms": [room_spec(claim, HOSTS)]})
    try:
        yield running
    finally:
        running.stop()
        claim.release()


def _run(lab: LabThread, tmp_path: Path, book: str, *extra: str) -> tuple[int, dict[str, Any], str]:
    report = tmp_path / f"{book}.json"
    proc = run_cli(
        "run", str(BOOKS / book), "-i", str(lab.inventory_path), "--db", str(tmp_path / "h.db"),
        "--report", str(report), *extra, timeout=240,
    )  # fmt: skip
    output = proc.stdout[-4000:] + proc.stderr[-4000:]
    assert report.exists(), output
    return proc.returncode, read_report(report), output


def _task(host: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in host["tasks"] if t["task"] == name)


def _spooler(lab: LabThread) -> dict[str, Any]:
    control = LabControl(lab.control_url)
    return {name: control.host(name)["machine"]["services"]["Spooler"] for name in ("pc01", "pc02", "pc03")}


def test_check_mode_skips_failed_when_then_real_run(lab: LabThread, tmp_path: Path) -> None:
    before = _spooler(lab)
    code, report, out = _run(lab, tmp_path, "check_audit.yml", "--check", "--diff")
    hosts = hosts_by_name(report)
    assert _spooler(lab) == before  # --check changed nothing (control API ground truth)
    for name in ("pc01", "pc02", "pc03"):
        assert hosts[name]["status"] == "changed", out  # would stop the spooler; nothing failed
        assert _task(hosts[name], "Read the licence expiry")["status"] == "skipped", out
        assert _task(hosts[name], "No printing in the exam room")["status"] == "changed", out
    assert code == 0, out

    code, report, out = _run(lab, tmp_path, "check_audit.yml")
    hosts = hosts_by_name(report)
    assert code == 0, out
    for name in ("pc01", "pc02", "pc03"):
        assert _task(hosts[name], "Read the licence expiry")["status"] == "ok", out
    assert all(s["state"] == "Stopped" for s in _spooler(lab).values())


def test_os_facts_have_setup_ps1_versions(lab: LabThread, tmp_path: Path) -> None:
    _code, report, out = _run(lab, tmp_path, "check_audit.yml", "--check")
    hosts = hosts_by_name(report)
    facts = {n: _task(hosts[n], "Record the OS version")["data"]["ansible_facts"] for n in ("pc01", "pc02", "pc03")}
    assert facts["pc01"]["os_version"].startswith("10.0.") and facts["pc01"]["os_version"].endswith(".0"), out
    assert facts["pc01"]["os_version"].count(".") == 3 and facts["pc01"]["os_kernel"] == facts["pc01"]["os_version"]
    assert facts["pc02"]["os_version"] == "6.1.7601.65536", out  # Windows 7 SP1
    assert facts["pc02"]["os_name"] == facts["pc02"]["os_name"].strip()
    assert {f["os_type"] for f in facts.values()} == {"workstation"}
