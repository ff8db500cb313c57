"""Red-team checks of the Ansible front end through the real CLI (no PC is contacted: ``debug`` tasks only).

- a whole inventory file encrypted with Ansible Vault: every value it holds is a secret, whatever its name
  (a vaulted ``vars`` file already was; the inventory was not);
- an ``ansible.cfg`` in a world-writable current directory is ignored, as Ansible does (anyone on the machine
  could have put it there, and its ``vault_password_file`` may be a program that kmsfleet would run);
- ``tasks_from: ../../x`` cannot load a file outside the role's ``tasks/`` folder (Ansible: "… as it is not
  inside the expected role path").
"""

from __future__ import annotations

import binascii
import hmac
import os
import sqlite3
from pathlib import Path

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from labkit import run_cli

VAULT_PASSWORD = b"red-team-vault-pw"
NOTE = "Vaulted-N0te-7731"

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - debug:
        msg: "note {{ kms_note }}"
    - debug: var=kms_note
"""


def vault_encrypt(plain: bytes, password: bytes) -> str:
    """Ansible Vault 1.1 (the documented format ``orchestrator.vault`` reads): PBKDF2-SHA256 → AES-256-CTR + HMAC."""
    salt = os.urandom(32)
    derived = PBKDF2HMAC(algorithm=hashes.SHA256(), length=80, salt=salt, iterations=10000).derive(password)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(derived[:32]), modes.CTR(derived[64:])).encryptor()
    data = encryptor.update(padded) + encryptor.finalize()
    mac = hmac.new(derived[32:64], data, "sha256").digest()
    inner = binascii.hexlify(b"\n".join(binascii.hexlify(part) for part in (salt, mac, data))).decode()
    return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(inner[i : i + 80] for i in range(0, len(inner), 80)) + "\n"


def _everything(tmp_path: Path, out: str) -> str:
    texts = [out]
    for path in tmp_path.rglob("*"):
        if path.is_file() and not path.name.endswith(".db"):
            texts.append(path.read_bytes().decode("utf-8", "replace"))
    db = tmp_path / "history.db"
    if db.exists():
        with sqlite3.connect(db) as conn:
            texts.append("\n".join(conn.iterdump()))
    return "\n".join(texts)


def test_a_value_from_a_vaulted_inventory_is_a_secret_everywhere(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    inventory = "all:\n  hosts:\n    pc01:\n      ansible_host: 127.0.0.1\n      kms_note: " + NOTE + "\n"
    (work / "inv.yml").write_text(vault_encrypt(inventory.encode(), VAULT_PASSWORD), encoding="utf-8")
    (work / "pw.txt").write_bytes(VAULT_PASSWORD + b"\n")
    (work / "play.yml").write_text(PLAYBOOK, encoding="utf-8")
    reports = tmp_path / "reports"
    reports.mkdir()
    env = {"KMSFLEET_DB": str(tmp_path / "history.db"), "TMPDIR": str(tmp_path)}
    runs = [
        run_cli(
            *("run", "play.yml", "-i", "inv.yml", "--vault-password-file", "pw.txt", "-vvv"),
            *("--report", str(reports / f"r.{fmt}")),
            env=env,
            cwd=work,
            timeout=120,
        )
        for fmt in ("json", "csv", "xml", "html")
    ]
    for done in runs:
        assert done.returncode == 0, done.stdout + done.stderr
        assert "note ********" in done.stdout, done.stdout
    out = "\n".join(d.stdout + d.stderr for d in runs)
    everything = _everything(tmp_path, out)
    assert NOTE not in everything
    assert "pc01" in out  # host names are not masked


def test_an_ansible_cfg_in_a_world_writable_directory_is_ignored(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # as /tmp without its sticky bit, or a classroom share
    marker = tmp_path / "script-ran"
    script = shared / "vault-pass.sh"
    script.write_text(f"#!/bin/sh\ntouch '{marker}'\necho pw\n", encoding="utf-8")
    script.chmod(0o755)
    (shared / "ansible.cfg").write_text("[defaults]\nvault_password_file = vault-pass.sh\n", encoding="utf-8")
    (shared / "inv.yml").write_text("all:\n  hosts:\n    pc01:\n      kms_note: plain\n", encoding="utf-8")
    (shared / "play.yml").write_text(PLAYBOOK, encoding="utf-8")
    env = {"KMSFLEET_DB": str(tmp_path / "history.db"), "HOME": str(tmp_path), "ANSIBLE_CONFIG": ""}
    done = run_cli("run", "play.yml", "-i", "inv.yml", env=env, cwd=shared, timeout=120)
    assert not marker.exists(), "the vault password program of an untrusted ansible.cfg was run"
    assert done.returncode == 0, done.stdout + done.stderr
    assert "world writable" in done.stdout + done.stderr


def test_tasks_from_cannot_leave_the_role(tmp_path: Path) -> None:
    (tmp_path / "roles" / "kms" / "tasks").mkdir(parents=True)
    (tmp_path / "roles" / "kms" / "tasks" / "main.yml").write_text("- debug: msg=inside\n", encoding="utf-8")
    (tmp_path / "outside.yml").write_text("- debug: msg=OUTSIDE-FILE-LOADED\n", encoding="utf-8")
    (tmp_path / "inv.yml").write_text("all:\n  hosts:\n    pc01:\n", encoding="utf-8")
    play = (
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - include_role:\n        name: kms\n        tasks_from: ../../../outside\n"
    )
    (tmp_path / "play.yml").write_text(play, encoding="utf-8")
    done = run_cli(
        "run", "play.yml", "-i", "inv.yml", env={"KMSFLEET_DB": str(tmp_path / "h.db")}, cwd=tmp_path, timeout=120
    )
    assert "OUTSIDE-FILE-LOADED" not in done.stdout + done.stderr
    assert done.returncode == 4, done.stdout + done.stderr
    assert "not inside" in done.stdout + done.stderr


def test_script_refuses_a_fifo_or_a_device_on_the_controller(tmp_path: Path) -> None:
    """``script: x.ps1`` where x.ps1 is a FIFO (reading it would wait forever) or a link to /dev/zero (reading it
    would fill the memory): refused before anything is read or sent."""
    os.mkfifo(tmp_path / "fifo.ps1")
    (tmp_path / "zero.ps1").symlink_to("/dev/zero")
    (tmp_path / "inv.yml").write_text(
        "all:\n  hosts:\n    pc01:\n      ansible_host: 127.0.0.1\n      ansible_port: 9\n"
        "      ansible_password: x-unused-pw\n      kmsfleet_host_budget_sec: 20\n",
        encoding="utf-8",
    )
    play = (
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - script: fifo.ps1\n      ignore_errors: true\n    - script: zero.ps1\n"
    )
    (tmp_path / "play.yml").write_text(play, encoding="utf-8")
    done = run_cli(
        "run", "play.yml", "-i", "inv.yml", "--report", str(tmp_path / "r.json"),
        env={"KMSFLEET_DB": str(tmp_path / "h.db")}, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    text = (tmp_path / "r.json").read_text(encoding="utf-8")
    assert done.returncode == 2, done.stdout + done.stderr
    for name in ("fifo.ps1", "zero.ps1"):
        assert f"script '{name}' is not a regular file" in text, text[-3000:]


def test_a_message_that_transforms_a_secret_shows_no_piece_of_it(tmp_path: Path) -> None:
    secret = "Zq7-Secr3t-Horse!"
    (tmp_path / "inv.yml").write_text(
        f'all:\n  hosts:\n    pc01:\n      ansible_host: 127.0.0.1\n      ansible_password: "{secret}"\n',
        encoding="utf-8",
    )
    shapes = (
        "{{ ansible_password | join(' ') }}",
        "{{ ansible_password | list }}",
        "{{ ansible_password | reverse | join }}",
        "{{ ansible_password[0:9] }}|{{ ansible_password[9:] }}",
    )
    tasks = "".join(f'    - debug:\n        msg: "{shape}"\n' for shape in shapes)
    (tmp_path / "play.yml").write_text(f"- hosts: all\n  gather_facts: false\n  tasks:\n{tasks}", encoding="utf-8")
    done = run_cli(
        "run", "play.yml", "-i", "inv.yml", "-v", "--report", str(tmp_path / "r.json"),
        env={"KMSFLEET_DB": str(tmp_path / "h.db")}, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    shown = done.stdout + (tmp_path / "r.json").read_text(encoding="utf-8")
    for piece in ("Z q 7", "'Z', 'q'", secret[::-1], "Zq7-Secr3", "t-Horse!"):
        assert piece not in shown, piece
