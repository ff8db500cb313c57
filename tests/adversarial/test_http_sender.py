"""The lean HTTP sender (``transport.http_sender``) over real loopback sockets: NTLM with message encryption,
HTTPS with the channel binding and Basic against the lab; gzip, huge bodies, redirects and NTLM loops from hostile
endpoints. The same ``WinRMConnection`` calls run over pypsrp's own sender where a figure is compared."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hostile_wsman import Hostile, HostileThread
from labkit import PASSWORD, room_spec, start_lab
from scripted_http import Scripted

from orchestrator.lab.addresses import Claim, claim_prefix
from orchestrator.lab.control_client import LabControl
from orchestrator.transport import guard, http_signin
from orchestrator.transport.connection import connection_spec
from orchestrator.transport.errors import AuthFailed, OperationTimeout, TransportError, Unreachable
from orchestrator.transport.http_sender import LeanSender
from orchestrator.transport.winrm import Cancelled, WinRMConnection

pytestmark = pytest.mark.timeout(120)
OS_QUERY = "SELECT Caption FROM Win32_OperatingSystem"


@pytest.fixture(scope="module")
def lab() -> Iterator[Any]:
    claim = claim_prefix()
    thread = start_lab({"rooms": [room_spec(claim, [{"name": "pc01"}, {"name": "pc02"}])], "seed": 3})
    try:
        yield thread
    finally:
        thread.stop()
        claim.release()


def _conn(host: Any, **extra: Any) -> WinRMConnection:
    hostvars = {
        "ansible_host": host.address,
        "ansible_port": 5985,
        "ansible_user": "administrator",
        "ansible_password": PASSWORD,
        **extra,
    }
    return WinRMConnection(connection_spec(host.name, hostvars))


def _http_requests(lab: Any) -> int:
    return int(LabControl(lab.control_url).stats()["http_requests"])


def test_ntlm_with_encryption_signs_in_once_and_keeps_the_connection(lab: Any) -> None:
    conn = _conn(lab.hosts[0])
    before = _http_requests(lab)
    try:
        for _ in range(5):
            assert conn.wql(OS_QUERY)
        assert conn.run_command("hostname").rc == 0
        assert isinstance(conn._client().transport.lean, LeanSender)
        sent = conn.requests_sent
    finally:
        conn.close()
    # One NTLM sign-in (anonymous 401, NEGOTIATE → CHALLENGE 401, AUTHENTICATE on the empty POST) on one kept
    # connection, then every SOAP message once; close() adds the shell's Delete.
    assert _http_requests(lab) - before == sent + 3 + 1


def test_lean_and_requests_senders_read_the_same_answers(lab: Any) -> None:
    answers = []
    for sender in ("lean", "requests"):
        conn = _conn(lab.hosts[1], kmsfleet_http=sender)
        try:
            answers.append((conn.wql(OS_QUERY), conn.run_command("echo %COMPUTERNAME%").stdout))
            assert isinstance(conn._client().transport.lean, LeanSender) is (sender == "lean")
        finally:
            conn.close()
    assert answers[0] == answers[1]


def test_a_connection_the_pc_closed_signs_in_again(lab: Any) -> None:
    host = lab.hosts[0]
    control = LabControl(lab.control_url)
    conn = _conn(host)
    try:
        assert conn.wql(OS_QUERY)
        control.power(host.name, False)  # the PC goes away: its connections are closed
        control.power(host.name, True)
        deadline = time.monotonic() + 10
        while control.host(host.name)["power"] != "on" and time.monotonic() < deadline:
            time.sleep(0.1)
        before = _http_requests(lab)
        assert conn.wql(OS_QUERY)
        assert _http_requests(lab) - before == 3 + 1  # a fresh sign-in, then the query once: nothing sent dead
    finally:
        conn.close()


def test_wrong_password_is_an_auth_failure_without_retries(lab: Any) -> None:
    before = _http_requests(lab)
    conn = _conn(lab.hosts[0], ansible_password="not-the-password")
    try:
        with pytest.raises(AuthFailed, match="refused the credentials"):
            conn.wql(OS_QUERY)
    finally:
        conn.close()
    assert _http_requests(lab) - before == 3  # one sign-in attempt: retries would lock domain accounts


@pytest.fixture(scope="module")
def https_lab() -> Iterator[Any]:
    claim = claim_prefix()
    room = room_spec(claim, [{"name": "pc01"}])
    thread = start_lab({"rooms": [room], "seed": 4})
    try:
        yield thread
    finally:
        thread.stop()
        claim.release()


def _https(lab: Any, **extra: Any) -> WinRMConnection:
    host = lab.hosts[0]
    return _conn(host, ansible_port=lab.lab.https_port, ansible_winrm_server_cert_validation=lab.cert_path, **extra)


def test_https_ntlm_binds_the_sign_in_to_the_certificate(https_lab: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bytes | None] = []
    original = http_signin.channel_bindings

    def spy(sock: socket.socket | None) -> Any:
        bindings = original(sock)
        seen.append(None if bindings is None else bindings.application_data)
        return bindings

    monkeypatch.setattr(http_signin, "channel_bindings", spy)
    conn = _https(https_lab)
    try:
        assert conn.run_command("hostname").rc == 0
        assert isinstance(conn._client().transport.lean, LeanSender)
    finally:
        conn.close()
    assert seen and all(v is not None and v.startswith(b"tls-server-end-point:") for v in seen), seen


def test_https_with_an_untrusted_certificate_is_refused(https_lab: Any) -> None:
    conn = _conn(https_lab.hosts[0], ansible_port=https_lab.lab.https_port)  # certifi's CAs: the lab's is not one
    try:
        with pytest.raises(Unreachable, match="TLS handshake failed") as caught:
            conn.wql(OS_QUERY)
    finally:
        conn.close()
    assert caught.value.cause == "tls"


def test_basic_over_https_and_refused_over_plain_http(https_lab: Any) -> None:
    conn = _https(https_lab, ansible_winrm_transport="basic")
    try:
        assert conn.wql(OS_QUERY)
        assert isinstance(conn._client().transport.lean, LeanSender)
    finally:
        conn.close()
    plain = _conn(https_lab.hosts[0], ansible_winrm_transport="basic", kmsfleet_allow_insecure_basic=True)
    try:
        with pytest.raises(AuthFailed):  # AllowUnencrypted=false: the PC takes Basic only over HTTPS
            plain.wql(OS_QUERY)
    finally:
        plain.close()


# ---------------------------------------------------------------------------------------------- hostile ends


@pytest.fixture(scope="module")
def claim() -> Iterator[Claim]:
    block = claim_prefix()
    try:
        yield block
    finally:
        block.release()


@pytest.fixture(scope="module")
def hostile(claim: Claim) -> Iterator[dict[str, Hostile]]:
    endpoints = [
        Hostile(kind, f"{claim.prefix}.9.{i + 2}") for i, kind in enumerate(("gzip_bomb", "huge_body", "ntlm_loop"))
    ]
    thread = HostileThread(endpoints)
    thread.start()
    try:
        yield {ep.kind: ep for ep in endpoints}
    finally:
        thread.stop()


def _hostile_conn(address: str) -> WinRMConnection:
    hostvars = {
        "ansible_host": address,
        "ansible_port": 5985,
        "ansible_user": "administrator",
        "ansible_password": PASSWORD,
        "ansible_winrm_operation_timeout_sec": 3,
        "ansible_winrm_read_timeout_sec": 5,
        "kmsfleet_host_budget_sec": 30,
    }
    return WinRMConnection(connection_spec("hostile", hostvars))


@pytest.mark.parametrize(
    ("kind", "error", "phrase", "cause"),
    [
        ("gzip_bomb", guard.EncodedResponse, "compressed", "encoded"),
        ("huge_body", guard.ResponseTooLarge, "over the limit of 16 MiB", "too_large"),
        ("ntlm_loop", guard.SignInLoop, "sign-in round 9", "signin_loop"),
    ],
)
def test_hostile_answers_are_refused_bounded(
    hostile: dict[str, Hostile], kind: str, error: type[TransportError], phrase: str, cause: str
) -> None:
    endpoint = hostile[kind]
    conn = _hostile_conn(endpoint.address)
    assert isinstance(conn._client().transport.lean, LeanSender)
    started = time.monotonic()
    try:
        with pytest.raises(error, match=phrase) as caught:
            conn.wql(OS_QUERY)
        assert caught.value.cause == cause
        with pytest.raises(error, match="not contacted again"):
            conn.wql(OS_QUERY)
    finally:
        conn.close()
    assert time.monotonic() - started < 10
    assert not endpoint.capped
    if kind == "huge_body":
        assert endpoint.sent < 40 * guard.MiB  # the connection was closed soon after the 16 MiB
    if kind == "ntlm_loop":
        assert endpoint.requests <= 1 + guard.MAX_SIGNIN_ROUNDS  # an anonymous POST, then at most 8 rounds


def test_redirect_is_refused_and_not_followed(claim: Claim) -> None:
    """Every request is answered with a 302 to another loopback port, whose connections are counted (none
    expected)."""
    trap = Scripted(f"{claim.prefix}.9.20", [])
    location = f"http://{trap.address}:{trap.port}/wsman"
    redirect = f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode()
    redirector = Scripted(f"{claim.prefix}.9.20", [redirect], hold=True, port=5985)
    conn = _hostile_conn(f"{claim.prefix}.9.20")
    try:
        with pytest.raises(guard.Redirected, match="redirect") as caught:
            conn.wql(OS_QUERY)
    finally:
        conn.close()
        redirector.close()
        trap.close()
    assert caught.value.cause == "redirect"
    assert redirector.accepted == 1 and trap.accepted == 0


def test_a_closed_port_is_refused_not_retried(claim: Claim) -> None:
    """Nothing listens on the address: the lean sender's connect error carries cause ``refused``."""
    conn = _hostile_conn(f"{claim.prefix}.9.21")
    assert isinstance(conn._client().transport.lean, LeanSender)
    try:
        with pytest.raises(Unreachable, match="connection refused") as caught:
            conn.wql(OS_QUERY)
    finally:
        conn.close()
    assert caught.value.cause == "refused"


def test_spent_budget_and_stop_are_raised_before_sending(lab: Any) -> None:
    """The host's deadline passed (cause ``budget``) or the run is stopping (cause ``cancelled``): the lean sender
    sends nothing."""
    before = _http_requests(lab)
    late = _conn(lab.hosts[1])
    late.deadline = time.monotonic() - 1  # spent before the first request
    stopped = _conn(lab.hosts[1])
    stopped.cancel.set()
    try:
        with pytest.raises(OperationTimeout) as spent:
            late._client().transport.send(b"<s/>")  # the lean sender's own check, below the connection's
        with pytest.raises(Cancelled) as cancelled:
            stopped._client().transport.send(b"<s/>")
    finally:
        late.close()
        stopped.close()
    assert spent.value.cause == "budget"
    assert cancelled.value.cause == "cancelled"
    assert _http_requests(lab) == before
