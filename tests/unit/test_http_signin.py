"""The lean sender's sign-in rules (``transport.http_signin``), as pypsrp 0.9's ``HTTPNegotiateAuth`` applies them;
the same rules over real sockets: tests/adversarial/test_http_sender.py."""

from __future__ import annotations

import base64
import socket
import ssl
from pathlib import Path

import pytest
from pypsrp.exceptions import AuthenticationError
from requests.auth import _basic_auth_str

from orchestrator.errors import InputError
from orchestrator.transport import http_signin
from orchestrator.transport.connection import connection_spec
from orchestrator.transport.http_sender import supports, tls_context


@pytest.mark.parametrize(
    ("header", "scheme"),
    [
        ("Negotiate, Kerberos", "Negotiate"),  # what WinRM sends: Negotiate first
        ("Kerberos, Negotiate", "Negotiate"),  # pypsrp's order, not the host's
        ("NTLM", "NTLM"),
        ("kerberos", "Kerberos"),
        ('Basic realm="WSMAN", Negotiate', "Negotiate"),
    ],
)
def test_offered_scheme(header: str, scheme: str) -> None:
    assert http_signin.offered_scheme(header) == scheme


@pytest.mark.parametrize("header", [None, "", 'Basic realm="WSMAN"', "Digest"])
def test_no_negotiate_scheme_offered(header: str | None) -> None:
    with pytest.raises(AuthenticationError, match="did not response with one of"):
        http_signin.offered_scheme(header)


@pytest.mark.parametrize(
    ("configured", "scheme", "protocol"),
    [
        ("negotiate", "Negotiate", "negotiate"),
        ("negotiate", "NTLM", "ntlm"),
        ("ntlm", "Negotiate", "ntlm"),
        ("ntlm", "NTLM", "ntlm"),
        ("kerberos", "Negotiate", "kerberos"),
    ],
)
def test_protocol_for(configured: str, scheme: str, protocol: str) -> None:
    assert http_signin.protocol_for(configured, scheme) == protocol


def test_protocol_in_another_named_scheme_is_refused() -> None:
    with pytest.raises(AuthenticationError, match="incompatible"):
        http_signin.protocol_for("ntlm", "Kerberos")


def test_tokens_both_ways() -> None:
    token = b"NTLMSSP\x00\x02\x00\x00\x00rest"
    header = http_signin.token_header("Negotiate", token)
    assert header == "Negotiate " + base64.b64encode(token).decode()
    assert http_signin.answer_token(header) == token
    assert http_signin.answer_token("Negotiate") == b""  # no token: the sign-in is over
    assert http_signin.answer_token(None) is None
    assert http_signin.answer_token("Basic realm=x") is None
    with pytest.raises(AuthenticationError, match="not base64"):
        http_signin.answer_token("Negotiate abc")


@pytest.mark.parametrize(("user", "password"), [("administrator", "Lab-Passw0rd!"), ("lärare", "pässwörd")])
def test_basic_header_as_requests_builds_it(user: str, password: str) -> None:
    assert http_signin.basic_header(user, password) == _basic_auth_str(user, password)


def test_basic_header_beyond_latin1_is_utf8() -> None:
    header = http_signin.basic_header("教師", "密碼")
    assert base64.b64decode(header.split(" ", 1)[1]).decode("utf-8") == "教師:密碼"


def test_no_channel_binding_on_plain_tcp() -> None:
    left, right = socket.socketpair()
    with left, right:
        assert http_signin.channel_bindings(left) is None
    assert http_signin.channel_bindings(None) is None


def test_sender_variable() -> None:
    base = {"ansible_host": "127.0.1.5", "ansible_user": "a", "ansible_password": "p"}
    assert connection_spec("pc", base).http == "lean"
    assert connection_spec("pc", {**base, "kmsfleet_http": "Requests"}).http == "requests"
    assert connection_spec("pc", {**base, "kmsfleet_http": ""}).http == "lean"  # an unset variable renders as ""
    with pytest.raises(InputError, match="kmsfleet_http must be lean or requests"):
        connection_spec("pc", {**base, "kmsfleet_http": "curl"})


class _Transport:
    def __init__(self, auth: str, proxy: str | None = None) -> None:
        self.auth = auth
        self.proxy = proxy


@pytest.mark.parametrize(
    ("auth", "proxy", "lean"),
    [
        ("ntlm", None, True),
        ("negotiate", None, True),
        ("basic", None, True),
        ("kerberos", None, False),  # no KDC to test against: pypsrp's sender
        ("certificate", None, False),  # the lab has no certificate authentication: pypsrp's sender
        ("credssp", None, False),  # CredSSP's TLS-in-HTTP stays with pypsrp
        ("ntlm", "http://proxy.invalid:3128", False),  # proxies stay with requests
    ],
)
def test_which_hosts_the_lean_sender_serves(auth: str, proxy: str | None, lean: bool) -> None:
    assert supports(_Transport(auth, proxy)) is lean


def test_tls_contexts_as_requests_verifies(tmp_path: Path) -> None:
    ignore = tls_context(False)
    assert ignore.verify_mode == ssl.CERT_NONE and not ignore.check_hostname
    assert tls_context(False) is ignore  # one per setting per process: loading a CA bundle costs milliseconds
    validate = tls_context(True)
    assert validate.verify_mode == ssl.CERT_REQUIRED and validate.check_hostname
    with pytest.raises(OSError, match="invalid path"):
        tls_context(str(tmp_path / "no-such-ca.pem"))
