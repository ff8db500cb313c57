"""Why did an activation fail? The HRESULT Windows reported, refined with what kmsfleet can check itself.

docs/reference.md §1.5: slmgr usually shows the outer 0xC004F074 ("no KMS could be contacted") when the real reason is a
clock the KMS host rejects (0xC004F06C), so kmsfleet checks the clock before blaming the network, and then tests
TCP from the PC to the KMS host. 0xC004F038 (count too low) on PCs that share one CMID is a cloned image
(docs/reference.md §1.4). 0x80070005 over WinRM means the account is not an (elevated) administrator.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.knowledge import catalogue
from orchestrator.modules.base import ModuleContext
from orchestrator.modules.licensing import gather
from orchestrator.modules.licensing.model import KmsTarget, LicensingFacts
from orchestrator.transport.errors import WSManFault

E_ACCESS_DENIED = 0x80070005
SL_E_ACCESS_DENIED = 0xC004F025
SL_E_VL_NOT_ENOUGH_COUNT = 0xC004F038
SL_E_VL_INVALID_TIMESTAMP = 0xC004F06C
SL_E_VL_BINDING_SERVICE_UNAVAILABLE = 0xC004F074
SL_E_PKEY_NOT_INSTALLED = 0xC004F014
SL_E_PUBLISHING_LICENSE_NOT_INSTALLED = 0xC004F017
SL_E_SLP_MISSING_ACPI_SLIC = 0xC004F057
KMS_CLOCK_TOLERANCE_S = 4 * 3600  # public KMS emulators' rule; Microsoft publishes no number [unconfirmed]

UNKNOWN = "KF_UNKNOWN_ERROR"


def key_for(code: int | None) -> str:
    """The catalogue key for an HRESULT (its hex when the catalogue knows it), else KF_UNKNOWN_ERROR."""
    try:
        key = catalogue.diagnose(code, None)
    except ValueError:
        key = None
    return key or UNKNOWN


def is_licensing_fault(fault: WSManFault) -> bool:
    """A fault that carries the licensing provider's HRESULT (e.g. 0xC004F074, 0x80070005), as opposed to a
    WS-Management infrastructure fault: a WinRM quota or time-out, or another 0x8033xxxx code - wherever the
    answer carries it (``WSManFault@Code`` or ``MSFT_WmiError/error_Code``) - or no code at all."""
    return not fault.infrastructure


@dataclass(frozen=True)
class Diagnosis:
    key: str
    note: str = ""


def diagnose_activation(
    ctx: ModuleContext, facts: LicensingFacts, code: int | None, target: KmsTarget | None
) -> Diagnosis:
    """Refine the diagnosis of a failed licensing call (only read-only checks)."""
    if code in (E_ACCESS_DENIED, SL_E_ACCESS_DENIED):
        return Diagnosis(
            "KF_NOT_ADMIN",
            "the WinRM account has no (elevated) administrator rights on this PC, so it may not "
            "change licensing settings",
        )
    if code in (SL_E_VL_BINDING_SERVICE_UNAVAILABLE, SL_E_VL_INVALID_TIMESTAMP):
        clock = gather.read_clock(ctx)
        if clock.offset_seconds is not None and abs(clock.offset_seconds) > KMS_CLOCK_TOLERANCE_S:
            return Diagnosis("KF_CLOCK_SKEW", f"the PC's clock is {describe_offset(clock.offset_seconds)}")
        if code == SL_E_VL_BINDING_SERVICE_UNAVAILABLE and target is not None:
            reachable = gather.kms_port_open(ctx, target, facts.os)
            if reachable is False:
                return Diagnosis("KF_KMS_PORT_BLOCKED", f"the PC cannot open TCP {target.text}")
        if clock.offset_seconds is None:
            # never "the clock is fine" when it could not be read
            return Diagnosis(key_for(code), "the PC's clock could not be read, so a wrong clock is not ruled out")
    if code == SL_E_VL_NOT_ENOUGH_COUNT and facts.spp.cmid:
        mine = facts.spp.cmid.lower()
        twins = sorted(h for h, cmid in gather.registered_cmids(ctx).items() if cmid == mine)
        if twins:
            return Diagnosis(
                "KF_CLONED_CMID",
                f"this PC shares its CMID {facts.spp.cmid} with {', '.join(twins)}, so the KMS host "
                "counts them as one PC",
            )
    return Diagnosis(key_for(code))


def describe_offset(seconds: float) -> str:
    """'16.0 h ahead of the controller', '25 min behind the controller'."""
    magnitude = abs(seconds)
    direction = "ahead of" if seconds > 0 else "behind"
    if magnitude >= 3600:
        amount = f"{magnitude / 3600:.1f} h"
    elif magnitude >= 60:
        amount = f"{magnitude / 60:.0f} min"
    else:
        amount = f"{magnitude:.0f} s"
    return f"{amount} {direction} the controller's clock"
