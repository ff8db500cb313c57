"""Wake-on-LAN pieces without sending anything: packet format (read back by the lab's own parser), MAC
spellings, where MACs/addresses/ports come from (inventory, history, options, defaults), and the probe/wait
logic on real loopback TCP sockets. Packets are sent only in tests/e2e/test_followup.py, to a lab listener."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from orchestrator.errors import InputError
from orchestrator.inventory.loader import load_inventory
from orchestrator.lab.wol import parse_magic_packet
from orchestrator.results.models import HostResult, HostStatus, RunInfo, RunResult, new_run_id, utcnow
from orchestrator.results.store import HistoryStore
from orchestrator.wol import (
    DEFAULT_BROADCAST,
    DEFAULT_PORT,
    WakeEvent,
    WakeTarget,
    check_broadcast,
    format_mac,
    magic_packet,
    parse_mac,
    recorded_macs,
    wake_and_wait,
    wake_targets,
)


@pytest.mark.parametrize(
    "spelling", ["52:54:00:12:34:ab", "52-54-00-12-34-AB", "5254001234ab", "5254.0012.34ab", " 52:54:00:12:34:AB "]
)
def test_magic_packet_is_understood_by_the_lab_listener(spelling: str) -> None:
    packet = magic_packet(spelling)
    assert len(packet) == 102 and packet[:6] == b"\xff" * 6
    assert parse_magic_packet(packet) == "52:54:00:12:34:AB"
    assert format_mac(spelling) == "52:54:00:12:34:AB"


@pytest.mark.parametrize("bad", ["", "52:54:00:12:34", "52:54:00:12:34:zz", "52:54-00:12:34:56", "hello"])
def test_bad_macs(bad: str) -> None:
    with pytest.raises(ValueError, match="MAC"):
        parse_mac(bad)


def test_broadcast_must_be_ipv4() -> None:
    assert check_broadcast("192.168.10.255") == "192.168.10.255"
    for bad in ("room101", "::1", "300.1.1.1"):
        with pytest.raises(InputError):
            check_broadcast(bad)


INVENTORY = """\
all:
  vars:
    ansible_port: 5985
  children:
    room101:
      vars:
        wol_broadcast: 127.0.0.255
        wol_port: 40009
      hosts:
        pc01: {ansible_host: 127.0.1.1, mac: "52:54:00:00:01:01"}
        pc02: {ansible_host: "{{ base }}.2", base: 127.0.1}
    room102:
      hosts:
        pc11: {ansible_host: 127.0.2.1, ansible_port: 5986, mac: "52-54-00-00-02-01"}
        pc12: {ansible_host: 127.0.2.2, mac: "not-a-mac"}
"""


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "school.yml"
    path.write_text(INVENTORY, encoding="utf-8")
    return path


def test_targets_from_inventory_history_and_defaults(inventory: Path) -> None:
    inv = load_inventory([str(inventory)])
    targets = {t.host: t for t in wake_targets(inv, ["pc01", "pc02", "pc11"], history_macs={"pc02": "5254000001aa"})}
    assert targets["pc01"] == WakeTarget(
        "pc01", "127.0.1.1", 5985, "52:54:00:00:01:01", "inventory", "127.0.0.255", 40009
    )
    # templated ansible_host; MAC from the history; group WoL settings
    assert targets["pc02"] == WakeTarget(
        "pc02", "127.0.1.2", 5985, "52:54:00:00:01:AA", "history", "127.0.0.255", 40009
    )
    # another room without WoL variables: the defaults
    assert targets["pc11"].broadcast == DEFAULT_BROADCAST and targets["pc11"].wol_port == DEFAULT_PORT
    assert targets["pc11"].port == 5986 and targets["pc11"].mac == "52:54:00:00:02:01"
    # options win over inventory variables
    forced = wake_targets(inv, ["pc01"], broadcast="127.0.0.254", port=7)[0]
    assert (forced.broadcast, forced.wol_port) == ("127.0.0.254", 7)
    # no MAC anywhere: kept, marked unknown
    assert wake_targets(inv, ["pc02"])[0].mac is None


def test_a_bad_mac_in_the_inventory_is_an_input_error(inventory: Path) -> None:
    inv = load_inventory([str(inventory)])
    with pytest.raises(InputError, match="pc12"):
        wake_targets(inv, ["pc12"])


def test_macs_recorded_in_history_newest_first(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    assert recorded_macs(str(db), ["pc01"]) == {}
    assert not db.exists()  # looking does not create a history
    store = HistoryStore(db)
    try:
        now = utcnow()
        for age, facts in ((2, {"kmsfleet_mac": "52:54:00:00:00:01"}), (1, {"kmsfleet_mac": "52:54:00:00:00:02"})):
            info = RunInfo(
                id=new_run_id(), playbook="audit.yml", inventory=("s.yml",), started=now - timedelta(days=age)
            )
            host = HostResult(host="pc01", status=HostStatus.OK, facts=facts, finished=now - timedelta(days=age))
            off = HostResult(host="pc02", status=HostStatus.UNREACHABLE, finished=now - timedelta(days=age))
            store.save(RunResult(info, (host, off)))
    finally:
        store.close()
    assert recorded_macs(str(db), ["pc01", "pc02", "pc99"]) == {"pc01": "52:54:00:00:00:02"}


@pytest.fixture
def listening() -> Iterator[tuple[str, int]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield "127.0.0.1", sock.getsockname()[1]
    finally:
        sock.close()


def _closed_port() -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


def test_pcs_that_answer_are_left_alone_and_unknown_macs_reported(listening: tuple[str, int]) -> None:
    address, port = listening
    up = WakeTarget("pc01", address, port, "52:54:00:00:00:01", "inventory", "127.0.0.255", 9)
    off_no_mac = WakeTarget("pc02", "127.0.0.1", _closed_port(), None, "", "127.0.0.255", 9)
    events: list[WakeEvent] = []
    outcome = wake_and_wait([up, off_no_mac], wait=30, progress=events.append)
    assert outcome.already_up == ["pc01"] and outcome.no_mac == ["pc02"]
    assert outcome.packets == 0 and outcome.down == ["pc02"]
    assert [(e.kind, e.hosts) for e in events] == [("already_up", ("pc01",)), ("no_mac", ("pc02",))]


def test_a_packet_that_cannot_be_sent_is_reported_not_raised() -> None:
    # UDP port 0 is refused by the kernel before anything leaves the socket
    target = WakeTarget("pc03", "127.0.0.1", _closed_port(), "52:54:00:00:00:03", "inventory", "127.0.0.1", 0)
    events: list[WakeEvent] = []
    outcome = wake_and_wait([target], wait=30, progress=events.append)
    assert outcome.packets == 0 and outcome.still_down == ["pc03"] and outcome.down == ["pc03"]
    assert [e.kind for e in events] == ["send_failed"] and "127.0.0.1:0" in events[0].detail
    assert outcome.send_errors == [events[0].detail]
