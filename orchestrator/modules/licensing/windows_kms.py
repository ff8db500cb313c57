"""windows_kms: make Windows (10/11, 7, Server 2016/2019) a KMS client of the configured host and activate it.

gather → plan → apply → verify:
- gather: SoftwareLicensingService / SoftwareLicensingProduct (keyed rows) and the OS (read-only).
- plan (``plan_windows``, pure): KMS host/port only if different; the public GVLK of the detected edition when
  the PC carries a non-volume key, Windows is not activated and ``install_gvlk`` allows it; activation unless
  the PC is already licensed through this host with more than ``renew_below_days`` days left.
- apply: WMI methods (never retried). Check mode stops before apply and reports "would …".
- verify: re-read; success is LicenseStatus 1 with GracePeriodRemaining > 0, never an exit code.

Choices (documented in the module arguments): a permanently activated Windows (retail/OEM/MAK key, Licensed,
no grace period) is left alone and reported ok - it is legally activated, just not by KMS; ``install_gvlk`` only
converts PCs that are *not* activated. Windows without a GVLK for its edition (Home, Ultimate, Evaluation) can
only be reported (KF_NON_VOLUME_WINDOWS with the Q&A's 0xC004F057).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field, field_validator

from orchestrator.knowledge import gvlk
from orchestrator.modules.base import Module, ModuleArgs, ModuleContext, ModuleOutcome, register
from orchestrator.modules.licensing import gather
from orchestrator.modules.licensing.apply import run_plan
from orchestrator.modules.licensing.diagnose import SL_E_PKEY_NOT_INSTALLED, SL_E_SLP_MISSING_ACPI_SLIC
from orchestrator.modules.licensing.model import (
    Change,
    KmsTarget,
    LicensingFacts,
    Plan,
    Problem,
    Sku,
    parse_kms_target,
    same_host,
)

DEFAULT_RENEW_BELOW_DAYS = 30


class KmsArgs(ModuleArgs):
    kms_host: str = Field(min_length=1, description="KMS host name or IP, optionally host:port")
    kms_port: int | None = Field(None, ge=1, le=65535, description="default 1688 (or the port in kms_host)")
    renew_below_days: int = Field(
        DEFAULT_RENEW_BELOW_DAYS,
        ge=0,
        le=180,
        description="a licence through this host with more days left than this is left alone",
    )

    @field_validator("kms_host")
    @classmethod
    def _host(cls, v: str) -> str:
        parse_kms_target(v)
        return v.strip()

    @property
    def target(self) -> KmsTarget:
        return parse_kms_target(self.kms_host, self.kms_port)


class WindowsKmsArgs(KmsArgs):
    install_gvlk: bool = Field(False, description="install the edition's public GVLK on a non-volume, unactivated PC")
    activate: bool = Field(True, description="activate (false: only set the KMS host/port)")


def healthy(facts: LicensingFacts, sku: Sku, target: KmsTarget, renew_below_days: int) -> bool:
    """Licensed through ``target`` with more than ``renew_below_days`` days left."""
    machine, port = facts.effective_kms(sku)
    days = sku.days_left
    return (
        sku.status == 1
        and sku.grace_minutes > 0
        and days is not None
        and days > renew_below_days
        and target.matches(machine, port)
    )


def kms_setting_changes(
    facts: LicensingFacts, sku: Sku, target: KmsTarget, *, app: str, product_level: bool
) -> list[Change]:
    """SetKeyManagementServiceMachine/Port where the effective setting differs. Windows sets the service-level
    host (what ``slmgr /skms`` does); Office sets it on each Office KMS licence (what ``ospp.vbs /sethst`` does).
    A product-level override that differs is corrected on the product as well."""
    service = facts.service_of(sku)
    machine, port = facts.effective_kms(sku)
    if target.matches(machine, port):
        return []
    changes: list[Change] = []
    on_product = product_level or facts.product_override(sku)
    label = (
        sku.name
        if on_product
        else ("the Office licensing service" if service.kind == "ospp" else "the licensing service")
    )
    sku_id = sku.id if on_product else None
    if not same_host(machine, target.host):
        changes.append(
            Change(
                "set_kms_host",
                app,  # type: ignore[arg-type]
                label,
                value=target.machine_name,
                before=machine,
                service=service.kind,
                sku_id=sku_id,
            )
        )
    if port != target.port:
        changes.append(
            Change(
                "set_kms_port",
                app,  # type: ignore[arg-type]
                label,
                value=target.port,
                before=port,
                service=service.kind,
                sku_id=sku_id,
            )
        )
    return changes


def plan_windows(facts: LicensingFacts, args: WindowsKmsArgs) -> Plan:
    """What windows_kms will do on a PC in this state (pure)."""
    target = args.target
    sku = facts.primary_windows
    edition = facts.edition_id or "unknown"
    entry = gvlk.windows_gvlk(edition, facts.os.family, facts.os.version or None) if edition != "unknown" else None
    label = sku.name if sku is not None else f"Windows ({edition})"

    def install_and_activate(before: str) -> Plan:
        assert entry is not None
        changes = [
            Change(
                "install_key",
                "windows",
                entry.product,
                value=entry.key,
                before=before,
                service="spp",
            )
        ]
        service = facts.spp
        if not target.matches(service.kms_machine, service.kms_port):
            changes.append(
                Change(
                    "set_kms_host",
                    "windows",
                    "the licensing service",
                    value=target.machine_name,
                    before=service.kms_machine,
                    service="spp",
                )
            )
            if (service.kms_port or 1688) != target.port:
                changes.append(
                    Change(
                        "set_kms_port",
                        "windows",
                        "the licensing service",
                        value=target.port,
                        before=service.kms_port or 1688,
                        service="spp",
                    )
                )
        if args.activate:
            changes.append(Change("activate", "windows", entry.product, value=target.text, sku_id=entry.sku_id))
        return Plan(changes=tuple(changes))

    if sku is None:
        if args.install_gvlk and entry is not None:
            return install_and_activate("no product key")
        return Plan(
            problems=(
                Problem(
                    f"Windows has no product key installed (edition {edition})"
                    + ("; install_gvlk: true would install its GVLK" if entry is not None else ""),
                    "0xC004F014",
                    SL_E_PKEY_NOT_INSTALLED,
                    label,
                ),
            )
        )
    if sku.kms_client:
        if healthy(facts, sku, target, args.renew_below_days):
            return Plan(notes=(f"{sku.name} is licensed through {target.text}, {sku.days_left} days left",))
        changes = kms_setting_changes(facts, sku, target, app="windows", product_level=False)
        if args.activate:
            changes.append(Change("activate", "windows", sku.name, value=target.text, sku_id=sku.id))
        if not changes:
            return Plan(notes=(f"{sku.name}: KMS host already {target.text} (activate: false)",))
        return Plan(changes=tuple(changes))
    # A retail, OEM or MAK key: not a KMS client.
    if sku.permanent:
        return Plan(
            notes=(f"{sku.name} is permanently activated with a {sku.channel} key (not a KMS client); left as it is",)
        )
    if args.install_gvlk and entry is not None:
        return install_and_activate(f"{sku.channel} key …{sku.partial_key or ''}")
    if entry is None:
        why = (
            f"{sku.name} ({sku.channel} key) has no KMS client key (GVLK) for its edition {edition}: "
            "it needs an edition upgrade to a volume edition before KMS can activate it"
        )
    else:
        why = (
            f"{sku.name} carries a {sku.channel} key and is {sku.status_name}: it is not a KMS client; "
            f"install_gvlk: true would install the {entry.product} GVLK"
        )
    # The bureau's Q&A's 0xC004F057: "the installed Windows is not the bureau's volume edition" (also for a MAK).
    return Plan(problems=(Problem(why, "KF_NON_VOLUME_WINDOWS", SL_E_SLP_MISSING_ACPI_SLIC, sku.name),))


def windows_facts(facts: LicensingFacts) -> dict[str, Any]:
    sku = facts.primary_windows
    return {
        "kmsfleet_cmid": facts.spp.cmid,
        "kmsfleet_kms_host": facts.spp.kms_text,
        "kmsfleet_windows_status": sku.status_name if sku else None,
        "kmsfleet_windows_days_left": sku.days_left if sku else None,
        "kmsfleet_windows_channel": sku.channel if sku else None,
    }


def verify_windows(facts: LicensingFacts, activated: Sequence[str], target: KmsTarget, activate: bool) -> list[str]:
    sku = facts.primary_windows
    problems: list[str] = []
    if sku is None:
        return ["after the changes Windows has no product key installed"]
    machine, port = facts.effective_kms(sku)
    if not target.matches(machine, port):
        problems.append(f"{sku.name} still uses KMS host {facts.effective_kms_text(sku) or 'none'}")
    if activate and activated and not (sku.status == 1 and sku.grace_minutes > 0):
        problems.append(
            f"activation of {sku.name} was not confirmed: Windows reports {sku.status_name} "
            f"with {sku.grace_minutes} minutes of grace"
        )
    return problems


@register
class WindowsKms(Module[WindowsKmsArgs]):
    name = "windows_kms"
    args_model = WindowsKmsArgs
    supports_check = True
    description = (
        "Make Windows a KMS client of kms_host[:kms_port] and activate it (Windows 10/11, 7, Server 2016/2019); "
        "idempotent, with check mode and diagnoses."
    )

    def run(self, ctx: ModuleContext, args: WindowsKmsArgs) -> ModuleOutcome:
        facts = gather.read_licensing(ctx)
        plan = plan_windows(facts, args)
        target = args.target
        return run_plan(
            ctx,
            facts,
            plan,
            what="Windows",
            target=target,
            relevant=lambda f: [f.primary_windows] if f.primary_windows else [],
            verify=lambda f, activated: verify_windows(f, activated, target, args.activate),
            extra_facts=windows_facts,
        )
