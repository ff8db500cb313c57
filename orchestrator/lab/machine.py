"""One simulated Windows PC: the ``SimulatedHost`` the WS-Management front end talks to.

A ``Machine`` owns the PC's state (licensing, clock skew, time zone, hardware facts, SQL Server instances,
Office install) and answers WQL queries, WS-Transfer Gets, WMI method invocations and WinRS command lines
from that one state, so what ``slmgr.vbs /dlv`` prints always agrees with ``SoftwareLicensingProduct``.

Thread safety: every read and write goes through ``machine.lock`` (a re-entrant lock), because the control
API and the front end may touch the same PC from different threads. ``Activate`` releases the lock while it
waits for the KMS host.

Deviations/choices:
- Admin rights are per PC: when the spec says ``admin: false`` the spec's user is a standard user, so every
  state-changing licensing call (and ``w32tm /resync``) fails with 0x80070005. ``tzutil /s`` works for standard
  users as on real Windows (the Users group holds SeTimeZonePrivilege), although the brief listed it as admin.
- The PC clock is lab time + ``clock_skew_minutes`` (in UTC). Changing the time zone keeps the UTC clock, as
  Windows does, so a PC whose wall clock was hand-set in a wrong zone needs ``tzutil /s`` *and* a resync.
- Hardware facts (manufacturer, model, BIOS, serial numbers) are derived from the PC's name, so they are
  stable across runs without consuming the lab's random generator.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from orchestrator.lab import system_methods, timezones, wmi_classes, wql
from orchestrator.lab.licensing import (
    LICENSE_STATUS_NAMES,
    Licensing,
    ServiceState,
    digest_int,
    split_host_port,
)
from orchestrator.lab.locales import Locale, locale_for
from orchestrator.lab.provider import (
    CimInstance,
    CimProperty,
    CommandOutcome,
    CommandPipe,
    PreparedCommand,
    ShellContext,
    WmiError,
)
from orchestrator.lab.spec import KNOWN_TIMEZONES, LabHostConfig
from orchestrator.lab.timezones import TimeZoneInfo
from orchestrator.lab.wmi_classes import WmiClass
from orchestrator.lab.world import LabWorld


@dataclass(frozen=True, slots=True)
class Hardware:
    manufacturer: str
    model: str
    family: str
    sku_number: str
    bios_manufacturer: str
    bios_version: str  # Win32_BIOS.Name / Caption
    bios_acpi_version: str  # Win32_BIOS.Version, e.g. "DELL   - 1072009"
    bios_vendor_string: str
    smbios_version: str
    bios_date: datetime
    serial: str
    memory_bytes: int
    logical_processors: int
    nic: str
    nic_service: str
    pid_base: int


_CLIENT_MODELS = (
    ("Dell Inc.", "OptiPlex 7070", "OptiPlex", "Dell Inc.", "1.6.1", "DELL   - 1072009", "Dell Inc. - 1072009", "tag"),
    (
        "HP",
        "HP ProDesk 400 G6 Desktop MT",
        "103C_53307F HP ProDesk",
        "HP",
        "R01 Ver. 02.12.00",
        "HPQOEM - 0",
        "HP - 21200",
        "hp",
    ),
    ("LENOVO", "10SUS1G700", "ThinkCentre M720s", "LENOVO", "M1UKT4AA", "LENOVO - 1460", "LENOVO - 1460", "lenovo"),
    (
        "ASUSTeK COMPUTER INC.",
        "D340MC",
        "D340MC",
        "American Megatrends Inc.",
        "0408",
        "ALASKA - 1072009",
        "American Megatrends - 5000D",
        "asus",
    ),
    (
        "Acer",
        "Veriton M4660G",
        "Veriton",
        "American Megatrends Inc.",
        "R01-A4",
        "ACRSYS - 1072009",
        "American Megatrends - 5000C",
        "acer",
    ),
)
_SERVER_MODEL = (
    "Dell Inc.",
    "PowerEdge R740",
    "PowerEdge",
    "Dell Inc.",
    "2.10.2",
    "DELL   - 1",
    "Dell Inc. - 1",
    "tag",
)
_NICS = (("Intel(R) Ethernet Connection (7) I219-V", "e1dexpress"), ("Realtek PCIe GbE Family Controller", "rt640x64"))
_SERIAL_CHARS = "0123456789BCDFGHJKLMNPQRSTVWXYZ"


def _hardware(config: LabHostConfig) -> Hardware:
    n = digest_int("hw", config.name)
    row = _SERVER_MODEL if config.family == "server" else _CLIENT_MODELS[n % len(_CLIENT_MODELS)]
    maker, model, family, bios_maker, bios_ver, acpi, vendor, serial_style = row
    chars = "".join(_SERIAL_CHARS[(n >> (5 * i)) % len(_SERIAL_CHARS)] for i in range(10))
    serial = {
        "tag": chars[:7],
        "hp": "CZC" + chars[:7],
        "lenovo": "MJ0" + chars[:5],
        "asus": "System Serial Number" if n % 2 else "L" + chars[:9],
        "acer": "DTVR" + chars[:10],
    }[serial_style]
    nic, svc = _NICS[(n >> 7) % len(_NICS)]
    mem = (8 if (n >> 9) % 3 else 16) * 1024**3 - 512 * 1024 * ((n >> 11) % 7 + 1)
    if config.family == "server":
        mem = 64 * 1024**3 - 1024 * 1024 * 321
    return Hardware(
        manufacturer=maker,
        model=model,
        family=family,
        sku_number=f"{maker.split()[0].upper()}_{(n >> 13) % 9000 + 1000}",
        bios_manufacturer=bios_maker,
        bios_version=bios_ver,
        bios_acpi_version=acpi,
        bios_vendor_string=vendor,
        smbios_version=bios_ver,
        bios_date=datetime(2019 + (n >> 17) % 3, 1 + (n >> 19) % 12, 1 + (n >> 23) % 28, tzinfo=UTC),
        serial=serial,
        memory_bytes=mem,
        logical_processors=16 if config.family == "server" else (4 if (n >> 29) % 2 else 8),
        nic=nic,
        nic_service=svc,
        pid_base=400 + (n >> 31) % 4000,
    )


@dataclass(frozen=True, slots=True)
class SqlInstance:
    name: str  # MSSQLSERVER or the named instance
    instance_id: str  # MSSQL15.MSSQLSERVER
    major: str  # "15"
    year: str  # "2019"
    edition: str  # "Standard Edition"
    version: str  # "15.0.2000.5"


_SQL_BUILDS = {"2016": "13.0.1601.5", "2017": "14.0.1000.169", "2019": "15.0.2000.5", "2022": "16.0.1000.6"}
_SQL_MAJOR = {"2016": "13", "2017": "14", "2019": "15", "2022": "16"}


@dataclass(frozen=True, slots=True)
class OfficeInstall:
    version: int
    folder: str  # C:\Program Files (x86)\Microsoft Office\Office16
    bitness: str
    click_to_run: bool
    channel: str

    @property
    def ospp_path(self) -> str:
        return self.folder + "\\OSPP.VBS"

    @property
    def folder_name(self) -> str:
        return "Office15" if self.version == 2013 else "Office16"


class Machine:
    """One simulated Windows PC (implements ``provider.SimulatedHost``)."""

    def __init__(self, config: LabHostConfig, world: LabWorld) -> None:
        self.config = config
        self.world = world
        self.name = config.name
        self.address = config.address
        self.lock = threading.RLock()
        self.computer_name = config.computer_name
        self.admin = config.admin
        self.clock_skew_minutes = config.clock_skew_minutes
        self.timezone = config.timezone
        self.power = config.power
        self.hardware = _hardware(config)
        self.licensing = Licensing(config, world)
        self.os = self.licensing.os
        self.locale: Locale = locale_for(config.locale)
        now = world.clock.now()
        n = digest_int("boot", config.name)
        self.boot_time = now - timedelta(minutes=20 + n % 600)
        self.install_date = now - timedelta(days=30 + (n >> 12) % 400, minutes=(n >> 24) % 1440)
        self.os_serial = (
            f"00328-{(n >> 5) % 90000 + 10000:05d}-{(n >> 21) % 90000 + 10000:05d}-AA{(n >> 37) % 900 + 100:03d}"
        )
        self.nic_guid = "{" + str(_guid_from(n)).upper() + "}"
        parts = self.address.split(".")
        self.gateway = ".".join([*parts[:3], "254"])
        self.oa3_key: str | None = None
        self.oa3_description: str | None = None
        if config.windows_channel == "oem" and not self.os.is_win7:
            self.oa3_key = self.licensing.windows.key
            family = self.licensing.windows.key_sku.license_family if self.licensing.windows.key_sku else ""
            self.oa3_description = f"[4.0] {family} OEM:DM"
        self.office_install = self._office_install()
        self.last_sync: datetime | None = None
        self.time_source = "Local CMOS Clock"
        world.register(self)

    # -- facts used by WMI and commands ------------------------------------------------------------------
    def _office_install(self) -> OfficeInstall | None:
        office = self.config.office
        if office is None:
            return None
        folder_name = "Office15" if office.version == 2013 else "Office16"
        base = "C:\\Program Files (x86)" if office.bitness == "x86" else "C:\\Program Files"
        c2r = office.version == 2019 or office.channel in ("retail", "oem", "subscription")
        return OfficeInstall(
            version=office.version,
            folder=f"{base}\\Microsoft Office\\{folder_name}",
            bitness=office.bitness,
            click_to_run=c2r,
            channel=office.channel,
        )

    def sql_instances(self) -> list[SqlInstance]:
        if not self.config.sql:
            return []
        year, edition = self.config.sql.split()
        name = "SQLEXPRESS" if edition == "Express" else "MSSQLSERVER"
        major = _SQL_MAJOR[year]
        return [
            SqlInstance(
                name=name,
                instance_id=f"MSSQL{major}.{name}",
                major=major,
                year=year,
                edition=f"{edition} Edition",
                version=_SQL_BUILDS[year],
            )
        ]

    @property
    def tz(self) -> TimeZoneInfo:
        """The PC's time zone, its names in the PC's display language (Win32_TimeZone, w32tm /tz)."""
        zone = timezones.time_zone(self.timezone)
        names = self.locale.zone(zone.id)
        if names is None:
            return zone
        return dataclasses.replace(
            zone, caption=names.caption, standard_name=names.standard, daylight_name=names.daylight
        )

    @property
    def oem_codepage(self) -> int:
        """The PC's OEM code page: what a console (and a WinRS shell without WINRS_CODEPAGE) writes in."""
        return self.locale.oem_codepage

    @property
    def os_caption(self) -> str:
        """Win32_OperatingSystem.Caption in the PC's display language."""
        return self.locale.caption(self.config.os, self.os.caption)

    @property
    def cmid(self) -> str:
        return self.licensing.spp.cmid

    def pc_utc_now(self) -> datetime:
        """The PC's own clock in UTC (lab time + its skew)."""
        return self.world.clock.now() + timedelta(minutes=self.clock_skew_minutes)

    def utc_offset_minutes(self) -> int:
        return timezones.utc_offset_minutes(self.tz, self.pc_utc_now())

    def local_now(self) -> datetime:
        return timezones.local_time(self.tz, self.pc_utc_now())

    def to_local(self, moment: datetime) -> datetime:
        """A lab-time instant as this PC shows it (its skew and time zone applied)."""
        shifted = moment + timedelta(minutes=self.clock_skew_minutes)
        return shifted.astimezone(timezone(timedelta(minutes=timezones.utc_offset_minutes(self.tz, shifted))))

    def is_admin(self, user: str | None = None) -> bool:
        del user  # only the spec's user can log on; its rights come from the spec
        return self.admin

    # -- credentials -------------------------------------------------------------------------------------
    def check_credentials(self, user: str, password: str) -> bool:
        bare = user.strip()
        if "\\" in bare:
            domain, bare = bare.split("\\", 1)
            if domain not in (".", "") and domain.lower() not in (self.computer_name.lower(), self.name.lower()):
                return False
        elif "@" in bare:
            bare, domain = bare.split("@", 1)
            if domain.lower() not in (self.computer_name.lower(), self.name.lower()):
                return False
        return bare.lower() == self.config.user.lower() and password == self.config.password

    def ntlm_credentials(self) -> tuple[str, str]:
        return self.config.user, self.config.password

    # -- WMI -------------------------------------------------------------------------------------------
    def _classes(self) -> dict[str, WmiClass]:
        return wmi_classes.class_table(self.os.is_win7, self.licensing.ospp is not None)

    def _class(self, class_name: str, namespace: str) -> WmiClass:
        wmi_classes.normalise_namespace(namespace)
        cls = self._classes().get(class_name.lower())
        if cls is None:
            raise WmiError(wmi_classes.WBEM_E_INVALID_CLASS, "Invalid class", kind="invalid_class")
        return cls

    def class_names(self, namespace: str = "root/cimv2") -> frozenset[str]:
        wmi_classes.normalise_namespace(namespace)
        return frozenset(c.name for c in self._classes().values())

    def wql(self, query: str, namespace: str = "root/cimv2") -> list[CimInstance]:
        parsed = wql.parse(query)
        cls = self._class(parsed.class_name, namespace)
        schema = cls.schema
        selected = wql.bind(parsed, schema)
        with self.lock:
            rows = cls.builder(self)
        out = []
        for row in rows:
            if wql.evaluate(parsed.where, schema, row.get):
                out.append(cls.instance(row, selected))
        return out

    def get_instance(self, class_name: str, selectors: dict[str, str], namespace: str = "root/cimv2") -> CimInstance:
        cls = self._class(class_name, namespace)
        with self.lock:
            rows = wmi_classes.select_instances(self, cls, selectors)
        if not rows:
            raise WmiError(wmi_classes.WBEM_E_NOT_FOUND, "Not found", kind="not_found")
        if len(rows) > 1:
            raise WmiError(
                wmi_classes.WSMAN_INVALID_SELECTORS,
                "The WS-Management service cannot process the request because the request contained invalid "
                "selectors for the resource.",
                kind="invalid_parameter",
            )
        return cls.instance(rows[0])

    async def invoke(
        self,
        class_name: str,
        method: str,
        selectors: dict[str, str],
        params: dict[str, str],
        user: str,
        namespace: str = "root/cimv2",
    ) -> list[CimProperty]:
        cls = self._class(class_name, namespace)
        wanted = method.lower()
        canonical = next((m for m in cls.methods if m.lower() == wanted), None)
        if canonical is None:
            raise WmiError(wmi_classes.WBEM_E_INVALID_METHOD, "Invalid method", kind="invalid_parameter")
        args = {k.lower(): v for k, v in params.items()}
        admin = self.is_admin(user)
        if cls.name in system_methods.CLASSES:  # services, registry, restart (lab.system_methods)
            with self.lock:
                return system_methods.invoke(self, cls, canonical, selectors, args, admin)
        lic = self.licensing
        ospp = cls.name.startswith("Office")
        if cls.singleton:
            with self.lock:
                rows = wmi_classes.select_instances(self, cls, selectors)
                if not rows:
                    raise WmiError(wmi_classes.WBEM_E_NOT_FOUND, "Not found", kind="not_found")
                service = lic.ospp if ospp else lic.spp
                assert service is not None
                self._service_method(service, canonical, args, admin)
            return [CimProperty("ReturnValue", "uint32", 0)]
        sku_id = next((v for k, v in selectors.items() if k.lower() == "id"), None)
        if sku_id is None:
            raise WmiError(
                wmi_classes.WSMAN_INVALID_SELECTORS,
                "The WS-Management service cannot process the request because the request contained invalid "
                "selectors for the resource.",
                kind="invalid_parameter",
            )
        service_filter: ServiceState | None = lic.ospp if ospp else lic.spp
        with self.lock:
            product, sku = lic.find(sku_id, service_filter)
        if canonical == "Activate":
            await lic.activate(product, sku, admin, self.lock)
        else:
            with self.lock:
                target = (product, sku)
                if canonical == "UninstallProductKey":
                    lic.uninstall_product_key(product, sku, admin)
                elif canonical == "SetKeyManagementServiceMachine":
                    lic.set_kms_machine(target, _required(args, "machinename"), admin)
                elif canonical == "SetKeyManagementServicePort":
                    lic.set_kms_port(target, _required(args, "portnumber"), admin)
                elif canonical == "ClearKeyManagementServiceMachine":
                    lic.clear_kms_machine(target, admin)
                elif canonical == "ClearKeyManagementServicePort":
                    lic.clear_kms_port(target, admin)
        return [CimProperty("ReturnValue", "uint32", 0)]

    def _service_method(self, service: ServiceState, method: str, args: dict[str, str], admin: bool) -> None:
        lic = self.licensing
        if method == "InstallProductKey":
            lic.install_product_key(service, _required(args, "productkey"), admin)
        elif method == "SetKeyManagementServiceMachine":
            lic.set_kms_machine(service, _required(args, "machinename"), admin)
        elif method == "SetKeyManagementServicePort":
            lic.set_kms_port(service, _required(args, "portnumber"), admin)
        elif method == "ClearKeyManagementServiceMachine":
            lic.clear_kms_machine(service, admin)
        elif method == "ClearKeyManagementServicePort":
            lic.clear_kms_port(service, admin)
        elif method == "DisableKeyManagementServiceHostCaching":
            value = _required(args, "disablecaching").strip().lower()
            lic.set_host_caching(service, value in ("true", "1"), admin)
        elif method == "ReArmWindows":
            lic.rearm(service, admin)
        # RefreshLicenseStatus: timers are evaluated lazily, nothing to do

    # -- commands ----------------------------------------------------------------------------------------
    def prepare(self, command: str, arguments: list[str], shell: ShellContext) -> PreparedCommand:
        from orchestrator.lab import commands

        return commands.prepare(self, command, arguments, shell)

    async def run(
        self, prepared: PreparedCommand, stdin: bytes, shell: ShellContext, pipe: CommandPipe | None = None
    ) -> CommandOutcome:
        from orchestrator.lab import commands

        return await commands.run(self, prepared, stdin, shell, pipe)

    # -- control API / tests --------------------------------------------------------------------------------
    def set_clock_skew(self, minutes: int) -> None:
        with self.lock:
            self.clock_skew_minutes = int(minutes)
            self.licensing.clock_skew_minutes = int(minutes)

    def set_timezone(self, tz: str) -> None:
        match = next((z for z in KNOWN_TIMEZONES if z.lower() == tz.strip().lower()), None)
        if match is None:
            raise ValueError(f"unknown Windows time zone id {tz!r}; one of: {', '.join(KNOWN_TIMEZONES)}")
        with self.lock:
            self.timezone = match

    def set(self, **fields: Any) -> None:
        """Tweak state for tests and the control API: admin, clock_skew_minutes, timezone, power, blocked_key,
        office_corrupt, kms_host ("lab", "none" or host[:port]), cmid, and spec fields the front end reads
        (latency_ms, faults, http, https)."""
        with self.lock:
            for key, value in fields.items():
                if key == "admin":
                    self.admin = bool(value)
                    self.config = self.config.model_copy(update={"admin": bool(value)})
                elif key == "clock_skew_minutes":
                    self.set_clock_skew(int(value))
                elif key == "timezone":
                    self.set_timezone(str(value))
                elif key == "power":
                    if value not in ("on", "off"):
                        raise ValueError("power must be 'on' or 'off'")
                    self.power = value
                    self.config = self.config.model_copy(update={"power": value})
                elif key == "blocked_key":
                    self.licensing.windows.blocked = bool(value)
                elif key == "office_corrupt":
                    if self.licensing.office is None:
                        raise ValueError(f"{self.name} has no Office")
                    self.licensing.office.corrupt = bool(value)
                elif key == "kms_host":
                    self._set_kms_host(value)
                elif key == "cmid":
                    self.licensing.spp.cmid = str(value)
                elif key in ("latency_ms", "faults", "http", "https"):
                    self.config = self.config.model_copy(update={key: value})
                else:
                    raise ValueError(f"unknown machine field {key!r}")

    def _set_kms_host(self, value: Any) -> None:
        text = "none" if value in (None, False) else str(value).strip()
        for service in self.licensing.services():
            if text.lower() in ("none", ""):
                service.kms.machine, service.kms.port = None, 0
            else:
                host, port = self.world.kms_endpoint() if text.lower() == "lab" else split_host_port(text)
                service.kms.machine, service.kms.port = host, 0 if port == 1688 else port

    def snapshot(self) -> dict[str, Any]:
        """Ground truth as JSON-ready data (control API, tests)."""
        with self.lock:
            products = self.licensing.snapshot()
            return {
                "name": self.name,
                "address": self.address,
                "computer_name": self.computer_name,
                "room": self.config.room,
                "os": self.config.os,
                "locale": self.config.locale,
                "edition": self.config.edition_id,
                "family": self.config.family,
                "timezone": self.timezone,
                "clock_skew_minutes": self.clock_skew_minutes,
                "pc_time_utc": self.pc_utc_now().astimezone(UTC).isoformat().replace("+00:00", "Z"),
                "admin": self.admin,
                "power": self.power,
                "cmid": self.cmid,
                "office_cmid": self.licensing.ospp.cmid if self.licensing.ospp else None,
                "kms_host": self.licensing.spp.kms.machine,
                "kms_port": self.licensing.spp.kms.port,
                "office": (
                    {
                        "version": self.office_install.version,
                        "bitness": self.office_install.bitness,
                        "channel": self.office_install.channel,
                        "folder": self.office_install.folder,
                        "click_to_run": self.office_install.click_to_run,
                    }
                    if self.office_install
                    else None
                ),
                "sql": [
                    {"instance": s.name, "instance_id": s.instance_id, "edition": s.edition, "version": s.version}
                    for s in self.sql_instances()
                ],
                "products": products,
                **system_methods.snapshot(self),
            }

    def license_status_name(self, status: int) -> str:
        return LICENSE_STATUS_NAMES[status]


def _required(args: dict[str, str], name: str) -> str:
    if name not in args:
        raise WmiError(
            wmi_classes.WBEM_E_INVALID_METHOD_PARAMETERS, "Invalid method Parameter(s)", kind="invalid_parameter"
        )
    return args[name]


def _guid_from(n: int) -> str:
    import uuid

    return str(uuid.UUID(int=(n * 0x9E3779B97F4A7C15) & ((1 << 128) - 1), version=4))


def build_machine(config: LabHostConfig, world: LabWorld) -> Machine:
    """Create the simulated PC for one resolved spec host and register it with the world."""
    return Machine(config, world)
