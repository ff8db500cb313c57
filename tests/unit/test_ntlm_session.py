"""NTLM sealing of both sides (orchestrator/ntlm_session.py) against pyspnego: as the lab's acceptor, requests
pyspnego's client sealed open and answers it seals verify at that client; as the client's initiator, pyspnego's
acceptor opens what it seals and it opens what that acceptor seals; in order over many messages, both directions
interleaved; a tampered or replayed message does not verify (a ``ValueError``, which the lean sender turns into a
ProtocolError); contexts the module does not model keep pyspnego's own sealing. The end-to-end proof is every
test that talks to the lab: both ends seal with this module and Windows' recorded answers (test_recorded_*)
open with it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import spnego

from orchestrator.lab.wsman import encryption
from orchestrator.lab.wsman.auth import CredentialStore, NtlmAcceptor
from orchestrator.ntlm_session import NtlmSession, SealError, session_security

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


@pytest.mark.parametrize("protocol", ["ntlm", "negotiate"])
def test_the_initiator_side_agrees_with_pyspnego_both_ways(store: CredentialStore, protocol: str) -> None:
    """The client's role: what it seals, pyspnego's acceptor opens; what that acceptor seals, it opens."""
    client, acceptor = _signed_in(store, protocol=protocol)
    session = session_security(client)
    assert isinstance(session, NtlmSession)
    for i in range(20):
        request = f"<s:Envelope>request {i}</s:Envelope>".encode() * (i % 5 + 1)
        mine = session.wrap_winrm(request)
        assert len(mine.header) == 16 and mine.padding_length == 0 and mine.data != request
        assert acceptor.unwrap_winrm(mine.header, mine.data) == request
        for j in range(i % 3):  # several answers to one request keep both counters in step
            answer = f"<s:Envelope>answer {i}.{j}</s:Envelope>".encode() * (j + 2)
            theirs = acceptor.wrap_winrm(answer)
            assert session.unwrap_winrm(theirs.header, theirs.data) == answer


def test_the_initiator_takes_over_pyspnegos_stream_and_counter(store: CredentialStore) -> None:
    """A context pyspnego already sealed with: this module goes on with the same RC4 stream and the next sequence
    number, so the acceptor opens pyspnego's message and then this module's."""
    client, _acceptor = _signed_in(store)
    first = client.wrap_winrm(b"<s:Envelope>one</s:Envelope>")
    assert _acceptor.unwrap_winrm(first.header, first.data) == b"<s:Envelope>one</s:Envelope>"
    session = session_security(client)
    second = session.wrap_winrm(b"<s:Envelope>two</s:Envelope>")
    assert second.header[12:16] == (1).to_bytes(4, "little")  # the next sequence number after pyspnego's
    assert _acceptor.unwrap_winrm(second.header, second.data) == b"<s:Envelope>two</s:Envelope>"


def test_a_tampered_answer_at_the_client_is_a_value_error(store: CredentialStore) -> None:
    client, acceptor = _signed_in(store)
    session = session_security(client)
    answer = acceptor.wrap_winrm(b"<s:Envelope>answer</s:Envelope>")
    with pytest.raises(SealError, match="does not verify") as caught:
        session.unwrap_winrm(answer.header, answer.data[:-1] + bytes([answer.data[-1] ^ 0x20]))
    assert isinstance(caught.value, ValueError)
