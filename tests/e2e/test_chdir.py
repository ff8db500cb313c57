"""``chdir`` of win_command and win_shell, end to end: the kmsfleet CLI (a subprocess, the real transport) runs a
playbook against a lab PC and the report shows each command ran in the folder it was given.

The first task is the one a public KMS client Ansible role runs (``win_command: cscript //nologo slmgr.vbs /skms
HOST`` with ``chdir: C:\\Windows\\system32``), which fails on every PC when the command line is wrapped in a second
``cmd.exe /c`` (the outer cmd splits at ``&&`` and runs slmgr.vbs in the profile folder)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from labkit import hosts_by_name, read_report, room_spec, run_cli, start_lab

from orchestrator.lab.addresses import claim_prefix
from orchestrator.lab.control_client import LabControl
from orchestrator.lab.runner import LabThread

PLAYBOOK = r"""
- hosts: all
  gather_facts: false
  tasks:
    - name: Set the KMS host (KMS client role style)
      win_command: cscript //nologo slmgr.vbs /skms {{ kms_host }}
      args:
        chdir: C:\Windows\system32
    - name: win_command argv in a folder with blanks
      win_command:
        argv: [cmd.exe, /c, cd]
        chdir: C:\Program Files (x86)
    - name: win_shell (PowerShell)
      win_shell: (Get-Location).Path
      args:
        chdir: C:\Program Files
    - name: win_shell (cmd)
      win_shell: cd
      args:
        chdir: C:\Windows
        executable: cmd
    - name: win_command in a missing folder
      win_command: hostname
      args:
        chdir: C:\no such folder
      ignore_errors: true
    - name: win_shell in a missing folder
      win_shell: Write-Output ran
      args:
        chdir: C:\no such folder
      ignore_errors: true
"""


@pytest.fixture(scope="module")
def lab() -> Iterator[LabThread]:
    claim = claim_prefix()
    lab = start_lab({"rooms": [room_spec(claim, [{"name": "pc01"}])]})
    try:
        yield lab
    finally:
        lab.stop()
        claim.release()


def _tasks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["task"]: t for t in hosts_by_name(report)["pc01"]["tasks"]}


def test_commands_run_in_their_chdir(lab: LabThread, tmp_path: Path) -> None:
    playbook = tmp_path / "chdir.yml"
    playbook.write_text(PLAYBOOK, encoding="utf-8")
    out = tmp_path / "report.json"
    proc = run_cli("run", str(playbook), "-i", str(lab.inventory_path), "--report", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tasks = _tasks(read_report(out))

    skms = tasks["Set the KMS host (KMS client role style)"]
    assert skms["status"] == "changed", skms
    assert skms["data"]["rc"] == 0
    assert "Key Management Service machine name set to" in skms["data"]["stdout"]
    inventory = yaml.safe_load(lab.inventory_path.read_text(encoding="utf-8"))
    kms_host = inventory["all"]["children"]["room101"]["vars"]["kms_host"]
    truth = LabControl(lab.control_url).host("pc01")
    assert truth["machine"]["kms_host"] == kms_host  # the lab's ground truth: slmgr ran and set it
    assert tasks["win_command argv in a folder with blanks"]["data"]["stdout"] == "C:\\Program Files (x86)\r\n"
    assert tasks["win_shell (PowerShell)"]["data"]["stdout"] == "C:\\Program Files\r\n"
    assert tasks["win_shell (cmd)"]["data"]["stdout"] == "C:\\Windows\r\n"

    missing = tasks["win_command in a missing folder"]
    assert missing["status"] == "failed" and missing["ignored"]
    assert missing["data"]["stdout"] == ""  # hostname never ran
    assert "The system cannot find the path specified." in missing["msg"]
    missing_ps = tasks["win_shell in a missing folder"]
    assert missing_ps["status"] == "failed" and missing_ps["ignored"]
    assert missing_ps["data"]["stdout"] == ""  # the script never ran
    assert "Cannot find path 'C:\\no such folder'" in missing_ps["data"]["stderr"]


def test_chdir_with_a_double_quote_is_refused_before_any_pc_is_contacted(lab: LabThread, tmp_path: Path) -> None:
    playbook = tmp_path / "bad.yml"
    playbook.write_text(
        "- hosts: all\n  tasks:\n    - win_command: hostname\n      args:\n        chdir: 'C:\\a\" & del x'\n",
        encoding="utf-8",
    )
    proc = run_cli("run", str(playbook), "-i", str(lab.inventory_path))
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "chdir" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
