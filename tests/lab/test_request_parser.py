"""The lab's request parser refuses document type declarations (so entities and external references) in every
encoding a client could choose, and still parses plain envelopes with the C parser."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from defusedxml import DTDForbidden

from orchestrator.lab.wsman.request import MalformedRequest, parse_request, safe_fromstring

BOMB = '<?xml version="1.0"{enc}?><!DOCTYPE s [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><s>&b;</s>'
EXTERNAL = '<!DOCTYPE s SYSTEM "http://127.0.0.1:9/x.dtd"><s/>'


@pytest.mark.parametrize(
    "data",
    [
        BOMB.format(enc="").encode(),
        BOMB.format(enc=' encoding="utf-8"').encode(),
        BOMB.format(enc=' encoding="UTF-16"').encode("utf-16"),
        BOMB.format(enc=' encoding="ISO-8859-1"').encode("latin-1"),
        EXTERNAL.encode(),
        b"\xef\xbb\xbf" + EXTERNAL.encode(),
    ],
)
def test_doctype_is_refused_in_any_encoding(data: bytes) -> None:
    with pytest.raises(DTDForbidden):
        safe_fromstring(data)


@pytest.mark.parametrize(
    "data",
    [b'<?xml version="1.0" encoding="utf-8"?><a x="1">t</a>', b"<a x='1'>t</a>", '<a x="1">t</a>'.encode("utf-16")],
)
def test_plain_documents_parse(data: bytes) -> None:
    root = safe_fromstring(data)
    assert (root.tag, root.get("x"), root.text) == ("a", "1", "t")


def test_bad_xml_is_a_parse_error_with_position() -> None:
    with pytest.raises(ET.ParseError, match="mismatched tag: line 1"):
        safe_fromstring(b"<a><b></a>")
    with pytest.raises(ET.ParseError, match="line 1"):
        safe_fromstring("<a><b></a>".encode("utf-16"))


def test_envelope_with_doctype_is_a_malformed_request() -> None:
    with pytest.raises(MalformedRequest) as info:
        parse_request(EXTERNAL.encode())
    assert "forbidden XML construct (DTDForbidden)" in info.value.fault.message
