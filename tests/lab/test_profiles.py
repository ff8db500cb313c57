"""Spec generators for `lab serve --profile` and `demo`."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from orchestrator.lab.machine import build_machine
from orchestrator.lab.profiles import PROFILES, classroom, mixed, mixed_layout, server_room
from orchestrator.lab.spec import LabSpec, resolve
from orchestrator.lab.world import LabWorld


def test_classroom_names_rooms_and_subnets() -> None:
    spec = classroom(40, 23)
    assert isinstance(spec, LabSpec)
    lab = resolve(spec)
    assert [h.name for h in lab.hosts[:2]] == ["pc001", "pc002"] and lab.hosts[-1].name == "pc040"
    assert {h.room for h in lab.hosts} == {"room101"}
    assert lab.hosts[0].address == "127.23.1.1" and lab.hosts[-1].address == "127.23.1.40"
    assert lab.kms_address == "127.23.0.2"
    first = lab.hosts[0]
    assert (first.os, first.windows_channel, first.windows_state, first.timezone) == (
        "Windows 10 Education",
        "volume",
        "unlicensed",
        "Taipei Standard Time",
    )
    assert first.office is not None and (first.office.version, first.office.channel) == (2016, "volume")


def test_classroom_splits_into_rooms_of_250() -> None:
    lab = resolve(classroom(600, 31))
    rooms = Counter(h.room for h in lab.hosts)
    assert rooms == {"room101": 250, "room102": 250, "room103": 100}
    assert lab.hosts[250].name == "pc251" and lab.hosts[250].address == "127.31.2.1"
    assert len({h.name for h in lab.hosts}) == 600
    assert resolve(classroom(1200, 31)).hosts[-1].name == "pc1200"


def test_mixed_has_the_bureaus_problems_in_every_block_of_40() -> None:
    layout = mixed_layout(80, seed=7)
    labels = Counter(label for _, label, _ in layout[:40])
    assert labels["healthy"] == 18
    assert labels["wrong-timezone-pacific"] == 1 and labels["not-admin"] == 2 and labels["powered-off"] == 2
    assert labels == Counter(label for _, label, _ in layout[40:])
    lab = resolve(mixed(40, 24, seed=7))
    by_name = {h.name: h for h in lab.hosts}
    for name, label, _ in layout[:40]:
        host = by_name[name]
        if label.startswith("wrong-timezone"):
            assert host.timezone != "Taipei Standard Time" and abs(host.clock_skew_minutes) > 240
        if label == "slic-bios-windows7":
            assert (host.os, host.windows_channel) == ("Windows 7 Professional", "oem_slic")
        if label == "powered-off":
            assert host.power == "off"
        if label == "corrupt-office":
            assert host.office is not None and host.office.state == "corrupt"
        if label == "healthy":
            assert host.clock_skew_minutes == 0 and host.admin and host.power == "on"


def test_mixed_is_reproducible_by_seed() -> None:
    assert mixed_layout(40, 3) == mixed_layout(40, 3)
    assert [label for _, label, _ in mixed_layout(40, 3)] != [label for _, label, _ in mixed_layout(40, 4)]
    small = mixed_layout(10, 3)
    assert [n for n, _, _ in small] == [f"pc{i:03d}" for i in range(1, 11)]
    assert resolve(mixed(10, 25, 3)).seed == 3


def test_server_room() -> None:
    lab = resolve(server_room(6, 26))
    assert {h.family for h in lab.hosts} == {"server"}
    assert [h.name for h in lab.hosts][:2] == ["srv001", "srv002"]
    assert any(h.sql for h in lab.hosts)
    assert lab.rooms == ("serverroom1",)
    assert set(PROFILES) == {"classroom", "mixed", "server_room"}


@pytest.mark.parametrize("bad", [0, -1])
def test_invalid_sizes(bad: int) -> None:
    with pytest.raises(ValueError, match="at least one PC"):
        classroom(bad, 20)


def test_five_thousand_pcs_build_fast_and_small() -> None:
    lab = resolve(mixed(5000, 27, seed=1))
    world = LabWorld(lab)
    started = time.perf_counter()
    machines = [build_machine(cfg, world) for cfg in lab.hosts]
    elapsed = time.perf_counter() - started
    assert len(machines) == 5000 and len(world.machines()) == 5000
    assert elapsed < 5.0
    query = "SELECT ID, LicenseStatus FROM SoftwareLicensingProduct WHERE PartialProductKey <> null"
    started = time.perf_counter()
    for m in machines[:500]:
        assert m.wql(query)
    assert time.perf_counter() - started < 2.0
