"""HTTP/1.1 message syntax (RFC 9112) without I/O, for both ends kmsfleet speaks it on: the lean sender's answer
reader (``transport.http_wire``, a blocking socket file) and the lab's listeners (``lab.http11``, an asyncio
buffer). Each side only finds lines and bytes in its own input; what they mean is decided here, once:

- the start line: a status line (§4) or a request line (§3);
- header fields (§5): ``name: value``, names lower-cased, repeated fields joined with ", " (RFC 9110 §5.3),
  obsolete line folding joined with a space (a user agent must, §5.2) or refused (a server may answer 400);
- the body's framing (§6.3): none for 1xx/204/304 answers, chunked when ``Transfer-Encoding`` ends with it (and
  then the connection is not reused if ``Content-Length`` came too), an error when it ends with another coding,
  else ``Content-Length`` (a list of identical values counts as one, anything else is an error), else an answer
  runs until the connection closes and a request has no body;
- chunked coding (§7.1) as a state machine fed with lines and byte counts: size lines in hex (extensions
  ignored), the empty line after each chunk's data, trailer fields up to the empty line;
- persistence (§9.3): HTTP/1.1 keeps the connection unless ``Connection: close``, HTTP/1.0 only with keep-alive.

Every bound is a ``Limits`` field: one line, the header fields, the bytes of head and chunk lines, the chunks of
one body. What breaks the syntax or a bound is a ``MessageError`` whose text says which.

h11 was measured for this job and not taken: ~120-170 µs per message against 15-20 µs here
(benchmarks/http_parse.py; docs/performance.md, "HTTP layer").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

NO_BODY_STATUS = frozenset((204, 304))
_OWS = " \t"


class MessageError(ValueError):
    """The message breaks HTTP/1.1 or goes past a bound (the text says which)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds one side applies to what it reads."""

    line: int  # bytes of one start, header or trailer line
    chunk_line: int  # bytes of one chunk-size line (extensions included)
    fields: int  # header lines of one head, trailer lines of one body
    head: int  # bytes of head lines (and, in a chunked body, of its size, end and trailer lines) of one message
    chunks: int  # chunks of one body
    obs_fold: bool  # join obsolete line folding (a client must); False: refuse it (a server may)


def too_long(what: str, limit: int) -> MessageError:
    return MessageError(f"a {what} line longer than {limit} bytes")


class LineBudget:
    """What is left of ``Limits.head``: each line read is charged its bytes."""

    __slots__ = ("left", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def charge(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise MessageError(f"more than {self.limit} bytes of status, header and chunk lines in one message")


# ------------------------------------------------------------------------------------------------ start lines


def status_line(line: str) -> tuple[str, int]:
    """``HTTP/1.x NNN reason`` → (version, status)."""
    version, _, rest = line.partition(" ")
    code = rest[:3]
    if version not in ("HTTP/1.1", "HTTP/1.0") or not _decimal(code) or len(code) != 3 or rest[3:4] not in ("", " "):
        raise MessageError(f"not an HTTP/1.x status line: {line[:60]!r}")
    status = int(code)
    if status < 100:
        raise MessageError(f"not an HTTP status code: {status}")
    return version, status


def request_line(line: str) -> tuple[str, str, str]:
    """``METHOD target HTTP/1.x`` → (method, target, version)."""
    parts = line.split(" ")
    if len(parts) != 3 or not (parts[0].isascii() and parts[0].isalpha()) or not parts[2].startswith("HTTP/1."):
        raise MessageError(f"not an HTTP/1.x request line: {line[:60]!r}")
    method, target, version = parts
    if not target:
        raise MessageError("a request line without a target")
    return method, target, version


# ---------------------------------------------------------------------------------------------- header fields


def parse_fields(lines: Sequence[str], limits: Limits) -> dict[str, str]:
    """Header (or trailer) lines without their endings → fields by lower-case name."""
    if len(lines) > limits.fields:
        raise MessageError(f"more than {limits.fields} header fields")
    fields: dict[str, str] = {}
    last = ""
    for line in lines:
        if line[:1] in (" ", "\t") and last and limits.obs_fold:
            fields[last] += " " + line.strip(_OWS)
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise MessageError(f"a malformed header line: {line[:60]!r}")
        last = name.lower()
        text = value.strip(_OWS)
        fields[last] = f"{fields[last]}, {text}" if last in fields else text
    return fields


def keeps_connection(version: str, connection: str | None) -> bool:
    """§9.3: whether the connection stays open after this message (when its end is known)."""
    if not connection:
        return version != "HTTP/1.0"
    tokens = set(map(str.strip, connection.lower().split(",")))
    if version == "HTTP/1.0":
        return "keep-alive" in tokens
    return "close" not in tokens


def content_length(value: str) -> int:
    """§6.3: one decimal length (a list of identical values counts as one)."""
    if _decimal(value):  # the usual case, at once
        return int(value)
    values = {v.strip(_OWS) for v in value.split(",")}
    if len(values) != 1:
        raise MessageError(f"conflicting Content-Length values: {value[:40]!r}")
    (text,) = values
    if not _decimal(text):
        raise MessageError(f"an invalid Content-Length: {value[:40]!r}")
    return int(text)


def _decimal(text: str) -> bool:
    return text.isascii() and text.isdigit()


# --------------------------------------------------------------------------------------------------- framing

LENGTH = "length"  # Content-Length bytes (``Framing.length``; 0: no body)
CHUNKED = "chunked"
UNTIL_CLOSE = "until-close"  # an answer without a length: the body ends where the connection does


class Framing(NamedTuple):  # a tuple: built per message, cheaper than a frozen dataclass
    kind: str
    length: int
    keeps_connection: bool


def answer_framing(version: str, status: int, fields: Mapping[str, str]) -> Framing:
    """How an answer's body is framed, and whether the connection outlives it."""
    keep = keeps_connection(version, fields.get("connection"))
    if status < 200 or status in NO_BODY_STATUS:
        return Framing(LENGTH, 0, keep)
    return _framing(fields, keep, UNTIL_CLOSE)


def request_framing(version: str, fields: Mapping[str, str]) -> Framing:
    """How a request's body is framed (none without Transfer-Encoding or Content-Length), and whether the
    connection may serve another request after it."""
    return _framing(fields, keeps_connection(version, fields.get("connection")), LENGTH)


def _framing(fields: Mapping[str, str], keep: bool, unframed: str) -> Framing:
    coding = fields.get("transfer-encoding")
    length = fields.get("content-length")
    if coding is not None:
        if coding.rsplit(",", 1)[-1].strip(_OWS).lower() != "chunked":
            raise MessageError(f"a transfer coding WinRM does not use (Transfer-Encoding: {coding[:40]})")
        # both: chunked wins, and a message that says two lengths is not trusted to end where it says (§6.3)
        return Framing(CHUNKED, 0, keep and length is None)
    if length is not None:
        return Framing(LENGTH, content_length(length), keep)
    if unframed == UNTIL_CLOSE:
        return Framing(UNTIL_CLOSE, 0, False)
    return Framing(LENGTH, 0, keep)


# ------------------------------------------------------------------------------------------- chunked coding

_SIZE, _DATA, _END, _TRAILER, _DONE = range(5)
_LINE_NAMES = {_SIZE: "chunk-size", _END: "chunk-end", _TRAILER: "trailer"}
_HEX = frozenset(b"0123456789abcdefABCDEF")
_NO_LINE = frozenset((_DATA, _DONE))
_EMPTY_LINES = frozenset((b"\r\n", b"\n"))


class ChunkedBody:
    """§7.1 chunked coding, fed by its reader: while ``wants_line``, one whole line (with its ending, at most
    ``line_limit`` bytes before it; ``line_name`` names it in errors); else up to ``left`` bytes of chunk data,
    reported with ``took``. ``done`` after the last chunk's trailers."""

    __slots__ = ("_chunks", "_limits", "_room", "_state", "_trailers", "left", "line_limit", "wants_line")

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._room = limits.head  # bytes of size, end and trailer lines still allowed
        self._chunks = 0
        self._trailers = 0
        self.left = 0  # bytes of the current chunk's data still to come
        self._enter(_SIZE)

    def _enter(self, state: int) -> None:
        self._state = state
        self.wants_line = state not in _NO_LINE
        self.line_limit = self._limits.chunk_line if state == _SIZE else self._limits.line

    @property
    def done(self) -> bool:
        return self._state == _DONE

    @property
    def line_name(self) -> str:
        return _LINE_NAMES.get(self._state, "chunk")

    def line(self, raw: bytes) -> None:
        """The next line, with its ending."""
        self._room -= len(raw)
        if self._room < 0:
            raise MessageError(f"more than {self._limits.head} bytes of chunk-size and trailer lines in one body")
        state = self._state
        if state == _SIZE:
            self._size(raw.rstrip(b"\r\n"))
        elif state == _END:
            if raw not in _EMPTY_LINES:
                raise MessageError("a chunk longer than its size")
            self._enter(_SIZE)
        elif raw in _EMPTY_LINES:
            self._enter(_DONE)
        else:
            self._trailers += 1
            if self._trailers > self._limits.fields:
                raise MessageError(f"more than {self._limits.fields} trailer fields")

    def took(self, size: int) -> None:
        """``size`` bytes of the current chunk's data were read."""
        self.left -= size
        if not self.left:
            self._enter(_END)

    def _size(self, line: bytes) -> None:
        digits = line.split(b";", 1)[0].strip(b" \t")
        if not digits or len(digits) > 16 or not _HEX.issuperset(digits):
            raise MessageError(f"a malformed chunk size: {line[:40]!r}")
        self._chunks += 1
        if self._chunks > self._limits.chunks:
            raise MessageError(f"more than {self._limits.chunks} chunks in one body")
        self.left = int(digits, 16)
        self._enter(_DATA if self.left else _TRAILER)
