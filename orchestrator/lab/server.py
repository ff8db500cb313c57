"""The lab's HTTP(S) listeners: one per simulated PC address on 5985 (and 5986 when the PC has HTTPS), all
served by the lab's HTTP/1.1 protocol (lab/http11.py) in one event loop. The handler finds the PC from the
socket's local address.

Per request: the body is read in full (also before a 401), then the PC's latency is waited, then
authentication (per TCP connection for NTLM/Negotiate, per request for Basic; a completed sign-in spends the
PC's ``signin`` time, lab/timing.py), decryption, fault injection
(drop / http500 / hang / unauthorized, drawn from the PC's seeded generator), the WS-Management service, and
encryption of the answer. Power off closes the PC's listeners (connection refused) and its open connections.

Only loopback addresses are ever bound (asserted).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import logging
import random
import socket
import ssl
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from spnego.exceptions import SpnegoError

from orchestrator.lab.http11 import HttpConnection, HttpRequest, HttpResponse, HttpServer
from orchestrator.lab.provider import SimulatedHost
from orchestrator.lab.spec import Faults, LabHostConfig
from orchestrator.lab.timing import PcTiming, instant_pc
from orchestrator.lab.wsman import encryption, faults
from orchestrator.lab.wsman.auth import (
    CredentialStore,
    NtlmAcceptor,
    decode_basic,
    domain_is_local,
    ensure_user_file_variable,
    is_kerberos_token,
    parse_authorization,
    split_domain,
)
from orchestrator.lab.wsman.config import ServiceConfig
from orchestrator.lab.wsman.identify import identify_response, is_identify
from orchestrator.lab.wsman.request import peek_message_id
from orchestrator.lab.wsman.service import Outcome, WSManService
from orchestrator.lab.wsman.shell import CallerInfo
from orchestrator.ntlm_session import session_security

log = logging.getLogger(__name__)

SERVER_HEADER = "Microsoft-HTTPAPI/2.0"
SOAP_CONTENT_TYPE = "application/soap+xml;charset=UTF-8"
HANG_LIMIT_S = 900.0  # a hung request is released (connection closed) after this long at the latest
KEEPALIVE_TIMEOUT_S = 120.0
_KERBEROS_REFUSED = "Kerberos is not offered by this lab; use NTLM or Negotiate."
# What a 401 says for a scheme the lab does not take (an empty reason: the bare challenge)
_REFUSALS = {
    "kerberos": _KERBEROS_REFUSED,
    "certificate": "Certificate authentication is not enabled on this host.",
}
_BODY_SLACK = 65536  # multipart/encrypted framing on top of the envelope limit


def require_loopback(address: str) -> None:
    ip = ipaddress.ip_address(address)
    if not ip.is_loopback or ip.is_unspecified:
        raise RuntimeError(f"the lab only binds loopback addresses, not {address}")


@dataclass(eq=False)
class PcRuntime:
    """One simulated PC as the listeners see it: its machine, WS-Man service and network behaviour."""

    config: LabHostConfig
    host: SimulatedHost
    service: WSManService
    rng: random.Random
    power_on: bool
    latency_ms: float | tuple[float, float]
    faults: Faults
    timing: PcTiming = field(default_factory=instant_pc)  # lab/timing.py: sign-in time is spent here
    counters: Counter[str] = field(default_factory=Counter)
    listeners: list[asyncio.Server] = field(default_factory=list)
    connections: set[Any] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def address(self) -> str:
        return self.config.address

    def network_state(self) -> dict[str, Any]:
        latency = list(self.latency_ms) if isinstance(self.latency_ms, tuple) else self.latency_ms
        return {
            "power": "on" if self.power_on else "off",
            "latency_ms": latency,
            "faults": self.faults.model_dump(),
            "requests": dict(sorted(self.counters.items())),
            "shells": len(self.service.shells.shells),
            "connections": len(self.connections),
        }


class _ConnState:
    __slots__ = ("authed", "closed", "ctx", "endpoint", "pc", "peer", "seal", "tls", "user")

    def __init__(self, pc: PcRuntime, tls: bool, peer: str, endpoint: str) -> None:
        self.pc = pc
        self.tls = tls
        self.peer = peer
        self.endpoint = endpoint
        self.ctx: Any = None  # pyspnego acceptor (handshake in progress or established)
        self.authed = False  # NTLM/Negotiate completed on this connection
        self.seal: Any = None  # what seals its messages once complete (orchestrator/ntlm_session.py)
        self.user = ""
        self.closed: asyncio.Event | None = None

    def reset_auth(self) -> None:
        self.ctx = None
        self.seal = None
        self.authed = False
        self.user = ""


class WSManFrontEnd:
    def __init__(
        self,
        pcs: list[PcRuntime],
        *,
        service_config: ServiceConfig,
        ssl_context: ssl.SSLContext | None,
        http_port: int = 5985,
        https_port: int = 5986,
    ) -> None:
        self.pcs = pcs
        self.by_address = {pc.address: pc for pc in pcs}
        self.config = service_config
        self.allow_unencrypted = service_config.allow_unencrypted
        self.ssl_context = ssl_context
        self.http_port = http_port
        self.https_port = https_port
        self.credentials = CredentialStore()
        self.acceptor = NtlmAcceptor()
        self.max_http_body = service_config.max_envelope_bytes * 2 + _BODY_SLACK
        self._conns: dict[HttpConnection, _ConnState] = {}
        self._http: HttpServer | None = None
        self._stopping = asyncio.Event()
        self.totals: Counter[str] = Counter()

    # ---- lifecycle ----------------------------------------------------------------------------------------
    async def start(self) -> None:
        if self.pcs:  # create NTLM_USER_FILE now, before any client thread runs (see wsman.auth)
            first = self.pcs[0]
            user, password = first.host.ntlm_credentials()
            ensure_user_file_variable(self.credentials.path_for(user, password, first.config.computer_name))
        self._http = HttpServer(
            self.handle,
            max_body=self.max_http_body,
            keepalive_s=KEEPALIVE_TIMEOUT_S,
            on_open=self.connection_made,
            on_close=self.connection_lost,
        )
        for pc in self.pcs:
            if pc.power_on:
                await self._listen(pc)

    async def stop(self) -> None:
        self._stopping.set()
        for pc in self.pcs:
            self._close_listeners(pc)
            self._abort_connections(pc)
        if self._http is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._http.close_all(1.0), 3.0)
        for pc in self.pcs:
            pc.service.reset()
        self.credentials.close()

    async def _listen(self, pc: PcRuntime) -> None:
        assert self._http is not None
        require_loopback(pc.address)
        loop = asyncio.get_running_loop()
        if pc.config.http:
            pc.listeners.append(
                await loop.create_server(self._http, pc.address, self.http_port, reuse_address=True, backlog=128)
            )
        if pc.config.https and self.ssl_context is not None:
            pc.listeners.append(
                await loop.create_server(
                    self._http, pc.address, self.https_port, ssl=self.ssl_context, reuse_address=True, backlog=128
                )
            )

    def _close_listeners(self, pc: PcRuntime) -> None:
        for server in pc.listeners:
            server.close()
        pc.listeners.clear()

    def _abort_connections(self, pc: PcRuntime) -> None:
        for connection in list(pc.connections):
            connection.abort()

    async def set_power(self, pc: PcRuntime, on: bool) -> None:
        if on == pc.power_on:
            return
        pc.power_on = on
        if on:
            await self._listen(pc)
        else:
            self._close_listeners(pc)
            self._abort_connections(pc)
            pc.service.reset()

    # ---- connections ----------------------------------------------------------------------------------------
    def connection_made(self, handler: HttpConnection, transport: asyncio.Transport) -> None:
        sockname = transport.get_extra_info("sockname")
        peername = transport.get_extra_info("peername")
        pc = self.by_address.get(sockname[0]) if sockname else None
        if pc is None or not pc.power_on:
            transport.abort()
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls = transport.get_extra_info("sslcontext") is not None
        scheme = "https" if tls else "http"
        endpoint = f"{scheme}://{sockname[0]}:{sockname[1]}/wsman"
        self._conns[handler] = _ConnState(pc, tls, peername[0] if peername else "", endpoint)
        pc.connections.add(handler)

    def connection_lost(self, handler: HttpConnection) -> None:
        conn = self._conns.pop(handler, None)
        if conn is None:
            return
        conn.pc.connections.discard(handler)
        if conn.closed is not None:
            conn.closed.set()
        conn.ctx = conn.seal = None

    # ---- the request handler -----------------------------------------------------------------------------------
    async def handle(self, request: HttpRequest) -> HttpResponse:
        conn = self._conns.get(request.protocol)
        if conn is None or not conn.pc.power_on:
            return self._drop(request)
        pc = conn.pc
        self.totals["http"] += 1
        body = await self._receive(request, pc)
        if isinstance(body, HttpResponse):
            return body
        signed_in = await self._authenticate(request, conn, body)
        if isinstance(signed_in, HttpResponse):
            return signed_in
        caller_user, extra_headers = signed_in
        if not body:
            return _plain(200, extra=extra_headers)
        content_type = request.headers.get("content-type", "")
        encrypted = encryption.is_encrypted(content_type)
        plain = self._open(conn, body, content_type, encrypted)
        if isinstance(plain, HttpResponse):
            return plain
        if len(plain) > pc.service.config.max_envelope_bytes:  # the PC's own MaxEnvelopeSizekb (150 KB on WinRM 2.0)
            pc.counters["http:413"] += 1
            return _plain(413, extra=extra_headers)
        outcome = await self._serve(request, conn, plain, caller_user)
        if isinstance(outcome, HttpResponse):
            return outcome
        answer = self._answer(request, conn, outcome, encrypted, extra_headers)
        return await self._hold(request, conn, answer, outcome.hold_s) if outcome.hold_s > 0 else answer

    async def _hold(self, request: HttpRequest, conn: _ConnState, answer: HttpResponse, seconds: float) -> HttpResponse:
        """Send ``answer`` (built and sealed at arrival, while the request's data and code are warm) after the
        request's modelled time. Sealing first changes nothing on the wire: a connection has one request in
        flight (lab/http11.py answers in order and reads the next request only after this answer), so no other
        message is sealed on it meanwhile and the NTLM sequence number and RC4 stream are the ones this answer
        would have had at the end of the wait (MS-NLMP 3.4.4: each direction's messages are sealed in order). If
        the PC went off or the connection was reset or closed during the wait, nothing is sent, as before."""
        if answer.drop:
            return answer
        seal = conn.seal
        await asyncio.sleep(seconds)
        if not conn.pc.power_on or request.transport is None or request.transport.is_closing() or conn.seal is not seal:
            return self._drop(request)
        return answer

    async def _receive(self, request: HttpRequest, pc: PcRuntime) -> bytes | HttpResponse:
        """The body of a request after the PC's network latency, or the answer that needs no sign-in: HTTP.sys's
        (404, 405, 413), none (the PC went off meanwhile), or Test-WSMan's anonymous Identify."""
        body = self._read_request(request, pc)
        if isinstance(body, HttpResponse):
            return body
        await self._latency(pc)
        if not pc.power_on:
            return self._drop(request)
        if request.headers.get("wsmanidentify", "").strip().lower() == "unauthenticated" and is_identify(body):
            # Test-WSMan's anonymous probe: answered without a logon, the OS version hidden
            pc.counters["Identify:anonymous"] += 1
            headers = [("Server", SERVER_HEADER), ("Content-Type", SOAP_CONTENT_TYPE)]
            return HttpResponse(200, identify_response(None), headers)
        return body

    def _read_request(self, request: HttpRequest, pc: PcRuntime) -> bytes | HttpResponse:
        """The body of a POST to /wsman, or the answer HTTP.sys gives anything else (404, 405, 413)."""
        if request.path.rstrip("/").lower() != "/wsman":  # HTTP.sys: no listener registered for this URL
            return _plain(404)
        if request.method != "POST":
            return _plain(405, extra=[("Allow", "POST")])
        if request.too_large:  # over the limit: answered unread, then the connection closes (lab/http11.py)
            pc.counters["http:413"] += 1
            resp = _plain(413)
            resp.close = True
            return resp
        return request.body

    async def _authenticate(
        self, request: HttpRequest, conn: _ConnState, body: bytes
    ) -> tuple[str, list[tuple[str, str]]] | HttpResponse:
        """The caller's user name and the headers the answer must carry (the last NTLM leg's token), or the
        answer to send instead (a 401 challenge or refusal, an empty 200 after a body-less sign-in)."""
        pc = conn.pc
        header = request.headers.get("authorization")
        if header is None:
            return (conn.user, []) if conn.authed else self._unauthorized(pc, conn)
        auth = parse_authorization(header)
        if auth.scheme == "basic":
            user = self._basic_user(conn, auth.token)
            if user is None:
                return self._unauthorized(pc, conn)
            await _spend(pc.timing.get("signin"))  # Basic: every request is a logon
            conn.reset_auth()
            return user, []
        if auth.scheme in ("negotiate", "ntlm") and not is_kerberos_token(auth.token):
            return await self._negotiate_leg(conn, auth.token, auth.raw_scheme, body)
        refusal = _REFUSALS.get("kerberos" if auth.scheme in ("negotiate", "ntlm") else auth.scheme, "")
        return self._unauthorized(pc, conn, refusal)

    async def _negotiate_leg(
        self, conn: _ConnState, token: bytes, raw_scheme: str, body: bytes
    ) -> tuple[str, list[tuple[str, str]]] | HttpResponse:
        pc = conn.pc
        result = self._negotiate(conn, token, raw_scheme)
        if result is None:
            return self._unauthorized(pc, conn)
        out_token, complete = result
        extra_headers = [("WWW-Authenticate", f"{raw_scheme} {out_token}")] if out_token else []
        if not complete:
            pc.counters["auth:challenge"] += 1
            return _plain(401, extra=extra_headers)
        pc.counters["auth:ok"] += 1
        await _spend(pc.timing.get("signin"))
        if not body:
            return _plain(200, extra=extra_headers)
        return conn.user, extra_headers

    def _open(self, conn: _ConnState, body: bytes, content_type: str, encrypted: bool) -> bytes | HttpResponse:
        """The SOAP envelope of a request: decrypted with the connection's NTLM session, or as sent when
        unencrypted traffic is allowed on this connection."""
        pc = conn.pc
        if not encrypted:
            if conn.authed and not conn.tls and not self.allow_unencrypted:
                # AllowUnencrypted=false: an NTLM session on plain HTTP must seal its messages.
                return self._unauthorized(pc, conn, "Unencrypted traffic is disabled on this host (AllowUnencrypted).")
            return body
        if not conn.authed or conn.seal is None:
            return self._unauthorized(pc, conn)
        pc.counters["http:encrypted"] += 1
        try:
            return encryption.unwrap(conn.seal, body, content_type)
        except encryption.EncryptionError:
            pc.counters["http:bad-encryption"] += 1
            resp = self._unauthorized(pc, conn)
            resp.close = True
            return resp

    async def _serve(
        self, request: HttpRequest, conn: _ConnState, plain: bytes, caller_user: str
    ) -> Outcome | HttpResponse:
        """The WS-Management answer, unless an injected fault (drop / hang / unauthorized / http500) replaces it."""
        pc = conn.pc
        injected = self._draw_fault(pc)
        if injected is not None:
            pc.counters[f"fault:{injected}"] += 1
        if injected == "drop":
            return self._drop(request)
        if injected == "hang":
            await self._hang(conn)
            return self._drop(request)
        if injected == "unauthorized":
            return self._unauthorized(pc, conn)
        if injected == "http500":
            fault = faults.internal_error()
            return Outcome(500, fault.render(pc.address, _message_id(plain)), "fault:http500", fault.code)
        caller = CallerInfo(user=caller_user.rsplit("\\", 1)[-1], client_ip=conn.peer, endpoint=conn.endpoint)
        outcome = await pc.service.prepare(plain, caller)  # a WQL query's modelled time left in hold_s
        pc.counters[outcome.label] += 1
        if outcome.status != 200:
            pc.counters["faults"] += 1
        return outcome

    def _answer(
        self,
        request: HttpRequest,
        conn: _ConnState,
        outcome: Outcome,
        encrypted: bool,
        extra_headers: list[tuple[str, str]],
    ) -> HttpResponse:
        """The HTTP response carrying ``outcome``, sealed when the request was."""
        self.totals["soap"] += 1
        if not conn.pc.power_on or request.transport is None or request.transport.is_closing():
            return self._drop(request)
        if encrypted:
            if conn.seal is None:  # the connection was reset while the request was in flight
                return self._drop(request)
            payload = encryption.wrap(conn.seal, outcome.body)
            ctype = encryption.CONTENT_TYPE
        else:
            payload = outcome.body
            ctype = SOAP_CONTENT_TYPE
        headers = [("Server", SERVER_HEADER), ("Content-Type", ctype), *extra_headers]
        return HttpResponse(outcome.status, payload, headers)

    # ---- pieces ------------------------------------------------------------------------------------------------
    def _basic_user(self, conn: _ConnState, token: bytes) -> str | None:
        if not (conn.tls or self.allow_unencrypted) or not self.config.basic:
            return None  # Windows' AllowUnencrypted=false: Basic only over HTTPS
        creds = decode_basic(token)
        if creds is None:
            return None
        domain, user = split_domain(creds[0])
        if not domain_is_local(domain, conn.pc.config.computer_name):
            return None
        if not conn.pc.host.check_credentials(user, creds[1]):
            return None
        return user

    def _negotiate(self, conn: _ConnState, token: bytes, scheme: str) -> tuple[str | None, bool] | None:
        """One NTLM/Negotiate leg. Returns (base64 out-token, complete) or None when authentication failed."""
        pc = conn.pc
        user, password = pc.host.ntlm_credentials()
        path = self.credentials.path_for(user, password, pc.config.computer_name)
        try:
            if conn.ctx is None or conn.authed:
                conn.reset_auth()
                conn.ctx = self.acceptor.new_context(path)
            out = self.acceptor.step(conn.ctx, token, path, pc.config.computer_name)
        except (SpnegoError, ValueError, KeyError, IndexError, TypeError):
            conn.reset_auth()
            return None
        if conn.ctx.complete:
            principal = str(conn.ctx.client_principal or "")
            domain, name = split_domain(principal)
            if not domain_is_local(domain, pc.config.computer_name) or name.lower() != user.lower():
                conn.reset_auth()
                return None
            conn.authed = True
            conn.seal = session_security(conn.ctx)
            conn.user = name
        encoded = base64.b64encode(out).decode("ascii") if out else None
        return encoded, bool(conn.ctx.complete)

    def _unauthorized(self, pc: PcRuntime, conn: _ConnState, reason: str = "") -> HttpResponse:
        conn.reset_auth()
        pc.counters["http:401"] += 1
        challenge = [("WWW-Authenticate", "Negotiate")]
        if self.config.basic and (conn.tls or self.allow_unencrypted):
            challenge.append(("WWW-Authenticate", 'Basic realm="WSMAN"'))
        if reason:
            headers = [("Server", SERVER_HEADER), ("Content-Type", "text/plain; charset=utf-8"), *challenge]
            return HttpResponse(401, reason.encode("utf-8"), headers)
        return _plain(401, extra=challenge)

    async def _latency(self, pc: PcRuntime) -> None:
        latency = pc.latency_ms
        delay = pc.rng.uniform(latency[0], latency[1]) if isinstance(latency, tuple) else float(latency)
        if delay > 0:
            await asyncio.sleep(delay / 1000.0)

    def _draw_fault(self, pc: PcRuntime) -> str | None:
        f = pc.faults
        if not (f.drop or f.http500 or f.hang or f.unauthorized):
            return None
        r = pc.rng.random()
        for kind, p in (("drop", f.drop), ("http500", f.http500), ("hang", f.hang), ("unauthorized", f.unauthorized)):
            if r < p:
                return kind
            r -= p
        return None

    async def _hang(self, conn: _ConnState) -> None:
        """Never answer: wait until the client gives up (closes), the PC powers off, or the lab stops."""
        conn.closed = asyncio.Event()
        waiters = [asyncio.ensure_future(conn.closed.wait()), asyncio.ensure_future(self._stopping.wait())]
        try:
            await asyncio.wait(waiters, timeout=HANG_LIMIT_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    def _drop(self, request: HttpRequest) -> HttpResponse:
        """Close the connection without answering."""
        request.protocol.abort()
        return HttpResponse(204, drop=True)

    # ---- stats -----------------------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        requests: Counter[str] = Counter()
        for pc in self.pcs:
            requests.update(pc.counters)
        return {
            "hosts": len(self.pcs),
            "powered_on": sum(1 for pc in self.pcs if pc.power_on),
            "listeners": sum(len(pc.listeners) for pc in self.pcs),
            "connections": len(self._conns),
            "http_requests": self.totals["http"],
            "soap_requests": self.totals["soap"],
            "requests": dict(sorted(requests.items())),
        }


async def _spend(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)


def _plain(status: int, extra: list[tuple[str, str]] | None = None) -> HttpResponse:
    return HttpResponse(status, b"", [("Server", SERVER_HEADER), *(extra or ())])


def _message_id(plain: bytes) -> str | None:
    return peek_message_id(plain)
