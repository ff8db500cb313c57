"""Ansible Vault decryption against files made by ansible-core's own ansible-vault (tests/data/vault/PROVENANCE)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from orchestrator import vault
from orchestrator.errors import InputError, Location
from orchestrator.redact import redact
from orchestrator.yamlsource import load_yaml_file, load_yaml_text

DATA = Path(__file__).resolve().parents[1] / "data" / "vault"
PLAIN = {"kms_admin_password": "S3cret-Vault-Value!", "kms_port": 1688}


def secret(name: str = "password.txt", label: str = "default") -> vault.VaultSecret:
    return vault.secret_from_source(str(DATA / name), label)


def test_format_1_1_file_decrypts_to_the_mapping() -> None:
    with vault.using_secrets([secret()]):
        assert load_yaml_file(DATA / "secrets-1.1.yml") == PLAIN


def test_format_1_2_with_a_vault_id_label() -> None:
    lab = vault.parse_vault_id(f"lab@{DATA / 'lab-password.txt'}")
    assert lab.label == "lab"
    with vault.using_secrets([secret(), lab]):  # the labelled secret is tried first, the other fails its HMAC
        assert load_yaml_file(DATA / "secrets-1.2-lab.yml") == PLAIN


def test_inline_vault_value() -> None:
    with vault.using_secrets([secret()]):
        data = load_yaml_file(DATA / "inline.yml")
    assert data == {"inline_secret": "Inline-Vault-Secret-42"}


def test_decrypted_values_are_registered_secrets() -> None:
    with vault.using_secrets([secret()]):
        load_yaml_file(DATA / "secrets-1.1.yml")
        load_yaml_file(DATA / "inline.yml")
    assert "S3cret-Vault-Value!" not in redact("value S3cret-Vault-Value! here")
    assert "Inline-Vault-Secret-42" not in redact("x Inline-Vault-Secret-42")


def test_no_password_says_it_is_vault_encrypted_and_how_to_give_one() -> None:
    with vault.using_secrets([]), pytest.raises(InputError) as err:
        load_yaml_file(DATA / "secrets-1.1.yml")
    assert "encrypted with Ansible Vault" in err.value.message
    assert err.value.location is not None and err.value.location.file.endswith("secrets-1.1.yml")
    assert "--vault-password-file" in (err.value.hint or "")


def test_wrong_password_is_refused_not_garbage() -> None:
    with vault.using_secrets([secret("lab-password.txt")]), pytest.raises(InputError, match="no vault password"):
        load_yaml_file(DATA / "secrets-1.1.yml")


def test_inline_value_without_password_names_the_line() -> None:
    text = (DATA / "inline.yml").read_text()
    with vault.using_secrets([]), pytest.raises(InputError) as err:
        load_yaml_text(text, "group_vars/all.yml")
    assert err.value.location == Location("group_vars/all.yml", 1, 16)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("$ANSIBLE_VAULT;1.0;AES\n00\n", "kmsfleet reads 1.1 and 1.2"),
        ("$ANSIBLE_VAULT;1.1;AES256\nzz-not-hex\n", "damaged or truncated"),
        ("$ANSIBLE_VAULT\n", "bad header"),
    ],
)
def test_damaged_payloads(payload: str, message: str) -> None:
    with vault.using_secrets([secret()]), pytest.raises(InputError, match=message):
        vault.decrypt_text(payload, Location("f.yml"))


def test_password_script_is_run(tmp_path: Path) -> None:
    script = tmp_path / "pw.sh"
    script.write_text("#!/bin/sh\necho kmsfleet-test-vault\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    with vault.using_secrets([vault.secret_from_source(str(script))]):
        assert load_yaml_file(DATA / "secrets-1.1.yml") == PLAIN


def test_empty_password_file_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "pw.txt"
    empty.write_text("\n")
    os.chmod(empty, 0o600)
    with pytest.raises(InputError, match="empty"):
        vault.secret_from_source(str(empty))


def test_secret_repr_hides_the_password() -> None:
    assert "kmsfleet-test-vault" not in repr(secret())


def test_a_whole_inventory_file_may_be_vault_encrypted() -> None:
    from orchestrator.inventory.loader import load_inventory

    with vault.using_secrets([]), pytest.raises(InputError, match="inventory file is encrypted"):
        load_inventory([str(DATA / "inventory.yml")])
    with vault.using_secrets([secret()]):
        inv = load_inventory([str(DATA / "inventory.yml")])
    assert list(inv.hosts) == ["pc01"]
    assert inv.host_vars("pc01")["ansible_password"] == "Inventory-Vault-Pw-7"
