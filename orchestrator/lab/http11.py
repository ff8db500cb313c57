"""The HTTP/1.1 layer of the WS-Man listeners: what HTTP.sys does in front of WinRM, as far as WinRM clients use
it, as one small ``asyncio.Protocol`` per connection (no request/response objects, no router, no middlewares).

- Requests are read whole (``Content-Length`` or ``Transfer-Encoding: chunked``, RFC 9112 6-7) and handled one
  at a time per connection, in order (pipelined requests wait in the buffer; RFC 9112 9.3.2).
- Limits bound memory: the request head (line + fields) at ``MAX_HEAD`` bytes (400 and close past it), the body
  at the server's ``max_body`` (the handler sees ``too_large`` and answers 413; the connection is then closed, the
  rest of the body unread, as HTTP.sys does for a request over its limit).
- Persistent connections (RFC 9112 9.3): HTTP/1.1 stays open unless either side says ``Connection: close``;
  HTTP/1.0 closes unless the client asked for keep-alive. An idle connection is closed after ``keepalive_s``.
- A head that no HTTP/1.x client sends (no request line, a field without a colon, HTTP/1.1 without ``Host``)
  is answered 400 and the connection closed (RFC 9112 3.2, 5).
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

log = logging.getLogger(__name__)

MAX_HEAD = 65536 + 8192  # request line + header fields (aiohttp's former limits: 8190-byte line, 64 KiB fields)
MAX_FIELDS = 128
MAX_CHUNKS = 4096  # chunks in one chunked body (WinRM clients send Content-Length; this only bounds the work)
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


class _BadRequest(Exception):
    pass


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
    __slots__ = ("_buf", "_discard", "_idle", "_last", "server", "task", "transport")

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None
        self._buf = bytearray()
        self._discard = False  # the rest of a body over the limit: never read, the connection closes after the 413
        self._idle: asyncio.TimerHandle | None = None
        self._last = 0.0  # loop time of the last answer (or of the connection's start)

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
            parsed = _parse(self._buf, self.server.max_body)
        except _BadRequest:
            self._write(HttpResponse(400, close=True), keep_alive=False)
            return
        if parsed is None:
            return
        method, target, version, headers, body, used, too_large = parsed
        del self._buf[:used]
        if too_large:
            self._buf.clear()
            self._discard = True
        path = unquote(_origin_path(target))
        request = HttpRequest(method, path, headers, body, self, too_large)
        keep_alive = _keep_alive(version, headers.get("connection", "")) and not too_large
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


_Parsed = tuple[str, str, str, dict[str, str], bytes, int, bool]


def _parse(buf: bytearray, max_body: int) -> _Parsed | None:
    """(method, target, version, headers, body, bytes used, too_large) of the first complete request in ``buf``,
    None while it is incomplete; ``_BadRequest`` for what no HTTP/1.x client sends."""
    end = buf.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
    if end < 0:
        if len(buf) > MAX_HEAD:
            raise _BadRequest
        return None
    method, target, version, headers = _head(bytes(buf[:end]))
    start = end + 4
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return _chunked(buf, start, max_body, (method, target, version, headers))
    length_text = headers.get("content-length", "0").strip()
    if not length_text.isdigit():
        raise _BadRequest
    length = int(length_text)
    if length > max_body:
        return method, target, version, headers, b"", start, True
    if len(buf) < start + length:
        return None
    return method, target, version, headers, bytes(buf[start : start + length]), start + length, False


def _head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise _BadRequest from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[2].startswith("HTTP/1."):
        raise _BadRequest
    if len(lines) > MAX_FIELDS + 1:
        raise _BadRequest
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _BadRequest
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    if parts[2] != "HTTP/1.0" and "host" not in headers:  # RFC 9112 3.2: HTTP/1.1 without Host is a 400
        raise _BadRequest
    return parts[0], parts[1], parts[2], headers


def _chunked(buf: bytearray, start: int, max_body: int, head: tuple[str, str, str, dict[str, str]]) -> _Parsed | None:
    """A chunked body (RFC 9112 7.1): size lines in hex, extensions and trailers ignored."""
    chunks: list[bytes] = []
    size_total = 0
    pos = start
    for _ in range(MAX_CHUNKS):
        line_end = buf.find(b"\r\n", pos, pos + 1024)
        if line_end < 0:
            if len(buf) - pos > 1024:
                raise _BadRequest
            return None
        size_text = bytes(buf[pos:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _BadRequest from None
        if size == 0:
            trailer_end = buf.find(b"\r\n\r\n", line_end, line_end + MAX_HEAD)
            if trailer_end < 0 and buf[line_end : line_end + 4] != b"\r\n\r\n":
                return None
            used = (trailer_end if trailer_end >= 0 else line_end) + 4
            return (*head, b"".join(chunks), used, False)
        size_total += size
        if size_total > max_body:
            return (*head, b"", len(buf), True)
        data_start = line_end + 2
        if len(buf) < data_start + size + 2:
            return None
        chunks.append(bytes(buf[data_start : data_start + size]))
        pos = data_start + size + 2
    raise _BadRequest


def _origin_path(target: str) -> str:
    """The path of a request target: origin-form as sent, absolute-form without scheme and authority (RFC 9112
    3.2.2), the query dropped."""
    if "://" in target[:8]:
        target = "/" + target.split("://", 1)[1].partition("/")[2]
    return target.split("?", 1)[0]


def _keep_alive(version: str, connection: str) -> bool:
    tokens = {t.strip().lower() for t in connection.split(",")}
    if version == "HTTP/1.0":
        return "keep-alive" in tokens
    return "close" not in tokens


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
