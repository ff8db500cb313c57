"""What ``kmsfleet run`` takes from ansible.cfg and the vault options, as ``ansible-playbook`` does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import typer

from orchestrator.ansiblecfg import AnsibleConfig, load_config
from orchestrator.errors import InputError

VAULT_PASSWORD_FILE = typer.Option(
    [], "--vault-password-file", "--vault-pass-file", help="File holding the Ansible Vault password (repeatable)."
)
VAULT_ID = typer.Option(
    [], "--vault-id", help="Vault identity: FILE, prompt, or label@FILE, label@prompt (repeatable)."
)
ASK_VAULT_PASS = typer.Option(False, "-J", "--ask-vault-pass", "--ask-vault-password", help="Ask the vault password.")
REMOTE_USER = typer.Option(None, "-u", "--user", help="WinRM user for PCs without ansible_user (as ansible -u).")


def read_config(notes: list[str] | None = None) -> AnsibleConfig:
    config = load_config()
    if notes is not None:
        notes.extend(config.notes)
    return config


def setup_vault(config: AnsibleConfig, password_files: Sequence[str], vault_ids: Sequence[str], ask: bool) -> None:
    """Give the process its vault passwords (before any file is read)."""
    from orchestrator import vault

    secrets = [vault.parse_vault_id(v) for v in vault_ids]
    secrets += [vault.secret_from_source(f) for f in password_files]
    if ask:
        secrets.append(vault.secret_from_source("prompt", prompt=True))
    if not secrets:
        secrets += [vault.parse_vault_id(v) for v in config.vault_identity_list]
        if config.vault_password_file is not None:
            secrets.append(vault.secret_from_source(str(config.vault_password_file)))
    vault.set_secrets(secrets)


def inventory_sources(given: Sequence[str], config: AnsibleConfig) -> list[str]:
    if given:
        return list(given)
    if config.inventory:
        return list(config.inventory)
    raise InputError("no inventory: give -i INVENTORY", hint="or set inventory = FILE under [defaults] in ansible.cfg")


def connection_defaults(config: AnsibleConfig, user: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if user or config.remote_user:
        out["ansible_user"] = user or config.remote_user
    if config.timeout is not None:
        out["ansible_winrm_connection_timeout_sec"] = config.timeout
    return out


__all__ = [
    "ASK_VAULT_PASS",
    "REMOTE_USER",
    "VAULT_ID",
    "VAULT_PASSWORD_FILE",
    "connection_defaults",
    "inventory_sources",
    "read_config",
    "setup_vault",
]
