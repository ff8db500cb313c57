"""An IT lead's project with the Ansible habits kmsfleet lacked until now, run by the real CLI from the project's
folder against lab PCs (Windows 10 with PowerShell 5.1, Windows 7 with 2.0): ``include_vars`` over a folder
(``dir``, ``extensions``, ``ignore_unknown_extensions``, ``ignore_files``, ``depth``, ``name``) and inside a role
(``dir`` under the role's vars/, ``files_matching``), win_template's ``ansible_managed`` from the project's
ansible.cfg, and win_powershell's streams (``output``, ``host_out``, ``error`` records)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from labkit import hosts_by_name, lab_machine, read_report, room_lab, run_cli

from orchestrator.lab import files
from orchestrator.lab.runner import LabThread

PROJECT = Path(__file__).resolve().parents[1] / "fixtures" / "ansible_leftovers"
HOSTS = [{"name": "pc01", "os": "Windows 10 Education"}, {"name": "pc02", "os": "Windows 7 Professional"}]


@pytest.fixture(scope="module")
def lab() -> Iterator[LabThread]:
    with room_lab(HOSTS) as running:
        yield running


def test_project_runs_from_its_folder(lab: LabThread, tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(PROJECT, project)
    project.chmod(0o755)  # ansible.cfg in a world-writable folder would be ignored
    report = tmp_path / "report.json"
    proc = run_cli(
        "run",
        "site.yml",
        "-i",
        str(lab.inventory_path),
        "--db",
        str(tmp_path / "h.db"),
        "--report",
        str(report),
        cwd=project,
        env={"ANSIBLE_CONFIG": ""},
        timeout=240,
    )
    out = proc.stdout[-4000:] + proc.stderr[-4000:]
    assert proc.returncode == 0, out
    hosts = hosts_by_name(read_report(report))
    template = project / "roles" / "kms_client" / "templates" / "kms.ini.j2"
    year = time.strftime("%Y", time.localtime(template.stat().st_mtime))
    expected = (
        f"; Managed by the IT office - do not edit (kms.ini.j2, {year})\r\n[kms]\r\nhost=kms.school.example\r\n"
        "key=W269N-WFGWX-YVC9B-4J6C9-T83GX\r\n"
    ).encode()
    for name in ("pc01", "pc02"):
        tasks = {t["task"]: t for t in hosts[name]["tasks"]}
        assert tasks["Results"]["status"] == "ok", out
        check = tasks["Check the room"]["data"]
        assert check["error"][0]["fully_qualified_error_id"] == "Microsoft.PowerShell.Commands.WriteErrorException"
        assert files.read(lab_machine(lab, name), "C:\\School\\kms.ini") == expected
