"""WS-Management Identify (DSP0226 §11): the probe ``Test-WSMan`` and scanners send to learn whether a host
speaks WS-Man. The request is a SOAP envelope with an empty header and a ``wsmid:Identify`` body (no Action,
no MessageID). Windows answers it unauthenticated when the HTTP request carries ``WSMANIDENTIFY:
unauthenticated`` (then the OS version is hidden as 0.0.0), and with the real OS version after a normal logon.
The response has an empty header, so nothing to relate to."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as safe_fromstring

from orchestrator.lab.wsman import ns
from orchestrator.lab.wsman.xmltext import esc

WSMID = "http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd"
_IDENTIFY = f"{{{WSMID}}}Identify"
_BODY = f"{{{ns.S}}}Body"
_SPNEGO = "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/http/spnego-kerberos"


def is_identify(data: bytes) -> bool:
    """True for a well-formed envelope whose body is exactly one ``wsmid:Identify``."""
    if WSMID.encode() not in data:
        return False
    try:
        root = safe_fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (DefusedXmlException, ET.ParseError, ValueError, RecursionError):
        return False
    body = root.find(_BODY)
    return body is not None and len(body) == 1 and body[0].tag == _IDENTIFY


def identify_response(os_version: str | None) -> bytes:
    """``os_version`` ``None`` = the unauthenticated answer (OS: 0.0.0)."""
    version = os_version or "0.0.0"
    profiles = (
        f"<wsmid:SecurityProfiles><wsmid:SecurityProfileName>{_SPNEGO}</wsmid:SecurityProfileName>"
        "</wsmid:SecurityProfiles>"
        if os_version
        else ""
    )
    return (
        f'<s:Envelope xml:lang="en-US" xmlns:s="{ns.S}"><s:Header/><s:Body>'
        f'<wsmid:IdentifyResponse xmlns:wsmid="{WSMID}">'
        f"<wsmid:ProtocolVersion>{ns.WSMAN}</wsmid:ProtocolVersion>"
        "<wsmid:ProductVendor>Microsoft Corporation</wsmid:ProductVendor>"
        f"<wsmid:ProductVersion>OS: {esc(version)} SP: 0.0 Stack: 3.0</wsmid:ProductVersion>{profiles}"
        "</wsmid:IdentifyResponse></s:Body></s:Envelope>"
    ).encode()
