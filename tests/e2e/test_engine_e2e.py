"""The engine end to end: the real CLI as a subprocess against a 40-PC lab over NTLM with encryption.

One run covers Ansible semantics (win_command, register, when, loop, retries/until, block/rescue/always,
set_fact, assert) on healthy PCs, and the failure classes on the others: powered off → unreachable, wrong
password → sign-in refused (one attempt only), a PC that hangs mid-task → ends within its budget while the
others finish. The JSON report and the exit code must match what happened on each PC.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from labkit import hosts_by_name, read_report, room_spec, run_cli, start_lab

from orchestrator.lab.addresses import Claim, claim_prefix
from orchestrator.lab.control_client import LabControl
from orchestrator.lab.runner import LabThread

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "engine"
OFF = ("pc037", "pc038")
WRONG_PASSWORD = "pc039"
SLOW = "pc040"
BUDGET = 8


@pytest.fixture(scope="module")
def lab40() -> Iterator[tuple[LabThread, Claim]]:
    claim = claim_prefix()
    spec = {
        "rooms": [
            room_spec(
                claim,
                [
                    {"name": "pc[001:036]"},
                    {"name": "pc[037:038]", "power": "off"},
                    {"name": "pc[039:040]"},
                ],
            )
        ]
    }
    lab = start_lab(spec)
    try:
        yield lab, claim
    finally:
        lab.stop()
        claim.release()


def _inventory(lab: LabThread, tmp: Path) -> Path:
    data = yaml.safe_load(lab.inventory_path.read_text())
    room = data["all"]["children"]["room101"]["hosts"]
    room[WRONG_PASSWORD]["ansible_password"] = "not-the-password"
    room[SLOW]["slow_pc"] = True
    room[SLOW]["kmsfleet_host_budget_sec"] = BUDGET
    room[SLOW]["ansible_winrm_operation_timeout_sec"] = 2
    room[SLOW]["ansible_winrm_read_timeout_sec"] = 5
    path = tmp / "inventory.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_one_run_over_forty_pcs(lab40: tuple[LabThread, Claim], tmp_path: Path) -> None:
    lab, _ = lab40
    control = LabControl(lab.control_url)
    before_401 = control.stats().get("responses", {})
    inv = _inventory(lab, tmp_path)
    report = tmp_path / "run.json"
    proc = run_cli(
        "run",
        str(FIXTURES / "features.yml"),
        "-i",
        str(inv),
        "--report",
        str(report),
        "--db",
        str(tmp_path / "history.db"),
        timeout=240,
    )
    assert "Traceback" not in proc.stdout + proc.stderr
    data = read_report(report)
    hosts = hosts_by_name(data)
    assert len(hosts) == 40

    healthy = [f"pc{n:03d}" for n in range(1, 37)]
    for name in healthy:
        h = hosts[name]
        assert h["status"] == "changed", (name, h["msg"], [t["msg"] for t in h["tasks"] if t["status"] == "failed"])
        tasks = {t["task"]: t for t in h["tasks"]}
        # `when` decides per PC
        odd = int(name[-1]) % 2 == 1
        assert tasks["Only odd PCs say who they are"]["status"] == ("changed" if odd else "skipped")
        # the failing command inside the block is recorded, rescued, and does not fail the host
        failing = tasks["This fails"]
        assert failing["status"] == "failed" and failing["rescued"] is True
        assert "Never reached" not in tasks
        assert tasks["Retry until the third attempt"]["data"]["attempts"] == 3
        assert tasks["Slow PC runs a script under wscript (it never returns)"]["status"] == "skipped"
        assert h["stats"]["rescued"] == 1 and h["stats"]["failed"] == 0

    for name in OFF:
        assert hosts[name]["status"] == "unreachable"
        assert "refused" in hosts[name]["msg"]
    assert hosts[WRONG_PASSWORD]["status"] == "auth_refused"
    slow = hosts[SLOW]
    assert slow["status"] == "unreachable"
    assert slow["tasks"][-1]["failure"] == "timeout"
    # the slow PC ended within its budget (plus the runner's grace), the others did not wait for it
    assert (_ts(slow["finished"]) - _ts(slow["started"])).total_seconds() < BUDGET + 7
    last_healthy = max(_ts(hosts[n]["finished"]) for n in healthy)
    assert last_healthy < _ts(slow["finished"])

    # exit code: nobody failed a task, one PC refused the sign-in → 5
    assert proc.returncode == 5, proc.stdout[-2000:]
    assert data["run"]["exit_code"] == 5

    # the wrong password was tried once: one authentication attempt, never a retry loop
    after = control.host(WRONG_PASSWORD)
    requests = after.get("requests", {})
    assert sum(v for k, v in requests.items() if "401" in k or "unauthorized" in k.lower()) <= 2, requests
    del before_401


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("bad_yaml.yml", "- hosts: all\n  tasks:\n    - debug: msg=hi\n     - bad\n", ":4:"),
        ("bad_module.yml", "- hosts: all\n  tasks:\n    - win_comand: whoami\n", ":3:"),
        (
            "bad_arg.yml",
            "- hosts: all\n  tasks:\n    - win_command:\n        cmd: whoami\n        chdri: C:\\\n",
            ":5:",
        ),
    ],
)
def test_malformed_playbooks_exit_4_with_location(tmp_path: Path, name: str, text: str, where: str) -> None:
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  hosts:\n    pc1:\n      ansible_host: 127.0.0.1\n")
    pb = tmp_path / name
    pb.write_text(text)
    proc = run_cli("run", str(pb), "-i", str(inv), "--no-history", timeout=60)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    err = proc.stderr
    assert f"{name}{where}" in err, err
    assert "Traceback" not in proc.stdout + err


def test_malformed_inventory_exit_4(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  hosts:\n    pc1:\n      ansible_host: 127.0.0.1\n  host:\n    pc2: {}\n")
    proc = run_cli("run", str(FIXTURES / "features.yml"), "-i", str(inv), "--no-history", timeout=60)
    assert proc.returncode == 4
    assert "inv.yml:5" in proc.stderr and "hosts" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_undefined_variable_names_variable_task_and_host(lab40: tuple[LabThread, Claim], tmp_path: Path) -> None:
    lab, _ = lab40
    pb = tmp_path / "undef.yml"
    pb.write_text(
        "- hosts: pc001\n  gather_facts: false\n  tasks:\n"
        '    - name: Use a typo\n      win_command: "cmd /c echo {{ kms_hots }}"\n'
    )
    out = tmp_path / "r.json"
    proc = run_cli("run", str(pb), "-i", str(lab.inventory_path), "--no-history", "--report", str(out), timeout=60)
    assert proc.returncode == 2
    task: dict[str, Any] = read_report(out)["hosts"][0]["tasks"][0]
    assert "kms_hots" in task["msg"] and "Use a typo" in task["msg"] and "pc001" in task["msg"]
    assert "Traceback" not in proc.stdout + proc.stderr


def test_group_vars_beside_the_playbook_apply(lab40: tuple[LabThread, Claim], tmp_path: Path) -> None:
    """As in Ansible, ``group_vars/`` and ``host_vars/`` in the playbook's folder apply (over the inventory's)."""
    lab, _ = lab40
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "room101.yml").write_text("room_note: from the playbook folder\n")
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "host_vars" / "pc001.yml").write_text("kms_port: 1699\n")
    pb = tmp_path / "vars.yml"
    pb.write_text(
        "- hosts: pc001\n  gather_facts: false\n  tasks:\n"
        '    - assert:\n        that: ["room_note == \'from the playbook folder\'", "kms_port == 1699"]\n'
    )
    out = tmp_path / "r.json"
    proc = run_cli("run", str(pb), "-i", str(lab.inventory_path), "--no-history", "--report", str(out), timeout=60)
    assert proc.returncode == 0, read_report(out)["hosts"][0]["tasks"]


def test_a_later_play_reads_a_finished_pcs_registered_output(lab40: tuple[LabThread, Claim], tmp_path: Path) -> None:
    """pc001 is done after the first play (the runner then keeps its variables compact, ``HostState.compact``); the
    second play, on pc002, reads pc001's registered command output through ``hostvars`` as Ansible does, and the
    password inside that output stays masked in the report."""
    lab, _ = lab40
    password = yaml.safe_load(lab.inventory_path.read_text())["all"]["children"]["room101"]["hosts"]["pc001"][
        "ansible_password"
    ]
    pb = tmp_path / "two_plays.yml"
    pb.write_text(
        "- hosts: pc001\n  gather_facts: false\n  tasks:\n"
        '    - win_command: "cmd /c echo marker-{{ inventory_hostname }} {{ ansible_password }}"\n'
        "      register: said\n"
        "- hosts: pc002\n  gather_facts: false\n  tasks:\n"
        "    - debug:\n        msg: \"{{ hostvars['pc001'].said.stdout | trim }}\"\n"
        '    - assert:\n        that: ["hostvars[\'pc001\'].said.rc == 0", "not hostvars.pc001.said.failed"]\n'
    )
    out = tmp_path / "r.json"
    proc = run_cli("run", str(pb), "-i", str(lab.inventory_path), "--no-history", "--report", str(out), timeout=90)
    report = out.read_text()
    hosts = hosts_by_name(read_report(out))
    assert proc.returncode == 0, hosts["pc002"]["tasks"]
    shown = hosts["pc002"]["tasks"][0]["msg"]
    assert shown.startswith("marker-pc001 ") and "********" in shown, shown
    assert password not in report + proc.stdout + proc.stderr


def test_sigint_keeps_finished_hosts_in_report_and_history(tmp_path: Path) -> None:
    import signal
    import sqlite3
    import subprocess

    from labkit import KMSFLEET, wait_finished_in_history

    claim = claim_prefix()
    spec = {
        "rooms": [
            room_spec(claim, [{"name": "pc[01:04]"}, {"name": "pc[05:12]", "latency_ms": 400}]),
        ]
    }
    lab = start_lab(spec)
    try:
        report = tmp_path / "r.json"
        db = tmp_path / "h.db"
        proc = subprocess.Popen(
            [
                KMSFLEET,
                "run",
                str(FIXTURES / "features.yml"),
                "-i",
                str(lab.inventory_path),
                "--report",
                str(report),
                "--db",
                str(db),
                "--forks",
                "12",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_finished_in_history(db, 4, 60)  # the fast PCs are done: interrupt the slow rest
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        lab.stop()
        claim.release()
    assert proc.returncode == 99, out[-2000:] + err[-2000:]
    assert "Traceback" not in out + err
    data = read_report(report)
    hosts = hosts_by_name(data)
    assert data["run"]["interrupted"] is True
    finished = [h for h in hosts.values() if h["status"] in ("ok", "changed")]
    assert {h["host"] for h in finished} >= {"pc01", "pc02", "pc03", "pc04"}
    assert {h["status"] for n, h in hosts.items() if n >= "pc05"} <= {"interrupted", "not_run", "changed"}
    with sqlite3.connect(db) as con:
        stored = {r[0]: r[1] for r in con.execute("select host, status from host_results")}
    assert {n: h["status"] for n, h in hosts.items()} == stored


def test_follow_up_finds_the_earlier_run_however_paths_are_written(tmp_path: Path) -> None:
    """`./pb.yml` from one folder and an absolute path from another name the same playbook in the history."""
    import shutil

    from orchestrator.lab.control_client import LabControl

    claim = claim_prefix()
    lab = start_lab({"rooms": [room_spec(claim, [{"name": "pc[1:2]"}, {"name": "pc3", "power": "off"}])]})
    try:
        work = tmp_path / "work"
        work.mkdir()
        shutil.copy(FIXTURES.parent / "playbooks" / "followup.yml", work / "pb.yml")
        shutil.copy(lab.inventory_path, work / "inv.yml")
        db = tmp_path / "h.db"
        first = run_cli("run", "./pb.yml", "-i", "inv.yml", "--db", str(db), cwd=work, timeout=120)
        assert first.returncode == 3, first.stdout + first.stderr
        LabControl(lab.control_url).power("pc3", True)
        report = tmp_path / "again.json"
        again = run_cli(
            "run",
            str(work / "pb.yml"),
            "-i",
            str(work / "inv.yml"),
            "--limit",
            "@unreachable",
            "--db",
            str(db),
            "--report",
            str(report),
            cwd=tmp_path,
            timeout=120,
        )
        assert again.returncode == 0, again.stdout + again.stderr
        assert [h["host"] for h in read_report(report)["hosts"]] == ["pc3"]
    finally:
        lab.stop()
        claim.release()
