"""A distinct password per PC (Windows LAPS): the real CLI at -vvv against a lab whose PCs each have their own
password (one room per PC), with 300 more PCs in the inventory, each with its own password, left out by
``--limit``. The run finishes within 90 s (registering 300+ secrets used to take minutes of CPU), every PC signs in,
and no password of any PC — nor the NTLM hash the transport computes and registers at sign-in, in either letter
case — appears in the terminal, the report or the history database."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from labkit import hosts_by_name, read_report, room_spec, run_cli, start_lab
from spnego._ntlm_raw.crypto import ntowfv1

from orchestrator.lab.addresses import Claim, claim_prefix
from orchestrator.lab.runner import LabThread

ROOMS = 4
SPARE = 300
PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - win_ping:
    - debug: var=ansible_password
    - debug:
        msg: "signing in with {{ ansible_password }}"
"""


def _password(i: int) -> str:
    return f"Laps{i:03d}-{secrets.token_urlsafe(10)}"


@pytest.fixture(scope="module")
def laps_lab() -> Iterator[tuple[LabThread, list[str]]]:
    claim: Claim = claim_prefix()
    passwords = [_password(i) for i in range(ROOMS)]
    rooms = [
        room_spec(claim, [{"name": f"pc{i + 1:02d}"}], room=f"room{i + 1}", room_index=i + 1, password=pw)
        for i, pw in enumerate(passwords)
    ]
    lab = start_lab({"rooms": rooms, "seed": 5})
    try:
        yield lab, passwords
    finally:
        lab.stop()
        claim.release()


def _forms(password: str) -> dict[str, bytes]:
    raw, wide = password.encode(), password.encode("utf-16-le")
    nt = ntowfv1(password).hex()
    return {
        "plain": raw,
        "utf-16-le": wide,
        "base64": base64.b64encode(raw),
        "base64 utf-16-le": base64.b64encode(wide),
        "nt hash": nt.encode(),
        "NT HASH": nt.upper().encode(),
    }


def test_per_pc_passwords_stay_hidden_and_the_run_starts_promptly(
    laps_lab: tuple[LabThread, list[str]], tmp_path: Path
) -> None:
    lab, passwords = laps_lab
    data = yaml.safe_load(lab.inventory_path.read_text(encoding="utf-8"))
    spare = [_password(ROOMS + i) for i in range(SPARE)]
    data["all"]["children"]["spare"] = {
        "hosts": {f"spare{i:03d}": {"ansible_host": "127.0.0.1", "ansible_password": pw} for i, pw in enumerate(spare)}
    }
    inventory, playbook = tmp_path / "inventory.yml", tmp_path / "laps.yml"
    inventory.write_text(yaml.safe_dump(data), encoding="utf-8")
    playbook.write_text(PLAYBOOK, encoding="utf-8")
    report, db = tmp_path / "report.json", tmp_path / "history.db"
    rooms = ":".join(f"room{i + 1}" for i in range(ROOMS))
    run = run_cli(
        "run", str(playbook), "-i", str(inventory), "--limit", rooms, "-vvv",
        "--report", str(report), "--db", str(db), timeout=90,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    hosts = hosts_by_name(read_report(report))
    assert sorted(hosts) == [f"pc{i + 1:02d}" for i in range(ROOMS)]
    assert {h["status"] for h in hosts.values()} == {"ok"}
    assert "********" in run.stdout
    blobs = {"stdout": run.stdout.encode(), "stderr": run.stderr.encode()}
    blobs |= {f.name: f.read_bytes() for f in tmp_path.rglob("*") if f.is_file() and f != inventory}
    forms = {f"pc{i + 1} {k}": v for i, pw in enumerate(passwords) for k, v in _forms(pw).items()}
    forms |= {f"spare{i} plain": pw.encode() for i, pw in enumerate(spare)}
    hits = [f"{where}: {name}" for where, blob in blobs.items() for name, form in forms.items() if form in blob]
    assert hits == []
