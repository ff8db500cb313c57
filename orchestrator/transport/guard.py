"""The bounds on what one host may make the controller do: how many bytes one answer may have, how long one HTTP
exchange may take, how many sign-in rounds one request may need, how much command output is kept — and the typed
errors raised when a host goes past them. Pure functions and values; ``transport.session`` applies them to the
HTTP session, ``transport.winrm`` to command output. Defaults and reasons: docs/hardening.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from orchestrator.transport.errors import Cause, ProtocolError

MiB = 1024 * 1024
MAX_RESPONSE_BYTES = 16 * MiB  # one HTTP answer; Windows keeps each to the client's MaxEnvelopeSize (150 KiB)
MAX_SIGNIN_ROUNDS = 8  # 401 answers in a row; NTLM needs 2, Kerberos 1, CredSSP's TLS-in-HTTP about 5
MAX_OUTPUT_BYTES = 16 * MiB  # stdout + stderr kept per command (host var kmsfleet_max_output_bytes)
READ_CHUNK = 64 * 1024


class ResponseTooLarge(ProtocolError):
    """An answer went past the byte limit; what was read of it is discarded and the connection closed."""

    default_cause: Cause = "too_large"


class EncodedResponse(ProtocolError):
    """An answer carried a ``Content-Encoding`` (gzip, deflate…): WinRM never compresses and we ask for identity."""

    default_cause: Cause = "encoded"


class SignInLoop(ProtocolError):
    """The host kept asking for another sign-in round (an NTLM/Negotiate challenge loop)."""

    default_cause: Cause = "signin_loop"


class SlowResponse(ProtocolError):
    """An answer trickled in for longer than one exchange may take (a slowloris body)."""

    default_cause: Cause = "slow"


class Redirected(ProtocolError):
    """An HTTP redirect: WinRM never redirects, and following one would send the sign-in elsewhere."""

    default_cause: Cause = "redirect"


@dataclass(frozen=True)
class Bounds:
    """The limits of one host's HTTP exchanges (defaults in this module; command output: ``OutputBuffer``)."""

    max_response_bytes: int = MAX_RESPONSE_BYTES
    max_signin_rounds: int = MAX_SIGNIN_ROUNDS


def size_text(n: int) -> str:
    """Bytes as people read them: '16 MiB', '2.5 MiB', '812 bytes'."""
    if n >= MiB:
        value = n / MiB
        return f"{value:.0f} MiB" if value == int(value) else f"{value:.1f} MiB"
    if n >= 1024:
        return f"{n / 1024:.0f} KiB"
    return f"{n} bytes"


def check_encoding(host: str, content_encoding: str | None) -> None:
    """Refuse any content coding but identity, before a byte of the body is read (a gzip bomb is never inflated)."""
    value = (content_encoding or "").strip().lower()
    if value and value != "identity":
        raise EncodedResponse(
            host,
            f"the answer is compressed (Content-Encoding: {value[:40]}); WinRM does not compress and kmsfleet asked "
            "for none — refused unread (a hostile endpoint?)",
        )


def check_declared_length(host: str, content_length: str | None, cap: int) -> None:
    """Refuse an answer whose Content-Length already says it is over the limit (nothing is read)."""
    if content_length is None:
        return
    try:
        declared = int(content_length.strip())
    except ValueError:
        return  # http.client rejects a malformed length itself
    if declared > cap:
        raise ResponseTooLarge(
            host, f"the answer announces {size_text(declared)}, over the limit of {size_text(cap)}; refused unread"
        )


class _Readable(Protocol):
    def read1(self, amt: int | None = None, decode_content: bool | None = None) -> bytes: ...


def slow_response(host: str, started: float, received: int | None = None) -> SlowResponse:
    """The error of an exchange (begun at the monotonic time ``started``) that ran past its wall time."""
    got = f" ({size_text(received)} of its body so far)" if received else ""
    return SlowResponse(
        host,
        f"the answer was still arriving after {time.monotonic() - started:.0f}s{got}; one HTTP exchange may take "
        "at most its connect + read timeout (a trickling, hostile endpoint?)",
    )


def read_capped(host: str, raw: _Readable, cap: int, until: float, started: float) -> bytes:
    """Read a body as it arrives (undecoded), stopping at ``cap`` bytes or at the monotonic time ``until``
    (``started``: when the exchange began, for the message)."""
    chunks: list[bytes] = []
    total = 0
    while True:
        if time.monotonic() > until:
            raise slow_response(host, started, total)
        data = raw.read1(READ_CHUNK, decode_content=False)
        if not data:
            return b"".join(chunks)
        total += len(data)
        if total > cap:
            raise ResponseTooLarge(host, f"the answer is over the limit of {size_text(cap)}; the rest was not read")
        chunks.append(data)


def check_signin_round(host: str, rounds: int, limit: int) -> None:
    if rounds > limit:
        raise SignInLoop(
            host,
            f"the host asked for sign-in round {rounds} of one request (at most {limit}); an endless NTLM/Negotiate "
            "challenge loop was stopped — not a credentials problem",
        )


#: HTTP redirects: WinRM never redirects, and following one would send the sign-in elsewhere.
REDIRECTS = frozenset((301, 302, 303, 307, 308))


def check_head(
    host: str, status: int, content_encoding: str | None, content_length: str | None, bounds: Bounds, rounds: int
) -> int:
    """An answer's status line and headers, checked before a byte of its body is read (both HTTP senders):
    redirects, content codings, announced sizes, sign-in rounds. ``rounds`` is the count of 401 answers in a row
    so far; the new count is returned."""
    if status in REDIRECTS:
        raise Redirected(host, f"the host answered with a redirect (HTTP {status}); WinRM never does")
    check_encoding(host, content_encoding)
    check_declared_length(host, content_length, bounds.max_response_bytes)
    if status != 401:
        return 0
    check_signin_round(host, rounds + 1, bounds.max_signin_rounds)
    return rounds + 1


def output_marker(cap: int) -> str:
    """The line appended where command output was cut."""
    return (
        f"\n[kmsfleet: output cut at {size_text(cap)} (kmsfleet_max_output_bytes); the rest was discarded and the "
        "command was stopped]"
    )


class OutputBuffer:
    """stdout and stderr of one command, kept up to ``cap`` bytes together; ``truncated`` once more was offered."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.truncated = False

    def add(self, stream: str, data: bytes) -> None:
        room = self.cap - len(self.stdout) - len(self.stderr)
        if len(data) > room:
            data = _whole_utf8(data[: max(0, room)])
            self.truncated = True
        (self.stdout if stream == "stdout" else self.stderr).extend(data)


def _whole_utf8(data: bytes) -> bytes:
    """``data`` without a UTF-8 sequence cut in half at its end (so a cut does not turn the text into cp437)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:
            continue  # a continuation byte: look further back for the lead byte
        need = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4 if byte & 0xF8 == 0xF0 else 1
        return data[:-back] if need > back else data
    return data
