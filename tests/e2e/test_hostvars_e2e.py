"""``hostvars`` end to end: the real CLI against a three-PC lab over NTLM with encryption. pc01 reads pc02's
templated inventory variables, which render in pc02's own context (its name, its groups, its address), as
Ansible's ``HostVarsVars`` does; pc02 finished the first play (its variables compacted) after a real command, pc03
is in no play, ``-e`` wins inside pc02's context, and a misspelt variable fails with Ansible's message shape."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from labkit import hosts_by_name, read_report, room_lab, run_cli

from orchestrator.lab.runner import LabThread

PLAYBOOK = """\
- hosts: pc02
  gather_facts: false
  tasks:
    - win_command: cmd /c echo said-by-{{ inventory_hostname }}
      register: said
- hosts: pc01
  gather_facts: false
  tasks:
    - debug:
        msg: "{{ hostvars['pc02'].greeting }} | {{ hostvars['pc02'].endpoint }} | {{ hostvars['pc03'].greeting }}"
    - assert:
        that:
          - "hostvars['pc02'].greeting == 'hi pc02 of room101'"
          - "hostvars['pc02'].endpoint == 'http://' ~ hostvars['pc02'].ansible_host ~ ':5985/wsman'"
          - "hostvars['pc02'].endpoint != endpoint"
          - "hostvars['pc02'].note == 'from -e for pc02'"
          - "hostvars['pc02'].said.stdout | trim == 'said-by-pc02'"
          - "hostvars['pc03'].endpoint == 'http://' ~ hostvars['pc03'].ansible_host ~ ':5985/wsman'"
    - debug:
        msg: "{{ hostvars['pc02'].greetin }}"
      ignore_errors: true
"""


@pytest.fixture(scope="module")
def lab3() -> Iterator[LabThread]:
    with room_lab([{"name": "pc[01:03]"}]) as lab:
        yield lab


def _inventory(lab: LabThread, tmp: Path) -> Path:
    data = yaml.safe_load(lab.inventory_path.read_text())
    room = data["all"]["children"]["room101"]
    room["vars"] = {
        **room.get("vars", {}),
        "greeting": "hi {{ inventory_hostname }} of {{ group_names | join(',') }}",
        "endpoint": "http://{{ ansible_host }}:5985/wsman",
        "note": "{{ inventory_hostname }}",
    }
    path = tmp / "inventory.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_hostvars_render_in_the_other_pcs_context(lab3: LabThread, tmp_path: Path) -> None:
    pb = tmp_path / "hostvars.yml"
    pb.write_text(PLAYBOOK, encoding="utf-8")
    out = tmp_path / "r.json"
    inventory = _inventory(lab3, tmp_path)
    proc = run_cli(
        "run",
        str(pb),
        "-i",
        str(inventory),
        "-e",
        "note='from -e for {{ inventory_hostname }}'",
        "--no-history",
        "--report",
        str(out),
        timeout=90,
    )
    hosts = hosts_by_name(read_report(out))
    tasks = hosts["pc01"]["tasks"]
    assert proc.returncode == 0, (proc.stderr[-2000:], tasks)
    assert [t["status"] for t in hosts["pc02"]["tasks"]] == ["changed"], hosts["pc02"]["tasks"]
    shown, checked, typo = tasks
    pc02_ip = yaml.safe_load(inventory.read_text())["all"]["children"]["room101"]["hosts"]["pc02"]["ansible_host"]
    assert shown["msg"] == f"hi pc02 of room101 | http://{pc02_ip}:5985/wsman | hi pc03 of room101", shown
    assert checked["status"] == "ok", checked
    assert typo["status"] == "failed" and typo["ignored"], typo
    assert "HostVarsVars object' has no attribute 'greetin'" in typo["msg"], typo["msg"]
    assert "did you mean 'greeting'" in typo["msg"], typo["msg"]
