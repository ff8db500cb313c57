"""The pieces of the bounds, one by one: body reads, encodings, sign-in rounds, command output, terminal text
(fakes here; the real transport against hostile endpoints is test_hostile_endpoints.py), and channel binding over
the lab's HTTPS after a 401 body was read by the bounded session."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from labkit import PASSWORD, room_spec, start_lab
from pypsrp.negotiate import HTTPNegotiateAuth

from orchestrator.cli.safe_console import SafeConsole, strip_controls
from orchestrator.errors import InputError
from orchestrator.lab.addresses import claim_prefix
from orchestrator.transport import guard
from orchestrator.transport.connection import connection_spec
from orchestrator.transport.errors import OperationTimeout
from orchestrator.transport.session import BoundedSession, StopRequested, _clamp
from orchestrator.transport.watchdog import Watchdog
from orchestrator.transport.winrm import WinRMConnection


class FakeRaw:
    """A body that arrives in pieces, ``delay`` seconds apart."""

    def __init__(self, pieces: list[bytes], delay: float = 0.0) -> None:
        self.pieces = list(pieces)
        self.delay = delay
        self.reads = 0

    def read1(self, amt: int | None = None, decode_content: bool | None = None) -> bytes:
        assert decode_content is False  # never inflated
        self.reads += 1
        time.sleep(self.delay)
        return self.pieces.pop(0) if self.pieces else b""


def test_body_read_whole_under_the_cap() -> None:
    assert guard.read_capped("pc", FakeRaw([b"ab", b"cd"]), 4, time.monotonic() + 5, time.monotonic()) == b"abcd"


def test_body_over_the_cap_stops_reading() -> None:
    raw = FakeRaw([b"x" * 10] * 1000)
    with pytest.raises(guard.ResponseTooLarge, match="over the limit of 64 bytes"):
        guard.read_capped("pc", raw, 64, time.monotonic() + 5, time.monotonic())
    assert raw.reads == 7  # 70 bytes read, then stopped; 930 pieces never read


def test_trickled_body_stops_at_the_exchange_time() -> None:
    raw = FakeRaw([b"<"] * 1000, delay=0.05)
    started = time.monotonic()
    with pytest.raises(guard.SlowResponse, match=r"still arriving after 0s \(\d+ bytes of its body so far\)"):
        guard.read_capped("pc", raw, 1 << 20, started + 0.3, started)
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("value", ["gzip", "deflate", "br", "GZIP, identity", "x-gzip"])
def test_any_content_encoding_is_refused(value: str) -> None:
    with pytest.raises(guard.EncodedResponse, match="compressed"):
        guard.check_encoding("pc", value)


@pytest.mark.parametrize("value", [None, "", "identity", " Identity "])
def test_identity_passes(value: str | None) -> None:
    guard.check_encoding("pc", value)


def test_declared_length_over_the_cap_is_refused_unread() -> None:
    guard.check_declared_length("pc", "16", 16)
    guard.check_declared_length("pc", "not a number", 16)
    with pytest.raises(guard.ResponseTooLarge, match="announces 500 MiB"):
        guard.check_declared_length("pc", str(500 * guard.MiB), 16 * guard.MiB)


def test_signin_rounds() -> None:
    guard.check_signin_round("pc", guard.MAX_SIGNIN_ROUNDS, guard.MAX_SIGNIN_ROUNDS)
    with pytest.raises(guard.SignInLoop, match="not a credentials problem"):
        guard.check_signin_round("pc", guard.MAX_SIGNIN_ROUNDS + 1, guard.MAX_SIGNIN_ROUNDS)


def test_output_buffer_keeps_the_cap_across_both_streams() -> None:
    buf = guard.OutputBuffer(10)
    buf.add("stdout", b"1234")
    buf.add("stderr", b"567")
    assert not buf.truncated
    buf.add("stdout", b"89abcdef")
    assert buf.truncated and bytes(buf.stdout) == b"123489a" and bytes(buf.stderr) == b"567"


def test_output_cut_never_splits_a_utf8_character() -> None:
    text = "繁體中文".encode()  # 3 bytes each
    buf = guard.OutputBuffer(7)
    buf.add("stdout", text)
    assert bytes(buf.stdout).decode("utf-8") == "繁體"


def test_output_cap_variable() -> None:
    base = {"ansible_host": "127.0.1.5", "ansible_user": "a", "ansible_password": "p"}
    assert connection_spec("pc", base).max_output_bytes == 16 * guard.MiB
    assert connection_spec("pc", {**base, "kmsfleet_max_output_bytes": 4096}).max_output_bytes == 4096
    with pytest.raises(InputError, match="kmsfleet_max_output_bytes"):
        connection_spec("pc", {**base, "kmsfleet_max_output_bytes": "lots"})


def test_socket_timeouts_clamped_to_what_is_left() -> None:
    assert _clamp(22, 100) == (22, 22)
    assert _clamp((10, 30), 5) == (5, 5)
    assert _clamp(None, -3) == (0.1, 0.1)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b]0;window title\x07ok", "ok"),
        ("\x1b[2J\x1b[H\x1b[31mred\x1b[0m", "red"),
        ("a\x9b31mb", "ab"),
        ("x\x1bPq#0;2\x1b\\y", "xy"),
        ("\x1b]8;;http://evil.example/\x1b\\link\x1b]8;;\x1b\\", "link"),
        ("tab\tnew\nline\rback\x08bell\x07del\x7f", "tab\tnew\nlinebackbelldel"),
        ("繁體中文 ok", "繁體中文 ok"),
    ],
)
def test_strip_controls(raw: str, shown: str) -> None:
    assert strip_controls(raw) == shown


def test_safe_console_keeps_its_own_styles_and_drops_the_pcs() -> None:
    out = io.StringIO()
    console = SafeConsole(file=out, force_terminal=True, color_system="standard", highlight=False)
    console.print("[red]failed[/] " + "\x1b]0;owned\x07\x1b[2Jtext")
    written = out.getvalue()
    assert "\x1b[31mfailed" in written  # rich's colour stays
    assert "owned" not in written and "\x1b[2J" not in written and "\x1b]" not in written and "text" in written


@pytest.fixture(scope="module")
def https_lab() -> Iterator[Any]:
    claim = claim_prefix()
    lab = start_lab({"rooms": [room_spec(claim, [{"name": "pc01"}])], "seed": 1})
    try:
        yield lab
    finally:
        lab.stop()
        claim.release()


def test_channel_binding_survives_the_bounded_401_read(https_lab: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """NTLM over HTTPS: pypsrp binds the sign-in to the server's certificate from the 401's socket; the bounded
    session reads that 401's body first, and the binding must still be found. (pypsrp's own sender; the lean one's
    binding: tests/adversarial/test_http_sender.py.)"""
    seen: list[bytes | None] = []
    original = HTTPNegotiateAuth._get_cbt_data

    def spy(response: Any) -> bytes | None:
        value: bytes | None = original(response)
        seen.append(value)
        return value

    monkeypatch.setattr(HTTPNegotiateAuth, "_get_cbt_data", staticmethod(spy))
    host = https_lab.hosts[0]
    spec = connection_spec(
        host.name,
        {
            "ansible_host": host.address,
            "ansible_port": https_lab.lab.https_port,
            "ansible_user": "administrator",
            "ansible_password": PASSWORD,
            "ansible_winrm_server_cert_validation": https_lab.cert_path,
            "kmsfleet_http": "requests",
        },
    )
    conn = WinRMConnection(spec)
    try:
        assert conn.run_command("hostname").rc == 0
    finally:
        conn.close()
    assert seen and all(v is not None and v.startswith(b"tls-server-end-point:") for v in seen), seen


def test_gate_stops_an_abandoned_or_cancelled_host_before_it_sends() -> None:
    """The gate sits in the session's adapters, so it also stops the sign-in rounds pypsrp sends on its own."""
    cancel = threading.Event()
    deadline = [time.monotonic() - 1.0]
    session = requests.Session()
    gate = BoundedSession("pc", guard.Bounds(), deadline=lambda: deadline[0], cancel=cancel, budget=5)
    gate.install(session)
    gate.install(session)  # idempotent: one wrapper per adapter
    assert session.headers["Accept-Encoding"] == "identity"
    with pytest.raises(OperationTimeout, match="time budget of 5s ran out"):
        session.post("http://127.0.0.1:9/wsman", data=b"x", timeout=1)  # never connected: the gate refused
    deadline[0] = time.monotonic() + 100
    cancel.set()
    with pytest.raises(StopRequested):
        session.post("http://127.0.0.1:9/wsman", data=b"x", timeout=1)
    assert gate.exchanges == 0


def test_watchdog_shuts_down_late_exchanges_only() -> None:
    """A real socket pair: the watched read that outlives its time is ended; a released watch never fires."""
    dog = Watchdog()
    late_a, late_b = socket.socketpair()
    early_a, early_b = socket.socketpair()
    try:
        early = dog.watch(time.monotonic() + 0.2, lambda: early_a)
        dog.release(early)
        late = dog.watch(time.monotonic() + 0.3, lambda: late_a)
        started = time.monotonic()
        late_a.settimeout(10)
        assert late_a.recv(10) == b""  # blocked until the watchdog shut the socket down
        assert 0.2 < time.monotonic() - started < 3
        assert late.fired and not early.fired
        early_b.sendall(b"ok")
        early_a.settimeout(2)
        assert early_a.recv(10) == b"ok"  # the released exchange's socket is untouched
    finally:
        for s in (late_a, late_b, early_a, early_b):
            s.close()
