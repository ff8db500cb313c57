"""The cached envelope templates (``transport.envelope``) against pypsrp's own ``WSMan.invoke``: for every request
shape the product sends, the bytes on the wire must be pypsrp's (and so their canonical XML), with values that
need escaping, selectors, options and the MessageID fixed. The wire itself is tested over loopback in
tests/lab/test_envelope_wire.py and by every lab and recording test that goes through ``WinRMConnection``."""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from pypsrp.shell import WinRS
from pypsrp.wsman import OptionSet, SelectorSet, WSMan, WSManAction

from orchestrator.transport import envelope, winrs, wmi
from orchestrator.transport.pypsrp_adapter import GuardedHTTP, WSManClient

SHELL_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
#: Values that every escaping rule meets: markup, quotes, line ends, a tab, non-ASCII (zh-TW).
AWKWARD = "a&b<c>d\"e'f\r\ng\th 中文"
_MESSAGE_ID = re.compile(rb"MessageID>uuid:([0-9A-F-]{36})<")


class Wire:
    """A client whose transport records each request and answers it with an empty body of the right RelatesTo."""

    def __init__(self, endpoint_host: str = "pc-01.example") -> None:
        self.transport = GuardedHTTP(
            endpoint_host,
            port=5985,
            username="u",
            password="p",
            ssl=False,
            auth="ntlm",
            cert_validation=False,
            around=lambda send: send(),
            on_session=lambda session: None,
        )
        self.client = WSManClient(self.transport, operation_timeout=20)
        self.sent: list[bytes] = []
        self.transport.send = self._send  # type: ignore[method-assign]

    def _send(self, message: bytes, **_kwargs: Any) -> bytes:
        self.sent.append(message)
        found = _MESSAGE_ID.search(message)
        relates = found.group(1).decode() if found else ""
        return (
            '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
            'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"><s:Header>'
            f"<a:RelatesTo>uuid:{relates}</a:RelatesTo></s:Header><s:Body/></s:Envelope>"
        ).encode()

    def both(self, action: str, uri: str, body: envelope.Body | None, **kwargs: Any) -> tuple[bytes, bytes]:
        """(what kmsfleet's client sends, what pypsrp's ``WSMan.invoke`` sends) for one request, same MessageID."""
        fixed = uuid.UUID("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
        with mock.patch("uuid.uuid4", return_value=fixed):
            self.client.invoke(action, uri, body, **kwargs)
            element = body.element() if body is not None else None
            WSMan.invoke(self.client, action, uri, element, **kwargs)
        ours, theirs = self.sent[-2:]
        return ours, theirs


def _selectors(**values: str) -> SelectorSet:
    selectors = SelectorSet()
    for name, value in values.items():
        selectors.add_option(name, value)
    return selectors


def _shapes() -> Iterator[tuple[str, str, str, envelope.Body | None, dict[str, Any]]]:
    """(name, action, resource URI, body, options) of every request kmsfleet renders."""
    shell = {"selector_set": _selectors(ShellId="3F2A-11"), "timeout": 7}
    slp = wmi.class_uri("SoftwareLicensingProduct")
    yield (
        "enumerate",
        WSManAction.ENUMERATE,
        wmi.enumerate_uri(),
        wmi.enumerate_body(f"SELECT * FROM X WHERE a='{AWKWARD}'"),
        {},
    )
    yield (
        "enumerate-ns",
        WSManAction.ENUMERATE,
        wmi.enumerate_uri("root\\default"),
        wmi.enumerate_body("SELECT Name FROM StdRegProv", 5),
        {"timeout": 3},
    )
    yield "pull", WSManAction.PULL, wmi.enumerate_uri(), wmi.pull_body("uuid:8C2B5E-" + AWKWARD), {}
    yield "get", WSManAction.GET, wmi.class_uri("Win32_Service"), None, {"selector_set": _selectors(Name=AWKWARD)}
    yield "get-plain", WSManAction.GET, wmi.class_uri("Win32_OperatingSystem"), None, {}
    params = {"ProductKey": AWKWARD, "Nothing": None, "Flags": [True, False, 3], "Empty": []}
    yield (
        "invoke",
        f"{slp}/Install",
        slp,
        wmi.invoke_body("SoftwareLicensingProduct", "Install", params),
        {"selector_set": _selectors(ID="ab-12", Other=AWKWARD)},
    )
    yield "invoke-none", f"{slp}/Activate", slp, wmi.invoke_body("SoftwareLicensingProduct", "Activate", {}), {}
    args = ["-NoProfile", AWKWARD, "x" * 3000]
    yield (
        "command",
        WSManAction.COMMAND,
        SHELL_URI,
        envelope.Body(("command", 3), winrs._command_element, ("powershell.exe", *args)),
        {**shell, "option_set": winrs._COMMAND_OPTIONS},
    )
    yield (
        "command-bare",
        WSManAction.COMMAND,
        SHELL_URI,
        envelope.Body(("command", 0), winrs._command_element, ("hostname",)),
        {**shell, "option_set": winrs._COMMAND_OPTIONS},
    )
    yield (
        "send",
        WSManAction.SEND,
        SHELL_URI,
        envelope.Body(("send",), winrs._send_element, (AWKWARD, "aGVsbG8=")),
        shell,
    )
    yield (
        "receive",
        WSManAction.RECEIVE,
        SHELL_URI,
        envelope.Body(("receive",), winrs._receive_element, (AWKWARD,)),
        {**shell, "option_set": winrs._KEEPALIVE},
    )
    yield "signal", WSManAction.SIGNAL, SHELL_URI, envelope.Body(("signal",), winrs._signal_element, ("C-1",)), shell
    yield "delete", WSManAction.DELETE, SHELL_URI, None, shell
    # a value left empty: not templated (ElementTree writes <a />), pypsrp's path serialises it
    yield (
        "command-empty-arg",
        WSManAction.COMMAND,
        SHELL_URI,
        envelope.Body(("command", 1), winrs._command_element, ("cmd", "")),
        shell,
    )


@pytest.mark.parametrize("name,action,uri,body,kwargs", list(_shapes()), ids=[s[0] for s in _shapes()])
def test_every_shape_sends_pypsrps_bytes(
    name: str, action: str, uri: str, body: envelope.Body | None, kwargs: dict[str, Any]
) -> None:
    wire = Wire()
    for _ in range(2):  # the first builds the template, the second renders from the cache
        ours, theirs = wire.both(action, uri, body, **kwargs)
        assert ET.canonicalize(ours.decode()) == ET.canonicalize(theirs.decode())
        assert ours == theirs


def test_per_request_values_change_and_the_shape_is_reused() -> None:
    """Two requests of one shape differ only in their slots; other clients (endpoint, session) share the shape."""
    first, second = Wire("pc-01.example"), Wire("pc-02.example")
    body = wmi.pull_body("ctx-1")
    first.client.invoke(WSManAction.PULL, wmi.enumerate_uri(), body, timeout=9)
    before = len(envelope.TEMPLATES)
    second.client.invoke(WSManAction.PULL, wmi.enumerate_uri(), wmi.pull_body("ctx-2"), timeout=4)
    assert len(envelope.TEMPLATES) == before
    a, b = first.sent[0], second.sent[0]
    assert _MESSAGE_ID.search(a) and _MESSAGE_ID.search(b)
    assert _MESSAGE_ID.search(a).group(1) != _MESSAGE_ID.search(b).group(1)  # type: ignore[union-attr]
    assert b"pc-01.example" in a and b"pc-02.example" in b and b"ctx-2" in b and b"PT4S" in b and b"PT9S" in a
    assert str(second.client.session_id).upper().encode() in b


def test_the_shell_pypsrp_opens_still_goes_through_pypsrp() -> None:
    """pypsrp's WinRS Create hands an ET.Element: sent as pypsrp builds it (no template for a foreign body)."""
    wire = Wire()
    before = len(envelope.TEMPLATES)
    WinRS(wire.client, codepage=65001).open()  # the empty answer has no ShellId; the request is what is checked
    assert b"<rsp:Shell" in wire.sent[-1] and b"65001" in wire.sent[-1]
    assert len(envelope.TEMPLATES) == before


def test_answer_of_another_request_is_refused() -> None:
    wire = Wire()
    wire.transport.send = lambda message, **kw: Wire._send(wire, message.replace(b"uuid:", b"uuid:X", 1))  # type: ignore[method-assign]
    with pytest.raises(Exception, match="related id does not match"):
        wire.client.invoke(WSManAction.GET, wmi.class_uri("Win32_BIOS"), None)


def test_template_cache_is_bounded() -> None:
    cache = envelope.TemplateCache(limit=3)
    template = envelope.Template((b"x",), (), ())
    for n in range(10):
        cache.get(envelope.Shape(f"a{n}", "u", None, None, "en-US", "en-US", 1, None), lambda: template)
        assert len(cache) <= 3


def test_a_marker_in_a_fixed_part_is_refused_not_mis_cut() -> None:
    """A resource URI that happened to contain the marker text would shift the slots: building refuses it."""
    wire = Wire()
    with pytest.raises(ValueError, match="slots"):
        envelope.build_template(wire.client, WSManAction.GET, "http://x/@KMSFLEET-SLOT-9@", None, None, None)


def test_escaping_matches_elementtree() -> None:
    element = ET.Element("a", b=AWKWARD)
    element.text = AWKWARD
    expected = ET.tostring(element, encoding="unicode")
    assert expected == f'<a b="{envelope.escape_attribute(AWKWARD)}">{envelope.escape_text(AWKWARD)}</a>'


def test_option_values_are_part_of_the_shape() -> None:
    wire = Wire()
    on, off = OptionSet(), OptionSet()
    on.add_option("WINRS_SKIP_CMD_SHELL", "True")
    off.add_option("WINRS_SKIP_CMD_SHELL", "False")
    body = envelope.Body(("command", 0), winrs._command_element, ("hostname",))
    for options in (on, off):
        ours, theirs = wire.both(WSManAction.COMMAND, SHELL_URI, body, option_set=options)
        assert ours == theirs


@pytest.mark.parametrize("host", ["pc-01", "10.20.30.40", "a&b.example", "教室-07"])
def test_payload_size_is_pypsrps(host: str) -> None:
    """The cached MaxEnvelopeSize payload figure equals pypsrp's own probe for the same client."""
    client = Wire(host).client
    for size in (153600, 512000):
        assert client._calc_envelope_size(size) == WSMan._calc_envelope_size(client, size)
    assert client.max_payload_size == WSMan._calc_envelope_size(client, 153600)


def test_selector_attributes_keep_their_order() -> None:
    """Attributes of a selector in another order are another shape (ElementTree writes them as given)."""
    wire = Wire()
    for attributes in ({"a": "1", "b": "2"}, {"b": "2", "a": "1"}):
        selectors = SelectorSet()
        selectors.add_option("ShellId", "S-1", attributes)
        ours, theirs = wire.both(WSManAction.DELETE, SHELL_URI, None, selector_set=selectors)
        assert ours == theirs
