"""`kmsfleet run` and `kmsfleet ping`: run a playbook (or one ping) against an inventory."""

from __future__ import annotations

import getpass
import json
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import typer

from orchestrator.ansiblecfg import AnsibleConfig
from orchestrator.cli.ansible_opts import (
    ASK_VAULT_PASS,
    REMOTE_USER,
    VAULT_ID,
    VAULT_PASSWORD_FILE,
    connection_defaults,
    inventory_sources,
    read_config,
    setup_vault,
)
from orchestrator.cli.common import (
    ASK_PASS,
    DB,
    EXTRA_VARS,
    FORKS,
    HOST_TIMEOUT,
    INVENTORY,
    LANG,
    NO_HISTORY,
    PASSWORD_ENV,
    REPORT,
    console,
    escape,
    examples,
    handle_errors,
    output_lang,
)
from orchestrator.errors import InputError, Location
from orchestrator.executor.options import DEFAULT_FORKS, RunOptions
from orchestrator.exitcodes import ExitCode
from orchestrator.results.models import RunResult


def parse_extra_vars(values: list[str]) -> dict[str, Any]:
    """Ansible's -e forms: key=value pairs, @file.yml, or a JSON/YAML mapping."""
    from orchestrator.playbook.kv import KVError, parse_kv  # Ansible key=value rules (quotes, spaces)
    from orchestrator.yamlsource import load_yaml_file, load_yaml_text

    out: dict[str, Any] = {}
    for raw in values:
        text = raw.strip()
        if text.startswith("@"):
            if not text[1:].strip():
                raise InputError("-e @: give the name of a YAML file of variables", hint="e.g. -e @vars.yml")
            data = load_yaml_file(text[1:])
            if not isinstance(data, dict):
                raise InputError("-e @FILE must contain a mapping of variables", Location(text[1:]))
            out.update(data)
        elif text.startswith(("{", "[")):
            data = load_yaml_text(text, "-e")
            if not isinstance(data, dict):
                raise InputError(f"-e {text!r}: expected a mapping")
            out.update(data)
        elif "=" in text:
            try:
                pairs, stray, _warnings = parse_kv(text, None)
            except KVError as exc:
                hint = "close every quote and {{ }}, e.g. -e 'school=\"Main Street\"'"
                raise InputError(f"-e {text!r}: {exc}", hint=hint) from None
            if stray:
                raise InputError(f"-e {text!r}: {stray[0]!r} is not key=value")
            out.update(pairs)
        else:
            raise InputError(f"-e {text!r}: use key=value, @vars.yml or a JSON mapping")
    return out


def read_password(ask: bool) -> str | None:
    if ask:
        if sys.stdin.isatty():
            typed: str | None = getpass.getpass("WinRM password: ")
        else:
            line = sys.stdin.readline()
            typed = line.rstrip("\r\n") if line else None
        if not typed:  # not one sign-in attempt with an empty password (each counts towards a lockout)
            raise InputError("--ask-pass: no password was given", hint=f"type it at the prompt, or set {PASSWORD_ENV}")
        return typed
    return os.environ.get(PASSWORD_ENV) or None


def _sigterm_as_interrupt() -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (tests calling in-process)
        pass


def execute(request: Any, lang: str, verbosity: int, dist: Any = None) -> RunResult:
    from orchestrator.api import run_playbook
    from orchestrator.cli.malloc_arenas import limit_malloc_arenas
    from orchestrator.cli.output import TerminalReporter

    limit_malloc_arenas()  # before the worker threads exist: peak memory at thousands of PCs (its docstring)
    reporter = TerminalReporter(console, lang=lang, verbosity=verbosity, check=request.options.check)
    _sigterm_as_interrupt()
    if dist is not None:
        from orchestrator.api import run_distributed
        from orchestrator.cli.site_progress import SiteProgressPrinter

        return run_distributed(request, dist, [reporter], progress=SiteProgressPrinter(console))
    return run_playbook(request, [reporter])


def distributed_options(
    distributed: bool,
    broker: str | None,
    site_timeout: float,
    batch_size: int,
    default_site: str | None,
    broker_file: str | None = None,
    keys: str | None = None,
) -> Any:
    """``--distributed`` and its options (None for a local run)."""
    if not distributed:
        if default_site is not None:
            raise InputError("--default-site goes with --distributed")
        return None  # a --broker (or KMSFLEET_BROKER_URL) alone changes nothing
    from orchestrator.distributed.celery_app import check_site, resolve_broker
    from orchestrator.distributed.controller import DistributedOptions

    url = resolve_broker(broker, broker_file)
    if not url:
        raise InputError(
            "--distributed needs the broker's URL",
            hint="--broker-url-file FILE (keeps the password off the command line), KMSFLEET_BROKER_URL, "
            "or --broker redis://127.0.0.1:6379/0",
        )
    if default_site is not None:
        check_site(default_site)
    return DistributedOptions(
        broker=url, site_timeout=site_timeout, batch_size=batch_size, default_site=default_site, keys=keys
    )


# ------------------------------------------------------------ follow-up passes (--retry-unreachable-for)

DEFAULT_EVERY = "10m"


def followup_window(retry_for: str | None, every: str | None) -> tuple[float, float] | None:
    """(window, every) in seconds for ``--retry-unreachable-for`` / ``--every``, or None."""
    from orchestrator.followup import MIN_EVERY_SECONDS, parse_duration

    if retry_for is None:
        if every is not None:
            raise InputError(
                "--every goes with --retry-unreachable-for", hint="e.g. --retry-unreachable-for 2h --every 10m"
            )
        return None
    window = parse_duration(retry_for, option="--retry-unreachable-for")
    interval = parse_duration(every or DEFAULT_EVERY, option="--every")
    if interval < MIN_EVERY_SECONDS:
        raise InputError(f"--every must be at least {MIN_EVERY_SECONDS:.0f}s")
    if interval > window:
        raise InputError(
            f"--every ({every or DEFAULT_EVERY}) is longer than --retry-unreachable-for ({retry_for}): "
            "no follow-up pass would fit",
            hint="e.g. --retry-unreachable-for 2h --every 10m",
        )
    return window, interval


def run_with_followups(request: Any, lang: str, verbosity: int, window: float, every: float, dist: Any = None) -> int:
    """The first run, then follow-up passes for the PCs that were off (``orchestrator.followup``). Each pass
    is its own run in the history; reports show every PC's final state; the exit code too."""
    import dataclasses
    import time

    from orchestrator.followup import Timing, Waiting, format_duration, retry_unreachable
    from orchestrator.knowledge.i18n import t
    from orchestrator.results.summary import host_list

    started = time.monotonic()
    first = execute(request, lang, verbosity, dist)
    passes: list[RunResult] = []

    def run_pass(limit: str, hosts: tuple[str, ...]) -> RunResult:
        text = t("followup.pass", lang, number=len(passes) + 1, n=len(hosts))
        console.print(f"\n[bold]{escape(text)}[/]")
        result = execute(dataclasses.replace(request, limit=limit, reports=(), run_id=None), lang, verbosity, dist)
        passes.append(result)
        return result

    def on_wait(w: Waiting) -> None:
        text = t(
            "followup.waiting",
            lang,
            n=len(w.hosts),
            hosts=host_list(w.hosts, lang),
            next=format_duration(w.next_pass_in),
            remaining=format_duration(w.remaining),
        )
        console.print(f"[yellow]{escape(text)}[/]")

    timing = Timing(started=started)
    outcome = retry_unreachable(
        first, run_pass, window=window, every=every, history=request.history, on_wait=on_wait, timing=timing
    )
    combined = outcome.combined
    if len(outcome.runs) > 1:
        if outcome.still_unreachable:
            still = outcome.still_unreachable
            console.print(f"[red]{escape(t('followup.gave_up', lang, n=len(still), hosts=host_list(still, lang)))}[/]")
        elif not outcome.interrupted:
            console.print(f"[green]{escape(t('followup.all_reached', lang))}[/]")
        counts = ", ".join(f"{t('status.' + k, lang)} {v}" for k, v in combined.counts().items() if v)
        ids = ", ".join(r.info.id for r in outcome.runs)
        console.print(escape(t("followup.final", lang, runs=len(outcome.runs), ids=ids, counts=counts)))
    if request.reports and (len(outcome.runs) > 1 or outcome.interrupted):  # Ctrl-C while waiting: say so
        from orchestrator.results.reports import write_report

        for path in request.reports:
            write_report(combined, Path(path), lang=lang)
    return outcome.exit_code


RUN_HELP = (
    "Run a playbook on every PC of an inventory, in parallel.\n\n"
    "PLAYBOOK is a path or a bundled playbook name: site.yml (everything each PC has), windows.yml, "
    "office2013.yml, office2016.yml, office2019.yml, winsvr.yml, sqlsvr.yml, audit.yml, seed-procedure.yml.\n\n"
    "Exit codes: 0 all ok, 2 a task failed, 3 a PC was unreachable, 4 invalid input, 5 sign-in refused, "
    "99 interrupted.\n\n"
    "--retry-unreachable-for 2h --every 10m: after the run, re-run only the PCs that were unreachable (switched "
    "off) every 10 minutes until they answer or 2 hours have passed. Each pass is its own run in the history "
    "(its limit @unreachable:RUN_ID names the run before it); the exit code and --report show every PC's final "
    "state."
)


# ------------------------------------------------------------ the options of `kmsfleet run`

RUN_INVENTORY = typer.Option(
    [], "-i", "--inventory", help="Inventory file, directory or host list (repeatable; ansible.cfg's if none)."
)
RUN_LIMIT = typer.Option(
    None, "-l", "--limit", help="Host pattern: room101, pc0*, room101:!pc05, @failed, @unreachable, @file."
)
CHECK = typer.Option(False, "-C", "--check", help="Dry run: report what would change, change nothing.")
DIFF = typer.Option(False, "-D", "--diff", help="Show before/after where meaningful.")
RUN_FORKS = typer.Option(
    None,
    "-f",
    "--forks",
    min=1,
    max=5000,
    help=f"PCs worked on at the same time (at most; default {DEFAULT_FORKS}, or ansible.cfg's forks): a run on "
    "fewer PCs works on all of them at once.",
)
STRATEGY = typer.Option("free", "--strategy", help="free (default: no PC waits) or linear (lock-step).")
TAGS = typer.Option([], "-t", "--tags", help="Only tasks with these tags (comma lists allowed).")
SKIP_TAGS = typer.Option([], "--skip-tags", help="Skip tasks with these tags.")
VERBOSE = typer.Option(0, "-v", "--verbose", count=True, help="More output (-v, -vv, -vvv).")
RETRY_UNREACHABLE_FOR = typer.Option(
    None,
    "--retry-unreachable-for",
    help="Then keep re-running only the PCs that were off, for this long (e.g. 2h); see --every.",
)
EVERY = typer.Option(None, "--every", help="Time between follow-up passes (default 10m).")
DISTRIBUTED = typer.Option(False, "--distributed", help="Run on per-site workers (kmsfleet worker) through --broker.")
BROKER = typer.Option(None, "--broker", help="With --distributed: Redis URL of the broker (or KMSFLEET_BROKER_URL).")
BROKER_FILE = typer.Option(
    None, "--broker-url-file", help="With --distributed: a file holding the broker URL (with its password)."
)
KEYS = typer.Option(
    None, "--keys", envvar="KMSFLEET_KEYS", help="With --distributed: the key folder (kmsfleet keys init)."
)
SITE_TIMEOUT = typer.Option(
    60.0, "--site-timeout", min=1, help="With --distributed: give up on a site without a worker after this."
)
BATCH_SIZE = typer.Option(50, "--batch-size", min=1, max=5000, help="With --distributed: PCs per batch.")
DEFAULT_SITE = typer.Option(
    None, "--default-site", help="With --distributed: the site of PCs without a 'site' variable."
)
PROCESSES = typer.Option(
    "1", "--processes", help="Spread the PCs over N worker processes on this machine (N or auto: every CPU)."
)


def tag_set(values: list[str]) -> frozenset[str]:
    """-t/--skip-tags values, each possibly a comma list."""
    return frozenset(t.strip() for v in values for t in v.split(",") if t.strip())


def config_with_vault(vault_password_file: list[str], vault_id: list[str], ask_vault_pass: bool) -> AnsibleConfig:
    """ansible.cfg (its notes printed) with the vault secrets set up from it and the command line."""
    notes: list[str] = []
    config = read_config(notes)
    for note in notes:
        console.print(f"[dim]note: {escape(note)}[/]")
    setup_vault(config, vault_password_file, vault_id, ask_vault_pass)
    return config


def local_processes(processes: str, dist: Any) -> int:
    """--processes as a number of processes; it spreads the PCs on this machine, which --distributed does too."""
    from orchestrator.executor.multiproc import resolve_processes

    resolved = resolve_processes(processes)
    if processes != "1" and dist is not None:
        raise InputError("--processes and --distributed do not go together (workers spread the PCs already)")
    return resolved


def run_request(  # the fields of a RunRequest a command line gives
    playbook: str,
    inventory: list[str],
    limit: str | None,
    options: RunOptions,
    db: str | None,
    history: bool,
    reports: list[str],
    processes: int,
) -> Any:
    from orchestrator.api import RunRequest
    from orchestrator.cli.wake_cmd import WakePrinter

    return RunRequest(
        playbook=playbook,
        inventory=inventory,
        limit=limit,
        options=options,
        db=db,
        history=history,
        reports=reports,
        wake_progress=WakePrinter(options.lang),
        processes=processes,
    )


@handle_errors
def run(
    playbook: str = typer.Argument(..., help="Playbook file or bundled playbook name."),
    inventory: list[str] = RUN_INVENTORY,
    limit: str | None = RUN_LIMIT,
    check: bool = CHECK,
    diff: bool = DIFF,
    forks: int | None = RUN_FORKS,
    strategy: str = STRATEGY,
    tags: list[str] = TAGS,
    skip_tags: list[str] = SKIP_TAGS,
    extra_vars: list[str] = EXTRA_VARS,
    report: list[str] = REPORT,
    db: str | None = DB,
    no_history: bool = NO_HISTORY,
    lang: str = LANG,
    ask_pass: bool = ASK_PASS,
    host_timeout: float | None = HOST_TIMEOUT,
    verbose: int = VERBOSE,
    vault_password_file: list[str] = VAULT_PASSWORD_FILE,
    vault_id: list[str] = VAULT_ID,
    ask_vault_pass: bool = ASK_VAULT_PASS,
    user: str | None = REMOTE_USER,
    retry_unreachable_for: str | None = RETRY_UNREACHABLE_FOR,
    every: str | None = EVERY,
    distributed: bool = DISTRIBUTED,
    broker: str | None = BROKER,
    broker_file: str | None = BROKER_FILE,
    keys: str | None = KEYS,
    site_timeout: float = SITE_TIMEOUT,
    batch_size: int = BATCH_SIZE,
    default_site: str | None = DEFAULT_SITE,
    processes: str = PROCESSES,
) -> None:
    if strategy not in ("free", "linear"):
        raise InputError(f"--strategy must be free or linear, not {strategy!r}")
    lang = output_lang(lang)
    config = config_with_vault(vault_password_file, vault_id, ask_vault_pass)
    inventory = inventory_sources(inventory, config)
    options = RunOptions(
        check=check,
        diff=diff,
        forks=forks or config.forks or DEFAULT_FORKS,
        connection_defaults=connection_defaults(config, user),
        strategy=strategy,
        tags=tag_set(tags),
        skip_tags=tag_set(skip_tags),
        extra_vars=parse_extra_vars(extra_vars),
        verbosity=verbose,
        host_budget=host_timeout,
        password=read_password(ask_pass),
        lang=lang,
    )
    followup = followup_window(retry_unreachable_for, every)
    dist = distributed_options(distributed, broker, site_timeout, batch_size, default_site, broker_file, keys)
    processes_n = local_processes(processes, dist)
    request = run_request(playbook, inventory, limit, options, db, not no_history, report, processes_n)
    if followup is not None:
        raise typer.Exit(run_with_followups(request, lang, verbose, *followup, dist=dist))
    raise typer.Exit(execute(request, lang, verbose, dist).exit_code)


RUN_EXAMPLES = examples(
    "kmsfleet run site.yml -i inventories/lab.yml",
    "kmsfleet run windows.yml -i school.yml --limit room101 --check --diff",
    "kmsfleet run office2016.yml -i school.yml --limit @failed --report out.html --lang zh-TW",
    "kmsfleet run site.yml -i school.yml -e kms_host=163.30.0.166 -e fix_timezone=true --ask-pass",
    "kmsfleet run audit.yml -i school.yml --retry-unreachable-for 2h --every 10m",
    "kmsfleet run site.yml -i inventories/city --distributed --broker-url-file /etc/kmsfleet/broker.url",
)


def register(app: typer.Typer) -> None:
    app.command("run", help=RUN_HELP, epilog=RUN_EXAMPLES)(run)

    @app.command(
        "ping",
        help="Check that every PC answers WinRM and WMI with its credentials (changes nothing).",
        epilog=examples("kmsfleet ping -i inventories/lab.yml", "kmsfleet ping -i school.yml --limit room101"),
    )
    @handle_errors
    def ping(
        inventory: list[str] = INVENTORY,
        limit: str | None = typer.Option(None, "-l", "--limit", help="Host pattern."),
        forks: int = FORKS,
        ask_pass: bool = ASK_PASS,
        lang: str = typer.Option("en", "--lang", envvar="KMSFLEET_LANG"),
        verbose: int = typer.Option(0, "-v", "--verbose", count=True),
        report: list[str] = typer.Option([], "--report", help="Write a report: .json, .csv, .xml, .html."),
        db: str | None = typer.Option(None, "--db", envvar="KMSFLEET_DB"),
    ) -> None:
        from orchestrator.api import RunRequest, ad_hoc_plan, run_plan
        from orchestrator.cli.output import TerminalReporter
        from orchestrator.inventory.loader import load_inventory

        lang = output_lang(lang)
        options = RunOptions(forks=forks, verbosity=verbose, password=read_password(ask_pass), lang=lang)
        request = RunRequest(
            playbook="<win_ping>", inventory=inventory, limit=limit, options=options, db=db, reports=report
        )
        plan = ad_hoc_plan("ping", "win_ping", {})
        reporter = TerminalReporter(console, lang=lang, verbosity=max(verbose, 1))
        _sigterm_as_interrupt()
        result = run_plan(plan, load_inventory(list(inventory)), request, [reporter], playbook_path=Path("<win_ping>"))
        raise typer.Exit(result.exit_code)


def dump_json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2)


__all__ = ["ExitCode", "parse_extra_vars", "register"]
