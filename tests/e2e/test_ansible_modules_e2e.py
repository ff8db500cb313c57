"""Ansible's everyday Windows modules (win_service, win_service_info, win_reg_stat, win_regedit, raw,
win_timezone, win_powershell, win_reboot, win_feature, and the refused win_updates) through the real `kmsfleet`
CLI against lab PCs: playbooks from tests/fixtures/ansible_modules/ in the styles people write, judged by the
JSON report (per-host status, registered return values) and by the lab's ground truth (control API, a re-read
over WMI), including --check (nothing changes) and --diff."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from labkit import hosts_by_name, read_report, room_spec, run_cli, start_lab

from orchestrator.lab import files, registry, registry_writes, services
from orchestrator.lab.addresses import claim_prefix
from orchestrator.lab.control_client import LabControl
from orchestrator.lab.machine import Machine
from orchestrator.lab.runner import LabThread

BOOKS = Path(__file__).resolve().parents[1] / "fixtures" / "ansible_modules"
HOSTS = [
    {"name": "pc01", "os": "Windows 10 Education"},
    {"name": "pc02", "os": "Windows 7 Professional"},
    {"name": "std01", "os": "Windows 10 Education", "admin": False},
    {"name": "srv01", "os": "Windows Server 2019 Standard"},
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


def _machine(lab: LabThread, name: str) -> Machine:
    world = lab.lab.world
    assert world is not None
    found = world.machine(name)
    assert isinstance(found, Machine)
    return found


def _run(lab: LabThread, tmp_path: Path, book: str, *extra: str) -> tuple[int, dict[str, Any], str]:
    report = tmp_path / f"{book}.json"
    proc = run_cli(
        "run",
        str(BOOKS / book),
        "-i",
        str(lab.inventory_path),
        "--db",
        str(tmp_path / "h.db"),
        "--report",
        str(report),
        *extra,
        timeout=240,
    )
    output = proc.stdout[-4000:] + proc.stderr[-4000:]
    assert report.exists(), output
    return proc.returncode, read_report(report), output


def _task(host: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in host["tasks"] if t["task"] == name)


def test_service_playbook_check_then_run(lab: LabThread, tmp_path: Path) -> None:
    limit = ("--limit", "pc01,pc02,std01")
    before = {n: services.snapshot(_machine(lab, n)) for n in ("pc01", "pc02", "std01")}
    code, report, out = _run(lab, tmp_path, "services.yml", "--check", "--diff", *limit)
    hosts = hosts_by_name(report)
    assert {n: services.snapshot(_machine(lab, n)) for n in before} == before  # --check changed nothing
    task = _task(hosts["pc01"], "No printing in the exam room")
    assert task["status"] == "changed", out
    assert task["diff"]["before"]["state"] == "running" and task["diff"]["after"]["start_mode"] == "disabled"

    code, report, out = _run(lab, tmp_path, "services.yml", *limit)
    hosts = hosts_by_name(report)
    assert hosts["pc01"]["status"] == "changed", out
    assert hosts["pc02"]["status"] == "changed", out
    truth = services.snapshot(_machine(lab, "pc01"))
    assert truth["Spooler"] == {"state": "Stopped", "start_mode": "Disabled"}
    assert truth["wuauserv"] == {"state": "Running", "start_mode": "Auto"}
    assert registry_writes.service_delayed_autostart(_machine(lab, "pc01"), "wuauserv") is True
    # a standard user: Win32_Service answers 2 (access denied), the task fails with that reason
    std = hosts["std01"]
    assert std["status"] == "failed"
    failed = _task(std, "No printing in the exam room")
    assert "access" in failed["msg"] and "(2)" in failed["msg"]
    assert services.snapshot(_machine(lab, "std01"))["Spooler"]["state"] == "Running"
    assert code == 2

    code, report, out = _run(lab, tmp_path, "services.yml", "--limit", "pc01,pc02")
    hosts = hosts_by_name(report)
    assert hosts["pc01"]["status"] == "ok", out  # second run: nothing to change
    assert hosts["pc02"]["status"] == "ok", out  # Windows 7: delayed start read back from the registry
    truth = LabControl(lab.control_url).host("pc02")["machine"]  # the control API's ground truth
    assert truth["services"]["Spooler"] == {"state": "Stopped", "start_mode": "Disabled"}
    assert code == 0


def test_registry_compliance(lab: LabThread, tmp_path: Path) -> None:
    extra = ("-e", "expected_edition=Education", "--limit", "pc01,srv01")
    code, report, out = _run(lab, tmp_path, "registry.yml", "--check", "--diff", *extra)
    hosts = hosts_by_name(report)
    assert hosts["pc01"]["status"] == "failed", out  # in check mode nothing is written: the read-back differs
    assert "School" not in str(
        registry.tree(_machine(lab, "pc01")).subkeys["hkey_local_machine"].path("SOFTWARE").names
    )
    assert _task(hosts["pc01"], "School policy key")["status"] == "changed"
    assert hosts["srv01"]["status"] == "failed"

    code, report, out = _run(lab, tmp_path, "registry.yml", *extra)
    hosts = hosts_by_name(report)
    assert hosts["pc01"]["status"] == "changed", out
    assert hosts["srv01"]["status"] == "failed"  # a server's EditionID is ServerStandard: not compliant
    assert "registry not compliant" in _task(hosts["srv01"], "Compliance")["msg"]
    assert _task(hosts["pc01"], "Lock-screen timeout (dword)")["data"]["data_changed"] is True
    edition = _task(hosts["pc01"], "Which edition")["data"]
    assert edition["value"] == "Education" and edition["raw_value"] == "Education"
    code, report, out = _run(lab, tmp_path, "registry.yml", *extra)
    assert hosts_by_name(report)["pc01"]["status"] == "ok", out
    assert code == 2  # srv01 still fails its compliance check


def test_misc_modules(lab: LabThread, tmp_path: Path) -> None:
    _machine(lab, "pc02").set_timezone("Pacific Standard Time")
    code, report, out = _run(lab, tmp_path, "misc.yml", "--limit", "pc01,pc02")
    assert code == 0, out
    hosts = hosts_by_name(report)
    assert hosts["pc01"]["status"] == "changed", out
    assert hosts["pc02"]["status"] == "changed", out
    tz = _task(hosts["pc02"], "Time zone of the school")
    assert tz["status"] == "changed" and tz["data"]["previous_timezone"] == "Pacific Standard Time"
    assert _machine(lab, "pc02").timezone == "Taipei Standard Time"
    assert _task(hosts["pc01"], "Time zone of the school")["status"] == "ok"


def test_reboot(lab: LabThread, tmp_path: Path) -> None:
    pc = _machine(lab, "pc01")
    booted = pc.boot_time
    code, report, out = _run(lab, tmp_path, "reboot.yml", "--limit", "pc01", "--check")
    assert pc.boot_time == booted and hosts_by_name(report)["pc01"]["status"] == "changed", out
    code, report, out = _run(lab, tmp_path, "reboot.yml", "--limit", "pc01")
    assert hosts_by_name(report)["pc01"]["status"] == "changed", out
    assert pc.boot_time > booted
    assert code == 0


def test_unsupported_module_refused_at_load(lab: LabThread, tmp_path: Path) -> None:
    proc = run_cli("run", str(BOOKS / "refused.yml"), "-i", str(lab.inventory_path), "--db", str(tmp_path / "h.db"))
    assert proc.returncode == 4
    text = proc.stdout + proc.stderr
    assert "win_updates: not supported by kmsfleet" in text and "refused.yml:" in text
    assert "Traceback" not in text


def test_file_deployment(lab: LabThread, tmp_path: Path) -> None:
    pc7 = _machine(lab, "pc02")  # Windows 7: PowerShell 2.0, 150 KB envelopes
    code, report, out = _run(lab, tmp_path, "deploy.yml", "--limit", "pc01,pc02", "--check", "--diff")
    assert files.lookup(pc7, "C:\\School\\conf") is None, out  # --check wrote nothing
    written = LabControl(lab.control_url).host("pc02")["machine"]["files"]
    assert not [p for p in written if p.lower().startswith("c:\\school")]
    assert code == 2  # in check mode the folder is not created, so win_stat finds no file: the assert fails
    assert _task(hosts_by_name(report)["pc02"], "KMS settings file")["status"] == "changed"

    code, report, out = _run(lab, tmp_path, "deploy.yml", "--limit", "pc01,pc02")
    assert code == 0, out
    hosts = hosts_by_name(report)
    for name in ("pc01", "pc02"):
        machine = _machine(lab, name)
        ini = files.read(machine, "C:\\School\\conf\\kms.ini")
        assert ini is not None and ini.startswith(f"; generated for {name}\r\n".encode())
        assert b"\r\nport=" in ini
        assert files.read(machine, "C:\\School\\conf\\rules.txt") == (BOOKS / "files" / "rules.txt").read_bytes()
        assert files.read(machine, "C:\\School\\conf\\deployed.txt") == b"deployed\r\n"
        assert _task(hosts[name], "KMS settings file")["data"]["checksum"] == hashlib.sha1(ini).hexdigest()
    code, report, out = _run(lab, tmp_path, "deploy.yml", "--limit", "pc02")
    statuses = {t["task"]: t["status"] for t in hosts_by_name(report)["pc02"]["tasks"]}
    assert statuses["KMS settings file"] == "ok" and statuses["Exam rules"] == "ok", out
    assert statuses["Last-run stamp"] == "changed"  # touch always changes, as in Ansible


def test_win_copy_chunks_a_large_file_and_refuses_too_large(lab: LabThread, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 600  # 150 KiB: four chunks
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "blob.bin").write_bytes(payload)
    (tmp_path / "files" / "huge.bin").write_bytes(b"x" * (1024 * 1024 + 1))
    book = tmp_path / "copy.yml"
    book.write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - win_copy: {src: blob.bin, dest: 'C:\\Windows\\Temp\\blob.bin'}\n"
        "    - win_copy: {src: huge.bin, dest: 'C:\\Windows\\Temp\\huge.bin'}\n",
        encoding="utf-8",
    )
    proc = run_cli(
        "run",
        str(book),
        "-i",
        str(lab.inventory_path),
        "--limit",
        "pc02",
        "--db",
        str(tmp_path / "h.db"),
        "--report",
        str(tmp_path / "r.json"),
    )
    assert files.read(_machine(lab, "pc02"), "C:\\Windows\\Temp\\blob.bin") == payload, proc.stdout[-3000:]
    tasks = hosts_by_name(read_report(tmp_path / "r.json"))["pc02"]["tasks"]
    assert tasks[1]["status"] == "failed" and "kmsfleet's win_copy sends" in tasks[1]["msg"]


def test_feature_and_script(lab: LabThread, tmp_path: Path) -> None:
    code, report, out = _run(lab, tmp_path, "server.yml", "--limit", "srv01,pc01")
    hosts = hosts_by_name(report)
    assert hosts["srv01"]["status"] == "changed", out  # script tasks report changed
    feature = _task(hosts["pc01"], "File server role present")
    assert feature["status"] == "failed" and "only works on Windows Server" in feature["msg"]
    assert code == 2


def test_win_powershell_on_powershell_2(lab: LabThread, tmp_path: Path) -> None:
    code, report, out = _run(lab, tmp_path, "misc.yml", "--limit", "pc02")
    assert code == 0, out
    ps = _task(hosts_by_name(report)["pc02"], "A PowerShell step")
    assert ps["status"] == "changed", out
    assert ps["data"]["output"] == ["ready"] and ps["data"]["error"] == []


@pytest.mark.parametrize("host", ["pc01", "pc02"])
def test_win_powershell_ansible_changed_and_failed(lab: LabThread, tmp_path: Path, host: str) -> None:
    """``$Ansible.Changed = $false`` makes the task ok, ``$Ansible.Failed = $true`` fails it, on PowerShell 5.1
    and 2.0 (the lab runs the ``$Ansible`` object kmsfleet sends)."""
    code, report, out = _run(lab, tmp_path, "ansible_state.yml", "--limit", host)
    assert code == 0, out
    tasks = hosts_by_name(report)[host]
    unchanged = _task(tasks, "Nothing to change")
    assert unchanged["status"] == "ok", out
    assert unchanged["data"]["output"] == ["checked"]
    assert _task(tasks, "Something changed")["status"] == "changed", out
    assert _task(tasks, "The script gives up")["status"] == "failed", out
