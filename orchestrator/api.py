"""What the CLI, tests and schedules call: load → validate → pick an engine → run → store → report.

Everything the user wrote is loaded and validated here before any host is contacted (a typo fails in
milliseconds with file:line, not after 40 connections).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.distributed.controller import DistributedEngine, DistributedOptions, SiteProgress
from orchestrator.errors import InputError, Location
from orchestrator.executor.compile import render_play_hosts
from orchestrator.executor.engine import Engine, ThreadEngine
from orchestrator.executor.engine import inventory_view as inventory_view  # noqa: PLC0414 (re-exported for tests)
from orchestrator.executor.loading import load_plan as load_plan  # noqa: PLC0414 (re-exported for the CLI, tests)
from orchestrator.executor.loading import play_vars_loader as play_vars_loader  # noqa: PLC0414
from orchestrator.executor.multiproc import ProcessEngine, check_shardable
from orchestrator.executor.plan import Plan, PlaySpec, TaskSpec
from orchestrator.executor.reporter import Fanout, Reporter
from orchestrator.executor.runner import new_run_info
from orchestrator.executor.state import RunOptions
from orchestrator.inventory.loader import load_inventory
from orchestrator.inventory.model import Inventory
from orchestrator.inventory.output import secret_names
from orchestrator.playbook.prompts import ask_on_terminal
from orchestrator.redact import register_secret, register_secret_name, register_secret_values
from orchestrator.results.models import HostStatus, RunResult, new_run_id
from orchestrator.results.recorder import StoreReporter
from orchestrator.results.store import HistoryStore
from orchestrator.wol import WakeEvent, WakeOutcome, recorded_macs, wake_and_wait, wake_targets

PACKAGE_ROOT = Path(__file__).resolve().parent
BUNDLED_PLAYBOOKS = (PACKAGE_ROOT.parent / "playbooks", PACKAGE_ROOT / "data" / "playbooks")
FOLLOW_UP = {
    "@failed": (
        HostStatus.FAILED,
        HostStatus.UNREACHABLE,
        HostStatus.AUTH_REFUSED,
        HostStatus.INTERRUPTED,
        HostStatus.NOT_RUN,
    ),
    # A PC the run never reached (stopped first, even by kill -9) was never shown to be reachable either: it
    # is retried by both follow-ups, so no PC silently drops out of the retry workflow.
    "@unreachable": (HostStatus.UNREACHABLE, HostStatus.NOT_RUN),
}


@dataclass
class RunRequest:
    playbook: str
    inventory: Sequence[str]
    limit: str | None = None
    options: RunOptions = field(default_factory=RunOptions)
    db: str | None = None  # history database path or URL; None = the default location
    history: bool = True
    reports: Sequence[str] = ()
    run_id: str | None = None
    wake_progress: Callable[[WakeEvent], None] | None = None  # play option wake_on_lan: progress lines
    processes: int = 1  # --processes: PCs spread over this many worker processes (executor/multiproc.py)


def resolve_playbook(name: str) -> Path:
    """A playbook path as given, or one of the bundled playbooks by name (``site.yml``, ``audit``)."""
    path = Path(name)
    if path.exists():
        return path
    candidates = [name] if name.endswith((".yml", ".yaml")) else [f"{name}.yml", f"{name}.yaml"]
    for folder in BUNDLED_PLAYBOOKS:
        for candidate in candidates:
            p = folder / candidate
            if p.is_file():
                return p
    raise InputError("playbook not found", Location(name), hint="give a path, or a bundled playbook such as site.yml")


def answer_vars_prompts(plan: Plan, extra_vars: Mapping[str, Any], ask: Callable[[Any], Any] | None = None) -> Plan:
    """Each play's ``vars_prompt`` answered before the run (as Ansible does): ``-e name=…`` skips the prompt;
    on a terminal the user is asked (``private`` prompts do not echo); without one the ``default`` is used,
    else it is an error saying to pass ``-e name=…``. Answers join the play's vars; private ones are secrets."""
    if not any(play.vars_prompt for play in plan.plays):
        return plan
    asker = ask or ask_on_terminal
    plays = []
    for play in plan.plays:
        answers: dict[str, Any] = {}
        for prompt in play.vars_prompt:
            if prompt.name in extra_vars:
                continue
            value = asker(prompt)
            if prompt.private and isinstance(value, str):
                register_secret(value)
            answers[prompt.name] = value
        plays.append(dataclasses.replace(play, vars={**play.vars, **answers}) if answers else play)
    return dataclasses.replace(plan, plays=tuple(plays))


def _open_store(db: str | None) -> HistoryStore:
    return HistoryStore(db)


def mark_inventory_secrets(inv: Inventory, extra_vars: Mapping[str, Any]) -> None:
    """Mark secret at the source, before any task runs: every variable a secret variable reads (directly or
    through others: ``ansible_password: "{{ winrm_pw }}"``) by name, and its literal values, as well as
    secret-named ``-e`` values; templates are registered when they render."""
    sets: list[Mapping[str, Any]] = [inv.host(h).vars for h in inv.hosts]
    sets += [g.vars for g in inv.groups.values()]
    sets.append(extra_vars)
    names = secret_names(sets)
    for name in names:
        register_secret_name(name)
    register_secret_values(
        [v for variables in sets for k, v in variables.items() if k in names and not (isinstance(v, str) and "{{" in v)]
    )


def _open_recorder(db: str | None) -> StoreReporter:
    return StoreReporter(_open_store(db))


def check_limit(limit: str | None) -> None:
    """A ``--limit`` that names nothing (``''`` from an empty shell variable, ``,``) must not mean every PC."""
    if limit is not None and not limit.replace(",", " ").strip():
        raise InputError(
            f"--limit {limit!r} names no PC",
            hint="give a host pattern such as room101 or pc01,pc02; leave out --limit to work on every PC",
        )


def resolve_limit(limit: str | None, playbook: Path, inventory: Sequence[str], db: str | None) -> str | None:
    """Turn ``@failed`` / ``@unreachable`` / ``@failed:RUN_ID`` into a host list from history."""
    check_limit(limit)
    if not limit:
        return limit
    parts = []
    for term in limit.split(","):
        word, _, run_id = term.strip().partition(":")
        if word in FOLLOW_UP:
            store = _open_store(db)
            try:
                if run_id:  # the id, a unique prefix of it or `last`, as `show` and `report` take it
                    found: list[str] | None = store.hosts_with_status(store.resolve_run(run_id), FOLLOW_UP[word])
                else:  # each PC's latest result from this playbook on this inventory
                    found = store.hosts_last_status(str(playbook), list(inventory), FOLLOW_UP[word])
                if found is None:
                    raise InputError(
                        f"--limit {word}: no earlier run of {playbook.name} with this inventory in the history",
                        hint="run the playbook once first, or name a run: --limit @failed:RUN_ID",
                    )
                hosts = found
            finally:
                store.close()
            parts.append(",".join(hosts) if hosts else "!all")
        else:
            parts.append(term)
    return ",".join(p for p in parts if p)


def run_playbook(
    request: RunRequest,
    reporters: Sequence[Reporter] = (),
    *,
    cancel: threading.Event | None = None,
) -> RunResult:
    playbook = resolve_playbook(request.playbook)
    plan = answer_vars_prompts(load_plan(playbook, extra_vars=request.options.extra_vars), request.options.extra_vars)
    inv = load_inventory(list(request.inventory), playbook_dir=_playbook_dir(playbook))
    return run_plan(plan, inv, request, reporters, cancel=cancel, playbook_path=playbook)


def _playbook_dir(playbook: Path | str) -> Path | None:
    """The folder of a playbook file (its ``group_vars/``/``host_vars/`` apply, as in Ansible)."""
    path = Path(playbook)
    return path.resolve().parent if path.is_file() else None


def canonical_playbook(path: Path | str) -> str:
    """How a playbook is named in the history: its absolute path when it is a file (so ``--limit @failed``
    finds the earlier run whichever folder kmsfleet is started from, ``./site.yml`` or ``site.yml``)."""
    p = Path(path)
    return str(p.resolve()) if p.is_file() else str(path)


def canonical_inventory(sources: Sequence[str]) -> tuple[str, ...]:
    """Inventory sources as the history names them: absolute paths for files and folders, host lists as given."""
    return tuple(str(Path(s).resolve()) if Path(s).exists() else s for s in sources)


def _execute(
    plan: Plan,
    inv: Inventory,
    request: RunRequest,
    reporters: Sequence[Reporter],
    playbook_name: str,
    engine: Engine,
    *,
    cancel: threading.Event | None = None,
    wake: bool = True,
) -> RunResult:
    """What every run does around its engine: secrets registered, report paths checked, ``--limit`` resolved
    (history follow-ups included), the run recorded in the history as it goes, reports written at the end."""
    options = request.options
    if not inv.hosts:  # an empty file, or hosts indented under the wrong key: not "all 0 PCs are fine"
        raise InputError(
            f"the inventory lists no PCs: {', '.join(request.inventory)}",
            hint="list them under all: hosts: (or a group's hosts:); kmsfleet inventory -i INV --graph shows them",
        )
    if options.password:
        register_secret(options.password)
    mark_inventory_secrets(inv, options.extra_vars)
    for path in request.reports:
        _check_report_path(path)
    inventory = canonical_inventory(request.inventory)
    limit = resolve_limit(request.limit, Path(playbook_name), inventory, request.db)
    limit_hosts = inv.select(limit) if limit else None
    if wake:
        wake_before_run(plan, inv, limit_hosts, request, cancel=cancel)
    info = new_run_info(request.run_id or new_run_id(), playbook_name, inventory, options, request.limit)
    # a follow-up (--limit @failed) that selects no PC runs nothing: not recorded, so `last` stays the real run
    nothing = limit_hosts is not None and not limit_hosts
    recorder = _open_recorder(request.db) if request.history and not nothing else None
    fanout = Fanout(([recorder] if recorder else []) + list(reporters))
    try:
        result = engine.run(plan, inventory_view(inv), info, fanout, limit_hosts)
    finally:
        if recorder is not None:
            try:
                recorder.close()
            except Exception as exc:  # never hides the run's own outcome; told to the other reporters
                fanout.report_error(recorder, exc)
            finally:
                recorder.store.close()
    if request.reports:
        from orchestrator.results.reports import write_report  # lazy: start-up speed (only with --report)

        for path in request.reports:
            try:
                write_report(result, Path(path), lang=options.lang)
            except InputError as exc:  # checked before the run, yet failed now (a full disk): say where it is
                kept = f"kmsfleet report {info.id} --output FILE" if request.history else "the recap above"
                raise InputError(exc.message, exc.location, hint=f"the run's results are kept: {kept}") from None
    return result


def local_engine(plan: Plan, request: RunRequest, cancel: threading.Event | None = None) -> Engine:
    """The engine of a run on this machine: threads, or ``--processes N`` worker processes (whose plays must
    not make PCs depend on each other: checked here, before anything runs)."""
    if request.processes > 1:
        check_shardable(plan)
        return ProcessEngine(request.processes, request.options, cancel, play_vars_loader)
    return ThreadEngine(request.options, cancel, play_vars_loader)


def run_plan(
    plan: Plan,
    inv: Inventory,
    request: RunRequest,
    reporters: Sequence[Reporter] = (),
    *,
    cancel: threading.Event | None = None,
    playbook_path: Path | None = None,
) -> RunResult:
    plan = render_play_hosts(plan, request.options.extra_vars)
    engine = local_engine(plan, request, cancel)
    name = canonical_playbook(playbook_path) if playbook_path else plan.path
    return _execute(plan, inv, request, reporters, name, engine, cancel=cancel)


# ------------------------------------------------------------------------------ distributed runs


def _no_prompt_when_distributed(prompt: Any) -> Any:
    """A distributed run asks nothing on the terminal (answers, private ones too, would travel in the plan):
    vars_prompt needs ``-e`` there."""
    raise InputError(
        f"vars_prompt '{prompt.name}' cannot be asked with --distributed",
        prompt.location,
        hint=f"pass the answer with -e {prompt.name}=…",
    )


def run_distributed(
    request: RunRequest,
    dist: DistributedOptions,
    reporters: Sequence[Reporter] = (),
    *,
    cancel: threading.Event | None = None,
    progress: Callable[[SiteProgress], None] | None = None,
) -> RunResult:
    """``kmsfleet run --distributed``: loading, validation, history and reports as in ``run_playbook``; the PCs
    run on per-site Celery workers (``orchestrator.distributed``, docs/distributed.md). No Wake-on-LAN from the
    controller: a broadcast stays inside its site."""
    playbook = resolve_playbook(request.playbook)
    plan = render_play_hosts(load_plan(playbook, extra_vars=request.options.extra_vars), request.options.extra_vars)
    answer_vars_prompts(plan, request.options.extra_vars, _no_prompt_when_distributed)
    inv = load_inventory(list(request.inventory), playbook_dir=_playbook_dir(playbook))
    engine = DistributedEngine(request.options, dist, cancel, progress, play_vars_loader)
    return _execute(plan, inv, request, reporters, canonical_playbook(playbook), engine, cancel=cancel, wake=False)


# ------------------------------------------------------------------------------ Wake-on-LAN before a run

WAKE_WAIT_SECONDS = 120.0  # default of the host/group variable wol_wait


def wake_before_run(
    plan: Plan,
    inv: Inventory,
    limit_hosts: Sequence[str] | None,
    request: RunRequest,
    *,
    cancel: threading.Event | None = None,
) -> WakeOutcome | None:
    """Play option ``wake_on_lan: true``: before the run, send Wake-on-LAN packets to the PCs those plays
    target that do not answer a TCP connect on their WinRM port, and wait until they answer (at most the
    largest ``wol_wait`` of them, seconds, default 120). PCs that stay off are reported unreachable by the run
    as usual. MACs come from the inventory variable ``mac`` or the history (``kmsfleet_mac``). Also in check
    mode: an audit needs the PCs on. Not for ``--distributed`` runs (a broadcast stays inside its site)."""
    if not any(play.wake_on_lan for play in plan.plays):
        return None
    wanted = set(limit_hosts) if limit_hosts is not None else None
    hosts: list[str] = []
    seen: set[str] = set()
    for play in plan.plays:
        if play.wake_on_lan:
            for h in inv.select(play.hosts):
                if (wanted is None or h in wanted) and h not in seen:
                    seen.add(h)
                    hosts.append(h)
    if not hosts:
        return None
    wait = 0.0
    without_mac: list[str] = []
    for h in hosts:
        hv = inv.inventory_vars(h)
        if not hv.get("mac"):
            without_mac.append(h)
        raw = hv.get("wol_wait", WAKE_WAIT_SECONDS)
        try:
            wait = max(wait, float(raw))
        except (TypeError, ValueError):
            raise InputError(f"host {h}: wol_wait {raw!r} is not a number of seconds") from None
    macs = recorded_macs(request.db, without_mac) if request.history and without_mac else {}
    targets = wake_targets(inv, hosts, history_macs=macs)
    return wake_and_wait(targets, wait, progress=request.wake_progress, cancel=cancel)


def _check_report_path(path: str) -> None:
    from orchestrator.results.reports import check_writable  # lazy: start-up speed (only with --report)

    if Path(path).suffix.lower() not in (".json", ".csv", ".xml", ".html", ".htm"):
        raise InputError("--report: use a .json, .csv, .xml (JUnit) or .html file name", Location(path))
    check_writable(path)  # a folder, a missing folder, one this user cannot write in


def ad_hoc_plan(name: str, module: str, args: Mapping[str, Any], hosts: str = "all", gather: bool = False) -> Plan:
    """A one-task plan (``kmsfleet ping``, ``audit`` helpers)."""
    task = TaskSpec(name=name, module=module, args=dict(args))
    play = PlaySpec(name=name, hosts=hosts, tasks=(task,), gather_facts=gather, base_dir=os.getcwd())
    return Plan(path=f"<{module}>", plays=(play,))
