"""CPU of HTTP/1.1 parsing per message, warm, in one process, no network (in-memory buffers only): kmsfleet's own
reader and protocol against h11 (sans-IO, pure Python; the HTTP/1.1 core of httpcore and uvicorn), when h11 is
installed.

    .venv/bin/python benchmarks/http_parse.py [--rounds 3000] [--tree DIR]

- client: write one WinRM POST and read its answer (a 6 KB ``multipart/encrypted`` body, framed by Content-Length
  and chunked), head and body, as the lean sender does (``transport.http_wire`` over one buffered reader per
  connection; h11: ``Connection(CLIENT)``, one per connection, ``start_next_cycle`` between messages).
- lab: take one request (a 6 KB POST) from the connection's buffer and write its answer, as the lab's listeners do
  (``lab.http11.HttpConnection`` on a fake transport, the handler's task included; h11: the same protocol shape
  with ``Connection(SERVER)`` parsing the request and rendering the answer).

``--tree`` measures the code of another checkout (e.g. ``git archive`` of the previous commit) in the same run.
Prints one line per case, then ONE JSON object (CPU µs per message, the fastest of five timed rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BODY = b"x" * 6000
CTYPE = 'multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted";boundary="Encrypted Boundary"'
FIELDS = {
    "Connection": "Keep-Alive",
    "Content-Type": CTYPE,
    "User-Agent": "Python WinRM client",
    "Accept-Encoding": "gzip, deflate",
    "Accept": "*/*",
}
ANSWER_HEAD = [
    "HTTP/1.1 200 ",
    "Server: Microsoft-HTTPAPI/2.0",
    f"Content-Type: {CTYPE}",
    "Date: Mon, 07 Dec 2026 23:50:00 GMT",
]


def _answer(chunked: bool) -> bytes:
    if chunked:
        body = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (BODY[:4096], BODY[4096:])) + b"0\r\n\r\n"
        return ("\r\n".join([*ANSWER_HEAD, "Transfer-Encoding: chunked", "", ""])).encode() + body
    return ("\r\n".join([*ANSWER_HEAD, f"Content-Length: {len(BODY)}", "", ""])).encode() + BODY


def _request() -> bytes:
    lines = ["POST /wsman HTTP/1.1", "Host: 127.0.0.1:5985", f"Content-Length: {len(BODY)}"]
    lines += [f"{name}: {value}" for name, value in FIELDS.items()]
    return ("\r\n".join([*lines, "", ""])).encode() + BODY


def _timed(run: Callable[[int], None], rounds: int) -> float:
    """CPU µs per message (the process's CPU clock, so waiting for a core shared with other work does not count):
    the fastest of five rounds of ``rounds`` messages, after one warm-up round."""
    run(rounds)
    samples = []
    for _ in range(5):
        start = time.process_time()
        run(rounds)
        samples.append((time.process_time() - start) / rounds * 1e6)
    return min(samples)


# ------------------------------------------------------------------------------------------------ client side


def client_ours(chunked: bool) -> Callable[[int], None]:
    from orchestrator.transport import http_wire

    wire = _answer(chunked)

    def run(n: int) -> None:
        reader = io.BufferedReader(io.BytesIO(wire * n), 65536)  # one connection: answers one after the other
        for _ in range(n):
            http_wire.request_bytes("/wsman", "127.0.0.1:5985", FIELDS, BODY)
            head = http_wire.read_head(reader)
            body = http_wire.Body(reader, head)
            parts = []
            while data := body.read1(65536):
                parts.append(data)
            assert head.status == 200 and len(b"".join(parts)) == len(BODY) and body.keeps_connection

    return run


def client_h11(chunked: bool) -> Callable[[int], None]:
    import h11

    wire = _answer(chunked)
    fields = [("Host", "127.0.0.1:5985"), ("Content-Length", str(len(BODY))), *FIELDS.items()]

    def run(n: int) -> None:
        conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=256 * 1024)
        for _ in range(n):
            out = conn.send(h11.Request(method="POST", target="/wsman", headers=fields))
            out += conn.send(h11.Data(data=BODY)) + conn.send(h11.EndOfMessage())
            conn.receive_data(wire)
            head: dict[str, str] = {}
            parts = []
            while True:
                event = conn.next_event()
                if isinstance(event, h11.Response):
                    for name, value in event.headers:
                        key = name.decode("latin-1")
                        text = value.decode("latin-1")
                        head[key] = f"{head[key]}, {text}" if key in head else text
                elif isinstance(event, h11.Data):
                    parts.append(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    break
            assert len(b"".join(parts)) == len(BODY) and "content-type" in head
            conn.start_next_cycle()

    return run


# --------------------------------------------------------------------------------------------------- lab side


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.sent += len(data)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        raise AssertionError("closed")

    def abort(self) -> None:
        raise AssertionError("aborted")

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def _answer_headers() -> list[tuple[str, str]]:
    return [("Server", "Microsoft-HTTPAPI/2.0"), ("Content-Type", CTYPE)]


def lab_ours() -> Callable[[int], None]:
    from orchestrator.lab.http11 import HttpRequest, HttpResponse, HttpServer

    async def handler(request: HttpRequest) -> HttpResponse:
        assert len(request.body) == len(BODY)
        return HttpResponse(200, BODY, _answer_headers())

    wire = _request()

    async def serve(n: int) -> None:
        server = HttpServer(handler, max_body=512 * 1024, keepalive_s=120, on_open=_noop, on_close=_noop)
        conn = server()
        transport = _Transport()
        conn.connection_made(transport)
        for _ in range(n):
            conn.data_received(wire)
            task = conn.task
            assert task is not None
            await task
        assert transport.sent > n * len(BODY)
        conn.connection_lost(None)

    return lambda n: asyncio.run(serve(n))


def lab_h11() -> Callable[[int], None]:
    import h11

    async def handler(body: bytes) -> tuple[int, bytes, list[tuple[str, str]]]:
        assert len(body) == len(BODY)
        return 200, BODY, _answer_headers()

    wire = _request()

    async def answer(conn: h11.Connection, transport: _Transport, body: bytes) -> None:
        status, data, headers = await handler(body)
        fields = [*headers, ("Content-Length", str(len(data))), ("Date", "Mon, 07 Dec 2026 23:50:00 GMT")]
        out = conn.send(h11.Response(status_code=status, headers=fields))
        out += conn.send(h11.Data(data=data)) + conn.send(h11.EndOfMessage())
        transport.write(out)
        conn.start_next_cycle()

    async def serve(n: int) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=72 * 1024)
        transport = _Transport()
        loop = asyncio.get_running_loop()
        for _ in range(n):
            conn.receive_data(wire)
            parts = []
            while True:
                event = conn.next_event()
                if isinstance(event, h11.Data):
                    parts.append(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    break
            await loop.create_task(answer(conn, transport, b"".join(parts)))
        assert transport.sent > n * len(BODY)

    return lambda n: asyncio.run(serve(n))


def _noop(*_args: object) -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3000)
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args()
    rounds = max(10, min(args.rounds, 100_000))  # bounded: at most 6 × 100,000 in-memory messages per case
    sys.path.insert(0, str(args.tree.resolve()))
    cases: dict[str, Callable[[int], None]] = {
        "client_content_length_ours": client_ours(False),
        "client_chunked_ours": client_ours(True),
        "lab_request_ours": lab_ours(),
    }
    try:
        import h11  # noqa: F401
    except ImportError:
        print("h11 is not installed: only kmsfleet's own parser is measured", file=sys.stderr)
    else:
        cases |= {
            "client_content_length_h11": client_h11(False),
            "client_chunked_h11": client_h11(True),
            "lab_request_h11": lab_h11(),
        }
    figures = {name: round(_timed(run, rounds), 2) for name, run in cases.items()}
    for name, us in figures.items():
        print(f"{name:32} {us:8.2f} µs/message")
    print(json.dumps({"tree": str(args.tree), "rounds": rounds, "us_per_message": figures}))


if __name__ == "__main__":
    main()
