"""The lean HTTP sender: what pypsrp's ``WSMan`` sends its SOAP messages through, instead of pypsrp's
``requests``-based ``_TransportHTTP`` (connection variable ``kmsfleet_http: lean``, the default; ``requests`` keeps
pypsrp's own). One persistent connection per host (HTTP/1.1 written and read by ``transport.http_wire``), the
sign-in and message encryption exactly as pypsrp 0.9 performs them, and the bounds of ``transport.guard``
applied to every exchange. Why: in a fleet audit about a third of the controller's CPU went to requests + urllib3
and the bounding wrapped around them (session merging, hooks, pool bookkeeping, header case-folding), none of it
needed for one keep-alive connection to one host; then ``http.client``'s answer parsing (the ``email`` package)
was the next tenth (docs/performance.md).

What it does, and where that comes from:
- The wire is pypsrp's: the same headers (``User-Agent: Python PSRP Client``, ``Accept-Encoding: identity``,
  ``Connection: Keep-Alive``), the same empty POST that sets up the security context before the first encrypted
  message, the same Negotiate rounds (``transport.http_signin``) and the same ``multipart/encrypted`` framing
  (``transport.sealing``: pypsrp's ``WinRMEncryption`` byte for byte, with fewer copies).
- A Negotiate/NTLM sign-in belongs to the TCP connection (HTTP.sys keeps the credentials of a keep-alive
  connection and authenticates its later requests without an ``Authorization`` header: learn.microsoft.com,
  "Credential Caching on NTLM KA Connections", HTTP Server API), and so does the encryption context made by it:
  when the host closed the connection, the next message signs in afresh on a new one. A connection the host
  closed while idle is noticed before it is used (the socket is readable), as urllib3 does, so no request is
  sent into a dead socket.
- The bounds of ``BoundedSession`` (``transport.session``): the cancel event and the host's deadline are checked
  before each exchange, the socket timeouts are clamped to what is left of the exchange, the watchdog shuts the
  socket down past the exchange's wall time, redirects and any ``Content-Encoding`` are refused unread, bodies are
  read undecoded up to the byte limit, and at most ``max_signin_rounds`` 401 answers in a row are answered.
- TLS as requests verifies it: the CA bundle of ``ansible_winrm_server_cert_validation`` (a path), else
  ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``, else certifi's; host names checked; ``ignore`` turns both off.
  Basic sends its header with every request (only where ``transport.connection`` allowed Basic at all).
- NTLM, Negotiate and Basic only, and no proxies: a host with ``ansible_winrm_proxy``, Kerberos, certificate
  authentication or CredSSP keeps pypsrp's sender (``supports``).
- Failures are raised in the vocabulary pypsrp's sender uses (requests' exception classes, pypsrp's
  ``AuthenticationError`` / ``WinRMTransportError``) or as transport errors with their ``cause`` (the guard's
  ``Redirected``, ``EncodedResponse``, ``ResponseTooLarge``, ``SignInLoop``, ``SlowResponse``; ``OperationTimeout``
  with cause ``budget``), so ``transport.errormap`` maps both senders' errors in its one place and
  ``transport.retry`` decides by ``cause``.
"""

from __future__ import annotations

import io
import os
import re
import select
import socket
import ssl
import struct
import threading
from dataclasses import dataclass
from typing import Any

import requests.exceptions
from pypsrp.encryption import WinRMEncryption
from pypsrp.exceptions import AuthenticationError, WinRMError, WinRMTransportError
from requests.utils import DEFAULT_CA_BUNDLE_PATH
from spnego.exceptions import SpnegoError

from orchestrator.ntlm_session import session_security
from orchestrator.transport import guard, http_signin, http_wire, sealing
from orchestrator.transport.errors import ProtocolError
from orchestrator.transport.session import Timeout, _clamp, exchange_window
from orchestrator.transport.watchdog import WATCHDOG

#: What the lean sender signs in with; Kerberos (no KDC here to test against), certificate authentication (the lab
#: has none) and CredSSP stay with pypsrp's sender.
LEAN_AUTHS = frozenset(("ntlm", "negotiate", "basic"))
_NEGOTIATE_FAMILY = frozenset(("ntlm", "negotiate"))
_BOUNDARY = re.compile(r"boundary=[\"|'](.*)[\"|']")  # pypsrp's pattern for the multipart boundary
_CHARSET = re.compile(r";\s*charset=[\"']?([^;\"'\s]+)", re.IGNORECASE)
_SOAP = "application/soap+xml;charset=UTF-8"
_BASE_HEADERS = {
    "User-Agent": "Python PSRP Client",
    "Accept-Encoding": "identity",
    "Accept": "*/*",
    "Connection": "Keep-Alive",
}


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, read whole and bounded."""

    status: int
    head: http_wire.Head
    body: bytes


def supports(transport: Any) -> bool:
    """Whether the lean sender can stand in for this pypsrp transport (NTLM, Negotiate or Basic; no proxy)."""
    return getattr(transport, "auth", None) in LEAN_AUTHS and getattr(transport, "proxy", None) is None


class LeanSender:
    """The HTTP exchange of ``pypsrp_adapter.GuardedHTTP.send`` (``send``, ``close``) when ``kmsfleet_http`` is
    lean; built from the transport pypsrp made, so its checks of the settings (which auth may encrypt) are kept.
    One thread."""

    def __init__(
        self,
        pypsrp_transport: Any,
        host: str,
        bounds: guard.Bounds,
        *,
        deadline: Any,
        cancel: threading.Event,
        budget: float,
    ) -> None:
        t = pypsrp_transport
        self.endpoint: str = t.endpoint
        self.host = host
        self.bounds = bounds
        self._deadline = deadline
        self._cancel = cancel
        self._budget = budget
        self._address: str = t.server
        self._port: int = t.port
        self._https: bool = t.ssl
        self._path = "/" + t.path
        self._auth: str = t.auth
        self._user: str | None = t.username
        self._password: str | None = t.password
        self._wrap: bool = t.wrap_required
        self._connect_timeout: float = t.connection_timeout
        self._read_timeout: float = t.read_timeout
        self._tls = tls_context(t.cert_validation) if t.ssl else None
        self._headers = dict(_BASE_HEADERS)
        if self._auth == "basic":
            self._headers["Authorization"] = http_signin.basic_header(self._user or "", self._password or "")
        self._host_field = http_wire.host_field(self._address, self._port, 443 if self._https else 80)
        self._sock: socket.socket | None = None
        self._reader: io.BufferedReader | None = None
        self._encryption: WinRMEncryption | None = None
        self.rounds = 0  # 401 answers in a row within the current request
        self.exchanges = 0

    # ------------------------------------------------------------------ what WSMan calls

    def send(self, message: bytes, *, retries_on_read_timeout: int = 0, timeout: Timeout = None) -> bytes:
        """Send one SOAP message, return the answer's (decrypted) body; errors as pypsrp's sender raises them."""
        del retries_on_read_timeout  # WinRMConnection retries read-only calls itself, on a fresh connection
        self.rounds = 0
        fresh = self._open()
        if self._wrap and self._auth in _NEGOTIATE_FAMILY:
            if fresh or self._encryption is None:
                self._encryption = self._sign_in_for_encryption(timeout)
            payload = sealing.seal(self._encryption, message)
            protocol = self._encryption.protocol
            framing = f'{sealing.CONTENT_TYPE};protocol="{protocol}";boundary="Encrypted Boundary"'
            headers = {**self._headers, "Content-Type": framing}
            answer = self._post(payload, headers, timeout)
        else:
            headers = {**self._headers, "Content-Type": _SOAP}
            answer = self._post(message, headers, timeout)
            if answer.status == 401 and self._auth in _NEGOTIATE_FAMILY:
                answer = self._negotiate(message, headers, answer, timeout)[0]
        return self._content(answer)

    def close(self) -> None:
        self._drop()

    # ------------------------------------------------------------------ sign-in

    def _sign_in_for_encryption(self, timeout: Timeout) -> WinRMEncryption:
        """pypsrp's first exchange: an empty POST, signed in, whose context then seals every message."""
        headers = {**self._headers, "Content-Length": "0"}
        first = self._post(b"", headers, timeout)
        if first.status != 401:
            raise ProtocolError(
                self.host,
                f"the host answered the sign-in with HTTP {first.status} instead of asking for credentials; "
                "message encryption cannot be set up",
            )
        answer, context, scheme = self._negotiate(b"", headers, first, timeout)
        if answer.status >= 400:
            self._content(answer)  # raises: 401 → AuthenticationError, else the host's fault
        protocol = WinRMEncryption.KERBEROS if scheme.lower() == "kerberos" else WinRMEncryption.SPNEGO
        # NTLM with extended session security and key exchange is sealed by ntlm_session (the same bytes; 42 µs
        # instead of 60 per request and answer, benchmarks/seal_cost.py); any other context seals with pyspnego.
        return WinRMEncryption(session_security(context), protocol)

    def _negotiate(
        self, body: bytes, headers: dict[str, str], answer: Answer, timeout: Timeout
    ) -> tuple[Answer, Any, str]:
        """Answer a 401 with Negotiate rounds until the host stops sending tokens (pypsrp's ``handle_401``)."""
        scheme = http_signin.offered_scheme(answer.head.get("www-authenticate"))
        try:
            context = http_signin.new_context(
                self._user,
                self._password,
                hostname=self._address,
                protocol=http_signin.protocol_for(self._auth, scheme),
                bindings=http_signin.channel_bindings(self._sock),
                wrap=self._wrap,
            )
            out = context.step()
            while not context.complete or out is not None:
                if out is None:
                    raise AuthenticationError("the sign-in stopped half-way (no token to send)")
                signed = {**headers, "Authorization": http_signin.token_header(scheme, out)}
                answer = self._post(body, signed, timeout)
                token = http_signin.answer_token(answer.head.get("www-authenticate"))
                if not token:
                    break
                out = context.step(token)
        except SpnegoError as exc:
            raise AuthenticationError(f"the sign-in failed: {type(exc).__name__}") from None
        return answer, context, scheme

    # ------------------------------------------------------------------ one exchange

    def _post(self, body: bytes, headers: dict[str, str], timeout: Timeout) -> Answer:
        """One bounded HTTP exchange on the host's connection (opened if needed)."""
        until, started = self._window(timeout)
        watch = WATCHDOG.watch(until, self._current_socket)
        try:
            answer = self._exchange(body, headers, until, started)
            WATCHDOG.release(watch)  # from here on ``fired`` cannot change
            if watch.fired:  # a body without a length ends at the shutdown: it is cut, not whole
                raise requests.exceptions.ConnectionError("cut by the watchdog")
        except BaseException as exc:
            self._drop()  # the rest of the answer stays unread: the connection is not reused
            if watch.fired and isinstance(exc, requests.exceptions.RequestException):
                raise guard.slow_response(self.host, started) from None
            raise
        finally:
            WATCHDOG.release(watch)
        return answer

    def _window(self, timeout: Timeout) -> tuple[float, float]:
        """Check the cancel event and the deadline: (the monotonic time this exchange must end by, now)."""
        own = timeout if timeout is not None else (self._connect_timeout, self._read_timeout)
        window = exchange_window(self.host, self._cancel, self._deadline(), self._budget, own)
        self.exchanges += 1
        return window

    def _exchange(self, body: bytes, headers: dict[str, str], until: float, started: float) -> Answer:
        connect, read = _clamp((self._connect_timeout, self._read_timeout), until - started)
        try:
            if self._sock is None or self._reader is None:
                sock, reader = self._connect(connect)
            else:
                sock, reader = self._sock, self._reader
            sock.settimeout(read)
            sock.sendall(http_wire.request_bytes(self._path, self._host_field, headers, body))
            head = http_wire.read_head(reader)
            self.rounds = guard.check_head(
                self.host,
                head.status,
                head.get("content-encoding"),
                head.get("content-length"),
                self.bounds,
                self.rounds,
            )
            framed = http_wire.Body(reader, head)
            data = guard.read_capped(self.host, framed, self.bounds.max_response_bytes, until, started)
        except ssl.SSLError as exc:
            raise requests.exceptions.SSLError(exc) from None
        except TimeoutError as exc:
            connected = self._sock is not None
            raise (requests.exceptions.ReadTimeout if connected else requests.exceptions.ConnectTimeout)(exc) from None
        except OSError as exc:
            raise requests.exceptions.ConnectionError(exc) from None
        except http_wire.BadAnswer as exc:
            raise ProtocolError(self.host, f"the host's answer is not valid HTTP: {exc}") from None
        if not framed.keeps_connection:
            self._drop()  # the host closes the connection after this answer: the next one signs in afresh
        return Answer(head.status, head, data)

    def _content(self, answer: Answer) -> bytes:
        """The answer's message, decrypted; an HTTP error raised as pypsrp's ``_send_request`` raises it."""
        content_type = answer.head.get("content-type") or ""
        if content_type.startswith(("multipart/encrypted;", "multipart/x-multi-encrypted;")):
            content = self._unwrap(answer.body, content_type)
            text = content.decode("utf-8", "replace")
        else:
            content = answer.body
            text = content.decode(_charset(content_type), "replace") if content else ""
        if answer.status == 401:
            raise AuthenticationError(f"Failed to authenticate the user {self._user} with {self._auth}")
        if answer.status >= 400:
            raise WinRMTransportError("http", answer.status, text)
        return content

    def _unwrap(self, body: bytes, content_type: str) -> bytes:
        boundary = _BOUNDARY.search(content_type)
        if self._encryption is None or boundary is None:
            raise ProtocolError(self.host, "the host sent an encrypted answer outside an encrypted session")
        try:
            return sealing.unseal(self._encryption, body, boundary.group(1))
        except (WinRMError, SpnegoError, ValueError, IndexError, struct.error) as exc:
            why = type(exc).__name__
            raise ProtocolError(self.host, f"the host's encrypted answer could not be decrypted ({why})") from None

    # ------------------------------------------------------------------ the connection

    def _open(self) -> bool:
        """Make sure the connection is usable or not yet opened; True when the next exchange opens a new one (a
        new sign-in is due)."""
        if self._sock is not None and not _closed_by_peer(self._sock):
            return False
        self._drop()
        return True

    def _connect(self, timeout: float) -> tuple[socket.socket, io.BufferedReader]:
        """Open the TCP (and TLS) connection as ``http.client`` does: no Nagle delay, the host name checked."""
        sock = socket.create_connection((self._address, self._port), timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self._address)
        except BaseException:
            sock.close()
            raise
        self._sock, self._reader = sock, sock.makefile("rb")
        return sock, self._reader

    def _current_socket(self) -> object | None:
        return self._sock

    def _drop(self) -> None:
        sock, reader, self._sock, self._reader, self._encryption = self._sock, self._reader, None, None, None
        if reader is not None:
            reader.close()
        if sock is not None:
            sock.close()


def _charset(content_type: str) -> str:
    """The ``charset`` parameter of a Content-Type (UTF-8 when it names none or one Python does not know)."""
    match = _CHARSET.search(content_type)
    name = match.group(1) if match else "utf-8"
    try:
        "".encode(name)
    except LookupError:
        return "utf-8"
    return name


def _closed_by_peer(sock: socket.socket) -> bool:
    """An idle keep-alive connection is readable only when the host closed it (or broke protocol)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


_TLS_CONTEXTS: dict[bool | str, ssl.SSLContext] = {}
_TLS_LOCK = threading.Lock()


def tls_context(validation: bool | str) -> ssl.SSLContext:
    """The TLS client context of a validation setting, built once per process (loading a CA bundle costs ms)."""
    with _TLS_LOCK:
        cached = _TLS_CONTEXTS.get(validation)
        if cached is None:
            cached = _TLS_CONTEXTS[validation] = _build_tls_context(validation)
        return cached


def _build_tls_context(validation: bool | str) -> ssl.SSLContext:
    if validation is False:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        where = validation if isinstance(validation, str) else _default_ca_bundle()
        if not where or not os.path.exists(where):
            raise OSError(f"Could not find a suitable TLS CA certificate bundle, invalid path: {where}")
        if os.path.isdir(where):
            context = ssl.create_default_context(capath=where)
        else:
            context = ssl.create_default_context(cafile=where)
    return context


def _default_ca_bundle() -> str:
    """requests' choice when verification is on and no path was given (pypsrp reads the environment)."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or DEFAULT_CA_BUNDLE_PATH
