"""The Ansible-style corpus (tests/fixtures/ansible_corpus): which playbooks load unchanged, and the reason each
refused one gives. docs/ansible-compat.md quotes these figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import vault
from orchestrator.errors import InputError
from orchestrator.modules.base import REGISTRY
from orchestrator.playbook import load_playbook

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "ansible_corpus"
ROLES_PATH = [CORPUS / "roles", CORPUS / "shared_roles"]

RUNS = [
    "kms_site.yml",
    "styles/flat_kms.yml",
    "styles/office_loop.yml",
    "styles/roles_params.yml",
    "styles/include_role.yml",
    "styles/with_dict.yml",
    "styles/vars_prompt.yml",
    "styles/inline_vault.yml",
]
REFUSED = {
    "styles/become_runas.yml": "WinRM already signs in as the account given",
    "styles/environment.yml": "'environment' is not supported",
    "styles/delegate.yml": "'delegate_to' is not supported",
    "styles/galaxy_role.yml": "collections are not installed by kmsfleet",
}
if REGISTRY.get("win_service") is None:
    REFUSED["styles/service_restart.yml"] = "win_service is an Ansible module kmsfleet does not support (yet)"
else:
    RUNS.append("styles/service_restart.yml")


@pytest.fixture(autouse=True)
def corpus_vault_password() -> object:
    with vault.using_secrets([vault.secret_from_source(str(CORPUS / "vault-pass.txt"))]):
        yield None


@pytest.mark.parametrize("name", RUNS)
def test_loads_unchanged(name: str) -> None:
    book = load_playbook(CORPUS / name, REGISTRY, ROLES_PATH)
    assert book.plays


@pytest.mark.parametrize(("name", "reason"), sorted(REFUSED.items()))
def test_refused_with_a_reason(name: str, reason: str) -> None:
    with pytest.raises(InputError) as err:
        load_playbook(CORPUS / name, REGISTRY, ROLES_PATH)
    assert reason in str(err.value)
    assert err.value.location is not None and err.value.location.line > 0


def test_every_corpus_playbook_is_listed() -> None:
    found = {str(p.relative_to(CORPUS)) for p in CORPUS.glob("*.yml")} | {
        str(p.relative_to(CORPUS)) for p in (CORPUS / "styles").glob("*.yml")
    }
    assert found == set(RUNS) | set(REFUSED)
