"""What the lab can install: operating systems (caption, build, SKU number …), the GVLKs (built from
``orchestrator/knowledge/gvlk.yaml``, Microsoft's published tables) and each application's SKU rows;
product key ids and installation ids."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from orchestrator.knowledge.gvlk import all_office, all_windows

if TYPE_CHECKING:  # pragma: no cover
    from orchestrator.lab.spec import OfficeSpec

from orchestrator.lab.licensing.codes import OFFICE_APP_ID, WINDOWS_APP_ID


@dataclass(frozen=True, slots=True)
class OsInfo:
    caption: str  # Win32_OperatingSystem.Caption
    generation: str  # which GVLK table applies: win10 (Windows 10/11 GA keys), win7, server2016, server2019
    version: str  # Win32_OperatingSystem.Version
    build: str
    ubr: int  # update build revision
    spp_version: str  # SoftwareLicensingService.Version
    sku_number: int  # OperatingSystemSKU
    product_type: int  # 1 workstation, 3 server
    sku_name_prefix: str  # "Windows(R)" or "Windows(R) 7"
    display_version: str  # registry DisplayVersion / CSDVersion
    rearm_count: int

    @property
    def is_win7(self) -> bool:
        return self.generation == "win7"

    @property
    def has_product_key_channel(self) -> bool:
        return not self.is_win7

    @property
    def full_build(self) -> str:
        return f"{self.version}.{self.ubr}"


_W10 = {"version": "10.0.19042", "build": "19042", "ubr": 1052, "spp_version": "10.0.19041.1052"}


_W11 = {"version": "10.0.22631", "build": "22631", "ubr": 2861, "spp_version": "10.0.22621.2861"}


_W7 = {"version": "6.1.7601", "build": "7601", "ubr": 24546, "spp_version": "6.1.7601.17514"}


_S16 = {"version": "10.0.14393", "build": "14393", "ubr": 4046, "spp_version": "10.0.14393.4046"}


_S19 = {"version": "10.0.17763", "build": "17763", "ubr": 1518, "spp_version": "10.0.17763.1518"}


_OS_ROWS: dict[str, tuple[str, dict[str, Any], int, int, str]] = {
    # spec os -> (generation, versions, OperatingSystemSKU, ProductType, display version)
    "Windows 10 Education": ("win10", _W10, 121, 1, "20H2"),
    "Windows 10 Pro": ("win10", _W10, 48, 1, "20H2"),
    "Windows 10 Pro Education": ("win10", _W10, 164, 1, "20H2"),
    "Windows 10 Enterprise": ("win10", _W10, 4, 1, "20H2"),
    "Windows 10 Home": ("win10", _W10, 101, 1, "20H2"),
    "Windows 11 Education": ("win10", _W11, 121, 1, "23H2"),
    "Windows 11 Pro": ("win10", _W11, 48, 1, "23H2"),
    "Windows 11 Pro Education": ("win10", _W11, 164, 1, "23H2"),
    "Windows 11 Enterprise": ("win10", _W11, 4, 1, "23H2"),
    "Windows 11 Home": ("win10", _W11, 101, 1, "23H2"),
    "Windows 7 Professional": ("win7", _W7, 48, 1, "Service Pack 1"),
    "Windows 7 Enterprise": ("win7", _W7, 4, 1, "Service Pack 1"),
    "Windows 7 Ultimate": ("win7", _W7, 1, 1, "Service Pack 1"),
    "Windows 7 Home Premium": ("win7", _W7, 3, 1, "Service Pack 1"),
    "Windows Server 2016 Standard": ("server2016", _S16, 7, 3, "1607"),
    "Windows Server 2016 Datacenter": ("server2016", _S16, 8, 3, "1607"),
    "Windows Server 2019 Standard": ("server2019", _S19, 7, 3, "1809"),
    "Windows Server 2019 Datacenter": ("server2019", _S19, 8, 3, "1809"),
}


@lru_cache(maxsize=64)
def os_info(os_name: str) -> OsInfo:
    generation, v, sku, product_type, display = _OS_ROWS[os_name]
    caption = f"Microsoft {os_name}" + (" " if generation == "win7" else "")  # Windows 7 captions end in a space
    return OsInfo(
        caption=caption,
        generation=generation,
        version=v["version"],
        build=v["build"],
        ubr=v["ubr"],
        spp_version=v["spp_version"],
        sku_number=sku,
        product_type=product_type,
        sku_name_prefix="Windows(R) 7" if generation == "win7" else "Windows(R)",
        display_version=display,
        rearm_count=3 if generation == "win7" else 1001,
    )


@dataclass(frozen=True, slots=True)
class Gvlk:
    key: str
    app: Literal["windows", "office"]
    generation: str  # windows: win10, win10-ltsc, win81, win7, server20xx ; office: "2013".."2024"
    edition: str  # EditionID (windows) or license family stem (office)
    sku_id: str | None
    family: str  # client | server | office


# The Windows releases the lab models, by (family, os_version, builds) of gvlk.yaml; keys of other releases are
# not in its catalogue.
_CLIENT_GENERATIONS: dict[tuple[str, tuple[int, ...] | None], str] = {
    ("6.1", None): "win7",
    ("6.3", None): "win81",
    ("10.0", None): "win10",
    ("10.0", (10240,)): "win10-ltsb2015",
    ("10.0", (14393,)): "win10-ltsb2016",
    ("10.0", (17763, 19044, 26100)): "win10-ltsc",
    ("10.0", (19044, 26100)): "win10-ltsc",
}
_SERVER_GENERATIONS: dict[tuple[str, tuple[int, ...] | None], str] = {
    ("6.2", None): "server2012",
    ("6.3", None): "server2012r2",
    ("10.0", (14393,)): "server2016",
    ("10.0", (17763,)): "server2019",
    ("10.0", (20348,)): "server2022",
    ("10.0", (26100,)): "server2025",
}
# The Office suites the lab installs; from 2019 on their license family names carry the year (ProPlus2019).
_OFFICE_SUITES = ("ProPlus", "Standard")


def _windows_gvlks() -> Iterator[Gvlk]:
    for entry in all_windows():
        table = _SERVER_GENERATIONS if entry.family == "server" else _CLIENT_GENERATIONS
        generation = table.get((entry.os_version or "", entry.builds))
        if generation is not None and entry.edition_id and entry.family:
            yield Gvlk(entry.key, "windows", generation, entry.edition_id, entry.sku_id, entry.family)


def _office_gvlks() -> Iterator[Gvlk]:
    for entry in all_office():
        if entry.edition in _OFFICE_SUITES and entry.version is not None:
            edition = f"{entry.edition}{entry.version}" if entry.version >= 2019 else entry.edition
            yield Gvlk(entry.key, "office", str(entry.version), edition, entry.sku_id, "office")


#: Microsoft's published KMS client setup keys the lab knows, from ``orchestrator/knowledge/gvlk.yaml``.
GVLKS: tuple[Gvlk, ...] = (*_windows_gvlks(), *_office_gvlks())
_GVLK_BY_KEY = {g.key: g for g in GVLKS}


def find_gvlk(key: str) -> Gvlk | None:
    return _GVLK_BY_KEY.get(key.strip().upper())


def windows_gvlk(generation: str, edition_id: str) -> Gvlk | None:
    for g in GVLKS:
        if g.app == "windows" and g.generation == generation and g.edition == edition_id:
            return g
    return None


def office_gvlk(version: int) -> Gvlk:
    for g in GVLKS:
        if g.app == "office" and g.generation == str(version) and g.edition.startswith("ProPlus"):
            return g
    raise KeyError(version)


_KEY_CHARS = "BCDFGHJKMPQRTVWXY2346789"


def key_shape_ok(key: str) -> bool:
    parts = key.strip().upper().split("-")
    return len(parts) == 5 and all(len(p) == 5 and all(c.isalnum() for c in p) for p in parts)


def _stable_guid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "kmsfleet-lab:" + "|".join(parts)))


def digest_int(*parts: str) -> int:
    """A stable integer from strings (for PIDs, installation IDs, serial numbers)."""
    return int.from_bytes(hashlib.sha256("|".join(parts).encode()).digest()[:8], "big")


@lru_cache(maxsize=32768)
def product_key_id(key: str, os: OsInfo, group: str = "03612", language: int = 1033) -> str:
    """A Windows-style extended PID for an installed key, e.g. 03612-03290-000-000003-03-1033-19042.0000-0122021;
    ``language`` is the install's LANGID (1028 on zh-TW Windows: the Q&A's slmgr /dlv shows …-03-1028-19042…)."""
    n = digest_int("pid", key)
    build = os.build
    return (
        f"{group}-{n % 100000:05d}-{(n >> 17) % 1000:03d}-{(n >> 27) % 1000000:06d}-03-{language}-{build}.0000-"
        f"{(n >> 47) % 365 + 1:03d}{2019 + (n >> 56) % 3}"
    )


@lru_cache(maxsize=32768)
def installation_id(key: str, cmid: str) -> str:
    """A 63-digit offline installation ID (stable per key and machine)."""
    digits = ""
    counter = 0
    while len(digits) < 63:
        digits += str(digest_int("iid", key, cmid, str(counter)))
        counter += 1
    return digits[:63]


Channel = Literal["VOLUME_KMSCLIENT", "VOLUME_MAK", "RETAIL", "OEM_DM", "OEM_SLP", "TIMEBASED_SUB", "RETAIL_GRACE"]


_PKEY_CHANNEL: dict[str, str] = {
    "VOLUME_KMSCLIENT": "Volume:GVLK",
    "VOLUME_MAK": "Volume:MAK",
    "RETAIL": "Retail",
    "OEM_DM": "OEM:DM",
    "OEM_SLP": "OEM:SLP",
    "TIMEBASED_SUB": "Retail:TB:Sub",
    "RETAIL_GRACE": "Retail",
}


@dataclass(frozen=True, slots=True)
class Sku:
    id: str
    name: str
    description: str
    application_id: str
    license_family: str
    channel: Channel
    kms_product: str | None  # "windows" | "server" | "office" for VOLUME_KMSCLIENT rows

    @property
    def product_key_channel(self) -> str:
        return _PKEY_CHANNEL[self.channel]

    @property
    def is_kms_client(self) -> bool:
        return self.channel == "VOLUME_KMSCLIENT"


@lru_cache(maxsize=256)
def _windows_skus(os: OsInfo, edition_id: str, family: str) -> tuple[Sku, ...]:
    gvlk = windows_gvlk(os.generation, edition_id)
    name = f"{os.sku_name_prefix}, {edition_id} edition"
    desc_prefix = "Windows Operating System - Windows(R) 7" if os.is_win7 else "Windows(R) Operating System"
    oem: Channel = "OEM_SLP" if os.is_win7 else "OEM_DM"
    channels: list[Channel] = ["RETAIL", oem]
    if gvlk is not None:
        channels += ["VOLUME_MAK", "VOLUME_KMSCLIENT"]
    rows = []
    for ch in channels:
        sku_id = gvlk.sku_id if ch == "VOLUME_KMSCLIENT" and gvlk and gvlk.sku_id else None
        rows.append(
            Sku(
                id=sku_id or _stable_guid("windows", os.generation, edition_id, ch),
                name=name,
                description=f"{desc_prefix}, {ch} channel",
                application_id=WINDOWS_APP_ID,
                license_family=edition_id,
                channel=ch,
                kms_product=("server" if family == "server" else "windows") if ch == "VOLUME_KMSCLIENT" else None,
            )
        )
    return tuple(rows)


_OFFICE_PREFIX = {2013: ("Office 15", ""), 2016: ("Office 16", "Office16"), 2019: ("Office 19", "Office19")}


@lru_cache(maxsize=256)
def _office_skus(office: OfficeSpec) -> tuple[Sku, ...]:
    version = office.version
    prefix, stem = _OFFICE_PREFIX[version]
    gvlk = office_gvlk(version)

    def row(family: str, ch: Channel, sku_id: str | None = None) -> Sku:
        channel_text = "RETAIL(Grace)" if ch == "RETAIL_GRACE" else ch
        return Sku(
            id=sku_id or _stable_guid("office", str(version), family),
            name=f"{prefix}, {family} edition",
            description=f"{prefix}, {channel_text} channel",
            application_id=OFFICE_APP_ID,
            license_family=family,
            channel=ch,
            kms_product="office" if ch == "VOLUME_KMSCLIENT" else None,
        )

    ae = "_AE" if version == 2019 else ""
    pp = f"{stem}ProPlus{'2019' if version == 2019 else ''}"
    if version == 2013:
        pp = "OfficeProPlus"
    if office.channel == "volume":
        return (row(f"{pp}VL_KMS_Client{ae}", "VOLUME_KMSCLIENT", gvlk.sku_id), row(f"{pp}VL_MAK{ae}", "VOLUME_MAK"))
    if office.channel == "retail":
        return (row(f"{pp}R_Retail", "RETAIL"), row(f"{pp}R_Grace", "RETAIL_GRACE"))
    if office.channel == "oem":
        hb = "OfficeHomeBusiness" if version == 2013 else f"{stem}HomeBusiness{'2019' if version == 2019 else ''}"
        return (row(f"{hb}R_Retail", "RETAIL"), row(f"{hb}R_Grace", "RETAIL_GRACE"))
    # subscription (Microsoft 365 Apps): always the Office 16 licenses, except on Office 2013
    if version == 2013:
        return (
            row("OfficeO365ProPlusR_Subscription1", "TIMEBASED_SUB"),
            row("OfficeO365ProPlusR_SubTrial1", "TIMEBASED_SUB"),
        )
    sub_prefix = "Office 16"
    return (
        Sku(
            id=_stable_guid("office", "o365", "sub1"),
            name=f"{sub_prefix}, Office16O365ProPlusR_Subscription1 edition",
            description=f"{sub_prefix}, TIMEBASED_SUB channel",
            application_id=OFFICE_APP_ID,
            license_family="Office16O365ProPlusR_Subscription1",
            channel="TIMEBASED_SUB",
            kms_product=None,
        ),
        Sku(
            id=_stable_guid("office", "o365", "trial1"),
            name=f"{sub_prefix}, Office16O365ProPlusR_SubTrial1 edition",
            description=f"{sub_prefix}, TIMEBASED_SUB channel",
            application_id=OFFICE_APP_ID,
            license_family="Office16O365ProPlusR_SubTrial1",
            channel="TIMEBASED_SUB",
            kms_product=None,
        ),
    )
