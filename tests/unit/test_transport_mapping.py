"""The transport's one error mapping (``WinRMConnection._map``): answers of an unexpected shape that make pypsrp,
requests or our parsing trip become ``ProtocolError`` — a documented transport error — never an escaping
traceback (found by benchmarks/fuzz.py: an NTLM host answering 200 without a challenge made pypsrp raise
KeyError; XML nested 5,000 deep made ElementPath raise RecursionError)."""

from __future__ import annotations

import pytest
import requests

from orchestrator.transport.connection import connection_spec
from orchestrator.transport.errors import ProtocolError, TransportError
from orchestrator.transport.winrm import WinRMConnection

SPEC = connection_spec(
    "pc05", {"ansible_host": "127.0.1.5", "ansible_user": "administrator", "ansible_password": "S3cret-pw!"}
)


@pytest.mark.parametrize(
    "exc",
    [
        KeyError("127.0.1.5"),
        IndexError("list index out of range"),
        AttributeError("'NoneType' object has no attribute 'text'"),
        TypeError("int() argument must be a string"),
        OverflowError("int too large"),
        RecursionError("maximum recursion depth exceeded"),
    ],
)
def test_malformed_answers_become_protocol_errors(exc: BaseException) -> None:
    mapped = WinRMConnection(SPEC)._map(exc)
    assert isinstance(mapped, ProtocolError)
    assert type(exc).__name__ in mapped.message
    assert "S3cret-pw!" not in str(mapped)


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.ChunkedEncodingError("bad chunk"),
        requests.exceptions.InvalidHeader("bad header"),
        requests.exceptions.TooManyRedirects("loop"),
    ],
)
def test_broken_http_answers_are_transport_errors(exc: BaseException) -> None:
    assert isinstance(WinRMConnection(SPEC)._map(exc), TransportError)


def test_unknown_exceptions_still_escape() -> None:
    """Anything that is not about the host's answer (a bug, an interrupt) is not disguised."""
    with pytest.raises(LookupError):
        WinRMConnection(SPEC)._map(LookupError("not an answer problem"))


def test_creating_wsman_clients_never_unregisters_a_namespace() -> None:
    """pypsrp re-registers its XML namespace prefixes in every ``WSMan()``; the stdlib's register_namespace deletes
    and re-adds each mapping, so a request serialized in another thread in that window could bind a generated
    prefix to the reserved XML namespace and the host rejected it (4 of 5,000 PCs in benchmarks/audit_scale.py).
    kmsfleet's clients register the prefixes once per process, so building them deletes nothing."""
    import xml.etree.ElementTree as ET

    from orchestrator.transport.pypsrp_adapter import build_wsman

    deleted: list[str] = []

    class Recording(dict[str, str]):
        def __delitem__(self, key: str) -> None:
            deleted.append(key)
            super().__delitem__(key)

    saved = ET._namespace_map  # type: ignore[attr-defined]
    ET._namespace_map = Recording(saved)  # type: ignore[attr-defined]
    try:
        for _ in range(3):
            build_wsman(SPEC, lambda send: send(), lambda session: None)
        assert ET._namespace_map.get("http://www.w3.org/XML/1998/namespace") == "xml"  # type: ignore[attr-defined]
    finally:
        ET._namespace_map = saved  # type: ignore[attr-defined]
    assert deleted == []
