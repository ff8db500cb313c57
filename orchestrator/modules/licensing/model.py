"""Licensing state as the licensing modules reason about it: frozen values built from WMI rows, and the plan
vocabulary (``Change``, ``Problem``, ``Plan``). Everything here is pure: no connection, no clock.

Sources for the rules (``docs/reference.md``): the channel comes from ``Description`` ("…,
VOLUME_KMSCLIENT channel") and ``ProductKeyChannel`` (Windows 8.1+), never from product names alone (§8); a KMS
client is a product whose Description contains VOLUME_KMSCLIENT (slmgr's own test, §2.2); days left are
``ceil(GracePeriodRemaining / 1440)`` like slmgr (§2.2); a product is "activated" when ``LicenseStatus == 1``,
and for KMS also ``GracePeriodRemaining > 0`` (§8).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from orchestrator.knowledge.license_status import LICENSE_STATUS_NAMES
from orchestrator.results.models import LicenceRecord

WINDOWS_APP_ID = "55c92734-d682-4d71-983e-d6ec3f16059f"
OFFICE_APP_ID = "0ff1ce15-a989-479d-af46-f275c6370663"  # Office 2013 and later
# Office 2010 (OSPP only) [unconfirmed, docs/reference.md §2.2]
OFFICE14_APP_ID = "59a52881-a989-479d-af46-f275c6370663"
DEFAULT_KMS_PORT = 1688
MINUTES_PER_DAY = 1440

NOT_APPLICABLE = "NotApplicable"  # LicenceRecord.status of products that need no activation (SQL Server)

# Channels (LicenceRecord.channel)
GVLK = "Volume:GVLK"
MAK = "Volume:MAK"
CSVLK = "Volume:CSVLK"
RETAIL = "Retail"
OEM_DM = "OEM:DM"
OEM_SLP = "OEM:SLP"
OEM_COA = "OEM:COA"
OEM_NONSLP = "OEM:NONSLP"
SUBSCRIPTION = "Subscription"
UNKNOWN_CHANNEL = "Unknown"

_DESCRIPTION_CHANNELS = {
    "VOLUME_KMSCLIENT": GVLK,
    "VOLUME_MAK": MAK,
    "VOLUME_KMS": CSVLK,
    "RETAIL": RETAIL,
    "RETAIL(GRACE)": RETAIL,
    "OEM_DM": OEM_DM,
    "OEM_SLP": OEM_SLP,
    "OEM_COA_SLP": OEM_COA,
    "OEM_COA_NSLP": OEM_NONSLP,
    "OEM_NONSLP": OEM_NONSLP,
    "TIMEBASED_SUB": SUBSCRIPTION,
}
_CHANNEL_WORD = re.compile("channel", re.IGNORECASE)
_CHANNEL_TOKEN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_()")


def channel_in_description(description: str) -> str | None:
    """The word before "channel" in a WMI ``Description`` ("Windows(R) Operating System, VOLUME_KMSCLIENT
    channel" → ``VOLUME_KMSCLIENT``): what ``([A-Z0-9_()]+)\\s+channel`` would find, in linear time. The text
    comes from the PC; the regular expression retries its ``+`` from every start position, quadratic on a long
    run of token characters with no "channel" after it."""
    for found in _CHANNEL_WORD.finditer(description):  # a literal: linear
        at = found.start()
        end = at
        while end > 0 and description[end - 1].isspace():
            end -= 1
        start = end
        while start > 0 and description[start - 1] in _CHANNEL_TOKEN:
            start -= 1
        if end < at and start < end:
            return description[start:end]
    return None


# Win32_OperatingSystem.OperatingSystemSKU -> EditionID (used when no Windows key is installed, so there is no
# LicenseFamily to read). Public SKU numbers; the list covers the editions schools meet.
OS_SKU_EDITIONS: Mapping[int, str] = {
    1: "Ultimate",
    2: "HomeBasic",
    3: "HomePremium",
    4: "Enterprise",
    6: "Business",
    7: "ServerStandard",
    8: "ServerDatacenter",
    10: "ServerEnterprise",
    27: "EnterpriseN",
    28: "UltimateN",
    48: "Professional",
    49: "ProfessionalN",
    79: "ServerStandardEval",
    80: "ServerDatacenterEval",
    98: "CoreN",
    99: "CoreCountrySpecific",
    100: "CoreSingleLanguage",
    101: "Core",
    121: "Education",
    122: "EducationN",
    125: "EnterpriseS",
    126: "EnterpriseSN",
    161: "ProfessionalWorkstation",
    162: "ProfessionalWorkstationN",
    164: "ProfessionalEducation",
    165: "ProfessionalEducationN",
}

# Preinstalled consumer Office (brand PCs): Home & Business / Home & Student / Personal licences delivered as
# retail keys. kmsfleet calls these OEM Office [heuristic, unconfirmed: Microsoft documents no OEM marker for
# Office 2013+ beyond the retail channel].
_OEM_OFFICE_FAMILIES = ("homebusiness", "homestudent", "personal")


def to_int(value: Any, default: int | None = None) -> int | None:
    """A WMI number (WS-Man sends text) as int; ``default`` for NULL or junk."""
    if value is None or isinstance(value, bool):
        return default
    try:
        return int(str(value).strip())
    except ValueError:
        return default


def to_bool(value: Any) -> bool:
    """A CIM boolean as WMI returns it (``true``/``false`` text or a bool), not a user's YAML value: WMI never
    writes ``yes``/``on``, so this stays narrower than ``orchestrator.booleans``."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "1")


def to_text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def status_name(status: int | None) -> str:
    if status is None or not 0 <= status < len(LICENSE_STATUS_NAMES):
        return "Unknown"
    return LICENSE_STATUS_NAMES[status]


def days_from_minutes(minutes: int) -> int:
    """slmgr's rounding: ``Int((min + 1439) / 1440)``, i.e. the ceiling (docs/reference.md §2.2)."""
    return math.ceil(minutes / MINUTES_PER_DAY) if minutes > 0 else 0


def channel_of(description: str, product_key_channel: str | None, name: str = "") -> str:
    """The licence channel: subscription from ``TIMEBASED_SUB``; else ``ProductKeyChannel`` (8.1+); else the
    channel named in ``Description``."""
    desc = description.upper()
    if "TIMEBASED_SUB" in desc or "_SUBSCRIPTION" in name.upper():
        return SUBSCRIPTION
    pkc = (product_key_channel or "").strip()
    if pkc:
        if pkc.lower().startswith("retail:tb"):
            return SUBSCRIPTION if pkc.lower().endswith("sub") else RETAIL
        return pkc
    word = channel_in_description(description)
    if word:
        return _DESCRIPTION_CHANNELS.get(word.upper(), word)
    return UNKNOWN_CHANNEL


def office_version_of(name: str, family: str = "") -> int | None:
    """'Office 15, …' → 2013; 'Office 16, …' → 2016 (2019 when the licence family says so); 'Office 19' → 2019."""
    m = re.search(r"Office\s*(\d\d)", name)
    if not m:
        return None
    major = int(m.group(1))
    text = f"{name} {family}"
    if major == 14:
        return 2010
    if major == 15:
        return 2013
    if major == 16:
        for year in (2024, 2021, 2019):
            if str(year) in text:
                return year
        return 2016
    return {19: 2019, 21: 2021, 24: 2024}.get(major)


# ------------------------------------------------------------------------------------------------ KMS target


@dataclass(frozen=True)
class KmsTarget:
    """The KMS host a module should configure: a name or IP (IPv6 without brackets) and a port."""

    host: str
    port: int = DEFAULT_KMS_PORT

    @property
    def text(self) -> str:
        """``host:port`` as slmgr /skms takes it (``[v6]:port``)."""
        return f"{self.machine_name}:{self.port}"

    @property
    def machine_name(self) -> str:
        """What goes into SetKeyManagementServiceMachine (IPv6 literals in brackets, like slmgr)."""
        return f"[{self.host}]" if ":" in self.host else self.host

    def matches(self, machine: str | None, port: int | None) -> bool:
        if not machine:
            return False
        return _norm_host(machine) == _norm_host(self.host) and (port or DEFAULT_KMS_PORT) == self.port


_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})*\.?$")


def _norm_host(text: str) -> str:
    return text.strip().strip("[]").rstrip(".").lower()


def same_host(a: str | None, b: str | None) -> bool:
    """Two KMS host names/addresses are the same (case, brackets and a trailing dot ignored)."""
    return bool(a) and bool(b) and _norm_host(a or "") == _norm_host(b or "")


def parse_kms_target(host: str, port: int | None = None) -> KmsTarget:
    """``163.30.0.166``, ``kms.school.example``, ``host:1688`` or ``[fd00::5]:1688`` → ``KmsTarget``.

    An explicit ``port`` wins over one written in ``host``. Raises ``ValueError`` for anything that is not a
    host name or IP address (the value ends up on a Windows command line in the seed procedure and in
    the PC's TCP port test, so it is checked strictly)."""
    text = host.strip()
    written_port: int | None = None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"{host!r}: missing ']' after an IPv6 address")
        rest = text[end + 1 :]
        text = text[1:end]
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise ValueError(f"{host!r}: expected [address]:port")
            written_port = int(rest[1:])
    elif text.count(":") == 1:
        text, _, port_text = text.partition(":")
        if not port_text.isdigit():
            raise ValueError(f"{host!r}: the port after ':' must be a number")
        written_port = int(port_text)
    if not text:
        raise ValueError("the KMS host is empty")
    try:
        ipaddress.ip_address(text)
    except ValueError:
        if not _HOSTNAME.match(text):
            raise ValueError(f"{host!r} is not a host name or IP address") from None
    chosen = port if port is not None else (written_port or DEFAULT_KMS_PORT)
    if not 0 < chosen < 65536:
        raise ValueError(f"KMS port {chosen} is not between 1 and 65535")
    return KmsTarget(text.lower() if not _is_ip(text) else text, chosen)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def host_port_text(machine: str | None, port: int | None) -> str | None:
    """``host:port`` for a KMS setting as Windows stores it (port 0 = default 1688); None when no host is set."""
    if not machine:
        return None
    host = machine.strip()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port or DEFAULT_KMS_PORT}"


# ------------------------------------------------------------------------------------------------ state


App = Literal["windows", "office"]
ServiceKind = Literal["spp", "ospp"]


@dataclass(frozen=True)
class Sku:
    """One licence row that holds a product key (``PartialProductKey`` not NULL)."""

    id: str
    app: App
    service: ServiceKind
    name: str
    description: str
    family: str
    channel: str
    status: int
    grace_minutes: int
    reason: int | None = None
    partial_key: str | None = None
    kms_machine: str | None = None  # product-level KeyManagementServiceMachine as WMI shows it
    kms_port: int = 0  # 0 = not set (1688)
    is_addon: bool = False

    @property
    def kms_client(self) -> bool:
        return "VOLUME_KMSCLIENT" in self.description.upper() or self.channel == GVLK

    @property
    def status_name(self) -> str:
        return status_name(self.status)

    @property
    def licensed(self) -> bool:
        return self.status == 1

    @property
    def permanent(self) -> bool:
        """Permanently activated (retail, OEM or MAK): Licensed with no grace period counting down."""
        return self.status == 1 and self.grace_minutes == 0 and not self.kms_client

    @property
    def days_left(self) -> int | None:
        """Days left in the current state (slmgr's ceiling); None for a permanent activation."""
        if self.status == 1 and self.grace_minutes == 0:
            return None
        return days_from_minutes(self.grace_minutes)

    @property
    def office_version(self) -> int | None:
        return office_version_of(self.name, self.family) if self.app == "office" else None

    @property
    def office_kind(self) -> Literal["volume", "mak", "retail", "oem", "subscription", "other"]:
        """What sort of Office licence this is (meaningful for ``app == "office"``)."""
        if self.channel == SUBSCRIPTION or "O365" in self.family.upper() or "O365" in self.name.upper():
            return "subscription"
        if self.kms_client:
            return "volume"
        if self.channel == MAK:
            return "mak"
        lowered = f"{self.family} {self.name}".lower().replace(" ", "")
        if self.channel.startswith("OEM") or any(f in lowered for f in _OEM_OFFICE_FAMILIES):
            return "oem"
        if self.channel == RETAIL:
            return "retail"
        return "other"

    @property
    def error_reason(self) -> int | None:
        """``LicenseStatusReason`` when it explains a problem (not for a licensed product)."""
        if self.status == 1 or not self.reason:
            return None
        return self.reason


@dataclass(frozen=True)
class Service:
    """SoftwareLicensingService (spp) or OfficeSoftwareProtectionService (ospp)."""

    kind: ServiceKind
    version: str
    kms_machine: str | None = None
    kms_port: int = 0
    cmid: str | None = None

    @property
    def wmi_class(self) -> str:
        return "SoftwareLicensingService" if self.kind == "spp" else "OfficeSoftwareProtectionService"

    @property
    def product_class(self) -> str:
        return "SoftwareLicensingProduct" if self.kind == "spp" else "OfficeSoftwareProtectionProduct"

    @property
    def kms_text(self) -> str | None:
        return host_port_text(self.kms_machine, self.kms_port)


@dataclass(frozen=True)
class OsInfo:
    caption: str = ""
    version: str = ""
    build: str = ""
    product_type: int = 1
    sku_number: int | None = None
    edition_id: str | None = None  # EditionID (Education, Professional, ServerStandard, …)

    @property
    def is_server(self) -> bool:
        return self.product_type in (2, 3)

    @property
    def is_win7(self) -> bool:
        """Windows 7 / Server 2008 R2 (6.1): Office uses the OSPP classes, there is no ProductKeyChannel."""
        return self.version.startswith("6.1")

    @property
    def family(self) -> Literal["client", "server"]:
        return "server" if self.is_server else "client"


@dataclass(frozen=True)
class LicensingFacts:
    """Everything one PC's licensing services report."""

    os: OsInfo
    spp: Service
    ospp: Service | None = None
    skus: tuple[Sku, ...] = ()

    @property
    def windows_skus(self) -> tuple[Sku, ...]:
        return tuple(s for s in self.skus if s.app == "windows")

    @property
    def office_skus(self) -> tuple[Sku, ...]:
        return tuple(s for s in self.skus if s.app == "office")

    @property
    def primary_windows(self) -> Sku | None:
        """The Windows licence: the keyed, non-add-on Windows row (slmgr's rule), licensed ones first."""
        rows = [s for s in self.windows_skus if not s.is_addon] or list(self.windows_skus)
        if not rows:
            return None
        return sorted(rows, key=lambda s: (s.status != 1, s.id))[0]

    @property
    def edition_id(self) -> str | None:
        primary = self.primary_windows
        if primary is not None and primary.family:
            return primary.family
        if self.os.edition_id:
            return self.os.edition_id
        return OS_SKU_EDITIONS.get(self.os.sku_number or -1)

    def service_of(self, sku: Sku) -> Service:
        if sku.service == "ospp" and self.ospp is not None:
            return self.ospp
        return self.spp

    def effective_kms(self, sku: Sku) -> tuple[str | None, int]:
        """The KMS host and port a product uses: its own setting, else its service's."""
        service = self.service_of(sku)
        machine = sku.kms_machine or service.kms_machine
        port = sku.kms_port or service.kms_port
        return machine, port or DEFAULT_KMS_PORT

    def effective_kms_text(self, sku: Sku) -> str | None:
        machine, port = self.effective_kms(sku)
        return host_port_text(machine, port)

    def product_override(self, sku: Sku) -> bool:
        """True when the product carries its own KMS host that differs from its service's (so setting the
        service-level host would not change what the product uses)."""
        if not sku.kms_machine:
            return False
        service = self.service_of(sku)
        return _norm_host(sku.kms_machine) != _norm_host(service.kms_machine or "")

    def sku(self, sku_id: str) -> Sku | None:
        wanted = sku_id.strip("{}").lower()
        return next((s for s in self.skus if s.id.lower() == wanted), None)


# ------------------------------------------------------------------------------------------------ parsing


def sku_from_row(row: Mapping[str, Any], service: ServiceKind) -> Sku | None:
    """A ``SoftwareLicensingProduct`` / ``OfficeSoftwareProtectionProduct`` row → ``Sku`` (None for rows of
    other applications)."""
    app_id = str(row.get("ApplicationID") or "").lower()
    if app_id == WINDOWS_APP_ID:
        app: App = "windows"
    elif app_id in (OFFICE_APP_ID, OFFICE14_APP_ID) or service == "ospp":
        app = "office"
    else:
        return None
    name = str(row.get("Name") or "")
    description = str(row.get("Description") or "")
    reason = to_int(row.get("LicenseStatusReason"))
    return Sku(
        id=str(row.get("ID") or "").strip("{}").lower(),
        app=app,
        service=service,
        name=name,
        description=description,
        family=str(row.get("LicenseFamily") or ""),
        channel=channel_of(description, to_text(row.get("ProductKeyChannel")), name),
        status=to_int(row.get("LicenseStatus"), 0) or 0,
        grace_minutes=to_int(row.get("GracePeriodRemaining"), 0) or 0,
        reason=reason & 0xFFFFFFFF if reason is not None else None,
        partial_key=to_text(row.get("PartialProductKey")),
        kms_machine=to_text(row.get("KeyManagementServiceMachine")),
        kms_port=to_int(row.get("KeyManagementServicePort"), 0) or 0,
        is_addon=to_bool(row.get("LicenseIsAddon")),
    )


def service_from_row(row: Mapping[str, Any], kind: ServiceKind) -> Service:
    return Service(
        kind=kind,
        version=str(row.get("Version") or ""),
        kms_machine=to_text(row.get("KeyManagementServiceMachine")),
        kms_port=to_int(row.get("KeyManagementServicePort"), 0) or 0,
        cmid=to_text(row.get("ClientMachineID")),
    )


def os_from_row(row: Mapping[str, Any], edition_id: str | None = None) -> OsInfo:
    return OsInfo(
        caption=str(row.get("Caption") or "").strip(),
        version=str(row.get("Version") or ""),
        build=str(row.get("BuildNumber") or ""),
        product_type=to_int(row.get("ProductType"), 1) or 1,
        sku_number=to_int(row.get("OperatingSystemSKU")),
        edition_id=edition_id,
    )


# ------------------------------------------------------------------------------------------------ records


def licence_record(facts: LicensingFacts, sku: Sku, now: datetime, last_error: int | None = None) -> LicenceRecord:
    """The audit record of one licence (``ModuleOutcome.licences``)."""
    if sku.app == "windows":
        product = "server" if facts.os.is_server else "windows"
        version: str | None = facts.os.version or None
        edition = sku.family or facts.edition_id
    else:
        product = "office"
        year = sku.office_version
        version = str(year) if year else None
        edition = sku.family or None
    service = facts.service_of(sku)
    expires = now + timedelta(minutes=sku.grace_minutes) if sku.grace_minutes > 0 else None
    return LicenceRecord(
        product=product,
        name=sku.name,
        channel=sku.channel,
        status=sku.status_name,
        license_status=sku.status,
        days_left=sku.days_left,
        expires=expires,
        kms_host=facts.effective_kms_text(sku),
        last_error=last_error if last_error is not None else sku.error_reason,
        version=version,
        edition=edition,
        partial_key=sku.partial_key,
        cmid=service.cmid,
        activation_id=sku.id,
    )


# ------------------------------------------------------------------------------------------------ plans


Action = Literal["install_key", "set_kms_host", "set_kms_port", "activate", "set_timezone", "resync_clock"]


@dataclass(frozen=True)
class Change:
    """One state change a module will make (apply) or would make (check mode)."""

    action: Action
    app: Literal["windows", "office", "time"]
    label: str  # what is changed, for people: "Windows(R), Education edition", "the licensing service"
    value: str | int | None = None
    before: str | int | None = None
    service: ServiceKind = "spp"
    sku_id: str | None = None  # product-level target; for activate, None = "the product after install_key"

    def describe(self) -> str:
        was = f" (was {self.before})" if self.before not in (None, "") else ""
        if self.action == "install_key":
            return f"install the KMS client key (GVLK) {self.value} for {self.label}{was}"
        if self.action == "set_kms_host":
            return f"set the KMS host of {self.label} to {self.value}{was or ' (was not set)'}"
        if self.action == "set_kms_port":
            return f"set the KMS port of {self.label} to {self.value}{was}"
        if self.action == "activate":
            return f"activate {self.label} against {self.value}"
        if self.action == "set_timezone":
            return f"set the time zone to {self.value}{was}"
        return f"resync the clock with the time service{was}"


@dataclass(frozen=True)
class Problem:
    """Something a module cannot (or will not) fix; the task fails with it."""

    msg: str
    diagnosis: str  # a knowledge-catalogue key
    error_code: int | None = None
    label: str = ""


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...] = ()
    problems: tuple[Problem, ...] = ()
    notes: tuple[str, ...] = ()  # why things need no change ("licensed via …, 170 days left")
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.changes and not self.problems
