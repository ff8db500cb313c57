"""One WinRM connection per host per run: what the modules call, on top of the transport's layers.

``WinRMConnection`` owns one WSMan client (``pypsrp_adapter.build_wsman``; pypsrp is not thread-safe: one host,
one thread) and one reused WinRS shell (``winrs.CommandShell``), opened on the first command. It offers what the
modules need — WQL queries, WMI ``Get`` and method ``Invoke``, commands (cmd and PowerShell via
``-EncodedCommand``) — and passes every call through the layers below (docs/transport.md):

- the response guard: every HTTP exchange bounded (``session``, ``guard``), every body checked before pypsrp
  parses it (``faults.check_answer``: size, DTDs, element count), faults parsed with defusedxml
  (``faults.parse_fault``);
- one error mapping (``errormap.map_exception``): every pypsrp/requests exception becomes a transport error with
  a typed ``cause``;
- the retry policy (``retry``): read-only calls only, on transient causes, with a fresh connection each time;
  authentication failures and state-changing calls are never retried.

Every call respects the host's deadline (its time budget) and a cancel event (Ctrl-C).
"""

from __future__ import annotations

import base64
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from pypsrp.exceptions import WinRMTransportError
from pypsrp.shell import WinRS
from pypsrp.wsman import SelectorSet, WSManAction

from orchestrator.transport import clixml, guard, http_sender, wmi
from orchestrator.transport.codepages import DEFAULT_OEM, decode_console, oem_for_codeset
from orchestrator.transport.connection import ConnectionSpec
from orchestrator.transport.errormap import map_exception
from orchestrator.transport.errors import OperationTimeout, ProtocolError, TransportError
from orchestrator.transport.faults import check_answer, parse_fault
from orchestrator.transport.pypsrp_adapter import Around, LeanFactory, WSManClient, build_wsman
from orchestrator.transport.retry import RetryPolicy, is_transient
from orchestrator.transport.session import BoundedSession, StopRequested
from orchestrator.transport.winrs import CommandShell

__all__ = ["Cancelled", "CommandResult", "WinRMConnection", "parse_fault"]

T = TypeVar("T")

MAX_PULLS = 1000
#: Elements of one WQL enumeration over all its Pull answers (the items are kept in memory together). The
#: queries kmsfleet sends return a few thousand; the 1,000-pull cap alone would let 1,000 answers pile up.
MAX_ENUMERATION_ELEMENTS = 1_000_000
#: Bytes of one WQL enumeration over all its answers (decrypted), for the same reason: 1,000 pulls of a few
#: large values each stay under the element cap.
MAX_ENUMERATION_BYTES = 32 * 1024 * 1024
#: Errors of the HTTP exchange that mark the host hostile: it is not contacted again in this run.
_HOSTILE = (guard.ResponseTooLarge, guard.EncodedResponse, guard.SignInLoop, guard.Redirected)


@dataclass(frozen=True)
class CommandResult:
    rc: int
    stdout: str
    stderr: str
    duration_ms: int
    truncated: bool = False  # output went past kmsfleet_max_output_bytes: cut there, the command was stopped


class Cancelled(TransportError):
    """The run is stopping (Ctrl-C); no new request was sent."""

    default_cause = "cancelled"


def _build_wsman(
    spec: ConnectionSpec,
    around: Around,
    on_session: Callable[[requests.Session], None],
    lean: LeanFactory | None = None,
) -> WSManClient:
    """The one place a host's WSMan client is built, and its HTTP layer chosen: ``kmsfleet_http: lean`` (the
    default) hands ``lean`` on (used where ``http_sender.supports`` the settings), ``requests`` keeps pypsrp's."""
    return build_wsman(spec, around, on_session, lean if spec.http == "lean" else None)


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
        self._policy = RetryPolicy(self.retries, self._give_up)
        self._wsman: WSManClient | None = None
        self._commands = CommandShell(spec.host, self._client, self._call_timeout, spec.max_output_bytes)
        self._oem_codepage: int | None = None
        self.requests_sent = 0
        self.bytes_received = 0  # answers' bytes as pypsrp parses them (decrypted)
        self._hostile: TransportError | None = None  # a bound this host broke: it is not contacted again
        self._bounded: BoundedSession | None = None

    # ------------------------------------------------------------------ plumbing

    @property
    def _shell(self) -> WinRS | None:
        """The pypsrp shell in use (None before the first command)."""
        return self._commands.shell

    def _remaining(self) -> float:
        return self.deadline - time.monotonic()

    def _give_up(self) -> bool:
        return self._remaining() < 2.0 or self.cancel.is_set()

    def _call_timeout(self) -> int:
        """OperationTimeout for the next call: the configured one, shortened near the deadline."""
        remaining = self._remaining()
        if self.cancel.is_set():
            raise Cancelled(self.spec.host, "the run is stopping")
        if remaining < 1.0:
            raise OperationTimeout(
                self.spec.host, f"the host's time budget of {self.spec.budget:.0f}s ran out", cause="budget"
            )
        return max(1, min(self.spec.operation_timeout, int(remaining) - 2 if remaining > 3 else 1))

    def _client(self) -> WSManClient:
        if self._wsman is None:
            self._bounded = BoundedSession(
                self.spec.host,
                guard.Bounds(max_response_bytes=guard.MAX_RESPONSE_BYTES),
                deadline=lambda: self.deadline,
                cancel=self.cancel,
                budget=self.spec.budget,
            )
            self._wsman = _build_wsman(self.spec, self._guarded, self._session_built, self._lean_sender)
        return self._wsman

    def _lean_sender(self, transport: Any) -> http_sender.LeanSender:
        """The lean sender of this host (``kmsfleet_http: lean``), under the same bounds as pypsrp's session."""
        return http_sender.LeanSender(
            transport,
            self.spec.host,
            guard.Bounds(max_response_bytes=guard.MAX_RESPONSE_BYTES),
            deadline=lambda: self.deadline,
            cancel=self.cancel,
            budget=self.spec.budget,
        )

    def _session_built(self, session: requests.Session) -> None:
        """Bound the HTTP session pypsrp just built for this host."""
        assert self._bounded is not None  # built with the client
        self._bounded.install(session)
        if self.spec.proxy is None and session.trust_env:
            # pypsrp already resolved the environment (no proxy for this host, CA bundle) when it built the
            # session; leaving trust_env on makes requests re-read every proxy variable of os.environ on
            # every request (about 6 % of the client's CPU in a 40-PC run).
            session.trust_env = False

    def _guarded(self, send: Callable[[], bytes]) -> bytes:
        """One WS-Man request through pypsrp's ``send``: refused for a hostile host, its HTTP errors parsed as
        faults, its answer checked before pypsrp parses it."""
        host = self.spec.host
        if self._hostile is not None:
            raise self._hostile.again(f"{self._hostile.message} (earlier in this run; not contacted again)")
        self.requests_sent += 1
        if self._bounded is not None:
            self._bounded.begin()
        try:
            data = send()
        except WinRMTransportError as exc:
            raise parse_fault(host, int(exc.code), exc.response_text or "") from None
        except StopRequested as exc:
            raise Cancelled(host, exc.message) from None
        except _HOSTILE as exc:
            self._hostile = exc
            raise
        self.bytes_received += len(data)
        return check_answer(host, data)

    def _map(self, exc: BaseException) -> TransportError:
        """pypsrp/requests exception → one of our transport errors (``errormap.map_exception``)."""
        return map_exception(self.spec, exc)

    @staticmethod
    def _transient(err: TransportError) -> bool:
        return is_transient(err)

    def _do(self, op: Callable[[], T], *, read_only: bool) -> T:
        """Run ``op`` with error mapping; read-only calls get bounded retries on transient errors."""

        def mapped() -> T:
            try:
                return op()
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    raise
                raise self._map(exc) from None

        # a transient error: a fresh connection for the next try (the NTLM/encryption state may be broken)
        return self._policy.run(mapped, read_only=read_only, on_transient=self.reset)

    def reset(self) -> None:
        """Drop the connection and shell; the next call reconnects (and re-authenticates)."""
        self._commands.forget()  # the server reaps the abandoned shell at its idle timeout
        client, self._wsman = self._wsman, None
        if client is not None:
            try:
                client.close()
            except Exception:
                pass

    def close(self) -> None:
        """Delete the shell (best effort, short timeout) and close the HTTP session."""
        if self._wsman is not None and not self.cancel.is_set() and self._remaining() > 2:
            self._commands.delete()
        self.reset()

    # ------------------------------------------------------------------ WMI

    def wql(self, query: str, namespace: str = "root/cimv2") -> list[wmi.WmiObject]:
        """Run a WQL query: Enumerate (optimized) then Pull until EndOfSequence (bounded)."""
        return self._do(lambda: self._enumerate(query, namespace), read_only=True)

    def _enumerate(self, query: str, namespace: str) -> list[wmi.WmiObject]:
        """One enumeration: at most ``MAX_PULLS`` Pulls, ``MAX_ENUMERATION_ELEMENTS`` elements and
        ``MAX_ENUMERATION_BYTES`` over all its answers (past those the host is not contacted again)."""
        client = self._client()
        uri = wmi.enumerate_uri(namespace)
        body = _body(client.invoke(WSManAction.ENUMERATE, uri, wmi.enumerate_body(query), timeout=self._call_timeout()))
        cls = wmi.query_class(query)  # names the class of XmlFragment items
        items, context, end = wmi.parse_enumeration(body, cls)
        elements = _count_elements(body)
        start = self.bytes_received
        for pulls in range(1, MAX_PULLS + 1):
            if end or not context:
                return items
            body = _body(client.invoke(WSManAction.PULL, uri, wmi.pull_body(context), timeout=self._call_timeout()))
            elements += _count_elements(body)
            size = self.bytes_received - start
            if elements > MAX_ENUMERATION_ELEMENTS or size > MAX_ENUMERATION_BYTES:
                self._hostile = ProtocolError(
                    self.spec.host,
                    f"enumeration still going after {pulls} pulls, {elements:,} XML elements and "
                    f"{size // 1048576} MiB (limits {MAX_ENUMERATION_ELEMENTS:,} elements, "
                    f"{MAX_ENUMERATION_BYTES // 1048576} MiB); stopped",
                    cause="too_large",
                )
                raise self._hostile
            more, context, end = wmi.parse_enumeration(body, cls)
            items.extend(more)
        if end or not context:
            return items
        raise ProtocolError(self.spec.host, f"enumeration did not end after {MAX_PULLS} pulls")

    def get_instance(
        self, class_name: str, selectors: dict[str, str] | None = None, namespace: str = "root/cimv2"
    ) -> wmi.WmiObject:
        def op() -> wmi.WmiObject:
            client = self._client()
            sel = self._selectors(selectors)
            uri = wmi.class_uri(class_name, namespace)
            body = _body(client.invoke(WSManAction.GET, uri, None, selector_set=sel, timeout=self._call_timeout()))
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
    def _selectors(selectors: dict[str, str] | None) -> SelectorSet | None:
        if not selectors:
            return None
        sel = SelectorSet()
        for k, v in selectors.items():
            sel.add_option(k, str(v))
        return sel

    # ------------------------------------------------------------------ commands

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
        rc, output = self._do(lambda: self._commands.run(command, arguments or [], stdin, limit), read_only=read_only)
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

    def run_powershell(self, script: str, *, timeout: float | None = None, read_only: bool = False) -> CommandResult:
        """Run a PowerShell script the way Ansible's raw module and pywinrm do: ``-EncodedCommand``."""
        encoded = base64.b64encode(script.encode("utf-16-le")).decode()
        return self.run_command(
            "powershell.exe",
            ["-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Unrestricted", "-EncodedCommand", encoded],
            timeout=timeout,
            read_only=read_only,
        )


def _body(envelope: ET.Element) -> ET.Element:
    """The ``s:Body`` of an answer (what pypsrp's ``WSMan.enumerate``/``pull``/``get`` return)."""
    body = envelope.find(wmi.BODY)
    if body is None:
        raise ValueError("answer has no s:Body")
    return body


def _count_elements(body: ET.Element) -> int:
    return sum(1 for _ in body.iter())


def _decode(data: bytes, oem: Callable[[], int] = lambda: DEFAULT_OEM) -> str:
    """Output bytes as text: PowerShell's CLIXML error stream, else UTF-8 or the PC's OEM code page per line
    (``codepages.decode_console``)."""
    if data.lstrip().startswith(b"#< CLIXML"):
        return clixml.decode(data.decode("utf-8", "replace"))
    return decode_console(data, oem)
