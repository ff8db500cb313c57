"""WinRS command lines on a simulated PC: cmd.exe semantics, slmgr.vbs, ospp.vbs, w32tm, tzutil, reg, PowerShell.
Commands act on the same state WMI shows; the KMS host runs on real loopback TCP."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from orchestrator.lab.addresses import Claim
from orchestrator.lab.kms import KmsHost
from orchestrator.lab.machine import Machine, build_machine
from orchestrator.lab.provider import CommandOutcome, ShellContext
from orchestrator.lab.spec import parse_spec, resolve
from orchestrator.lab.world import LabWorld
from orchestrator.transport import clixml

T = TypeVar("T")
SLMGR = "cscript //nologo C:\\Windows\\System32\\slmgr.vbs"
OSPP_X86 = 'cscript //nologo "C:\\Program Files (x86)\\Microsoft Office\\Office16\\OSPP.VBS"'
OSPP_X64 = 'cscript //nologo "C:\\Program Files\\Microsoft Office\\Office16\\OSPP.VBS"'
SEP = "---------------------------------------"


@dataclass
class Out:
    stdout: str
    stderr: str
    rc: int
    outcome: CommandOutcome


def make(
    block: Claim, hosts: list[dict[str, Any]], kms: dict[str, Any] | None = None, **defaults: Any
) -> tuple[LabWorld, dict[str, Machine]]:
    data: dict[str, Any] = {"room": "r", "subnet": f"{block.prefix}.1", "hosts": hosts, "defaults": defaults}
    if kms is not None:
        data["kms"] = kms
    world = LabWorld(resolve(parse_spec(data)))
    return world, {cfg.name: build_machine(cfg, world) for cfg in world.resolved.hosts}


async def sh(m: Machine, line: str, *, args: tuple[str, ...] = (), stdin: bytes = b"", codepage: int = 437) -> Out:
    shell = ShellContext(user=m.config.user, codepage=codepage)
    prepared = m.prepare(line, list(args), shell)
    outcome = await m.run(prepared, stdin, shell)
    encoding = "utf-8" if codepage == 65001 else f"cp{codepage}"
    return Out(outcome.stdout.decode(encoding), outcome.stderr.decode(encoding), outcome.exit_code, outcome)


def run(m: Machine, line: str, **kw: Any) -> Out:
    return asyncio.run(sh(m, line, **kw))


def with_kms(world: LabWorld, body: Callable[[KmsHost], Awaitable[T]]) -> T:
    async def main() -> T:
        host = KmsHost(world)
        await host.start()
        try:
            return await body(host)
        finally:
            await host.stop()

    return asyncio.run(main())


def windows_status(m: Machine) -> tuple[int, int]:
    row = m.wql(
        "SELECT LicenseStatus, GracePeriodRemaining FROM SoftwareLicensingProduct "
        "WHERE ApplicationID = '55c92734-d682-4d71-983e-d6ec3f16059f' AND PartialProductKey <> NULL"
    )[0]
    return int(str(row.get("LicenseStatus"))), int(str(row.get("GracePeriodRemaining")))


@pytest.fixture
def lab(lab_block: Claim) -> tuple[LabWorld, dict[str, Machine]]:
    return make(
        lab_block,
        [
            {"name": "pc01"},
            {"name": "user", "admin": False},
            {"name": "w7", "os": "Windows 7 Enterprise", "office": {"version": 2016, "bitness": "x86"}},
            {"name": "oem", "office": {"version": 2016, "bitness": "x64", "channel": "oem", "state": "licensed"}},
            {"name": "sql", "sql": "2019 Standard", "office": "none"},
            {"name": "o19", "office": {"version": 2019, "bitness": "x64"}},
        ],
        office={"version": 2016, "bitness": "x86"},
    )


# -- cmd.exe ---------------------------------------------------------------------------------------------------


def test_recorded_winrs_exchanges_are_reproduced_byte_for_byte(lab: tuple[LabWorld, dict[str, Machine]]) -> None:
    pc = lab[1]["pc01"]
    hi = run(pc, "cmd.exe", args=("/c", "echo", "hi"))  # pypsrp test_winrs_standard.yml
    assert (hi.outcome.stdout, hi.outcome.stderr, hi.rc) == (b"hi\r\n", b"", 0)
    rc1 = run(pc, "cmd.exe", args=("/c echo out && echo err>&2 && exit 1",))  # test_winrs_stderr_rc.yml
    assert (rc1.outcome.stdout, rc1.outcome.stderr, rc1.rc) == (b"out \r\n", b"err \r\n", 1)
    abc = run(pc, "echo abc")  # test_client_execute_cmd.yml
    assert abc.outcome.stdout == b"abc\r\n"


def test_chains_redirection_variables_and_unknown_commands(lab: tuple[LabWorld, dict[str, Machine]]) -> None:
    pc = lab[1]["pc01"]
    unknown = run(pc, "foo /bar")
    assert (
        unknown.stderr
        == "'foo' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"
    )
    assert (unknown.stdout, unknown.rc) == ("", 1)
    assert run(pc, "foo || echo fallback").stdout == "fallback\r\n"
    assert run(pc, "foo && echo never").stdout == ""
    assert run(pc, "echo one & echo two").stdout == "one \r\ntwo\r\n"
    assert run(pc, "echo %COMPUTERNAME%-%USERNAME%-%NOPE%").stdout == "PC01-administrator-%NOPE%\r\n"
    assert run(pc, "echo hidden >nul & echo shown").stdout == "shown\r\n"
    merged = run(pc, "foo 2>&1")
    assert merged.stdout.startswith("'foo' is not recognized") and merged.stderr == ""
    assert run(pc, "echo.").stdout == "\r\n"
    assert run(pc, "echo").stdout == "ECHO is on.\r\n"
    assert run(pc, "exit 7").rc == 7
    assert run(pc, "ver").stdout == "\r\nMicrosoft Windows [Version 10.0.19042.1052]\r\n"
    assert run(pc, "hostname").stdout == "PC01\r\n"
    assert run(pc, "whoami").stdout == "pc01\\administrator\r\n"
    ipconfig = run(pc, "ipconfig /all").stdout
    assert f"IPv4 Address. . . . . . . . . . . : {pc.address}(Preferred)" in ipconfig
    assert pc.config.mac.replace(":", "-") in ipconfig
    assert run(pc, 'cmd /c "echo quoted"').stdout == "quoted\r\n"
    assert run(pc, "hostname | findstr /i pc01").stdout == "PC01\r\n"
    assert run(pc, "net session >nul 2>&1").rc == 0
    assert run(lab[1]["user"], "net session >nul 2>&1").rc == 2


def test_output_is_encoded_in_the_shell_codepage(lab: tuple[LabWorld, dict[str, Machine]]) -> None:
    pc = lab[1]["pc01"]
    utf8 = asyncio.run(sh(pc, "echo 台北", codepage=65001))
    assert utf8.outcome.stdout == "台北\r\n".encode()
    oem = asyncio.run(sh(pc, "echo café", codepage=437))
    assert oem.outcome.stdout == "café\r\n".encode("cp437")
    assert asyncio.run(sh(pc, "echo 台北", codepage=437)).outcome.stdout == b"??\r\n"


# -- slmgr.vbs ----------------------------------------------------------------------------------------------


def test_seed_procedure_skms_ato_dlv(lab: tuple[LabWorld, dict[str, Machine]]) -> None:
    world, pcs = lab
    pc = pcs["pc01"]
    address, port = world.kms_endpoint()

    async def body(host: KmsHost) -> list[Out]:
        return [
            await sh(pc, f"{SLMGR} -skms {address}:{port}"),
            await sh(pc, f"{SLMGR} -ato"),
            await sh(pc, f"{SLMGR} -dlv"),
            await sh(pc, f"{SLMGR} /dli"),
            await sh(pc, f"{SLMGR} /xpr"),
        ]

    skms, ato, dlv, dli, xpr = with_kms(world, body)
    assert skms.stdout == f"Key Management Service machine name set to {address}:{port} successfully.\r\n\r\n"
    assert skms.rc == 0
    assert ato.stdout == (
        "Activating Windows(R), Education edition (e0c42288-980c-4788-a014-c080d2e1926e) ...\r\n"
        "Product activated successfully.\r\n\r\n"
    )
    assert windows_status(pc) == (1, 259200)
    lines = dlv.stdout.split("\r\n")
    assert lines[0] == "Software licensing service version: 10.0.19041.1052"
    for expected in (
        "Name: Windows(R), Education edition",
        "Description: Windows(R) Operating System, VOLUME_KMSCLIENT channel",
        "Activation ID: e0c42288-980c-4788-a014-c080d2e1926e",
        "Application ID: 55c92734-d682-4d71-983e-d6ec3f16059f",
        "Product Key Channel: Volume:GVLK",
        "Partial Product Key: VCFB2",
        "License Status: Licensed",
        "Volume activation expiration: 259200 minute(s) (180 day(s))",
        "Remaining Windows rearm count: 1001",
        "Configured Activation Type: All",
        "Key Management Service client information",
        f"    Client Machine ID (CMID): {pc.cmid}",
        f"    Registered KMS machine name: {address}:{port}",
        f"    KMS machine IP address: {address}",
        f"    KMS machine extended PID: {world.kms_host_epid}",
        "    Activation interval: 120 minutes",
        "    Renewal interval: 10080 minutes",
        "    KMS host caching is enabled",
    ):
        assert expected in lines, expected
    assert "Office 16" not in dlv.stdout  # /dlv without an ID shows the primary Windows SKU only
    assert "Activation ID" not in dli.stdout and "License Status: Licensed" in dli.stdout
    assert xpr.stdout.startswith("Windows(R), Education edition:\r\n    Volume activation will expire ")


def test_slmgr_failures_print_the_hresult_and_exit_with_it(lab: tuple[LabWorld, dict[str, Machine]]) -> None:
    world, pcs = lab

    async def body(host: KmsHost) -> list[Out]:
        return [
            await sh(pcs["pc01"], f"{SLMGR} /skms 163.30.0.166"),
            await sh(pcs["pc01"], f"{SLMGR} /ato"),
            await sh(pcs["user"], f"{SLMGR} /skms 127.0.0.2:1688"),
            await sh(pcs["user"], f"{SLMGR} /ipk NW6C2-QMPVW-D7KKK-3GKT6-VCFB2"),
            await sh(pcs["pc01"], f"{SLMGR} /ipk NPPR9-FWDCX-D2C8J-H872K-2YT43"),
            await sh(pcs["oem"], f"{SLMGR} /skms 127.0.0.2:xyz"),
        ]

    skms, ato, denied, denied_ipk, wrong_edition, bad_port = with_kms(world, body)
    assert skms.stdout == "Key Management Service machine name set to 163.30.0.166 successfully.\r\n\r\n"
    assert ato.stdout == (
        "Activating Windows(R), Education edition (e0c42288-980c-4788-a014-c080d2e1926e) ...\r\n"
        "Error: 0xC004F074 The Software Licensing Service reported that the computer could not be activated. No Key "
        "Management Service (KMS) could be contacted. Please see the Application Event Log for additional "
        "information.\r\n\r\n"
    )
    assert ato.rc == 0xC004F074
    assert denied.stdout == "Error: 0x80070005 Access denied: the requested action requires elevated privileges\r\n\r\n"
    assert denied.rc == denied_ipk.rc == 0x80070005
    assert (
        wrong_edition.stdout
        == "Error: 0xC004F050 The Software Licensing Service reported that the product key is invalid\r\n\r\n"
    )
    assert bad_port.stdout == "Error: 13 Type mismatch: 'CLng' (Microsoft VBScript runtime error)\r\n\r\n"
    assert bad_port.rc == 13
    assert (
        pcs["oem"].get_instance("SoftwareLicensingService", {}).get("KeyManagementServiceMachine") is None
    )  # restored


def test_slmgr_codes_without_a_text_point_to_slui(lab_block: Claim) -> None:
    world, pcs = make(
        lab_block, [{"name": "home", "os": "Windows 10 Home", "windows_channel": "retail", "kms_host": "lab"}]
    )
    out = with_kms(world, lambda host: sh(pcs["home"], f"{SLMGR} /ato"))
    assert out.stdout.endswith(
        "Error: 0xC004F057 On a computer running Microsoft Windows non-core edition, run 'slui.exe 0x2a 0xC004F057' "
        "to display the error text.\r\n\r\n"
    )
    assert out.rc == 0xC004F057


def test_ipk_upk_ckms_and_product_not_found(lab: tuple[LabWorld, dict[str, Machine]]) -> None:
    pc = lab[1]["pc01"]
    assert run(pc, f"{SLMGR} /ipk W269N-WFGWX-YVC9B-4J6C9-T83GX").rc == 0xC004F050  # Pro key on Education
    ipk = run(pc, f"{SLMGR} /ipk nw6c2-qmpvw-d7kkk-3gkt6-vcfb2")
    assert ipk.stdout == "Installed product key nw6c2-qmpvw-d7kkk-3gkt6-vcfb2 successfully.\r\n\r\n"
    assert run(pc, f"{SLMGR} /upk").stdout == "Uninstalled product key successfully.\r\n\r\n"
    assert run(pc, f"{SLMGR} /upk").stdout == "Error: product key not found.\r\n\r\n"
    ato = run(pc, f"{SLMGR} /ato")
    assert (ato.stdout, ato.rc) == ("Error: product not found.\r\n\r\n", 0)
    assert run(pc, f"{SLMGR} /dli").stdout == "Error: product key not found.\r\n\r\n"
    run(pc, f"{SLMGR} /skms 127.0.0.2:1700")
    assert run(pc, f"{SLMGR} /ckms").stdout == "Key Management Service machine name cleared successfully.\r\n\r\n"
    svc = pc.get_instance("SoftwareLicensingService", {})
    assert (svc.get("KeyManagementServiceMachine"), svc.get("KeyManagementServicePort")) == (None, 0)


def test_slmgr_usage_and_remote_computer(lab: tuple[LabWorld, dict[str, Machine]]) -> None:
    pc = lab[1]["pc01"]
    bad = run(pc, f"{SLMGR} /nonsense")
    assert bad.stdout.startswith("Unrecognized option: /nonsense\r\n\r\nWindows Software Licensing Management Tool\r\n")
    assert bad.rc == 1
    missing = run(pc, f"{SLMGR} /ipk")
    assert missing.stdout.startswith("\r\nError: option ipk needs <Product Key>\r\n") and missing.rc == 1
    assert run(pc, SLMGR).stdout.startswith("Invalid combination of command parameters.")
    remote = run(pc, f"{SLMGR} otherpc /dlv")
    assert (
        remote.stdout
        == "Error 0x800706BA occurred in connecting to server otherpc. The RPC server is unavailable\r\n\r\n"
    )
    assert remote.rc == 0x800706BA


def test_wscript_host_and_missing_scripts(lab: tuple[LabWorld, dict[str, Machine]]) -> None:
    pc = lab[1]["pc01"]
    for line in ("slmgr.vbs /ato", "slmgr /dlv", "wscript C:\\Windows\\System32\\slmgr.vbs /dlv"):
        out = run(pc, line)
        assert (out.stdout, out.outcome.duration_s) == ("", 86400.0), line  # a dialog nobody can close
    relative = run(pc, "cscript //nologo slmgr.vbs /dlv")  # WinRS starts in the user's profile
    assert relative.stderr == 'Input Error: Can not find script file "C:\\Users\\administrator\\slmgr.vbs".\r\n'
    assert relative.rc == 1
    banner = run(pc, "cscript C:\\Windows\\System32\\slmgr.vbs /skhc")
    assert banner.stdout == (
        "Microsoft (R) Windows Script Host Version 5.812\r\n"
        "Copyright (C) Microsoft Corporation. All rights reserved.\r\n"
        "\r\nKMS host caching is enabled\r\n\r\n"
    )


# -- ospp.vbs ---------------------------------------------------------------------------------------------------


def test_ospp_seed_procedure(lab: tuple[LabWorld, dict[str, Machine]]) -> None:
    world, pcs = lab
    pc = pcs["pc01"]
    address, _ = world.kms_endpoint()

    async def body(host: KmsHost) -> list[Out]:
        return [
            await sh(pc, f"{OSPP_X86} /sethst:{address}"),
            await sh(pc, f"{OSPP_X86} /act"),
            await sh(pc, f"{OSPP_X86} /dstatus"),
            await sh(pc, f"{OSPP_X86} /dcmid"),
        ]

    sethst, act, dstatus, dcmid = with_kms(world, body)
    head = f"---Processing--------------------------\r\n{SEP}\r\n"
    tail = f"{SEP}\r\n---Exiting-----------------------------\r\n"
    assert sethst.stdout == head + "Successfully applied setting.\r\n" + tail
    assert (
        act.stdout
        == head
        + (
            "Installed product key detected - attempting to activate the following product:\r\n"
            "SKU ID: d450596f-894d-49e0-966a-fd39ed4c4c64\r\n"
            "LICENSE NAME: Office 16, Office16ProPlusVL_KMS_Client edition\r\n"
            "LICENSE DESCRIPTION: Office 16, VOLUME_KMSCLIENT channel\r\n"
            "Last 5 characters of installed product key: WFG99\r\n"
            "<Product activation successful>\r\n"
            f"{SEP}\r\n"
        )
        + tail
    )
    assert act.rc == 0
    body_lines = dstatus.stdout.split("\r\n")
    assert "LICENSE STATUS:  ---LICENSED--- " in body_lines
    assert "ERROR CODE: 0x4004F040 (for information purposes only as the status is licensed)" in body_lines
    assert "REMAINING GRACE: 180 days  (259200 minute(s) before expiring)" in body_lines
    assert f"\tKMS machine registry override defined: {address}:1688" in body_lines
    assert "\tKMS host caching: Enabled" in body_lines
    assert dcmid.stdout == head + f"Client Machine ID (CMID): {pc.cmid}\r\n" + tail


def test_ospp_failures_always_exit_zero(lab: tuple[LabWorld, dict[str, Machine]]) -> None:
    world, pcs = lab

    async def body(host: KmsHost) -> list[Out]:
        return [
            await sh(pcs["pc01"], f"{OSPP_X86} /sethst:163.30.0.166"),
            await sh(pcs["pc01"], f"{OSPP_X86} /act"),
            await sh(pcs["oem"], f"{OSPP_X64} /sethst:127.0.0.2"),
            await sh(pcs["oem"], f"{OSPP_X64} /inpkey:XQNVK-8JYDB-WJ9W3-YJ8YR-WFG99"),
            await sh(pcs["user"], f"{OSPP_X86} /act"),
        ]

    sethst, act, oem_sethst, oem_inpkey, denied = with_kms(world, body)
    assert sethst.rc == act.rc == oem_sethst.rc == denied.rc == 0
    assert "ERROR CODE: 0xC004F074\r\n" in act.stdout
    assert "To view the activation event history run: cscript OSPP.VBS /dhistorykms\r\n" in act.stdout
    assert "No Office KMS licenses were found on the system.\r\n" in oem_sethst.stdout
    assert (
        "ERROR CODE: 0xC004F017\r\n"
        "ERROR DESCRIPTION: The Software Licensing Service reported that the license is not installed.\r\n"
        in oem_inpkey.stdout
    )
    assert (
        "ERROR CODE: 0x80070005\r\nERROR DESCRIPTION: Run the following: cscript ospp.vbs /ddescr:0x80070005\r\n"
        in denied.stdout
    )


def test_ospp_paths_follow_office_version_and_bitness(lab: tuple[LabWorld, dict[str, Machine]]) -> None:
    pcs = lab[1]
    wrong = run(pcs["pc01"], f"{OSPP_X64} /dstatus")
    assert (
        wrong.stderr
        == 'Input Error: Can not find script file "C:\\Program Files\\Microsoft Office\\Office16\\OSPP.VBS".\r\n'
    )
    assert wrong.rc == 1
    o19 = run(pcs["o19"], f"{OSPP_X64} /dstatus")
    assert "LICENSE NAME: Office 19, Office19ProPlus2019VL_KMS_Client_AE edition" in o19.stdout
    assert run(pcs["sql"], f"{OSPP_X86} /dstatus").rc == 1  # no Office at all
    cd = run(
        pcs["pc01"], 'cd /d "C:\\Program Files (x86)\\Microsoft Office\\Office16" && cscript //nologo ospp.vbs /dstatus'
    )
    assert "Office16ProPlusVL_KMS_Client" in cd.stdout
    hang = run(pcs["pc01"], f"{OSPP_X86} /nonsense")
    assert hang.outcome.duration_s == 86400.0


def test_windows7_office_uses_ospp_with_its_own_cmid(lab: tuple[LabWorld, dict[str, Machine]]) -> None:
    world, pcs = lab
    w7 = pcs["w7"]
    address, _ = world.kms_endpoint()

    async def body(host: KmsHost) -> list[Out]:
        return [
            await sh(w7, f"{OSPP_X86} /sethst:{address}"),
            await sh(w7, f"{OSPP_X86} /act"),
            await sh(w7, f"{OSPP_X86} /dcmid"),
        ]

    _sethst, act, dcmid = with_kms(world, body)
    assert "<Product activation successful>" in act.stdout
    ospp_cmid = w7.get_instance("OfficeSoftwareProtectionService", {}).get("ClientMachineID")
    assert f"Client Machine ID (CMID): {ospp_cmid}" in dcmid.stdout and ospp_cmid != w7.cmid
    rows = w7.wql(
        "SELECT LicenseStatus, KeyManagementServiceMachine FROM OfficeSoftwareProtectionProduct "
        "WHERE PartialProductKey <> NULL"
    )
    assert [(r.get("LicenseStatus"), r.get("KeyManagementServiceMachine")) for r in rows] == [(1, address)]
    assert run(w7, "ver").stdout == "\r\nMicrosoft Windows [Version 6.1.7601]\r\n"


def test_interactive_cmd_banner_and_lines_per_windows_build(lab_block: Claim) -> None:
    """An interactive ``cmd`` fed lines on stdin: the banner of the PC's cmd.exe build, each line echoed after the
    prompt with its output and a blank line, ``exit`` ending it with no blank line after (pywinrm's recording of
    Windows 10.0.17763.107; public console transcripts for the other builds)."""
    _world, pcs = make(
        lab_block,
        [
            {"name": "w10"},
            {"name": "w7", "os": "Windows 7 Professional"},
            {"name": "s19", "os": "Windows Server 2019 Standard"},
        ],
    )
    stdin = b"echo hello world && exit\r\n"
    banners = {
        "w10": "Microsoft Windows [Version 10.0.19042.1052]\r\n(c) Microsoft Corporation. All rights reserved.",
        "w7": "Microsoft Windows [Version 6.1.7601]\r\nCopyright (c) 2009 Microsoft Corporation.  All rights reserved.",
        "s19": "Microsoft Windows [Version 10.0.17763.1518]\r\n(c) 2018 Microsoft Corporation. All rights reserved.",
    }
    for name, banner in banners.items():
        out = run(pcs[name], "cmd", stdin=stdin)
        home = "C:\\Users\\" + pcs[name].config.user
        assert out.stdout == f"{banner}\r\n\r\n{home}>echo hello world && exit\r\nhello world \r\n", name
        assert out.rc == 0
    two = run(pcs["w10"], "cmd", stdin=b"ver\r\n")
    assert two.stdout.endswith(
        "\r\nMicrosoft Windows [Version 10.0.19042.1052]\r\n\r\nC:\\Users\\" + pcs["w10"].config.user + ">"
    )


# -- time and registry ---------------------------------------------------------------------------------------


def test_w32tm_and_tzutil(lab_block: Claim) -> None:
    world, pcs = make(
        lab_block,
        [
            {"name": "tz", "timezone": "Pacific Standard Time", "clock_skew_minutes": 960, "kms_host": "lab"},
            {"name": "user", "admin": False},
        ],
    )
    pc = pcs["tz"]
    assert run(pc, "tzutil /g").stdout == "Pacific Standard Time"  # no line break, like tzutil
    assert "Source: Local CMOS Clock" in run(pc, "w32tm /query /status").stdout

    async def body(host: KmsHost) -> list[Out]:
        return [
            await sh(pc, f"{SLMGR} /ato"),
            await sh(pc, 'tzutil /s "Taipei Standard Time"'),
            await sh(pc, "w32tm /resync"),
            await sh(pc, f"{SLMGR} /ato"),
        ]

    skewed, tz, resync, ato = with_kms(world, body)
    assert skewed.rc == 0xC004F06C
    assert (tz.stdout, tz.rc) == ("", 0)
    assert resync.stdout == "Sending resync command to local computer\r\nThe command completed successfully.\r\n"
    assert ato.rc == 0
    assert pc.snapshot()["timezone"] == "Taipei Standard Time" and pc.snapshot()["clock_skew_minutes"] == 0
    status = run(pc, "w32tm /query /status").stdout
    assert "Source: time.windows.com,0x9" in status and "Leap Indicator: 0(no warning)" in status
    user = pcs["user"]
    denied = run(user, "w32tm /resync")
    assert denied.stdout.endswith("The following error occurred: Access is denied. (0x80070005)\r\n")
    assert denied.rc == 0x80070005
    assert run(user, "tzutil /s UTC").rc == 0  # standard users hold SeTimeZonePrivilege
    assert run(user, "tzutil /s Mars").rc != 0


def test_reg_query_sql_server_keys(lab: tuple[LabWorld, dict[str, Machine]]) -> None:
    pcs = lab[1]
    sql = pcs["sql"]
    base = "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Microsoft SQL Server"
    inst = run(sql, 'reg query "HKLM\\SOFTWARE\\Microsoft\\Microsoft SQL Server" /v InstalledInstances')
    assert inst.stdout == f"\r\n{base}\r\n    InstalledInstances    REG_MULTI_SZ    MSSQLSERVER\r\n\r\n"
    names = run(sql, 'reg query "HKLM\\SOFTWARE\\Microsoft\\Microsoft SQL Server\\Instance Names\\SQL"')
    assert names.stdout == f"\r\n{base}\\Instance Names\\SQL\r\n    MSSQLSERVER    REG_SZ    MSSQL15.MSSQLSERVER\r\n"
    setup = run(
        sql, 'reg query "HKLM\\SOFTWARE\\Microsoft\\Microsoft SQL Server\\MSSQL15.MSSQLSERVER\\Setup" /v Edition'
    )
    assert "    Edition    REG_SZ    Standard Edition\r\n" in setup.stdout
    none = run(pcs["pc01"], 'reg query "HKLM\\SOFTWARE\\Microsoft\\Microsoft SQL Server" /v InstalledInstances')
    assert (none.stdout, none.stderr, none.rc) == (
        "",
        "ERROR: The system was unable to find the specified registry key or value.\r\n",
        1,
    )
    assert run(pcs["pc01"], "reg").rc == 1
    kms = run(
        pcs["pc01"],
        f"{SLMGR} /skms 127.0.0.2:1700 & "
        'reg query "HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\SoftwareProtectionPlatform"',
    )
    assert "    KeyManagementServiceName    REG_SZ    127.0.0.2\r\n" in kms.stdout
    assert "    KeyManagementServicePort    REG_SZ    1700\r\n" in kms.stdout
    tz = run(
        pcs["pc01"], 'reg query "HKLM\\SYSTEM\\CurrentControlSet\\Control\\TimeZoneInformation" /v TimeZoneKeyName'
    )
    assert "TimeZoneKeyName    REG_SZ    Taipei Standard Time" in tz.stdout


# -- PowerShell --------------------------------------------------------------------------------------------------


def encoded(script: str) -> str:
    return base64.b64encode(script.encode("utf-16-le")).decode()


def test_powershell_encoded_wrappers_propagate_exit_codes(lab: tuple[LabWorld, dict[str, Machine]]) -> None:
    world, pcs = lab
    pc = pcs["pc01"]
    ansible_raw = (
        "Set-StrictMode -Version Latest\n"
        "& cscript //nologo C:\\Windows\\System32\\slmgr.vbs /ato\n"
        "If (-not $?) { If (Get-Variable LASTEXITCODE -ErrorAction SilentlyContinue) "
        "{ exit $LASTEXITCODE } Else { exit 1 } }"
    )
    line = f"PowerShell -NoProfile -NonInteractive -ExecutionPolicy Unrestricted -EncodedCommand {encoded(ansible_raw)}"

    async def body(host: KmsHost) -> list[Out]:
        failed = await sh(pc, line)  # no KMS host set: DNS name does not exist
        await sh(pc, f"{SLMGR} /skms {world.kms_address}")
        return [failed, await sh(pc, line)]

    failed, ok = with_kms(world, body)
    assert failed.rc == 0x8007232B
    assert "Error: 0x8007232B DNS name does not exist" in failed.stdout
    assert ok.rc == 0 and "Product activated successfully." in ok.stdout


def test_powershell_command_forms(lab: tuple[LabWorld, dict[str, Machine]]) -> None:
    pc = lab[1]["pc01"]
    host = run(pc, "powershell.exe", args=("Write-Host", "hi"))
    assert (host.outcome.stdout, host.rc) == (b"hi\n", 0)  # recorded: Write-Host ends with LF only
    script = "$x = 'a b'; Write-Output $x; 'quoted'; cmd /c exit 3; $LASTEXITCODE; exit $LASTEXITCODE"
    out = run(pc, f'powershell -NoProfile -Command "{script}"')
    assert (out.stdout, out.rc) == ("a b\r\nquoted\r\n3\r\n", 3)
    missing = run(pc, f"powershell -EncodedCommand {encoded('Get-Nothing')}")
    assert missing.rc == 1
    assert missing.stderr.startswith(
        '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/'
    )
    not_found = "Get-Nothing : The term 'Get-Nothing' is not recognized as the name of a cmdlet"
    assert clixml.decode(missing.stderr).startswith(not_found)
    assert run(pc, "powershell -Command Get-Nothing").stderr.startswith(not_found)  # plain without -enc
    write_error_script = encoded('Write-Error "Error"')
    write_error = run(pc, f"powershell -NoProfile -NonInteractive -EncodedCommand {write_error_script}")
    assert write_error.rc == 1  # pywinrm's recording of Windows: get_ps_output_response.xml
    assert write_error.stderr == (
        '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
        '<S S="Error">Write-Error "Error" : Error_x000D__x000A_</S>'
        '<S S="Error">    + CategoryInfo          : NotSpecified: (:) [Write-Error], WriteErrorException'
        "_x000D__x000A_</S>"
        '<S S="Error">    + FullyQualifiedErrorId : Microsoft.PowerShell.Commands.WriteErrorException_x000D__x000A_</S>'
        '<S S="Error"> _x000D__x000A_</S></Objs>'
    )
    tz = run(pc, f"powershell -enc {encoded('tzutil /g; hostname')}")
    assert tz.stdout == "Taipei Standard TimePC01\r\n"
    prepared = pc.prepare("powershell", ["-NoProfile", "-"], ShellContext(user="administrator"))
    assert prepared.needs_stdin
    assert not pc.prepare("powershell", ["-Command", "hostname"], ShellContext(user="administrator")).needs_stdin
    stdin = run(pc, "powershell -", stdin=b'Write-Host "output 1";\r\nWrite-Host "output 2";\r\n')
    assert stdin.outcome.stdout == b"output 1\noutput 2\n"  # recorded: test_winrs_send.yml


def test_powershell_test_netconnection(lab: tuple[LabWorld, dict[str, Machine]]) -> None:
    world, pcs = lab
    pc = pcs["pc01"]
    address, port = world.kms_endpoint()

    def tnc(host: str, tcp_port: int) -> str:
        test = f"Test-NetConnection -ComputerName {host} -Port {tcp_port} -InformationLevel Quiet"
        return f'powershell -NoProfile -NonInteractive -Command "{test}"'

    async def body(kms: KmsHost) -> list[Out]:
        up = await sh(pc, tnc(address, port))
        await kms.set_up(False)
        down = await sh(pc, tnc(address, port))
        await kms.set_up(True)
        return [
            up,
            down,
            await sh(pc, tnc("163.30.0.166", 1688)),
            await sh(pc, f"powershell Test-NetConnection {address} -Port {port}"),
        ]

    up, down, outside, detailed = with_kms(world, body)
    assert up.stdout == "True\r\n"
    assert down.stdout == "False\r\n"
    assert outside.stdout == "False\r\n"
    assert "TcpTestSucceeded : True" in detailed.stdout and f"RemotePort       : {port}" in detailed.stdout
