"""A hostile PC answering WMI queries (WS-Enumeration) through the real transport over loopback: an enumeration
that never ends, 100,000 items at once, millions of empty elements, a property nested 5,000 deep. Each ends
in bounded time and memory with a ``ProtocolError`` naming the problem (or, for the 100,000 items, with the
items), never with a crash or a hang. The endpoints are ``hostile_wsman``'s; the query is win_ping's.
"""

from __future__ import annotations

import resource
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest
from hostile_wsman import MANY_ITEMS, Hostile, HostileThread
from labkit import PASSWORD

from orchestrator.lab.addresses import Claim, claim_prefix
from orchestrator.transport import wmi
from orchestrator.transport.connection import connection_spec
from orchestrator.transport.errors import OperationTimeout, ProtocolError, TransportError
from orchestrator.transport.guard import SlowResponse
from orchestrator.transport.winrm import WinRMConnection

pytestmark = pytest.mark.timeout(90)

KINDS = ("endless_pull", "many_items", "tiny_elements", "deep_nesting", "slow_pull")
BUDGET = 5
QUERY = "SELECT CSName FROM Win32_OperatingSystem"
RSS_GROWTH = 200 * 1024 * 1024  # what one hostile answer may add to this process's peak


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Hostile]]:
    claim: Claim = claim_prefix()
    hostile = [Hostile(kind, f"{claim.prefix}.9.{i}") for i, kind in enumerate(KINDS, start=1)]
    thread = HostileThread(hostile)
    thread.start()
    try:
        yield {ep.kind: ep for ep in hostile}
    finally:
        thread.stop()
        claim.release()


def _connect(ep: Hostile) -> WinRMConnection:
    spec = connection_spec(
        ep.kind,
        {
            "ansible_host": ep.address,
            "ansible_port": ep.port,
            "ansible_user": "administrator",
            "ansible_password": PASSWORD,
            "ansible_winrm_transport": "basic",
            "ansible_winrm_scheme": "http",
            "kmsfleet_allow_insecure_basic": True,
            "ansible_winrm_operation_timeout_sec": 3,
            "ansible_winrm_read_timeout_sec": 5,
            "kmsfleet_host_budget_sec": BUDGET,
        },
    )
    return WinRMConnection(spec)


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _query(ep: Hostile) -> tuple[list[wmi.WmiObject] | TransportError, float, int]:
    conn = _connect(ep)
    before, started = _peak(), time.monotonic()
    try:
        result: list[wmi.WmiObject] | TransportError = conn.wql(QUERY)
    except TransportError as exc:
        result = exc
    finally:
        conn.close()
    return result, time.monotonic() - started, _peak() - before


def test_an_enumeration_that_never_ends_is_stopped(servers: dict[str, Hostile]) -> None:
    ep = servers["endless_pull"]
    result, seconds, grown = _query(ep)
    assert isinstance(result, ProtocolError), result if not isinstance(result, list) else len(result)
    assert "enumeration" in result.message
    assert not ep.capped and ep.sent <= 40 * 1024 * 1024, ep.sent  # stopped well before 1,000 pulls of 64 KiB
    assert seconds < 20 and grown < RSS_GROWTH, (seconds, grown)


def test_a_hundred_thousand_items_are_read_in_bounded_time(servers: dict[str, Hostile]) -> None:
    result, seconds, grown = _query(servers["many_items"])
    assert isinstance(result, list) and len(result) == MANY_ITEMS
    assert seconds < 30 and grown < RSS_GROWTH, (seconds, grown)


def test_millions_of_elements_are_refused_before_parsing(servers: dict[str, Hostile]) -> None:
    result, seconds, grown = _query(servers["tiny_elements"])
    assert isinstance(result, ProtocolError), type(result)
    assert "elements" in result.message
    assert seconds < 10 and grown < RSS_GROWTH, (seconds, grown)


def test_deep_nesting_is_refused_with_a_clear_message(servers: dict[str, Hostile]) -> None:
    result, seconds, _grown = _query(servers["deep_nesting"])
    assert isinstance(result, ProtocolError), type(result)
    assert "deep" in result.message
    assert seconds < 10


def test_answers_just_under_every_timeout_end_at_the_pcs_budget(servers: dict[str, Hostile]) -> None:
    ep = servers["slow_pull"]
    result, seconds, _grown = _query(ep)
    # the budget ends it: before an exchange ("time budget … ran out") or by clamping the last exchange to what
    # was left of it ("still arriving after …s")
    assert isinstance(result, OperationTimeout | SlowResponse), result
    assert seconds <= BUDGET + 3, seconds
    assert ep.requests >= 2  # it did answer, slowly, more than once


def test_parse_instance_limits_nesting() -> None:
    depth = 5000
    xml = '<p:Win32_X xmlns:p="urn:x"><p:A>' + "<a>" * depth + "v" + "</a>" * depth + "</p:A></p:Win32_X>"
    with pytest.raises(ValueError, match="deep"):
        wmi.parse_instance(ET.fromstring(xml))
    shallow = '<p:Win32_X xmlns:p="urn:x"><p:A><b><c>v</c></b></p:A></p:Win32_X>'
    assert wmi.parse_instance(ET.fromstring(shallow))["A"] == {"b": {"c": "v"}}
