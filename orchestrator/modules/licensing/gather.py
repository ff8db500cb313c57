"""Reading a PC's licensing state: WQL over WS-Management (read-only; the transport may retry these), plus a
few read-only commands where WMI has no answer (Office's ospp.vbs folder, SQL Server's registry keys, the
account's token, a TCP test from the PC to the KMS host).

Every function here only reads. Queries name their properties explicitly (Windows 7 lacks the Windows 8.1+
ones such as ``ProductKeyChannel``; asking for them there is an error).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from orchestrator.modules.base import ModuleContext
from orchestrator.modules.licensing.model import (
    KmsTarget,
    LicensingFacts,
    OsInfo,
    Service,
    Sku,
    os_from_row,
    service_from_row,
    sku_from_row,
    to_int,
)
from orchestrator.transport.errors import WSManFault

_OS_QUERY = "SELECT Caption, Version, BuildNumber, ProductType, OperatingSystemSKU FROM Win32_OperatingSystem"
_SERVICE_PROPS = "Version, KeyManagementServiceMachine, KeyManagementServicePort, ClientMachineID"
_PRODUCT_PROPS = (
    "ID, ApplicationID, Name, Description, LicenseFamily, LicenseStatus, LicenseStatusReason, GracePeriodRemaining, "
    "PartialProductKey, KeyManagementServiceMachine, KeyManagementServicePort, LicenseIsAddon"
)
_KEYED = "WHERE PartialProductKey IS NOT NULL"

# ospp.vbs locations (docs/reference.md §3.2): Office15 = 2013, Office16 = 2016/2019/2021/2024; Program Files
# when Office and Windows have the same bitness, Program Files (x86) for 32-bit Office on 64-bit Windows.
OSPP_PATHS = (
    "C:\\Program Files\\Microsoft Office\\Office16\\OSPP.VBS",
    "C:\\Program Files (x86)\\Microsoft Office\\Office16\\OSPP.VBS",
    "C:\\Program Files\\Microsoft Office\\Office15\\OSPP.VBS",
    "C:\\Program Files (x86)\\Microsoft Office\\Office15\\OSPP.VBS",
)
# SIDs of the mandatory-label groups: an elevated administrator token carries High (or System).
_ELEVATED_LABELS = ("S-1-16-12288", "S-1-16-16384")
_SQL_ROOTS = (
    "HKLM\\SOFTWARE\\Microsoft\\Microsoft SQL Server",
    "HKLM\\SOFTWARE\\WOW6432Node\\Microsoft\\Microsoft SQL Server",
)
SQL_MAJOR_YEARS = {"10": "2008", "11": "2012", "12": "2014", "13": "2016", "14": "2017", "15": "2019", "16": "2022"}


def _first(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return rows[0] if rows else {}


def read_os(ctx: ModuleContext) -> OsInfo:
    return os_from_row(_first(ctx.conn.wql(_OS_QUERY)))


def read_licensing(ctx: ModuleContext, os_info: OsInfo | None = None) -> LicensingFacts:
    """Windows and Office licences with their services (SPP; OSPP on Windows 7)."""
    conn = ctx.conn
    os_info = os_info or read_os(ctx)
    product_props = _PRODUCT_PROPS if os_info.is_win7 else _PRODUCT_PROPS + ", ProductKeyChannel"
    spp = service_from_row(_first(conn.wql(f"SELECT {_SERVICE_PROPS} FROM SoftwareLicensingService")), "spp")
    skus: list[Sku] = []
    for row in conn.wql(f"SELECT {product_props} FROM SoftwareLicensingProduct {_KEYED}"):
        sku = sku_from_row(row, "spp")
        if sku is not None:
            skus.append(sku)
    ospp: Service | None = None
    if os_info.is_win7:
        # Office 2010-2016 on Windows 7 keep their licences in osppsvc (docs/reference.md §2.3). No Office: no class.
        try:
            rows = conn.wql(f"SELECT {_SERVICE_PROPS} FROM OfficeSoftwareProtectionService")
            if rows:
                ospp = service_from_row(rows[0], "ospp")
                for row in conn.wql(f"SELECT {_PRODUCT_PROPS} FROM OfficeSoftwareProtectionProduct {_KEYED}"):
                    sku = sku_from_row(row, "ospp")
                    if sku is not None:
                        skus.append(sku)
        except WSManFault:
            ospp = None
    edition = next((s.family for s in skus if s.app == "windows" and not s.is_addon and s.family), None)
    if edition and not os_info.edition_id:
        os_info = OsInfo(
            caption=os_info.caption,
            version=os_info.version,
            build=os_info.build,
            product_type=os_info.product_type,
            sku_number=os_info.sku_number,
            edition_id=edition,
        )
    return LicensingFacts(os=os_info, spp=spp, ospp=ospp, skus=tuple(skus))


# ------------------------------------------------------------------------------------------------ clock


@dataclass(frozen=True)
class ClockReading:
    offset_seconds: float | None  # PC clock (UTC) minus the controller's clock, at the moment the PC read it
    local_time: datetime | None
    utc_offset_minutes: int | None  # the PC's current UTC offset (zone + DST)
    os_version: str = ""


def read_clock(ctx: ModuleContext) -> ClockReading:
    """Compare the PC's clock with the controller's: one WQL, the round trip halved as the reading moment."""
    before = ctx.controller_now()
    t0 = time.monotonic()
    row = _first(ctx.conn.wql("SELECT LocalDateTime, CurrentTimeZone, Version FROM Win32_OperatingSystem"))
    rtt = time.monotonic() - t0
    local = row.get("LocalDateTime")
    zone_minutes = to_int(row.get("CurrentTimeZone"))
    version = str(row.get("Version") or "")
    if not isinstance(local, datetime):
        return ClockReading(None, None, zone_minutes, version)
    if local.tzinfo is None:
        local = local.replace(tzinfo=UTC)
    offset = local.timestamp() - (before.timestamp() + rtt / 2)
    return ClockReading(round(offset, 1), local, zone_minutes, version)


def read_timezone(ctx: ModuleContext) -> dict[str, Any]:
    return _first(ctx.conn.wql("SELECT StandardName, Caption, Bias FROM Win32_TimeZone"))


def timezone_id(ctx: ModuleContext) -> str | None:
    """The time zone ID as ``tzutil /g`` prints it (locale-independent, unlike Win32_TimeZone's names)."""
    res = ctx.conn.run_command("tzutil", ["/g"], read_only=True)
    text = res.stdout.strip().splitlines()
    return text[0].strip() if res.rc == 0 and text else None


# ------------------------------------------------------------------------------------------------ commands


def is_admin(ctx: ModuleContext) -> bool | None:
    """Is the WinRM account's token elevated? ``whoami /groups`` lists the mandatory label by SID (locale-proof).
    None when the answer cannot be read."""
    res = ctx.conn.run_command("whoami", ["/groups"], read_only=True)
    text = res.stdout
    if res.rc != 0 or "S-1-16-" not in text:
        return None
    return any(sid in text for sid in _ELEVATED_LABELS)


# A TCP port test that runs on every Windows PowerShell from 2.0 on (Windows 7 has 2.0 and no
# Test-NetConnection, which needs 4.0 / Windows 8.1): TcpClient.BeginConnect, then wait at most the timeout.
# WaitOne is True when the attempt ended (connected or refused) in time; Connected only after a connect.
_PORT_TEST = """$tcp = New-Object System.Net.Sockets.TcpClient
$wait = $tcp.BeginConnect('{host}', {port}, $null, $null)
$open = $wait.AsyncWaitHandle.WaitOne({timeout_ms}, $false) -and $tcp.Connected
$tcp.Close()
$open"""
PORT_TEST_TIMEOUT_MS = 3000


def kms_port_open(ctx: ModuleContext, target: KmsTarget, os_info: OsInfo) -> bool | None:
    """Can the PC open TCP to the KMS host? A PowerShell 2.0-compatible TcpClient connect prints True/False.
    None when the answer cannot be read."""
    del os_info  # the same script runs on Windows 7 (PowerShell 2.0) and later
    host = target.host.replace("'", "''")
    script = _PORT_TEST.format(host=host, port=int(target.port), timeout_ms=PORT_TEST_TIMEOUT_MS)
    res = ctx.conn.run_powershell(script, read_only=True)
    words = res.stdout.strip().split()
    if not words:
        return None
    last = words[-1].lower()
    if last == "true":
        return True
    if last == "false":
        return False
    return None


def ospp_probe_line() -> str:
    """One cmd.exe line that prints the index of each ospp.vbs path that exists: ``if exist`` (Microsoft Learn,
    Windows Commands, "if") in a ``( … )`` group per path, because an ``if``'s command runs to the end of the
    line or group; the ``)`` of "Program Files (x86)" is inside quotes, so it does not close the group."""
    return " & ".join(f'(if exist "{path}" echo {index})' for index, path in enumerate(OSPP_PATHS))


def office_ospp_paths(ctx: ModuleContext) -> list[str]:
    """Which of the four usual ospp.vbs paths exist on the PC: one cmd.exe line (no powershell.exe start)."""
    res = ctx.conn.run_command(ospp_probe_line(), read_only=True)
    found = {int(word) for word in res.stdout.split() if word.isdigit()}
    return [path for index, path in enumerate(OSPP_PATHS) if index in found]


# ------------------------------------------------------------------------------------------------ SQL Server


@dataclass(frozen=True)
class SqlInstance:
    name: str  # MSSQLSERVER (default) or the named instance
    instance_id: str | None = None  # MSSQL15.MSSQLSERVER
    edition: str | None = None  # "Express Edition"
    version: str | None = None  # "15.0.2000.5"
    service: str | None = None
    state: str | None = None
    wow64: bool = False

    @property
    def year(self) -> str | None:
        major = (self.version or "").split(".", 1)[0]
        if not major and self.instance_id:
            m = re.match(r"MSSQL(\d+)\.", self.instance_id)
            major = m.group(1) if m else ""
        return SQL_MAJOR_YEARS.get(major)

    @property
    def display(self) -> str:
        parts = ["SQL Server", self.year or "", (self.edition or "").replace(" Edition", "")]
        return " ".join(p for p in parts if p) + f" ({self.name})"

    def to_json(self) -> dict[str, Any]:
        return {
            "instance": self.name,
            "instance_id": self.instance_id,
            "edition": self.edition,
            "version": self.version,
            "year": self.year,
            "service": self.service,
            "state": self.state,
        }


_REG_VALUE = re.compile(r"^\s{2,}(?P<name>.+?)\s{2,}(?P<type>REG_[A-Z_]+)(?:\s{2,}(?P<data>.*))?$")


def parse_reg_query(text: str) -> dict[str, dict[str, str]]:
    """``reg query`` output → {key path (lower case): {value name: data}}."""
    out: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.startswith("HKEY_"):
            current = out.setdefault(line.lower(), {})
            continue
        m = _REG_VALUE.match(line)
        if m and current is not None:
            current[m.group("name")] = (m.group("data") or "").strip()
    return out


def _long_root(root: str) -> str:
    return root.replace("HKLM\\", "HKEY_LOCAL_MACHINE\\", 1).lower()


def read_sql_instances(ctx: ModuleContext, registry: bool = True) -> list[SqlInstance]:
    """SQL Server instances: services from Win32_Service, details from the registry (docs/reference.md §5)."""
    conn = ctx.conn
    services = {}
    for row in conn.wql("SELECT Name, State FROM Win32_Service WHERE Name LIKE 'MSSQL%'"):
        name = str(row.get("Name") or "")
        if name.upper() == "MSSQLSERVER":
            services["MSSQLSERVER"] = (name, str(row.get("State") or ""))
        elif name.upper().startswith("MSSQL$"):
            services[name[6:].upper()] = (name, str(row.get("State") or ""))
    if not services:
        return []
    found: dict[str, SqlInstance] = {}
    if registry:
        line = " & ".join(f'reg query "{root}\\Instance Names\\SQL"' for root in _SQL_ROOTS)
        keys = parse_reg_query(conn.run_command(line, read_only=True).stdout)
        ids: list[tuple[str, str, str]] = []  # (instance, id, root)
        for root in _SQL_ROOTS:
            for inst, inst_id in keys.get(_long_root(root) + "\\instance names\\sql", {}).items():
                ids.append((inst, inst_id, root))
        if ids:
            line = " & ".join(f'reg query "{root}\\{inst_id}\\Setup"' for _, inst_id, root in ids)
            setup = parse_reg_query(conn.run_command(line, read_only=True).stdout)
            for inst, inst_id, root in ids:
                values = setup.get(f"{_long_root(root)}\\{inst_id.lower()}\\setup", {})
                svc = services.get(inst.upper(), (None, None))
                found[inst.upper()] = SqlInstance(
                    name=inst,
                    instance_id=inst_id,
                    edition=values.get("Edition"),
                    version=values.get("Version") or values.get("PatchLevel"),
                    service=svc[0],
                    state=svc[1],
                    wow64="wow6432node" in root.lower(),
                )
    for key, (svc_name, state) in services.items():
        if key not in found:
            found[key] = SqlInstance(name=key if key != "MSSQLSERVER" else "MSSQLSERVER", service=svc_name, state=state)
    return [found[k] for k in sorted(found)]


def registered_cmids(ctx: ModuleContext) -> Mapping[str, str]:
    """Other hosts of the play and the CMID they reported (``kmsfleet_cmid``), as far as known right now."""
    hostvars = ctx.hostvars.get("hostvars")
    hosts = ctx.hostvars.get("ansible_play_hosts") or []
    out: dict[str, str] = {}
    if not isinstance(hostvars, Mapping):
        return out
    for host in hosts:
        if host == ctx.host:
            continue
        for _ in range(3):  # another host's thread may be updating its variables right now
            try:
                cmid = hostvars[host].get("kmsfleet_cmid")
                break
            except (KeyError, RuntimeError):
                cmid = None
        if cmid:
            out[str(host)] = str(cmid).lower()
    return out
