"""The shared HTTP/1.1 syntax (orchestrator/http1.py) on its own, and through both of its readers in memory: the
client's answer reader (``transport.http_wire`` over a buffered file) and the lab's request reader
(``lab.http11._Reading`` over a buffer cut at arbitrary points). Round-trips: a message framed by Content-Length or
by arbitrary chunks (extensions, trailers) reads back as the bytes it carried, however it arrives. Hostile input:
huge chunk-size lines, endless trailers and a byte-at-a-time drip stay bounded. The real-socket tests of both sides
are tests/adversarial/test_http_wire.py and tests/lab/test_http11.py."""

from __future__ import annotations

import io
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator import http1
from orchestrator.lab import http11
from orchestrator.transport import http_wire

CLIENT = http_wire.LIMITS
LAB = http11.LIMITS


# ------------------------------------------------------------------------------------------------ start lines


def test_status_and_request_lines() -> None:
    assert http1.status_line("HTTP/1.1 200 OK") == ("HTTP/1.1", 200)
    assert http1.status_line("HTTP/1.0 401") == ("HTTP/1.0", 401)
    assert http1.request_line("POST /wsman HTTP/1.1") == ("POST", "/wsman", "HTTP/1.1")
    for bad in ("HTTP/2 200 OK", "HTTP/1.1 20 OK", "HTTP/1.1 2000 OK", "HTTP/1.1 099 x", "HTTP/1.1 ²00 x", "ICY 200"):
        with pytest.raises(http1.MessageError, match="status"):
            http1.status_line(bad)
    for bad in ("NONSENSE", "POST /wsman", "PO5T / HTTP/1.1", "POST / SPDY/3", "POST  HTTP/1.1", "PÖST / HTTP/1.1"):
        with pytest.raises(http1.MessageError, match="request line"):
            http1.request_line(bad)


# ---------------------------------------------------------------------------------------------- header fields


def test_fields_are_lower_cased_joined_and_folded_only_for_the_client() -> None:
    lines = ["WWW-Authenticate: Negotiate", "www-authenticate:Kerberos ", "X-Folded: one", "\t two"]
    fields = http1.parse_fields(lines, CLIENT)
    assert fields == {"www-authenticate": "Negotiate, Kerberos", "x-folded": "one two"}
    with pytest.raises(http1.MessageError, match="malformed header"):
        http1.parse_fields(lines, LAB)  # a server may refuse obsolete folding (RFC 9112 5.2); the lab does


@pytest.mark.parametrize("line", ["no colon", ": empty name", "Name : space before the colon", " Leading: x"])
def test_malformed_field_lines_are_refused(line: str) -> None:
    with pytest.raises(http1.MessageError, match="malformed header"):
        http1.parse_fields([line], CLIENT)


def test_the_field_count_is_bounded_on_both_sides() -> None:
    for limits in (CLIENT, LAB):
        assert len(http1.parse_fields([f"X-{i}: y" for i in range(limits.fields)], limits)) == limits.fields
        with pytest.raises(http1.MessageError, match=f"more than {limits.fields} header"):
            http1.parse_fields([f"X-{i}: y" for i in range(limits.fields + 1)], limits)


@pytest.mark.parametrize(
    ("value", "length"), [("5", 5), (" 5 ", 5), ("5, 5", 5), ("0", 0), ("5, 6", None), ("-5", None), ("0x5", None)]
)
def test_content_length(value: str, length: int | None) -> None:
    if length is None:
        with pytest.raises(http1.MessageError, match="Content-Length"):
            http1.content_length(value)
    else:
        assert http1.content_length(value) == length


# --------------------------------------------------------------------------------------------------- framing


@pytest.mark.parametrize(
    ("version", "status", "fields", "framing"),
    [
        ("HTTP/1.1", 200, {"content-length": "3"}, (http1.LENGTH, 3, True)),
        ("HTTP/1.1", 200, {"content-length": "3", "connection": "close"}, (http1.LENGTH, 3, False)),
        ("HTTP/1.0", 200, {"content-length": "3"}, (http1.LENGTH, 3, False)),
        ("HTTP/1.0", 200, {"content-length": "3", "connection": "Keep-Alive"}, (http1.LENGTH, 3, True)),
        ("HTTP/1.1", 200, {}, (http1.UNTIL_CLOSE, 0, False)),
        ("HTTP/1.1", 204, {}, (http1.LENGTH, 0, True)),
        ("HTTP/1.1", 304, {"content-length": "9"}, (http1.LENGTH, 0, True)),
        ("HTTP/1.1", 200, {"transfer-encoding": "gzip, Chunked"}, (http1.CHUNKED, 0, True)),
        ("HTTP/1.1", 200, {"transfer-encoding": "chunked", "content-length": "9"}, (http1.CHUNKED, 0, False)),
    ],
)
def test_answer_framing(version: str, status: int, fields: dict[str, str], framing: tuple[str, int, bool]) -> None:
    assert http1.answer_framing(version, status, fields) == framing


def test_request_framing() -> None:
    assert http1.request_framing("HTTP/1.1", {}) == (http1.LENGTH, 0, True)  # no length: no body
    assert http1.request_framing("HTTP/1.0", {}) == (http1.LENGTH, 0, False)
    both = {"transfer-encoding": "chunked", "content-length": "4"}
    assert http1.request_framing("HTTP/1.1", both) == (http1.CHUNKED, 0, False)
    with pytest.raises(http1.MessageError, match="transfer coding"):
        http1.request_framing("HTTP/1.1", {"transfer-encoding": "chunked, gzip"})


# -------------------------------------------------------------------------------------------- chunked coding


def _feed(chunks: http1.ChunkedBody, wire: bytes) -> bytes:
    """Drive the state machine over ``wire`` as a reader does (lines up to LF, data by ``left``)."""
    body, pos = [], 0
    while not chunks.done:
        if chunks.wants_line:
            end = wire.index(b"\n", pos) + 1
            chunks.line(wire[pos:end])
            pos = end
        else:
            body.append(wire[pos : pos + chunks.left])
            pos += len(body[-1])
            chunks.took(len(body[-1]))
    assert pos == len(wire)
    return b"".join(body)


@pytest.mark.parametrize(
    ("wire", "phrase"),
    [
        (b"zz\r\n", "malformed chunk size"),
        (b"-1\r\n", "malformed chunk size"),
        (b"0x5\r\n", "malformed chunk size"),
        (b"1_0\r\n", "malformed chunk size"),
        (b"11111111111111111\r\n", "malformed chunk size"),  # 17 hex digits: more than any body
        (b"2\r\nabc\r\n", "longer than its size"),
        (b"0\r\n" + b"T: x\r\n" * 101, "more than 100 trailer"),
        (b"1\r\nx\r\n" * 60_000, "more than 262144 bytes"),
    ],
)
def test_broken_chunked_bodies(wire: bytes, phrase: str) -> None:
    with pytest.raises(http1.MessageError, match=phrase):
        _feed(http1.ChunkedBody(CLIENT), wire + b"0\r\n\r\n")


def test_the_lab_bounds_the_number_of_chunks() -> None:
    with pytest.raises(http1.MessageError, match=f"more than {http11.MAX_CHUNKS} chunks"):
        _feed(http1.ChunkedBody(LAB), b"1\r\nx\r\n" * (http11.MAX_CHUNKS + 1) + b"0\r\n\r\n")


# ------------------------------------------------------------------------------ round-trips through both readers

_bodies = st.binary(max_size=3000)
_cuts = st.lists(st.integers(min_value=1, max_value=700), max_size=12)


def _chunked(body: bytes, cuts: list[int], ext: bool, trailers: bool) -> bytes:
    parts, pos = [], 0
    for cut in [*cuts, len(body)]:
        part = body[pos : pos + cut]
        if part:
            parts.append(b"%x%s\r\n%s\r\n" % (len(part), b";name=value" if ext else b"", part))
        pos += len(part)
    return b"".join(parts) + b"0\r\n" + (b"X-Trailer: 1\r\n" if trailers else b"") + b"\r\n"


def _client_reads(answer: bytes) -> tuple[int, bytes, bool]:
    reader = io.BufferedReader(io.BytesIO(answer + b"NEXT"), 256)  # a small buffer: lines and data cross refills
    head = http_wire.read_head(reader)
    framed = http_wire.Body(reader, head)
    data = b"".join(iter(lambda: framed.read1(97), b""))
    assert reader.read() == b"NEXT"  # nothing of the following answer consumed
    return head.status, data, framed.keeps_connection


def _lab_reads(request: bytes, cuts: list[int], max_body: int = 100_000) -> tuple[http11._Request, bytes]:
    reading, buf, got, pos = http11._Reading(), bytearray(), None, 0
    for cut in [*cuts, len(request)]:
        buf += request[pos : pos + cut]
        pos += cut
        got = reading.take(buf, max_body) if got is None else got
    buf += request[pos:] + b"NEXT"
    got = reading.take(buf, max_body) if got is None else got
    assert got is not None
    return got, bytes(buf)


@st.composite
def _framed(draw: st.DrawFn) -> tuple[bytes, bytes, list[int]]:
    """(body, its framing field and framed bytes, where to cut them): Content-Length, or chunked at arbitrary
    sizes with or without extensions and trailers."""
    body, cuts = draw(_bodies), draw(_cuts)
    if not draw(st.booleans()):
        return body, b"Content-Length: %d\r\n\r\n" % len(body) + body, cuts
    framed = _chunked(body, cuts, draw(st.booleans()), draw(st.booleans()))
    return body, b"Transfer-Encoding: chunked\r\n\r\n" + framed, cuts


@settings(max_examples=60, deadline=None)
@given(message=_framed())
def test_an_answer_reads_back_as_it_was_framed(message: tuple[bytes, bytes, list[int]]) -> None:
    body, framed, _ = message
    answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nServer: x\r\n" + framed
    assert _client_reads(answer) == (200, body, True)


@settings(max_examples=60, deadline=None)
@given(message=_framed())
def test_a_request_reads_back_however_it_is_cut(message: tuple[bytes, bytes, list[int]]) -> None:
    body, framed, cuts = message
    (method, target, headers, data, keep, too_large), rest = _lab_reads(
        b"POST /wsman HTTP/1.1\r\nHost: pc\r\n" + framed, cuts
    )
    assert (method, target, headers["host"], data, keep, too_large) == ("POST", "/wsman", "pc", body, True, False)
    assert rest == b"NEXT"  # the next pipelined request stays in the buffer


# ----------------------------------------------------------------------------------------------------- hostile


def test_a_huge_chunk_size_line_is_refused_by_both_without_reading_on() -> None:
    endless = b"1" + b";" * 10_000_000
    reader = io.BufferedReader(io.BytesIO(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + endless))
    body = http_wire.Body(reader, http_wire.read_head(reader))
    with pytest.raises(http_wire.BadAnswer, match="chunk-size line longer than 65536"):
        body.read1(100)
    assert reader.tell() < 70_000 + 100  # read no further than the bound
    reading = http11._Reading()
    buf = bytearray(b"POST / HTTP/1.1\r\nHost: pc\r\nTransfer-Encoding: chunked\r\n\r\n" + endless[:2000])
    with pytest.raises(http1.MessageError, match="chunk-size line longer than 1024"):
        reading.take(buf, 100_000)


def test_a_request_dripped_a_byte_at_a_time_is_read_in_linear_time() -> None:
    """2,560 one-byte chunks (15 KB), one byte per call: the reader resumes where it stopped (one that parsed the
    buffer from its start on every call would need tens of seconds here)."""
    body = bytes(range(256)) * 10
    request = (
        b"POST /wsman HTTP/1.1\r\nHost: pc\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"1\r\n%c\r\n" % byte for byte in body)
        + b"0\r\n\r\n"
    )
    reading, buf, got = http11._Reading(), bytearray(), None
    started = time.process_time()
    for byte in request:
        buf.append(byte)
        got = reading.take(buf, 100_000)
        assert got is None or len(buf) == 0
    assert got is not None and got[3] == body
    assert time.process_time() - started < 5


def test_a_chunked_request_over_the_limit_is_too_large_at_its_size_line() -> None:
    request = b"POST / HTTP/1.1\r\nHost: pc\r\nTransfer-Encoding: chunked\r\n\r\n" + b"fffff\r\n"
    got, _ = _lab_reads(request, [])
    assert got[3:] == (b"", False, True)
