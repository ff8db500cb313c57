"""WQL: the subset real clients send, evaluated against a simulated PC and against a small schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator.lab import wql
from orchestrator.lab.addresses import Claim
from orchestrator.lab.machine import Machine, build_machine
from orchestrator.lab.provider import CimValue, WmiError
from orchestrator.lab.spec import parse_spec, resolve
from orchestrator.lab.world import LabWorld

SCHEMA: wql.Schema = {
    "name": ("Name", "string", False),
    "count": ("Count", "uint32", False),
    "enabled": ("Enabled", "boolean", False),
    "when": ("When", "datetime", False),
    "tags": ("Tags", "string", True),
    "note": ("Note", "string", False),
}


def matches(where: str, **values: Any) -> bool:
    query = wql.parse(f"SELECT * FROM Thing WHERE {where}")
    wql.bind(query, SCHEMA)
    row: dict[str, CimValue] = {
        "Name": "Alpha",
        "Count": 5,
        "Enabled": True,
        "When": None,
        "Tags": ("a",),
        "Note": None,
    }
    row.update(values)
    return wql.evaluate(query.where, SCHEMA, row.get)


@pytest.fixture
def pc(lab_block: Claim) -> Machine:
    spec = parse_spec(
        {
            "room": "r",
            "subnet": f"{lab_block.prefix}.1",
            "hosts": [{"name": "pc01", "office": {"version": 2016}, "sql": "2019 Express"}],
        }
    )
    world = LabWorld(resolve(spec))
    return build_machine(world.resolved.hosts[0], world)


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("Name = 'Alpha'", True),
        ('Name = "alpha"', True),  # strings compare case-insensitively
        ("name='ALPHA'", True),  # property names too
        ("Name <> 'Alpha'", False),
        ("Name != 'Beta'", True),
        ("Count = 5", True),
        ("Count > 4 AND Count < 6", True),
        ("Count >= 6 OR Count <= 4", False),
        ("Count = '5'", True),  # numbers given as strings are converted
        ("NOT Count = 5", False),
        ("NOT (Count = 4 OR Name = 'Beta')", True),
        ("(Count = 4 OR Name = 'Alpha') AND Enabled = TRUE", True),
        ("Enabled = FALSE", False),
        ("Enabled = 1", True),
        ("Note IS NULL", True),
        ("Note IS NOT NULL", False),
        ("Note = NULL", True),
        ("Note <> null", False),
        ("Name <> NULL", True),
        ("Note = 'x'", False),  # comparisons with NULL are false
        ("Note <> 'x'", False),
        ("Name LIKE 'Al%'", True),
        ("Name LIKE 'al_ha'", True),
        ("Name LIKE '[a-c]lpha'", True),
        ("Name LIKE '[^a]lpha'", False),
        ("Name NOT LIKE '%pha'", False),
        ("'Alpha' = Name", True),  # literal on the left
        ("5 < Count", False),
    ],
)
def test_where_semantics(where: str, expected: bool) -> None:
    assert matches(where) is expected


def test_datetime_comparisons_accept_dmtf_and_iso() -> None:
    when = datetime(2025, 5, 24, 7, 0, tzinfo=UTC)
    assert matches("When > '20250101000000.000000+000'", When=when)
    assert matches("When < '2025-05-24T08:00:00Z'", When=when)
    assert not matches("When = 'not a date'", When=when)


def test_string_escapes() -> None:
    assert matches(r"Name = 'C:\\Windows'", Name="C:\\Windows")
    assert matches(r"Name = 'it\'s'", Name="it's")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "SELECT",
        "SELECT * FROM",
        "SELECT * WHERE Name = 1",
        "SELECT * FROM Thing WHERE",
        "SELECT * FROM Thing WHERE Name = ",
        "SELECT * FROM Thing WHERE (Name = 'a'",
        "SELECT * FROM Thing WHERE Name == 'a'",
        "SELECT * FROM Thing WHERE 1 = 1",
        "SELECT Name, FROM Thing",
        "SELECT * FROM Thing garbage",
        "DELETE FROM Thing",
        "SELECT * FROM Thing WHERE Name LIKE Name",
        "SELECT * FROM Thing WHERE Name = 'unterminated",
        "SELECT * FROM Thing WHERE select = 1",
    ],
)
def test_syntax_errors_are_invalid_query(text: str) -> None:
    with pytest.raises(WmiError) as info:
        wql.bind(wql.parse(text), SCHEMA)
    assert info.value.hresult == 0x80041017
    assert info.value.kind == "invalid_query"


@pytest.mark.parametrize(
    "text",
    [
        "SELECT Nope FROM Thing",
        "SELECT * FROM Thing WHERE Nope = 1",
        "SELECT * FROM Thing WHERE Tags = 'a'",  # arrays cannot be used in WHERE
    ],
)
def test_unknown_or_array_properties_are_invalid_query(text: str) -> None:
    with pytest.raises(WmiError) as info:
        wql.bind(wql.parse(text), SCHEMA)
    assert info.value.hresult == 0x80041017


def test_select_list_is_canonicalised_and_deduplicated() -> None:
    assert wql.bind(wql.parse("select name, COUNT, Name from thing"), SCHEMA) == ("Name", "Count")
    assert wql.bind(wql.parse("SELECT * FROM thing"), SCHEMA) is None


def test_queries_microsofts_scripts_send(pc: Machine) -> None:
    slmgr = pc.wql(
        "SELECT ID, ApplicationId, PartialProductKey, LicenseIsAddon, Description, Name FROM SoftwareLicensingProduct"
        " WHERE PartialProductKey <> null"
    )
    assert {str(r.get("Name")) for r in slmgr} == {
        "Windows(R), Education edition",
        "Office 16, Office16ProPlusVL_KMS_Client edition",
    }
    ospp = pc.wql(
        "SELECT ID, ApplicationId, PartialProductKey, Description, Name FROM SoftwareLicensingProduct "
        "WHERE ApplicationId = '0ff1ce15-a989-479d-af46-f275c6370663' AND PartialProductKey <> NULL "
    )
    assert len(ospp) == 1 and ospp[0].get("PartialProductKey") == "WFG99"
    services = pc.wql("Select * from Win32_Service where StartMode = 'Manual' or StartMode = 'Disabled'")
    assert "W32Time" in {r.get("Name") for r in services}


def test_partial_select_returns_selected_and_key_properties_only(pc: Machine) -> None:
    rows = pc.wql("SELECT LicenseStatus FROM SoftwareLicensingProduct WHERE LicenseStatus = 2")
    assert rows and all([p.name for p in r.properties] == ["ID", "LicenseStatus"] for r in rows)
    svc = pc.wql("select version from softwarelicensingservice")
    assert [p.name for p in svc[0].properties] == ["Version"]
    assert svc[0].class_name == "SoftwareLicensingService"


def test_unknown_class_and_namespace(pc: Machine) -> None:
    with pytest.raises(WmiError) as info:
        pc.wql("SELECT * FROM Win32_Nothing")
    assert (info.value.hresult, info.value.kind) == (0x80041010, "invalid_class")
    with pytest.raises(WmiError) as info:
        pc.wql("SELECT * FROM OfficeSoftwareProtectionProduct")  # only on Windows 7
    assert info.value.hresult == 0x80041010
    with pytest.raises(WmiError) as info:
        pc.wql("SELECT * FROM Win32_BIOS", namespace="root/default")
    assert info.value.hresult == 0x8004100E
    assert pc.wql("SELECT * FROM Win32_BIOS", namespace="root\\CIMV2")


def test_null_and_like_against_real_rows(pc: Machine) -> None:
    keyless = pc.wql("SELECT ID FROM SoftwareLicensingProduct WHERE PartialProductKey IS NULL")
    keyed = pc.wql("SELECT ID FROM SoftwareLicensingProduct WHERE PartialProductKey IS NOT NULL")
    total = pc.wql("SELECT ID FROM SoftwareLicensingProduct")
    assert len(keyless) >= 3 and len(keyed) == 2 and len(total) == len(keyless) + len(keyed)
    sql = pc.wql("SELECT Name, State FROM Win32_Service WHERE Name LIKE 'MSSQL$%'")
    assert [r.get("Name") for r in sql] == ["MSSQL$SQLEXPRESS"]
    assert pc.wql("SELECT * FROM Win32_NetworkAdapterConfiguration WHERE IPEnabled = TRUE")[0].get("IPAddress") == (
        pc.address,
    )
