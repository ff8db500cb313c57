"""`kmsfleet audit`: the licence status of every PC, read-only.

Runs the bundled audit.yml in check mode (the play itself is ``check_mode: true`` too, so nothing can change)
and prints one row per PC × product: licence status, days left, the KMS host it uses, and what an activation
run would change - or the problem that would stop it. Then the classroom summary (problems grouped by cause,
with the fix). Exit codes as for `kmsfleet run`: 0 every PC fine, 2 a PC has a problem, 3 a PC did not answer,
4 invalid input, 5 sign-in refused.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator.cli.common import (
    ASK_PASS,
    DB,
    EXTRA_VARS,
    FORKS,
    HOST_TIMEOUT,
    INVENTORY,
    LANG,
    REPORT,
    console,
    examples,
    handle_errors,
    output_lang,
)
from orchestrator.cli.licensing_texts import tr
from orchestrator.cli.output import TerminalReporter
from orchestrator.cli.run_cmd import parse_extra_vars, read_password
from orchestrator.errors import InputError
from orchestrator.executor.options import RunOptions
from orchestrator.knowledge import catalogue
from orchestrator.knowledge.i18n import t
from orchestrator.results.models import HostStatus, HostTaskResult, LicenceRecord, RunResult, TaskStatus

AUDIT_PLAYBOOK = "audit.yml"
NOT_APPLICABLE = "NotApplicable"
PRODUCT_MODULES = {"windows": "windows_kms", "server": "windows_kms", "office": "office_kms"}
PRODUCT_ORDER = {"windows": 0, "server": 1, "office": 2, "sql": 3}

AUDIT_HELP = (
    "Show the licence status of every PC, changing nothing.\n\n"
    "Per PC and product: licence status, days left, KMS host, and what an activation run (site.yml) would change "
    "or which problem would stop it; then the problems grouped by cause with the fix. Runs audit.yml in check "
    "mode. Exit codes: 0 all fine, 2 problems found, 3 a PC did not answer, 4 invalid input, 5 sign-in refused."
)


@dataclass(frozen=True)
class AuditRow:
    host: str
    product: str  # windows | server | office | sql | "" (the PC itself)
    name: str
    status: str  # LicenceRecord.status, or a host status / problem title
    days_left: int | None
    permanent: bool
    kms_host: str | None
    action: str
    problem: bool = False
    expiring: bool = False


def _title(task: HostTaskResult, lang: str) -> str:
    entry = catalogue.lookup(task.diagnosis) if task.diagnosis else None
    if entry is None and task.error_code is not None:
        entry = catalogue.lookup(task.error_code)
    title = entry.text(lang).title if entry is not None else task.msg
    code = task.error_hex
    return f"{title} [{code}]" if code and code not in title else title


def _changes(task: HostTaskResult, record: LicenceRecord, lang: str) -> str:
    """The planned changes of a product task that concern ``record``, in short words."""
    plan = [c for c in task.data.get("plan", ()) if isinstance(c, Mapping)]
    if record.product == "office":
        names = {str(c.get("label")) for c in plan if c.get("action") == "activate"}
        mine = [c for c in plan if c.get("label") == record.name or c.get("label") not in names]
        plan = mine or plan
    words = []
    for c in plan:
        action = str(c.get("action"))
        value = c.get("value")
        words.append(tr(f"audit.{action}", lang, value="" if value is None else value).strip())
    return ", ".join(words) if words else "; ".join(str(x) for x in task.data.get("changes", ()))


def action_for(record: LicenceRecord, tasks: Sequence[HostTaskResult], lang: str) -> tuple[str, bool]:
    """What an activation run would do for one licence (text, is it a problem?)."""
    if record.status == NOT_APPLICABLE:
        return t("licence.not_applicable", lang), False
    module = PRODUCT_MODULES.get(record.product)
    task = next((x for x in reversed(tasks) if x.module == module), None)
    if task is None or task.status is TaskStatus.SKIPPED:
        return "", False
    if task.status is TaskStatus.FAILED:
        return f"{tr('audit.problem', lang)}: {_title(task, lang)}", True
    if task.status is TaskStatus.CHANGED:
        return _changes(task, record, lang), False
    return tr("audit.nothing", lang), False


def audit_rows(result: RunResult, lang: str, renew_below_days: int = 30) -> list[AuditRow]:
    """The audit table of a run (pure: built from the results only)."""
    rows: list[AuditRow] = []
    for host in result.hosts:
        tasks = host.tasks
        if host.status in (HostStatus.UNREACHABLE, HostStatus.AUTH_REFUSED, HostStatus.NOT_RUN, HostStatus.INTERRUPTED):
            bad = host.failed_task
            text = _title(bad, lang) if bad is not None and bad.diagnosis else host.msg
            rows.append(
                AuditRow(host.host, "", "", t(f"status.{host.status.value}", lang), None, False, None, text, True)
            )
            continue
        time_task = next((x for x in tasks if x.module == "time_sync"), None)
        if time_task is not None and time_task.status is TaskStatus.FAILED:
            rows.append(AuditRow(host.host, "", "", "", None, False, None, _title(time_task, lang), True))
        records = sorted(host.licences, key=lambda r: (PRODUCT_ORDER.get(r.product, 9), r.name))
        if not records:
            rows.append(AuditRow(host.host, "", "", tr("audit.no_licences", lang), None, False, None, "", False))
        for rec in records:
            action, problem = action_for(rec, tasks, lang)
            expiring = rec.status == "Licensed" and rec.days_left is not None and rec.days_left <= renew_below_days
            rows.append(
                AuditRow(
                    host=host.host,
                    product=rec.product,
                    name=rec.name,
                    status=rec.status,
                    days_left=rec.days_left,
                    permanent=rec.status == "Licensed" and rec.days_left is None,
                    kms_host=rec.kms_host,
                    action=action,
                    problem=problem,
                    expiring=expiring,
                )
            )
    return rows


def cloned_groups(result: RunResult) -> list[list[str]]:
    """PCs that report the same CMID (cloned without sysprep /generalize; docs/reference.md §1.4)."""
    by_cmid: dict[str, set[str]] = defaultdict(set)
    for host in result.hosts:
        for rec in host.licences:
            if rec.cmid and rec.product in ("windows", "server"):
                by_cmid[rec.cmid.lower()].add(host.host)
    return sorted(sorted(hosts) for hosts in by_cmid.values() if len(hosts) > 1)


def print_audit(out: Console, result: RunResult, lang: str, renew_below_days: int = 30) -> list[AuditRow]:
    from orchestrator.results.summary import licence_status_text, product_text

    rows = audit_rows(result, lang, renew_below_days)
    table = Table(title=tr("audit.title", lang), title_justify="left", show_edge=False, pad_edge=False)
    for col in ("column.host", "column.product", "column.licence", "column.days_left", "column.kms_host"):
        table.add_column(t(col, lang), justify="right" if col == "column.days_left" else "left")
    table.add_column(tr("audit.would", lang))
    last_host = None
    for row in rows:
        product = product_text(row.product, lang) if row.product else ""
        status = licence_status_text(row.status, lang) if row.product else row.status
        style = "green" if row.status == "Licensed" else ("dim" if row.status == NOT_APPLICABLE else "yellow")
        if row.permanent:
            days = t("licence.permanent", lang)
        elif row.days_left is None:
            days = ""
        else:
            days = str(row.days_left)
        if row.expiring:
            days = f"[bold yellow]{days}[/]"
        action = f"[red]{escape(row.action)}[/]" if row.problem else escape(row.action)
        table.add_row(
            escape(row.host) if row.host != last_host else "",
            escape(product),
            f"[{style}]{escape(status)}[/]" if status else "",
            days,
            escape(row.kms_host or ""),
            action,
        )
        last_host = row.host
    out.print()
    out.print(table)
    expiring = sorted({r.host for r in rows if r.expiring})
    if expiring:
        out.print(escape(tr("audit.expiring", lang, n=len(expiring), days=renew_below_days, hosts=", ".join(expiring))))
    twins = cloned_groups(result)
    if twins:
        out.print(escape(tr("audit.cloned", lang, groups="; ".join(", ".join(g) for g in twins))))
    return rows


class AuditReporter(TerminalReporter):
    """Progress while the audit runs; at the end the licence table, then the classroom summary."""

    def __init__(self, out: Console, *, lang: str, verbosity: int, renew_below_days: int) -> None:
        super().__init__(out, lang=lang, verbosity=verbosity, check=True)
        self.renew_below_days = renew_below_days

    def task_done(self, result: HostTaskResult) -> None:
        if self.verbosity >= 1:
            super().task_done(result)

    def run_done(self, result: RunResult) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        print_audit(self.console, result, self.lang, self.renew_below_days)
        self.print_summary(result)


def _renew_days(extra: dict[str, Any]) -> int:
    raw = extra.get("renew_below_days", 30)
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise InputError(f"renew_below_days must be a whole number of days, not {raw!r}") from None


def register(app: typer.Typer) -> None:
    @app.command(
        "audit",
        help=AUDIT_HELP,
        epilog=examples(
            "kmsfleet audit -i inventories/school --limit room101",
            "kmsfleet audit -i lab-inventory.yml --lang zh-TW --report audit.html",
            "kmsfleet audit -i school -e renew_below_days=45",
        ),
    )
    @handle_errors
    def audit(
        inventory: list[str] = INVENTORY,
        limit: str | None = typer.Option(None, "-l", "--limit", help="Host pattern: room101, pc0*, @failed …"),
        forks: int = FORKS,
        extra_vars: list[str] = EXTRA_VARS,
        report: list[str] = REPORT,
        db: str | None = DB,
        no_history: bool = typer.Option(False, "--no-history", help="Do not record this audit in the history."),
        lang: str = LANG,
        ask_pass: bool = ASK_PASS,
        host_timeout: float | None = HOST_TIMEOUT,
        verbose: int = typer.Option(0, "-v", "--verbose", count=True, help="More output (-v, -vv)."),
    ) -> None:
        from orchestrator.api import RunRequest, run_playbook

        lang = output_lang(lang)
        extra = parse_extra_vars(extra_vars)
        options = RunOptions(
            check=True,
            forks=forks,
            extra_vars=extra,
            verbosity=verbose,
            host_budget=host_timeout,
            password=read_password(ask_pass),
            lang=lang,
        )
        request = RunRequest(
            playbook=AUDIT_PLAYBOOK,
            inventory=inventory,
            limit=limit,
            options=options,
            db=db,
            history=not no_history,
            reports=report,
        )
        reporter = AuditReporter(console, lang=lang, verbosity=verbose, renew_below_days=_renew_days(extra))
        result = run_playbook(request, [reporter])
        raise typer.Exit(result.exit_code)
