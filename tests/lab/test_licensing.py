"""The licensing state machine, driven through the Machine's WMI API against a real lab KMS host on loopback."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from shared_data import SHARED

from orchestrator.lab.addresses import Claim
from orchestrator.lab.kms import KmsHost
from orchestrator.lab.licensing import RAISED_CODES, WINDOWS_APP_ID
from orchestrator.lab.machine import Machine, build_machine
from orchestrator.lab.provider import CimInstance, WmiError
from orchestrator.lab.spec import parse_spec, resolve
from orchestrator.lab.world import LabWorld

T = TypeVar("T")
ERRORS_YAML = SHARED / "domain" / "errors.yaml"
OFFICE_2016_GVLK = "XQNVK-8JYDB-WJ9W3-YJ8YR-WFG99"
PRO_GVLK = "W269N-WFGWX-YVC9B-4J6C9-T83GX"
EDU_GVLK = "NW6C2-QMPVW-D7KKK-3GKT6-VCFB2"


def make_lab(
    block: Claim, hosts: list[dict[str, Any]], kms: dict[str, Any] | None = None, **defaults: Any
) -> tuple[LabWorld, dict[str, Machine]]:
    data: dict[str, Any] = {"room": "r", "subnet": f"{block.prefix}.1", "hosts": hosts, "defaults": defaults}
    if kms is not None:
        data["kms"] = kms
    world = LabWorld(resolve(parse_spec(data)))
    machines = {cfg.name: build_machine(cfg, world) for cfg in world.resolved.hosts}
    return world, machines


def with_kms(world: LabWorld, body: Callable[[KmsHost], Awaitable[T]]) -> T:
    async def main() -> T:
        host = KmsHost(world)
        await host.start()
        try:
            return await body(host)
        finally:
            await host.stop()

    return asyncio.run(main())


def keyed(m: Machine, app_id: str = WINDOWS_APP_ID) -> CimInstance:
    rows = m.wql(
        f"SELECT * FROM SoftwareLicensingProduct WHERE ApplicationID = '{app_id}' AND PartialProductKey <> NULL"
    )
    assert len(rows) == 1, rows
    return rows[0]


def office_row(m: Machine) -> CimInstance:
    return keyed(m, "0ff1ce15-a989-479d-af46-f275c6370663")


async def activate(m: Machine, row: CimInstance | None = None, cls: str = "SoftwareLicensingProduct") -> None:
    row = row or keyed(m)
    await m.invoke(cls, "Activate", {"ID": str(row.get("ID"))}, {}, m.config.user)


async def service_call(m: Machine, method: str, **params: str) -> None:
    await m.invoke("SoftwareLicensingService", method, {}, params, m.config.user)


async def code_of(awaitable: Awaitable[object]) -> int:
    try:
        await awaitable
    except WmiError as exc:
        assert exc.kind == "provider"
        return exc.hresult
    return 0


def test_kms_activation_counts_down_to_oot_grace_then_notification(lab_block: Claim) -> None:
    world, pcs = make_lab(lab_block, [{"name": "pc01"}], kms_host="lab")
    pc = pcs["pc01"]
    before = keyed(pc)
    assert (before.get("LicenseStatus"), before.get("GracePeriodRemaining")) == (2, 43200)  # OOB grace, 30 days
    assert before.get("LicenseStatusReason") == 0x4004F00C

    async def body(host: KmsHost) -> None:
        await activate(pc)

    with_kms(world, body)
    row = keyed(pc)
    assert (row.get("LicenseStatus"), row.get("GracePeriodRemaining")) == (1, 259200)
    assert row.get("LicenseStatusReason") == 0x4004F040
    assert row.get("KeyManagementServiceProductKeyID") == world.kms_host_epid
    assert row.get("DiscoveredKeyManagementServiceMachineIpAddress") == world.kms_address
    world.clock.advance(10)
    assert keyed(pc).get("GracePeriodRemaining") == 259200 - 10 * 1440
    world.clock.advance(171)  # 181 days after activation
    oot = keyed(pc)
    assert oot.get("LicenseStatus") == 3
    assert oot.get("GracePeriodRemaining") == 29 * 1440
    world.clock.advance(30)
    expired = keyed(pc)
    assert (expired.get("LicenseStatus"), expired.get("LicenseStatusReason")) == (5, 0xC004F009)
    assert expired.get("GracePeriodRemaining") == 0
    snap = pc.snapshot()["products"][0]
    assert (snap["license_status"], snap["license_status_name"]) == (5, "Notification")


def test_a_second_activation_renews_the_180_day_window(lab_block: Claim) -> None:
    world, pcs = make_lab(lab_block, [{"name": "pc01"}], kms_host="lab")
    pc = pcs["pc01"]

    async def body(host: KmsHost) -> list[int]:
        await activate(pc)
        world.clock.advance(100)
        left = keyed(pc).get("GracePeriodRemaining")
        await activate(pc)
        world.clock.advance(150)  # 250 days after the first activation, 150 after the renewal
        return [
            int(str(left)),
            int(str(keyed(pc).get("GracePeriodRemaining"))),
            int(str(keyed(pc).get("LicenseStatus"))),
        ]

    left_before, left_after, status = with_kms(world, body)
    assert left_before == 259200 - 100 * 1440
    assert left_after == 259200 - 150 * 1440
    assert status == 1


def test_unlicensed_oob_grace_runs_out_into_notification(lab_block: Claim) -> None:
    world, pcs = make_lab(lab_block, [{"name": "pc01", "days_left": 12}])
    assert keyed(pcs["pc01"]).get("GracePeriodRemaining") == 12 * 1440
    world.clock.advance(12.5)
    row = keyed(pcs["pc01"])
    assert (row.get("LicenseStatus"), row.get("LicenseStatusReason")) == (5, 0xC004F009)


def test_licensed_and_expiring_states_from_the_spec(lab_block: Claim) -> None:
    _, pcs = make_lab(
        lab_block,
        [
            {"name": "lic", "windows_state": "licensed", "days_left": 90},
            {"name": "exp", "windows_state": "expiring", "days_left": 3},
            {"name": "ret", "os": "Windows 10 Pro", "windows_channel": "retail", "windows_state": "licensed"},
        ],
    )
    assert (keyed(pcs["lic"]).get("LicenseStatus"), keyed(pcs["lic"]).get("GracePeriodRemaining")) == (1, 90 * 1440)
    assert keyed(pcs["exp"]).get("GracePeriodRemaining") == 3 * 1440
    retail = keyed(pcs["ret"])
    assert (retail.get("LicenseStatus"), retail.get("GracePeriodRemaining"), retail.get("ProductKeyChannel")) == (
        1,
        0,
        "Retail",
    )


def test_kms_reachability_errors(lab_block: Claim) -> None:
    world, pcs = make_lab(
        lab_block,
        [
            {"name": "nohost"},
            {"name": "bureau", "kms_host": "163.30.0.166:1688"},
            {"name": "nolisten", "kms_host": f"{lab_block.prefix}.0.9"},
            {"name": "byname", "kms_host": "kms.school.example"},
            {"name": "lab", "kms_host": "lab"},
        ],
    )

    async def body(host: KmsHost) -> dict[str, int]:
        started = time.perf_counter()
        codes = {name: await code_of(activate(pc)) for name, pc in pcs.items() if name != "lab"}
        codes["elapsed_ms"] = int((time.perf_counter() - started) * 1000)
        await host.set_up(False)
        codes["down"] = await code_of(activate(pcs["lab"]))
        await host.set_up(True)
        codes["up"] = await code_of(activate(pcs["lab"]))
        return codes

    codes = with_kms(world, body)
    assert codes["nohost"] == 0x8007232B
    assert codes["bureau"] == 0xC004F074
    assert codes["nolisten"] == 0xC004F074
    assert codes["byname"] == 0xC004F074
    assert codes["down"] == 0xC004F074
    assert codes["up"] == 0
    assert codes["elapsed_ms"] < 1500  # the non-loopback host was not contacted (no connect timeout)
    assert pcs["bureau"].snapshot()["products"][0]["last_error"] == "0xC004F074"
    assert keyed(pcs["bureau"]).get("LicenseStatus") == 2  # a failed activation leaves the state alone


def test_clock_skew_beyond_four_hours_is_c004f06c_until_the_clock_is_fixed(lab_block: Claim) -> None:
    world, pcs = make_lab(
        lab_block,
        [{"name": "pc01", "clock_skew_minutes": 960}, {"name": "pc02", "clock_skew_minutes": -200}],
        kms_host="lab",
    )

    async def body(host: KmsHost) -> tuple[int, int, int]:
        skewed = await code_of(activate(pcs["pc01"]))
        inside = await code_of(activate(pcs["pc02"]))
        pcs["pc01"].set_clock_skew(0)
        return skewed, inside, await code_of(activate(pcs["pc01"]))

    assert with_kms(world, body) == (0xC004F06C, 0, 0)


def test_windows7_on_a_slic_bios_without_marker_is_c004f035(lab_block: Claim) -> None:
    world, pcs = make_lab(
        lab_block,
        [
            {"name": "w7", "os": "Windows 7 Professional", "windows_channel": "oem_slic"},
            {"name": "w10", "windows_channel": "oem_slic"},
        ],
        kms_host="lab",
    )

    async def body(host: KmsHost) -> tuple[int, int]:
        return await code_of(activate(pcs["w7"])), await code_of(activate(pcs["w10"]))

    assert with_kms(world, body) == (0xC004F035, 0)
    assert keyed(pcs["w7"]).get("Name") == "Windows(R) 7, Professional edition"


def test_not_admin_cannot_change_or_activate(lab_block: Claim) -> None:
    world, pcs = make_lab(lab_block, [{"name": "pc01", "admin": False}], kms_host="lab")
    pc = pcs["pc01"]

    async def body(host: KmsHost) -> list[int]:
        return [
            await code_of(service_call(pc, "InstallProductKey", ProductKey=EDU_GVLK)),
            await code_of(service_call(pc, "SetKeyManagementServiceMachine", MachineName="127.0.0.2")),
            await code_of(service_call(pc, "SetKeyManagementServicePort", PortNumber="1688")),
            await code_of(service_call(pc, "ClearKeyManagementServiceMachine")),
            await code_of(activate(pc)),
            await code_of(service_call(pc, "RefreshLicenseStatus")),
        ]

    assert with_kms(world, body) == [0x80070005] * 5 + [0]
    pc.set(admin=True)
    assert with_kms(world, lambda host: code_of(activate(pc))) == 0


def test_blocked_key_until_the_gvlk_is_reinstalled(lab_block: Claim) -> None:
    world, pcs = make_lab(lab_block, [{"name": "mak", "windows_channel": "mak", "blocked_key": True}], kms_host="lab")
    pc = pcs["mak"]
    assert keyed(pc).get("ProductKeyChannel") == "Volume:MAK"

    async def body(host: KmsHost) -> tuple[int, int]:
        blocked = await code_of(activate(pc))
        await service_call(pc, "InstallProductKey", ProductKey=EDU_GVLK)
        return blocked, await code_of(activate(pc))

    assert with_kms(world, body) == (0xC004C003, 0)
    row = keyed(pc)
    assert (row.get("ProductKeyChannel"), row.get("PartialProductKey"), row.get("LicenseStatus")) == (
        "Volume:GVLK",
        "VCFB2",
        1,
    )


def test_unlicensed_mak_cannot_reach_microsoft_from_the_lab(lab_block: Claim) -> None:
    world, pcs = make_lab(lab_block, [{"name": "mak", "windows_channel": "mak"}])
    assert with_kms(world, lambda host: code_of(activate(pcs["mak"]))) == 0x80072EE7


def test_non_volume_windows_and_the_gvlk_fix(lab_block: Claim) -> None:
    world, pcs = make_lab(
        lab_block,
        [
            {"name": "home", "os": "Windows 10 Home", "windows_channel": "retail"},
            {"name": "pro", "os": "Windows 10 Pro", "windows_channel": "retail"},
            {"name": "edu", "windows_channel": "oem"},
        ],
        kms_host="lab",
    )

    async def body(host: KmsHost) -> dict[str, int]:
        codes = {
            "home": await code_of(activate(pcs["home"])),
            "pro": await code_of(activate(pcs["pro"])),
            "edu": await code_of(activate(pcs["edu"])),
            "home_gvlk": await code_of(service_call(pcs["home"], "InstallProductKey", ProductKey=PRO_GVLK)),
            "edu_with_enterprise": await code_of(
                service_call(pcs["edu"], "InstallProductKey", ProductKey="NPPR9-FWDCX-D2C8J-H872K-2YT43")
            ),
            "edu_with_win7_key": await code_of(
                service_call(pcs["edu"], "InstallProductKey", ProductKey="FJ82H-XT6CR-J8D7P-XQJJ2-GPDD4")
            ),
            "garbage": await code_of(service_call(pcs["edu"], "InstallProductKey", ProductKey="not-a-key")),
            "unknown": await code_of(
                service_call(pcs["edu"], "InstallProductKey", ProductKey="BBBBB-BBBBB-BBBBB-BBBBB-BBBBB")
            ),
        }
        await service_call(pcs["pro"], "InstallProductKey", ProductKey=PRO_GVLK.lower())
        codes["pro_after_gvlk"] = await code_of(activate(pcs["pro"]))
        return codes

    codes = with_kms(world, body)
    assert codes["home"] == codes["pro"] == codes["edu"] == 0xC004F057
    assert codes["home_gvlk"] == codes["edu_with_enterprise"] == codes["edu_with_win7_key"] == 0xC004F050
    assert codes["garbage"] == codes["unknown"] == 0xC004F050
    assert codes["pro_after_gvlk"] == 0
    pro = keyed(pcs["pro"])
    assert (pro.get("ProductKeyChannel"), pro.get("Description")) == (
        "Volume:GVLK",
        "Windows(R) Operating System, VOLUME_KMSCLIENT channel",
    )
    retail_row = pcs["pro"].wql(
        "SELECT PartialProductKey FROM SoftwareLicensingProduct WHERE Description LIKE '%RETAIL channel'"
    )
    assert retail_row[0].get("PartialProductKey") is None  # the key moved to the KMS client SKU


def test_office_channels_and_corruption(lab_block: Claim) -> None:
    def office(channel: str, state: str = "unlicensed") -> dict[str, Any]:
        return {"version": 2016, "channel": channel, "state": state}

    world, pcs = make_lab(
        lab_block,
        [
            {"name": "vl", "office": office("volume")},
            {"name": "oem", "office": office("oem", "licensed")},
            {"name": "oemoff", "office": office("oem")},
            {"name": "sub", "office": office("subscription", "licensed")},
            {"name": "subx", "office": office("subscription")},
            {"name": "bad", "office": office("volume", "corrupt")},
        ],
        kms_host="lab",
    )

    async def body(host: KmsHost) -> dict[str, int]:
        return {name: await code_of(activate(pc, office_row(pc))) for name, pc in pcs.items()} | {
            "oem_gvlk": await code_of(service_call(pcs["oem"], "InstallProductKey", ProductKey=OFFICE_2016_GVLK)),
            "sub_gvlk": await code_of(service_call(pcs["sub"], "InstallProductKey", ProductKey=OFFICE_2016_GVLK)),
            "vl_2013_key": await code_of(
                service_call(pcs["vl"], "InstallProductKey", ProductKey="YC7DK-G2NP3-2QQC3-J6H88-GVGXT")
            ),
        }

    codes = with_kms(world, body)
    assert codes["vl"] == 0
    assert codes["oem"] == codes["sub"] == 0  # already licensed outside KMS: nothing to do
    assert codes["oemoff"] == codes["subx"] == 0xC004F017
    assert codes["oem_gvlk"] == codes["sub_gvlk"] == 0xC004F017
    assert codes["vl_2013_key"] == 0xC004F050
    assert codes["bad"] == 0xC004F056
    assert office_row(pcs["sub"]).get("Description") == "Office 16, TIMEBASED_SUB channel"
    assert office_row(pcs["vl"]).get("Name") == "Office 16, Office16ProPlusVL_KMS_Client edition"
    assert office_row(pcs["vl"]).get("LicenseStatus") == 1


def test_count_below_threshold_and_cloned_images(lab_block: Claim) -> None:
    hosts: list[dict[str, Any]] = [{"name": "clone[01:26]", "cloned_cmid": True}, {"name": "fresh[01:24]"}]
    world, pcs = make_lab(lab_block, hosts, kms={"count": 0}, kms_host="lab")
    clones = [pc for name, pc in pcs.items() if name.startswith("clone")]
    fresh = [pc for name, pc in pcs.items() if name.startswith("fresh")]
    assert len({pc.cmid for pc in clones}) == 1
    assert len({pc.cmid for pc in fresh}) == 24

    async def body(host: KmsHost) -> tuple[list[int], list[int], int]:
        clone_codes = [await code_of(activate(pc)) for pc in clones]
        fresh_codes = [await code_of(activate(pc)) for pc in fresh]
        return clone_codes, fresh_codes, await code_of(activate(clones[0]))

    clone_codes, fresh_codes, retry = with_kms(world, body)
    assert set(clone_codes) == {0xC004F038}  # 26 PCs, one CMID: the host counts 1
    assert set(fresh_codes[:23]) == {0xC004F038}
    assert fresh_codes[23] == 0  # clone CMID + 24 fresh = 25
    assert retry == 0


def test_product_outside_the_hosts_key_group_is_c004f042(lab_block: Claim) -> None:
    world, pcs = make_lab(
        lab_block,
        [{"name": "pc01", "office": {"version": 2019, "bitness": "x64"}}],
        kms={"products": ["windows"]},
        kms_host="lab",
    )
    pc = pcs["pc01"]

    async def body(host: KmsHost) -> tuple[int, int]:
        return await code_of(activate(pc)), await code_of(activate(pc, office_row(pc)))

    assert with_kms(world, body) == (0, 0xC004F042)


def test_server_editions_use_the_server_threshold(lab_block: Claim) -> None:
    world, pcs = make_lab(
        lab_block, [{"name": "srv[1:2]", "os": "Windows Server 2019 Standard"}], kms={"count": 3}, kms_host="lab"
    )

    async def body(host: KmsHost) -> list[int]:
        return [await code_of(activate(pc)) for pc in pcs.values()]

    assert with_kms(world, body) == [0xC004F038, 0]
    assert keyed(pcs["srv1"]).get("Name") == "Windows(R), ServerStandard edition"


def test_uninstalled_key_gives_c004f014(lab_block: Claim) -> None:
    world, pcs = make_lab(lab_block, [{"name": "pc01"}], kms_host="lab")
    pc = pcs["pc01"]
    sku = str(keyed(pc).get("ID"))

    async def body(host: KmsHost) -> tuple[int, int, int]:
        await pc.invoke("SoftwareLicensingProduct", "UninstallProductKey", {"ID": sku}, {}, "administrator")
        again = await code_of(
            pc.invoke("SoftwareLicensingProduct", "UninstallProductKey", {"ID": sku}, {}, "administrator")
        )
        activate_code = await code_of(
            pc.invoke("SoftwareLicensingProduct", "Activate", {"ID": sku}, {}, "administrator")
        )
        await service_call(pc, "InstallProductKey", ProductKey=EDU_GVLK)
        return again, activate_code, await code_of(activate(pc))

    assert with_kms(world, body) == (0xC004F014, 0xC004F014, 0)


def test_product_level_kms_override_wins_over_the_service_setting(lab_block: Claim) -> None:
    world, pcs = make_lab(lab_block, [{"name": "pc01"}], kms_host="163.30.0.166")
    pc = pcs["pc01"]
    sku = str(keyed(pc).get("ID"))
    address, port = world.kms_endpoint()

    async def body(host: KmsHost) -> tuple[int, int]:
        before = await code_of(activate(pc))
        await pc.invoke(
            "SoftwareLicensingProduct", "SetKeyManagementServiceMachine", {"ID": sku}, {"MachineName": address}, "x"
        )
        await pc.invoke(
            "SoftwareLicensingProduct", "SetKeyManagementServicePort", {"ID": sku}, {"PortNumber": str(port)}, "x"
        )
        return before, await code_of(activate(pc))

    assert with_kms(world, body) == (0xC004F074, 0)
    svc = pc.get_instance("SoftwareLicensingService", {})
    assert svc.get("KeyManagementServiceMachine") == "163.30.0.166"
    assert keyed(pc).get("KeyManagementServiceMachine") == address


def test_every_raised_code_is_in_the_shared_error_catalogue() -> None:
    if not ERRORS_YAML.exists():
        pytest.skip("shared error catalogue not available")
    catalogued = {int(code, 16) for code in re.findall(r"- code: '(0x[0-9A-Fa-f]{8})'", ERRORS_YAML.read_text())}
    missing = sorted(f"0x{c:08X}" for c in RAISED_CODES - catalogued)
    assert missing == []
    kms_codes = {0xC004F038, 0xC004F042, 0xC004F06C}
    assert kms_codes <= catalogued


def test_snapshot_is_json_ready_ground_truth(lab_block: Claim) -> None:
    import json

    _, pcs = make_lab(
        lab_block,
        [{"name": "pc01", "office": {"version": 2016}, "sql": "2019 Standard", "timezone": "Tokyo Standard Time"}],
    )
    snap = pcs["pc01"].snapshot()
    json.dumps(snap)
    assert snap["name"] == "pc01" and snap["address"] == f"{lab_block.prefix}.1.1"
    assert (snap["os"], snap["edition"], snap["timezone"], snap["admin"]) == (
        "Windows 10 Education",
        "Education",
        "Tokyo Standard Time",
        True,
    )
    assert [p["product"] for p in snap["products"]] == ["windows", "office"]
    assert snap["products"][1]["activation_id"] == "d450596f-894d-49e0-966a-fd39ed4c4c64"
    assert snap["sql"][0]["instance_id"] == "MSSQL15.MSSQLSERVER"
    with pytest.raises(ValueError, match="unknown machine field"):
        pcs["pc01"].set(colour="blue")
