"""Parsing a WS-Management request envelope.

By namespace, never by prefix: pypsrp writes ``s:``/``wsa:``/``wsman:`` with ``s:mustUnderstand``; pywinrm
writes ``env:``/``a:``/``w:``/``p:`` with an unqualified ``mustUnderstand`` and a hard-coded ``a:To``. ``wsa:To``
is ignored. No DTDs, hence no entity expansion and no external references: a first expat pass (C, no Python
callbacks but one on a DOCTYPE) refuses any document type declaration with defusedxml's ``DTDForbidden``, then
the C-accelerated ElementTree parser builds the tree (defusedxml's parser is ElementTree's pure-Python one, and
its callbacks were the largest cost of a lab request). Entities can only be declared in a DTD, so this refuses
what ``forbid_dtd``/``forbid_entities``/``forbid_external`` refuse.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.parsers import expat

from defusedxml import DefusedXmlException, DTDForbidden

from orchestrator.lab.wsman import faults, ns
from orchestrator.lab.wsman.ns import q

_ENVELOPE = q(ns.S, "Envelope")
_HEADER = q(ns.S, "Header")
_BODY = q(ns.S, "Body")
_ACTION = q(ns.WSA, "Action")
_MESSAGE_ID = q(ns.WSA, "MessageID")
_RESOURCE_URI = q(ns.WSMAN, "ResourceURI")
_MAX_ENVELOPE = q(ns.WSMAN, "MaxEnvelopeSize")
_OP_TIMEOUT = q(ns.WSMAN, "OperationTimeout")
_OPTION_SET = q(ns.WSMAN, "OptionSet")
_OPTION = q(ns.WSMAN, "Option")
_SELECTOR_SET = q(ns.WSMAN, "SelectorSet")
_SELECTOR = q(ns.WSMAN, "Selector")
_LOCALE = q(ns.WSMAN, "Locale")
_XML_LANG = q(ns.XML, "lang")

_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


@dataclass(slots=True)
class WSManRequest:
    action: str
    message_id: str | None
    resource_uri: str
    selectors: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)  # keys lower-cased (Windows matches case-insensitively)
    operation_timeout: float | None = None  # seconds
    max_envelope_size: int | None = None
    locale: str = "en-US"
    body: ET.Element | None = None  # the first child of s:Body
    size: int = 0

    def selector(self, name: str) -> str | None:
        lname = name.lower()
        for key, value in self.selectors.items():
            if key.lower() == lname:
                return value
        return None

    def option(self, name: str) -> str | None:
        return self.options.get(name.lower())

    def option_bool(self, name: str, default: bool = False) -> bool:
        value = self.option(name)
        if value is None:
            return default
        return value.strip().lower() in ("true", "1", "yes")


class MalformedRequest(Exception):
    """The bytes are not a usable envelope. ``fault`` is what to answer; ``message_id`` when it was readable."""

    def __init__(self, fault: faults.WSManFault, message_id: str | None = None) -> None:
        super().__init__(fault.reason)
        self.fault = fault
        self.message_id = message_id


def parse_duration(text: str) -> float:
    """``PT20S``, ``PT60.000S``, ``P0DT0H1M0S`` → seconds. Raises ValueError for anything else (e.g. ``PT-1S``)."""
    m = _DURATION.match(text.strip())
    if not m or text.strip() in ("P", "PT"):
        raise ValueError(text)
    d, h, mi, s = (float(m.group(g) or 0) for g in ("d", "h", "m", "s"))
    return d * 86400 + h * 3600 + mi * 60 + s


_PLAIN_DECL = re.compile(
    rb"\s*(?:<\?xml[^>]*?encoding=[\"'](?i:utf-8|us-ascii)[\"']"  # declared UTF-8 / ASCII
    rb"|<\?xml(?:(?!encoding)[^>])*\?>"  # a declaration without an encoding (UTF-8)
    rb"|<[^?!])"  # no declaration
)


def _refuse_doctype(name: str, sysid: str | None, pubid: str | None, has_internal_subset: bool) -> None:
    raise DTDForbidden(name, sysid, pubid)


def safe_fromstring(data: bytes) -> ET.Element:
    """Parse ``data``; raise ``DTDForbidden`` on a document type declaration, ``ET.ParseError`` on bad XML."""
    if b"<!" in data or not data.isascii() or not _PLAIN_DECL.match(data):
        # A DOCTYPE in an ASCII document with a UTF-8 (or no) encoding declaration needs the bytes "<!";
        # anything else (UTF-16, other declared encodings, non-ASCII bytes) gets the full check.
        check = expat.ParserCreate()
        check.StartDoctypeDeclHandler = _refuse_doctype
        try:
            check.Parse(data, True)
        except expat.ExpatError as exc:
            err = ET.ParseError(str(exc))
            err.code, err.position = exc.code, (exc.lineno, exc.offset)
            raise err from None
    return ET.fromstring(data)  # noqa: S314 -- checked above: no DTD, so no entities and no external references


def parse_request(data: bytes) -> WSManRequest:
    try:
        root = safe_fromstring(data)
    except DefusedXmlException as exc:
        raise MalformedRequest(faults.invalid_xml(f"forbidden XML construct ({type(exc).__name__})")) from None
    except ET.ParseError as exc:
        raise MalformedRequest(faults.invalid_xml(str(exc))) from None
    except (ValueError, RecursionError) as exc:
        raise MalformedRequest(faults.invalid_xml(type(exc).__name__)) from None
    if root.tag != _ENVELOPE:
        raise MalformedRequest(faults.invalid_xml("the root element is not a SOAP 1.2 Envelope"))
    header = root.find(_HEADER)
    body = root.find(_BODY)
    if header is None or body is None:
        raise MalformedRequest(faults.invalid_xml("the envelope needs an s:Header and an s:Body"))

    message_id = _text(header.find(_MESSAGE_ID))
    action = _text(header.find(_ACTION))
    if not action:
        raise MalformedRequest(faults.header_required("Action"), message_id)
    if not message_id:
        raise MalformedRequest(faults.header_required("MessageID"), None)
    req = WSManRequest(action=action, message_id=message_id, resource_uri=_text(header.find(_RESOURCE_URI)) or "")
    req.size = len(data)
    _read_limits(header, req)
    locale = header.find(_LOCALE)
    if locale is not None:
        req.locale = locale.get(_XML_LANG) or locale.get("lang") or "en-US"
    req.options.update(_named_values(header.find(_OPTION_SET), _OPTION, lower=True))
    req.selectors.update(_named_values(header.find(_SELECTOR_SET), _SELECTOR, lower=False))
    for child in body:
        req.body = child
        break
    return req


def _read_limits(header: ET.Element, req: WSManRequest) -> None:
    """``wsman:OperationTimeout`` and ``wsman:MaxEnvelopeSize``; a malformed value is the fault Windows sends."""
    timeout_text = _text(header.find(_OP_TIMEOUT))
    if timeout_text:
        try:
            req.operation_timeout = parse_duration(timeout_text)
        except ValueError:
            raise MalformedRequest(
                faults.invalid_header(f"The XML contains an invalid timeout field in the SOAP header: {timeout_text}."),
                req.message_id,
            ) from None
    size_text = _text(header.find(_MAX_ENVELOPE))
    if not size_text:
        return
    try:
        req.max_envelope_size = int(size_text)
    except ValueError:
        raise MalformedRequest(
            faults.invalid_header(f"The MaxEnvelopeSize header is not a number: {size_text}."), req.message_id
        ) from None
    if req.max_envelope_size <= 0:
        raise MalformedRequest(
            faults.invalid_header(f"The MaxEnvelopeSize header is not valid: {size_text}."), req.message_id
        )


def _named_values(parent: ET.Element | None, tag: str, *, lower: bool) -> dict[str, str]:
    """``Name`` attribute -> text of the ``tag`` elements of an OptionSet / SelectorSet (names lower-cased when
    ``lower``); elements without a name are ignored."""
    out: dict[str, str] = {}
    if parent is None:
        return out
    for el in parent.iter(tag):
        name = el.get("Name")
        if name:
            out[name.lower() if lower else name] = (el.text or "").strip()
    return out


def _text(elem: ET.Element | None) -> str | None:
    if elem is None or elem.text is None:
        return None
    return elem.text.strip()


def peek_message_id(data: bytes) -> str | None:
    """Best effort MessageID of a request that could not be processed (for RelatesTo on a fault)."""
    m = re.search(rb"<(?:[A-Za-z0-9_]+:)?MessageID[^>]*>\s*([^<\s]{1,100})\s*<", data[:8192])
    return m.group(1).decode("ascii", "replace") if m else None
