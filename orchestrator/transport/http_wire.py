"""HTTP/1.1 on one client socket, for the lean sender (``transport.http_sender``): the request written as one
buffer, the answer's status line and headers read from the connection's buffered socket file, and its body framed
(Content-Length, chunked, or until the host closes) — every read bounded. It stands in for ``http.client``, whose
header parsing goes through the ``email`` package and was a fifth of the sender's CPU (docs/performance.md,
"HTTP layer").

The rules are RFC 9112's (HTTP/1.1 message syntax): the status line (§4), header fields and obsolete line folding
(§5), the body's length (§6.3: no body for 1xx/204/304, chunked wins over Content-Length, an invalid
Content-Length is an error, else the body runs until the connection closes), chunked coding (§7.1) and persistence
(§9.3: HTTP/1.1 keeps the connection unless ``Connection: close``; HTTP/1.0 closes unless ``keep-alive``). The
bounds are ``http.client``'s (a line of at most 64 KiB, at most 100 header fields) plus one on the whole head;
what goes past them is refused as a hostile answer (``BadAnswer``), and a host that closes the connection in the
middle of an answer is ``PeerClosed`` (a dropped connection, as ``http.client`` reports it).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass

MAX_LINE = 65536  # one status, header, chunk-size or trailer line (http.client's _MAXLINE)
MAX_HEADERS = 100  # header fields of one answer (http.client's _MAXHEADERS)
MAX_HEAD_BYTES = 256 * 1024  # status line + header fields (+ skipped 1xx answers, + trailers) of one answer
_NO_BODY = frozenset((204, 304))


class BadAnswer(Exception):
    """The host's answer breaks HTTP/1.1 or goes past a bound of its head (the text says which)."""


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
        tokens = {t.strip().lower() for t in (self.headers.get("connection") or "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens


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


class _Budget:
    """What is left of the head's byte bound."""

    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = MAX_HEAD_BYTES


def _line(reader: io.BufferedReader, budget: _Budget, what: str) -> bytes:
    """One CRLF- (or LF-) ended line, without its ending; bounded in length and by the answer's byte budget."""
    line = reader.readline(MAX_LINE + 1)
    if not line.endswith(b"\n"):
        if len(line) > MAX_LINE:
            raise BadAnswer(f"a {what} line longer than {MAX_LINE} bytes")
        if not line and what == "status":
            raise PeerClosed("the host closed the connection without an answer")
        raise PeerClosed(f"the host closed the connection in the middle of the answer's {what} line")
    budget.left -= len(line)
    if budget.left < 0:
        raise BadAnswer(f"more than {MAX_HEAD_BYTES} bytes of status, header and chunk lines in one answer")
    return line.rstrip(b"\r\n")


def _status(line: bytes) -> tuple[str, int]:
    """``HTTP/1.x NNN reason`` → (version, status); anything else is a ``BadAnswer``."""
    version, _, rest = line.partition(b" ")
    code = rest[:3]
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or not (code.isdigit() and rest[3:4] in (b"", b" ")):
        raise BadAnswer(f"not an HTTP/1.x status line: {line[:60]!r}")
    status = int(code)
    if status < 100:
        raise BadAnswer(f"not an HTTP status code: {status}")
    return version.decode("ascii"), status


def _fields(reader: io.BufferedReader, budget: _Budget) -> dict[str, str]:
    """Header fields up to the empty line; an obsolete folded line continues the field before it."""
    fields: dict[str, str] = {}
    last = ""
    for _ in range(MAX_HEADERS + 1):
        line = _line(reader, budget, "header")
        if not line:
            return fields
        if line[:1] in (b" ", b"\t") and last:
            fields[last] += " " + line.strip().decode("latin-1")
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise BadAnswer(f"a malformed header line: {line[:60]!r}")
        last = name.decode("latin-1").lower()
        text = value.strip().decode("latin-1")
        fields[last] = f"{fields[last]}, {text}" if last in fields else text
    raise BadAnswer(f"more than {MAX_HEADERS} header fields")


def read_head(reader: io.BufferedReader) -> Head:
    """The answer's status line and header fields (1xx interim answers skipped), read from ``reader``."""
    budget = _Budget()
    while True:
        version, status = _status(_line(reader, budget, "status"))
        fields = _fields(reader, budget)
        if status >= 200:
            return Head(version, status, fields)


class Body:
    """An answer's body as ``guard.read_capped`` reads it (``read1``): at most ``amt`` bytes a call, ``b""`` at its
    end only — a host that closes the connection before then raises ``PeerClosed``."""

    __slots__ = ("_budget", "_chunked", "_done", "_left", "_reader", "keeps_connection")

    def __init__(self, reader: io.BufferedReader, head: Head) -> None:
        self._reader = reader
        self._budget = _Budget()
        self._chunked = False
        self._done = False
        self._left: int | None = None  # bytes left of the body (or of the current chunk); None: until close
        self.keeps_connection = head.keeps_connection
        coding = (head.get("transfer-encoding") or "").strip().lower()
        length = head.get("content-length")
        if head.status in _NO_BODY:
            self._done = True
        elif coding:
            if coding.rsplit(",", 1)[-1].strip() != "chunked":
                raise BadAnswer(f"a transfer coding WinRM does not use (Transfer-Encoding: {coding[:40]})")
            self._chunked = True
            self._left = 0
            if length is not None:  # §6.3: chunked wins; a message with both is not trusted to end where it says
                self.keeps_connection = False
        elif length is not None:
            self._left = _content_length(length)
            self._done = self._left == 0
        else:
            self.keeps_connection = False  # the body ends where the host closes the connection

    def read1(self, amt: int | None = None, decode_content: bool | None = None) -> bytes:
        del decode_content  # nothing is ever decoded: a content coding was refused before the body
        amt = amt if amt is not None and amt > 0 else 65536
        if self._done:
            return b""
        if self._left is None:
            return self._reader.read1(amt)
        if self._chunked and self._left == 0 and not self._next_chunk():
            return b""
        data = self._reader.read1(min(amt, self._left))
        if not data:
            raise PeerClosed("the host closed the connection in the middle of the answer's body")
        self._left -= len(data)
        if self._left == 0 and not self._chunked:
            self._done = True
        elif self._left == 0:
            self._chunk_end()
        return data

    def _next_chunk(self) -> bool:
        """Read a chunk-size line; False (trailers read, body over) at the last chunk."""
        line = _line(self._reader, self._budget, "chunk-size")
        size = line.split(b";", 1)[0].strip()
        if not size or len(size) > 16 or size.strip(b"0123456789abcdefABCDEF"):
            raise BadAnswer(f"a malformed chunk size: {line[:40]!r}")
        self._left = int(size, 16)
        if self._left:
            return True
        for _ in range(MAX_HEADERS + 1):
            if not _line(self._reader, self._budget, "trailer"):
                self._done = True
                return False
        raise BadAnswer(f"more than {MAX_HEADERS} trailer fields")

    def _chunk_end(self) -> None:
        if _line(self._reader, self._budget, "chunk-end"):
            raise BadAnswer("a chunk longer than its size")


def _content_length(value: str) -> int:
    """RFC 9112 §6.3: one decimal length (a list of identical values counts as one), else an error."""
    values = {v.strip() for v in value.split(",")}
    if len(values) != 1:
        raise BadAnswer(f"conflicting Content-Length values: {value[:40]!r}")
    (text,) = values
    if not text.isdigit() or not text.isascii():
        raise BadAnswer(f"an invalid Content-Length: {value[:40]!r}")
    return int(text)
