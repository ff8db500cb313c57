"""The codes and texts of Windows licensing as the lab raises them: application ids, the timer constants,
the HRESULTs (``RAISED_CODES``), slmgr's English texts and ``LicenseStatus`` names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.lab.provider import WmiError

if TYPE_CHECKING:  # pragma: no cover
    pass


WINDOWS_APP_ID = "55c92734-d682-4d71-983e-d6ec3f16059f"


OFFICE_APP_ID = "0ff1ce15-a989-479d-af46-f275c6370663"


DEFAULT_KMS_PORT = 1688


VALIDITY_MINUTES = 259_200


OOB_GRACE_DAYS = 30


OOT_GRACE_DAYS = 30


ACTIVATION_INTERVAL = 120


RENEWAL_INTERVAL = 10_080


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
