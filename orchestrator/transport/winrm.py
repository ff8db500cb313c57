"""One WinRM connection per host per run: the ONLY module that imports pypsrp.

``WinRMConnection`` owns one ``pypsrp.wsman.WSMan`` (pypsrp is not thread-safe: one host, one thread) and one
reused WinRS shell, opened on the first command. It offers what the modules need — WQL queries, WMI ``Get`` and
method ``Invoke``, commands (cmd and PowerShell via ``-EncodedCommand``) — and maps every pypsrp/requests
exception into the four transport errors of ``transport.errors`` here, in one place.

Safety rules:
- Responses pass a guard before pypsrp parses them: no DTDs or entity declarations (entity-expansion bombs),
  a size limit, and faults are parsed with defusedxml.
- Retries (tenacity) happen only for read-only calls on transient errors (dropped connection, connect timeout,
  an internal-error fault, 503), with a fresh connection each time. Authentication failures are never retried:
  retries lock domain accounts. State-changing calls (method invokes, commands not marked read-only) are never
  retried.
- Every call respects the host's deadline (its time budget) and a cancel event (Ctrl-C).
"""

from __future__ import annotations

import base64
import errno
import re
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import defusedxml.ElementTree as SafeET
import requests
from defusedxml import DefusedXmlException
from pypsrp.exceptions import AuthenticationError, WinRMError, WinRMTransportError, WSManFaultError
from pypsrp.shell import WinRS
from pypsrp.wsman import NAMESPACES, WSMan, WSManAction
from pypsrp.wsman import SelectorSet as _SelectorSet
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from orchestrator.redact import redact_text
from orchestrator.transport import clixml, guard, http_sender, wmi
from orchestrator.transport.codepages import DEFAULT_OEM, decode_console, oem_for_codeset
from orchestrator.transport.connection import ConnectionSpec
from orchestrator.transport.errors import (
    AuthFailed,
    OperationTimeout,
    ProtocolError,
    TransportError,
    Unreachable,
    WSManFault,
    wsman_fault,
)
from orchestrator.transport.session import BoundedSession, StopRequested

T = TypeVar("T")

MAX_RESPONSE_BYTES = 16 * 1024 * 1024
MAX_PULLS = 1000
#: Elements in one answer, counted (by its ``<``) before pypsrp parses it: a parsed element costs about 100 bytes,
#: so 16 MiB of ``<a/>`` would take over 400 MiB and tens of seconds of CPU. Windows keeps an answer to the
#: client's MaxEnvelopeSize (pypsrp: 153,600 bytes), i.e. at most some 50,000 tags.
MAX_ANSWER_TAGS = 500_000
#: Elements of one WQL enumeration over all its Pull answers (the items are kept in memory together). The
#: queries kmsfleet sends return a few thousand; the 1,000-pull cap alone would let 1,000 answers pile up.
MAX_ENUMERATION_ELEMENTS = 1_000_000
#: Bytes of one WQL enumeration over all its answers (decrypted), for the same reason: 1,000 pulls of a few
#: large values each stay under the element cap.
MAX_ENUMERATION_BYTES = 32 * 1024 * 1024
RECEIVE_TIMED_OUT = 2150858793  # 0x80338029: no output within OperationTimeout, poll again
INVALID_SELECTORS = 2150858843  # 0x8033805B: unknown shell / command id (stale shell)
# 0x803381A6 ERROR_WSMAN_QUOTA_MAX_OPERATIONS: the shell has used up MaxConcurrentOperationsPerUser (15 on Windows 7,
# 1500 later); WinRS gives a command's operation back only when the shell is deleted (MS-WSMV Appendix B <118>)
QUOTA_MAX_OPERATIONS = 2150859174
_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def _install_thread_safe_namespace_registration() -> None:
    """pypsrp's ``WSMan()`` calls ``ElementTree.register_namespace`` for every WS-Man prefix, each time. The
    stdlib implementation deletes the existing mapping and adds it back, so a request being serialized in another
    thread at that instant gets a generated prefix (``ns0``) — for ``xml:lang`` that binds a prefix to the
    reserved XML namespace, and the host rejects the request (fault 2150858819). With one ``WSMan`` per host
    created while other hosts' requests are in flight, that hit 4 of 5,000 PCs (benchmarks/audit_scale.py).
    Registering a mapping that is already in place is now a no-op (no window); other registrations are
    serialized. Behaviour is otherwise unchanged."""
    original = ET.register_namespace
    if getattr(original, "_kmsfleet_safe", False):
        return
    lock = threading.Lock()

    def register_namespace(prefix: str, uri: str) -> None:
        if ET._namespace_map.get(uri) == prefix:  # type: ignore[attr-defined]  # the stdlib's registry
            return
        with lock:
            original(prefix, uri)

    register_namespace._kmsfleet_safe = True  # type: ignore[attr-defined]
    ET.register_namespace = register_namespace
    for prefix, uri in NAMESPACES.items():
        ET.register_namespace(prefix, uri)


_install_thread_safe_namespace_registration()
_SHELL_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
_RSP = NAMESPACES["rsp"]
_DONE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"
_TERMINATE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate"


@dataclass(frozen=True)
class CommandResult:
    rc: int
    stdout: str
    stderr: str
    duration_ms: int
    truncated: bool = False  # output went past kmsfleet_max_output_bytes: cut there, the command was stopped


class Cancelled(TransportError):
    """The run is stopping (Ctrl-C); no new request was sent."""


def _is_refused(exc: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ConnectionRefusedError) or (
            isinstance(cur, OSError) and cur.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH)
        ):
            return True
        if "Connection refused" in str(cur) or "Errno 111" in str(cur):
            return True
        cur = (
            cur.__cause__
            or cur.__context__
            or (cur.args[0] if cur.args and isinstance(cur.args[0], BaseException) else None)
        )
    return False


class _Transient(Exception):
    """Marker wrapper so tenacity knows an error may go away on a fresh connection."""

    def __init__(self, error: TransportError) -> None:
        self.error = error
        super().__init__(str(error))


def _first_text(root: ET.Element, local: str) -> str | None:
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == local and el.text and el.text.strip():
            return el.text.strip()
    return None


def _first_attr(root: ET.Element, local: str, attr: str) -> list[str]:
    out = []
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == local and attr in el.attrib:
            out.append(el.attrib[attr])
    return out


_HRESULT_ID = re.compile(r"HRESULT\s+0x([0-9A-Fa-f]{8})\b")


def _fault_code(text: str) -> int | None:
    """An HRESULT as a fault writes it: unsigned or signed decimal, or 0x-hex → unsigned 32-bit; None if not."""
    t = text.strip()
    try:
        value = int(t, 16) if t.lower().startswith("0x") else int(t)
    except ValueError:
        return None
    return value & 0xFFFFFFFF


def _count_elements(body: ET.Element) -> int:
    return sum(1 for _ in body.iter())


def parse_fault(host: str, http_status: int, text: str) -> TransportError:
    """A non-200 answer → ``WSManFault`` (or ``ProtocolError`` when it is not acceptable XML)."""
    data = text.encode("utf-8", "replace") if isinstance(text, str) else bytes(text)
    if not data.strip():
        return WSManFault(host, None, f"HTTP {http_status} with an empty body", subcode=f"http{http_status}")
    if len(data) > MAX_RESPONSE_BYTES:
        return ProtocolError(host, f"fault body of {len(data)} bytes is larger than allowed")
    if _DTD.search(data):
        return ProtocolError(host, "fault body declares a DTD or entities; refused")
    try:
        root = SafeET.fromstring(data, forbid_dtd=True)
    except (ET.ParseError, DefusedXmlException, ValueError):
        snippet = data[:120].decode("utf-8", "replace")
        return ProtocolError(host, f"HTTP {http_status} with a body that is not XML: {snippet!r}")
    fault = root.find("s:Body/s:Fault", wmi.NS)
    subcode = reason = None
    if fault is not None:
        subcode = fault.findtext("s:Code/s:Subcode/s:Value", default=None, namespaces=wmi.NS) or fault.findtext(
            "s:Code/s:Value", default=None, namespaces=wmi.NS
        )
        reason = fault.findtext("s:Reason/s:Text", default=None, namespaces=wmi.NS)
        subcode = subcode.strip() if subcode else None
    code: int | None = None
    for c in _first_attr(root, "WSManFault", "Code"):
        code = _fault_code(c)
        if code is not None:
            break
    # The most specific message: the innermost WSManFault message, else the SOAP reason.
    message = None
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == "Message" and el.text and el.text.strip():
            message = el.text.strip()
    # MSFT_WmiError's error_Code (decimal as Windows writes it; hex/signed tolerated), else its "HRESULT 0x…"
    # MessageID: classification goes by the number wherever it is (transport.errors.WSManFault.kind).
    wmi_code = _fault_code(_first_text(root, "error_Code") or "")
    if wmi_code is None:
        ids = " ".join(el.text or "" for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "MessageID")
        m = _HRESULT_ID.search(ids)
        wmi_code = int(m.group(1), 16) if m else None
    text_reason = (message or reason or f"HTTP {http_status}").strip()
    return wsman_fault(host, code, text_reason, subcode=subcode, wmi_code=wmi_code)


def _bound_requests_session(transport: Any, bounded: BoundedSession, direct: bool) -> None:
    """pypsrp's own sender (kmsfleet_http: requests): its requests session built once and bounded."""
    if transport.session is None:
        transport.session = transport._build_session()
        bounded.install(transport.session)
    bounded.begin()
    session = transport.session
    if direct and session is not None and session.trust_env:
        # pypsrp already resolved the environment (no proxy for this host, CA bundle) when it built the
        # session; leaving trust_env on makes requests re-read every proxy variable of os.environ on
        # every request (about 6 % of the client's CPU in a 40-PC run).
        session.trust_env = False


class WinRMConnection:
    """All WinRM traffic to one host. Use from one thread at a time; ``close()`` when the host is done."""

    def __init__(
        self,
        spec: ConnectionSpec,
        *,
        deadline: float | None = None,
        cancel: threading.Event | None = None,
        retries: int = 3,
    ) -> None:
        self.spec = spec
        self.deadline = deadline if deadline is not None else time.monotonic() + spec.budget
        self.cancel = cancel or threading.Event()
        self.retries = max(1, retries)
        self._wsman: WSMan | None = None
        self._shell: WinRS | None = None
        self._oem_codepage: int | None = None
        self.requests_sent = 0
        self.bytes_received = 0  # answers' bytes as pypsrp parses them (decrypted)
        self._hostile: TransportError | None = None  # a bound this host broke: it is not contacted again

    # ------------------------------------------------------------------ plumbing

    def _remaining(self) -> float:
        return self.deadline - time.monotonic()

    def _call_timeout(self) -> int:
        """OperationTimeout for the next call: the configured one, shortened near the deadline."""
        remaining = self._remaining()
        if self.cancel.is_set():
            raise Cancelled(self.spec.host, "the run is stopping")
        if remaining < 1.0:
            raise OperationTimeout(self.spec.host, f"the host's time budget of {self.spec.budget:.0f}s ran out")
        return max(1, min(self.spec.operation_timeout, int(remaining) - 2 if remaining > 3 else 1))

    def _client(self) -> WSMan:
        if self._wsman is not None:
            return self._wsman
        s = self.spec
        kwargs: dict[str, Any] = {}
        if s.transport == "certificate":
            kwargs["certificate_pem"] = s.cert_pem
            kwargs["certificate_key_pem"] = s.cert_key_pem
        client = WSMan(
            s.address,
            port=s.port,
            username=s.user,
            password=s.password,
            ssl=s.scheme == "https",
            auth=s.transport,
            # pypsrp also takes a CA path. No TLS on http://, so nothing to validate: with validation on, requests
            # checks the CA bundle's path on disk for every request (about 5 % of the client's CPU in an audit).
            cert_validation=s.cert_validation if s.scheme == "https" else False,  # type: ignore[arg-type]
            connection_timeout=s.connect_timeout,
            read_timeout=s.read_timeout,
            operation_timeout=s.operation_timeout,
            encryption=s.message_encryption,
            proxy=s.proxy,
            no_proxy=s.proxy is None,
            reconnection_retries=0,
            reconnection_backoff=0.0,
            **kwargs,
        )
        self._guard(client)
        self._wsman = client
        return client

    def _guard(self, client: WSMan) -> None:
        """Check every response before pypsrp parses it; parse faults ourselves, safely."""
        transport: Any = client.transport
        host = self.spec.host
        direct = self.spec.proxy is None
        bounds = guard.Bounds(max_response_bytes=MAX_RESPONSE_BYTES)
        lean = self.spec.http == "lean" and http_sender.supports(transport)
        if lean:  # kmsfleet_http: lean — kmsfleet's sender stands in for pypsrp's requests session
            transport = http_sender.LeanSender(
                transport, host, bounds, deadline=lambda: self.deadline, cancel=self.cancel, budget=self.spec.budget
            )
            client.transport = transport
        original = transport.send
        bounded = BoundedSession(
            host, bounds, deadline=lambda: self.deadline, cancel=self.cancel, budget=self.spec.budget
        )

        def guarded_send(message: bytes, **kwargs: Any) -> bytes:
            if self._hostile is not None:
                raise type(self._hostile)(host, f"{self._hostile.message} (earlier in this run; not contacted again)")
            self.requests_sent += 1
            if not lean:
                _bound_requests_session(transport, bounded, direct)
            try:
                data: bytes = original(message, **kwargs)
            except WinRMTransportError as exc:
                raise parse_fault(host, int(exc.code), exc.response_text or "") from None
            except StopRequested as exc:
                raise Cancelled(host, exc.message) from None
            except (guard.ResponseTooLarge, guard.EncodedResponse, guard.SignInLoop, guard.Redirected) as exc:
                self._hostile = exc
                raise
            self.bytes_received += len(data)
            if len(data) > MAX_RESPONSE_BYTES:
                raise ProtocolError(host, f"response of {len(data)} bytes is larger than allowed")
            if _DTD.search(data):
                raise ProtocolError(host, "response declares a DTD or entities; refused")
            if data.count(b"<") > MAX_ANSWER_TAGS:
                raise ProtocolError(host, f"answer holds more than {MAX_ANSWER_TAGS:,} XML elements; refused unparsed")
            return data

        transport.send = guarded_send

    def _map(self, exc: BaseException) -> TransportError:
        """pypsrp/requests exception → one of our transport errors. The one place this happens."""
        host = self.spec.host
        if isinstance(exc, TransportError):
            return exc
        if isinstance(exc, AuthenticationError):
            return AuthFailed(host, self._refused_message())
        if isinstance(exc, requests.exceptions.SSLError):
            return Unreachable(
                host,
                "TLS handshake failed (certificate not trusted? see ansible_winrm_server_cert_validation)",
            )
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return Unreachable(host, f"no answer to the connection attempt within {self.spec.connect_timeout}s")
        if isinstance(exc, requests.exceptions.ReadTimeout):
            return OperationTimeout(host, "the host stopped answering (read timeout)")
        if isinstance(exc, requests.exceptions.ConnectionError):
            if _is_refused(exc):
                return Unreachable(
                    host,
                    f"connection refused on {self.spec.address}:{self.spec.port} (PC off or WinRM not listening)",
                )
            return Unreachable(host, "the connection dropped before the host answered")
        if isinstance(exc, WSManFaultError):
            code = exc.code if isinstance(exc.code, int) else None
            return wsman_fault(host, code, str(exc.reason or exc.message), subcode=None if code else str(exc.code))
        if isinstance(exc, WinRMError):
            return ProtocolError(host, redact_text(str(exc))[:300])
        if isinstance(exc, ET.ParseError | DefusedXmlException):
            return ProtocolError(host, f"malformed XML from the host: {exc}")
        if isinstance(exc, ValueError):
            return ProtocolError(host, redact_text(str(exc))[:300])
        if isinstance(exc, OSError):
            return Unreachable(host, f"network error: {exc.strerror or exc}")
        if isinstance(exc, KeyError | IndexError | AttributeError | TypeError | ArithmeticError | RecursionError):
            # pypsrp (or our parsing) tripped over an answer of an unexpected shape, e.g. a 200 where an
            # authentication challenge was due (pypsrp: KeyError) or XML nested thousands deep (RecursionError).
            return ProtocolError(host, f"the host's answer could not be understood ({type(exc).__name__})")
        raise exc

    def _refused_message(self) -> str:
        s = self.spec
        if s.message_encryption == "never" and s.scheme == "http" and s.transport in ("ntlm", "negotiate", "kerberos"):
            # A PC that requires encryption (AllowUnencrypted=false, Windows' default) answers an unencrypted
            # message with 401, as it does a wrong password: name the likelier cause first.
            return (
                "the PC refused the unencrypted request: it requires message encryption (AllowUnencrypted=false, "
                "the Windows default) and ansible_winrm_message_encryption is 'never' — set it to auto, or use "
                f"HTTPS (if this PC does allow unencrypted traffic, the credentials of {s.user!r} were refused)"
            )
        return f"the host refused the credentials of {s.user!r} ({s.transport})"

    @staticmethod
    def _transient(err: TransportError) -> bool:
        if isinstance(err, AuthFailed | Cancelled | ProtocolError):
            return False
        if isinstance(err, Unreachable):
            return "refused" not in err.message and "TLS" not in err.message
        if isinstance(err, OperationTimeout):
            return "budget" not in err.message
        if isinstance(err, WSManFault):
            return err.transient  # classified by its codes (transport.errors)
        return False

    def _do(self, op: Callable[[], T], *, read_only: bool) -> T:
        """Run ``op`` with error mapping; read-only calls get bounded retries on transient errors."""

        def attempt() -> T:
            try:
                return op()
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    raise
                err = self._map(exc)
                if read_only and self._transient(err):
                    self.reset()  # a fresh connection: the NTLM/encryption state may be broken
                    raise _Transient(err) from None
                raise err from None

        if not read_only:
            return attempt()

        def stop(retry_state: Any) -> bool:
            return bool(retry_state.attempt_number >= self.retries or self._remaining() < 2.0 or self.cancel.is_set())

        try:
            for try_ in Retrying(
                stop=stop_after_attempt(self.retries) | stop,  # type: ignore[operator]
                wait=wait_exponential(multiplier=0.2, max=2.0),
                retry=retry_if_exception(lambda e: isinstance(e, _Transient)),
                reraise=True,
            ):
                with try_:
                    return attempt()
        except _Transient as t:
            raise t.error from None
        raise AssertionError("unreachable")  # pragma: no cover

    def reset(self) -> None:
        """Drop the connection and shell; the next call reconnects (and re-authenticates)."""
        shell, self._shell = self._shell, None
        client, self._wsman = self._wsman, None
        del shell  # the server reaps the abandoned shell at its idle timeout
        if client is not None:
            try:
                client.close()
            except Exception:
                pass

    def close(self) -> None:
        """Delete the shell (best effort, short timeout) and close the HTTP session."""
        if self._shell is not None and self._wsman is not None and not self.cancel.is_set() and self._remaining() > 2:
            try:
                self._shell.close()
            except Exception:
                pass
        self.reset()

    # ------------------------------------------------------------------ WMI

    def wql(self, query: str, namespace: str = "root/cimv2") -> list[wmi.WmiObject]:
        """Run a WQL query: Enumerate (optimized) then Pull until EndOfSequence (bounded)."""

        def op() -> list[wmi.WmiObject]:
            client = self._client()
            uri = wmi.enumerate_uri(namespace)
            body = client.enumerate(uri, wmi.enumerate_body(query), timeout=self._call_timeout())
            cls = wmi.query_class(query)  # names the class of XmlFragment items
            items, context, end = wmi.parse_enumeration(body, cls)
            pulls = 0
            elements = _count_elements(body)
            start = self.bytes_received
            while not end and context:
                pulls += 1
                if pulls > MAX_PULLS:
                    raise ProtocolError(self.spec.host, f"enumeration did not end after {MAX_PULLS} pulls")
                body = client.pull(uri, wmi.pull_body(context), timeout=self._call_timeout())
                elements += _count_elements(body)
                size = self.bytes_received - start
                if elements > MAX_ENUMERATION_ELEMENTS or size > MAX_ENUMERATION_BYTES:
                    self._hostile = ProtocolError(
                        self.spec.host,
                        f"enumeration still going after {pulls} pulls, {elements:,} XML elements and "
                        f"{size // 1048576} MiB (limits {MAX_ENUMERATION_ELEMENTS:,} elements, "
                        f"{MAX_ENUMERATION_BYTES // 1048576} MiB); stopped",
                    )
                    raise self._hostile
                more, context, end = wmi.parse_enumeration(body, cls)
                items.extend(more)
            return items

        return self._do(op, read_only=True)

    def get_instance(
        self, class_name: str, selectors: dict[str, str] | None = None, namespace: str = "root/cimv2"
    ) -> wmi.WmiObject:
        def op() -> wmi.WmiObject:
            client = self._client()
            sel = self._selectors(selectors)
            body = client.get(wmi.class_uri(class_name, namespace), selector_set=sel, timeout=self._call_timeout())
            for child in body:
                return wmi.parse_instance(child, class_name)
            raise ProtocolError(self.spec.host, f"Get of {class_name} returned an empty body")

        return self._do(op, read_only=True)

    def invoke(
        self,
        class_name: str,
        method: str,
        selectors: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        namespace: str = "root/cimv2",
    ) -> wmi.WmiObject:
        """Invoke a WMI method. Never retried (it may change state). A fault raises ``WSManFault`` whose
        ``hresult`` is the provider's error (e.g. 0xC004F074); a non-zero ReturnValue is returned as is."""

        def op() -> wmi.WmiObject:
            client = self._client()
            uri = wmi.class_uri(class_name, namespace)
            envelope = client.invoke(
                f"{uri}/{method}",
                uri,
                wmi.invoke_body(class_name, method, params or {}, namespace),
                selector_set=self._selectors(selectors),
                timeout=self._call_timeout(),
            )
            return wmi.parse_method_output(envelope, class_name, method)

        return self._do(op, read_only=False)

    @staticmethod
    def _selectors(selectors: dict[str, str] | None) -> _SelectorSet | None:
        if not selectors:
            return None
        sel = _SelectorSet()
        for k, v in selectors.items():
            sel.add_option(k, str(v))
        return sel

    # ------------------------------------------------------------------ commands

    def _open_shell(self) -> WinRS:
        if self._shell is None:
            shell = WinRS(self._client(), codepage=65001, no_profile=None)
            self._call_timeout()
            shell.open()
            self._shell = shell
        return self._shell

    def _delete_shell(self) -> None:
        """Best effort: delete the current shell on the host (its operations and its shell count are freed)."""
        shell, self._shell = self._shell, None
        if shell is None:
            return
        try:
            self._call_timeout()
            shell.close()
        except Exception:
            pass

    def _shell_call(self, action: str, body: ET.Element, options: dict[str, str] | None = None) -> ET.Element:
        shell = self._open_shell()
        opt = None
        if options:
            from pypsrp.wsman import OptionSet

            opt = OptionSet()
            for k, v in options.items():
                opt.add_option(k, v)
        env = self._client().invoke(
            action,
            shell.resource_uri,
            body,
            option_set=opt,
            selector_set=shell._selector_set,
            timeout=self._call_timeout(),
        )
        found = env.find("s:Body", wmi.NS)
        return found if found is not None else ET.Element("Body")

    def run_command(
        self,
        command: str,
        arguments: list[str] | None = None,
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        read_only: bool = False,
    ) -> CommandResult:
        """Run a command line in the reused cmd shell and wait for it (bounded by ``timeout`` and the host's
        deadline). ``read_only`` commands may be retried on a transient error; others never are."""
        started = time.monotonic()
        limit = started + timeout if timeout else None

        def op() -> tuple[int, guard.OutputBuffer]:
            try:
                return self._run_once(command, arguments or [], stdin, limit)
            except WSManFault as fault:
                if fault.code != INVALID_SELECTORS and fault.hresult != QUOTA_MAX_OPERATIONS:
                    raise
                if fault.hresult == QUOTA_MAX_OPERATIONS:
                    self._delete_shell()  # give the shell's operations back (what Ansible's winrm plugin does)
            # The shell went stale (idle timeout, host restarted WinRM) or ran out of operations: reopen once.
            # Safe for any command: Windows refused the Command, so it never started.
            self._shell = None
            return self._run_once(command, arguments or [], stdin, limit)

        rc, output = self._do(op, read_only=read_only)
        took = int((time.monotonic() - started) * 1000)
        stdout = self._decode(bytes(output.stdout)) + (guard.output_marker(output.cap) if output.truncated else "")
        return CommandResult(rc, stdout, self._decode(bytes(output.stderr)), took, truncated=output.truncated)

    def oem_code_page(self) -> int:
        """The PC's OEM code page (what cscript writes in), from Win32_OperatingSystem.CodeSet; read once, only
        when some output is not UTF-8. 437 when it cannot be read."""
        if self._oem_codepage is None:
            try:
                rows = self.wql("SELECT CodeSet FROM Win32_OperatingSystem")
                self._oem_codepage = oem_for_codeset(rows[0].get("CodeSet") if rows else None)
            except TransportError:
                self._oem_codepage = DEFAULT_OEM
        return self._oem_codepage

    def _decode(self, data: bytes) -> str:
        return _decode(data, self.oem_code_page)

    def _run_once(
        self, command: str, arguments: list[str], stdin: bytes | None, limit: float | None
    ) -> tuple[int, guard.OutputBuffer]:
        cmd = ET.Element(f"{{{_RSP}}}CommandLine")
        ET.SubElement(cmd, f"{{{_RSP}}}Command").text = command
        for arg in arguments:
            ET.SubElement(cmd, f"{{{_RSP}}}Arguments").text = arg
        body = self._shell_call(WSManAction.COMMAND, cmd, {"WINRS_SKIP_CMD_SHELL": "False"})
        command_id = body.findtext("rsp:CommandResponse/rsp:CommandId", default=None, namespaces=NAMESPACES)
        if not command_id:
            raise ProtocolError(self.spec.host, "CommandResponse without a CommandId")
        if stdin is not None:
            send = ET.Element(f"{{{_RSP}}}Send")
            stream = ET.SubElement(send, f"{{{_RSP}}}Stream", Name="stdin", CommandId=command_id, End="True")
            stream.text = base64.b64encode(stdin).decode()
            self._shell_call(WSManAction.SEND, send)
        output = guard.OutputBuffer(self.spec.max_output_bytes)
        rc: int | None = None
        polls = 0
        while True:
            polls += 1
            if limit is not None and time.monotonic() > limit:
                self._terminate(command_id)
                raise OperationTimeout(self.spec.host, f"command {command!r} did not finish in time")
            if polls > 100_000:
                raise ProtocolError(self.spec.host, "command output never ended")
            receive = ET.Element(f"{{{_RSP}}}Receive")
            ET.SubElement(receive, f"{{{_RSP}}}DesiredStream", CommandId=command_id).text = "stdout stderr"
            try:
                body = self._shell_call(WSManAction.RECEIVE, receive, {"WSMAN_CMDSHELL_OPTION_KEEPALIVE": "True"})
            except WSManFault as fault:
                if fault.code == RECEIVE_TIMED_OUT:
                    continue  # no output yet: poll again
                raise
            for s in body.findall("rsp:ReceiveResponse/rsp:Stream", NAMESPACES):
                if s.text:
                    output.add(s.attrib.get("Name", ""), base64.b64decode(s.text))
            if output.truncated:
                rc = -1  # stopped by us: it never finished
                break
            state = body.find("rsp:ReceiveResponse/rsp:CommandState", NAMESPACES)
            if state is not None and state.attrib.get("State") == _DONE:
                code = state.findtext("rsp:ExitCode", default=None, namespaces=NAMESPACES)
                rc = int(code) if code not in (None, "") else 0
                break
        self._terminate(command_id)
        return rc, output

    def _terminate(self, command_id: str) -> None:
        try:
            sig = ET.Element(f"{{{_RSP}}}Signal", CommandId=command_id)
            ET.SubElement(sig, f"{{{_RSP}}}Code").text = _TERMINATE
            self._shell_call(WSManAction.SIGNAL, sig)
        except (TransportError, WinRMError, requests.exceptions.RequestException):
            pass

    def run_powershell(self, script: str, *, timeout: float | None = None, read_only: bool = False) -> CommandResult:
        """Run a PowerShell script the way Ansible's raw module and pywinrm do: ``-EncodedCommand``."""
        encoded = base64.b64encode(script.encode("utf-16-le")).decode()
        return self.run_command(
            "powershell.exe",
            ["-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Unrestricted", "-EncodedCommand", encoded],
            timeout=timeout,
            read_only=read_only,
        )


def _decode(data: bytes, oem: Callable[[], int] = lambda: DEFAULT_OEM) -> str:
    """Output bytes as text: PowerShell's CLIXML error stream, else UTF-8 or the PC's OEM code page per line
    (``codepages.decode_console``)."""
    if data.lstrip().startswith(b"#< CLIXML"):
        return clixml.decode(data.decode("utf-8", "replace"))
    return decode_console(data, oem)
