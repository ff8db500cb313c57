"""The transport's one place of WMI type conversion, fault classification by code, and time_sync's unknown clock."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone

import pytest

from orchestrator.lab import wmi_classes
from orchestrator.lab.provider import CimInstance, CimProperty
from orchestrator.lab.wsman import cim
from orchestrator.modules.licensing.time_sync import CLOCK_UNKNOWN, TimeFacts, TimeSyncArgs, plan_time
from orchestrator.transport import cim_types
from orchestrator.transport.errors import WSManFault, WSManQuotaExceeded, WSManTimedOut, wsman_fault
from orchestrator.transport.wmi import parse_instance


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2013-04-15T20:28:21.085Z", datetime(2013, 4, 15, 20, 28, 21, 85000, tzinfo=UTC)),
        (
            "2014-04-03T14:45:50.46875+08:00",
            datetime(2014, 4, 3, 14, 45, 50, 468750, tzinfo=timezone(timedelta(hours=8))),
        ),
        ("20260115083000.500000+480", datetime(2026, 1, 15, 8, 30, 0, 500000, tzinfo=timezone(timedelta(hours=8)))),
        ("20260115083000.000000-300", datetime(2026, 1, 15, 8, 30, tzinfo=timezone(timedelta(hours=-5)))),
        ("2013-03-09T02:57:32", datetime(2013, 3, 9, 2, 57, 32, tzinfo=UTC)),
        ("00000001000000.000000:000", "00000001000000.000000:000"),  # an interval stays text
        ("yesterday", "yesterday"),
    ],
)
def test_datetimes_iso_and_dmtf(text: str, expected: object) -> None:
    assert cim_types.parse_datetime(text) == expected


def test_scalars_arrays_and_junk() -> None:
    assert cim_types.convert("42", ("uint32", False)) == 42
    assert cim_types.convert("-300", ("sint16", False)) == -300
    assert cim_types.convert("70000", ("uint16", False)) == "70000"  # out of range: kept as text, not wrapped
    assert cim_types.convert("TRUE", ("boolean", False)) is True
    assert cim_types.convert("maybe", ("boolean", False)) == "maybe"
    assert cim_types.convert("en-US", ("string", True)) == ["en-US"]  # an array of one is still a list
    assert cim_types.convert(["1", None, "3"], ("uint16", True)) == [1, None, 3]
    assert cim_types.convert(None, ("uint32", False)) is None


def _fragment(inner: str) -> ET.Element:
    return ET.fromstring(
        '<w:XmlFragment xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd">{inner}</w:XmlFragment>'
    )


def test_both_shapes_of_the_same_instance_parse_alike() -> None:
    when = datetime(2026, 11, 26, 11, 15, tzinfo=timezone(timedelta(hours=8)))
    inst = CimInstance(
        "SoftwareLicensingProduct",
        (
            CimProperty("GracePeriodRemaining", "uint32", 259200),
            CimProperty("LicenseIsAddon", "boolean", False),
            CimProperty("LicenseStatus", "uint32", 1),
            CimProperty("PartialProductKey", "string", None),
            CimProperty("EvaluationEndDate", "datetime", when),
        ),
    )
    typed = parse_instance(ET.fromstring(cim.instance_xml(inst)))
    fragment = parse_instance(ET.fromstring(cim.fragment_xml(inst)), "SoftwareLicensingProduct")
    assert typed == fragment
    assert fragment == {
        "__CLASS": "SoftwareLicensingProduct",
        "GracePeriodRemaining": 259200,
        "LicenseIsAddon": False,
        "LicenseStatus": 1,
        "PartialProductKey": None,
        "EvaluationEndDate": when,
    }


def test_unknown_classes_keep_text_but_read_datetimes() -> None:
    row = parse_instance(_fragment("<A>1</A><B><Datetime>2013-04-15T20:28:21Z</Datetime></B><C>x</C><C>y</C>"), "X")
    assert row == {"__CLASS": "X", "A": "1", "B": datetime(2013, 4, 15, 20, 28, 21, tzinfo=UTC), "C": ["x", "y"]}


def test_the_client_table_agrees_with_the_lab_classes() -> None:
    """Both follow Microsoft's class definitions; a disagreement is a bug on one side."""
    for cls in wmi_classes.class_table(False, True).values():
        table = cim_types.PROPERTY_TYPES.get(cls.name.lower())
        if table is None:
            continue
        for name, cim_type, is_array in cls.props:
            assert cim_types.property_type(cls.name, name) == (cim_type, is_array), f"{cls.name}.{name}"


@pytest.mark.parametrize(
    ("code", "wmi_code", "subcode", "kind"),
    [
        (None, 0x803381A5, "w:QuotaLimit", "quota"),  # WinRb wmi_error_v2: only in MSFT_WmiError
        (0x803381A6, None, "w:InternalError", "quota"),  # txwinrm max_concurrent: only in WSManFault@Code
        (None, None, "w:QuotaLimit", "quota"),
        (0x80338029, None, "w:TimedOut", "timed_out"),
        (None, None, "w:TimedOut", "timed_out"),
        (0xC004F074, 0xC004F074, "w:InternalError", "provider"),
        (0x8033801A, 0x80041017, "w:CannotProcessFilter", "provider"),
        (0x80338000, None, "w:InternalError", "wsman"),
        (0x80004005, None, "w:InternalError", "wsman"),  # E_FAIL without a provider error: WinRM's own
        (0x80070005, None, "w:AccessDenied", "provider"),
        (None, None, "http500", "wsman"),
    ],
)
def test_faults_are_classified_by_code(code: int | None, wmi_code: int | None, subcode: str, kind: str) -> None:
    fault = wsman_fault("pc", code, "reason", subcode=subcode, wmi_code=wmi_code)
    assert fault.kind == kind
    assert fault.infrastructure is (kind != "provider")
    expected = {"quota": WSManQuotaExceeded, "timed_out": WSManTimedOut}.get(kind, WSManFault)
    assert type(fault) is expected


def test_an_unknown_clock_is_reported_as_unknown_never_as_in_sync() -> None:
    facts = TimeFacts(timezone_id="Taipei Standard Time", offset_seconds=None)
    plan = plan_time(facts, TimeSyncArgs())
    assert CLOCK_UNKNOWN in plan.notes
    assert not any("within" in n for n in plan.notes)
    assert not facts.clock_ok(300)
    fix = plan_time(facts, TimeSyncArgs(fix_clock=True))
    assert [c.action for c in fix.changes] == ["resync_clock"]
    known = plan_time(TimeFacts(timezone_id="Taipei Standard Time", offset_seconds=3.0), TimeSyncArgs())
    assert any("within" in n for n in known.notes) and CLOCK_UNKNOWN not in known.notes
