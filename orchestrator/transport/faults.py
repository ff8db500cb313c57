"""The response guard for bodies: what a WS-Management answer may hold before anything parses it, and the
parsing of a fault answer (HTTP 4xx/5xx) into a typed ``WSManFault``, with defusedxml.

A body is refused when it is larger than allowed, declares a DTD or entities (entity-expansion bombs), or holds
more XML elements than an answer can (``MAX_ANSWER_TAGS``). Pure functions; ``transport.winrm`` applies them to
every answer, ``transport.session`` bounds the HTTP exchange itself.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from orchestrator.transport import wmi
from orchestrator.transport.errors import ProtocolError, TransportError, WSManFault, wsman_fault
from orchestrator.transport.guard import MAX_RESPONSE_BYTES, ResponseTooLarge

#: Elements in one answer, counted (by its ``<``) before pypsrp parses it: a parsed element costs about 100 bytes,
#: so 16 MiB of ``<a/>`` would take over 400 MiB and tens of seconds of CPU. Windows keeps an answer to the
#: client's MaxEnvelopeSize (pypsrp: 153,600 bytes), i.e. at most some 50,000 tags.
MAX_ANSWER_TAGS = 500_000
_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_HRESULT_ID = re.compile(r"HRESULT\s+0x([0-9A-Fa-f]{8})\b")


def check_answer(host: str, data: bytes) -> bytes:
    """``data`` when it may be parsed; ``ProtocolError`` (cause ``too_large`` or ``protocol``) when not."""
    if len(data) > MAX_RESPONSE_BYTES:
        raise ResponseTooLarge(host, f"response of {len(data)} bytes is larger than allowed")
    if _DTD.search(data):
        raise ProtocolError(host, "response declares a DTD or entities; refused")
    if data.count(b"<") > MAX_ANSWER_TAGS:
        raise ProtocolError(
            host, f"answer holds more than {MAX_ANSWER_TAGS:,} XML elements; refused unparsed", cause="too_large"
        )
    return data


def parse_fault(host: str, http_status: int, text: str) -> TransportError:
    """A non-200 answer → ``WSManFault`` (or ``ProtocolError`` when it is not acceptable XML)."""
    data = text.encode("utf-8", "replace") if isinstance(text, str) else bytes(text)
    if not data.strip():
        return WSManFault(host, None, f"HTTP {http_status} with an empty body", subcode=f"http{http_status}")
    if len(data) > MAX_RESPONSE_BYTES:
        return ResponseTooLarge(host, f"fault body of {len(data)} bytes is larger than allowed")
    if _DTD.search(data):
        return ProtocolError(host, "fault body declares a DTD or entities; refused")
    try:
        root = SafeET.fromstring(data, forbid_dtd=True)
    except (ET.ParseError, DefusedXmlException, ValueError):
        snippet = data[:120].decode("utf-8", "replace")
        return ProtocolError(host, f"HTTP {http_status} with a body that is not XML: {snippet!r}")
    subcode, reason = _soap_fault(root)
    code = next((c for c in map(_fault_code, _attrs(root, "WSManFault", "Code")) if c is not None), None)
    text_reason = (_innermost_message(root) or reason or f"HTTP {http_status}").strip()
    return wsman_fault(host, code, text_reason, subcode=subcode, wmi_code=_wmi_code(root))


def _soap_fault(root: ET.Element) -> tuple[str | None, str | None]:
    """The SOAP fault's (sub)code value and reason text, when the body has a ``s:Fault``."""
    fault = root.find("s:Body/s:Fault", wmi.NS)
    if fault is None:
        return None, None
    subcode = fault.findtext("s:Code/s:Subcode/s:Value", default=None, namespaces=wmi.NS) or fault.findtext(
        "s:Code/s:Value", default=None, namespaces=wmi.NS
    )
    reason = fault.findtext("s:Reason/s:Text", default=None, namespaces=wmi.NS)
    return (subcode.strip() if subcode else None), reason


def _innermost_message(root: ET.Element) -> str | None:
    """The most specific message: the last (innermost) WSManFault ``Message`` with text."""
    message = None
    for el in root.iter():
        if _local(el) == "Message" and el.text and el.text.strip():
            message = el.text.strip()
    return message


def _wmi_code(root: ET.Element) -> int | None:
    """MSFT_WmiError's error_Code (decimal as Windows writes it; hex/signed tolerated), else its "HRESULT 0x…"
    MessageID: classification goes by the number wherever it is (``transport.errors.WSManFault.kind``)."""
    code = _fault_code(_first_text(root, "error_Code") or "")
    if code is not None:
        return code
    ids = " ".join(el.text or "" for el in root.iter() if _local(el) == "MessageID")
    found = _HRESULT_ID.search(ids)
    return int(found.group(1), 16) if found else None


def _fault_code(text: str) -> int | None:
    """An HRESULT as a fault writes it: unsigned or signed decimal, or 0x-hex → unsigned 32-bit; None if not."""
    t = text.strip()
    try:
        value = int(t, 16) if t.lower().startswith("0x") else int(t)
    except ValueError:
        return None
    return value & 0xFFFFFFFF


def _local(el: ET.Element) -> str:
    return el.tag.rsplit("}", 1)[-1]


def _first_text(root: ET.Element, local: str) -> str | None:
    for el in root.iter():
        if _local(el) == local and el.text and el.text.strip():
            return el.text.strip()
    return None


def _attrs(root: ET.Element, local: str, attr: str) -> list[str]:
    return [el.attrib[attr] for el in root.iter() if _local(el) == local and attr in el.attrib]
