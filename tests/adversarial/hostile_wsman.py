"""Hostile WS-Management endpoints for the adversarial suite: small raw-asyncio HTTP servers on loopback, written
here (not lab features, so nothing in the lab can switch them off). Each plays one attack; each counts what it
sent and stops at its own byte cap, so a client that does not bound itself fails the test instead of eating the
machine.

Behaviours (``kind``):
- ``gzip_bomb``: every request gets a 401 ``WWW-Authenticate: Negotiate`` whose body is 1 MiB of gzip that
  inflates to 1 GiB — before any sign-in.
- ``huge_body``: every request gets a 200 whose chunked body streams 512 MiB generated on the fly.
- ``ntlm_loop``: every request gets a 401 carrying a fresh NTLM CHALLENGE, forever (pypsrp's ``handle_401`` keeps
  answering a completed NTLM context with another token).
- ``slowloris``: a 200 announcing 100 kB, then one byte every 0.2 s.
- ``slow_headers``: a status line, then one header line that grows by a byte every 0.2 s and never ends.
- ``endless_stdout``: a WinRS (Basic sign-in) whose command never ends: every Receive answers 8 MiB of stdout.
- ``escapes``: a WinRS whose command prints terminal escape sequences (window title, clear screen, colours, C1
  CSI) and exits 1.
- ``endless_pull``: a WMI enumeration (Basic sign-in) that never ends: Enumerate and every Pull answer one
  ~64 KiB item and a fresh context, never ``EndOfSequence``.
- ``many_items``: an Enumerate answered with 100,000 items at once (about 4 MiB).
- ``tiny_elements``: an Enumerate whose one item holds 15 MiB of empty elements (about 4 million).
- ``slow_pull``: the endless enumeration again, each answer sent 1.5 s late: under every per-exchange timeout
  (operation 3 s, read 5 s), so only the PC's whole budget can end it.
- ``deep_nesting``: an Enumerate whose one property nests 5,000 elements deep (past Python's recursion limit).
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import threading
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from spnego._ntlm_raw.messages import AvId, Challenge, NegotiateFlags, TargetInfo

MiB = 1024 * 1024
BOMB_INFLATED = 1024 * MiB
HUGE_BODY = 512 * MiB
STDOUT_CHUNK = 8 * MiB
SEND_CAP = 96 * MiB  # no server sends more than this (the huge body: until the client hangs up or this)
ESCAPE_STDOUT = (
    "\x1b]0;owned by the PC\x07\x1b[2J\x1b[H\x1b[31mALERT\x1b[0m\r\n"
    "\x9b31mC1\x1b[0m \x1bPq#0;2;0;0;0\x1b\\ tail \x08\x08\x07\x1b]8;;http://evil.example/\x1b\\link\r\n"
)

_ACTION = re.compile(rb"<(?:\w+:)?Action[^>]*>([^<]+)</")
_MESSAGE_ID = re.compile(rb"<(?:\w+:)?MessageID[^>]*>([^<]+)</")
_SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
_ENUMERATION = "http://schemas.xmlsoap.org/ws/2004/09/enumeration"
_CIMV2 = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2"
MANY_ITEMS = 100_000
DEEP = 5_000
SLOW_ANSWER = 1.5
SMALL_ITEM = "<p:Win32_OperatingSystem><p:CSName>PC</p:CSName></p:Win32_OperatingSystem>"
_SOAP = "Content-Type: application/soap+xml;charset=UTF-8\r\n"


def gzip_bomb() -> bytes:
    """1 GiB of zeros as gzip: one member holding 1 MiB of zeros, repeated (RFC 1952 §2.2: a gzip file is a series
    of members; urllib3's decoder, like gzip(1), inflates them all). About 1 MiB on the wire, made instantly."""
    member = zlib.compress(bytes(MiB), 9, wbits=31)
    return member * (BOMB_INFLATED // MiB)


def ntlm_challenge() -> bytes:
    flags = (
        NegotiateFlags.unicode
        | NegotiateFlags.ntlm
        | NegotiateFlags.extended_session_security
        | NegotiateFlags.target_info
        | NegotiateFlags.sign
        | NegotiateFlags.seal
        | NegotiateFlags.key_128
        | NegotiateFlags.key_56
        | NegotiateFlags.key_exch
        | NegotiateFlags.always_sign
    )
    info = TargetInfo()
    info[AvId.nb_computer_name] = "HOSTILE"
    info[AvId.nb_domain_name] = "HOSTILE"
    packed: bytes = Challenge(flags=flags, server_challenge=os.urandom(8), target_info=info).pack()
    return packed


def _envelope(action: str, relates_to: str, body: str) -> bytes:
    return (
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
        'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" '
        'xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" '
        f'xmlns:rsp="{_SHELL}"><s:Header><a:Action>{action}</a:Action>'
        f"<a:MessageID>uuid:{str(uuid.uuid4()).upper()}</a:MessageID>"
        "<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
        f"<a:RelatesTo>{relates_to}</a:RelatesTo></s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


@dataclass
class Hostile:
    """One hostile endpoint; ``sent``/``requests`` are what it did (read after the run)."""

    kind: str
    address: str
    port: int = 5985
    sent: int = 0
    requests: int = 0
    capped: bool = False
    _server: asyncio.Server | None = field(default=None, repr=False)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set, repr=False)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.address, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):  # kept-alive client connections: end them before the loop stops
                writer.close()
            await self._server.wait_closed()

    async def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        if self.sent + len(data) > SEND_CAP:
            self.capped = True
            raise ConnectionAbortedError("send cap reached")
        self.sent += len(data)
        writer.write(data)
        await writer.drain()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                body = await reader.readexactly(int(length.group(1))) if length else b""
                self.requests += 1
                if not await getattr(self, "_" + self.kind)(writer, body):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    # ------------------------------------------------------------------ attacks (True: keep the connection)

    async def _gzip_bomb(self, writer: asyncio.StreamWriter, body: bytes) -> bool:
        bomb = BOMB
        head = (
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Negotiate\r\nContent-Type: text/html\r\n"
            f"Content-Encoding: gzip\r\nContent-Length: {len(bomb)}\r\n\r\n"
        )
        await self._write(writer, head.encode() + bomb)
        return True

    async def _huge_body(self, writer: asyncio.StreamWriter, body: bytes) -> bool:
        head = f"HTTP/1.1 200 OK\r\n{_SOAP}Transfer-Encoding: chunked\r\n\r\n"
        await self._write(writer, head.encode())
        block = b"<s:Envelope>" + b"A" * (MiB - 12)
        chunk = f"{len(block):x}\r\n".encode() + block + b"\r\n"
        for _ in range(HUGE_BODY // MiB):
            await self._write(writer, chunk)
        await self._write(writer, b"0\r\n\r\n")
        return False

    async def _ntlm_loop(self, writer: asyncio.StreamWriter, body: bytes) -> bool:
        token = base64.b64encode(ntlm_challenge()).decode()
        head = f"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Negotiate {token}\r\nContent-Length: 0\r\n\r\n"
        await self._write(writer, head.encode())
        return True

    async def _slowloris(self, writer: asyncio.StreamWriter, body: bytes) -> bool:
        head = f"HTTP/1.1 200 OK\r\n{_SOAP}Content-Length: 100000\r\n\r\n"
        await self._write(writer, head.encode())
        for _ in range(100000):  # bounded by the send cap's spirit: 5 bytes a second, until the client hangs up
            await self._write(writer, b"<")
            await asyncio.sleep(0.2)
        return False

    async def _slow_headers(self, writer: asyncio.StreamWriter, body: bytes) -> bool:
        await self._write(writer, b"HTTP/1.1 200 OK\r\n")
        for _ in range(100000):  # a header line that never ends, 5 bytes a second, until the client hangs up
            await self._write(writer, b"X" if _ else b"X-Trickle: ")
            await asyncio.sleep(0.2)
        return False

    async def _endless_stdout(self, writer: asyncio.StreamWriter, body: bytes) -> bool:
        return await self._winrs(writer, body, STDOUT_B64, done=False)

    async def _escapes(self, writer: asyncio.StreamWriter, body: bytes) -> bool:
        return await self._winrs(writer, body, base64.b64encode(ESCAPE_STDOUT.encode()).decode(), done=True)

    async def _endless_pull(self, writer: asyncio.StreamWriter, body: bytes) -> bool:
        item = f"<p:Win32_OperatingSystem><p:CSName>{'N' * (64 * 1024)}</p:CSName></p:Win32_OperatingSystem>"
        return await self._wmi(writer, body, item)

    async def _slow_pull(self, writer: asyncio.StreamWriter, body: bytes) -> bool:
        await asyncio.sleep(SLOW_ANSWER)
        return await self._wmi(
            writer, body, "<p:Win32_OperatingSystem><p:CSName>PC</p:CSName></p:Win32_OperatingSystem>"
        )

    async def _many_items(self, writer: asyncio.StreamWriter, body: bytes) -> bool:
        return await self._wmi(writer, body, SMALL_ITEM * MANY_ITEMS, end=True)

    async def _tiny_elements(self, writer: asyncio.StreamWriter, body: bytes) -> bool:
        item = "<p:Win32_OperatingSystem>" + "<a/>" * (15 * MiB // 4) + "</p:Win32_OperatingSystem>"
        return await self._wmi(writer, body, item, end=True)

    async def _deep_nesting(self, writer: asyncio.StreamWriter, body: bytes) -> bool:
        deep = "<a>" * DEEP + "x" + "</a>" * DEEP
        item = f"<p:Win32_OperatingSystem><p:CSName>{deep}</p:CSName></p:Win32_OperatingSystem>"
        return await self._wmi(writer, body, item, end=True)

    async def _wmi(self, writer: asyncio.StreamWriter, body: bytes, items: str, *, end: bool = False) -> bool:
        """Just enough of WS-Enumeration for a WQL query over Basic: Enumerate, Pull, Release."""

        def reply_to(verb: str) -> str:
            if verb not in ("Enumerate", "Pull"):
                return ""
            tail = "<w:EndOfSequence/>" if end else f"<n:EnumerationContext>uuid:{uuid.uuid4()}</n:EnumerationContext>"
            return (
                f'<n:{verb}Response xmlns:n="{_ENUMERATION}" xmlns:p="{_CIMV2}/Win32_OperatingSystem">'
                f"<w:Items>{items}</w:Items>{tail}</n:{verb}Response>"
            )

        return await self._soap(writer, body, reply_to)

    async def _soap(self, writer: asyncio.StreamWriter, body: bytes, reply_to: Callable[[str], str]) -> bool:
        """Answer one SOAP request with the body ``reply_to(verb of its Action)`` (400 without an Action)."""
        action_m, mid_m = _ACTION.search(body), _MESSAGE_ID.search(body)
        if action_m is None or mid_m is None:
            await self._write(writer, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return True
        action, mid = action_m.group(1).decode().strip(), mid_m.group(1).decode().strip()
        verb = action.rsplit("/", 1)[-1]
        reply = reply_to(verb)
        data = _envelope(action + "Response", mid, reply)
        head = f"HTTP/1.1 200 OK\r\n{_SOAP}Content-Length: {len(data)}\r\n\r\n"
        await self._write(writer, head.encode() + data)
        return True

    async def _winrs(self, writer: asyncio.StreamWriter, body: bytes, stdout_b64: str, *, done: bool) -> bool:
        """Just enough of a WinRS for pypsrp over Basic: Create, Command, Receive, Signal, Delete."""

        def reply_to(verb: str) -> str:
            shell_id = "0C1F2E3D-4B5A-6978-8796-A5B4C3D2E1F0"
            command_id = "11111111-2222-3333-4444-555555555555"
            if verb == "Create":
                reply = (
                    f"<x:ResourceCreated><a:Address>http://{self.address}:{self.port}/wsman</a:Address>"
                    f"<a:ReferenceParameters><w:ResourceURI>{_SHELL}/cmd</w:ResourceURI><w:SelectorSet>"
                    f'<w:Selector Name="ShellId">{shell_id}</w:Selector></w:SelectorSet></a:ReferenceParameters>'
                    f"</x:ResourceCreated><rsp:Shell><rsp:ShellId>{shell_id}</rsp:ShellId></rsp:Shell>"
                )
            elif verb == "Command":
                reply = f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId></rsp:CommandResponse>"
            elif verb == "Receive":
                state = (
                    f'<rsp:CommandState CommandId="{command_id}" State="{_SHELL}/CommandState/Done">'
                    "<rsp:ExitCode>1</rsp:ExitCode></rsp:CommandState>"
                    if done
                    else f'<rsp:CommandState CommandId="{command_id}" State="{_SHELL}/CommandState/Running"/>'
                )
                reply = (
                    f'<rsp:ReceiveResponse><rsp:Stream Name="stdout" CommandId="{command_id}">{stdout_b64}</rsp:Stream>'
                    f'<rsp:Stream Name="stderr" CommandId="{command_id}">{stdout_b64 if done else ""}</rsp:Stream>'
                    f"{state}</rsp:ReceiveResponse>"
                )
            elif verb == "Signal":
                reply = "<rsp:SignalResponse/>"
            else:  # Delete and anything else: an empty answer
                reply = ""
            return reply

        return await self._soap(writer, body, reply_to)


BOMB = gzip_bomb()
_LINE = b"0123456789abcdef" * 4 + b"\r\n"
STDOUT_B64 = base64.b64encode((_LINE * (STDOUT_CHUNK // len(_LINE) + 1))[:STDOUT_CHUNK]).decode()


class HostileThread:
    """The endpoints in a background event loop: ``start()`` then ``stop()``."""

    def __init__(self, endpoints: list[Hostile]) -> None:
        self.endpoints = endpoints
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="hostile-wsman", daemon=True)

    def start(self) -> None:
        self._thread.start()
        for ep in self.endpoints:
            asyncio.run_coroutine_threadsafe(ep.start(), self.loop).result(timeout=10)

    def stop(self) -> None:
        for ep in self.endpoints:
            asyncio.run_coroutine_threadsafe(ep.stop(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
