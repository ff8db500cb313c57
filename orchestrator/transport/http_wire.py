"""HTTP/1.1 on one client socket, for the lean sender (``transport.http_sender``): the request written as one
buffer, the answer's status line and headers read from the connection's buffered socket file, and its body framed
(Content-Length, chunked, or until the host closes) — every read bounded. It stands in for ``http.client``, whose
header parsing goes through the ``email`` package and was a fifth of the sender's CPU (docs/performance.md,
"HTTP layer").

This module is only the I/O: it reads lines (``readline``, bounded) and bytes (``read1``) and hands them to
``orchestrator.http1``, the HTTP/1.1 syntax the lab's listeners share (status line, fields and obsolete folding,
body framing, chunked coding, persistence; RFC 9112). The bounds are ``http.client``'s (a line of at most 64 KiB,
at most 100 header fields) plus one on the bytes of status, header, chunk and trailer lines of one answer; what
goes past them is refused as a hostile answer (``BadAnswer``), and a host that closes the connection in the middle
of an answer is ``PeerClosed`` (a dropped connection, as ``http.client`` reports it).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn

from orchestrator import http1

MAX_LINE = 65536  # one status, header, chunk-size or trailer line (http.client's _MAXLINE)
MAX_HEADERS = 100  # header fields of one answer (http.client's _MAXHEADERS)
MAX_HEAD_BYTES = 256 * 1024  # status line + header fields (+ skipped 1xx answers) of one answer; chunk lines apart
LIMITS = http1.Limits(
    line=MAX_LINE, chunk_line=MAX_LINE, fields=MAX_HEADERS, head=MAX_HEAD_BYTES, chunks=1 << 16, obs_fold=True
)

#: The host's answer breaks HTTP/1.1 or goes past a bound (the text says which).
BadAnswer = http1.MessageError


class PeerClosed(ConnectionError):
    """The host closed the connection before its answer was whole."""


@dataclass(frozen=True, slots=True)
class Head:
    """An answer's status and header fields (names lower-cased; repeated fields joined with ", ", as urllib3
    presents them to pypsrp)."""

    version: str
    status: int
    headers: Mapping[str, str]

    def get(self, name: str, default: str | None = None) -> str | None:
        """A header field by its lower-case name."""
        return self.headers.get(name, default)

    @property
    def keeps_connection(self) -> bool:
        """RFC 9112 §9.3: whether the connection stays open after this answer (when its length is known)."""
        return http1.keeps_connection(self.version, self.headers.get("connection"))


def request_bytes(target: str, host: str, fields: Mapping[str, str], body: bytes) -> bytes:
    """A POST as ``http.client`` writes it (``Host``, then ``Content-Length`` unless given, then the fields in
    order), head and body in one buffer so it leaves in one ``sendall``."""
    lines = [f"POST {target} HTTP/1.1", f"Host: {host}"]
    if "Content-Length" not in fields:
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{name}: {value}" for name, value in fields.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def host_field(address: str, port: int, default_port: int) -> str:
    """The ``Host`` value ``http.client`` sends: IPv6 in brackets, the port left out when it is the default."""
    name = f"[{address}]" if ":" in address else address
    return name if port == default_port else f"{name}:{port}"


def _line(reader: io.BufferedReader, budget: http1.LineBudget, what: str) -> bytes:
    """One CRLF- (or LF-) ended line of the head, with its ending; bounded in length and by the answer's bytes."""
    line = reader.readline(MAX_LINE + 1)
    if not line.endswith(b"\n"):
        _broken_line(line, MAX_LINE, what)
    budget.charge(len(line))
    return line


def _broken_line(line: bytes, limit: int, what: str) -> NoReturn:
    """Raise what a line read without its ending means: too long, or the host closed the connection."""
    if len(line) > limit:
        raise http1.too_long(what, limit)
    if not line and what == "status":
        raise PeerClosed("the host closed the connection without an answer")
    raise PeerClosed(f"the host closed the connection in the middle of the answer's {what} line")


def _head_lines(reader: io.BufferedReader, budget: http1.LineBudget) -> tuple[str, list[str]]:
    """The status line and the header lines up to the empty line (at most one more than the fields allowed, so
    ``http1.parse_fields`` refuses an endless head), without their endings."""
    status = _line(reader, budget, "status").rstrip(b"\r\n").decode("latin-1")
    lines: list[str] = []
    for _ in range(MAX_HEADERS + 1):
        line = _line(reader, budget, "header").rstrip(b"\r\n")
        if not line:
            break
        lines.append(line.decode("latin-1"))
    return status, lines


def read_head(reader: io.BufferedReader) -> Head:
    """The answer's status line and header fields (1xx interim answers skipped), read from ``reader``."""
    budget = http1.LineBudget(MAX_HEAD_BYTES)
    while True:
        status_line, lines = _head_lines(reader, budget)
        version, status = http1.status_line(status_line)
        fields = http1.parse_fields(lines, LIMITS)
        if status >= 200:
            return Head(version, status, fields)


class Body:
    """An answer's body as ``guard.read_capped`` reads it (``read1``): at most ``amt`` bytes a call, ``b""`` at its
    end only — a host that closes the connection before then raises ``PeerClosed``."""

    __slots__ = ("_chunks", "_done", "_left", "_reader", "keeps_connection")

    def __init__(self, reader: io.BufferedReader, head: Head) -> None:
        framing = http1.answer_framing(head.version, head.status, head.headers)
        self._reader = reader
        self.keeps_connection = framing.keeps_connection
        self._chunks = http1.ChunkedBody(LIMITS) if framing.kind == http1.CHUNKED else None
        self._left: int | None = None if framing.kind == http1.UNTIL_CLOSE else framing.length
        self._done = framing.kind == http1.LENGTH and not framing.length

    def read1(self, amt: int | None = None, decode_content: bool | None = None) -> bytes:
        del decode_content  # nothing is ever decoded: a content coding was refused before the body
        amt = amt if amt is not None and amt > 0 else 65536
        if self._done:
            return b""
        if self._left is None:
            return self._reader.read1(amt)  # until the host closes
        chunks = self._chunks
        if chunks is not None:
            while chunks.wants_line:
                line = self._reader.readline(chunks.line_limit + 1)
                if not line.endswith(b"\n"):
                    _broken_line(line, chunks.line_limit, chunks.line_name)
                chunks.line(line)
            if chunks.done:
                self._done = True
                return b""
            self._left = chunks.left
        data = self._reader.read1(min(amt, self._left))
        if not data:
            raise PeerClosed("the host closed the connection in the middle of the answer's body")
        if chunks is not None:
            chunks.took(len(data))
        else:
            self._left -= len(data)
            self._done = self._left == 0
        return data
