"""office_kms: activate volume Office 2013 (Office15) and 2016/2019 (Office16), 32- or 64-bit, MSI or
Click-to-Run, through the configured KMS host.

Office 2013+ on Windows 8/10/11 keeps its licences in the Windows SPP classes (application ID 0ff1ce15-…); on
Windows 7 in the OSPP classes (docs/reference.md §2.3). The KMS host is set on each Office KMS licence, as ``ospp.vbs
/sethst`` does, so Windows' own setting is not touched.

Only volume (VOLUME_KMSCLIENT) Office can be KMS-activated. Retail, preinstalled OEM and Microsoft 365
(subscription) Office are reported with the bureau's removal guidance - KF_RETAIL_OFFICE, KF_OEM_OFFICE and
KF_SUBSCRIPTION_OFFICE, all with the Q&A's 0xC004F017 (a volume-licence-less Office; what activating it
returns) - and never removed or activated by kmsfleet (activating a retail licence would contact Microsoft's
servers, not the school's KMS host). A damaged Office fails with the error its activation returns (the Q&A's
0xC004F056).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import Field, field_validator

from orchestrator.knowledge import gvlk
from orchestrator.modules.base import Module, ModuleContext, ModuleOutcome, register
from orchestrator.modules.licensing import gather
from orchestrator.modules.licensing.apply import run_plan
from orchestrator.modules.licensing.diagnose import SL_E_PUBLISHING_LICENSE_NOT_INSTALLED
from orchestrator.modules.licensing.model import Action, Change, KmsTarget, LicensingFacts, Plan, Problem, Sku
from orchestrator.modules.licensing.windows_kms import KmsArgs, healthy, kms_setting_changes

OFFICE_VERSIONS = ("2013", "2016", "2019", "2021", "2024")
_REMOVE = (
    "kmsfleet never removes Office: at the PC, uninstall it in Control Panel, run Microsoft's Office uninstall "
    "troubleshooter, restart, then install the bureau's volume Office"
)


class OfficeKmsArgs(KmsArgs):
    version: str = Field("any", description="2013, 2016, 2019 (also 2021, 2024) or any")
    install_gvlk: bool = Field(False, description="install the public Office GVLK over a MAK that is not activated")
    activate: bool = Field(True, description="activate (false: only set the KMS host/port)")

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, v: Any) -> str:
        text = str(v).strip().lower()
        if text not in (*OFFICE_VERSIONS, "any"):
            raise ValueError(f"version must be one of {', '.join(OFFICE_VERSIONS)} or any, not {v!r}")
        return text


def office_in_scope(facts: LicensingFacts, version: str) -> list[Sku]:
    skus = [s for s in facts.office_skus if version == "any" or str(s.office_version) == version]
    return sorted(skus, key=lambda s: (s.is_addon, s.name))


def _office_edition(family: str) -> str:
    text = re.sub(r"^Office(\d\d)?", "", family)
    return re.sub(r"(VL_MAK|VL_KMS_Client)(_AE)?$", "", text)


#: Office kinds KMS cannot activate: kind → (problem code, message; {name} and {status} are the licence's).
_NOT_KMS: dict[str, tuple[str, str]] = {
    "subscription": (
        "KF_SUBSCRIPTION_OFFICE",
        "{name} is Microsoft 365 (subscription) Office, licensed by the user's account, not by KMS; "
        f"leave it if the user has a Microsoft 365 licence, otherwise {_REMOVE}",
    ),
    "oem": (
        "KF_OEM_OFFICE",
        f"{{name}} is preinstalled (OEM) Office, which KMS cannot activate (the bureau's Q&A: 0xC004F017); {_REMOVE}",
    ),
    "retail": (
        "KF_RETAIL_OFFICE",
        f"{{name}} is retail Office ({{status}}), which KMS cannot activate (0xC004F017); {_REMOVE}",
    ),
}


def _problem(sku: Sku, message: str, code: str = "KF_NO_OFFICE_KMS_SKU") -> Problem:
    return Problem(message, code, SL_E_PUBLISHING_LICENSE_NOT_INSTALLED, sku.name)


def _volume_changes(facts: LicensingFacts, sku: Sku, args: OfficeKmsArgs) -> list[Change]:
    """A volume licence that is not healthy: point it at the KMS host (and activate)."""
    target = args.target
    changes = kms_setting_changes(facts, sku, target, app="office", product_level=True)
    if args.activate:
        changes.append(Change("activate", "office", sku.name, value=target.text, service=sku.service, sku_id=sku.id))
    return changes


def _gvlk_changes(sku: Sku, entry: gvlk.GvlkEntry, args: OfficeKmsArgs) -> list[Change]:
    """A MAK that is not activated, with install_gvlk: install the public GVLK over it, then set its KMS host."""
    target = args.target

    def on_gvlk(action: Action, value: str | int) -> Change:
        # the GVLK's licence (entry.sku_id) exists once the key is installed: set it like /sethst
        return Change(action, "office", entry.product, value=value, service=sku.service, sku_id=entry.sku_id)

    changes = [Change("install_key", "office", entry.product, value=entry.key, before="MAK", service=sku.service)]
    changes.append(on_gvlk("set_kms_host", target.machine_name))
    if target.port != 1688:
        changes.append(on_gvlk("set_kms_port", target.port))
    if args.activate:
        changes.append(on_gvlk("activate", target.text))
    return changes


def _plan_sku(facts: LicensingFacts, sku: Sku, args: OfficeKmsArgs) -> Plan:
    """What office_kms does about one Office licence."""
    kind = sku.office_kind
    target = args.target
    if kind == "volume":
        if healthy(facts, sku, target, args.renew_below_days):
            return Plan(notes=(f"{sku.name} is licensed through {target.text}, {sku.days_left} days left",))
        return Plan(changes=tuple(_volume_changes(facts, sku, args)))
    if kind in _NOT_KMS:
        code, message = _NOT_KMS[kind]
        return Plan(problems=(_problem(sku, message.format(name=sku.name, status=sku.status_name), code),))
    if kind == "mak" and sku.permanent:
        return Plan(notes=(f"{sku.name} is permanently activated with a MAK (not a KMS client); left as it is",))
    if kind == "mak" and args.install_gvlk and sku.office_version:
        entry = gvlk.office_gvlk(sku.office_version, _office_edition(sku.family))
        if entry is None:
            return Plan(problems=(_problem(sku, f"{sku.name}: no public KMS client key for this edition"),))
        return Plan(changes=tuple(_gvlk_changes(sku, entry, args)))
    hint = "; install_gvlk: true would install the Office GVLK" if kind == "mak" else ""
    return Plan(
        problems=(_problem(sku, f"{sku.name} ({sku.channel}, {sku.status_name}) is not a volume KMS licence{hint}"),)
    )


def plan_office(facts: LicensingFacts, args: OfficeKmsArgs) -> Plan:
    """What office_kms will do on a PC in this state (pure): each Office licence in scope planned on its own."""
    skus = office_in_scope(facts, args.version)
    wanted = "Office" if args.version == "any" else f"Office {args.version}"
    if not skus:
        return Plan(notes=(f"no {wanted} licence on this PC; nothing to do",))
    plans = [_plan_sku(facts, sku, args) for sku in skus]
    return Plan(
        changes=tuple(c for p in plans for c in p.changes),
        problems=tuple(q for p in plans for q in p.problems),
        notes=tuple(n for p in plans for n in p.notes),
    )


def office_facts(facts: LicensingFacts) -> dict[str, Any]:
    return {
        "kmsfleet_office_status": {s.name: s.status_name for s in facts.office_skus},
        "kmsfleet_office_cmid": (facts.ospp or facts.spp).cmid,
    }


def verify_office(facts: LicensingFacts, activated: Sequence[str], target: KmsTarget, version: str) -> list[str]:
    problems: list[str] = []
    by_id = {s.id: s for s in facts.office_skus}
    for sku_id in activated:
        sku = by_id.get(sku_id)
        if sku is None:
            problems.append(f"the Office licence {sku_id} disappeared after activation")
        elif not (sku.status == 1 and sku.grace_minutes > 0):
            problems.append(
                f"activation of {sku.name} was not confirmed: Office reports {sku.status_name} "
                f"with {sku.grace_minutes} minutes of grace"
            )
    for sku in office_in_scope(facts, version):
        if sku.office_kind == "volume":
            machine, port = facts.effective_kms(sku)
            if not target.matches(machine, port):
                problems.append(f"{sku.name} still uses KMS host {facts.effective_kms_text(sku) or 'none'}")
    return problems


@register
class OfficeKms(Module[OfficeKmsArgs]):
    name = "office_kms"
    args_model = OfficeKmsArgs
    supports_check = True
    description = (
        "Activate volume Office 2013/2016/2019 (MSI or Click-to-Run, x86/x64; OSPP on Windows 7) through kms_host; "
        "reports retail/OEM/Microsoft 365 Office with the bureau's removal guidance."
    )

    def run(self, ctx: ModuleContext, args: OfficeKmsArgs) -> ModuleOutcome:
        facts = gather.read_licensing(ctx)
        plan = plan_office(facts, args)
        target = args.target
        return run_plan(
            ctx,
            facts,
            plan,
            what="Office",
            target=target,
            relevant=lambda f: office_in_scope(f, args.version),
            verify=lambda f, activated: verify_office(f, activated, target, args.version),
            extra_facts=office_facts,
        )
