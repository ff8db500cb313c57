"""license_verdict: the last task of the bundled playbooks - fail the PC with the first licensing problem the
earlier tasks found.

The product tasks (Windows, Office) run with ``ignore_errors: true`` so that a problem with one product never
keeps another from being activated. This controller-side task then turns the registered results into the PC's
verdict: ``ok`` when every product task succeeded, else ``failed`` with the first problem's error code and
diagnosis (so the classroom summary groups the PC under the right cause), listing the others in ``problems``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from orchestrator.knowledge import catalogue
from orchestrator.modules.base import Module, ModuleArgs, ModuleContext, ModuleOutcome, TaskFailed, register
from orchestrator.modules.licensing.diagnose import E_ACCESS_DENIED, SL_E_ACCESS_DENIED


class VerdictArgs(ModuleArgs):
    results: list[Any] = Field(default_factory=list)


def _code(value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        return catalogue.parse_code(value)
    except ValueError:
        return None


def failures(results: list[Any]) -> list[Mapping[str, Any]]:
    """The registered results that failed (skipped and undefined ones are ignored)."""
    return [r for r in results if isinstance(r, Mapping) and r.get("failed") and not r.get("skipped")]


def default_diagnosis(code: int | None) -> str:
    """The diagnosis of a problem that came with a code only (e.g. the one slmgr printed), as the licensing
    modules would give it: access denied means the account is not an (elevated) administrator."""
    if code in (E_ACCESS_DENIED, SL_E_ACCESS_DENIED):
        return "KF_NOT_ADMIN"
    return catalogue.diagnose(code, None) or "KF_UNKNOWN_ERROR"


@register
class LicenseVerdict(Module[VerdictArgs]):
    name = "license_verdict"
    args_model = VerdictArgs
    supports_check = True
    uses_connection = False
    description = "Fail the PC with the first problem among registered licensing results (after ignore_errors)."

    def run(self, ctx: ModuleContext, args: VerdictArgs) -> ModuleOutcome:
        bad = failures(args.results)
        if not bad:
            return ModuleOutcome(msg="no licensing problems", data={"problems": []})
        problems: list[dict[str, Any]] = [
            {"msg": str(r.get("msg") or ""), "error_code": r.get("error_code"), "diagnosis": r.get("diagnosis")}
            for r in bad
        ]
        first = problems[0]
        code = _code(first["error_code"])
        key = str(first["diagnosis"] or default_diagnosis(code))
        msg = str(first["msg"])
        if len(problems) > 1:
            msg += f" (and {len(problems) - 1} more: " + "; ".join(str(p["msg"]) for p in problems[1:]) + ")"
        raise TaskFailed(msg, error_code=code, diagnosis=key, data={"problems": problems, "diagnosis": key})
