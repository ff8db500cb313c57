"""The HTTP/1.1 layer of the WS-Man listeners: what HTTP.sys does in front of WinRM, as far as WinRM clients use
it, as one small ``asyncio.Protocol`` per connection (no request/response objects, no router, no middlewares).

- Requests are read whole (``Content-Length`` or ``Transfer-Encoding: chunked``, RFC 9112 6-7) and handled one
  at a time per connection, in order (pipelined requests wait in the buffer; RFC 9112 9.3.2). The syntax (request
  line, fields, framing, chunked coding, persistence) is ``orchestrator.http1``'s, shared with the client's answer
  reader; this module finds the lines and bytes in the connection's buffer, resuming where the last data ended, so
  a request that arrives a byte at a time costs no more to read than one that arrives whole.
- Limits bound memory: the request head (line + fields) at ``MAX_HEAD`` bytes (400 and close past it), the body
  at the server's ``max_body`` (the handler sees ``too_large`` and answers 413; the connection is then closed, the
  rest of the body unread, as HTTP.sys does for a request over its limit).
- Persistent connections (RFC 9112 9.3): HTTP/1.1 stays open unless either side says ``Connection: close``;
  HTTP/1.0 closes unless the client asked for keep-alive. An idle connection is closed after ``keepalive_s``.
- A head that no HTTP/1.x client sends (no request line, a field without a colon, a folded field, HTTP/1.1 without
  ``Host``, a transfer coding other than chunked, an invalid Content-Length, a malformed chunk) is answered 400 and
  the connection closed (RFC 9112 3.2, 5, 6.3). A request with both Transfer-Encoding and Content-Length is read
  chunked and the connection closed after its answer (RFC 9112 6.3).
- Every answer carries ``Date`` and ``Content-Length`` (RFC 9110 6.6.1, 8.6), as HTTP.sys's do; a handler's
  ``drop`` aborts the connection without an answer.
A handler's coroutine is not cancelled when the client goes away (it finishes and its answer is discarded), so a
service's bookkeeping never stops half-way; ``close_all`` aborts what is left when the lab stops.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from urllib.parse import unquote

from orchestrator import http1

log = logging.getLogger(__name__)

MAX_HEAD = 65536 + 8192  # request line + header fields (aiohttp's former limits: 8190-byte line, 64 KiB fields)
MAX_FIELDS = 128
MAX_CHUNKS = 4096  # chunks in one chunked body (WinRM clients send Content-Length; this only bounds the work)
MAX_CHUNK_LINE = 1024  # one chunk-size line, extensions included
LIMITS = http1.Limits(
    line=MAX_HEAD, chunk_line=MAX_CHUNK_LINE, fields=MAX_FIELDS, head=MAX_HEAD, chunks=MAX_CHUNKS, obs_fold=False
)
_REASONS = {s.value: s.phrase for s in HTTPStatus}


@dataclass(slots=True)
class HttpRequest:
    method: str
    path: str  # percent-decoded, without the query
    headers: dict[str, str]  # lower-case names; repeated fields joined with ", " (RFC 9110 5.3)
    body: bytes
    protocol: HttpConnection
    too_large: bool = False  # the body passes the server's limit and was not read

    @property
    def transport(self) -> asyncio.Transport | None:
        return self.protocol.transport


@dataclass(slots=True)
class HttpResponse:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False  # close the connection after this answer
    drop: bool = False  # abort the connection, answer nothing


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


class HttpServer:
    """The protocol factory for every listener of one front end, and the set of its open connections."""

    def __init__(
        self,
        handler: Handler,
        *,
        max_body: int,
        keepalive_s: float,
        on_open: Callable[[HttpConnection, asyncio.Transport], None],
        on_close: Callable[[HttpConnection], None],
    ) -> None:
        self.handler = handler
        self.max_body = max_body
        self.keepalive_s = keepalive_s
        self.on_open = on_open
        self.on_close = on_close
        self.connections: set[HttpConnection] = set()

    def __call__(self) -> HttpConnection:
        return HttpConnection(self)

    async def close_all(self, grace_s: float) -> None:
        """Let answers in progress finish for up to ``grace_s``, then abort every connection."""
        busy = [c.task for c in self.connections if c.task is not None]
        if busy:
            await asyncio.wait(busy, timeout=grace_s)
        for conn in list(self.connections):
            conn.abort()
        for task in busy:
            task.cancel()


class HttpConnection(asyncio.Protocol):
    __slots__ = ("_buf", "_discard", "_idle", "_last", "_reading", "server", "task", "transport")

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None
        self._buf = bytearray()
        self._discard = False  # the rest of a body over the limit: never read, the connection closes after the 413
        self._idle: asyncio.TimerHandle | None = None
        self._last = 0.0  # loop time of the last answer (or of the connection's start)
        self._reading = _Reading()

    # ---- asyncio.Protocol ------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.connections.add(self)
        self.server.on_open(self, transport)
        if not transport.is_closing():
            self._touch()

    def data_received(self, data: bytes) -> None:
        if self._discard:
            return
        self._buf += data
        if len(self._buf) > MAX_HEAD + self.server.max_body + 65536:  # more than one whole request can need
            self.abort()
        elif self.task is None:
            self._next_request()

    def eof_received(self) -> bool | None:
        return None  # the client finished sending: close once nothing is left to answer

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_idle()
        self.server.connections.discard(self)
        self.server.on_close(self)
        self.transport = None
        self._buf.clear()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # ---- requests ------------------------------------------------------------------------------------------
    def _next_request(self) -> None:
        """Start the next complete request in the buffer, if there is one."""
        if self.transport is None or self.transport.is_closing():
            return
        try:
            parsed = self._reading.take(self._buf, self.server.max_body)
        except http1.MessageError:
            self._write(HttpResponse(400, close=True), keep_alive=False)
            return
        if parsed is None:
            return
        method, target, headers, body, keep_alive, too_large = parsed
        if too_large:
            self._buf.clear()
            self._discard = True
        path = unquote(_origin_path(target))
        request = HttpRequest(method, path, headers, body, self, too_large)
        self.task = asyncio.get_running_loop().create_task(self._serve(request, keep_alive))

    async def _serve(self, request: HttpRequest, keep_alive: bool) -> None:
        try:
            response = await self.server.handler(request)
        except Exception:  # a bug in the lab: the client sees what HTTP.sys sends for a crashed listener
            log.exception("lab request handler failed")
            response = HttpResponse(500, close=True)
        self.task = None
        if response.drop:
            self.abort()
            return
        self._write(response, keep_alive and not response.close)
        if self.transport is not None and not self.transport.is_closing():
            self._touch()
            if self._buf:
                self._next_request()

    def _write(self, response: HttpResponse, keep_alive: bool) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(_render(response, keep_alive))
        if not keep_alive:
            transport.close()

    # ---- idle connections ------------------------------------------------------------------------------------
    # One timer per connection, moved only when it fires: answering a request just notes the time.
    def _touch(self) -> None:
        loop = asyncio.get_running_loop()
        self._last = loop.time()
        if self._idle is None:
            self._idle = loop.call_at(self._last + self.server.keepalive_s, self._idle_out)

    def _disarm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _idle_out(self) -> None:
        self._idle = None
        if self.transport is None:
            return
        if self.task is not None:  # busy (a long-polling Receive, a hung request): idle only after its answer
            self._touch()
            return
        due = self._last + self.server.keepalive_s
        if asyncio.get_running_loop().time() < due:
            self._idle = asyncio.get_running_loop().call_at(due, self._idle_out)
            return
        self.transport.close()


_Request = tuple[str, str, dict[str, str], bytes, bool, bool]  # method, target, headers, body, keep_alive, too_large


_NO_FRAMING = http1.Framing(http1.LENGTH, 0, False)


class _Reading:
    """The request being read from a connection's buffer: its head once whole, then its body. It resumes where it
    stopped, so the buffer is scanned once however the request is cut into packets."""

    __slots__ = ("_body", "_chunks", "_framing", "_head", "_pos", "_size")

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._head: tuple[str, str, str, dict[str, str]] | None = None  # method, target, version, headers
        self._framing = _NO_FRAMING
        self._chunks: http1.ChunkedBody | None = None
        self._body: list[bytes] = []
        self._pos = 0  # where reading resumes in the buffer
        self._size = 0  # bytes of chunk data announced so far

    def take(self, buf: bytearray, max_body: int) -> _Request | None:
        """The first request of ``buf``, removed from it; None while it is incomplete (what was read is kept);
        ``http1.MessageError`` for what no HTTP/1.x client sends."""
        if self._head is None and not self._read_head(buf):
            return None
        assert self._head is not None
        method, target, _, headers = self._head
        framing = self._framing
        if framing.kind == http1.CHUNKED:
            done = self._read_chunks(buf, max_body)
            if done is None:
                return None
            body, too_large = (b"".join(self._body), False) if done else (b"", True)
        elif framing.length > max_body:
            body, too_large = b"", True
        elif len(buf) < self._pos + framing.length:
            return None
        else:
            body, too_large = bytes(buf[self._pos : self._pos + framing.length]), False
            self._pos += framing.length
        del buf[: self._pos]
        self._reset()  # ready for the next request
        return method, target, headers, body, framing.keeps_connection and not too_large, too_large

    def _read_head(self, buf: bytearray) -> bool:
        end = buf.find(b"\r\n\r\n", max(0, self._pos - 3), MAX_HEAD + 4)
        if end < 0:
            if len(buf) > MAX_HEAD:
                raise http1.MessageError(f"a request head over {MAX_HEAD} bytes")
            self._pos = len(buf)
            return False
        lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
        method, target, version = http1.request_line(lines[0])
        headers = http1.parse_fields(lines[1:], LIMITS)
        if version != "HTTP/1.0" and "host" not in headers:  # RFC 9112 3.2: HTTP/1.1 without Host is a 400
            raise http1.MessageError("an HTTP/1.1 request without Host")
        self._framing = http1.request_framing(version, headers)
        if self._framing.kind == http1.CHUNKED:
            self._chunks = http1.ChunkedBody(LIMITS)
        self._head = method, target, version, headers
        self._pos = end + 4
        return True

    def _read_chunks(self, buf: bytearray, max_body: int) -> bool | None:
        """Read on in a chunked body: True when whole, False when past ``max_body`` (the rest is never read),
        None while incomplete."""
        chunks = self._chunks
        assert chunks is not None
        while not chunks.done:
            pos = self._pos
            if chunks.wants_line:
                limit = chunks.line_limit
                end = buf.find(b"\r\n", pos, pos + limit + 2)
                if end < 0:
                    if len(buf) - pos > limit + 1:
                        raise http1.too_long(chunks.line_name, limit)
                    return None
                chunks.line(bytes(buf[pos : end + 2]))
                self._pos = end + 2
                if not chunks.wants_line:
                    self._size += chunks.left
                    if self._size > max_body:
                        self._pos = len(buf)
                        return False
                continue
            size = min(chunks.left, len(buf) - pos)
            if not size:
                return None
            self._body.append(bytes(buf[pos : pos + size]))
            self._pos = pos + size
            chunks.took(size)
        return True


def _origin_path(target: str) -> str:
    """The path of a request target: origin-form as sent, absolute-form without scheme and authority (RFC 9112
    3.2.2), the query dropped."""
    if "://" in target[:8]:
        target = "/" + target.split("://", 1)[1].partition("/")[2]
    return target.split("?", 1)[0]


_dates: dict[int, str] = {}


def _date() -> str:
    """The Date field (IMF-fixdate), formatted once a second."""
    now = int(time.time())
    text = _dates.get(now)
    if text is None:
        _dates.clear()
        text = _dates[now] = formatdate(now, usegmt=True)
    return text


def _render(response: HttpResponse, keep_alive: bool) -> bytes:
    status = response.status
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
    lines.extend(f"{name}: {value}" for name, value in response.headers)
    lines.append(f"Content-Length: {len(response.body)}")
    lines.append(f"Date: {_date()}")
    if not keep_alive:
        lines.append("Connection: close")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1") + response.body
