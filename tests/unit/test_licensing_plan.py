"""The licensing modules' pure parts: plan functions over every combination of PC state and arguments, plus
the parsing that feeds them. No network: facts are built here the way WMI rows describe a PC."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from orchestrator.cli.audit_cmd import audit_rows, cloned_groups
from orchestrator.modules.licensing.gather import parse_reg_query
from orchestrator.modules.licensing.license_facts import summarise_facts
from orchestrator.modules.licensing.model import (
    OFFICE_APP_ID,
    WINDOWS_APP_ID,
    LicensingFacts,
    OsInfo,
    Service,
    Sku,
    channel_of,
    licence_record,
    office_version_of,
    parse_kms_target,
    sku_from_row,
)
from orchestrator.modules.licensing.office_kms import OfficeKmsArgs, plan_office
from orchestrator.modules.licensing.time_sync import TimeFacts, TimeSyncArgs, plan_time
from orchestrator.modules.licensing.verdict import failures
from orchestrator.modules.licensing.windows_kms import WindowsKmsArgs, plan_windows
from orchestrator.results.models import HostResult, HostStatus, HostTaskResult, LicenceRecord, RunInfo, RunResult
from orchestrator.results.models import TaskStatus as TS

KMS = "10.1.2.3"
OTHER = "10.9.9.9"
DAY = 1440
W10 = OsInfo(caption="Microsoft Windows 10 Education", version="10.0.19042", build="19042", sku_number=121)
W7 = OsInfo(caption="Microsoft Windows 7 Professional ", version="6.1.7601", build="7601", sku_number=48)
S19 = OsInfo(caption="Microsoft Windows Server 2019 Standard", version="10.0.17763", product_type=3, sku_number=7)

# ---------------------------------------------------------------------------------------------- builders

CHANNEL_DESC = {
    "Volume:GVLK": "VOLUME_KMSCLIENT",
    "Volume:MAK": "VOLUME_MAK",
    "Retail": "RETAIL",
    "OEM:DM": "OEM_DM",
    "OEM:SLP": "OEM_SLP",
}


def win(
    channel: str = "Volume:GVLK",
    status: int = 2,
    days: float = 30,
    family: str = "Education",
    host: str | None = None,
    port: int = 0,
    sku_id: str = "e0c42288-980c-4788-a014-c080d2e1926e",
) -> Sku:
    return Sku(
        id=sku_id,
        app="windows",
        service="spp",
        name=f"Windows(R), {family} edition",
        description=f"Windows(R) Operating System, {CHANNEL_DESC[channel]} channel",
        family=family,
        channel=channel,
        status=status,
        grace_minutes=int(days * DAY),
        partial_key="ABCDE",
        kms_machine=host,
        kms_port=port,
    )


def office(
    kind: str = "volume",
    version: int = 2016,
    status: int = 2,
    days: float = 30,
    host: str | None = None,
    service: str = "spp",
) -> Sku:
    prefix = {2013: "Office 15", 2016: "Office 16", 2019: "Office 19"}[version]
    stem = {2013: "Office", 2016: "Office16", 2019: "Office19"}[version]
    year = "2019" if version == 2019 else ""
    family, desc, channel = {
        "volume": (f"{stem}ProPlus{year}VL_KMS_Client", "VOLUME_KMSCLIENT", "Volume:GVLK"),
        "mak": (f"{stem}ProPlus{year}VL_MAK", "VOLUME_MAK", "Volume:MAK"),
        "retail": (f"{stem}ProPlusR_Retail", "RETAIL", "Retail"),
        "oem": (f"{stem}HomeBusinessR_Retail", "RETAIL", "Retail"),
        "subscription": ("Office16O365ProPlusR_Subscription1", "TIMEBASED_SUB", "Subscription"),
    }[kind]
    name_prefix = "Office 16" if kind == "subscription" else prefix
    return Sku(
        id=f"{kind}-{version}",
        app="office",
        service=service,  # type: ignore[arg-type]
        name=f"{name_prefix}, {family} edition",
        description=f"{name_prefix}, {desc} channel",
        family=family,
        channel=channel,
        status=status,
        grace_minutes=int(days * DAY),
        partial_key="WFG99",
        kms_machine=host,
    )


def facts(
    *skus: Sku, os: OsInfo = W10, host: str | None = None, port: int = 0, ospp: Service | None = None
) -> LicensingFacts:
    return LicensingFacts(
        os=os,
        spp=Service("spp", "10.0.19041.1052", host, port, "cmid-1"),
        ospp=ospp,
        skus=skus,
    )


def actions(plan: object) -> list[str]:
    return [c.action for c in plan.changes]  # type: ignore[attr-defined]


def wargs(**kw: object) -> WindowsKmsArgs:
    return WindowsKmsArgs.model_validate({"kms_host": KMS, **kw})


def oargs(**kw: object) -> OfficeKmsArgs:
    return OfficeKmsArgs.model_validate({"kms_host": KMS, **kw})


# ---------------------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("description", "pkc", "name", "expected"),
    [
        ("Windows(R) Operating System, VOLUME_KMSCLIENT channel", "Volume:GVLK", "", "Volume:GVLK"),
        ("Windows Operating System - Windows(R) 7, VOLUME_KMSCLIENT channel", None, "", "Volume:GVLK"),
        ("Windows Operating System - Windows(R) 7, OEM_SLP channel", None, "", "OEM:SLP"),
        ("Windows(R) Operating System, OEM_DM channel", "OEM:DM", "", "OEM:DM"),
        ("Windows(R) Operating System, VOLUME_MAK channel", None, "", "Volume:MAK"),
        ("Office 16, RETAIL channel", "Retail", "", "Retail"),
        ("Office 16, RETAIL(Grace) channel", None, "", "Retail"),
        ("Office 16, TIMEBASED_SUB channel", "Retail:TB:Sub", "", "Subscription"),
        ("Office 16, RETAIL channel", "Retail:TB:Sub", "", "Subscription"),
        ("Office 15, something", None, "Office 15, OfficeO365ProPlusR_Subscription1 edition", "Subscription"),
    ],
)
def test_channel_of(description: str, pkc: str | None, name: str, expected: str) -> None:
    assert channel_of(description, pkc, name) == expected


@pytest.mark.parametrize(
    ("name", "family", "year"),
    [
        ("Office 15, OfficeProPlusVL_KMS_Client edition", "OfficeProPlusVL_KMS_Client", 2013),
        ("Office 16, Office16ProPlusVL_KMS_Client edition", "Office16ProPlusVL_KMS_Client", 2016),
        ("Office 19, Office19ProPlus2019VL_KMS_Client_AE edition", "", 2019),
        ("Office 16, Office16ProPlus2019VL_KMS_Client_AE edition", "", 2019),
        ("Office 24, Office24ProPlus2024VL_KMS_Client_AE edition", "", 2024),
        ("Windows(R), Education edition", "Education", None),
    ],
)
def test_office_version_of(name: str, family: str, year: int | None) -> None:
    assert office_version_of(name, family) == year


@pytest.mark.parametrize(
    ("text", "port", "host", "expected_port"),
    [
        ("163.30.0.166", None, "163.30.0.166", 1688),
        ("163.30.0.166:1700", None, "163.30.0.166", 1700),
        ("163.30.0.166:1700", 1688, "163.30.0.166", 1688),
        ("KMS.School.Example", None, "kms.school.example", 1688),
        ("[fd00::5]:1689", None, "fd00::5", 1689),
        ("fd00::5", None, "fd00::5", 1688),
    ],
)
def test_parse_kms_target(text: str, port: int | None, host: str, expected_port: int) -> None:
    target = parse_kms_target(text, port)
    assert (target.host, target.port) == (host, expected_port)


@pytest.mark.parametrize("bad", ["", "a b", "host;calc.exe", "h:p", "[::1", "1.2.3.4:99999", "x" * 300, "-h"])
def test_parse_kms_target_refuses(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_kms_target(bad)


def test_bad_arguments_are_refused_before_any_host() -> None:
    from orchestrator.modules.licensing.windows_kms import WindowsKms

    assert WindowsKms.check_args({"kms_host": "a b"})
    assert WindowsKms.check_args({"kms_host": KMS, "renew_below_days": 400})
    assert WindowsKms.check_args({"kms_host": KMS, "kms_prot": 1688})  # typo → unknown argument
    assert WindowsKms.check_args({}) == ["missing required argument 'kms_host'"]
    assert not WindowsKms.check_args({"kms_host": "{{ kms_host }}", "install_gvlk": "{{ x }}"})
    with pytest.raises(ValueError):
        OfficeKmsArgs.model_validate({"kms_host": KMS, "version": "2010"})
    assert OfficeKmsArgs.model_validate({"kms_host": KMS, "version": 2016}).version == "2016"


def test_sku_from_row_reads_wmi_text() -> None:
    row = {
        "ID": "{E0C42288-980C-4788-A014-C080D2E1926E}",
        "ApplicationID": WINDOWS_APP_ID,
        "Name": "Windows(R), Education edition",
        "Description": "Windows(R) Operating System, VOLUME_KMSCLIENT channel",
        "LicenseFamily": "Education",
        "LicenseStatus": "1",
        "LicenseStatusReason": "1074065472",
        "GracePeriodRemaining": "259199",
        "PartialProductKey": "VCFB2",
        "KeyManagementServiceMachine": None,
        "KeyManagementServicePort": "0",
        "LicenseIsAddon": "false",
        "ProductKeyChannel": "Volume:GVLK",
    }
    sku = sku_from_row(row, "spp")
    assert sku is not None
    assert (sku.id, sku.app, sku.status, sku.days_left, sku.kms_client) == (
        "e0c42288-980c-4788-a014-c080d2e1926e",
        "windows",
        1,
        180,
        True,
    )
    assert sku_from_row({**row, "ApplicationID": "aaaaaaaa-0000-0000-0000-000000000000"}, "spp") is None
    assert sku_from_row({**row, "ApplicationID": OFFICE_APP_ID}, "spp").app == "office"  # type: ignore[union-attr]


def test_days_left_rounds_up_like_slmgr_and_permanent_is_none() -> None:
    assert win(status=1, days=179 + 1 / DAY).days_left == 180
    assert win(status=1, days=1 / DAY).days_left == 1
    assert win("Retail", status=1, days=0).days_left is None
    assert win(status=5, days=0).days_left == 0


def test_reg_query_parser() -> None:
    text = (
        "\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Microsoft SQL Server\\Instance Names\\SQL\r\n"
        "    SQLEXPRESS    REG_SZ    MSSQL15.SQLEXPRESS\r\n"
        "    MSSQLSERVER    REG_SZ    MSSQL13.MSSQLSERVER\r\n\r\n"
        "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Microsoft SQL Server\\MSSQL15.SQLEXPRESS\\Setup\r\n"
        "    Edition    REG_SZ    Express Edition\r\n"
        "    Empty    REG_SZ\r\n"
    )
    keys = parse_reg_query(text)
    names = keys["hkey_local_machine\\software\\microsoft\\microsoft sql server\\instance names\\sql"]
    assert names == {"SQLEXPRESS": "MSSQL15.SQLEXPRESS", "MSSQLSERVER": "MSSQL13.MSSQLSERVER"}
    setup = keys["hkey_local_machine\\software\\microsoft\\microsoft sql server\\mssql15.sqlexpress\\setup"]
    assert setup == {"Edition": "Express Edition", "Empty": ""}


# ---------------------------------------------------------------------------------------------- windows

# Each Windows state, and what the bureau's rules say must happen to it (install_gvlk false / true).
WINDOWS_STATES: dict[str, tuple[LicensingFacts, str, str]] = {
    # name: (facts, outcome without install_gvlk, outcome with install_gvlk)
    "gvlk never activated": (facts(win()), "activate", "activate"),
    "gvlk healthy through the host": (facts(win(status=1, days=170), host=KMS), "ok", "ok"),
    "gvlk licensed, few days left": (facts(win(status=1, days=10), host=KMS), "renew", "renew"),
    "gvlk licensed via another host": (facts(win(status=1, days=170), host=OTHER), "activate", "activate"),
    "gvlk grace expired (notification)": (facts(win(status=5, days=0), host=KMS), "renew", "renew"),
    "gvlk out of tolerance": (facts(win(status=3, days=20), host=KMS), "renew", "renew"),
    "gvlk product-level override": (
        facts(win(status=1, days=170, host=OTHER), host=KMS),
        "activate",
        "activate",
    ),
    "retail pro not activated": (facts(win("Retail", family="Professional")), "problem", "install"),
    "oem pro not activated": (facts(win("OEM:DM", family="Professional")), "problem", "install"),
    "mak not activated": (facts(win("Volume:MAK")), "problem", "install"),
    "retail pro activated": (facts(win("Retail", status=1, days=0, family="Professional")), "ok", "ok"),
    "mak activated": (facts(win("Volume:MAK", status=1, days=0)), "ok", "ok"),
    "home edition": (facts(win("Retail", family="Core")), "problem", "problem"),
    "windows 7 ultimate": (facts(win("Retail", family="Ultimate"), os=W7), "problem", "problem"),
    "no key at all": (facts(), "problem", "install"),
    "server 2019 gvlk": (facts(win(family="ServerStandard"), os=S19), "activate", "activate"),
    "windows 7 oem slp": (facts(win("OEM:SLP", family="Professional"), os=W7), "problem", "install"),
}


@pytest.mark.parametrize(
    ("state", "install_gvlk", "activate", "renew", "port"),
    list(itertools.product(WINDOWS_STATES, [False, True], [True, False], [0, 30, 179], [1688, 1700])),
)
def test_plan_windows_every_state_and_args(
    state: str, install_gvlk: bool, activate: bool, renew: int, port: int
) -> None:
    state_facts, without, with_gvlk = WINDOWS_STATES[state]
    args = wargs(install_gvlk=install_gvlk, activate=activate, renew_below_days=renew, kms_port=port)
    plan = plan_windows(state_facts, args)
    assert plan == plan_windows(state_facts, args), "the plan is a pure function"
    acts = actions(plan)
    expected = with_gvlk if install_gvlk else without
    sku = state_facts.primary_windows
    # "healthy" depends on the days left against renew_below_days and on the port asked for
    if expected in ("ok", "renew") and sku is not None and sku.kms_client:
        expected = "ok" if (sku.status == 1 and (sku.days_left or 0) > renew and port == 1688) else "activate"
    if expected == "ok":
        assert plan.empty, (state, acts, plan.problems)
        assert plan.notes
    elif expected == "problem":
        assert not acts
        assert plan.problems
        assert plan.problems[0].diagnosis in ("KF_NON_VOLUME_WINDOWS", "0xC004F014")
    else:
        assert not plan.problems
        assert ("install_key" in acts) == (expected == "install")
        assert ("activate" in acts) == activate
        # a host/port is set only where the effective setting differs
        machine, current_port = state_facts.effective_kms(sku) if sku else (state_facts.spp.kms_machine, 1688)
        host_differs = (machine or "").lower() != KMS
        assert ("set_kms_host" in acts) == host_differs
        assert ("set_kms_port" in acts) == (current_port != port)
    # install_key only ever with install_gvlk, and always first
    if "install_key" in acts:
        assert install_gvlk and acts[0] == "install_key"
    # activation is the last step
    if "activate" in acts:
        assert acts[-1] == "activate"


def test_plan_windows_installs_the_gvlk_of_the_detected_edition() -> None:
    plan = plan_windows(facts(win("Retail", family="Professional")), wargs(install_gvlk=True))
    install = plan.changes[0]
    assert install.value == "W269N-WFGWX-YVC9B-4J6C9-T83GX"  # Microsoft's published Windows 10/11 Pro GVLK
    assert plan.changes[-1].sku_id == "2de67392-b7a7-462a-b1ca-108dd189f588"  # …activated on the Pro KMS SKU
    server = plan_windows(facts(win("Retail", family="ServerDatacenter"), os=S19), wargs(install_gvlk=True))
    assert server.changes[0].value == "WMDGN-G9PQG-XVVXX-R3X43-63DFG"  # Server 2019 Datacenter
    win7 = plan_windows(facts(win("OEM:SLP", family="Enterprise"), os=W7), wargs(install_gvlk=True))
    assert win7.changes[0].value == "33PXH-7Y6KF-2VJC9-XBBR8-HVTHH"  # Windows 7 Enterprise


def test_plan_windows_problem_codes_follow_the_seed() -> None:
    retail = plan_windows(facts(win("Retail", family="Professional")), wargs())
    assert (retail.problems[0].diagnosis, retail.problems[0].error_code) == ("KF_NON_VOLUME_WINDOWS", 0xC004F057)
    assert "install_gvlk" in retail.problems[0].msg
    home = plan_windows(facts(win("Retail", family="Core")), wargs(install_gvlk=True))
    assert home.problems[0].error_code == 0xC004F057
    assert "edition upgrade" in home.problems[0].msg
    mak = plan_windows(facts(win("Volume:MAK")), wargs())
    assert mak.problems[0].error_code == 0xC004F057  # the bureau's Q&A: "not the bureau's volume edition"
    nokey = plan_windows(facts(), wargs())
    assert (nokey.problems[0].diagnosis, nokey.problems[0].error_code) == ("0xC004F014", 0xC004F014)


def test_plan_windows_product_override_is_corrected_on_the_product() -> None:
    plan = plan_windows(facts(win(status=2, host=OTHER), host=KMS), wargs())
    host_change = next(c for c in plan.changes if c.action == "set_kms_host")
    assert host_change.sku_id == "e0c42288-980c-4788-a014-c080d2e1926e"
    plain = plan_windows(facts(win(status=2)), wargs())
    assert next(c for c in plain.changes if c.action == "set_kms_host").sku_id is None  # service level, as /skms


def test_plan_windows_ipv6_host_is_bracketed_like_slmgr() -> None:
    plan = plan_windows(facts(win()), WindowsKmsArgs(kms_host="[fd00::5]:1688"))
    assert plan.changes[0].value == "[fd00::5]"
    healthy = facts(win(status=1, days=100), host="[FD00::5]")
    assert plan_windows(healthy, WindowsKmsArgs(kms_host="fd00::5")).empty


# ---------------------------------------------------------------------------------------------- office

OFFICE_STATES: dict[str, tuple[LicensingFacts, str]] = {
    "volume 2016 never activated": (facts(win(), office()), "activate"),
    "volume 2016 healthy": (facts(win(), office(status=1, days=150, host=KMS)), "ok"),
    "volume 2016 healthy via service host": (facts(win(), office(status=1, days=150), host=KMS), "ok"),
    "volume 2016 expiring": (facts(win(), office(status=1, days=5, host=KMS)), "renew"),
    "volume 2013 on windows 7 (ospp)": (
        facts(
            win(family="Professional"),
            office(version=2013, service="ospp"),
            os=W7,
            ospp=Service("ospp", "15.0.4420.1017", None, 0, "cmid-o"),
        ),
        "activate",
    ),
    "volume 2019": (facts(win(), office(version=2019)), "activate"),
    "retail": (facts(win(), office("retail")), "KF_RETAIL_OFFICE"),
    "oem preinstalled": (facts(win(), office("oem", status=1, days=0)), "KF_OEM_OFFICE"),
    "subscription": (facts(win(), office("subscription", status=1, days=20)), "KF_SUBSCRIPTION_OFFICE"),
    "mak activated": (facts(win(), office("mak", status=1, days=0)), "ok"),
    "mak not activated": (facts(win(), office("mak")), "KF_NO_OFFICE_KMS_SKU"),
    "no office": (facts(win()), "ok"),
}


@pytest.mark.parametrize(
    ("state", "version", "renew"),
    list(itertools.product(OFFICE_STATES, ["any", "2013", "2016", "2019"], [0, 30])),
)
def test_plan_office_every_state_and_version(state: str, version: str, renew: int) -> None:
    state_facts, outcome = OFFICE_STATES[state]
    plan = plan_office(state_facts, oargs(version=version, renew_below_days=renew))
    assert plan == plan_office(state_facts, oargs(version=version, renew_below_days=renew))
    in_scope = [s for s in state_facts.office_skus if version == "any" or str(s.office_version) == version]
    if outcome == "renew" and in_scope:  # licensed through the host: renewed only at or below renew_below_days
        outcome = "ok" if (in_scope[0].days_left or 0) > renew else "activate"
    if not in_scope:
        assert plan.empty and plan.notes
        return
    if outcome.startswith("KF_"):
        assert not plan.changes
        assert plan.problems[0].diagnosis == outcome
        # the Q&A's code for Office that has no volume (KMS) licence
        assert plan.problems[0].error_code == 0xC004F017
        assert "never removes Office" in plan.problems[0].msg or outcome == "KF_NO_OFFICE_KMS_SKU"
    elif outcome == "ok":
        assert plan.empty
    else:
        assert not plan.problems
        acts = actions(plan)
        assert acts[-1] == "activate"
        assert "install_key" not in acts
        # Office sets its host on the product, as ospp.vbs /sethst does, never on the shared service
        assert all(c.sku_id for c in plan.changes)


def test_plan_office_mak_with_install_gvlk() -> None:
    plan = plan_office(facts(win(), office("mak")), oargs(install_gvlk=True))
    assert actions(plan) == ["install_key", "set_kms_host", "activate"]
    assert plan.changes[0].value == "XQNVK-8JYDB-WJ9W3-YJ8YR-WFG99"  # Office 2016 ProPlus GVLK
    assert plan.changes[-1].sku_id == "d450596f-894d-49e0-966a-fd39ed4c4c64"


def test_plan_office_activates_the_volume_part_and_reports_the_rest() -> None:
    plan = plan_office(facts(win(), office(), office("oem", status=1, days=0)), oargs())
    assert actions(plan)[-1] == "activate"
    assert [p.diagnosis for p in plan.problems] == ["KF_OEM_OFFICE"]


def test_plan_office_activate_false_only_sets_the_host() -> None:
    plan = plan_office(facts(win(), office()), oargs(activate=False))
    assert actions(plan) == ["set_kms_host"]


# ---------------------------------------------------------------------------------------------- time


TIME_GRID = list(
    itertools.product(
        ["Taipei Standard Time", "Pacific Standard Time"],
        [0.0, 250.0, -3600.0, 57600.0],
        [True, False, None],
        [True, False, None],
        [False, True],
        [False, True],
        [False, True],
        [False, True],
    )
)


def test_plan_time_every_combination() -> None:
    for case in TIME_GRID:
        _check_time_case(*case)


def _check_time_case(
    zone: str,
    offset: float,
    admin: bool | None,
    reachable: bool | None,
    fix_tz: bool,
    fix_clock: bool,
    require_admin: bool,
    check_port: bool,
) -> None:
    case = (zone, offset, admin, reachable, fix_tz, fix_clock, require_admin, check_port)
    args = TimeSyncArgs(
        fix_timezone=fix_tz,
        fix_clock=fix_clock,
        require_admin=require_admin,
        check_kms_port=check_port,
        kms_host=KMS,
    )
    tf = TimeFacts(timezone_id=zone, offset_seconds=offset, is_admin=admin, kms_reachable=reachable)
    plan = plan_time(tf, args)
    keys = [p.diagnosis for p in plan.problems]
    acts = actions(plan)
    zone_wrong = zone != "Taipei Standard Time"
    clock_off = abs(offset) > 300
    # the time zone: fixed when asked, else the problem (and the root cause when the clock is off too)
    assert ("set_timezone" in acts) == (zone_wrong and fix_tz), case
    assert ("KF_WRONG_TIMEZONE" in keys) == (zone_wrong and not fix_tz), case
    # the clock: resynced when asked and possible (w32tm needs an administrator)
    assert ("resync_clock" in acts) == (clock_off and fix_clock and admin is not False), case
    if clock_off and not fix_clock and (not zone_wrong or fix_tz):
        assert "KF_CLOCK_SKEW" in keys, case
    if not clock_off:
        assert "KF_CLOCK_SKEW" not in keys, case
    assert ("KF_KMS_PORT_BLOCKED" in keys) == (check_port and reachable is False), case
    needs_admin = (require_admin and admin is False) or (clock_off and fix_clock and admin is False)
    assert ("KF_NOT_ADMIN" in keys) == needs_admin, case
    if not zone_wrong and not clock_off and not needs_admin and "KF_KMS_PORT_BLOCKED" not in keys:
        assert plan.empty, case


def test_plan_time_accepts_dstoff_and_case() -> None:
    tf = TimeFacts(timezone_id="taipei standard time", offset_seconds=1.0)
    assert plan_time(tf, TimeSyncArgs(timezone="Taipei Standard Time_dstoff")).empty


def test_time_args_refuse_junk() -> None:
    with pytest.raises(ValueError):
        TimeSyncArgs(timezone='Taipei"; calc')
    with pytest.raises(ValueError):
        TimeSyncArgs(kms_host="bad host")


# ---------------------------------------------------------------------------------------------- facts


def test_licence_records_and_host_facts() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    f = facts(
        win(status=1, days=100, host=KMS),
        office(status=1, days=170),
        office("oem", status=1, days=0),
        host=KMS,
        port=1688,
    )
    records = [licence_record(f, s, now) for s in f.skus]
    assert [r.product for r in records] == ["windows", "office", "office"]
    assert records[0].kms_host == f"{KMS}:1688"
    assert records[0].expires == datetime(2026, 4, 11, tzinfo=UTC)
    assert records[2].days_left is None and records[2].expires is None
    assert records[0].cmid == "cmid-1"
    out = summarise_facts(f, records, [], ["C:\\x\\OSPP.VBS"], renew_below_days=120)
    assert out["kmsfleet_office_versions"] == [2016]
    assert out["kmsfleet_office_volume_versions"] == [2016]
    assert out["kmsfleet_expiring"] == [records[0].name]
    assert out["kmsfleet_ospp_path"] == "C:\\x\\OSPP.VBS"
    assert out["kmsfleet_windows"]["kms_client"] is True
    server = facts(win(family="ServerStandard"), os=S19)
    assert licence_record(server, server.skus[0], now).product == "server"


def test_verdict_picks_failed_results_only() -> None:
    results = [{}, {"failed": False}, {"failed": True, "skipped": True}, {"failed": True, "msg": "x"}, "junk"]
    assert failures(results) == [{"failed": True, "msg": "x"}]


# ---------------------------------------------------------------------------------------------- audit table


def _task(module: str, status: TS, **kw: object) -> HostTaskResult:
    return HostTaskResult(host="h", play="p", task=module, module=module, status=status, **kw)  # type: ignore[arg-type]


def test_audit_rows_from_results() -> None:
    win_rec = LicenceRecord("windows", "Windows(R), Education edition", "Volume:GVLK", "OOBGrace", 2, 30, cmid="C1")
    off_rec = LicenceRecord("office", "Office 16, Office16HomeBusinessR_Retail edition", "Retail", "Licensed", 1)
    plan = [{"action": "set_kms_host", "label": "the licensing service", "value": KMS}, {"action": "activate"}]
    tasks = (
        _task("windows_kms", TS.CHANGED, data={"plan": plan}),
        _task("office_kms", TS.FAILED, diagnosis="KF_OEM_OFFICE", error_code=0xC004F017),
    )
    hosts = (
        HostResult("pc1", HostStatus.FAILED, tasks=tasks, licences=(win_rec, off_rec)),
        HostResult("pc2", HostStatus.UNREACHABLE, msg="refused"),
        HostResult("pc3", HostStatus.OK, licences=(win_rec,)),
    )
    result = RunResult(RunInfo("r", "audit.yml", ("inv",), check=True), hosts)
    rows = audit_rows(result, "en")
    assert [(r.host, r.product) for r in rows] == [
        ("pc1", "windows"),
        ("pc1", "office"),
        ("pc2", ""),
        ("pc3", "windows"),
    ]
    assert rows[0].action == f"set KMS host {KMS}, activate"
    assert rows[1].problem and "0xC004F017" in rows[1].action
    assert rows[2].problem
    zh = audit_rows(result, "zh-TW")
    assert zh[0].action == f"設定 KMS 主機 {KMS}, 啟用"
    assert cloned_groups(result) == [["pc1", "pc3"]]


def test_audit_and_demo_texts_exist_in_both_languages_with_the_same_placeholders() -> None:
    import string

    from orchestrator.cli.licensing_texts import TEXTS

    def fields(text: str) -> set[str]:
        return {f for _, f, _, _ in string.Formatter().parse(text) if f}

    for key, entry in TEXTS.items():
        assert set(entry) == {"en", "zh-TW"}, key
        assert fields(entry["en"]) == fields(entry["zh-TW"]), key


@pytest.mark.parametrize(
    "name",
    [
        "site.yml",
        "windows.yml",
        "winsvr.yml",
        "office2013.yml",
        "office2016.yml",
        "office2019.yml",
        "sqlsvr.yml",
        "audit.yml",
        "seed-procedure.yml",
    ],
)
def test_bundled_playbooks_load_and_validate(name: str) -> None:
    """Every bundled playbook parses, validates its module arguments and compiles (no PC is contacted)."""
    from orchestrator.api import load_plan, resolve_playbook

    path = resolve_playbook(name)
    assert path.read_text(encoding="utf-8").startswith(f"# {name}")  # the header comment explains its use
    plan = load_plan(path)
    assert len(plan.plays) == 1  # one play: with the free strategy no PC waits for another
    audit = load_plan(resolve_playbook("audit.yml")).plays[0]
    assert audit.check_mode is True  # the audit changes nothing, even without --check
