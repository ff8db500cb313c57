"""WMI classes of a simulated PC: names, CIM types, NULLs, arrays, datetimes, selectors and methods."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

from orchestrator.lab.addresses import Claim
from orchestrator.lab.machine import Machine, build_machine
from orchestrator.lab.provider import CimInstance, WmiError
from orchestrator.lab.spec import parse_spec, resolve
from orchestrator.lab.timezones import in_dst, time_zone, utc_offset_minutes
from orchestrator.lab.world import LabWorld


def machines(block: Claim, hosts: list[dict[str, Any]]) -> dict[str, Machine]:
    world = LabWorld(resolve(parse_spec({"room": "r", "subnet": f"{block.prefix}.1", "hosts": hosts})))
    return {cfg.name: build_machine(cfg, world) for cfg in world.resolved.hosts}


def types(instance: CimInstance) -> dict[str, str]:
    return {p.name: p.type for p in instance.properties}


@pytest.fixture
def pcs(lab_block: Claim) -> dict[str, Machine]:
    return machines(
        lab_block,
        [
            {"name": "w10", "office": {"version": 2016, "bitness": "x86"}},
            {"name": "w7", "os": "Windows 7 Professional", "office": {"version": 2013, "bitness": "x64"}},
            {"name": "w7bare", "os": "Windows 7 Enterprise"},
            {"name": "pac", "timezone": "Pacific Standard Time", "sql": "2016 Standard", "mac": "52:54:00:AA:BB:CC"},
            {"name": "srv", "os": "Windows Server 2016 Datacenter"},
        ],
    )


def test_class_availability_follows_the_os_and_office(pcs: dict[str, Machine]) -> None:
    base = {
        "SoftwareLicensingService",
        "SoftwareLicensingProduct",
        "Win32_OperatingSystem",
        "Win32_ComputerSystem",
        "Win32_TimeZone",
        "Win32_BIOS",
        "Win32_Service",
        "Win32_NetworkAdapterConfiguration",
        "StdRegProv",  # lab.registry
        "CIM_DataFile",  # lab.files
        "Win32_Directory",
        "Win32_ServerFeature",  # lab.features: no instances on a client (the query fails as an unknown class)
    }
    assert pcs["w10"].class_names() == base
    assert pcs["w7"].class_names() == base | {"OfficeSoftwareProtectionService", "OfficeSoftwareProtectionProduct"}
    assert pcs["w7bare"].class_names() == base


def test_software_licensing_service_singleton_and_selectors(pcs: dict[str, Machine]) -> None:
    pc = pcs["w10"]
    svc = pc.get_instance("SoftwareLicensingService", {})
    assert svc.class_name == "SoftwareLicensingService"
    assert svc.get("Version") == "10.0.19041.1052"
    assert svc.get("ClientMachineID") == pc.cmid
    assert (svc.get("KeyManagementServiceMachine"), svc.get("KeyManagementServicePort")) == (None, 0)
    assert (svc.get("VLActivationInterval"), svc.get("VLRenewalInterval"), svc.get("RemainingWindowsReArmCount")) == (
        120,
        10080,
        1001,
    )
    assert svc.get("KeyManagementServiceHostCaching") is True
    t = types(svc)
    assert (t["KeyManagementServicePort"], t["KeyManagementServiceHostCaching"], t["Version"]) == (
        "uint32",
        "boolean",
        "string",
    )
    assert pc.get_instance("SoftwareLicensingService", {"Version": "10.0.19041.1052"}).get("Version") == svc.get(
        "Version"
    )
    with pytest.raises(WmiError) as info:
        pc.get_instance("SoftwareLicensingService", {"Version": "6.1.7601.17514"})
    assert (info.value.hresult, info.value.kind) == (0x80041002, "not_found")
    with pytest.raises(WmiError) as info:
        pc.get_instance("SoftwareLicensingService", {"Colour": "blue"})
    assert info.value.kind == "invalid_parameter"


def test_product_rows_keyless_skus_and_get_by_id(pcs: dict[str, Machine]) -> None:
    pc = pcs["w10"]
    rows = pc.wql("SELECT * FROM SoftwareLicensingProduct WHERE ApplicationID = '55c92734-d682-4d71-983e-d6ec3f16059f'")
    assert len(rows) == 4
    keyless = [r for r in rows if r.get("PartialProductKey") is None]
    assert len(keyless) == 3
    assert all(r.get("LicenseStatus") == 0 and r.get("ProductKeyChannel") is None for r in keyless)
    assert {str(r.get("Description")).rsplit(", ", 1)[1] for r in rows} == {
        "RETAIL channel",
        "OEM_DM channel",
        "VOLUME_MAK channel",
        "VOLUME_KMSCLIENT channel",
    }
    got = pc.get_instance("SoftwareLicensingProduct", {"ID": "{E0C42288-980C-4788-A014-C080D2E1926E}"})
    assert got.get("PartialProductKey") == "VCFB2"
    assert got.get("ProductKeyChannel") == "Volume:GVLK"
    assert got.get("LicenseFamily") == "Education"
    assert got.get("LicenseIsAddon") is False
    t = types(got)
    assert (t["LicenseStatus"], t["GracePeriodRemaining"], t["EvaluationEndDate"], t["LicenseIsAddon"]) == (
        "uint32",
        "uint32",
        "datetime",
        "boolean",
    )
    assert got.get("EvaluationEndDate") == datetime.fromisoformat("1601-01-01T00:00:00+00:00")
    with pytest.raises(WmiError) as info:
        pc.get_instance("SoftwareLicensingProduct", {"ID": "00000000-0000-0000-0000-000000000000"})
    assert info.value.kind == "not_found"
    with pytest.raises(WmiError) as info:
        pc.get_instance("SoftwareLicensingProduct", {})  # several instances, no selector
    assert info.value.kind == "invalid_parameter"


def test_windows7_has_no_windows8_properties_and_office_lives_on_ospp(pcs: dict[str, Machine]) -> None:
    w7 = pcs["w7"]
    with pytest.raises(WmiError) as info:
        w7.wql("SELECT ProductKeyChannel FROM SoftwareLicensingProduct")
    assert info.value.hresult == 0x80041017
    assert w7.get_instance("Win32_OperatingSystem", {}).get("Caption") == "Microsoft Windows 7 Professional "
    apps = {r.get("ApplicationID") for r in w7.wql("SELECT ApplicationID FROM SoftwareLicensingProduct")}
    assert apps == {"55c92734-d682-4d71-983e-d6ec3f16059f"}
    office = w7.wql("SELECT * FROM OfficeSoftwareProtectionProduct WHERE PartialProductKey <> NULL")
    assert [r.get("Name") for r in office] == ["Office 15, OfficeProPlusVL_KMS_Client edition"]
    assert office[0].class_name == "OfficeSoftwareProtectionProduct"
    ospp = w7.get_instance("OfficeSoftwareProtectionService", {})
    assert ospp.get("ClientMachineID") != w7.cmid  # OSPP keeps its own CMID
    services = {r.get("Name") for r in w7.wql("SELECT Name FROM Win32_Service")}
    assert "osppsvc" in services


def test_operating_system_and_computer_system(pcs: dict[str, Machine]) -> None:
    pc = pcs["w10"]
    os = pc.get_instance("Win32_OperatingSystem", {})
    assert (os.get("Caption"), os.get("Version"), os.get("BuildNumber")) == (
        "Microsoft Windows 10 Education",
        "10.0.19042",
        "19042",
    )
    assert (os.get("OSArchitecture"), os.get("OperatingSystemSKU"), os.get("CSName")) == ("64-bit", 121, "W10")
    assert os.get("CurrentTimeZone") == 480
    local = os.get("LocalDateTime")
    assert isinstance(local, datetime) and local.utcoffset() == timedelta(hours=8)
    boot = os.get("LastBootUpTime")
    assert isinstance(boot, datetime) and boot < local
    assert os.get("MUILanguages") == ("en-US",)
    assert types(os)["CurrentTimeZone"] == "sint16"
    cs = pc.get_instance("Win32_ComputerSystem", {})
    assert (cs.get("Name"), cs.get("Domain"), cs.get("Workgroup"), cs.get("PartOfDomain")) == (
        "W10",
        "WORKGROUP",
        "WORKGROUP",
        False,
    )
    assert isinstance(cs.get("TotalPhysicalMemory"), int) and types(cs)["TotalPhysicalMemory"] == "uint64"
    assert cs.get("Manufacturer") and cs.get("Model")
    srv = pcs["srv"].get_instance("Win32_ComputerSystem", {})
    assert (srv.get("DomainRole"), srv.get("UserName")) == (2, None)
    assert pcs["srv"].get_instance("Win32_OperatingSystem", {}).get("ProductType") == 3


def test_time_zone_bias_sign_and_dst(pcs: dict[str, Machine]) -> None:
    taipei = pcs["w10"].get_instance("Win32_TimeZone", {})
    assert (taipei.get("Bias"), taipei.get("StandardName"), taipei.get("Caption")) == (
        480,
        "Taipei Standard Time",
        "(UTC+08:00) Taipei",
    )
    assert taipei.get("DaylightMonth") == 0
    pacific = pcs["pac"].get_instance("Win32_TimeZone", {})
    assert (pacific.get("Bias"), pacific.get("DaylightMonth"), pacific.get("StandardMonth")) == (-480, 3, 11)
    tz = time_zone("Pacific Standard Time")
    winter = datetime.fromisoformat("2025-01-15T12:00:00+00:00")
    summer = datetime.fromisoformat("2025-07-15T12:00:00+00:00")
    assert (in_dst(tz, winter), in_dst(tz, summer)) == (False, True)
    assert (utc_offset_minutes(tz, winter), utc_offset_minutes(tz, summer)) == (-480, -420)
    # DST starts 2025-03-09 02:00 local standard time = 10:00 UTC
    assert not in_dst(tz, datetime.fromisoformat("2025-03-09T09:59:00+00:00"))
    assert in_dst(tz, datetime.fromisoformat("2025-03-09T10:00:00+00:00"))
    assert utc_offset_minutes(time_zone("GMT Standard Time"), summer) == 60
    pcs["w10"].set_timezone("pacific standard time")
    assert pcs["w10"].get_instance("Win32_TimeZone", {}).get("StandardName") == "Pacific Standard Time"
    with pytest.raises(ValueError, match="unknown Windows time zone"):
        pcs["w10"].set_timezone("Mars Standard Time")


def test_bios_services_and_network(pcs: dict[str, Machine]) -> None:
    pc = pcs["pac"]
    bios = pc.get_instance("Win32_BIOS", {})
    assert isinstance(bios.get("BIOSVersion"), tuple) and types(bios)["BIOSVersion"] == "string"
    assert isinstance(bios.get("ReleaseDate"), datetime)
    assert bios.get("SerialNumber") and bios.get("SMBIOSBIOSVersion")
    sql = pc.get_instance("Win32_Service", {"Name": "MSSQLSERVER"})
    assert (sql.get("DisplayName"), sql.get("State"), sql.get("StartMode")) == (
        "SQL Server (MSSQLSERVER)",
        "Running",
        "Auto",
    )
    spp = pc.get_instance("Win32_Service", {"Name": "sppsvc"})
    assert spp.get("DisplayName") == "Software Protection"
    names = {r.get("Name") for r in pc.wql("SELECT Name FROM Win32_Service")}
    assert {"sppsvc", "W32Time", "WinRM", "MSSQLSERVER"} <= names
    assert "osppsvc" not in names
    nic = pc.get_instance("Win32_NetworkAdapterConfiguration", {"Index": "1"})
    assert (nic.get("IPAddress"), nic.get("MACAddress"), nic.get("IPEnabled")) == (
        (pc.address,),
        "52:54:00:AA:BB:CC",
        True,
    )
    assert types(nic)["IPAddress"] == "string"
    other = pc.get_instance("Win32_NetworkAdapterConfiguration", {"Index": "0"})
    assert (other.get("IPEnabled"), other.get("IPAddress")) == (False, None)


def test_service_and_product_methods(pcs: dict[str, Machine]) -> None:
    pc = pcs["w10"]

    async def calls() -> list[Any]:
        out: list[Any] = []
        out.append(
            await pc.invoke(
                "SoftwareLicensingService", "SetKeyManagementServiceMachine", {}, {"MachineName": "127.0.0.2"}, "u"
            )
        )
        out.append(
            await pc.invoke(
                "softwarelicensingservice",
                "setkeymanagementserviceport",
                {"Version": "10.0.19041.1052"},
                {"portnumber": "1700"},
                "u",
            )
        )
        out.append(
            await pc.invoke(
                "SoftwareLicensingService",
                "DisableKeyManagementServiceHostCaching",
                {},
                {"DisableCaching": "true"},
                "u",
            )
        )
        for bad in ({"PortNumber": "70000"}, {"PortNumber": "abc"}):
            try:
                await pc.invoke("SoftwareLicensingService", "SetKeyManagementServicePort", {}, bad, "u")
            except WmiError as exc:
                out.append(exc.hresult)
        for method in ("NoSuchMethod", "SetKeyManagementServiceMachine"):
            try:
                await pc.invoke("SoftwareLicensingService", method, {}, {}, "u")
            except WmiError as exc:
                out.append((exc.hresult, exc.kind))
        return out

    ok1, ok2, ok3, port_range, port_text, no_method, no_param = asyncio.run(calls())
    assert ok1 == ok2 == ok3
    assert [(p.name, p.type, p.value) for p in ok1] == [("ReturnValue", "uint32", 0)]
    assert port_range == port_text == 0x8007000D
    assert no_method == (0x8004102E, "invalid_parameter")  # WBEM_E_INVALID_METHOD
    assert no_param == (0x8004102F, "invalid_parameter")  # WBEM_E_INVALID_METHOD_PARAMETERS
    svc = pc.get_instance("SoftwareLicensingService", {})
    assert (
        svc.get("KeyManagementServiceMachine"),
        svc.get("KeyManagementServicePort"),
        svc.get("KeyManagementServiceHostCaching"),
    ) == (
        "127.0.0.2",
        1700,
        False,
    )
    row = pc.wql(
        "SELECT KeyManagementServiceMachine, KeyManagementServicePort FROM SoftwareLicensingProduct "
        "WHERE PartialProductKey IS NOT NULL AND Description LIKE '%KMSCLIENT%'"
    )
    assert [(r.get("KeyManagementServiceMachine"), r.get("KeyManagementServicePort")) for r in row] == [
        ("127.0.0.2", 1700)
    ] * 2


def test_instances_are_built_on_demand(pcs: dict[str, Machine]) -> None:
    pc = pcs["w10"]
    before = pc.get_instance("Win32_OperatingSystem", {}).get("LocalDateTime")
    pc.world.clock.advance(1)
    after = pc.get_instance("Win32_OperatingSystem", {}).get("LocalDateTime")
    assert isinstance(before, datetime) and isinstance(after, datetime)
    assert after - before >= timedelta(days=1)
    pc.set_clock_skew(-90)
    skewed = pc.get_instance("Win32_OperatingSystem", {}).get("LocalDateTime")
    assert isinstance(skewed, datetime) and after - skewed >= timedelta(minutes=89)
