"""The lab's NTLM CHALLENGE names the simulated PC as a workgroup Windows PC names itself (MS-NLMP 2.2.1.2,
2.2.2.1): TargetName, MsvAvNbDomainName and MsvAvNbComputerName = the computer name, MsvAvDnsDomainName and
MsvAvDnsComputerName = its host name; and the PC's local account signs in as ``PC\\user``, ``.\\user`` or a bare
``user`` — over the real lab (pypsrp, NTLM with encryption) and at the acceptor itself."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import spnego
from spnego._ntlm_raw.messages import AvId, Challenge
from spnego.exceptions import SpnegoError
from wirekit import StartLab

from orchestrator.lab.wsman.auth import CredentialStore, NtlmAcceptor
from orchestrator.lab.wsman.ntlm_identity import NtlmIdentity, announce
from orchestrator.transport.connection import ConnectionSpec
from orchestrator.transport.winrm import WinRMConnection

PASSWORD = "Lab-Passw0rd!"


@pytest.fixture
def store() -> Iterator[CredentialStore]:
    s = CredentialStore()
    yield s
    s.close()


def _handshake(store: CredentialStore, user: str, password: str, computer: str) -> tuple[Challenge, str]:
    path = store.path_for("administrator", PASSWORD, computer)
    acceptor = NtlmAcceptor.new_context(path)
    client = spnego.client(user, password, protocol="ntlm")
    challenge_token = NtlmAcceptor.step(acceptor, client.step() or b"", path, computer)
    assert challenge_token is not None
    challenge = Challenge.unpack(challenge_token)
    NtlmAcceptor.step(acceptor, client.step(challenge_token) or b"", path, computer)
    assert acceptor.complete
    return challenge, str(acceptor.client_principal)


def test_the_challenge_names_the_pc_not_the_machine_running_the_lab(store: CredentialStore) -> None:
    challenge, _ = _handshake(store, "administrator", PASSWORD, "PC07")
    info = challenge.target_info
    assert info is not None
    assert challenge.target_name == "PC07"
    assert [info[AvId.nb_domain_name], info[AvId.nb_computer_name]] == ["PC07", "PC07"]
    assert [info[AvId.dns_domain_name], info[AvId.dns_computer_name]] == ["PC07", "PC07"]
    assert AvId.timestamp in info


@pytest.mark.parametrize("user", ["PC07\\administrator", "pc07\\Administrator", ".\\administrator", "administrator"])
def test_local_account_forms_sign_in(store: CredentialStore, user: str) -> None:
    _, principal = _handshake(store, user, PASSWORD, "PC07")
    assert principal.lower().endswith("administrator")


def test_a_wrong_password_is_refused(store: CredentialStore) -> None:
    with pytest.raises(SpnegoError):
        _handshake(store, "PC07\\administrator", "wrong", "PC07")


def test_long_names_are_cut_to_fifteen_netbios_characters() -> None:
    identity = NtlmIdentity.workgroup("classroom-pc-0042")
    assert identity.netbios_name == "CLASSROOM-PC-00"
    assert identity.dns_name == "classroom-pc-0042"


def test_without_a_computer_name_pyspnego_is_unchanged(store: CredentialStore) -> None:
    path = store.path_for("administrator", PASSWORD, "PC07")
    acceptor = NtlmAcceptor.new_context(path)
    client = spnego.client("administrator", PASSWORD, protocol="ntlm")
    with announce(None):
        challenge = Challenge.unpack(NtlmAcceptor.step(acceptor, client.step() or b"", path) or b"")
    assert challenge.target_name == socket.gethostname().upper()


def test_the_lab_accepts_the_domain_from_its_challenge(start_lab: StartLab) -> None:
    """Over the wire: sign in to a lab PC as ``COMPUTERNAME\\administrator`` (what go-ntlmssp sends after
    reading the CHALLENGE) with pypsrp, NTLM and message encryption."""
    lab = start_lab(hosts=[{"name": "pc01"}])
    host = lab.hosts[0]
    spec = ConnectionSpec(
        host=host.name,
        address=host.address,
        port=5985,
        scheme="http",
        transport="ntlm",
        user=f"{host.computer_name}\\administrator",
        password=PASSWORD,
    )
    conn = WinRMConnection(spec)
    try:
        result = conn.run_command("hostname")
    finally:
        conn.close()
    assert (result.rc, result.stdout) == (0, host.computer_name + "\r\n")
