"""``transport.sealing`` gives what pypsrp's ``WinRMEncryption`` gives: the same sealed bytes, the same plain
message (or an error where pypsrp raises one) for any answer — checked against pypsrp itself with a stand-in
context whose "encryption" is deterministic, and over real NTLM contexts (spnego client and acceptor) both ways.
Also: the NTLM password hashes handed to spnego are the ones it computes itself."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import spnego
from hypothesis import given, settings
from hypothesis import strategies as st
from pypsrp.encryption import WinRMEncryption
from spnego._ntlm import _NTLMCredential

from orchestrator.redact import redact_text
from orchestrator.transport import http_signin, sealing

SPNEGO = WinRMEncryption.SPNEGO
BOUNDARY = "Encrypted Boundary"


class Mirror:
    """A deterministic stand-in for an NTLM context: the 'signature' is 16 bytes of the length, the 'sealed' data
    the message reversed (padding 0)."""

    def wrap_winrm(self, data: bytes) -> tuple[bytes, bytes, int]:
        return struct.pack("<QQ", len(data), 7), data[::-1], 0

    def unwrap_winrm(self, header: bytes, data: bytes) -> bytes:
        if header != struct.pack("<QQ", len(data), 7):
            raise ValueError("bad signature")
        return data[::-1]


def _pypsrp() -> WinRMEncryption:
    return WinRMEncryption(Mirror(), SPNEGO)


def _outcome(unwrap: object, body: bytes) -> tuple[str, bytes]:
    try:
        return "ok", unwrap(body)  # type: ignore[operator]
    except (ValueError, IndexError, struct.error, Exception) as exc:
        return "error", type(exc).__name__.encode()


_PIECES = [b"--Encrypted Boundary\r\n", b"--Encrypted Boundary--\r\n", b"-- Encrypted Boundary\r\n", b"\r\n", b"--"]
_MESSAGES = st.lists(st.one_of(st.binary(max_size=40), st.sampled_from(_PIECES)), max_size=8).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(_MESSAGES)
def test_sealed_bytes_are_pypsrps(message: bytes) -> None:
    content_type, expected = _pypsrp().wrap_message(message)
    assert content_type == sealing.CONTENT_TYPE
    assert sealing.seal(_pypsrp(), message) == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(_MESSAGES, min_size=1, max_size=3))
def test_unsealed_messages_are_pypsrps(messages: list[bytes]) -> None:
    body = b"".join(_pypsrp()._wrap_message(m) for m in messages) + b"--Encrypted Boundary--\r\n"
    mine = sealing.unseal(_pypsrp(), body, BOUNDARY)
    assert mine == _pypsrp().unwrap_message(body, BOUNDARY) == b"".join(messages)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=30), st.sampled_from(_PIECES)), max_size=10).map(b"".join))
def test_any_answer_gives_pypsrps_result(body: bytes) -> None:
    """Garbage, cut and spaced framings included: the same plain message, or an error on both sides."""
    mine = _outcome(lambda b: sealing.unseal(_pypsrp(), b, BOUNDARY), body)
    theirs = _outcome(lambda b: _pypsrp().unwrap_message(b, BOUNDARY), body)
    assert mine[0] == theirs[0]
    if mine[0] == "ok":
        assert mine == theirs


def test_a_spaced_boundary_is_read_as_pypsrp_reads_it() -> None:
    sealed = _pypsrp()._wrap_message(b"<s/>").replace(b"--Encrypted", b"-- Encrypted")
    body = sealed + b"--Encrypted Boundary--\r\n"
    assert sealing.unseal(_pypsrp(), body, BOUNDARY) == b"<s/>"


def test_a_wrong_length_is_refused_as_pypsrp_refuses_it() -> None:
    body = _pypsrp()._wrap_message(b"<s/>").replace(b"Length=4", b"Length=5") + b"--Encrypted Boundary--\r\n"
    with pytest.raises(Exception, match="does not match the expected length"):
        sealing.unseal(_pypsrp(), body, BOUNDARY)


@pytest.fixture
def ntlm_pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[WinRMEncryption, WinRMEncryption]:
    """A signed-in NTLM client and acceptor (spnego, no network), each as pypsrp's encryption helper."""
    users = tmp_path / "ntlm_users"
    users.write_text("LAB:administrator:Lab-Passw0rd!\n", encoding="utf-8")
    monkeypatch.setenv("NTLM_USER_FILE", str(users))
    user, secret = http_signin.credentials("LAB\\administrator", "Lab-Passw0rd!")
    client = spnego.client(user, secret, hostname="pc", service="host", protocol="negotiate")
    server = spnego.server(protocol="negotiate")
    token = client.step()
    while not client.complete:
        answer = server.step(token)
        token = client.step(answer)
    if token:
        server.step(token)
    assert server.complete
    return WinRMEncryption(client, SPNEGO), WinRMEncryption(server, SPNEGO)


def test_real_ntlm_both_ways(ntlm_pair: tuple[WinRMEncryption, WinRMEncryption]) -> None:
    client, server = ntlm_pair
    for size in (0, 1, 500, 70000):
        message = (b"<s:Envelope>%d</s:Envelope>" % size) + b"x" * size
        assert server.unwrap_message(sealing.seal(client, message), BOUNDARY) == message
        _, answer = server.wrap_message(message[::-1])
        assert sealing.unseal(client, answer, BOUNDARY) == message[::-1]


def test_the_cached_ntlm_hashes_are_spnegos() -> None:
    user, secret = http_signin.credentials("LAB\\administrator", "pässword")
    assert secret is None and isinstance(user, list)
    ours = _NTLMCredential(user[0])
    theirs = _NTLMCredential(spnego.Password("LAB\\administrator", "pässword"))
    assert (ours.username, ours.domain, ours.lm_hash, ours.nt_hash) == (
        theirs.username,
        theirs.domain,
        theirs.lm_hash,
        theirs.nt_hash,
    )
    assert isinstance(user[1], spnego.Password)  # Kerberos, where spnego has it, still gets the password
    hash_pair = "0" * 32 + ":" + "1" * 32
    assert http_signin.credentials("u", hash_pair) == ("u", hash_pair)  # spnego's own reading of a hash pair
    assert http_signin.credentials(None, None) == (None, None)


def test_the_cached_ntlm_hashes_are_masked_like_the_password() -> None:
    """An NT hash signs in as well as the password (pass-the-hash): text carrying it is masked."""
    user, _ = http_signin.credentials("LAB\\administrator", "Hash-Me-0nce!")
    assert isinstance(user, list)
    nt_hash = _NTLMCredential(user[0]).nt_hash.hex()
    text = f"spnego said: NTLMHash(nt_hash='{nt_hash}') and {nt_hash.upper()}"
    assert nt_hash not in redact_text(text).lower()
