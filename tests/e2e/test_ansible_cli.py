"""`kmsfleet run` with Ansible's command-line habits (real subprocess, no PC contacted): vault options,
ansible.cfg's inventory, vars_prompt without a terminal, every playbook error in one pass."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from labkit import run_cli

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "ansible_corpus"
VAULT = Path(__file__).resolve().parents[1] / "data" / "vault"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    work = tmp_path / "corpus"
    shutil.copytree(CORPUS, work)
    return work


def test_vault_file_without_a_password_says_how_to_give_one(corpus: Path) -> None:
    (corpus / "ansible.cfg").write_text("[defaults]\nroles_path = ./shared_roles\n")
    proc = run_cli("run", "kms_site.yml", "-i", "127.0.0.1,", "--no-history", cwd=corpus, env={"HOME": str(corpus)})
    assert proc.returncode == 4, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert "vars/secrets.yml: this file is encrypted with Ansible Vault" in out
    assert "--vault-password-file" in out and "Traceback" not in out


@pytest.mark.parametrize("option", ["--vault-password-file", "--vault-id"])
def test_vault_options_decrypt_vars_files(tmp_path: Path, option: str) -> None:
    shutil.copy(VAULT / "secrets-1.2-lab.yml", tmp_path / "secrets.yml")
    (tmp_path / "p.yml").write_text(
        "- hosts: all\n  gather_facts: false\n  vars_files: [secrets.yml]\n  tasks:\n"
        "    - name: port from the vault\n      assert: {that: kms_port == 1688}\n"
    )
    value = f"lab@{VAULT / 'lab-password.txt'}" if option == "--vault-id" else str(VAULT / "lab-password.txt")
    # the play contacts no PC (debug/assert only) but a host is needed: an address nothing listens on is fine
    # because no task connects
    proc = run_cli("run", "p.yml", "-i", "127.0.0.1,", "--no-history", option, value, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "S3cret-Vault-Value!" not in proc.stdout + proc.stderr


def test_inventory_from_ansible_cfg_and_none_at_all(tmp_path: Path) -> None:
    (tmp_path / "p.yml").write_text("- hosts: all\n  gather_facts: false\n  tasks: [{debug: msg=hi}]\n")
    proc = run_cli("run", "p.yml", "--no-history", cwd=tmp_path, env={"HOME": str(tmp_path)})
    assert proc.returncode == 4 and "no inventory: give -i INVENTORY" in proc.stdout + proc.stderr
    (tmp_path / "hosts.yml").write_text("all:\n  hosts:\n    pc01: {ansible_host: 127.0.0.1}\n")
    (tmp_path / "ansible.cfg").write_text("[defaults]\ninventory = hosts.yml\nnocows = 1\n")
    proc = run_cli("run", "p.yml", "--no-history", cwd=tmp_path, env={"HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "pc01" in proc.stdout


def test_vars_prompt_without_a_terminal(tmp_path: Path) -> None:
    (tmp_path / "p.yml").write_text(
        "- hosts: all\n  gather_facts: false\n  vars_prompt:\n    - name: kms_key\n      prompt: KMS key\n"
        "    - name: room\n      prompt: Room\n      default: r101\n  tasks:\n    - debug: {msg: '{{ room }}'}\n"
    )
    proc = run_cli("run", "p.yml", "-i", "127.0.0.1,", "--no-history", cwd=tmp_path)
    assert proc.returncode == 4
    assert "vars_prompt 'kms_key' needs an answer" in proc.stdout + proc.stderr
    assert "-e kms_key=" in proc.stdout + proc.stderr
    proc = run_cli("run", "p.yml", "-i", "127.0.0.1,", "--no-history", "-e", "kms_key=x", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_all_errors_in_one_pass_from_the_cli(tmp_path: Path) -> None:
    (tmp_path / "p.yml").write_text(
        "- hosts: all\n  tasks:\n    - win_updates: {category_names: [SecurityUpdates]}\n"
        "    - debug: msg=x\n      with_dict: settings\n    - win_comand: whoami\n"
    )
    proc = run_cli("run", "p.yml", "-i", "127.0.0.1,", "--no-history", cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4
    assert "p.yml:3:7: win_updates: not supported by kmsfleet: installing updates needs" in out  # with the reason
    assert "p.yml:5:7: 'with_dict' needs a mapping" in out
    assert "p.yml:6:7: unknown module 'win_comand' — did you mean 'win_command'?" in out
    assert "3 problems found in the playbook" in out
