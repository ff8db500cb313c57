"""time_sync: the preflight the bureau insists on ("PC 端時區需校正正確") - time zone, clock, and optionally the
account's admin rights and TCP to the KMS host from the PC.

Checks (read-only): the time zone ID (Win32_TimeZone; ``tzutil /g`` when WMI's name differs, since WMI's names
are localised); the clock against the controller's (reference = the machine running kmsfleet; the round trip is
halved); ``whoami /groups`` for an elevated token (``require_admin``); a TCP connect to <kms_host>:<kms_port>
run *on the PC* (``check_kms_port``; a TcpClient script that PowerShell 2.0 on Windows 7 runs too). Each
problem fails the task with its diagnosis and the code activation would end with (the bureau's Q&A's):
KF_WRONG_TIMEZONE and KF_CLOCK_SKEW with 0xC004F06C (the KMS host rejects the request's timestamp),
KF_NOT_ADMIN with 0x80070005, KF_KMS_PORT_BLOCKED with 0xC004F074.

Fixes (off unless asked): ``fix_timezone`` runs ``tzutil /s "<zone>"``; ``fix_clock`` runs ``w32tm /resync``
(needs an administrator and a reachable time source). Windows keeps the UTC clock when the zone changes, so a PC
whose wall clock was hand-set in the wrong zone needs both. After fixing, the module re-checks; the result is
``changed`` when the PC is right afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from pydantic import Field, field_validator

from orchestrator.modules.base import Module, ModuleArgs, ModuleContext, ModuleOutcome, TaskFailed, register
from orchestrator.modules.licensing import gather
from orchestrator.modules.licensing.diagnose import (
    E_ACCESS_DENIED,
    SL_E_VL_BINDING_SERVICE_UNAVAILABLE,
    SL_E_VL_INVALID_TIMESTAMP,
    describe_offset,
)
from orchestrator.modules.licensing.model import Change, KmsTarget, OsInfo, Plan, Problem, parse_kms_target, to_int
from orchestrator.results.models import format_hresult

TAIPEI = "Taipei Standard Time"
_TZ_ID = re.compile(r"^[A-Za-z0-9 .()+_\-]{1,64}$")


class TimeSyncArgs(ModuleArgs):
    timezone: str = Field(TAIPEI, description="Windows time zone ID the PCs must use")
    max_skew_seconds: int = Field(300, ge=1, le=86400 * 366, description="allowed clock difference to the controller")
    kms_host: str | None = Field(None, description="KMS host to test TCP to (with check_kms_port)")
    kms_port: int | None = Field(None, ge=1, le=65535)
    check_kms_port: bool = False
    require_admin: bool = False
    fix_timezone: bool = False
    fix_clock: bool = False

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        text = v.strip()
        if not _TZ_ID.match(text):
            raise ValueError(f"{v!r} is not a Windows time zone ID (e.g. 'Taipei Standard Time')")
        return text

    @field_validator("kms_host")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        if v is not None and v.strip():
            parse_kms_target(v)
            return v.strip()
        return None

    @property
    def target(self) -> KmsTarget | None:
        return parse_kms_target(self.kms_host, self.kms_port) if self.kms_host else None


@dataclass(frozen=True)
class TimeFacts:
    timezone_id: str | None
    timezone_caption: str | None = None
    offset_seconds: float | None = None
    is_admin: bool | None = None  # None = not checked / unknown
    kms_reachable: bool | None = None  # None = not checked / cannot check
    is_win7: bool = False

    def zone_ok(self, wanted: str) -> bool:
        return (self.timezone_id or "").lower().removesuffix("_dstoff") == wanted.lower().removesuffix("_dstoff")

    @property
    def clock_known(self) -> bool:
        return self.offset_seconds is not None

    def clock_ok(self, max_skew: int) -> bool:
        """Known and within ``max_skew``. An unknown clock is not "ok": it is reported as unknown."""
        return self.offset_seconds is not None and abs(self.offset_seconds) <= max_skew

    def clock_skewed(self, max_skew: int) -> bool:
        return self.offset_seconds is not None and abs(self.offset_seconds) > max_skew


CLOCK_UNKNOWN = "clock UNKNOWN: the PC's answer gave no readable LocalDateTime, so the clock was not checked"


def plan_time(facts: TimeFacts, args: TimeSyncArgs) -> Plan:
    """Problems and fixes for this PC's time settings (pure)."""
    changes: list[Change] = []
    problems: list[Problem] = []
    zone_ok = facts.zone_ok(args.timezone)
    skewed = facts.clock_skewed(args.max_skew_seconds)
    offset = describe_offset(facts.offset_seconds) if facts.offset_seconds is not None else "unknown"
    if not zone_ok:
        if args.fix_timezone:
            changes.append(Change("set_timezone", "time", "time zone", value=args.timezone, before=facts.timezone_id))
        else:
            problems.append(
                Problem(
                    f"time zone is {facts.timezone_id or 'unknown'}, not {args.timezone}"
                    + (f"; the clock is {offset}" if skewed else "")
                    + " (fix_timezone: true sets it)",
                    "KF_WRONG_TIMEZONE",
                    SL_E_VL_INVALID_TIMESTAMP,
                )
            )
    clock = _clock_fix(facts, args, zone_ok, offset) if skewed or (not facts.clock_known and args.fix_clock) else None
    if isinstance(clock, Change):
        changes.append(clock)
    elif clock is not None:
        problems.append(clock)
    if args.require_admin and facts.is_admin is False and not any(p.diagnosis == "KF_NOT_ADMIN" for p in problems):
        problems.append(
            Problem(
                "the WinRM account is not an elevated administrator on this PC (licensing changes would fail with "
                "0x80070005)",
                "KF_NOT_ADMIN",
                E_ACCESS_DENIED,
            )
        )
    if args.check_kms_port and facts.kms_reachable is False and args.target is not None:
        problems.append(
            Problem(
                f"the PC cannot open TCP {args.target.text} (KMS host)",
                "KF_KMS_PORT_BLOCKED",
                SL_E_VL_BINDING_SERVICE_UNAVAILABLE,
            )
        )
    return Plan(changes=tuple(changes), problems=tuple(problems), notes=tuple(_time_notes(facts, args, zone_ok)))


def _clock_fix(facts: TimeFacts, args: TimeSyncArgs, zone_ok: bool, offset: str) -> Change | Problem | None:
    """A clock that is off (or unread, with fix_clock): resync it, or say why not."""
    if args.fix_clock:
        if facts.is_admin is False:
            return Problem(
                f"the clock is {offset}, and w32tm /resync needs an administrator", "KF_NOT_ADMIN", E_ACCESS_DENIED
            )
        return Change("resync_clock", "time", "clock", before=offset)
    if zone_ok or args.fix_timezone:
        return Problem(
            f"the clock is {offset} (more than {args.max_skew_seconds} s; fix_clock: true resyncs it)",
            "KF_CLOCK_SKEW",
            SL_E_VL_INVALID_TIMESTAMP,
        )
    return None


def _time_notes(facts: TimeFacts, args: TimeSyncArgs, zone_ok: bool) -> list[str]:
    """What is fine (or could not be tested) about this PC's time settings."""
    notes: list[str] = []
    if args.check_kms_port and facts.kms_reachable is None and args.target is not None:
        notes.append(f"TCP {args.target.text} not tested (the PC's port test gave no answer)")
    if zone_ok:
        notes.append(f"time zone {facts.timezone_id}")
    if facts.clock_ok(args.max_skew_seconds) and facts.offset_seconds is not None:
        notes.append(f"clock within {args.max_skew_seconds} s ({round(facts.offset_seconds) or 0:+d} s)")
    elif not facts.clock_known:
        notes.append(CLOCK_UNKNOWN)
    return notes


def read_time(ctx: ModuleContext, args: TimeSyncArgs, *, checks: bool = True) -> TimeFacts:
    """The time facts; ``checks`` False skips the admin and port tests (re-check after a fix)."""
    tz = gather.read_timezone(ctx)
    clock = gather.read_clock(ctx)
    os_info = OsInfo(version=clock.os_version)
    zone = str(tz.get("StandardName") or "") or None
    if zone is None or zone.lower() != args.timezone.lower():
        zone = gather.timezone_id(ctx) or zone  # WMI's StandardName is localised; tzutil prints the ID
    # an unknown clock counts as off here: fix_clock then resyncs it (w32tm needs an administrator)
    clock_off = clock.offset_seconds is None or abs(clock.offset_seconds) > args.max_skew_seconds
    # w32tm /resync needs an administrator: ask the token only when it matters
    wants_admin = args.require_admin or (args.fix_clock and clock_off)
    admin = gather.is_admin(ctx) if checks and wants_admin else None
    reachable = None
    target = args.target
    if checks and args.check_kms_port and target is not None:
        reachable = gather.kms_port_open(ctx, target, os_info)
    return TimeFacts(
        timezone_id=zone,
        timezone_caption=str(tz.get("Caption") or "") or None,
        offset_seconds=clock.offset_seconds,
        is_admin=admin,
        kms_reachable=reachable,
        is_win7=os_info.is_win7,
    )


def _facts_out(facts: TimeFacts) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kmsfleet_timezone_id": facts.timezone_id,
        "kmsfleet_clock_offset_seconds": facts.offset_seconds,
        "kmsfleet_clock_known": facts.clock_known,
    }
    if facts.is_admin is not None:
        out["kmsfleet_is_admin"] = facts.is_admin
    if facts.kms_reachable is not None:
        out["kmsfleet_kms_reachable"] = facts.kms_reachable
    return out


def _fail(plan: Plan, facts: TimeFacts, extra: str = "") -> TaskFailed:
    first = plan.problems[0]
    msg = "; ".join(p.msg for p in plan.problems) + extra
    return TaskFailed(
        msg,
        error_code=first.error_code,
        diagnosis=first.diagnosis,
        data={
            "diagnosis": first.diagnosis,
            "problems": [{"msg": p.msg, "diagnosis": p.diagnosis} for p in plan.problems],
            **_facts_out(facts),
        },
    )


def _run_fix(ctx: ModuleContext, change: Change) -> tuple[bool, int | None, str]:
    """Run one fix; (ok, HRESULT-ish code, output)."""
    if change.action == "set_timezone":
        res = ctx.conn.run_command("tzutil", ["/s", f'"{change.value}"'])
    else:
        res = ctx.conn.run_command("w32tm", ["/resync"])
    text = (res.stdout + res.stderr).strip()
    code = res.rc & 0xFFFFFFFF if res.rc else None
    if res.rc == 0 and change.action == "resync_clock":
        # w32tm's texts are localized ("The following error occurred: …" / "發生下列錯誤: …"); the HRESULT it
        # prints in hex is not, so a failure is recognised by the code alone.
        code = to_int(_hresult_in(text))
    return res.rc == 0 and code is None, code, text.splitlines()[-1] if text else ""


def _hresult_in(text: str) -> str | None:
    m = re.search(r"0x[0-9A-Fa-f]{8}", text)
    return str(int(m.group(0), 16)) if m else None


@register
class TimeSync(Module[TimeSyncArgs]):
    name = "time_sync"
    args_model = TimeSyncArgs
    supports_check = True
    description = (
        "Preflight: time zone (Taipei), clock vs the controller, optionally admin rights and TCP to the KMS host "
        "from the PC; fixes the zone (tzutil) and clock (w32tm /resync) when asked."
    )

    def run(self, ctx: ModuleContext, args: TimeSyncArgs) -> ModuleOutcome:
        facts = read_time(ctx, args)
        plan = plan_time(facts, args)
        data: dict[str, Any] = {"notes": list(plan.notes), "changes": [c.describe() for c in plan.changes]}
        if not facts.clock_known:
            data["warnings"] = [CLOCK_UNKNOWN]
        if plan.empty:
            return ModuleOutcome(
                msg="; ".join(plan.notes) or "time settings are right", data=data, facts=_facts_out(facts)
            )
        if ctx.check_mode or not plan.changes:
            if plan.problems:
                would = "".join(f"; would {c.describe()}" for c in plan.changes)
                raise _fail(plan, facts, would)
            return ModuleOutcome(
                changed=True,
                msg="; ".join(f"would {c.describe()}" for c in plan.changes),
                data={**data, "check_mode": True},
                diff=(
                    {
                        "before": {"timezone": facts.timezone_id, "clock_offset_s": facts.offset_seconds},
                        "after": {"timezone": args.timezone, "clock_offset_s": 0},
                    }
                    if ctx.diff
                    else None
                ),
                facts=_facts_out(facts),
            )
        done: list[str] = []
        for change in plan.changes:
            ok, code, output = _run_fix(ctx, change)
            if not ok:
                key = (
                    "KF_NOT_ADMIN"
                    if code == E_ACCESS_DENIED
                    else ("KF_WRONG_TIMEZONE" if change.action == "set_timezone" else "KF_CLOCK_SKEW")
                )
                raise TaskFailed(
                    f"could not {change.describe()}: {format_hresult(code) or 'failed'} {output}".rstrip(),
                    error_code=code,
                    diagnosis=key,
                    data={**data, "diagnosis": key, "applied": done, **_facts_out(facts)},
                )
            done.append(change.describe())
        # Re-check the time (admin rights and the port test cannot have changed).
        after = replace(
            read_time(ctx, args, checks=False),
            is_admin=facts.is_admin,
            kms_reachable=facts.kms_reachable,
        )
        recheck = plan_time(after, args.model_copy(update={"fix_timezone": False, "fix_clock": False}))
        if recheck.problems:
            raise _fail(recheck, after, f" (after: {'; '.join(done)})")
        return ModuleOutcome(
            changed=True,
            msg="; ".join(done) + " → " + "; ".join(recheck.notes),
            data={**data, "applied": done},
            facts=_facts_out(after),
        )
