"""The lab's HTTP/1.1 layer (lab/http11.py) over real loopback sockets: whole requests (Content-Length or
chunked), pipelined requests answered in order, persistent connections closed when either side says so or
after the idle time, bounded heads and bodies (400 / 413 then close), and the answers' framing fields."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from wirekit import StartLab

from orchestrator.lab.http11 import MAX_HEAD, HttpRequest, HttpResponse, HttpServer

Exchange = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _echo(request: HttpRequest) -> HttpResponse:
    if request.too_large:
        return HttpResponse(413, close=True)
    text = f"{request.method} {request.path} {len(request.body)} {request.headers.get('x-tag', '')}"
    return HttpResponse(200, text.encode(), [("Server", "Microsoft-HTTPAPI/2.0")])


def _run(exchange: Exchange, *, max_body: int = 1000, keepalive_s: float = 30.0) -> None:
    async def main() -> None:
        server = HttpServer(_echo, max_body=max_body, keepalive_s=keepalive_s, on_open=_noop, on_close=_noop)
        listener = await asyncio.get_running_loop().create_server(server, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            await asyncio.wait_for(exchange(reader, writer), 10)
        finally:
            writer.close()
            listener.close()
            await server.close_all(0.5)

    asyncio.run(main())


def _noop(*_args: object) -> None:
    return None


async def _answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ")[1])
    fields = dict(line.split(": ", 1) for line in head[1:] if line)
    body = await reader.readexactly(int(fields["Content-Length"]))
    return status, {k.lower(): v for k, v in fields.items()}, body


def _post(path: str, body: bytes, *extra: str) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}", *extra, "", ""]
    return "\r\n".join(head).encode() + body


def test_pipelined_requests_are_answered_in_order_on_one_connection() -> None:
    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(_post("/wsman", b"a" * 10, "X-Tag: one") + _post("/wsman?x=1", b"b" * 20, "X-Tag: two"))
        first, second = await _answer(reader), await _answer(reader)
        assert first[0] == second[0] == 200
        assert first[2] == b"POST /wsman 10 one" and second[2] == b"POST /wsman 20 two"
        assert "date" in first[1] and first[1]["server"] == "Microsoft-HTTPAPI/2.0"
        assert "connection" not in first[1]  # HTTP/1.1: the connection stays open

    _run(exchange)


def test_a_body_split_over_many_writes_and_a_chunked_body_are_read_whole() -> None:
    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = _post("/wsman", b"x" * 300)
        for i in range(0, len(request), 7):
            writer.write(request[i : i + 7])
            await writer.drain()
        assert (await _answer(reader))[2] == b"POST /wsman 300 "
        chunked = (
            b"POST /wsman HTTP/1.1\r\nHost: pc\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        writer.write(chunked)
        assert (await _answer(reader))[2] == b"POST /wsman 11 "

    _run(exchange)


def test_an_absolute_form_target_is_served_by_its_path() -> None:
    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(_post("http://127.0.0.1:5985/wsman?x=1", b"abc"))
        assert (await _answer(reader))[2] == b"POST /wsman 3 "

    _run(exchange)


def test_connection_close_and_http10_close_after_the_answer() -> None:
    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(_post("/wsman", b"", "Connection: close"))
        status, fields, _ = await _answer(reader)
        assert status == 200 and fields["connection"] == "close"
        assert await reader.read() == b""

    _run(exchange)

    async def http10(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        assert (await _answer(reader))[2] == b"GET / 0 "
        assert await reader.read() == b""

    _run(http10)


def test_an_idle_connection_is_closed_after_the_keepalive_time() -> None:
    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(_post("/wsman", b"x"))
        assert (await _answer(reader))[0] == 200
        started = asyncio.get_running_loop().time()
        assert await reader.read() == b""
        assert asyncio.get_running_loop().time() - started < 5

    _run(exchange, keepalive_s=0.2)


def test_a_body_over_the_limit_is_answered_unread_and_the_connection_closed() -> None:
    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(_post("/wsman", b"y" * 5000))
        writer.write(b"z" * 200_000)  # the rest of the body keeps coming: discarded, not buffered
        status, fields, _ = await _answer(reader)
        assert status == 413 and fields["connection"] == "close"
        try:  # closed with the body's rest unread: the client sees the end or a reset, nothing more
            assert await reader.read() == b""
        except ConnectionResetError:
            pass

    _run(exchange, max_body=1000)


def test_malformed_and_oversized_heads_get_400_and_close() -> None:
    bad_heads = (
        b"NONSENSE\r\n\r\n",
        b"POST /wsman HTTP/1.1\r\nHost: pc\r\nno colon here\r\n\r\n",
        b"POST /wsman HTTP/1.1\r\nContent-Length: 0\r\n\r\n",  # HTTP/1.1 without Host
        b"POST / HTTP/1.1\r\nX: y\r\n",
        b"POST / HTTP/1.1\r\nHost: pc\r\nX: one\r\n two\r\n\r\n",  # obsolete folding (RFC 9112 5.2: may refuse)
        b"POST / HTTP/1.1\r\nHost: pc\r\n" + b"X: y\r\n" * 200 + b"\r\n",  # more than MAX_FIELDS
        b"POST / HTTP/1.1\r\nHost: pc\r\nTransfer-Encoding: gzip\r\n\r\n",  # RFC 9112 6.3: not chunked last
        b"POST / HTTP/1.1\r\nHost: pc\r\nContent-Length: 5, 6\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: pc\r\nTransfer-Encoding: chunked\r\n\r\n1" + b";" * 2000 + b"\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: pc\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
    )
    for bad in bad_heads:
        payload = bad if b"\r\n\r\n" in bad else bad + b"X-Pad: " + b"p" * (MAX_HEAD + 10)

        async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes = payload) -> None:
            writer.write(data)
            status, fields, _ = await _answer(reader)
            assert status == 400 and fields["connection"] == "close"
            assert await reader.read() == b""

        _run(exchange)


def test_a_request_with_both_lengths_is_read_chunked_and_the_connection_closed() -> None:
    """RFC 9112 6.3: Transfer-Encoding overrides Content-Length, and the server closes the connection after its
    answer (the message might have been meant to end elsewhere)."""

    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = b"POST /wsman HTTP/1.1\r\nHost: pc\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        writer.write(head + b"5\r\nhello\r\n0\r\n\r\n" + _post("/wsman", b"never read"))
        status, fields, body = await _answer(reader)
        assert (status, body, fields["connection"]) == (200, b"POST /wsman 5 ", "close")
        assert await reader.read() == b""

    _run(exchange)


def test_the_lab_reads_a_chunked_anonymous_identify(start_lab: StartLab) -> None:
    """A client that streams its body (chunked) gets the same anonymous Identify answer as one that does not."""
    lab = start_lab()
    identify = (
        b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        b'xmlns:wsmid="http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd">'
        b"<s:Header/><s:Body><wsmid:Identify/></s:Body></s:Envelope>"
    )

    async def main() -> bytes:
        reader, writer = await asyncio.open_connection(lab.hosts[0].address, 5985)
        try:
            head = "POST /wsman HTTP/1.1\r\nHost: pc\r\nContent-Type: application/soap+xml;charset=UTF-8\r\n"
            head += "WSMANIDENTIFY: unauthenticated\r\nTransfer-Encoding: chunked\r\n\r\n"
            half = len(identify) // 2
            body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (identify[:half], identify[half:]))
            writer.write(head.encode() + body + b"0\r\n\r\n")
            status, _, answer = await asyncio.wait_for(_answer(reader), 10)
            assert status == 200
            return answer
        finally:
            writer.close()

    assert b"<wsmid:ProductVendor>Microsoft Corporation</wsmid:ProductVendor>" in asyncio.run(main())
