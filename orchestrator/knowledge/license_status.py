"""The names of ``LicenseStatus`` values of ``SoftwareLicensingProduct`` / ``OfficeSoftwareProtectionProduct``
as Microsoft documents them (SoftwareLicensingProduct class, Win32 docs): 0 Unlicensed, 1 Licensed,
2 OOBGrace, 3 OOTGrace, 4 NonGenuineGrace, 5 Notification, 6 ExtendedGrace. Read by the licensing modules
and by the lab."""

from __future__ import annotations

LICENSE_STATUS_NAMES = (
    "Unlicensed",
    "Licensed",
    "OOBGrace",
    "OOTGrace",
    "NonGenuineGrace",
    "Notification",
    "ExtendedGrace",
)
