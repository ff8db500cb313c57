"""Row templates (lab/wsman/cim.py): a WMI row's text is rendered once per key and only its slots per query.
The templated text must equal the text rendered property by property, a licence change must show in the next
query, the time fields must move, and the table must stay bounded."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from orchestrator.lab.addresses import Claim
from orchestrator.lab.machine import Machine, build_machine
from orchestrator.lab.provider import CimInstance, CimProperty, WmiError
from orchestrator.lab.spec import parse_spec, resolve
from orchestrator.lab.world import LabWorld
from orchestrator.lab.wsman import cim

SLP = "SELECT * FROM SoftwareLicensingProduct WHERE PartialProductKey IS NOT NULL"
SLP_NAMED = (
    "SELECT ID, LicenseStatus, GracePeriodRemaining, TrustedTime, KeyManagementServiceMachine "
    "FROM SoftwareLicensingProduct"
)


def machines(block: Claim, hosts: list[dict[str, Any]]) -> dict[str, Machine]:
    world = LabWorld(resolve(parse_spec({"room": "r", "subnet": f"{block.prefix}.1", "hosts": hosts})))
    return {cfg.name: build_machine(cfg, world) for cfg in world.resolved.hosts}


@pytest.fixture
def pcs(lab_block: Claim) -> dict[str, Machine]:
    return machines(
        lab_block,
        [
            {"name": "w10", "windows_state": "licensed", "kms_host": "lab", "office": {"version": 2016}},
            {"name": "w7", "os": "Windows 7 Professional", "office": {"version": 2013, "bitness": "x64"}},
            {"name": "grace", "windows_state": "expiring", "days_left": 20},
            {"name": "srv", "os": "Windows Server 2016 Datacenter", "sql": "2016 Standard"},
        ],
    )


def untemplated(inst: CimInstance, fragment: bool) -> str:
    plain = inst.without_template()
    return cim.fragment_xml(plain) if fragment else cim.instance_xml(plain)


def test_templated_rows_equal_rows_rendered_property_by_property(pcs: dict[str, Machine]) -> None:
    checked = 0
    for pc in pcs.values():
        for name in sorted(pc.class_names()):
            try:
                rows = pc.wql(f"SELECT * FROM {name}")
            except Exception:  # classes without enumerable instances (StdRegProv, CIM_DataFile)
                continue
            for inst in rows:
                assert inst.row_key is not None
                for fragment in (False, True):
                    render = cim.fragment_xml if fragment else cim.instance_xml
                    first, again = render(inst), render(inst)  # a miss builds the template, a hit fills it
                    assert first == again == untemplated(inst, fragment)
                    checked += 1
    assert checked > 40


def test_named_selection_and_a_hit_after_a_miss(pcs: dict[str, Machine]) -> None:
    pc = pcs["grace"]
    cim._TEMPLATES.clear()
    rows = pc.wql(SLP_NAMED)
    texts = [cim.fragment_xml(r) for r in rows]
    built = len(cim._TEMPLATES)
    assert built == len({r.row_key for r in rows})
    rows_again = pc.wql(SLP_NAMED)  # the lab clock runs: TrustedTime may differ, nothing else
    again = [cim.fragment_xml(r) for r in rows_again]
    assert texts == [untemplated(r, True) for r in rows]
    assert again == [untemplated(r, True) for r in rows_again]
    assert len(cim._TEMPLATES) == built  # the same state: every row a hit
    assert all("<TrustedTime>" in t or '<TrustedTime xsi:nil="true"/>' in t for t in texts)


def _field(text: str, name: str) -> str:
    found = re.search(rf"<p:{name}>(.*?)</p:{name}>|<p:{name} xsi:nil=\"true\"/>", text)
    assert found is not None, name
    return found.group(1) or "NULL"


def test_a_licence_change_shows_in_the_next_query(pcs: dict[str, Machine]) -> None:
    pc = pcs["w10"]
    before = [cim.instance_xml(r) for r in pc.wql(SLP)]
    windows = next(t for t in before if "Windows" in _field(t, "Name"))
    assert _field(windows, "KeyManagementServiceMachine") != "kms.example.test"
    assert _field(windows, "PartialProductKey") != "NULL"

    async def change() -> None:
        await pc.invoke(
            "SoftwareLicensingService", "SetKeyManagementServiceMachine", {}, {"MachineName": "kms.example.test"}, "u"
        )

    asyncio.run(change())
    after = [cim.instance_xml(r) for r in pc.wql(SLP)]
    windows_after = next(t for t in after if "Windows" in _field(t, "Name"))
    assert _field(windows_after, "KeyManagementServiceMachine") == "kms.example.test"
    for row in pc.wql(SLP):
        assert cim.instance_xml(row) == untemplated(row, False)

    async def uninstall() -> None:
        await pc.invoke("SoftwareLicensingService", "InstallProductKey", {}, {"ProductKey": "not-a-key"}, "u")

    with pytest.raises(WmiError):  # a failed method changes nothing: the next query says the same
        asyncio.run(uninstall())
    untimed = re.compile(r"<p:TrustedTime>.*?</p:TrustedTime>")  # the lab clock runs between the queries
    assert [untimed.sub("", cim.instance_xml(r)) for r in pc.wql(SLP)] == [untimed.sub("", t) for t in after]


def test_time_fields_move_and_reuse_the_template(pcs: dict[str, Machine]) -> None:
    pc = pcs["grace"]
    query = "SELECT * FROM SoftwareLicensingProduct WHERE LicenseStatus = 1"
    cim._TEMPLATES.clear()
    (row,) = pc.wql(query)
    first = cim.instance_xml(row)
    built = len(cim._TEMPLATES)
    pc.world.clock.advance(1.5)  # a day and a half later on the lab clock
    (row_later,) = pc.wql(query)
    later = cim.instance_xml(row_later)
    assert len(cim._TEMPLATES) == built  # the same licence: the same template, only the slots changed
    assert _field(later, "TrustedTime") != _field(first, "TrustedTime")
    minutes = int(_field(first, "GracePeriodRemaining")) - int(_field(later, "GracePeriodRemaining"))
    assert minutes == pytest.approx(36 * 60, abs=2)
    assert later == untemplated(row_later, False)


def test_the_table_is_bounded(pcs: dict[str, Machine], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cim, "_TEMPLATES_MAX", 3)
    cim._TEMPLATES.clear()
    for pc in pcs.values():
        for row in pc.wql("SELECT * FROM SoftwareLicensingProduct"):
            cim.instance_xml(row)
            assert len(cim._TEMPLATES) <= 3
    assert cim._TEMPLATES


@pytest.mark.parametrize("odd", [datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), -0.0, (1, True)])
def test_a_key_holding_a_datetime_float_or_array_is_not_templated(odd: Any) -> None:
    props = (CimProperty("A", "string", "x"), CimProperty("B", "real64", odd))
    key = (-1, (), ("x", odd), (str, type(odd)))
    inst = CimInstance("Odd_Class", props, "root/cimv2", key)
    cim._TEMPLATES.clear()
    assert cim.instance_xml(inst) == untemplated(inst, False)
    assert not cim._TEMPLATES


def test_datetimes_of_the_same_instant_in_other_offsets_render_their_own_offset() -> None:
    utc = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    taipei = utc.astimezone(timezone(timedelta(hours=8)))
    assert utc == taipei and hash(utc) == hash(taipei)  # why the memo's key carries the offset
    texts = [cim.instance_xml(CimInstance("C", (CimProperty("When", "datetime", v),))) for v in (utc, taipei, utc)]
    assert "2024-01-02T03:04:05Z" in texts[0] and texts[2] == texts[0]
    assert "2024-01-02T11:04:05+08:00" in texts[1]


def test_planned_instances_equal_built_ones_and_build_properties_on_use(pcs: dict[str, Machine]) -> None:
    (row, *_) = pcs["srv"].wql("SELECT * FROM Win32_OperatingSystem")
    assert row._properties is None  # nothing built yet
    third = row.property_at(2)
    assert row._properties is None and third == CimProperty(third.name, third.type, third.value)
    plain = row.without_template()
    assert plain == row and hash(plain) == hash(row) and plain.row_key is None
    assert row.properties[2] == third and row.get(third.name) == third.value
    assert "CimInstance('Win32_OperatingSystem'" in repr(row)
