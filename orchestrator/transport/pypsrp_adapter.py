"""The one place that reaches into pypsrp's internals: how kmsfleet builds a ``pypsrp.wsman.WSMan``.

pypsrp offers no way to hand ``WSMan`` an HTTP transport, nor a hook on the answers it receives, and its
``WSMan.__init__`` re-registers every WS-Man prefix with ``ElementTree.register_namespace`` on each construction.
The stdlib deletes a mapping and adds it back there, so a request serialized in another thread at that instant
got a generated prefix (``ns0``) bound to the reserved XML namespace and the host rejected it (fault
2150858819; 4 of 5,000 PCs in benchmarks/audit_scale.py). Instead of patching ElementTree or pypsrp:

- ``GuardedHTTP`` subclasses pypsrp's ``_TransportHTTP`` (a private class) and routes each ``send`` through a
  caller-given ``around`` function and each new ``requests.Session`` through ``on_session``; with
  ``kmsfleet_http: lean`` (and a setting the lean sender supports) the HTTP exchange itself is
  ``transport.http_sender.LeanSender``'s instead of pypsrp's requests session;
- ``shell_selectors`` reads the selectors a shell's Create answer handed out (``WinRS._selector_set``): older
  Windows answers Create with ``ResourceCreated`` only, so the public ``WinRS.id`` may be None;
- ``WSManClient`` subclasses ``WSMan`` and sets the attributes its methods use without running
  ``WSMan.__init__``: it takes the transport built above, and the prefixes are registered once, when this
  module is imported (``register_namespaces``, ElementTree's public API, as pypsrp itself uses it), before any
  client exists — never again while requests are in flight. Its ``invoke`` renders requests of a fixed shape
  from cached byte templates (``transport.envelope``: the same bytes as pypsrp's, built once per shape by
  pypsrp's own ``_create_header``) and parses each answer once, as pypsrp does; other requests go through
  pypsrp's ``invoke``. Its ``_calc_envelope_size`` is pypsrp's, cached per settings.

Upstream changes that would remove this module: a ``transport=`` argument to ``WSMan`` (or a public
send/response hook on ``_TransportHTTP``), a public ``WinRS.selector_set``, registering the prefixes once at
import of ``pypsrp.wsman``, and a template cache in ``WSMan.invoke`` (``transport.envelope`` says how). Written
against pypsrp 0.9 (pinned below 0.10 in pyproject.toml): the ``WSMan`` attributes set here are ``session_id``,
``locale``, ``data_locale``, ``transport``, ``max_envelope_size``, ``operation_timeout`` and
``max_payload_size``; ``envelope`` also relies on ``_create_header``'s signature and on ``invoke`` serialising
with ``ET.tostring(envelope, encoding="utf-8", method="xml")``.
"""

from __future__ import annotations

import functools
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

import requests
from pypsrp.exceptions import WinRMError, WinRMTransportError
from pypsrp.shell import WinRS
from pypsrp.wsman import NAMESPACES, OptionSet, SelectorSet, WSMan, _TransportHTTP

from orchestrator.transport import envelope, http_sender
from orchestrator.transport.connection import ConnectionSpec

#: pypsrp's default MaxEnvelopeSize (bytes): what Windows Server 2008 R2 accepts, the smallest of supported hosts.
MAX_ENVELOPE_SIZE = 153600
_XML_NS = "http://www.w3.org/XML/1998/namespace"  # bound to ``xml`` by the stdlib itself; never re-registered

#: What a guarded send is given: a function doing pypsrp's send (sign-in, encryption, HTTP) and returning the body.
Around = Callable[[Callable[[], bytes]], bytes]
#: Builds the lean sender of a host from the pypsrp transport (whose settings pypsrp has checked).
LeanFactory = Callable[[_TransportHTTP], http_sender.LeanSender]


@functools.cache
def register_namespaces() -> None:
    """Register pypsrp's WS-Man prefixes with ElementTree once per process (``functools.cache``: later calls do
    nothing). ``xml`` is skipped: the stdlib binds it already, and re-registering it opens the window above."""
    for prefix, uri in NAMESPACES.items():
        if uri != _XML_NS:
            ET.register_namespace(prefix, uri)


register_namespaces()  # at import, before any client exists: request building never races a registration


class GuardedHTTP(_TransportHTTP):
    """pypsrp's HTTP transport with every send passed through ``around`` and every session through
    ``on_session`` (bounded reads, refused encodings … ``transport.session``)."""

    def __init__(
        self, *args: Any, around: Around, on_session: Callable[[requests.Session], None], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._around = around
        self._on_session = on_session
        self.lean: http_sender.LeanSender | None = None  # set by ``build_wsman`` for ``kmsfleet_http: lean``

    def send(self, message: bytes, **kwargs: Any) -> bytes:
        lean = self.lean
        if lean is not None:
            return self._around(lambda: lean.send(message, **kwargs))
        parent = super().send
        return self._around(lambda: parent(message, **kwargs))

    def close(self) -> None:
        if self.lean is not None:
            self.lean.close()
        super().close()

    def _build_session(self) -> requests.Session:
        session: requests.Session = super()._build_session()
        self._on_session(session)
        return session


class WSManClient(WSMan):
    """``WSMan`` over a given transport, without the per-construction namespace registration, whose requests of a
    fixed shape are rendered from cached templates (``transport.envelope``)."""

    def __init__(self, transport: _TransportHTTP, *, operation_timeout: int, locale: str = "en-US") -> None:
        # deliberately not WSMan.__init__ (see the module docstring): the same attributes, set here
        self.session_id = str(uuid.uuid4())
        self.locale = locale
        self.data_locale = locale
        self.transport = transport
        self.max_envelope_size = MAX_ENVELOPE_SIZE
        self.operation_timeout = operation_timeout
        self.max_payload_size = self._calc_envelope_size(MAX_ENVELOPE_SIZE)

    def _calc_envelope_size(self, max_envelope_size: int) -> int:
        """pypsrp's figure (it serialises a probe envelope per client), cached: it depends only on the lengths of
        the probe's values, so it is computed once per locale, timeout, size and length of the address."""
        return _payload_size(
            self.locale,
            self.data_locale,
            self.operation_timeout,
            max_envelope_size,
            len(envelope.escape_text(self.transport.endpoint).encode("utf-8")),
        )

    def invoke(
        self,
        action: str,
        resource_uri: str,
        resource: ET.Element | envelope.Body | None,
        option_set: OptionSet | None = None,
        selector_set: SelectorSet | None = None,
        timeout: int | None = None,
        *,
        retries_on_read_timeout: int = 0,
    ) -> ET.Element:
        """``WSMan.invoke`` with the request rendered from its shape's template (``envelope.render``: the same
        bytes); an ``ET.Element`` body (pypsrp's own WinRS Create …) or an unrenderable request goes through
        pypsrp's ``invoke`` as before. The answer is parsed once (``ET.fromstring``), as pypsrp does."""
        rendered = (
            None
            if isinstance(resource, ET.Element)
            else envelope.render(self, action, resource_uri, resource, option_set, selector_set, timeout)
        )
        if rendered is None:
            element = resource.element() if isinstance(resource, envelope.Body) else resource
            return super().invoke(
                action,
                resource_uri,
                element,
                option_set,
                selector_set,
                timeout,
                retries_on_read_timeout=retries_on_read_timeout,
            )
        message_id, xml = rendered
        return self._exchange(message_id, xml, timeout, retries_on_read_timeout)

    def _exchange(self, message_id: str, xml: bytes, timeout: int | None, retries_on_read_timeout: int) -> ET.Element:
        """Send ``xml`` and parse the answer: the second half of pypsrp 0.9's ``WSMan.invoke``, unchanged (HTTP
        timeout 2 s past the OperationTimeout, a transport error's body parsed as a fault, RelatesTo checked)."""
        try:
            response = self.transport.send(
                xml, retries_on_read_timeout=retries_on_read_timeout, timeout=timeout + 2 if timeout else None
            )
        except WinRMTransportError as err:
            try:
                raise self._parse_wsman_fault(err.response_text) from None
            except ET.ParseError:
                raise err from None
        response_xml = ET.fromstring(response)  # noqa: S314 -- as pypsrp: the guard refused DTDs (faults.check_answer)
        relates_to = response_xml.findtext("s:Header/wsa:RelatesTo", default="", namespaces=NAMESPACES)
        if message_id != relates_to:
            raise WinRMError(
                f"Received related id does not match related expected message id: Sent: {message_id}, "
                f"Received: {relates_to}"
            )
        return response_xml


@functools.lru_cache(maxsize=64)
def _payload_size(locale: str, data_locale: str, operation_timeout: int, max_envelope_size: int, to_length: int) -> int:
    """``WSMan._calc_envelope_size`` for a client with these settings and an address of ``to_length`` bytes."""
    stand_in = SimpleNamespace(
        locale=locale,
        data_locale=data_locale,
        max_envelope_size=max_envelope_size,
        operation_timeout=operation_timeout,
        session_id="0" * 36,  # a uuid4's length, as every client's
        transport=SimpleNamespace(endpoint="x" * to_length),
    )
    probe = cast(WSMan, stand_in)
    stand_in._create_header = functools.partial(WSMan._create_header, probe)
    return WSMan._calc_envelope_size(probe, max_envelope_size)


def build_wsman(
    spec: ConnectionSpec,
    around: Around,
    on_session: Callable[[requests.Session], None],
    lean: LeanFactory | None = None,
) -> WSManClient:
    """The WSMan client of one host, its HTTP transport guarded by ``around``/``on_session``; its exchanges made
    by the sender ``lean`` builds when given and the lean sender supports the settings (``http_sender.supports``:
    NTLM, Negotiate or Basic, no proxy), else by pypsrp's requests session."""
    extra: dict[str, Any] = {}
    if spec.transport == "certificate":
        extra = {"certificate_pem": spec.cert_pem, "certificate_key_pem": spec.cert_key_pem}
    transport = GuardedHTTP(
        spec.address,
        port=spec.port,
        username=spec.user,
        password=spec.password,
        ssl=spec.scheme == "https",
        auth=spec.transport,
        # pypsrp also takes a CA path. No TLS on http://, so nothing to validate: with validation on, requests
        # checks the CA bundle's path on disk for every request (about 5 % of the client's CPU in an audit).
        cert_validation=spec.cert_validation if spec.scheme == "https" else False,
        connection_timeout=spec.connect_timeout,
        read_timeout=spec.read_timeout,
        encryption=spec.message_encryption,
        proxy=spec.proxy,
        no_proxy=spec.proxy is None,
        reconnection_retries=0,
        reconnection_backoff=0.0,
        around=around,
        on_session=on_session,
        **extra,
    )
    if lean is not None and http_sender.supports(transport):
        transport.lean = lean(transport)
    return WSManClient(transport, operation_timeout=spec.operation_timeout)


def shell_selectors(shell: WinRS) -> SelectorSet | None:
    """The selectors (``ShellId``) of an open shell, as its Create answer gave them; every later request of the
    shell must carry them (MS-WSMV 3.1.4.11)."""
    selectors: SelectorSet | None = shell._selector_set
    return selectors
