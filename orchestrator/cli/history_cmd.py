"""`kmsfleet history`, `show`, `report` and `due`: what earlier runs found, from the history database.

The job is never one run (an audit on Monday, an activation, a re-run for the PCs that were off, a weekly
check, a report for the principal), so every run is kept; these commands read it back. They never create a
history database: when there is none yet they say so.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from orchestrator.cli.common import console, examples, handle_errors
from orchestrator.errors import InputError
from orchestrator.knowledge.i18n import normalise_lang, t

if TYPE_CHECKING:  # pragma: no cover
    from orchestrator.results.models import HostResult, HostTaskResult, RunResult
    from orchestrator.results.store import HistoryStore, LicenceRow, RunSummary
    from orchestrator.results.summary import Explanation

DB_HELP = "History database path or URL (default: KMSFLEET_DB, else ~/.local/share/kmsfleet/history.db)."
LANG_HELP = "Output language: en or zh-TW."
RECENT_IN_HINT = 5


# ------------------------------------------------------------------------------------------------ helpers


def _lang(lang: str) -> str:
    try:
        return normalise_lang(lang)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _db_file(db: str | None) -> Path | None:
    """The SQLite file the history lives in (None for another database)."""
    from orchestrator.results.store import resolve_db_url

    url = resolve_db_url(db)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database)
    return None


@contextmanager
def open_history(db: str | None) -> Iterator[HistoryStore | None]:
    """The history store, or None when its SQLite file does not exist yet (nothing is created)."""
    from orchestrator.results.store import HistoryStore

    path = _db_file(db)
    if path is not None and not path.exists():
        yield None
        return
    store = HistoryStore(db)
    try:
        yield store
    finally:
        store.close()


def _where(db: str | None) -> str:
    path = _db_file(db)
    if path is not None:
        return str(path)
    from orchestrator.results.store import resolve_db_url

    return resolve_db_url(db).render_as_string(hide_password=True)


def local(value: datetime | None) -> str:
    """A time as the school sees it: the controller's local time, to the minute."""
    return value.astimezone().strftime("%Y-%m-%d %H:%M") if value is not None else ""


def _playbook_name(playbook: str) -> str:
    return Path(playbook).name if playbook and not playbook.startswith("<") else playbook


def _recent_hint(store: HistoryStore | None) -> str:
    runs = store.runs(last=RECENT_IN_HINT) if store is not None else []
    if not runs:
        return "the history is empty: run a playbook first (kmsfleet run PLAYBOOK -i INVENTORY)"
    listed = "; ".join(f"{r.id} ({_playbook_name(r.playbook)}, {local(r.started)})" for r in runs)
    return f"recent runs: {listed}. All runs: kmsfleet history"


def resolve_run_id(store: HistoryStore | None, ref: str, db: str | None) -> str:
    """A run id from what the user typed (id, unique prefix, ``last``), or exit 4 listing recent runs."""
    from orchestrator.results.store import RunNotFound

    if store is None:
        raise InputError(
            f"no run {ref!r}: there is no history database at {_where(db)}",
            hint="runs are recorded by kmsfleet run; give --db if the history is elsewhere",
        )
    try:
        return store.resolve_run(ref.strip())
    except RunNotFound as exc:
        raise InputError(str(exc), hint=_recent_hint(store)) from None


def load_stored_run(db: str | None, ref: str) -> tuple[RunResult, RunSummary | None]:
    with open_history(db) as store:
        run_id = resolve_run_id(store, ref, db)
        assert store is not None
        result = store.load_run(run_id)
        summary = next((s for s in store.runs() if s.id == run_id), None)
    return result, summary


def counts_text(counts: Mapping[str, int], lang: str) -> str:
    from orchestrator.results.models import HostStatus

    return ", ".join(f"{t('status.' + s.value, lang)} {counts[s.value]}" for s in HostStatus if counts.get(s.value))


def _write_stdout(data: bytes) -> None:
    """Exact bytes to stdout (UTF-8 whatever the locale). A reader that goes away (``| head``) is fine."""
    try:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's own final flush does not complain
        raise typer.Exit(0) from None


# ------------------------------------------------------------------------------------------------ history


def history_table(runs: Sequence[RunSummary], lang: str) -> Table:
    table = Table(show_lines=False, header_style="bold")
    table.add_column(t("column.run", lang), no_wrap=True)
    table.add_column(t("column.started", lang), no_wrap=True)
    table.add_column(t("column.playbook", lang))
    table.add_column(t("column.limit", lang))
    table.add_column(t("column.pcs", lang), justify="right")
    table.add_column(t("column.results", lang))
    table.add_column(t("column.state", lang))
    table.add_column(t("column.exit", lang), justify="right")
    for r in runs:
        playbook = _playbook_name(r.playbook) + (" --check" if r.check else "")
        state = t(f"state.{r.state}", lang)
        style = {"finished": "", "running": "cyan", "interrupted": "yellow", "incomplete": "red"}[r.state]
        table.add_row(
            r.id,
            local(r.started),
            escape(playbook),
            escape(r.limit or ""),
            str(r.hosts),
            escape(counts_text(r.counts, lang)),
            f"[{style}]{escape(state)}[/]" if style else escape(state),
            "" if r.exit_code is None else str(r.exit_code),
        )
    return table


# ------------------------------------------------------------------------------------------------ show


def _licence_brief(host: HostResult, lang: str) -> str:
    from orchestrator.results.summary import licence_status_text, product_text

    parts = []
    for lic in host.licences:
        text = f"{product_text(lic.product, lang)}: {licence_status_text(lic.status, lang)}"
        if lic.days_left is not None:
            text += f" ({t('licence.days', lang, n=lic.days_left)})"
        parts.append(text)
    return "; ".join(parts)


def _print_run_header(result: RunResult, summary: RunSummary | None, lang: str) -> None:
    info = result.info
    from orchestrator.results.summary import heading

    lines = [
        f"{heading('report.run', lang)} {info.id}",
        f"{heading('report.playbook', lang)} {info.playbook}" + ("  (--check)" if info.check else ""),
        f"{heading('report.inventory', lang)} {', '.join(info.inventory)}",
    ]
    if info.limit:
        lines.append(f"{heading('report.limit', lang)} {info.limit}")
    lines.append(f"{heading('report.started', lang)} {local(info.started)}")
    if summary is not None and summary.finished is not None:
        lines.append(f"{heading('report.finished', lang)} {local(summary.finished)}")
    if summary is not None:
        lines.append(t("show.run_state", lang, state=t(f"state.{summary.state}", lang)))
        if summary.exit_code is not None:
            lines.append(f"{heading('report.exit_code', lang)} {summary.exit_code}")
    for line in lines:
        console.print(escape(line))
    if summary is not None and summary.state == "incomplete":
        console.print(f"[yellow]{escape(t('show.incomplete', lang))}[/]")


def _print_hosts(result: RunResult, lang: str) -> None:
    from orchestrator.cli.output import styled
    from orchestrator.results.sorting import natural_key
    from orchestrator.results.summary import summarise

    summary = summarise(result, lang)
    table = Table(header_style="bold")
    for key in ("column.host", "column.status", "column.address", "column.error", "column.diagnosis"):
        table.add_column(t(key, lang))
    table.add_column(t("column.licences", lang))
    for h in sorted(result.hosts, key=lambda x: natural_key(x.host)):
        group = summary.group_for(h.host)
        table.add_row(
            escape(h.host),
            styled(h.status.value, lang),
            escape(h.address or ""),
            escape(group.code or "") if group else "",
            escape(group.title) if group else "",
            escape(_licence_brief(h, lang)),
        )
    console.print(table)
    console.print(escape(counts_text(result.counts(), lang)))


def _find_host(result: RunResult, name: str) -> HostResult:
    found = result.host(name) or next((h for h in result.hosts if h.host.lower() == name.lower()), None)
    if found is None:
        from orchestrator.results.sorting import natural_sorted

        names = natural_sorted(h.host for h in result.hosts)
        shown = ", ".join(names[:20]) + (f" … ({len(names)} in all)" if len(names) > 20 else "")
        raise InputError(
            f"run {result.info.id} has no PC named {name!r}",
            hint=f"PCs in this run: {shown}" if names else "this run recorded no PC",
        )
    return found


def _task_explanation(task: HostTaskResult, lang: str) -> Explanation | None:
    """What the catalogue says about a task that did not succeed: its diagnosis or error code, else its
    failure kind (unreachable, sign-in refused, timeout …)."""
    from orchestrator.results.summary import FAILURE_KEYS, explain

    if task.diagnosis or task.error_code:
        return explain(task.diagnosis, lang, code=task.error_code)
    if task.failure is not None and task.failure in FAILURE_KEYS:
        return explain(FAILURE_KEYS[task.failure], lang)
    return None


def _task_row(i: int, task: HostTaskResult, lang: str) -> list[str]:
    """One row of the tasks table: its status (rescued/ignored shown as such), error, diagnosis, message."""
    from orchestrator.cli.output import styled

    status = task.status.value
    if task.rescued:
        status = "rescued"
    elif task.ignored:
        status = "ignored"
    failed = task.status.value in ("failed", "unreachable")
    exp = _task_explanation(task, lang) if failed else None
    msg = task.msg if len(task.msg) <= 300 else task.msg[:300] + "…"
    return [
        str(i),
        escape(task.task),
        escape(task.module),
        styled(status, lang) + (" *" if task.changed and status == "ok" else ""),
        escape(task.error_hex or ""),
        escape(exp.title if exp else ""),
        escape(msg),
    ]


def _print_tasks(host: HostResult, lang: str) -> None:
    console.print(f"[bold]{escape(t('show.tasks', lang, host=host.host))}[/]")
    if not host.tasks:
        console.print(escape(t("show.no_tasks", lang)))
        return
    table = Table(header_style="bold")
    table.add_column("#", justify="right")
    for key in ("column.task", "column.module", "column.status", "column.error", "column.diagnosis"):
        table.add_column(t(key, lang))
    table.add_column(t("column.message", lang), overflow="fold")
    for i, task in enumerate(host.tasks, 1):
        table.add_row(*_task_row(i, task, lang))
    console.print(table)


def _print_fix(host: HostResult, lang: str) -> None:
    """What to do about the failure that ended this PC's run, if the catalogue knows."""
    from orchestrator.results.summary import cause_of, explain

    cause = cause_of(host)
    if cause is None:
        return
    exp = explain(cause.key, lang, code=cause.code)
    if exp is not None and exp.fix:
        console.print(f"[bold]{escape(t('recap.fix', lang))}[/] {escape(exp.title)}")
        for n, step in enumerate(exp.fix, 1):
            console.print(f"  {n}. {escape(step)}")
    if exp is not None and exp.code:
        console.print(escape(t("recap.details", lang, code=exp.code)))


_LICENCE_COLUMNS = (
    "column.product",
    "column.name",
    "column.channel",
    "column.licence",
    "column.days_left",
    "column.expires",
    "column.kms_host",
    "column.error",
)


def _print_licences(host: HostResult, lang: str) -> None:
    from orchestrator.results.summary import licence_status_text, product_text

    if not host.licences:
        return
    console.print()
    console.print(f"[bold]{escape(t('show.licences', lang, host=host.host))}[/]")
    table = Table(header_style="bold")
    for key in _LICENCE_COLUMNS:
        table.add_column(t(key, lang))
    for lic in host.licences:
        days = t("licence.permanent", lang) if lic.days_left is None else str(lic.days_left)
        table.add_row(
            escape(product_text(lic.product, lang)),
            escape(lic.name),
            escape(lic.channel),
            escape(licence_status_text(lic.status, lang)),
            escape(days),
            escape(local(lic.expires)),
            escape(lic.kms_host or ""),
            escape(f"0x{lic.last_error:08X}" if lic.last_error else ""),
        )
    console.print(table)


def _print_facts(host: HostResult, lang: str) -> None:
    from orchestrator.results.models import thaw

    if not host.facts:
        return
    console.print()
    console.print(f"[bold]{escape(t('show.facts', lang))}[/]")
    for key, value in host.facts.items():
        shown = json.dumps(thaw(value), ensure_ascii=False) if not isinstance(value, str) else value
        console.print(f"  {escape(key)}: {escape(shown)}")


def _print_host(result: RunResult, host: HostResult, lang: str) -> None:
    """One PC of a run: its header, its tasks, what to do about its failure, its licences and facts."""
    from orchestrator.cli.output import styled

    console.print(f"[bold]{escape(host.host)}[/]  {styled(host.status.value, lang)}  {escape(host.address or '')}")
    groups = [g for g in host.groups if g != "all"]
    if groups:
        console.print(escape(", ".join(groups)))
    console.print(escape(f"{local(host.started)} → {local(host.finished)} ({host.duration_ms / 1000:.1f} s)"))
    if host.msg:
        console.print(escape(host.msg))
    console.print()
    _print_tasks(host, lang)
    _print_fix(host, lang)
    _print_licences(host, lang)
    _print_facts(host, lang)


# ------------------------------------------------------------------------------------------------ due


def parse_window(text: str) -> timedelta:
    """``30d``, ``12h``, ``2w``, ``1d12h`` or a plain number of days."""
    from orchestrator.followup import parse_duration

    return timedelta(seconds=parse_duration(text, default_unit="d", option="--within"))


def expiry_of(row: LicenceRow) -> tuple[datetime | None, bool]:
    """When the licence runs out and whether that is an estimate (from days left when it was read)."""
    lic = row.licence
    if lic.expires is not None:
        return lic.expires, False
    if lic.days_left is None:
        return None, False
    return row.seen_at + timedelta(days=lic.days_left), True


def due_rows(rows: Sequence[LicenceRow], window: timedelta, now: datetime) -> list[LicenceRow]:
    """Licences that run out before ``now + window`` (already expired ones included; permanent never)."""
    from orchestrator.results.sorting import natural_key

    out = []
    for row in rows:
        expiry, _ = expiry_of(row)
        if expiry is not None and expiry - now <= window:
            out.append(row)
    # by the expiry as shown (to the minute), then PC and product: a room read in one run lists pc1, pc2, pc10
    # with each PC's products together, not in the order of the microseconds at which they were read
    out.sort(
        key=lambda r: (
            (expiry_of(r)[0] or now).replace(second=0, microsecond=0),
            natural_key(r.host),
            r.licence.product,
        )
    )
    return out


def _window_text(window: timedelta, lang: str) -> str:
    seconds = window.total_seconds()
    if seconds >= 86400 and seconds % 86400 == 0:
        return t("licence.days", lang, n=int(seconds // 86400))
    from orchestrator.followup import format_duration

    return format_duration(seconds)


def _due_json(found: Sequence[LicenceRow]) -> list[dict[str, Any]]:
    data = []
    for row in found:
        expiry, estimated = expiry_of(row)
        data.append({**row.to_json(), "expiry": expiry.isoformat() if expiry else None, "expiry_estimated": estimated})
    return data


_DUE_COLUMNS = (
    "column.host",
    "column.room",
    "column.product",
    "column.licence",
    "column.days_left",
    "column.expires",
    "column.last_seen",
    "column.run",
)


def _due_row(row: LicenceRow, code: str) -> list[str]:
    from orchestrator.results.summary import licence_status_text, product_text

    expiry, estimated = expiry_of(row)
    left = row.days_left_now
    days = "" if left is None else str(left)
    style = "red" if left is not None and left <= 0 else ("yellow" if left is not None and left <= 7 else "")
    return [
        escape(row.host),
        escape(row.room or ""),
        escape(product_text(row.licence.product, code)),
        escape(licence_status_text(row.licence.status, code)),
        f"[{style}]{days}[/]" if style else days,
        escape(("≈" if estimated else "") + local(expiry)),
        escape(local(row.seen_at)),
        escape(row.run_id),
    ]


def _print_due_table(found: Sequence[LicenceRow], code: str) -> None:
    """The due licences, soonest first; a note when an expiry is estimated from days left."""
    table = Table(header_style="bold")
    for key in _DUE_COLUMNS:
        table.add_column(t(key, code), no_wrap=key in ("column.run", "column.expires", "column.last_seen"))
    for row in found:
        table.add_row(*_due_row(row, code))
    console.print(table)
    if any(expiry_of(row)[1] for row in found):
        console.print(escape(t("due.estimated", code)))


# ------------------------------------------------------------------------------------------------ commands

HISTORY_HELP = """List earlier runs, newest first: when, which playbook, how many PCs, how they ended.

A run whose process was killed (or whose computer went down) shows as incomplete; every PC that finished
before that is kept. Follow-up runs (--limit @unreachable, --retry-unreachable-for) show their limit, e.g.
@unreachable:RUN_ID names the run they followed."""

SHOW_HELP = """Show a stored run: every PC with its status, error code, diagnosis and licences.

RUN_ID is a run id from kmsfleet history, a unique prefix of one, or `last`. With --host, that PC's tasks
one by one, with error codes, diagnoses and the fix, its licences and its facts."""

REPORT_HELP = """Write the report of a stored run: JSON, CSV (for Excel), JUnit XML (CI) or HTML (for the principal).

Written to standard output unless --output is given (the format is then taken from the file name if --format
is not). CSV is UTF-8 with a byte-order mark so Excel shows 中文. RUN_ID may be `last`."""

DUE_HELP = """PCs whose Windows or Office licence runs out soon, from the latest state kmsfleet knows of each PC.

For every PC and product, the most recent reading in the history counts (whichever run it came from), with
when it was read. KMS activations last 180 days and renew themselves every 7 days while the KMS host is
reachable: a licence that is due soon means the PC has not reached its KMS host for a while.
--within takes 30d, 12h, 2w or a plain number of days."""


@handle_errors
def history(
    last: int = typer.Option(20, "--last", "-n", min=1, help="How many runs to show (newest first)."),
    db: str | None = typer.Option(None, "--db", envvar="KMSFLEET_DB", help=DB_HELP),
    lang: str = typer.Option("en", "--lang", envvar="KMSFLEET_LANG", help=LANG_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    code = _lang(lang)
    with open_history(db) as store:
        runs = store.runs(last=last) if store is not None else []
    if as_json:
        _write_stdout((json.dumps([r.to_json() for r in runs], ensure_ascii=False, indent=2) + "\n").encode())
        return
    if not runs:
        console.print(escape(t("history.empty", code, path=_where(db))))
        return
    console.print(history_table(runs, code))
    console.print(escape(t("history.next", code)))


@handle_errors
def show(
    run_id: str = typer.Argument(..., metavar="RUN_ID", help="Run id (or a unique prefix, or `last`)."),
    host: str | None = typer.Option(None, "--host", "-H", help="Show this PC's tasks, licences and facts."),
    db: str | None = typer.Option(None, "--db", envvar="KMSFLEET_DB", help=DB_HELP),
    lang: str = typer.Option("en", "--lang", envvar="KMSFLEET_LANG", help=LANG_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the stored run (or PC) as JSON."),
) -> None:
    code = _lang(lang)
    result, summary = load_stored_run(db, run_id)
    if as_json:
        from orchestrator.redact import redact

        data: Any
        if host is not None:
            data = _find_host(result, host).to_json()
        else:
            data = {
                "run": {**result.info.to_json(), **(summary.to_json() if summary else {})},
                "hosts": [h.to_json() for h in result.hosts],
            }
        _write_stdout((json.dumps(redact(data), ensure_ascii=False, indent=2, default=str) + "\n").encode())
        return
    if host is not None:
        found = _find_host(result, host)
        _print_run_header(result, summary, code)
        console.print()
        _print_host(result, found, code)
        return
    _print_run_header(result, summary, code)
    console.print()
    _print_hosts(result, code)
    console.print(escape(t("show.host_detail", code, run_id=result.info.id)))


@handle_errors
def report(
    run_id: str = typer.Argument(..., metavar="RUN_ID", help="Run id (or a unique prefix, or `last`)."),
    fmt: str | None = typer.Option(None, "--format", "-f", help="json, csv, junit or html."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
    lang: str = typer.Option("en", "--lang", envvar="KMSFLEET_LANG", help=LANG_HELP),
    db: str | None = typer.Option(None, "--db", envvar="KMSFLEET_DB", help=DB_HELP),
) -> None:
    from orchestrator.results.reports import (
        check_writable,
        format_for,
        refuse_database,
        render_report,
        write_report,
    )

    code = _lang(lang)
    if fmt is None and output is None:
        raise InputError("give --format (json, csv, junit, html) or --output FILE", hint="e.g. --format html")
    if output is not None:
        refuse_database(Path(output), "--output")  # before the format: "H.db" is the history, not a typo
    kind = format_for(output or "", fmt)
    if output is not None:
        check_writable(output, "--output")
    result, _ = load_stored_run(db, run_id)
    if output is not None:
        path = write_report(result, output, kind, lang=code)
        console.print(escape(f"{kind} report of run {result.info.id} written to {path}"))
        return
    content = render_report(result, kind, code)
    _write_stdout(content if isinstance(content, bytes) else content.encode("utf-8"))


@handle_errors
def due(
    within: str = typer.Option("30d", "--within", "-w", help="Time window: 30d, 12h, 2w or days."),
    db: str | None = typer.Option(None, "--db", envvar="KMSFLEET_DB", help=DB_HELP),
    lang: str = typer.Option("en", "--lang", envvar="KMSFLEET_LANG", help=LANG_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    from orchestrator.results.models import utcnow

    code = _lang(lang)
    window = parse_window(within)
    now = utcnow()
    with open_history(db) as store:
        rows = store.latest_licences(now=now) if store is not None else []
    found = due_rows(rows, window, now)
    if as_json:
        _write_stdout((json.dumps(_due_json(found), ensure_ascii=False, indent=2, default=str) + "\n").encode())
        return
    if not rows:
        console.print(escape(t("due.no_data", code)))
        return
    window_text = _window_text(window, code)
    if not found:
        pcs = len({r.host for r in rows})
        console.print(escape(t("due.none", code, window=window_text, pcs=pcs)))
        return
    console.print(f"[bold]{escape(t('due.heading', code, n=len(found), window=window_text))}[/]")
    _print_due_table(found, code)
    console.print(escape(t("due.renew", code)))


def register(app: typer.Typer) -> None:
    app.command(
        "history",
        help=HISTORY_HELP,
        epilog=examples("kmsfleet history", "kmsfleet history --last 5", "kmsfleet history --db school.db --json"),
    )(history)
    app.command(
        "show",
        help=SHOW_HELP,
        epilog=examples(
            "kmsfleet show last",
            "kmsfleet show 3f2a9c1b --host pc07 --lang zh-TW",
            "kmsfleet show last --json > run.json",
        ),
    )(show)
    app.command(
        "report",
        help=REPORT_HELP,
        epilog=examples(
            "kmsfleet report last --format html --output room101.html --lang zh-TW",
            "kmsfleet report 3f2a9c1b --format csv --output licences.csv",
            "kmsfleet report last --format json | jq .summary",
            "kmsfleet report last --output results.xml",
        ),
    )(report)
    app.command(
        "due",
        help=DUE_HELP,
        epilog=examples(
            "kmsfleet due --within 30d",
            "kmsfleet due --within 2w --lang zh-TW",
            "kmsfleet due --within 7 --json",
        ),
    )(due)


__all__ = ["due_rows", "expiry_of", "load_stored_run", "open_history", "parse_window", "register", "resolve_run_id"]
