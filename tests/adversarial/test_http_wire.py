"""The lean sender's own HTTP/1.1 reading (``transport.http_wire``) over real loopback sockets: well-formed answers
framed as RFC 9112 says (Content-Length, chunked, until close, 1xx skipped, keep-alive rules), and hostile or
broken ones — over-long lines, too many header fields, bad status lines, bad chunk sizes, a host that closes in the
middle, one that trickles (``slow``) and one that goes silent (read ``timeout``) — refused with their causes."""

from __future__ import annotations

import http.client
import socket
import time

import pytest
from hostile_wsman import Hostile, HostileThread
from labkit import PASSWORD
from scripted_http import Scripted

from orchestrator.lab.addresses import Claim
from orchestrator.transport import guard, http_wire
from orchestrator.transport.connection import connection_spec
from orchestrator.transport.errors import OperationTimeout, ProtocolError, TransportError, Unreachable
from orchestrator.transport.http_sender import LeanSender
from orchestrator.transport.winrm import WinRMConnection

pytestmark = pytest.mark.timeout(120)
OS_QUERY = "SELECT Caption FROM Win32_OperatingSystem"
CHUNKED_OK = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


# ------------------------------------------------------------------------------ the reader, on a loopback pair


def _read(wire: bytes) -> tuple[http_wire.Head, bytes, bool]:
    """Read ``wire`` as a host sent it (then closed) over a loopback TCP connection: (head, body, keeps)."""
    server = Scripted("127.0.0.1", [wire])
    try:
        with socket.create_connection((server.address, server.port), 5) as sock, sock.makefile("rb") as reader:
            sock.sendall(b"POST /wsman HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
            head = http_wire.read_head(reader)
            body = http_wire.Body(reader, head)
            data = guard.read_capped("pc", body, 1024 * 1024, time.monotonic() + 10, time.monotonic())
    finally:
        server.close()
    return head, data, body.keeps_connection


def test_content_length_body_and_keep_alive() -> None:
    head, data, keeps = _read(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 5\r\n\r\nhello")
    assert (head.status, head.get("content-type"), data, keeps) == (200, "text/xml", b"hello", True)


def test_chunked_body_with_extensions_and_trailers() -> None:
    wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n1\r\n!\r\n0\r\nT: 1\r\n\r\n"
    assert _read(wire)[1:] == (b"hello!", True)


def test_interim_answers_are_skipped_and_repeated_fields_joined() -> None:
    wire = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Negotiate\r\nWWW-Authenticate: Kerberos\r\n"
        b"X-Folded: one\r\n two\r\nContent-Length: 0\r\n\r\n"
    )
    head, data, keeps = _read(wire)
    assert head.status == 401 and data == b"" and keeps
    assert head.get("www-authenticate") == "Negotiate, Kerberos"
    assert head.get("x-folded") == "one two"


@pytest.mark.parametrize(
    ("wire", "keeps"),
    [
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", False),
        (b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok", True),
        (b"HTTP/1.1 200 OK\r\n\r\nok", False),  # no length: the body ends where the host closes
        (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", False),
    ],
)
def test_which_answers_keep_the_connection(wire: bytes, keeps: bool) -> None:
    assert _read(wire)[1:] == (b"ok", keeps)


@pytest.mark.parametrize(
    ("wire", "error", "phrase"),
    [
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000 + b"\r\n\r\n", http_wire.BadAnswer, "longer than 65536"),
        (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n", http_wire.BadAnswer, "more than 100 header"),
        (b"HTTP/1.1 200 OK\r\n" + (b"X: " + b"a" * 60000 + b"\r\n") * 5 + b"\r\n", http_wire.BadAnswer, "262144"),
        (b"HTTP/1.1 100 Continue\r\n\r\n" * 20000, http_wire.BadAnswer, "262144"),
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", http_wire.BadAnswer, "not an HTTP/1.x status line"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", http_wire.BadAnswer, "not an HTTP/1.x status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", http_wire.BadAnswer, "malformed header"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello", http_wire.BadAnswer, "conflicting"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", http_wire.BadAnswer, "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", http_wire.BadAnswer, "chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", http_wire.BadAnswer, "chunk"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", http_wire.BadAnswer, "transfer coding"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1" + b";" * 70000,
            http_wire.BadAnswer,
            "chunk-size line",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + b"T: 1\r\n" * 200,
            http_wire.BadAnswer,
            "trailer",
        ),
        (b"", http_wire.PeerClosed, "without an answer"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", http_wire.PeerClosed, "middle of the answer's header"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", http_wire.PeerClosed, "body"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nshort", http_wire.PeerClosed, "body"),
    ],
)
def test_broken_answers_are_refused(wire: bytes, error: type[Exception], phrase: str) -> None:
    with pytest.raises(error, match=phrase):
        _read(wire)


def test_request_bytes_are_http_clients() -> None:
    """The same bytes ``http.client`` sends for the same request (captured over a loopback connection)."""
    fields = {"User-Agent": "Python PSRP Client", "Accept-Encoding": "identity", "Content-Type": "x"}
    server = Scripted("127.0.0.1", [b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])
    try:
        conn = http.client.HTTPConnection(server.address, server.port, timeout=5)
        conn.request("POST", "/wsman", b"body", fields)
        conn.getresponse().read()
        conn.close()
    finally:
        server.close()
    host = http_wire.host_field(server.address, server.port, 80)
    assert http_wire.request_bytes("/wsman", host, fields, b"body").split(b"\r\n\r\n")[0] == server.requests[0]
    assert http_wire.host_field("::1", 5986, 443) == "[::1]:5986"
    assert http_wire.host_field("10.0.0.1", 80, 80) == "10.0.0.1"


# ---------------------------------------------------------------------------- through the lean sender, end to end


def _conn(address: str, port: int = 5985) -> WinRMConnection:
    hostvars = {
        "ansible_host": address,
        "ansible_port": port,
        "ansible_user": "administrator",
        "ansible_password": PASSWORD,
        "ansible_winrm_operation_timeout_sec": 1,
        "ansible_winrm_read_timeout_sec": 2,
        "ansible_winrm_connection_timeout_sec": 1,
        "kmsfleet_host_budget_sec": 30,
    }
    return WinRMConnection(connection_spec("hostile", hostvars))


def _fails(address: str, port: int = 5985) -> tuple[TransportError, float]:
    conn = _conn(address, port)
    assert isinstance(conn._client().transport.lean, LeanSender)
    started = time.monotonic()
    try:
        with pytest.raises(TransportError) as caught:
            conn.wql(OS_QUERY)
    finally:
        conn.close()
    return caught.value, time.monotonic() - started


@pytest.mark.parametrize(
    ("wire", "kind", "cause", "phrase"),
    [
        (b"HTTP/1.1 401 Unauthorized\r\nX: " + b"a" * 70000 + b"\r\n\r\n", ProtocolError, "protocol", "65536"),
        (b"HTTP/1.1 401 Unauthorized\r\n" + b"X: y\r\n" * 101 + b"\r\n", ProtocolError, "protocol", "100 header"),
        (b"HTTP/1.1 OK\r\n\r\n", ProtocolError, "protocol", "not valid HTTP"),
        (b"HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", ProtocolError, "protocol", "chunk"),
        (b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 50\r\n\r\ncut", Unreachable, "dropped", "dropped"),
        (b"", Unreachable, "dropped", "dropped"),
    ],
)
def test_the_lean_sender_refuses_broken_answers_with_a_cause(
    lab_block: Claim, wire: bytes, kind: type[TransportError], cause: str, phrase: str
) -> None:
    server = Scripted(f"{lab_block.prefix}.9.30", [wire], port=5985)
    try:
        error, seconds = _fails(server.address)
    finally:
        server.close()
    assert isinstance(error, kind), error
    assert error.cause == cause and phrase in str(error), error
    assert "Traceback" not in str(error) and seconds < 10


def test_a_trickling_answer_is_cut_as_slow(lab_block: Claim) -> None:
    """Headers (then a body) trickled a byte every 0.2 s: each read succeeds, the exchange's wall time (connect +
    read timeout, 3 s) ends it — cause ``slow``, not retried."""
    endpoints = [Hostile("slow_headers", f"{lab_block.prefix}.9.31"), Hostile("slowloris", f"{lab_block.prefix}.9.32")]
    thread = HostileThread(endpoints)
    thread.start()
    try:
        for endpoint in endpoints:
            error, seconds = _fails(endpoint.address)
            assert isinstance(error, guard.SlowResponse), error
            assert error.cause == "slow" and "still arriving" in str(error)
            assert 2.5 < seconds < 8, seconds
            assert endpoint.requests == 1
    finally:
        thread.stop()


def test_a_silent_host_is_a_read_timeout(lab_block: Claim) -> None:
    """The host accepts and never answers: the read timeout (2 s) ends each try — cause ``timeout``."""
    server = Scripted(f"{lab_block.prefix}.9.33", [], hold=True, port=5985)
    try:
        error, seconds = _fails(server.address)
    finally:
        server.close()
    assert isinstance(error, OperationTimeout), error
    assert error.cause == "timeout" and "read timeout" in str(error)
    assert 1.5 < seconds < 12, seconds
