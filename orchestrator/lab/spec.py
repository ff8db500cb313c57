"""The classroom spec: the contract that tests, demos and users rely on (README "Lab: classroom spec").

A spec is one room (``room``/``subnet``/``hosts`` at the top) or several (``rooms: [...]`` plus an optional
top-level ``kms``). Unknown fields and bad values are errors that name the field and its line.
``resolve()`` turns a spec into concrete ``LabHostConfig`` records with a loopback address each.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from orchestrator.errors import InputError, Location
from orchestrator.hostranges import RangeError, expand
from orchestrator.yamlsource import load_yaml_file, load_yaml_text, location_of

WINDOWS_EDITIONS: dict[str, tuple[str, str]] = {
    # os caption (as the spec writes it) -> (EditionID, family)
    "Windows 10 Education": ("Education", "client"),
    "Windows 10 Pro": ("Professional", "client"),
    "Windows 10 Pro Education": ("ProfessionalEducation", "client"),
    "Windows 10 Enterprise": ("Enterprise", "client"),
    "Windows 10 Home": ("Core", "client"),
    "Windows 11 Education": ("Education", "client"),
    "Windows 11 Pro": ("Professional", "client"),
    "Windows 11 Pro Education": ("ProfessionalEducation", "client"),
    "Windows 11 Enterprise": ("Enterprise", "client"),
    "Windows 11 Home": ("Core", "client"),
    "Windows 7 Professional": ("Professional", "client"),
    "Windows 7 Enterprise": ("Enterprise", "client"),
    "Windows 7 Ultimate": ("Ultimate", "client"),
    "Windows 7 Home Premium": ("HomePremium", "client"),
    "Windows Server 2016 Standard": ("ServerStandard", "server"),
    "Windows Server 2016 Datacenter": ("ServerDatacenter", "server"),
    "Windows Server 2019 Standard": ("ServerStandard", "server"),
    "Windows Server 2019 Datacenter": ("ServerDatacenter", "server"),
}

SQL_EDITIONS = ("Express", "Standard", "Enterprise", "Developer", "Web")
SQL_VERSIONS = {"2016": "13", "2017": "14", "2019": "15", "2022": "16"}
KNOWN_TIMEZONES = (
    "Taipei Standard Time",
    "China Standard Time",
    "Tokyo Standard Time",
    "UTC",
    "GMT Standard Time",
    "Pacific Standard Time",
    "Eastern Standard Time",
    "Central Standard Time",
)

LOCALES = ("en-US", "zh-TW")  # display languages a lab PC can have (texts in lab/locales.yaml)

Product = Literal["windows", "office", "server"]
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Faults(_Strict):
    """Per-request probabilities, drawn from the lab's seeded random generator."""

    drop: float = Field(0.0, ge=0.0, le=1.0, description="close the connection without answering")
    http500: float = Field(0.0, ge=0.0, le=1.0, description="answer HTTP 500 with an internal-error fault")
    hang: float = Field(0.0, ge=0.0, le=1.0, description="never answer (until the client gives up)")
    unauthorized: float = Field(0.0, ge=0.0, le=1.0, description="answer 401 as if the password were wrong")


class OfficeSpec(_Strict):
    version: Literal[2013, 2016, 2019]
    bitness: Literal["x86", "x64"] = "x86"
    channel: Literal["volume", "retail", "oem", "subscription"] = "volume"
    state: Literal["unlicensed", "licensed", "expiring", "corrupt"] = "unlicensed"
    days_left: int | None = Field(None, ge=0, le=180)

    @field_validator("version", mode="before")
    @classmethod
    def _version_int(cls, v: Any) -> Any:
        return int(v) if isinstance(v, str) and v.isdigit() else v


class HostFields(_Strict):
    """Every field a host (or ``defaults``) may set. All optional here; ``HostSpec`` fills defaults."""

    os: str | None = None
    windows_channel: Literal["volume", "retail", "oem", "oem_slic", "mak"] | None = None
    windows_state: Literal["unlicensed", "licensed", "expiring"] | None = None
    days_left: int | None = Field(None, ge=0, le=180)
    office: OfficeSpec | Literal["none"] | None = None
    sql: str | None = None
    timezone: str | None = None
    clock_skew_minutes: int | None = Field(None, ge=-525600, le=525600)
    admin: bool | None = None
    blocked_key: bool | None = None
    cloned_cmid: bool | None = None
    power: Literal["on", "off"] | None = None
    latency_ms: float | tuple[float, float] | None = None
    faults: Faults | None = None
    kms_host: str | None = None  # KMS host already set on the PC: "lab" (the lab's KMS), "none", or host[:port]
    computer_name: str | None = None
    mac: str | None = None
    http: bool | None = None  # listen on 5985
    https: bool | None = None  # listen on 5986 (certificate generated at start)
    locale: str | None = None  # display language: en-US or zh-TW (captions, time zone names, tools' texts)

    @field_validator("locale")
    @classmethod
    def _locale(cls, v: str | None) -> str | None:
        if v is None:
            return v
        match = next((name for name in LOCALES if name.lower() == v.strip().replace("_", "-").lower()), None)
        if match is None:
            raise ValueError(f"unknown locale {v!r}; one of: {', '.join(LOCALES)}")
        return match

    @field_validator("power", mode="before")
    @classmethod
    def _power(cls, v: Any) -> Any:
        # YAML 1.1 reads a bare `on`/`off` as a boolean.
        if v is True:
            return "on"
        if v is False:
            return "off"
        return v

    @field_validator("office", mode="before")
    @classmethod
    def _office_none(cls, v: Any) -> Any:
        return None if v in ("none", "None", False) else v

    @field_validator("sql", mode="before")
    @classmethod
    def _sql(cls, v: Any) -> Any:
        if v in (None, "none", "None", False):
            return None
        text = str(v).strip()
        parts = text.split()
        if len(parts) != 2 or parts[0] not in SQL_VERSIONS or parts[1] not in SQL_EDITIONS:
            raise ValueError(
                f"sql must be 'none' or '<version> <edition>' with version in {sorted(SQL_VERSIONS)} "
                f"and edition in {list(SQL_EDITIONS)}, e.g. '2019 Standard'"
            )
        return text

    @field_validator("os")
    @classmethod
    def _os(cls, v: str | None) -> str | None:
        if v is not None and v not in WINDOWS_EDITIONS:
            raise ValueError(f"unknown os {v!r}; one of: {', '.join(WINDOWS_EDITIONS)}")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        if v is not None and v not in KNOWN_TIMEZONES:
            raise ValueError(f"unknown Windows time zone id {v!r}; one of: {', '.join(KNOWN_TIMEZONES)}")
        return v

    @field_validator("latency_ms")
    @classmethod
    def _latency(cls, v: float | tuple[float, float] | None) -> float | tuple[float, float] | None:
        if isinstance(v, tuple):
            lo, hi = v
            if lo < 0 or hi < lo or hi > 600_000:
                raise ValueError("latency_ms range must be [min, max] with 0 <= min <= max <= 600000")
        elif v is not None and not 0 <= v <= 600_000:
            raise ValueError("latency_ms must be between 0 and 600000")
        return v

    @field_validator("mac")
    @classmethod
    def _mac(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not re.fullmatch(r"[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}", v):
            raise ValueError("mac must look like 52:54:00:12:34:56")
        return v.upper().replace("-", ":")


HOST_DEFAULTS: dict[str, Any] = {
    "os": "Windows 10 Education",
    "windows_channel": "volume",
    "windows_state": "unlicensed",
    "days_left": 180,
    "office": None,
    "sql": None,
    "timezone": "Taipei Standard Time",
    "clock_skew_minutes": 0,
    "admin": True,
    "blocked_key": False,
    "cloned_cmid": False,
    "power": "on",
    "latency_ms": 0.0,
    "faults": Faults(),
    "kms_host": None,
    "computer_name": None,
    "mac": None,
    "http": True,
    "https": True,
    "locale": "en-US",
}


class HostSpec(HostFields):
    name: str

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        try:
            names = expand(v)
        except RangeError as exc:
            raise ValueError(str(exc)) from None
        for n in names:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", n):
                raise ValueError(f"host name {n!r} must be letters, digits, '-', '_' or '.'")
        return v


class Credentials(_Strict):
    user: str = "administrator"
    password: str | None = Field(None, repr=False)  # generated when absent; never shown


class KmsSpec(_Strict):
    up: bool = True
    port: int = Field(1688, ge=1, le=65535)
    address: str | None = None  # default 127.<A>.0.2, A = second octet of the first room's subnet
    clock_skew_minutes: int = Field(0, ge=-525600, le=525600)
    products: tuple[Product, ...] = ("windows", "office", "server")
    count: int = Field(30, ge=0, le=50, description="distinct CMIDs the host already counted (last 30 days)")
    drop: bool = Field(False, description="a firewall drops every packet to the host: clients wait, then 0xC004F074")

    @field_validator("address")
    @classmethod
    def _loopback(cls, v: str | None) -> str | None:
        if v is not None:
            _require_loopback(v, "kms.address")
        return v


class RoomSpec(_Strict):
    room: str
    subnet: str
    credentials: Credentials = Credentials()
    kms: KmsSpec | None = None
    defaults: HostFields = HostFields()
    hosts: tuple[HostSpec, ...] = Field(min_length=1)

    @field_validator("room")
    @classmethod
    def _room(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("room must be a valid inventory group name (letters, digits, '_')")
        return v

    @field_validator("subnet")
    @classmethod
    def _subnet(cls, v: str) -> str:
        parts = v.split(".")
        if len(parts) != 3 or not all(p.isdigit() and 0 <= int(p) <= 255 for p in parts):
            raise ValueError("subnet must be three octets such as 127.0.1 (PCs get .1, .2, …)")
        if parts[0] != "127":
            raise ValueError("the lab only uses loopback addresses: subnet must start with 127.")
        if parts[1] == "0" and parts[2] == "0":
            raise ValueError("127.0.0 is reserved for the lab's own services (KMS host, control API)")
        return v


class LabSpec(_Strict):
    rooms: tuple[RoomSpec, ...] = Field(min_length=1)
    kms: KmsSpec = KmsSpec()
    seed: int = 0

    @model_validator(mode="after")
    def _unique(self) -> LabSpec:
        names: set[str] = set()
        subnets: set[str] = set()
        for room in self.rooms:
            if room.room in names:
                raise ValueError(f"room {room.room!r} appears twice")
            names.add(room.room)
            if room.subnet in subnets:
                raise ValueError(f"subnet {room.subnet} is used by two rooms")
            subnets.add(room.subnet)
        return self


def _require_loopback(address: str, field: str) -> None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"{field} must be a loopback IP address, not {address!r}") from None
    if not ip.is_loopback:
        raise ValueError(f"{field} must be a loopback address (127.0.0.0/8 or ::1), not {address}")


class LabHostConfig(BaseModel):
    """One simulated PC, fully resolved: every field has a value."""

    model_config = ConfigDict(frozen=True)

    name: str
    room: str
    address: str
    index: int  # 1-based position in the lab, stable for a given spec
    user: str
    password: str = Field(repr=False)
    os: str
    edition_id: str
    family: Literal["client", "server"]
    windows_channel: str
    windows_state: str
    days_left: int
    office: OfficeSpec | None
    sql: str | None
    timezone: str
    clock_skew_minutes: int
    admin: bool
    blocked_key: bool
    cloned_cmid: bool
    power: str
    latency_ms: float | tuple[float, float]
    faults: Faults
    kms_host: str | None
    computer_name: str
    mac: str
    http: bool
    https: bool
    locale: str = "en-US"


class ResolvedLab(BaseModel):
    model_config = ConfigDict(frozen=True)

    hosts: tuple[LabHostConfig, ...]
    kms: KmsSpec
    kms_address: str
    service_address: str  # 127.<A>.0.1: control API and Wake-on-LAN
    wol_broadcast: str  # 127.<A>.0.255: where magic packets for this lab go
    rooms: tuple[str, ...]
    seed: int


def _mac_for(address: str) -> str:
    o = [int(p) for p in address.split(".")]
    return "52:54:{:02X}:{:02X}:{:02X}:{:02X}".format(*o)


def resolve(spec: LabSpec) -> ResolvedLab:
    hosts: list[LabHostConfig] = []
    seen: dict[str, str] = {}  # host name -> its room
    for room in spec.rooms:
        hosts += _room_hosts(room, len(hosts), seen)
    second = spec.rooms[0].subnet.split(".")[1]
    kms = spec.kms
    for room in spec.rooms:
        if room.kms is not None:
            kms = room.kms
            break
    kms_address = kms.address or f"127.{second}.0.2"
    return ResolvedLab(
        hosts=tuple(hosts),
        kms=kms,
        kms_address=kms_address,
        service_address=f"127.{second}.0.1",
        wol_broadcast=f"127.{second}.0.255",
        rooms=tuple(r.room for r in spec.rooms),
        seed=spec.seed,
    )


def _room_hosts(room: RoomSpec, before: int, seen: dict[str, str]) -> list[LabHostConfig]:
    """The PCs of one room, numbered from ``.1`` in its subnet; ``before`` PCs came in earlier rooms."""
    password = room.credentials.password or secrets.token_urlsafe(12)
    defaults = {**HOST_DEFAULTS, **room.defaults.model_dump(exclude_unset=True)}
    out: list[LabHostConfig] = []
    for host in room.hosts:
        fields = {**defaults, **host.model_dump(exclude_unset=True, exclude={"name"})}
        for name in expand(host.name):
            n = len(out) + 1
            if n > 254:
                raise InputError(f"room {room.room}: more than 254 PCs do not fit in subnet {room.subnet}")
            if name in seen:
                raise InputError(f"host {name!r} appears in rooms {seen[name]} and {room.room}")
            seen[name] = room.room
            out.append(_host_config(name, room, n, before + n, password, fields))
    return out


def _host_config(name: str, room: RoomSpec, n: int, index: int, password: str, fields: dict[str, Any]) -> LabHostConfig:
    """One PC from its merged fields (room defaults under the host's own), the ``n``th of its room."""
    address = f"{room.subnet}.{n}"
    office = fields["office"]
    if isinstance(office, dict):
        office = OfficeSpec(**office)
    faults = fields["faults"]
    if isinstance(faults, dict):
        faults = Faults(**faults)
    edition_id, family = WINDOWS_EDITIONS[fields["os"]]
    return LabHostConfig(
        name=name,
        room=room.room,
        address=address,
        index=index,
        user=room.credentials.user,
        password=password,
        os=fields["os"],
        edition_id=edition_id,
        family=family,
        windows_channel=fields["windows_channel"],
        windows_state=fields["windows_state"],
        days_left=fields["days_left"],
        office=office,
        sql=fields["sql"],
        timezone=fields["timezone"],
        clock_skew_minutes=fields["clock_skew_minutes"],
        admin=fields["admin"],
        blocked_key=fields["blocked_key"],
        cloned_cmid=fields["cloned_cmid"],
        power=fields["power"],
        latency_ms=fields["latency_ms"],
        faults=faults,
        kms_host=fields["kms_host"],
        computer_name=fields["computer_name"] or name.upper()[:15],
        mac=fields["mac"] or _mac_for(address),
        http=fields["http"],
        https=fields["https"],
        locale=fields["locale"],
    )


def _normalise(data: Any) -> Any:
    if isinstance(data, Mapping) and "rooms" not in data and ("room" in data or "hosts" in data):
        room = {k: v for k, v in data.items() if k != "seed"}
        out: dict[str, Any] = {"rooms": [room]}
        if "seed" in data:
            out["seed"] = data["seed"]
        return out
    return data


def _error_from_validation(exc: ValidationError, raw: Any, filename: str, single_room: bool) -> InputError:
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    shown = loc[2:] if single_room and loc[:2] == ("rooms", 0) else loc
    field = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in shown).replace(".[", "[")
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    where = location_of(raw, shown) or Location(filename)
    return InputError(f"spec field '{field or '(top)'}': {msg}", where)


def parse_spec(data: Any, filename: str = "<spec>") -> LabSpec:
    if not isinstance(data, Mapping):
        raise InputError("a lab spec must be a mapping with 'room'/'subnet'/'hosts' or 'rooms'", Location(filename))
    single = "rooms" not in data
    try:
        return LabSpec.model_validate(_normalise(data))
    except ValidationError as exc:
        raise _error_from_validation(exc, data, filename, single) from None


def load_spec(path: str | Path) -> LabSpec:
    return parse_spec(load_yaml_file(path), str(path))


def load_spec_text(text: str, filename: str = "<spec>") -> LabSpec:
    return parse_spec(load_yaml_text(text, filename), filename)
