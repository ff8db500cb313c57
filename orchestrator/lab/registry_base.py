"""The registry of a simulated PC as its state implies it before any write (Windows version keys, licensing
values, installed Office and SQL Server keys …); ``lab.registry`` replays the writes over it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.lab.machine import Machine


@dataclass
class RegKey:
    values: list[tuple[str, str, str]] = field(default_factory=list)  # name, type, data (display form)
    subkeys: dict[str, RegKey] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # lower -> display name of subkeys

    def child(self, name: str) -> RegKey:
        low = name.lower()
        if low not in self.subkeys:
            self.subkeys[low] = RegKey()
            self.names[low] = name
        return self.subkeys[low]

    def path(self, path: str) -> RegKey:
        key = self
        for part in [p for p in path.split("\\") if p]:
            key = key.child(part)
        return key


def base_registry(m: Machine) -> RegKey:
    """The registry as the PC's state implies it, before any write."""
    root = RegKey()
    hklm = root.child("HKEY_LOCAL_MACHINE")
    cv = _current_version(m, hklm)
    _licensing(m, hklm, cv)
    _time_zone(m, hklm)
    hklm.path("SYSTEM\\CurrentControlSet\\Control\\ComputerName\\ComputerName").values.append(
        ("ComputerName", "REG_SZ", m.computer_name)
    )
    _office(m, hklm)
    _sql_server(m, hklm)
    root.child("HKEY_CURRENT_USER").path("Software\\Microsoft\\Windows\\CurrentVersion")
    return root


def _current_version(m: Machine, hklm: RegKey) -> RegKey:
    """HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion: the Windows version and edition."""
    os = m.os
    cv = hklm.path("SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion")
    cv.values += [
        ("SystemRoot", "REG_SZ", "C:\\Windows" if os.is_win7 else "C:\\WINDOWS"),
        ("BuildLab", "REG_SZ", f"{os.build}.vb_release.191206-1406"),
        ("CurrentBuild", "REG_SZ", os.build),
        ("CurrentBuildNumber", "REG_SZ", os.build),
        ("CurrentVersion", "REG_SZ", "6.1" if os.is_win7 else "6.3"),
        ("EditionID", "REG_SZ", m.config.edition_id),
        ("InstallationType", "REG_SZ", "Server" if os.product_type != 1 else "Client"),
        ("ProductName", "REG_SZ", m.config.os),
        ("RegisteredOwner", "REG_SZ", "Windows User"),
    ]
    if os.is_win7:
        cv.values.append(("CSDVersion", "REG_SZ", "Service Pack 1"))
    else:
        cv.values += [
            ("DisplayVersion", "REG_SZ", os.display_version),
            ("ReleaseId", "REG_SZ", "2009" if os.build.startswith(("19", "22")) else os.display_version),
            ("UBR", "REG_DWORD", f"0x{os.ubr:x}"),
        ]
    return cv


def _licensing(m: Machine, hklm: RegKey, cv: RegKey) -> None:
    """The SoftwareProtectionPlatform keys (and OfficeSoftwareProtectionPlatform's with OSPP): KMS host, port."""
    lic = m.licensing
    spp = cv.child("SoftwareProtectionPlatform")
    spp.values.append(("BackupProductKeyDefault", "REG_SZ", lic.windows.key or ""))
    if lic.spp.kms.machine:
        spp.values.append(("KeyManagementServiceName", "REG_SZ", lic.spp.kms.machine))
    if lic.spp.kms.port:
        spp.values.append(("KeyManagementServicePort", "REG_SZ", str(lic.spp.kms.port)))
    spp.values.append(("SkipRearm", "REG_DWORD", "0x0"))
    if lic.ospp is not None:
        ospp = hklm.path("SOFTWARE\\Microsoft\\OfficeSoftwareProtectionPlatform")
        if lic.ospp.kms.machine:
            ospp.values.append(("KeyManagementServiceName", "REG_SZ", lic.ospp.kms.machine))
        if lic.ospp.kms.port:
            ospp.values.append(("KeyManagementServicePort", "REG_SZ", str(lic.ospp.kms.port)))


def _time_zone(m: Machine, hklm: RegKey) -> None:
    tz = m.tz
    hklm.path("SYSTEM\\CurrentControlSet\\Control\\TimeZoneInformation").values += [
        ("Bias", "REG_DWORD", f"0x{(-tz.bias) & 0xFFFFFFFF:x}"),
        ("DaylightName", "REG_SZ", tz.daylight_name),
        ("DynamicDaylightTimeDisabled", "REG_DWORD", "0x0"),
        ("StandardName", "REG_SZ", tz.standard_name),
        ("TimeZoneKeyName", "REG_SZ", m.timezone),
    ]


_C2R_RELEASES = {  # ProductReleaseIds by channel: (Office 2016/2021, Office 2019)
    "volume": ("ProPlus2019Volume", "ProPlus2019Volume"),
    "retail": ("ProPlusRetail", "ProPlus2019Retail"),
    "oem": ("HomeBusinessRetail", "HomeBusiness2019Retail"),
    "subscription": ("O365ProPlusRetail", "O365ProPlusRetail"),
}


def _office(m: Machine, hklm: RegKey) -> None:
    """Office's InstallRoot, and the Click-to-Run configuration of a Click-to-Run install."""
    office = m.office_install
    if office is None:
        return
    ver = "15.0" if office.version == 2013 else "16.0"
    if office.click_to_run:
        c2r = hklm.path("SOFTWARE\\Microsoft\\Office\\ClickToRun\\Configuration")
        release = _C2R_RELEASES[office.channel][1 if office.version == 2019 else 0]
        c2r.values += [
            ("InstallationPath", "REG_SZ", "C:\\Program Files\\Microsoft Office"),
            ("Platform", "REG_SZ", office.bitness),
            ("ProductReleaseIds", "REG_SZ", release),
            ("VersionToReport", "REG_SZ", "16.0.10417.20007" if office.version == 2019 else "16.0.17928.20156"),
        ]
    wow = "WOW6432Node\\" if office.bitness == "x86" else ""
    root_key = hklm.path(f"SOFTWARE\\{wow}Microsoft\\Office\\{ver}\\Common\\InstallRoot")
    root_key.values.append(("Path", "REG_SZ", office.folder + "\\"))


def _sql_server(m: Machine, hklm: RegKey) -> None:
    """The Microsoft SQL Server keys of the installed instances."""
    instances = m.sql_instances()
    if not instances:
        return
    sql = hklm.path("SOFTWARE\\Microsoft\\Microsoft SQL Server")
    sql.values.append(("InstalledInstances", "REG_MULTI_SZ", "\\0".join(i.name for i in instances)))
    sql.child(f"{instances[0].major}0")
    names = sql.path("Instance Names\\SQL")
    for inst in instances:
        names.values.append((inst.name, "REG_SZ", inst.instance_id))
        setup = sql.path(f"{inst.instance_id}\\Setup")
        setup.values += [
            ("Collation", "REG_SZ", "Chinese_Taiwan_Stroke_CI_AS"),
            ("Edition", "REG_SZ", inst.edition),
            ("EditionType", "REG_SZ", inst.edition),
            ("Language", "REG_DWORD", "0x409"),
            ("PatchLevel", "REG_SZ", inst.version),
            ("SqlProgramDir", "REG_SZ", "C:\\Program Files\\Microsoft SQL Server\\"),
            ("SQLPath", "REG_SZ", f"C:\\Program Files\\Microsoft SQL Server\\{inst.instance_id}\\MSSQL"),
            ("Version", "REG_SZ", inst.version),
        ]
        sql.path(f"{inst.instance_id}\\MSSQLServer\\CurrentVersion").values.append(
            ("CurrentVersion", "REG_SZ", inst.version)
        )
