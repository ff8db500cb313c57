"""Applying a licensing plan through WMI methods, and what the module reports afterwards.

Methods (docs/reference.md §2.1/§2.2): ``SoftwareLicensingService.InstallProductKey``,
``SetKeyManagementServiceMachine``, ``SetKeyManagementServicePort``, ``RefreshLicenseStatus``;
``SoftwareLicensingProduct.Activate`` (and the same names on the OSPP classes for Office on Windows 7). Method
calls are never retried (the transport does not retry invokes); a failing call arrives as a WS-Management fault
carrying the HRESULT, or as a non-zero ReturnValue (docs/reference.md §2.4) - both end the apply step, and the
module then re-reads the state, which is the record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.modules.base import ModuleContext, ModuleOutcome, TaskFailed
from orchestrator.modules.licensing import gather
from orchestrator.modules.licensing.diagnose import (
    SL_E_VL_BINDING_SERVICE_UNAVAILABLE,
    Diagnosis,
    diagnose_activation,
    is_licensing_fault,
    key_for,
)
from orchestrator.modules.licensing.model import (
    Change,
    KmsTarget,
    LicensingFacts,
    Plan,
    Problem,
    Service,
    Sku,
    licence_record,
    to_int,
)
from orchestrator.results.models import LicenceRecord, format_hresult
from orchestrator.transport.errors import WSMAN_QUOTA_CODES, WSManFault


class CallFailed(Exception):
    """A licensing method failed with an HRESULT (``infrastructure``: WS-Management failed, not licensing)."""

    def __init__(self, code: int | None, message: str, *, infrastructure: bool = False, kind: str = "") -> None:
        self.code = code
        self.message = message
        self.infrastructure = infrastructure
        self.kind = kind  # the fault's kind (transport.errors.WSManFault.kind) when a fault ended the call
        super().__init__(message)


def call(ctx: ModuleContext, wmi_class: str, method: str, selectors: dict[str, str], params: dict[str, Any]) -> None:
    """Invoke one WMI method; ``CallFailed`` for a licensing error (fault with an HRESULT or ReturnValue != 0).
    Infrastructure faults and transport errors propagate (the host pipeline reports them)."""
    try:
        out = ctx.conn.invoke(wmi_class, method, selectors, params)
    except WSManFault as fault:
        # Either the licensing provider's error, or WS-Management failing mid-change (e.g. an internal error):
        # both end the apply step, and the state is re-read before reporting (the change may or may not have
        # happened).
        raise CallFailed(
            fault.hresult, fault.reason, infrastructure=not is_licensing_fault(fault), kind=fault.kind
        ) from None
    rv = to_int(out.get("ReturnValue"), 0) or 0
    if rv:
        code = rv & 0xFFFFFFFF
        raise CallFailed(code, f"{wmi_class}.{method} returned {format_hresult(code)}")


def _service_selectors(service: Service) -> dict[str, str]:
    return {"Version": service.version} if service.version else {}


def refresh(ctx: ModuleContext, service: Service) -> None:
    """``RefreshLicenseStatus`` (slmgr calls it after installing a key and after activating). Best effort."""
    try:
        call(ctx, service.wmi_class, "RefreshLicenseStatus", _service_selectors(service), {})
    except CallFailed:
        pass


@dataclass
class ApplyResult:
    applied: list[Change] = field(default_factory=list)
    failed: Change | None = None
    code: int | None = None
    message: str = ""
    infrastructure: bool = False
    fault_kind: str = ""
    activated: list[str] = field(default_factory=list)  # licence IDs Activate was called on
    facts: LicensingFacts | None = None  # the latest state read during apply (after a key install)


def apply_changes(ctx: ModuleContext, facts: LicensingFacts, changes: Sequence[Change]) -> ApplyResult:
    """Perform ``changes`` in order; stop at the first failing call."""
    result = ApplyResult(facts=facts)
    current = facts
    for change in changes:
        service = current.ospp if change.service == "ospp" and current.ospp is not None else current.spp
        try:
            if change.action == "install_key":
                call(
                    ctx,
                    service.wmi_class,
                    "InstallProductKey",
                    _service_selectors(service),
                    {"ProductKey": change.value},
                )
                refresh(ctx, service)
                current = gather.read_licensing(ctx, current.os)
                result.facts = current
            elif change.action in ("set_kms_host", "set_kms_port"):
                method = (
                    "SetKeyManagementServiceMachine"
                    if change.action == "set_kms_host"
                    else "SetKeyManagementServicePort"
                )
                param = (
                    {"MachineName": change.value} if change.action == "set_kms_host" else {"PortNumber": change.value}
                )
                if change.sku_id:
                    call(ctx, service.product_class, method, {"ID": change.sku_id}, param)
                else:
                    call(ctx, service.wmi_class, method, _service_selectors(service), param)
            elif change.action == "activate":
                sku_id = _activation_target(current, change)
                if sku_id is None:
                    raise CallFailed(0xC004F014, "no licence with a product key to activate")
                result.activated.append(sku_id)
                call(ctx, service.product_class, "Activate", {"ID": sku_id}, {})
                refresh(ctx, service)
        except CallFailed as exc:
            result.failed, result.code, result.message = change, exc.code, exc.message
            result.infrastructure = exc.infrastructure
            result.fault_kind = exc.kind
            return result
        result.applied.append(change)
    return result


def _activation_target(facts: LicensingFacts, change: Change) -> str | None:
    if change.sku_id and facts.sku(change.sku_id) is not None:
        return change.sku_id
    if change.app == "windows":
        primary = facts.primary_windows
        return primary.id if primary else change.sku_id
    return change.sku_id


# ------------------------------------------------------------------------------------------------ outcome


def records(
    ctx: ModuleContext, facts: LicensingFacts, skus: Sequence[Sku], errors: dict[str, int] | None = None
) -> tuple[LicenceRecord, ...]:
    now = ctx.controller_now()
    errors = errors or {}
    return tuple(licence_record(facts, s, now, errors.get(s.id)) for s in skus)


KMS_VALIDITY_DAYS = 180


def state_of(facts: LicensingFacts, skus: Sequence[Sku]) -> dict[str, dict[str, Any]]:
    """The part of the licensing state a --diff shows, per licence."""
    return {
        s.name: {
            "channel": s.channel,
            "status": s.status_name,
            "days_left": s.days_left,
            "kms_host": facts.effective_kms_text(s),
        }
        for s in skus
    }


def predicted(before: dict[str, dict[str, Any]], plan: Plan, target: KmsTarget) -> dict[str, dict[str, Any]]:
    """What ``before`` becomes if every change of ``plan`` succeeds (for --check --diff)."""
    after = {name: dict(values) for name, values in before.items()}
    for change in plan.changes:
        names = [n for n in after if n == change.label] or list(after)
        for name in names:
            entry = after[name]
            if change.action == "install_key":
                entry["channel"] = "Volume:GVLK"
            elif change.action in ("set_kms_host", "set_kms_port"):
                entry["kms_host"] = target.text
            elif change.action == "activate":
                entry["status"] = "Licensed"
                entry["days_left"] = KMS_VALIDITY_DAYS
    return after


def problem_failure(
    plan: Plan, recs: tuple[LicenceRecord, ...], data: dict[str, Any], done: Sequence[str] = ()
) -> TaskFailed:
    """The task failure for unfixable problems: the first one gives the code and diagnosis."""
    first: Problem = plan.problems[0]
    others = [p.msg for p in plan.problems[1:]]
    msg = first.msg + (f" (and: {'; '.join(others)})" if others else "")
    if done:
        msg += f" — done: {'; '.join(done)}"
    payload = {
        **data,
        "diagnosis": first.diagnosis,
        "problems": [
            {"msg": p.msg, "diagnosis": p.diagnosis, "error_code": format_hresult(p.error_code), "label": p.label}
            for p in plan.problems
        ],
    }
    return TaskFailed(msg, error_code=first.error_code, diagnosis=first.diagnosis, data=payload, licences=recs)


Relevant = Callable[[LicensingFacts], Sequence[Sku]]


def _failure_diagnosis(
    ctx: ModuleContext, after: LicensingFacts, result: ApplyResult, failed: Change, target: KmsTarget
) -> Diagnosis:
    """Why ``failed`` failed: the KMS host's silence, WinRM itself, or the licensing service's code."""
    code = result.code
    if result.infrastructure and failed.action == "activate" and result.fault_kind == "timed_out":
        # Activate waits for the KMS host; a host that drops port 1688 silently keeps it waiting past WinRM's
        # OperationTimeout, so w:TimedOut here means the KMS host did not answer (0xC004F074's diagnosis,
        # refined by the clock and port checks).
        diag = diagnose_activation(ctx, after, SL_E_VL_BINDING_SERVICE_UNAVAILABLE, target)
        return Diagnosis(diag.key, diag.note or "the KMS host did not answer Activate within WinRM's time-out")
    if result.infrastructure:
        key = key_for(code)
        infra_key = "KF_WSMAN_FAULT" if key == "KF_UNKNOWN_ERROR" or code in WSMAN_QUOTA_CODES else key
        return Diagnosis(infra_key, "WinRM failed during the change (not a licensing error)")
    return diagnose_activation(ctx, after, code, target)


def _change_failed(  # the task failure for a change Windows refused
    ctx: ModuleContext,
    after: LicensingFacts,
    result: ApplyResult,
    failed: Change,
    target: KmsTarget,
    data: dict[str, Any],
    relevant: Relevant,
) -> TaskFailed:
    code = result.code
    # a licence's last error is the licensing service's; WinRM's own faults are not recorded against it
    errors = {sid: code for sid in result.activated} if code is not None and not result.infrastructure else {}
    recs = records(ctx, after, relevant(after), errors)
    diag = _failure_diagnosis(ctx, after, result, failed, target)
    verb = failed.describe()
    msg = f"could not {verb}: {format_hresult(code) or 'error'} {result.message}".rstrip()
    if diag.note:
        msg += f" — {diag.note}"
    return TaskFailed(
        msg,
        error_code=code,
        diagnosis=diag.key,
        data={**data, "diagnosis": diag.key, "failed_change": verb},
        licences=recs,
    )


def _unverified(
    after: LicensingFacts,
    result: ApplyResult,
    failures: list[str],
    data: dict[str, Any],
    relevant: Relevant,
    recs: tuple[LicenceRecord, ...],
) -> TaskFailed:
    """The task failure when Windows does not report what the changes should have made."""
    reason = next((s.error_reason for s in relevant(after) if s.id in result.activated and s.error_reason), None)
    key = key_for(reason)
    return TaskFailed(
        "; ".join(failures), error_code=reason, diagnosis=key, data={**data, "diagnosis": key}, licences=recs
    )


def _without_changes(  # nothing to change (or check mode): the outcome from the facts as read
    ctx: ModuleContext,
    facts: LicensingFacts,
    plan: Plan,
    what: str,
    data: dict[str, Any],
    diff: dict[str, Any] | None,
    relevant: Relevant,
    extra_facts: Callable[[LicensingFacts], dict[str, Any]],
) -> ModuleOutcome:
    recs = records(ctx, facts, relevant(facts))
    if not plan.changes:
        if plan.problems:
            raise problem_failure(plan, recs, data)
        note = "; ".join(plan.notes) or f"{what}: nothing to do"
        return ModuleOutcome(msg=note, data=data, licences=recs, facts=extra_facts(facts))
    would = [f"would {c.describe()}" for c in plan.changes]
    if plan.problems:
        raise problem_failure(plan, recs, {**data, "check_mode": True}, would)
    return ModuleOutcome(
        changed=True,
        msg="; ".join(would),
        data={**data, "check_mode": True},
        diff=diff,
        licences=recs,
        facts=extra_facts(facts),
    )


def run_plan(
    ctx: ModuleContext,
    facts: LicensingFacts,
    plan: Plan,
    *,
    what: str,
    target: KmsTarget,
    relevant: Relevant,
    verify: Callable[[LicensingFacts, Sequence[str]], list[str]],
    extra_facts: Callable[[LicensingFacts], dict[str, Any]],
) -> ModuleOutcome:
    """The shared tail of windows_kms and office_kms: check mode, apply, verify, outcome."""
    data: dict[str, Any] = {
        "changes": [c.describe() for c in plan.changes],
        "plan": [{"action": c.action, "label": c.label, "value": c.value, "sku_id": c.sku_id} for c in plan.changes],
        "notes": list(plan.notes),
    }
    before = state_of(facts, relevant(facts))
    diff = {"before": before, "after": predicted(before, plan, target)} if ctx.diff else None
    if not plan.changes or ctx.check_mode:
        return _without_changes(ctx, facts, plan, what, data, diff, relevant, extra_facts)
    result = apply_changes(ctx, facts, plan.changes)
    after = gather.read_licensing(ctx, facts.os)  # verify: what Windows reports now is the record
    done = [c.describe() for c in result.applied]
    data["applied"] = done
    if result.failed is not None:
        raise _change_failed(ctx, after, result, result.failed, target, data, relevant)
    failures = verify(after, result.activated)
    recs = records(ctx, after, relevant(after))
    if failures:
        raise _unverified(after, result, failures, data, relevant, recs)
    if plan.problems:
        raise problem_failure(plan, recs, data, done)
    summary = "; ".join(_state_line(after, s) for s in relevant(after))
    if ctx.diff:
        diff = {"before": before, "after": state_of(after, relevant(after))}
    return ModuleOutcome(
        changed=True,
        msg=f"{'; '.join(done)} → {summary}",
        data={**data, "state": [r.to_json() for r in recs]},
        diff=diff,
        licences=recs,
        facts=extra_facts(after),
    )


def _state_line(facts: LicensingFacts, sku: Sku) -> str:
    days = sku.days_left
    left = "permanent" if days is None else f"{days} days left"
    host = facts.effective_kms_text(sku) or "no KMS host"
    return f"{sku.name}: {sku.status_name}, {left}, {host}"
