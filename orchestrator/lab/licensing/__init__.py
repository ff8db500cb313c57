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

Modules: ``codes`` (HRESULTs, slmgr texts, timer constants), ``catalogue`` (operating systems, GVLKs from
``orchestrator/knowledge/gvlk.yaml``, SKU rows), ``state`` (service settings, product licenses, views) and
``engine`` (``Licensing``). The names other modules import are re-exported here.
"""

from __future__ import annotations

from orchestrator.knowledge.license_status import LICENSE_STATUS_NAMES
from orchestrator.lab.licensing.catalogue import (
    GVLKS,
    Gvlk,
    OsInfo,
    Sku,
    digest_int,
    find_gvlk,
    installation_id,
    key_shape_ok,
    office_gvlk,
    os_info,
    product_key_id,
    windows_gvlk,
)
from orchestrator.lab.licensing.codes import (
    DEFAULT_KMS_PORT,
    EXTRA_TEXTS,
    OFFICE_APP_ID,
    RAISED_CODES,
    SLMGR_TEXTS,
    WINDOWS_APP_ID,
    error_text,
    fail,
)
from orchestrator.lab.licensing.engine import Licensing, resolve_kms_address, split_host_port
from orchestrator.lab.licensing.state import ActivationPlan, KmsSetting, ProductLicense, ServiceState, SkuView

__all__ = [
    "DEFAULT_KMS_PORT",
    "EXTRA_TEXTS",
    "GVLKS",
    "LICENSE_STATUS_NAMES",
    "OFFICE_APP_ID",
    "RAISED_CODES",
    "SLMGR_TEXTS",
    "WINDOWS_APP_ID",
    "ActivationPlan",
    "Gvlk",
    "KmsSetting",
    "Licensing",
    "OsInfo",
    "ProductLicense",
    "ServiceState",
    "Sku",
    "SkuView",
    "digest_int",
    "error_text",
    "fail",
    "find_gvlk",
    "installation_id",
    "key_shape_ok",
    "office_gvlk",
    "os_info",
    "product_key_id",
    "resolve_kms_address",
    "split_host_port",
    "windows_gvlk",
]
