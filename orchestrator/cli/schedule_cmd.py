"""`kmsfleet schedule add|list|remove|run`: runs that happen by themselves (a weekly audit, a morning pass)."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from orchestrator.cli.common import EXTRA_VARS, INVENTORY, LANG, console, examples, handle_errors
from orchestrator.errors import InputError

if TYPE_CHECKING:
    from orchestrator.schedule import Backend, CronExpr, Schedule

HELP = """Scheduled runs: a weekly licence audit, an activation pass every school morning …

Schedules are kept in $XDG_CONFIG_HOME/kmsfleet/schedules.yml (~/.config/kmsfleet/schedules.yml) and installed
as a systemd user timer where systemd runs for this user, else as a crontab entry. A scheduled run is a normal
run: it is recorded in the history (kmsfleet history) with the usual exit codes."""

ADD_HELP = """Add a schedule: run PLAYBOOK on INVENTORY at the times of a cron expression.

CRON has five fields, minute hour day-of-month month day-of-week, with *, lists (1,15), ranges (1-5), steps
(*/15) and names (mon-fri, jan), or @daily, @weekly, @monthly, @hourly. "0 7 * * 1-5" is 07:00 Monday to
Friday. The equivalent systemd OnCalendar= and a Windows `schtasks /Create` line (for a Windows controller)
are printed. The password comes from the inventory or KMSFLEET_PASSWORD in the scheduler's environment."""


def _print_install_notes(lines: list[str]) -> None:
    for line in lines:
        console.print(escape(line))


def _check_now(
    name: str, cron: str, playbook: str, inventory: list[str], limit: str | None, extra_vars: list[str]
) -> CronExpr:
    """Everything is checked now, not at 07:00 on Monday with nobody watching; the parsed cron expression."""
    from orchestrator.api import check_limit, load_plan, resolve_playbook
    from orchestrator.cli.run_cmd import parse_extra_vars
    from orchestrator.inventory.loader import load_inventory
    from orchestrator.schedule import check_name, parse_cron, refuse_secret_vars

    check_name(name)
    expr = parse_cron(cron)
    given_vars = parse_extra_vars(list(extra_vars))
    # the whole playbook: a typo in a module name fails here (-e may name the roles an include_role runs)
    load_plan(resolve_playbook(playbook), extra_vars=given_vars)
    load_inventory(list(inventory))
    check_limit(limit)
    for given in extra_vars:
        if not given.strip().startswith("@"):  # a vars file keeps its secrets to itself: only its path is stored
            refuse_secret_vars(parse_extra_vars([given]), given)
    return expr


def _absolute(path: str) -> str:
    """A path that exists, made absolute (a scheduled run starts elsewhere); anything else as given."""
    return str(Path(path).resolve()) if Path(path).exists() else path


def _new_schedule(  # the options of `schedule add`, as stored
    name: str,
    playbook: str,
    inventory: list[str],
    cron_text: str,
    check: bool,
    limit: str | None,
    db: str | None,
    extra_vars: list[str],
) -> Schedule:
    from orchestrator.schedule import Schedule, db_for_schedule

    return Schedule(
        name=name,
        playbook=_absolute(playbook),
        inventory=tuple(_absolute(i) for i in inventory),
        cron=cron_text,
        check=check,
        limit=limit,
        db=str(Path(db).resolve()) if db and "://" not in db else db_for_schedule(db),
        extra_vars=tuple(
            "@" + str(Path(e.strip()[1:]).resolve()) if e.strip().startswith("@") else e for e in extra_vars
        ),
        workdir=os.getcwd(),
        created=datetime.now().astimezone().isoformat(timespec="seconds"),
    )


def _install(schedule: Schedule, backend: str, replace_existing: bool) -> Backend:
    """Store ``schedule`` and install its timer (replacing one of the same name if asked); the backend used."""
    from dataclasses import replace

    from orchestrator.schedule import ScheduleFile, backend_named, choose_backend

    store = ScheduleFile()
    existing = store.load().get(schedule.name)
    if existing is not None and not replace_existing:
        raise InputError(
            f"a schedule named {schedule.name!r} exists already",
            hint="choose another name, add --replace, or kmsfleet schedule remove it first",
        )
    chosen = choose_backend(backend)
    schedule = replace(schedule, backend=chosen.name)
    if existing is not None:
        backend_named(existing.backend).uninstall(schedule.name)
    notes = chosen.install(schedule)
    store.put(schedule, replace_existing=True)
    console.print(f"[green]schedule {escape(schedule.name)} added[/] ({escape(store.path.as_posix())})")
    _print_install_notes(notes)
    return chosen


def _print_equivalents(schedule: Schedule, expr: CronExpr) -> None:
    """When it runs next, and the same times for systemd and for a Windows controller's Task Scheduler."""
    from orchestrator.schedule import schtasks_lines, to_on_calendar

    nxt = expr.next_after(datetime.now())
    if nxt is not None:
        console.print(f"next run: {nxt:%Y-%m-%d %H:%M} (controller's local time)")
    console.print("systemd: " + escape("; ".join(f"OnCalendar={c}" for c in to_on_calendar(expr))))
    lines, why = schtasks_lines(schedule.name, expr, ["kmsfleet", *schedule.shown_args()])
    console.print("Windows controller (Task Scheduler):")
    for line in lines:
        console.print("  " + escape(line))
    if why:
        console.print(f"  ({escape(why)})")


@handle_errors
def add(
    name: str = typer.Argument(..., help="Schedule name: letters, digits, '-' and '_'."),
    playbook: str = typer.Option(..., "--playbook", "-p", help="Playbook file or bundled playbook name."),
    inventory: list[str] = INVENTORY,
    cron: str = typer.Option(..., "--cron", help='When: a cron expression such as "0 7 * * 1-5".'),
    check: bool = typer.Option(False, "-C", "--check", help="Dry runs: report, change nothing."),
    limit: str | None = typer.Option(None, "-l", "--limit", help="Host pattern (room101, @unreachable …)."),
    db: str | None = typer.Option(None, "--db", help="History database for these runs (default: the usual one)."),
    extra_vars: list[str] = EXTRA_VARS,
    backend: str = typer.Option("auto", "--backend", help="auto (default), systemd, cron or none (store only)."),
    replace_existing: bool = typer.Option(False, "--replace", help="Replace a schedule with the same name."),
) -> None:
    expr = _check_now(name, cron, playbook, inventory, limit, extra_vars)
    schedule = _new_schedule(name, playbook, inventory, expr.text, check, limit, db, extra_vars)
    chosen = _install(schedule, backend, replace_existing)
    if chosen.name == "none":
        console.print(
            "no scheduler is installed here (neither a systemd user instance nor crontab): run it from "
            f"your own scheduler with: kmsfleet schedule run {escape(name)}"
        )
    _print_equivalents(schedule, expr)


@handle_errors
def list_(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    import json

    from orchestrator.redact import mask_url
    from orchestrator.schedule import ScheduleError, ScheduleFile, backend_named, parse_cron

    store = ScheduleFile()
    schedules = store.load()
    installed: dict[str, set[str] | None] = {}
    for kind in {s.backend for s in schedules.values()}:
        try:
            installed[kind] = backend_named(kind).installed()
        except ScheduleError:
            installed[kind] = None  # cannot tell (crontab missing …)
    rows: list[tuple[Schedule, bool | None, datetime | None]] = []
    now = datetime.now()
    for s in sorted(schedules.values(), key=lambda x: x.name):
        names = installed.get(s.backend)
        state = None if names is None or s.backend == "none" else s.name in names
        rows.append((s, state, parse_cron(s.cron).next_after(now)))
    if as_json:
        data = [
            {
                "name": s.name,
                **s.to_data(),
                "db": mask_url(s.db) if s.db else None,
                "installed": state,
                "next_run": nxt.isoformat() if nxt else None,
                "command": ["kmsfleet", *s.shown_args()],
            }
            for s, state, nxt in rows
        ]
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    if not rows:
        console.print(f"no schedules yet ({escape(store.path.as_posix())}); add one with kmsfleet schedule add")
        return
    table = Table(header_style="bold")
    for column in ("Name", "Cron", "Next run", "Runs", "Backend", "Installed"):
        table.add_column(column)
    for s, state, nxt in rows:
        if s.backend == "none":
            shown = "stored only"
        else:
            shown = "?" if state is None else ("[green]yes[/]" if state else "[red]no[/]")
        table.add_row(
            escape(s.name),
            escape(s.cron),
            f"{nxt:%Y-%m-%d %H:%M}" if nxt else "never",
            escape(" ".join(["kmsfleet", *s.shown_args()])),
            s.backend,
            shown,
        )
    console.print(table)


@handle_errors
def remove(name: str = typer.Argument(..., help="Schedule name (kmsfleet schedule list).")) -> None:
    from orchestrator.schedule import ScheduleFile, backend_named

    store = ScheduleFile()
    schedule = store.get(name)
    notes = backend_named(schedule.backend).uninstall(name)
    store.delete(name)
    console.print(f"schedule {escape(name)} removed")
    _print_install_notes(notes)


@handle_errors
def run_now(
    name: str = typer.Argument(..., help="Schedule name (kmsfleet schedule list)."),
    lang: str = LANG,
    verbose: int = typer.Option(0, "-v", "--verbose", count=True, help="More output."),
) -> None:
    from orchestrator.api import RunRequest
    from orchestrator.cli.run_cmd import execute, parse_extra_vars, read_password
    from orchestrator.cli.wake_cmd import WakePrinter
    from orchestrator.executor.state import RunOptions
    from orchestrator.knowledge.i18n import normalise_lang
    from orchestrator.schedule import ScheduleFile

    try:
        code = normalise_lang(lang)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    schedule = ScheduleFile().get(name)
    if schedule.workdir and Path(schedule.workdir).is_dir():
        os.chdir(schedule.workdir)  # relative paths in -e values or the inventory resolve as when added
    options = RunOptions(
        check=schedule.check,
        extra_vars=parse_extra_vars(list(schedule.extra_vars)),
        verbosity=verbose,
        password=read_password(False),
        lang=code,
    )
    request = RunRequest(
        playbook=schedule.playbook,
        inventory=list(schedule.inventory),
        limit=schedule.limit,
        options=options,
        db=schedule.db,
        wake_progress=WakePrinter(code),
    )
    result = execute(request, code, verbose)
    raise typer.Exit(result.exit_code)


def register(app: typer.Typer) -> None:
    schedule_app = typer.Typer(
        help=HELP,
        epilog=examples(
            'kmsfleet schedule add weekday-audit --playbook audit.yml -i school.yml --cron "0 7 * * 1-5"',
            "kmsfleet schedule list",
            "kmsfleet schedule run weekday-audit",
            "kmsfleet schedule remove weekday-audit",
        ),
        no_args_is_help=True,
        rich_markup_mode="rich",
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.add_typer(schedule_app, name="schedule")
    schedule_app.command(
        "add",
        help=ADD_HELP,
        epilog=examples(
            'kmsfleet schedule add weekday-audit --playbook audit.yml -i school.yml --cron "0 7 * * 1-5" --check',
            'kmsfleet schedule add friday-office --playbook office2016.yml -i school.yml --cron "30 16 * * fri" '
            "--limit room101",
            "kmsfleet schedule add nightly --playbook site.yml -i school.yml --cron @daily -e kms_host=10.0.0.5",
        ),
    )(add)
    schedule_app.command(
        "list",
        help="List the schedules: when they run next, what they run and whether their timer is installed.",
        epilog=examples("kmsfleet schedule list"),
    )(list_)
    schedule_app.command(
        "remove",
        help="Remove a schedule: its timer or crontab entry, and its entry in schedules.yml.",
        epilog=examples("kmsfleet schedule remove weekday-audit"),
    )(remove)
    schedule_app.command(
        "run",
        help="Run a schedule now, exactly as its timer would: recorded in the history, same exit codes as run.",
        epilog=examples("kmsfleet schedule run weekday-audit", "kmsfleet schedule run weekday-audit --lang zh-TW"),
    )(run_now)


__all__ = ["register"]
