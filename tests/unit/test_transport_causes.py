"""Transport errors carry a typed ``cause`` set where they are raised, and the retry policy decides by it (never
by the message's wording): unit checks of the mapping and the policy, then the real transport over loopback
sockets — a refused port is tried once, a connection dropped by the peer is tried again on a fresh connection."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest
import requests

from orchestrator.transport.connection import ConnectionSpec, connection_spec
from orchestrator.transport.errormap import map_exception
from orchestrator.transport.errors import (
    CAUSES,
    AuthFailed,
    OperationTimeout,
    ProtocolError,
    TransportError,
    Unreachable,
    wsman_fault,
)
from orchestrator.transport.guard import EncodedResponse, Redirected, ResponseTooLarge, SignInLoop, SlowResponse
from orchestrator.transport.retry import RetryPolicy, is_transient
from orchestrator.transport.winrm import Cancelled, WinRMConnection

SPEC = connection_spec(
    "pc05", {"ansible_host": "127.0.1.5", "ansible_user": "administrator", "ansible_password": "S3cret-pw!"}
)


@pytest.mark.parametrize(
    ("exc", "cause"),
    [
        (requests.exceptions.SSLError("bad cert"), "tls"),
        (requests.exceptions.ConnectTimeout("slow"), "timeout"),
        (requests.exceptions.ReadTimeout("slow"), "timeout"),
        (requests.exceptions.ConnectionError(ConnectionRefusedError(111, "Connection refused")), "refused"),
        (requests.exceptions.ConnectionError("reset by peer"), "dropped"),
        (requests.exceptions.ChunkedEncodingError("bad chunk"), "dropped"),
        (requests.exceptions.InvalidHeader("bad header"), "protocol"),
        (KeyError("127.0.1.5"), "protocol"),
        (OSError(104, "Connection reset by peer"), "dropped"),
    ],
)
def test_mapped_errors_carry_their_cause(exc: BaseException, cause: str) -> None:
    err = map_exception(SPEC, exc)
    assert err.cause == cause
    assert err.cause in CAUSES


def test_every_error_class_has_a_cause_of_its_own() -> None:
    assert AuthFailed("pc", "x").cause == "auth"
    assert OperationTimeout("pc", "x").cause == "timeout"
    assert OperationTimeout("pc", "x", cause="budget").cause == "budget"
    assert Cancelled("pc", "x").cause == "cancelled"
    assert wsman_fault("pc", 0x80338029, "timed out").cause == "fault"
    hostile = [ResponseTooLarge, EncodedResponse, SignInLoop, SlowResponse, Redirected]
    assert [cls("pc", "x").cause for cls in hostile] == ["too_large", "encoded", "signin_loop", "slow", "redirect"]


def test_again_keeps_type_and_cause() -> None:
    err = ResponseTooLarge("pc", "too big").again("too big (earlier)")
    assert type(err) is ResponseTooLarge and err.cause == "too_large" and err.message == "too big (earlier)"


@pytest.mark.parametrize(
    ("err", "transient"),
    [
        (Unreachable("pc", "any words at all", cause="refused"), False),
        (Unreachable("pc", "any words at all", cause="tls"), False),
        (Unreachable("pc", "connection refused (words that once decided)", cause="dropped"), True),
        (OperationTimeout("pc", "the host's time budget ran out", cause="timeout"), True),
        (OperationTimeout("pc", "read timeout", cause="budget"), False),
        (ProtocolError("pc", "x", cause="timeout"), True),
        (AuthFailed("pc", "x"), False),
        (Cancelled("pc", "x"), False),
        (wsman_fault("pc", 0x80338029, "w:TimedOut"), True),
        (wsman_fault("pc", 0x803381A5, "max shells"), False),
    ],
)
def test_the_retry_decision_reads_the_cause_not_the_words(err: TransportError, transient: bool) -> None:
    assert is_transient(err) is transient


def test_policy_retries_only_read_only_calls_and_stops_at_its_attempts() -> None:
    calls: list[str] = []
    resets: list[int] = []

    def failing() -> None:
        calls.append("x")
        raise Unreachable("pc", "dropped", cause="dropped")

    policy = RetryPolicy(3, give_up=lambda: False)
    with pytest.raises(Unreachable):
        policy.run(failing, read_only=True, on_transient=lambda: resets.append(1))
    assert (len(calls), len(resets)) == (3, 3)
    calls.clear()
    with pytest.raises(Unreachable):
        policy.run(failing, read_only=False, on_transient=lambda: resets.append(1))
    assert len(calls) == 1


# ---- the real transport over loopback sockets ------------------------------------------------------------------


def _spec(port: int) -> ConnectionSpec:
    return ConnectionSpec(
        host="pc",
        address="127.0.0.1",
        port=port,
        scheme="http",
        transport="basic",
        user="u",
        password="p",
        message_encryption="never",
        connect_timeout=2,
        read_timeout=5,
        operation_timeout=3,
    )


def test_a_refused_port_is_tried_once() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    conn = WinRMConnection(_spec(port), retries=3)
    with pytest.raises(Unreachable) as info:
        conn.wql("SELECT Name FROM Win32_OperatingSystem")
    conn.close()
    assert info.value.cause == "refused"
    assert conn.requests_sent == 1


@pytest.fixture
def dropping_server() -> Iterator[tuple[int, list[int]]]:
    """A loopback listener that accepts at most 10 connections within 20 s, reads a little and closes each."""
    accepted: list[int] = []
    stop = threading.Event()
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(20)

    def serve() -> None:
        for _ in range(10):
            try:
                client, _ = server.accept()
            except OSError:
                return
            if stop.is_set():
                client.close()
                return
            accepted.append(1)
            with client:
                client.settimeout(2)
                try:
                    client.recv(65536)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    address = server.getsockname()
    try:
        yield address[1], accepted
    finally:
        stop.set()
        with contextlib.suppress(OSError), socket.create_connection(address, timeout=2):
            pass  # wakes the accept() up, so the thread ends now
        thread.join(timeout=5)
        server.close()


def test_a_dropped_connection_is_tried_again_on_a_fresh_one(dropping_server: tuple[int, list[int]]) -> None:
    port, accepted = dropping_server
    conn = WinRMConnection(_spec(port), retries=3)
    with pytest.raises(Unreachable) as info:
        conn.wql("SELECT Name FROM Win32_OperatingSystem")
    conn.close()
    assert info.value.cause == "dropped"
    assert conn.requests_sent == 3
    assert len(accepted) >= 3
