"""The lab's own NTLM sealing (lab/wsman/ntlm_seal.py) against pyspnego's client: requests the client sealed
open, answers the lab sealed verify at the client, in order over many messages; a tampered or replayed message
does not verify; contexts the module does not model keep pyspnego's own sealing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import spnego

from orchestrator.lab.wsman import encryption
from orchestrator.lab.wsman.auth import CredentialStore, NtlmAcceptor
from orchestrator.lab.wsman.ntlm_seal import NtlmSession, session_security

PASSWORD = "Lab-Passw0rd!"


@pytest.fixture
def store() -> Iterator[CredentialStore]:
    s = CredentialStore()
    yield s
    s.close()


def _signed_in(store: CredentialStore, protocol: str = "ntlm") -> tuple[Any, Any]:
    path = store.path_for("administrator", PASSWORD, "PC07")
    acceptor = NtlmAcceptor.new_context(path)
    client = spnego.client("administrator", PASSWORD, protocol=protocol)
    token = client.step()
    while not acceptor.complete:
        answer = NtlmAcceptor.step(acceptor, token or b"", path, "PC07")
        if answer is not None and not client.complete:
            token = client.step(answer)
    return client, acceptor


def test_both_directions_agree_with_pyspnego_over_many_messages(store: CredentialStore) -> None:
    client, acceptor = _signed_in(store)
    session = session_security(acceptor)
    assert isinstance(session, NtlmSession)
    for i in range(12):
        request = f"<s:Envelope>request {i}</s:Envelope>".encode() * (i + 1)
        sealed = client.wrap_winrm(request)
        assert sealed.data != request
        assert session.unwrap_winrm(sealed.header, sealed.data) == request
        answer = f"<s:Envelope>answer {i}</s:Envelope>".encode() * (i + 2)
        mine = session.wrap_winrm(answer)
        assert len(mine.header) == 16 and mine.padding_length == 0
        assert client.unwrap_winrm(mine.header, mine.data) == answer


def test_the_multipart_body_round_trips_through_encryption(store: CredentialStore) -> None:
    client, acceptor = _signed_in(store, protocol="negotiate")
    session = session_security(acceptor)
    assert isinstance(session, NtlmSession)
    body = encryption.wrap(session, b"<s:Envelope/>")
    start = body.index(b"octet-stream\r\n") + len(b"octet-stream\r\n")
    payload = body[start : body.rindex(b"--Encrypted Boundary--")]
    size = int.from_bytes(payload[:4], "little")
    assert client.unwrap_winrm(payload[4 : 4 + size], payload[4 + size :]) == b"<s:Envelope/>"


def test_a_tampered_message_does_not_verify(store: CredentialStore) -> None:
    client, acceptor = _signed_in(store)
    session = session_security(acceptor)
    sealed = client.wrap_winrm(b"<s:Envelope>original</s:Envelope>")
    flipped = bytes([sealed.data[0] ^ 1]) + sealed.data[1:]
    with pytest.raises(Exception, match="does not verify"):
        session.unwrap_winrm(sealed.header, flipped)


def test_a_replayed_message_does_not_verify(store: CredentialStore) -> None:
    client, acceptor = _signed_in(store)
    session = session_security(acceptor)
    sealed = client.wrap_winrm(b"<s:Envelope>once</s:Envelope>")
    assert session.unwrap_winrm(sealed.header, sealed.data) == b"<s:Envelope>once</s:Envelope>"
    with pytest.raises(Exception, match="does not verify"):
        session.unwrap_winrm(sealed.header, sealed.data)


def test_an_incomplete_context_keeps_pyspnego(store: CredentialStore) -> None:
    acceptor = NtlmAcceptor.new_context(store.path_for("administrator", PASSWORD, "PC07"))
    assert session_security(acceptor) is acceptor
    other = object()
    assert session_security(other) is other
