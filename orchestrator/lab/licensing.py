"""Licensing state of one simulated PC: Windows (or Windows Server) and Office, as the Software Protection
Platform (``sppsvc``) and, for Office 2013/2016 on Windows 7, the Office Software Protection Platform
(``osppsvc``) keep it.

Model
-----
- Each *application* (Windows, Office) exposes several SKU rows (``SoftwareLicensingProduct`` /
  ``OfficeSoftwareProtectionProduct`` instances): one per channel its license files cover, e.g. Windows 10
  Education has RETAIL, OEM_DM, VOLUME_MAK and VOLUME_KMSCLIENT rows. At most one row holds the installed key
  (``PartialProductKey`` = last 5 characters); every other row has ``PartialProductKey`` NULL and
  ``LicenseStatus`` 0, like real Windows.
- The keyed row's ``LicenseStatus`` follows a timer evaluated lazily on the lab clock:
  OOBGrace (2, 30 days, reason 0x4004F00C) -> Notification (5, reason 0xC004F009);
  KMS Licensed (1, 259200 min after each successful KMS activation, reason 0x4004F040) -> OOTGrace (3, 30
  days, reason 0x4004F00D) -> Notification (5, reason 0xC004F009); permanent Licensed (1, grace 0) for
  retail/OEM/MAK activations. ``GracePeriodRemaining`` is the minutes left in the current phase, rounded up.
- ``Activate()`` on a KMS client SKU sends one request to the KMS host set on the product or the service (lab
  protocol, see ``kms.py``); success restarts the 180-day validity (renewal), failure leaves the state alone.

Errors (all in ``tests/data/shared/domain/errors.yaml``), raised as ``WmiError(hresult, text, kind="provider")``:
0x80070005 not admin; 0xC004F014 no key on that SKU; 0xC004F050 invalid key / GVLK of another edition or
Windows version; 0xC004F035 Windows 7 volume install on a BIOS whose SLIC table has no Windows marker;
0xC004F057 Activate on a non-volume Windows (Home/Ultimate, or Pro/Education/Enterprise with a retail/OEM key);
0xC004C003 blocked key; 0xC004F017 OEM/retail/subscription Office (no VL KMS license) or a VL Office key on
such an Office; 0xC004F056 corrupt Office; 0x8007232B no KMS host set (the lab has no DNS, so no SRV
discovery); 0xC004F074 host unreachable (not loopback, nothing listening, KMS down, name not resolvable);
0xC004F06C / 0xC004F038 / 0xC004F042 as the lab KMS host answers; 0x80072EE7 MAK activation (the lab has no
Internet); 0xC004D307 rearm with no rearms left; 0x8007000D invalid KMS port or host name value.

Deviations/choices:
- Admin rights: InstallProductKey, UninstallProductKey, Set/Clear KMS machine and port, host caching, ReArm
  *and Activate* need an administrator. Microsoft documents plain KMS ``/ato`` as not needing elevation, but
  the bureau's Q&A reports 0x80070005 for activations run without "Run as administrator", so the lab follows the Q&A.
- Clock skew: the bureau's Q&A lists 0xC004F06C as what users see; Microsoft says slmgr usually shows the outer
  0xC004F074 with 0xC004F06C only in event 12288. The lab raises 0xC004F06C (the Q&A's).
- Non-volume Windows: the Q&A's 0xC004F057 is used for Activate on Home/Ultimate and on retail/OEM keys
  (Microsoft's symbolic name speaks of a missing ACPI SLIC; mapping unconfirmed). Unlicensed MAK -> 0x80072EE7.
- OEM Office: preinstalled OEM Office is modelled as a RETAIL-channel Home & Business license (the OEM part is
  how the key was delivered); ``Activate`` on it, on retail and on subscription (TIMEBASED_SUB) Office raises
  the Q&A's 0xC004F017 unless that license is already active.
- Corrupt Office keeps its VL KMS SKU (so ``/sethst`` works) but every ``Activate`` raises 0xC004F056 (the Q&A's).
- Timers run on the lab clock (true time); the PC's own skewed clock only matters for the KMS timestamp check.
  Nothing renews in the background: a KMS client renews only when ``Activate`` is called again.
- ``windows_state: expiring`` means KMS-licensed with ``days_left`` days (10 when days_left is the default 180).
  ``unlicensed`` means OOB grace with min(days_left, 30) days left.
- The KMS host name must be an IP literal (IPv4 or ``[IPv6]``) or ``localhost``; other names do not resolve in
  the lab (0xC004F074). Non-loopback addresses are never contacted.
- SKU IDs of KMS client SKUs come from gvlk.yaml; the other channel rows get stable synthetic GUIDs.
- Windows 7 exposes no ``ProductKeyChannel`` property (added in Windows 8.1 per public scripts).
- The lab has no DNS, so ``DiscoveredKeyManagementServiceMachineName/Port`` stay NULL/0; after a KMS activation
  the host's address is reported in ``DiscoveredKeyManagementServiceMachineIpAddress`` and its extended PID in
  ``KeyManagementServiceProductKeyID``.
- Office 2013/2016 on Windows 7 (OSPP) has its own CMID; cloned images share both CMIDs.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from orchestrator.lab.kms import KmsUnreachable, is_loopback, kms_activate, parse_hresult
from orchestrator.lab.provider import WmiError

if TYPE_CHECKING:  # pragma: no cover
    from orchestrator.lab.spec import LabHostConfig, OfficeSpec
    from orchestrator.lab.world import LabWorld

WINDOWS_APP_ID = "55c92734-d682-4d71-983e-d6ec3f16059f"
OFFICE_APP_ID = "0ff1ce15-a989-479d-af46-f275c6370663"
DEFAULT_KMS_PORT = 1688
VALIDITY_MINUTES = 259_200
OOB_GRACE_DAYS = 30
OOT_GRACE_DAYS = 30
ACTIVATION_INTERVAL = 120
RENEWAL_INTERVAL = 10_080

# HRESULTs the lab raises or reports. Every raised code is an entry of tests/data/shared/domain/errors.yaml.
E_ACCESSDENIED = 0x80070005
E_INVALID_DATA = 0x8007000D
SL_E_PKEY_NOT_INSTALLED = 0xC004F014
SL_E_PUBLISHING_LICENSE_NOT_INSTALLED = 0xC004F017
SL_E_VL_NOT_WINDOWS_SLP = 0xC004F035
SL_E_VL_NOT_ENOUGH_COUNT = 0xC004F038
SL_E_VL_KMS_ID_MISMATCH = 0xC004F042
SL_E_INVALID_PRODUCT_KEY = 0xC004F050
SL_E_VL_MACHINE_NOT_BOUND = 0xC004F056
SL_E_SLP_MISSING_ACPI_SLIC = 0xC004F057
SL_E_VL_INVALID_TIMESTAMP = 0xC004F06C
SL_E_VL_BINDING_SERVICE_UNAVAILABLE = 0xC004F074
SL_E_CHPA_PRODUCT_KEY_BLOCKED = 0xC004C003
SL_E_GRACE_TIME_EXPIRED = 0xC004F009
SL_E_MAX_REARM_REACHED = 0xC004D307
DNS_ERROR_RCODE_NAME_ERROR = 0x8007232B
ERROR_INTERNET_NAME_NOT_RESOLVED = 0x80072EE7
SL_I_OOB_GRACE_PERIOD = 0x4004F00C
SL_I_OOT_GRACE_PERIOD = 0x4004F00D
SL_I_PRODUCT_USER_RIGHT = 0x4004F040

RAISED_CODES = frozenset(
    {
        E_ACCESSDENIED,
        E_INVALID_DATA,
        SL_E_PKEY_NOT_INSTALLED,
        SL_E_PUBLISHING_LICENSE_NOT_INSTALLED,
        SL_E_VL_NOT_WINDOWS_SLP,
        SL_E_VL_NOT_ENOUGH_COUNT,
        SL_E_VL_KMS_ID_MISMATCH,
        SL_E_INVALID_PRODUCT_KEY,
        SL_E_VL_MACHINE_NOT_BOUND,
        SL_E_SLP_MISSING_ACPI_SLIC,
        SL_E_VL_INVALID_TIMESTAMP,
        SL_E_VL_BINDING_SERVICE_UNAVAILABLE,
        SL_E_CHPA_PRODUCT_KEY_BLOCKED,
        SL_E_MAX_REARM_REACHED,
        DNS_ERROR_RCODE_NAME_ERROR,
        ERROR_INTERNET_NAME_NOT_RESOLVED,
    }
)

# English texts as slmgr.vbs prints them (its L_MsgError_* table); None = slmgr has no text for the code and
# prints "On a computer running Microsoft Windows non-core edition, run 'slui.exe 0x2a 0x…' …" instead.
SLMGR_TEXTS: dict[int, str] = {
    0xC004C001: "The activation server determined the specified product key is invalid",
    0xC004C003: "The activation server determined the specified product key is blocked",
    0xC004C008: "The activation server determined that the specified product key could not be used",
    0xC004D307: "The maximum allowed number of re-arms has been exceeded. You must re-install the OS before "
    "trying to re-arm again",
    0xC004F009: "The software Licensing Service reported that the grace period expired",
    0xC004F014: "The Software Licensing Service reported that the product key is not available",
    0xC004F025: "Access denied: the requested action requires elevated privileges",
    0xC004F035: "The software Licensing Service reported that the computer could not be activated with a Volume "
    "license product key. Volume licensed systems require upgrading from a qualified operating system. Please "
    "contact your system administrator or use a different type of key",
    0xC004F038: "The software Licensing Service reported that the computer could not be activated. The count "
    "reported by your Key Management Service (KMS) is insufficient. Please contact your system administrator",
    0xC004F039: "The software Licensing Service reported that the computer could not be activated. The Key "
    "Management Service (KMS) is not enabled",
    0xC004F041: "The software Licensing Service determined that the Key Management Server (KMS) is not activated. "
    "KMS needs to be activated",
    0xC004F042: "The software Licensing Service determined that the specified Key Management Service (KMS) cannot "
    "be used",
    0xC004F050: "The Software Licensing Service reported that the product key is invalid",
    0xC004F051: "The software Licensing Service reported that the product key is blocked",
    0xC004F074: "The Software Licensing Service reported that the computer could not be activated. No Key "
    "Management Service (KMS) could be contacted. Please see the Application Event Log for additional "
    "information.",
    0x80070005: "Access denied: the requested action requires elevated privileges",
    0x80070057: "The parameter is incorrect",
    0x8007232A: "DNS server failure",
    0x8007232B: "DNS name does not exist",
    0x800706BA: "The RPC server is unavailable",
    0x8007251D: "No records found for DNS query",
}

# Texts for the WMI fault message (and ospp.vbs' slerror.xml lookups) for codes slmgr has no text for.
EXTRA_TEXTS: dict[int, str] = {
    0xC004F017: "The Software Licensing Service reported that the license is not installed.",
    0xC004F056: "The Software Licensing Service reported that the product could not be activated using the Key "
    "Management Service (KMS).",
    0xC004F057: "The Software Licensing Service reported that the computer BIOS is missing a required license.",
    0xC004F06C: "The Software Licensing Service reported that the computer could not be activated. The Key "
    "Management Service (KMS) determined that the request timestamp is invalid.",
    0x80072EE7: "The server name or address could not be resolved",
    0x8007000D: "The data is invalid.",
    0x4004F040: "The Software Licensing Service reported that the product was activated but the owner should "
    "verify the Product Use Rights.",
    0x4004F00C: "The Software Licensing Service reported that the application is running within the valid grace "
    "period.",
    0x4004F00D: "The Software Licensing Service reported that the application is running within the valid out of "
    "tolerance grace period.",
}


def error_text(code: int) -> str:
    """Best English text for an HRESULT (slmgr's wording first)."""
    code &= 0xFFFFFFFF
    text = SLMGR_TEXTS.get(code) or EXTRA_TEXTS.get(code)
    return text or f"Unknown error 0x{code:08X}"


def fail(code: int) -> WmiError:
    return WmiError(code, error_text(code), kind="provider")


LICENSE_STATUS_NAMES = (
    "Unlicensed",
    "Licensed",
    "OOBGrace",
    "OOTGrace",
    "NonGenuineGrace",
    "Notification",
    "ExtendedGrace",
)

# ---------------------------------------------------------------------------------------------------------
# Catalogue: operating systems, GVLKs (from tests/data/shared/domain/gvlk.yaml) and Office licenses.
# ---------------------------------------------------------------------------------------------------------


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


def _w(generation: str, edition: str, key: str, sku: str | None, family: str = "client") -> Gvlk:
    return Gvlk(key, "windows", generation, edition, sku, family)


def _o(version: str, edition: str, key: str, sku: str) -> Gvlk:
    return Gvlk(key, "office", version, edition, sku, "office")


GVLKS: tuple[Gvlk, ...] = (
    _w("win10", "Professional", "W269N-WFGWX-YVC9B-4J6C9-T83GX", "2de67392-b7a7-462a-b1ca-108dd189f588"),
    _w("win10", "ProfessionalN", "MH37W-N47XK-V7XM9-C7227-GCQG9", "a80b5abf-76ad-428b-b05d-a47d2dffeebf"),
    _w("win10", "ProfessionalWorkstation", "NRG8B-VKK3Q-CXVCJ-9G2XF-6Q84J", "82bbc092-bc50-4e16-8e18-b74fc486aec3"),
    _w("win10", "ProfessionalWorkstationN", "9FNHH-K3HBT-3W4TD-6383H-6XYWF", "4b1571d3-bafb-4b40-8087-a961be2caf65"),
    _w("win10", "ProfessionalEducation", "6TP4R-GNPTD-KYYHQ-7B7DP-J447Y", "3f1afc82-f8ac-4f6c-8005-1d233e606eee"),
    _w("win10", "ProfessionalEducationN", "YVWGF-BXNMC-HTQYQ-CPQ99-66QFC", "5300b18c-2e33-4dc2-8291-47ffcec746dd"),
    _w("win10", "Education", "NW6C2-QMPVW-D7KKK-3GKT6-VCFB2", "e0c42288-980c-4788-a014-c080d2e1926e"),
    _w("win10", "EducationN", "2WH4N-8QGBV-H22JP-CT43Q-MDWWJ", "3c102355-d027-42c6-ad23-2e7ef8a02585"),
    _w("win10", "Enterprise", "NPPR9-FWDCX-D2C8J-H872K-2YT43", "73111121-5638-40f6-bc11-f1d7b0d64300"),
    _w("win10", "EnterpriseN", "DPH2V-TTNVB-4X9Q3-TJR4H-KHJW4", "e272e3e2-732f-4c65-a8f0-484747d0d947"),
    _w("win10", "EnterpriseG", "YYVX9-NTFWV-6MDM3-9PT4T-4M68B", "e0b2d383-d112-413f-8a80-97f373a5820c"),
    _w("win10", "EnterpriseGN", "44RPN-FTY23-9VTTB-MP9BX-T84FV", "e38454fb-41a4-4f59-a5dc-25080e354730"),
    _w("win10-ltsc", "EnterpriseS", "M7XTQ-FN8P6-TTKYV-9D4CC-J462D", "32d2fab3-e4a8-42c2-923b-4bf4fd13e6ee"),
    _w("win10-ltsc", "EnterpriseSN", "92NFX-8DJQP-P6BBQ-THF9C-7CG2H", "7103a333-b8c8-49cc-93ce-d37c09687f92"),
    _w("win10-ltsc", "IoTEnterpriseS", "KBN8V-HFGQ4-MGXVD-347P6-PDQGT", "59eb965c-9150-42b7-a0ec-22151b9897c5"),
    _w("win10-ltsb2016", "EnterpriseS", "DCPHK-NFMTC-H88MJ-PFHPY-QJ4BJ", "2d5a5a60-3040-48bf-beb0-fcd770c20ce0"),
    _w("win10-ltsb2016", "EnterpriseSN", "QFFDN-GRT3P-VKWWX-X7T3R-8B639", "9f776d83-7156-45b2-8a5c-359b9c9f22a3"),
    _w("win10-ltsb2015", "EnterpriseS", "WNMTR-4C88C-JK8YV-HQ7T2-76DF9", "7b51a46c-0c04-4e8f-9af4-8496cca90d5e"),
    _w("win10-ltsb2015", "EnterpriseSN", "2F77B-TNFGY-69QQF-B8YKP-D69TJ", "87b838b7-41b6-4590-8318-5797951d8529"),
    _w("win81", "Professional", "GCRJD-8NW9H-F2CDX-CCM8D-9D6T9", "c06b6981-d7fd-4a35-b7b4-054742b7af67"),
    _w("win81", "ProfessionalN", "HMCNV-VVBFX-7HMBH-CTY9B-B4FXY", "7476d79f-8e48-49b4-ab63-4d0b813a16e4"),
    _w("win81", "Enterprise", "MHF9N-XY6XB-WVXMC-BTDCT-MKKG7", "81671aaf-79d1-4eb1-b004-8cbbe173afea"),
    _w("win81", "EnterpriseN", "TT4HM-HN7YT-62K67-RGRQJ-JFFXW", "113e705c-fa49-48a4-beea-7dd879b46b14"),
    _w("win7", "Professional", "FJ82H-XT6CR-J8D7P-XQJJ2-GPDD4", "b92e9980-b9d5-4821-9c94-140f632f6312"),
    _w("win7", "ProfessionalN", "MRPKT-YTG23-K7D7T-X2JMM-QY7MG", "54a09a0d-d57b-4c10-8b69-a842d6590ad5"),
    _w("win7", "ProfessionalE", "W82YF-2Q76Y-63HXB-FGJG9-GF7QX", "5a041529-fef8-4d07-b06f-b59b573b32d2"),
    _w("win7", "Enterprise", "33PXH-7Y6KF-2VJC9-XBBR8-HVTHH", "ae2ee509-1b34-41c0-acb7-6d4650168915"),
    _w("win7", "EnterpriseN", "YDRBP-3D83W-TY26F-D46B2-XCKRJ", "1cb6d605-11b3-4e14-bb30-da91c8e3983a"),
    _w("win7", "EnterpriseE", "C29WB-22CC8-VJ326-GHFJW-H9DH4", "46bbed08-9c7b-48fc-a614-95250573f4ea"),
    _w(
        "server2025",
        "ServerStandard",
        "TVRH6-WHNXV-R9WG3-9XRFY-MY832",
        "7dc26449-db21-4e09-ba37-28f2958506a6",
        "server",
    ),
    _w(
        "server2025",
        "ServerDatacenter",
        "D764K-2NDRG-47T6Q-P8T8W-YP6DF",
        "c052f164-cdf6-409a-a0cb-853ba0f0f55a",
        "server",
    ),
    _w("server2025", "ServerTurbine", "XGN3F-F394H-FD2MY-PP6FD-8MCRC", None, "server"),
    _w(
        "server2022",
        "ServerStandard",
        "VDYBN-27WPP-V4HQT-9VMD4-VMK7H",
        "9bd77860-9b31-4b7b-96ad-2564017315bf",
        "server",
    ),
    _w(
        "server2022",
        "ServerDatacenter",
        "WX4NM-KYWYW-QJJR4-XV3QB-6VM33",
        "ef6cfc9f-8c5d-44ac-9aad-de6a2ea0ae03",
        "server",
    ),
    _w(
        "server2022", "ServerTurbine", "NTBV8-9K7Q8-V27C6-M2BTV-KHMXV", "19b5e0fb-4431-46bc-bac1-2f1873e4ae73", "server"
    ),
    _w(
        "server2019",
        "ServerStandard",
        "N69G4-B89J2-4G8F4-WWYCC-J464C",
        "de32eafd-aaee-4662-9444-c1befb41bde2",
        "server",
    ),
    _w(
        "server2019",
        "ServerDatacenter",
        "WMDGN-G9PQG-XVVXX-R3X43-63DFG",
        "34e1ae55-27f8-4950-8877-7a03be5fb181",
        "server",
    ),
    _w(
        "server2019",
        "ServerSolution",
        "WVDHN-86M7X-466P6-VHXV7-YY726",
        "034d3cbb-5d4b-4245-b3f8-f84571314078",
        "server",
    ),
    _w(
        "server2016",
        "ServerStandard",
        "WC2BQ-8NRM3-FDDYY-2BFGV-KHKQY",
        "8c1c5410-9f39-4805-8c9d-63a07706358f",
        "server",
    ),
    _w(
        "server2016",
        "ServerDatacenter",
        "CB7KF-BWN84-R7R2Y-793K2-8XDDG",
        "21c56779-b449-4d20-adfc-eece0e1ad74b",
        "server",
    ),
    _w(
        "server2016",
        "ServerSolution",
        "JCKRF-N37P4-C2D82-9YXRT-4M63B",
        "2b5a1b0f-a5ab-4c54-ac2f-a6d94824a283",
        "server",
    ),
    _w(
        "server2012r2",
        "ServerStandard",
        "D2N9P-3P6X9-2R39C-7RTCD-MDVJX",
        "b3ca044e-a358-4d68-9883-aaa2941aca99",
        "server",
    ),
    _w(
        "server2012r2",
        "ServerDatacenter",
        "W3GGN-FT8W3-Y4M27-J84CP-Q3VJ9",
        "00091344-1ea4-4f37-b789-01750ba6988c",
        "server",
    ),
    _w(
        "server2012r2",
        "ServerSolution",
        "KNC87-3J2TX-XB4WP-VCPJV-M4FWM",
        "21db6ba4-9a7b-4a14-9e29-64a60c59301d",
        "server",
    ),
    _w(
        "server2012",
        "ServerStandard",
        "XC9B7-NBPP2-83J2H-RHMBY-92BT4",
        "f0f5ec41-0d55-4732-af02-440a44a3cf0f",
        "server",
    ),
    _w(
        "server2012",
        "ServerDatacenter",
        "48HP8-DN98B-MYWDG-T2DCC-8W83P",
        "d3643d60-0c42-412d-a7d6-52e6635327f6",
        "server",
    ),
    _w(
        "server2012",
        "ServerSolution",
        "HTDQM-NBMMG-KGYDT-2DTKT-J2MPV",
        "8f365ba6-c1b9-4223-98fc-282a0756a3ed",
        "server",
    ),
    _o("2024", "ProPlus2024", "XJ2XN-FW8RK-P4HMP-DKDBV-GCVGB", "8d368fc1-9470-4be2-8d66-90e836cbb051"),
    _o("2024", "Standard2024", "V28N4-JG22K-W66P8-VTMGK-H6HGR", "bbac904f-6a7e-418a-bb4b-24c85da06187"),
    _o("2021", "ProPlus2021", "FXYTK-NJJ8C-GB6DW-3DYQT-6F7TH", "fbdb3e18-a8ef-4fb3-9183-dffd60bd0984"),
    _o("2021", "Standard2021", "KDX7X-BNVR8-TXXGX-4Q7Y8-78VT3", "080a45c5-9f9f-49eb-b4b0-c3c610a5ebd3"),
    _o("2019", "ProPlus2019", "NMMKJ-6RK4F-KMJVX-8D9MJ-6MWKP", "85dd8b5f-eaa4-4af3-a628-cce9e77c9a03"),
    _o("2019", "Standard2019", "6NWWJ-YQWMR-QKGCB-6TMB3-9D9HK", "6912a74b-a5fb-401a-bfdb-2e3ab46f4b02"),
    _o("2016", "ProPlus", "XQNVK-8JYDB-WJ9W3-YJ8YR-WFG99", "d450596f-894d-49e0-966a-fd39ed4c4c64"),
    _o("2016", "Standard", "JNRGM-WHDWX-FJJG3-K47QV-DRTFM", "dedfa23d-6ed1-45a6-85dc-63cae0546de6"),
    _o("2013", "ProPlus", "YC7DK-G2NP3-2QQC3-J6H88-GVGXT", "b322da9c-a2e2-4058-9e4e-f59a6970bd69"),
    _o("2013", "Standard", "KBKQT-2NMXY-JJWGP-M62JB-92CD4", "b13afb38-cd79-4ae5-9f7f-eed058d750ca"),
)
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


# ---------------------------------------------------------------------------------------------------------
# SKU rows
# ---------------------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------------------------------------

Phase = Literal["none", "oob", "kms", "oot", "notification", "permanent"]


@dataclass(slots=True)
class KmsSetting:
    machine: str | None = None
    port: int = 0  # 0 = not set (1688 is used)


@dataclass(slots=True)
class ServiceState:
    """SoftwareLicensingService (SPP) or OfficeSoftwareProtectionService (OSPP) settings."""

    version: str
    cmid: str
    kms: KmsSetting = field(default_factory=KmsSetting)
    host_caching: bool = True
    lookup_domain: str | None = None
    rearm_count: int = 1001
    activation_interval: int = ACTIVATION_INTERVAL
    renewal_interval: int = RENEWAL_INTERVAL


@dataclass(slots=True)
class ProductLicense:
    """One application (Windows or Office): its SKU rows, the installed key and the timer of the keyed SKU."""

    app: Literal["windows", "office"]
    kms_product: str  # windows | server | office (what the KMS host counts)
    skus: tuple[Sku, ...]
    service: ServiceState
    key: str | None = None
    key_sku: Sku | None = None
    phase: Phase = "none"
    phase_end: datetime | None = None
    reason: int = SL_E_PKEY_NOT_INSTALLED
    oob_end: datetime | None = None  # machine-wide OOB grace end (used when a new key is installed)
    blocked: bool = False
    corrupt: bool = False
    slic_without_marker: bool = False
    own_keys: dict[str, Sku] = field(default_factory=dict)  # retail/OEM/MAK keys this PC shipped with
    permanent_keys: set[str] = field(default_factory=set)  # keys that were permanently activated
    overrides: dict[str, KmsSetting] = field(default_factory=dict)  # product-level KMS settings, per SKU id
    kms_ip: str | None = None  # DiscoveredKeyManagementServiceMachineIpAddress after a KMS activation
    kms_epid: str | None = None  # KeyManagementServiceProductKeyID
    last_activation: datetime | None = None
    last_error: int | None = None
    sku_rearm: int = 1001
    office_version: int | None = None

    # -- timers ---------------------------------------------------------------------------------------
    def tick(self, now: datetime) -> None:
        for _ in range(4):
            if self.phase_end is None or now < self.phase_end:
                return
            if self.phase == "kms":
                self.phase, self.reason = "oot", SL_I_OOT_GRACE_PERIOD
                self.phase_end = self.phase_end + timedelta(days=OOT_GRACE_DAYS)
            elif self.phase in ("oob", "oot"):
                self.phase, self.reason, self.phase_end = "notification", SL_E_GRACE_TIME_EXPIRED, None
            else:
                return

    def status(self) -> int:
        return {"none": 0, "oob": 2, "kms": 1, "oot": 3, "notification": 5, "permanent": 1}[self.phase]

    def grace_minutes(self, now: datetime) -> int:
        if self.phase_end is None or self.phase in ("permanent", "none", "notification"):
            return 0
        return max(0, math.ceil((self.phase_end - now).total_seconds() / 60))

    def start_oob_or_notification(self, now: datetime) -> None:
        if self.oob_end is not None and now < self.oob_end:
            self.phase, self.phase_end, self.reason = "oob", self.oob_end, SL_I_OOB_GRACE_PERIOD
        else:
            self.phase, self.phase_end, self.reason = "notification", None, SL_E_GRACE_TIME_EXPIRED

    def sku(self, sku_id: str) -> Sku | None:
        wanted = sku_id.strip().strip("{}").lower()
        for s in self.skus:
            if s.id == wanted:
                return s
        return None

    def kms_setting(self, sku: Sku) -> KmsSetting:
        """Effective KMS host/port for a SKU: the product-level override, else the service setting."""
        own = self.overrides.get(sku.id)
        machine = own.machine if own and own.machine else self.service.kms.machine
        port = own.port if own and own.port else self.service.kms.port
        return KmsSetting(machine, port)


@dataclass(frozen=True, slots=True)
class SkuView:
    """Everything WMI shows about one SKU row (computed at read time)."""

    product: ProductLicense
    sku: Sku
    has_key: bool
    partial_key: str | None
    license_status: int
    reason: int
    grace_minutes: int
    kms: KmsSetting
    service: ServiceState


@dataclass(frozen=True, slots=True)
class ActivationPlan:
    product: ProductLicense
    sku: Sku
    address: str | None  # None = resolved as unreachable without any traffic
    port: int
    request: dict[str, Any]
    host_text: str


class Licensing:
    """All licensing state of one PC. Not thread-safe by itself: ``Machine`` serialises access with its lock."""

    def __init__(self, config: LabHostConfig, world: LabWorld) -> None:
        self.world = world
        self.pc_name = config.computer_name
        self.lab_name = config.name  # the PC's name in the spec (what lab/timing.py draws by)
        self.os = os_info(config.os)
        self.clock_skew_minutes = config.clock_skew_minutes
        now = world.clock.now()
        cmid = world.cloned_cmid if config.cloned_cmid else world.new_guid()
        self.spp = ServiceState(version=self.os.spp_version, cmid=cmid, rearm_count=self.os.rearm_count)
        self.ospp: ServiceState | None = None
        if config.office is not None and self.os.is_win7:
            office_cmid = world.cloned_office_cmid if config.cloned_cmid else world.new_guid()
            self.ospp = ServiceState(version="15.0.4420.1017", cmid=office_cmid, rearm_count=5)
        kms_host = (config.kms_host or "none").strip()
        if kms_host.lower() == "lab":
            self._set_all_services(*world.kms_endpoint())
        elif kms_host.lower() not in ("none", ""):
            self._set_all_services(*split_host_port(kms_host))
        self.windows = self._build_windows(config, now)
        self.office: ProductLicense | None = None
        if config.office is not None:
            self.office = self._build_office(config.office, self.ospp or self.spp, now)

    def _set_all_services(self, host: str, port: int) -> None:
        for service in self.services():
            service.kms = KmsSetting(host, 0 if port == DEFAULT_KMS_PORT else port)

    # -- construction ---------------------------------------------------------------------------------
    def _build_windows(self, config: LabHostConfig, now: datetime) -> ProductLicense:
        skus = _windows_skus(self.os, config.edition_id, config.family)
        product = ProductLicense(
            app="windows",
            kms_product="server" if config.family == "server" else "windows",
            skus=skus,
            service=self.spp,
            sku_rearm=self.os.rearm_count,
        )
        channel = config.windows_channel
        by_channel = {s.channel: s for s in skus}
        gvlk = windows_gvlk(self.os.generation, config.edition_id)
        if channel in ("volume", "oem_slic") and gvlk is not None:
            sku, key = by_channel["VOLUME_KMSCLIENT"], gvlk.key
        elif channel == "mak" and gvlk is not None:
            sku, key = by_channel["VOLUME_MAK"], self._synthetic_key("mak")
        elif channel in ("oem", "oem_slic"):
            sku, key = by_channel["OEM_SLP" if self.os.is_win7 else "OEM_DM"], self._synthetic_key("oem")
        else:  # retail, or a volume channel on an edition without volume licensing (Home, Ultimate)
            sku, key = by_channel["RETAIL"], self._synthetic_key("retail")
        product.key, product.key_sku = key, sku
        if not sku.is_kms_client:
            product.own_keys[key] = sku
        product.blocked = config.blocked_key
        product.slic_without_marker = channel == "oem_slic"
        self._initial_state(product, sku, config.windows_state, config.days_left, now)
        return product

    def _build_office(self, office: OfficeSpec, service: ServiceState, now: datetime) -> ProductLicense:
        skus = _office_skus(office)
        product = ProductLicense(
            app="office", kms_product="office", skus=skus, service=service, sku_rearm=5, office_version=office.version
        )
        sku = skus[0]
        key = office_gvlk(office.version).key if sku.is_kms_client else self._synthetic_key("office")
        product.key, product.key_sku = key, sku
        if not sku.is_kms_client:
            product.own_keys[key] = sku
        product.corrupt = office.state == "corrupt"
        state = "unlicensed" if office.state == "corrupt" else office.state
        self._initial_state(product, sku, state, office.days_left if office.days_left is not None else 180, now)
        return product

    def _initial_state(self, product: ProductLicense, sku: Sku, state: str, days_left: int, now: datetime) -> None:
        product.oob_end = now + timedelta(days=min(days_left, OOB_GRACE_DAYS))
        if state == "unlicensed":
            product.start_oob_or_notification(now)
            return
        product.oob_end = now - timedelta(days=1)  # a licensed PC consumed its OOB grace long ago
        if sku.is_kms_client:
            days = days_left if state == "licensed" or days_left < 180 else 10
            product.phase, product.reason = "kms", SL_I_PRODUCT_USER_RIGHT
            product.phase_end = now + timedelta(days=days)
            product.kms_epid = self.world.kms_host_epid
            product.last_activation = product.phase_end - timedelta(minutes=VALIDITY_MINUTES)
            host = self.spp.kms.machine or self.world.kms_address
            product.kms_ip = host if _is_ip(host) else None
        elif sku.channel == "TIMEBASED_SUB":
            product.phase, product.reason = "kms", 0  # time-based: grace counts down, then OOT like KMS
            product.phase_end = now + timedelta(days=days_left if days_left else 30)
        else:
            product.phase, product.phase_end, product.reason = "permanent", None, 0
            if product.key:
                product.permanent_keys.add(product.key)
        product.tick(now)

    def _synthetic_key(self, kind: str) -> str:
        while True:
            groups = [
                "".join(_KEY_CHARS[self.world.randint(0, len(_KEY_CHARS) - 1)] for _ in range(5)) for _ in range(5)
            ]
            key = "-".join(groups)
            if key not in _GVLK_BY_KEY:
                return key

    # -- lookups ----------------------------------------------------------------------------------------
    def services(self) -> list[ServiceState]:
        return [self.spp] + ([self.ospp] if self.ospp is not None else [])

    def products(self) -> list[ProductLicense]:
        return [self.windows] + ([self.office] if self.office is not None else [])

    def spp_products(self) -> list[ProductLicense]:
        """Products whose rows appear in SoftwareLicensingProduct."""
        return [p for p in self.products() if p.service is self.spp]

    def ospp_products(self) -> list[ProductLicense]:
        return [p for p in self.products() if self.ospp is not None and p.service is self.ospp]

    def views(self, products: list[ProductLicense]) -> list[SkuView]:
        now = self.world.clock.now()
        out = []
        for product in products:
            product.tick(now)
            for sku in product.skus:
                out.append(self._view(product, sku, now))
        return out

    def _view(self, product: ProductLicense, sku: Sku, now: datetime) -> SkuView:
        keyed = product.key_sku is sku and product.key is not None
        if keyed:
            status, reason, grace = product.status(), product.reason, product.grace_minutes(now)
        else:
            status, reason, grace = 0, SL_E_PKEY_NOT_INSTALLED, 0
        return SkuView(
            product=product,
            sku=sku,
            has_key=keyed,
            partial_key=product.key[-5:] if keyed and product.key else None,
            license_status=status,
            reason=reason,
            grace_minutes=grace,
            kms=product.kms_setting(sku),
            service=product.service,
        )

    def find(self, sku_id: str, service: ServiceState | None = None) -> tuple[ProductLicense, Sku]:
        for product in self.products():
            if service is not None and product.service is not service:
                continue
            sku = product.sku(sku_id)
            if sku is not None:
                return product, sku
        raise WmiError(0x80041002, "Not found", kind="not_found")

    # -- methods (SoftwareLicensingService / OfficeSoftwareProtectionService) -----------------------------
    def install_product_key(self, service: ServiceState, key: str, admin: bool) -> None:
        if not admin:
            raise fail(E_ACCESSDENIED)
        key = key.strip().upper()
        if not key_shape_ok(key):
            raise fail(SL_E_INVALID_PRODUCT_KEY)
        now = self.world.clock.now()
        gvlk = find_gvlk(key)
        for product in self.products():
            if product.service is not service:
                continue
            if key in product.own_keys:
                self._install(product, product.own_keys[key], key, now)
                return
        if gvlk is None:
            raise fail(SL_E_INVALID_PRODUCT_KEY)
        if gvlk.app == "windows":
            product = self.windows
            if service is not product.service:
                raise fail(SL_E_INVALID_PRODUCT_KEY)
            target = next((s for s in product.skus if s.is_kms_client), None)
            if target is None or gvlk.generation != self.os.generation or gvlk.edition != target.license_family:
                raise fail(SL_E_INVALID_PRODUCT_KEY)
            self._install(product, target, key, now)
            return
        office = self.office
        if office is None or office.service is not service or str(office.office_version) != gvlk.generation:
            raise fail(SL_E_INVALID_PRODUCT_KEY)
        target = next((s for s in office.skus if s.is_kms_client), None)
        if target is None:
            # an OEM/retail/subscription Office has no VL license files to hold a GVLK (seed: 0xC004F017)
            raise fail(SL_E_PUBLISHING_LICENSE_NOT_INSTALLED)
        if target.id != gvlk.sku_id:
            raise fail(SL_E_INVALID_PRODUCT_KEY)
        self._install(office, target, key, now)

    def _install(self, product: ProductLicense, sku: Sku, key: str, now: datetime) -> None:
        product.tick(now)
        if product.key == key and product.key_sku is sku:
            return  # the same key again: SPP keeps the license as it is
        product.key, product.key_sku = key, sku
        product.blocked = False
        product.kms_ip = None
        product.kms_epid = None
        if key in product.permanent_keys:
            product.phase, product.phase_end, product.reason = "permanent", None, 0
        else:
            product.start_oob_or_notification(now)

    def set_kms_machine(self, target: ServiceState | tuple[ProductLicense, Sku], name: str, admin: bool) -> None:
        if not admin:
            raise fail(E_ACCESSDENIED)
        name = name.strip()
        if not name or len(name) > 255:
            raise fail(E_INVALID_DATA)
        setting = self._setting(target)
        setting.machine = name

    def set_kms_port(self, target: ServiceState | tuple[ProductLicense, Sku], port_text: str, admin: bool) -> None:
        if not admin:
            raise fail(E_ACCESSDENIED)
        try:
            port = int(str(port_text).strip())
        except ValueError:
            raise fail(E_INVALID_DATA) from None
        if not 0 < port < 65536:
            raise fail(E_INVALID_DATA)
        self._setting(target).port = port

    def clear_kms_machine(self, target: ServiceState | tuple[ProductLicense, Sku], admin: bool) -> None:
        if not admin:
            raise fail(E_ACCESSDENIED)
        self._setting(target).machine = None

    def clear_kms_port(self, target: ServiceState | tuple[ProductLicense, Sku], admin: bool) -> None:
        if not admin:
            raise fail(E_ACCESSDENIED)
        self._setting(target).port = 0

    def set_host_caching(self, service: ServiceState, disable: bool, admin: bool) -> None:
        if not admin:
            raise fail(E_ACCESSDENIED)
        service.host_caching = not disable

    def rearm(self, service: ServiceState, admin: bool) -> None:
        if not admin:
            raise fail(E_ACCESSDENIED)
        if service.rearm_count <= 0:
            raise fail(SL_E_MAX_REARM_REACHED)
        service.rearm_count -= 1
        now = self.world.clock.now()
        for product in self.products():
            if product.service is service and product.phase in ("oob", "notification"):
                product.oob_end = now + timedelta(days=OOB_GRACE_DAYS)
                product.start_oob_or_notification(now)

    @staticmethod
    def _setting(target: ServiceState | tuple[ProductLicense, Sku]) -> KmsSetting:
        if isinstance(target, ServiceState):
            return target.kms
        product, sku = target
        return product.overrides.setdefault(sku.id, KmsSetting())

    # -- methods (SoftwareLicensingProduct / OfficeSoftwareProtectionProduct) ------------------------------
    def uninstall_product_key(self, product: ProductLicense, sku: Sku, admin: bool) -> None:
        if not admin:
            raise fail(E_ACCESSDENIED)
        if product.key_sku is not sku or product.key is None:
            raise fail(SL_E_PKEY_NOT_INSTALLED)
        product.key, product.key_sku = None, None
        product.phase, product.phase_end, product.reason = "none", None, SL_E_PKEY_NOT_INSTALLED
        product.kms_ip = product.kms_epid = None

    def prepare_activation(self, product: ProductLicense, sku: Sku, admin: bool) -> ActivationPlan | None:
        """Checks that need no network. Returns None when there is nothing to do (already permanently
        licensed), a plan for a KMS request otherwise; raises ``WmiError`` for local failures."""
        now = self.world.clock.now()
        product.tick(now)
        try:
            if not admin:
                raise fail(E_ACCESSDENIED)
            if product.key_sku is not sku or product.key is None:
                raise fail(SL_E_PKEY_NOT_INSTALLED)
            if product.app == "office" and product.corrupt:
                raise fail(SL_E_VL_MACHINE_NOT_BOUND)
            if product.blocked:
                raise fail(SL_E_CHPA_PRODUCT_KEY_BLOCKED)
            if not sku.is_kms_client:
                if product.status() == 1:
                    return None
                if product.app == "office":
                    raise fail(SL_E_PUBLISHING_LICENSE_NOT_INSTALLED)
                if sku.channel == "VOLUME_MAK":
                    raise fail(ERROR_INTERNET_NAME_NOT_RESOLVED)
                raise fail(SL_E_SLP_MISSING_ACPI_SLIC)
            if product.app == "windows" and self.os.is_win7 and product.slic_without_marker:
                raise fail(SL_E_VL_NOT_WINDOWS_SLP)
            setting = product.kms_setting(sku)
            if not setting.machine:
                raise fail(DNS_ERROR_RCODE_NAME_ERROR)
        except WmiError as exc:
            product.last_error = exc.hresult
            raise
        port = setting.port or DEFAULT_KMS_PORT
        address = resolve_kms_address(setting.machine)
        pc_time = now + timedelta(minutes=self.clock_skew_minutes)
        request = {
            "v": 1,
            "op": "activate",
            "cmid": product.service.cmid,
            "product": product.kms_product,
            "sku": sku.id,
            "client_time": pc_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "pc": self.pc_name,
        }
        return ActivationPlan(product, sku, address, port, request, setting.machine)

    def complete_activation(self, plan: ActivationPlan, answer: dict[str, Any] | None) -> None:
        """Apply the KMS answer (None = unreachable). Raises ``WmiError`` on failure."""
        product = plan.product
        if answer is None:
            product.last_error = SL_E_VL_BINDING_SERVICE_UNAVAILABLE
            raise fail(SL_E_VL_BINDING_SERVICE_UNAVAILABLE)
        if not answer.get("ok"):
            try:
                code = parse_hresult(str(answer.get("hresult", "")))
            except ValueError:
                code = SL_E_VL_BINDING_SERVICE_UNAVAILABLE
            if code not in RAISED_CODES or code == E_INVALID_DATA:
                code = SL_E_VL_BINDING_SERVICE_UNAVAILABLE
            product.last_error = code
            raise fail(code)
        now = self.world.clock.now()
        validity = int(answer.get("validity_minutes", VALIDITY_MINUTES))
        product.phase, product.reason = "kms", SL_I_PRODUCT_USER_RIGHT
        product.phase_end = now + timedelta(minutes=validity)
        product.kms_ip = plan.address
        product.kms_epid = str(answer.get("host_epid", "")) or None
        product.last_activation = now
        product.last_error = None
        service = product.service
        service.renewal_interval = int(answer.get("renewal_minutes", RENEWAL_INTERVAL))
        service.activation_interval = int(answer.get("activation_interval_minutes", ACTIVATION_INTERVAL))

    async def activate(self, product: ProductLicense, sku: Sku, admin: bool, lock: threading.RLock) -> None:
        """Activate one SKU: local checks under ``lock``, the KMS round trip without it, then the result."""
        with lock:
            plan = self.prepare_activation(product, sku, admin)
        if plan is None:
            return
        answer: dict[str, Any] | None = None
        if plan.address is not None:
            # lab/timing.py: the client-side wait for a host that never answers (the TCP connect timeout with
            # windows timing), and one KMS round trip when it does answer.
            timing = self.world.timing.pc(self.lab_name)
            try:
                answer = await kms_activate(plan.address, plan.port, plan.request, timing.kms_timeout_s)
            except KmsUnreachable:
                answer = None
            else:
                round_trip = timing.get("kms_round_trip")
                if round_trip > 0:
                    await asyncio.sleep(round_trip)
        with lock:
            self.complete_activation(plan, answer)

    # -- ground truth ---------------------------------------------------------------------------------
    def snapshot(self) -> list[dict[str, Any]]:
        now = self.world.clock.now()
        out = []
        for product in self.products():
            product.tick(now)
            sku = product.key_sku or next((s for s in product.skus if s.is_kms_client), product.skus[0])
            status = product.status() if product.key_sku else 0
            grace = product.grace_minutes(now) if product.key_sku else 0
            setting = product.kms_setting(sku)
            out.append(
                {
                    "product": product.kms_product,
                    "name": sku.name,
                    "activation_id": sku.id,
                    "channel": sku.product_key_channel if product.key_sku else None,
                    "description": sku.description,
                    "partial_key": product.key[-5:] if product.key and product.key_sku else None,
                    "license_status": status,
                    "license_status_name": LICENSE_STATUS_NAMES[status],
                    "license_status_reason": f"0x{product.reason & 0xFFFFFFFF:08X}",
                    "grace_minutes": grace,
                    "days_left": math.ceil(grace / 1440) if grace else 0,
                    "kms_host": setting.machine,
                    "kms_port": setting.port or (DEFAULT_KMS_PORT if setting.machine else 0),
                    "last_error": f"0x{product.last_error:08X}" if product.last_error is not None else None,
                    "cmid": product.service.cmid,
                    "blocked_key": product.blocked,
                    "corrupt": product.corrupt,
                }
            )
        return out


def _is_ip(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def resolve_kms_address(name: str) -> str | None:
    """The address the lab would connect to for a KMS host name, or None when it is unreachable without any
    traffic (not loopback, or a DNS name the lab cannot resolve)."""
    text = name.strip()
    if text.lower() == "localhost":
        return "127.0.0.1"
    if _is_ip(text):
        host = text.strip("[]")
        return host if is_loopback(host) else None
    return None


def split_host_port(text: str) -> tuple[str, int]:
    """Split ``host[:port]`` / ``[v6]:port`` the way slmgr /skms does (port 1688 when absent)."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        end = text.index("]")
        host, rest = text[: end + 1], text[end + 1 :]
        port = rest[1:] if rest.startswith(":") else ""
    elif ":" in text:
        host, port = text.split(":", 1)
    else:
        host, port = text, ""
    return host, int(port) if port.isdigit() else DEFAULT_KMS_PORT
