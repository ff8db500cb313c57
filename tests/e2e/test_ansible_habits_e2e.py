"""Habits of public Windows playbooks, through the real `kmsfleet` CLI against en-US, zh-TW and Windows 7 lab
PCs, judged by the JSON report and the lab's ground truth (the control API): a read-only ``win_command`` with
``changed_when: false`` and ``failed_when`` on its ``rc`` must not fail under --check (Ansible skips the command
and evaluates neither condition); the OS facts carry setup.ps1's four-part versions; and a role project as it is
published (ansible.cfg naming the inventory and the vault password file, group_vars with a Vault file,
defaults/vars/handlers/meta, ``include_tasks`` with ``loop``/``loop_control``) runs from its own folder."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from labkit import hosts_by_name, read_report, room_spec, run_cli, start_lab

from orchestrator.lab import registry
from orchestrator.lab.addresses import claim_prefix
from orchestrator.lab.control_client import LabControl
from orchestrator.lab.machine import Machine
from orchestrator.lab.runner import LabThread

BOOKS = Path(__file__).resolve().parents[1] / "fixtures" / "ansible_habits"
INI = "C:\\ProgramData\\School\\school.ini"
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
    assert {f["os_family_hv"] for f in facts.values()} == {"Windows"}  # hostvars[host]['ansible_facts']


def _project(lab: LabThread, tmp_path: Path) -> Path:
    """The role project copied beside a copy of the lab's inventory, where its ansible.cfg looks."""
    project = tmp_path / "project"
    shutil.copytree(BOOKS / "project", project)
    (project / "inventory").mkdir()
    shutil.copy(lab.inventory_path, project / "inventory" / "hosts.yml")
    return project


def _room_value(lab: LabThread, name: str) -> object:
    """HKLM\\SOFTWARE\\Policies\\School\\Room in the lab PC's registry (None when absent)."""
    world = lab.lab.world
    assert world is not None
    machine = world.machine(name)
    assert isinstance(machine, Machine)
    key = registry.tree(machine).subkeys.get("hkey_local_machine")
    for part in ("software", "policies", "school"):
        key = key.subkeys.get(part) if key is not None else None
    if key is None:
        return None
    return next((data for value, _type, data in key.values if value == "Room"), None)


def test_role_project_with_ansible_cfg_vault_and_include_loop(lab: LabThread, tmp_path: Path) -> None:
    project = _project(lab, tmp_path)
    db, report = str(tmp_path / "p.db"), tmp_path / "p.json"
    before = _spooler(lab)
    proc = run_cli("run", "site.yml", "--check", "--diff", "--db", db, "--report", str(report), cwd=project)
    out = proc.stdout[-4000:] + proc.stderr[-4000:]
    assert proc.returncode == 0, out
    assert _spooler(lab) == before and _room_value(lab, "pc01") is None  # --check changed nothing
    assert INI not in LabControl(lab.control_url).host("pc01")["machine"]["files"]
    hosts = hosts_by_name(read_report(report))
    assert set(hosts) == {"pc01", "pc02", "pc03"}, out  # the inventory came from ansible.cfg
    names = [t["task"] for t in hosts["pc02"]["tasks"]]
    assert names.count("Service Spooler") == 1 and names.count("Service wuauserv") == 1, names  # one per item

    proc = run_cli("run", "site.yml", "--db", db, "--report", str(report), cwd=project)
    out = proc.stdout[-4000:] + proc.stderr[-4000:]
    assert proc.returncode == 0, out
    hosts = hosts_by_name(read_report(report))
    for name in ("pc01", "pc02", "pc03"):
        summary = _task(hosts[name], "Summary")["msg"]
        assert summary.endswith("room ********"), summary  # a Vault value is a secret: masked in output …
        assert _room_value(lab, name) == "Exam room 101"  # … but written decrypted to the PC
        assert "Exam room 101" not in out
        files = LabControl(lab.control_url).host(name)["machine"]["files"]
        # the role's templates/school.ini.j2, rendered with ansible_managed and the decrypted value, CRLF lines
        text = f"; Ansible managed\r\n[school]\r\nroom=Exam room 101\r\nhost={name}\r\n"
        assert files[INI]["sha1"] == hashlib.sha1(text.encode()).hexdigest(), files
    assert all(s == {"state": "Stopped", "start_mode": "Disabled"} for s in _spooler(lab).values())


def test_creates_and_removes_skip_the_task_as_ansible_windows_does(lab: LabThread, tmp_path: Path) -> None:
    code, report, out = _run(lab, tmp_path, "run_once.yml", "--limit", "pc01,pc02")
    hosts = hosts_by_name(report)
    assert code == 0, out
    for name in ("pc01", "pc02"):
        assert _task(hosts[name], "Install (the folder is there already)")["status"] == "skipped", out
        assert _task(hosts[name], "Clean up (nothing to remove)")["status"] == "skipped", out
        assert _task(hosts[name], "PowerShell guard")["status"] == "ok", out
