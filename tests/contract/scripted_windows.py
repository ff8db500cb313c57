"""A loopback HTTP server that answers WS-Management requests with recorded Windows answers, in order per action,
so kmsfleet's real transport (pypsrp over a socket) can be checked against other projects' recordings.

Each answer's ``a:RelatesTo`` is set to the request's ``MessageID`` (as Windows does; pypsrp checks it); a stub
whose header was trimmed by its project (WinRb's Receive stubs have an empty ``s:Header``) gets the RelatesTo
element Windows always sends. Nothing else of the recorded text changes. An answer holding ``s:Fault`` goes out
with HTTP 500, as Windows sends faults. Every request is kept (action, selectors, body) for the test to inspect.
Binds 127.0.0.1 only; the server thread stops with the context manager.
"""

from __future__ import annotations

import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

S = "http://www.w3.org/2003/05/soap-envelope"
A = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
W = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
MAX_REQUEST = 1 << 20
_RELATES = re.compile(r"(<a:RelatesTo>)[^<]*(</a:RelatesTo>)")
_HEADER = re.compile(r"<s:Header>")


@dataclass
class Seen:
    action: str
    selectors: dict[str, str]
    body: ET.Element
    raw: bytes


@dataclass
class Script:
    """Recorded answers per short action name (Create, Command, Receive, Send, Signal, Delete)."""

    answers: dict[str, list[str]]
    seen: list[Seen] = field(default_factory=list)

    def next_answer(self, action: str) -> str | None:
        queue = self.answers.get(action)
        if not queue:
            return None
        return queue.pop(0) if len(queue) > 1 else queue[0]  # the last answer repeats (e.g. Signal)


def _parse(data: bytes) -> tuple[str, str, dict[str, str], ET.Element]:
    root = ET.fromstring(data)
    header = root.find(f"{{{S}}}Header")
    body = root.find(f"{{{S}}}Body")
    assert header is not None and body is not None
    action = (header.findtext(f"{{{A}}}Action") or "").rsplit("/", 1)[-1]
    message_id = header.findtext(f"{{{A}}}MessageID") or ""
    selectors = {sel.get("Name", ""): (sel.text or "") for sel in header.iter(f"{{{W}}}Selector")}
    return action, message_id, selectors, body


def relate(answer: str, message_id: str) -> str:
    """The recorded answer with RelatesTo = ``message_id``."""
    if _RELATES.search(answer):
        return _RELATES.sub(lambda m: f"{m.group(1)}{message_id}{m.group(2)}", answer, count=1)
    element = f'<a:RelatesTo xmlns:a="{A}">{message_id}</a:RelatesTo>'
    return _HEADER.sub(lambda m: m.group(0) + element, answer, count=1)


@contextmanager
def scripted_windows(script: Script) -> Iterator[int]:
    """Serve ``script`` on 127.0.0.1:<port>/wsman; yields the port."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            del format, args

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_REQUEST:
                self._reply(413, b"")
                return
            raw = self.rfile.read(length)
            action, message_id, selectors, body = _parse(raw)
            script.seen.append(Seen(action, selectors, body, raw))
            answer = script.next_answer(action)
            if answer is None:
                self._reply(400, b"")
                return
            text = relate(answer, message_id)
            status = 500 if f"{{{S}}}Fault" in {el.tag for el in ET.fromstring(text.encode()).iter()} else 200
            self._reply(status, text.encode("utf-8"))

        def _reply(self, status: int, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/soap+xml;charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
