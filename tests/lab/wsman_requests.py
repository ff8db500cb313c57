"""Hand-written WS-Management request envelopes for tests that need to send something no client library sends
(malformed, oversized, unknown resources) or want pywinrm's prefix style without pywinrm."""

from __future__ import annotations

import uuid

S = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSMAN = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
RSP = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
WSEN = "http://schemas.xmlsoap.org/ws/2004/09/enumeration"
WST = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
SHELL_CMD = f"{RSP}/cmd"
WMI = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2"
WQL = "http://schemas.microsoft.com/wbem/wsman/1/WQL"


def message_id() -> str:
    return "uuid:" + str(uuid.uuid4()).upper()


def envelope(
    action: str,
    resource_uri: str,
    body: str = "",
    *,
    selectors: dict[str, str] | None = None,
    options: dict[str, str] | None = None,
    timeout: str = "PT20S",
    max_envelope: int = 153600,
    mid: str | None = None,
    style: str = "pypsrp",
) -> str:
    """A request envelope. ``style="pywinrm"`` uses env:/a:/w: prefixes, unqualified mustUnderstand and
    pywinrm's hard-coded ``a:To``."""
    mid = mid or message_id()
    sel = ""
    if selectors:
        sel = "<w:SelectorSet>" + "".join(f'<w:Selector Name="{k}">{v}</w:Selector>' for k, v in selectors.items())
        sel += "</w:SelectorSet>"
    opt = ""
    if options:
        opt = '<w:OptionSet mustUnderstand="true">' if style == "pywinrm" else '<w:OptionSet s:mustUnderstand="true">'
        opt += "".join(f'<w:Option Name="{k}">{v}</w:Option>' for k, v in options.items()) + "</w:OptionSet>"
    if style == "pywinrm":
        return (
            f'<env:Envelope xmlns:env="{S}" xmlns:a="{WSA}" xmlns:w="{WSMAN}" xmlns:rsp="{RSP}" '
            f'xmlns:n="{WSEN}"><env:Header><a:To>http://windows-host:5985/wsman</a:To>'
            f'<a:ReplyTo><a:Address mustUnderstand="true">{WSA}/role/anonymous</a:Address></a:ReplyTo>'
            f'<w:MaxEnvelopeSize mustUnderstand="true">{max_envelope}</w:MaxEnvelopeSize>'
            f"<a:MessageID>{mid.lower()}</a:MessageID>"
            f'<w:Locale mustUnderstand="false" xml:lang="en-US"/><w:OperationTimeout>{timeout}</w:OperationTimeout>'
            f'<w:ResourceURI mustUnderstand="true">{resource_uri}</w:ResourceURI>'
            f'<a:Action mustUnderstand="true">{action}</a:Action>{sel}{opt}</env:Header>'
            f"<env:Body>{body}</env:Body></env:Envelope>"
        )
    return (
        f'<s:Envelope xmlns:s="{S}" xmlns:wsa="{WSA}" xmlns:w="{WSMAN}" xmlns:rsp="{RSP}" xmlns:n="{WSEN}">'
        f'<s:Header><wsa:Action s:mustUnderstand="true">{action}</wsa:Action>'
        f'<w:MaxEnvelopeSize s:mustUnderstand="true">{max_envelope}</w:MaxEnvelopeSize>'
        f"<wsa:MessageID>{mid}</wsa:MessageID><w:OperationTimeout>{timeout}</w:OperationTimeout>"
        f'<wsa:ReplyTo><wsa:Address s:mustUnderstand="true">{WSA}/role/anonymous</wsa:Address></wsa:ReplyTo>'
        f'<w:ResourceURI s:mustUnderstand="true">{resource_uri}</w:ResourceURI>'
        f"<wsa:To>http://example.invalid:5985/wsman</wsa:To>{opt}{sel}</s:Header>"
        f"<s:Body>{body}</s:Body></s:Envelope>"
    )


def create_shell() -> str:
    return envelope(
        f"{WST}/Create",
        SHELL_CMD,
        "<rsp:Shell><rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams>"
        "</rsp:Shell>",
    )


def wql_enumerate(query: str, max_elements: int = 32000) -> str:
    return envelope(
        f"{WSEN}/Enumerate",
        f"{WMI}/*",
        f"<n:Enumerate><w:OptimizeEnumeration/><w:MaxElements>{max_elements}</w:MaxElements>"
        f'<w:Filter Dialect="{WQL}">{query}</w:Filter></n:Enumerate>',
    )
