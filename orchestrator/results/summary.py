"""The classroom summary: which PCs need attention, grouped by cause, with the fix in the user's language.

"7 of 40 PCs failed — 4 clock skew (pc3, pc11, …): set the time zone …; 2 BIOS (SLIC) …; 1 retail Office …"

A failed PC's cause is its failed task's diagnosis key (a catalogue key such as ``0xC004F06C`` or
``KF_WRONG_TIMEZONE``); without one, its error code; without that, its failure kind (unreachable, sign-in
refused, timeout …); a PC that failed without any failed task (e.g. off before the first task) is grouped by
its final status. Titles and fixes come from ``orchestrator.knowledge``; this module keeps no texts of its own
beyond the message keys it asks ``i18n`` for.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal

from orchestrator.errors import InputError
from orchestrator.knowledge import catalogue, i18n
from orchestrator.redact import redact_text
from orchestrator.results.models import (
    FailureKind,
    HostResult,
    HostStatus,
    RunResult,
    format_hresult,
)
from orchestrator.results.sorting import natural_key, natural_sorted

Basis = Literal["diagnosis", "error_code", "failure", "status", "licence"]

PROBLEM_STATUSES = (HostStatus.FAILED, HostStatus.UNREACHABLE, HostStatus.AUTH_REFUSED)
UNKNOWN_KEY = "KF_UNKNOWN_ERROR"

# What a failure kind or a final status means, as catalogue keys (the texts live in the catalogue).
FAILURE_KEYS: Mapping[FailureKind, str] = MappingProxyType(
    {
        FailureKind.UNREACHABLE: "KF_UNREACHABLE",
        FailureKind.AUTH: "KF_AUTH_REFUSED",
        FailureKind.TIMEOUT: "KF_TIMEOUT",
        FailureKind.FAULT: "KF_WSMAN_FAULT",
        FailureKind.PROTOCOL: "KF_PROTOCOL",
    }
)
STATUS_KEYS: Mapping[HostStatus, str] = MappingProxyType(
    {
        HostStatus.UNREACHABLE: "KF_UNREACHABLE",
        HostStatus.AUTH_REFUSED: "KF_AUTH_REFUSED",
        HostStatus.INTERRUPTED: "KF_INTERRUPTED",
        HostStatus.FAILED: UNKNOWN_KEY,
    }
)

# Days-left buckets for the chart: (id, lowest, highest) inclusive; None = open end.
DAY_BUCKETS: tuple[tuple[str, int | None, int | None], ...] = (
    ("expired", None, 0),
    ("1-7", 1, 7),
    ("8-30", 8, 30),
    ("31-90", 31, 90),
    ("91-180", 91, 180),
    ("181+", 181, None),
)
PERMANENT = "permanent"

# LicenceRecord.status -> message key
LICENCE_STATUS_KEYS: Mapping[str, str] = MappingProxyType(
    {
        "Licensed": "licence.licensed",
        "Unlicensed": "licence.unlicensed",
        "OOBGrace": "licence.oob_grace",
        "OOTGrace": "licence.oot_grace",
        "NonGenuineGrace": "licence.non_genuine_grace",
        "Notification": "licence.notification",
        "ExtendedGrace": "licence.extended_grace",
        "NotApplicable": "licence.not_applicable",
    }
)
NOT_APPLICABLE = "NotApplicable"  # products that need no activation (SQL Server): never a licence problem


def lang_code(lang: str) -> str:
    """``en`` or ``zh-TW`` from any usual spelling; an unsupported language is a user mistake."""
    try:
        return i18n.normalise_lang(lang)
    except ValueError as exc:
        raise InputError(str(exc), hint="use --lang en or --lang zh-TW") from None


@dataclass(frozen=True)
class Explanation:
    """What the catalogue says about a cause, in one language."""

    key: str  # catalogue key, or the raw cause when the catalogue does not know it
    code: str | None  # 0xC004F074 style when the cause is an error code
    title: str
    fix: tuple[str, ...] = ()
    catalogued: bool = True


def explain(key: str | int | None, lang: str, *, code: int | None = None) -> Explanation | None:
    """Title and fix for a catalogue key or error code (``code`` fills the ``{code}`` token of
    KF_UNKNOWN_ERROR). An error code the catalogue lacks is explained by KF_UNKNOWN_ERROR."""
    if key is None and code is None:
        return None
    entry = catalogue.lookup(key) if key is not None else None
    if entry is None and code is not None:
        entry = catalogue.lookup(code)
    shown = code if code is not None else (key if isinstance(key, int) else None)
    if shown is None and entry is None and isinstance(key, str) and not key.upper().startswith("KF_"):
        try:
            shown = catalogue.parse_code(key)  # an error code the catalogue does not know, given as text
        except ValueError:
            shown = None
    if entry is None and shown is not None:
        entry = catalogue.lookup(UNKNOWN_KEY)
        if entry is None:
            return Explanation(str(format_hresult(shown)), format_hresult(shown), str(format_hresult(shown)), (), False)
        text = entry.text(lang, code=shown)
        return Explanation(entry.key, format_hresult(shown), text.title, text.fix, catalogued=False)
    if entry is None:
        return Explanation(str(key), None, str(key), (), catalogued=False)
    text = entry.text(lang, code=shown) if shown is not None else entry.text(lang)
    return Explanation(entry.key, entry.hex or format_hresult(shown), text.title, text.fix)


@dataclass(frozen=True)
class Cause:
    """Why one PC needs attention: the grouping key and what it is based on."""

    key: str
    basis: Basis
    code: int | None = None  # the error code seen (for KF_UNKNOWN_ERROR's {code} and display)


def cause_of(host: HostResult) -> Cause | None:
    """The cause a problem PC is grouped under; None for a PC that succeeded or did not run."""
    if host.status not in PROBLEM_STATUSES:
        return None
    task = host.failed_task
    if task is not None:
        if task.diagnosis and not (task.diagnosis == UNKNOWN_KEY and task.error_code):
            return Cause(task.diagnosis, "diagnosis", task.error_code)
        if task.error_code:
            return Cause(str(format_hresult(task.error_code)), "error_code", task.error_code)
        if task.failure is not None:
            return Cause(FAILURE_KEYS.get(task.failure, f"failure:{task.failure.value}"), "failure")
    return Cause(STATUS_KEYS.get(host.status, f"status:{host.status.value}"), "status")


@dataclass(frozen=True)
class CauseGroup:
    """PCs sharing one cause, with what to do about it."""

    key: str  # grouping key: catalogue key, 0x… code, or failure/status key
    basis: Basis
    hosts: tuple[str, ...]  # natural order: pc2 before pc10
    title: str  # in the summary's language
    fix: tuple[str, ...]  # steps, in the summary's language (empty when unknown)
    code: str | None = None  # 0xC004F074 when the cause is (or has) an error code
    catalogued: bool = True
    message: str = ""  # the first PC's own message, for context
    product: str | None = None  # licence groups: which product …
    licence_status: str | None = None  # … in which licence state

    @property
    def count(self) -> int:
        return len(self.hosts)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "basis": self.basis,
            "count": self.count,
            "hosts": list(self.hosts),
            "title": self.title,
            "fix": list(self.fix),
            "code": self.code,
            "catalogued": self.catalogued,
            "message": self.message,
            "product": self.product,
            "licence_status": self.licence_status,
        }


@dataclass(frozen=True)
class ClassroomSummary:
    """Everything a teacher or principal needs at a glance, from one run. Frozen, JSON-ready."""

    run_id: str
    playbook: str
    lang: str
    total: int
    status_counts: Mapping[str, int]  # every HostStatus value, 0 included
    groups: tuple[CauseGroup, ...]  # failed / unreachable / refused PCs by cause, biggest first
    licence_counts: Mapping[str, Mapping[str, int]]  # product -> licence status -> PCs
    days_left: Mapping[str, int]  # bucket id (DAY_BUCKETS + "permanent") -> licences
    licence_issues: tuple[CauseGroup, ...] = ()  # licences not "Licensed", by product + status + error
    interrupted: bool = False
    check: bool = False
    exit_code: int = 0
    causes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # host -> group key

    @property
    def succeeded(self) -> int:
        return self.status_counts.get(HostStatus.OK.value, 0) + self.status_counts.get(HostStatus.CHANGED.value, 0)

    @property
    def failed(self) -> int:
        """PCs that need attention: failed, unreachable or sign-in refused."""
        return sum(self.status_counts.get(s.value, 0) for s in PROBLEM_STATUSES)

    @property
    def not_finished(self) -> int:
        return self.status_counts.get(HostStatus.INTERRUPTED.value, 0) + self.status_counts.get(
            HostStatus.NOT_RUN.value, 0
        )

    def group_for(self, host: str) -> CauseGroup | None:
        key = self.causes.get(host)
        return next((g for g in self.groups if g.key == key), None) if key is not None else None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "playbook": self.playbook,
            "lang": self.lang,
            "total": self.total,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "not_finished": self.not_finished,
            "interrupted": self.interrupted,
            "check": self.check,
            "exit_code": self.exit_code,
            "status_counts": dict(self.status_counts),
            "groups": [g.to_json() for g in self.groups],
            "licence_counts": {p: dict(c) for p, c in self.licence_counts.items()},
            "days_left": dict(self.days_left),
            "licence_issues": [g.to_json() for g in self.licence_issues],
        }


def day_bucket(days_left: int | None) -> str:
    if days_left is None:
        return PERMANENT
    for bucket, low, high in DAY_BUCKETS:
        if (low is None or days_left >= low) and (high is None or days_left <= high):
            return bucket
    return DAY_BUCKETS[-1][0]


def _describe(key: str, basis: Basis, code: int | None, lang: str) -> Explanation:
    """Title and fix of a cause group in ``lang``."""
    if key.startswith(("failure:", "status:")):
        kind, value = key.split(":", 1)
        return Explanation(key, format_hresult(code), i18n.t(f"{kind}.{value}", lang), (), catalogued=False)
    if basis == "error_code":
        exp = explain(None, lang, code=code)
    else:
        exp = explain(key, lang, code=code if key == UNKNOWN_KEY else None)
    assert exp is not None  # a key was given
    return exp


def _first_message(host: HostResult) -> str:
    task = host.failed_task
    return redact_text((task.msg if task and task.msg else host.msg) or "")


def _groups(result: RunResult, lang: str) -> tuple[tuple[CauseGroup, ...], dict[str, str]]:
    # per cause: (PC, its position, its failed task's error code); a PC is read once (hosts may be packed)
    members: dict[str, list[tuple[str, int, int | None]]] = defaultdict(list)
    causes: dict[str, Cause] = {}
    by_host: dict[str, str] = {}
    for position, host in enumerate(result.hosts):
        cause = cause_of(host)
        if cause is None:
            continue
        task = host.failed_task
        members[cause.key].append((host.host, position, task.error_code if task else None))
        causes.setdefault(cause.key, cause)
        by_host[host.host] = cause.key
    groups: list[CauseGroup] = []
    for key, hosts in members.items():
        cause = causes[key]
        codes = Counter(code for _, _, code in hosts if code)
        common = codes.most_common(1)[0][0] if codes else cause.code
        exp = _describe(key, cause.basis, common, lang)
        ordered = sorted(hosts, key=lambda h: natural_key(h[0]))
        groups.append(
            CauseGroup(
                key=key,
                basis=cause.basis,
                hosts=tuple(name for name, _, _ in ordered),
                title=exp.title,
                fix=exp.fix,
                code=exp.code or format_hresult(common),
                catalogued=exp.catalogued,
                message=_first_message(result.hosts[ordered[0][1]]),
            )
        )
    groups.sort(key=lambda g: (-g.count, natural_key(g.hosts[0])))
    return tuple(groups), by_host


def _licence_issue_texts(product: str, status: str, error: int | None, lang: str) -> Explanation:
    title = i18n.t(
        "summary.licence_issue", lang, product=product_text(product, lang), status=licence_status_text(status, lang)
    )
    exp = explain(error, lang) if error else None
    if exp is None:
        return Explanation(f"{product}:{status}", None, title, (), catalogued=False)
    return Explanation(exp.key, exp.code, f"{title} — {exp.title}", exp.fix, exp.catalogued)


def _licence_issues(result: RunResult, lang: str) -> tuple[CauseGroup, ...]:
    members: dict[tuple[str, str, int | None], list[str]] = defaultdict(list)
    for host in result.hosts:
        for lic in host.licences:
            if lic.status not in ("Licensed", NOT_APPLICABLE):
                members[(lic.product, lic.status, lic.last_error or None)].append(host.host)
    groups: list[CauseGroup] = []
    for (product, status, error), hosts in members.items():
        exp = _licence_issue_texts(product, status, error, lang)
        groups.append(
            CauseGroup(
                key=f"{product}:{status}:{format_hresult(error) or ''}",
                basis="licence",
                hosts=tuple(natural_sorted(set(hosts))),
                title=exp.title,
                fix=exp.fix,
                code=format_hresult(error),
                catalogued=exp.catalogued,
                product=product,
                licence_status=status,
            )
        )
    groups.sort(key=lambda g: (-g.count, g.key))
    return tuple(groups)


def summarise(result: RunResult, lang: str = "en") -> ClassroomSummary:
    """The classroom summary of a run, with catalogue titles and fixes in ``lang`` (en or zh-TW)."""
    code = lang_code(lang)
    groups, by_host = _groups(result, code)
    days: dict[str, int] = {bucket: 0 for bucket, _, _ in DAY_BUCKETS}
    days[PERMANENT] = 0
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for h in result.hosts:  # one PC at a time: a run's hosts may be kept packed (results/hostpack.py)
        for lic in h.licences:
            counts[lic.product][lic.status] += 1
            if lic.status != NOT_APPLICABLE:
                days[day_bucket(lic.days_left)] += 1
    licence_counts = {p: MappingProxyType(dict(sorted(c.items()))) for p, c in sorted(counts.items())}
    return ClassroomSummary(
        run_id=result.info.id,
        playbook=result.info.playbook,
        lang=code,
        total=len(result.hosts),
        status_counts=MappingProxyType(result.counts()),
        groups=groups,
        licence_counts=MappingProxyType(licence_counts),
        days_left=MappingProxyType(days),
        licence_issues=_licence_issues(result, code),
        interrupted=result.interrupted,
        check=result.info.check,
        exit_code=int(result.exit_code),
        causes=MappingProxyType(by_host),
    )


# ------------------------------------------------------------------------------------------------ text


def licence_status_text(status: str, lang: str) -> str:
    key = LICENCE_STATUS_KEYS.get(status)
    return i18n.t(key, lang) if key else status


def product_text(product: str, lang: str) -> str:
    key = f"product.{product}"
    return i18n.t(key, lang) if i18n.has(key) else product


def bucket_text(bucket: str, lang: str) -> str:
    if bucket == PERMANENT:
        return i18n.t("licence.permanent", lang)
    if bucket == "expired":
        return i18n.t("days.expired", lang)
    for name, low, high in DAY_BUCKETS:
        if name == bucket:
            if high is None:
                return i18n.t("days.over", lang, n=(low or 1) - 1)
            return i18n.t("days.range", lang, low=low, high=high)
    return bucket


def heading(key: str, lang: str) -> str:
    """A message used as a heading before a list: with the language's colon."""
    return i18n.t(key, lang) + ("：" if lang == "zh-TW" else ":")


def host_list(hosts: Iterable[str], lang: str, limit: int = 12) -> str:
    names = list(hosts)
    shown = ", ".join(names[:limit])
    if len(names) > limit:
        shown += ", " + i18n.t("summary.more_hosts", lang, n=len(names) - limit)
    return shown


def _relocalise(summary: ClassroomSummary, lang: str) -> ClassroomSummary:
    """The same summary with catalogue titles/fixes in another language (texts are looked up again)."""
    groups = []
    for g in summary.groups:
        exp = _describe(g.key, g.basis, int(g.code, 16) if g.code else None, lang)
        groups.append(replace(g, title=exp.title, fix=exp.fix))
    issues = []
    for g in summary.licence_issues:
        error = int(g.code, 16) if g.code else None
        exp = _licence_issue_texts(g.product or "", g.licence_status or "", error, lang)
        issues.append(replace(g, title=exp.title, fix=exp.fix))
    return replace(summary, lang=lang, groups=tuple(groups), licence_issues=tuple(issues))


def all_ok_line(summary: ClassroomSummary, code: str) -> str:
    """The all-fine line of a summary, or that no PC ran at all (``--limit @failed`` after a clean run)."""
    if not summary.total:
        return i18n.t("recap.no_hosts", code)
    if summary.not_finished:  # interrupted or never started: not "all fine"
        return i18n.t("recap.some_ok", code, ok=summary.total - summary.not_finished, total=summary.total)
    with_issues = len({host for g in summary.licence_issues for host in g.hosts})
    if with_issues:  # an audit found unlicensed PCs: no PC failed, yet they are not "fine"
        return i18n.t("recap.ran_with_licence_issues", code, total=summary.total, n=with_issues)
    return i18n.t("recap.all_ok", code, total=summary.total)


def headline(summary: ClassroomSummary, lang: str | None = None) -> str:
    """One line: "7 of 40 PCs failed — 4 PCs: Clock is off (pc3, pc11, …); 2 PCs: …"."""
    code = lang_code(lang or summary.lang)
    if code != summary.lang:
        summary = _relocalise(summary, code)
    if not summary.failed:
        return all_ok_line(summary, code)
    parts = [
        f"{i18n.t('recap.group', code, n=g.count, title=g.title)} ({host_list(g.hosts, code, limit=3)})"
        for g in summary.groups
    ]
    return f"{i18n.t('recap.failed_of_total', code, failed=summary.failed, total=summary.total)} — " + "; ".join(parts)


def _cause_lines(summary: ClassroomSummary, code: str) -> list[str]:
    """Each cause with its PCs and its numbered fix (or its message)."""
    lines: list[str] = []
    for g in summary.groups:
        label = i18n.t("recap.group", code, n=g.count, title=g.title)
        if g.code and g.code not in label:
            label += f" [{g.code}]"
        lines.append(f"  {label}")
        lines.append(f"    {host_list(g.hosts, code)}")
        if g.fix:
            lines.append(f"    {i18n.t('recap.fix', code)}")
            lines.extend(f"      {i}. {step}" for i, step in enumerate(g.fix, 1))
        elif g.message:
            lines.append(f"    {g.message}")
    return lines


def _next_step_lines(summary: ClassroomSummary, code: str) -> list[str]:
    """What to do next after failures: retry the failed, the unreachable, read the details of a code."""
    if not summary.failed:
        return []
    lines = [heading("recap.next_steps", code)]
    if any(summary.status_counts.get(s.value, 0) for s in (HostStatus.FAILED, HostStatus.AUTH_REFUSED)):
        lines.append(f"  - {i18n.t('recap.retry_failed', code)}")
    if summary.status_counts.get(HostStatus.UNREACHABLE.value, 0):
        lines.append(f"  - {i18n.t('recap.retry_unreachable', code)}")
    coded = next((g for g in summary.groups if g.code), None)
    if coded is not None:
        lines.append(f"  - {i18n.t('recap.details', code, code=coded.code)}")
    return lines


def _licence_lines(summary: ClassroomSummary, code: str) -> list[str]:
    """Licence problems with their PCs, then the licence states per product."""
    lines: list[str] = []
    if summary.licence_issues:
        lines.append(heading("summary.licence_issues", code))
        for g in summary.licence_issues:
            lines.append(f"  {i18n.t('recap.group', code, n=g.count, title=g.title)}: {host_list(g.hosts, code)}")
    if summary.licence_counts:
        lines.append(heading("summary.licences", code))
        for product, counts in summary.licence_counts.items():
            spread = ", ".join(f"{licence_status_text(s, code)} {n}" for s, n in counts.items())
            lines.append(f"  {product_text(product, code)}: {spread}")
    return lines


def render_summary_text(summary: ClassroomSummary, lang: str | None = None) -> str:
    """Plain text for a terminal or an e-mail: the headline, each cause with its PCs and numbered fix, what
    to do next, licence problems and the days-left spread."""
    code = lang_code(lang or summary.lang)
    if code != summary.lang:
        summary = _relocalise(summary, code)
    lines: list[str] = []
    if summary.check:
        lines.append(i18n.t("check.banner", code))
    if summary.failed:
        lines.append(i18n.t("recap.failed_of_total", code, failed=summary.failed, total=summary.total))
    else:
        lines.append(all_ok_line(summary, code))
    if summary.not_finished:
        lines.append(i18n.t("summary.not_finished", code, n=summary.not_finished))
    lines += _cause_lines(summary, code)
    lines += _next_step_lines(summary, code)
    lines += _licence_lines(summary, code)
    if any(summary.days_left.values()):
        spread = " · ".join(f"{bucket_text(b, code)}: {n}" for b, n in summary.days_left.items() if n)
        lines.append(f"{heading('summary.days_left', code)} {spread}")
    lines.append(i18n.t("recap.run_id", code, run_id=summary.run_id))
    return redact_text("\n".join(lines)) + "\n"


__all__ = [
    "DAY_BUCKETS",
    "PERMANENT",
    "Cause",
    "CauseGroup",
    "ClassroomSummary",
    "Explanation",
    "all_ok_line",
    "bucket_text",
    "cause_of",
    "day_bucket",
    "explain",
    "headline",
    "host_list",
    "lang_code",
    "licence_status_text",
    "product_text",
    "render_summary_text",
    "summarise",
]
