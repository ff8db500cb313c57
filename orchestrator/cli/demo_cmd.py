"""`kmsfleet demo`: the whole story on a simulated classroom, in about a minute, for someone who never saw
kmsfleet.

It starts the embedded lab (``profiles.mixed``: 40 PCs with the problems the bureau's Q&A describes) on a free
loopback block (127.A.x.y, claimed so it never collides with another lab), then:

1. audits the room (audit.yml, check mode),
2. activates everything (site.yml),
3. shows the classroom summary: failures grouped by cause, with the fix,
4. fixes what kmsfleet can fix - time zones and clocks - on the failed PCs only (``--limit @failed``,
   ``fix_timezone``/``fix_clock``),
5. runs site.yml again and shows that it changes nothing.

Everything goes through the same API as `kmsfleet run` (real WS-Management, real NTLM, a real SQLite history in
a temporary folder unless ``--db``). Nothing but loopback addresses is ever contacted. ``--keep`` leaves the lab
running (until Ctrl-C) and prints its inventory path.
"""

from __future__ import annotations

import shlex
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from orchestrator.cli.common import console, examples, handle_errors, output_lang
from orchestrator.cli.licensing_texts import tr
from orchestrator.executor.options import RunOptions
from orchestrator.results.models import HostResult, HostStatus, HostTaskResult, RunInfo, RunResult

if TYPE_CHECKING:  # pragma: no cover
    from orchestrator.lab.timing import TimingMode

STEPS = 5
SLOW_CAP_MS = 100.0  # the profile's slow PC (1.5 s per request) would make the demo last minutes

DEMO_HELP = (
    "See kmsfleet work on a simulated classroom of 40 Windows PCs, in about a minute.\n\n"
    "Starts the built-in lab on this computer's loopback addresses (nothing else is contacted), then audits the "
    "room, activates everything, explains what failed and how to fix it, fixes the time zones and clocks, and "
    "shows that a second run changes nothing."
)


class _Progress:
    """A transient progress bar while a run is going (terminals only); the story prints the results."""

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._task: Any = None
        self._lock = threading.Lock()

    def run_started(self, info: RunInfo, hosts: Sequence[str]) -> None:
        if console.is_terminal and hosts:
            self._progress = Progress(
                TextColumn("  [dim]{task.description}[/]"),
                BarColumn(),
                MofNCompleteColumn(),
                console=console,
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(Path(info.playbook).name, total=len(hosts))

    def play_started(self, name: str, hosts: Sequence[str]) -> None:
        pass

    def task_done(self, result: HostTaskResult) -> None:
        pass

    def host_done(self, result: HostResult) -> None:
        with self._lock:
            if self._progress is not None:
                self._progress.advance(self._task)

    def run_done(self, result: RunResult) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class Demo:
    def __init__(self, lang: str, db: str, inventory: str) -> None:
        self.lang = lang
        self.db = db
        self.inventory = inventory

    def say(self, key: str, **kwargs: Any) -> None:
        console.print(escape(tr(key, self.lang, **kwargs)))

    def step(self, i: int) -> None:
        console.print()
        title = tr(f"demo.step{i}", self.lang)
        console.print(f"[bold cyan]{escape(tr('demo.step', self.lang, i=i, n=STEPS, title=title))}[/]")

    def run(self, playbook: str, *, check: bool = False, limit: str | None = None, **extra: Any) -> RunResult:
        from orchestrator.api import RunRequest, run_playbook

        shown = f"kmsfleet {'audit' if playbook == 'audit.yml' else 'run ' + playbook} -i lab-inventory.yml"
        if limit:
            shown += f" --limit {limit}"
        shown += "".join(f" -e {k}={str(v).lower()}" for k, v in extra.items())
        self.say("demo.cmd", cmd=shown)
        options = RunOptions(check=check, extra_vars=dict(extra), lang=self.lang)
        request = RunRequest(playbook=playbook, inventory=[self.inventory], limit=limit, options=options, db=self.db)
        return run_playbook(request, [_Progress()])

    # ---- what the story prints

    def counts(self, result: RunResult, seconds: float) -> None:
        c = result.counts()
        self.say(
            "demo.run_result",
            changed=c.get("changed", 0),
            ok=c.get("ok", 0),
            failed=c.get("failed", 0) + c.get("auth_refused", 0),
            unreachable=c.get("unreachable", 0),
            seconds=seconds,
        )

    def licences(self, result: RunResult) -> None:
        from orchestrator.results.summary import licence_status_text, product_text, summarise

        summary = summarise(result, self.lang)
        for product, spread in summary.licence_counts.items():
            sep = "、" if self.lang == "zh-TW" else ", "
            text = sep.join(f"{licence_status_text(status, self.lang)} {n}" for status, n in spread.items())
            self.say("demo.licences", product=product_text(product, self.lang), spread=text)

    def groups(self, result: RunResult, fixes: bool = True) -> None:
        from orchestrator.results.summary import host_list, summarise

        for group in summarise(result, self.lang).groups:
            code = f" [{group.code}]" if group.code and group.code not in group.title else ""
            self.say("demo.group", n=group.count, title=group.title, code=code, hosts=host_list(group.hosts, self.lang))
            if fixes:
                for step in group.fix[:2]:
                    self.say("demo.fix", step=step)


def _hosts(result: RunResult, *statuses: HostStatus) -> list[str]:
    from orchestrator.results.sorting import natural_sorted

    return list(natural_sorted(h.host for h in result.hosts if h.status in statuses))


def _kms_days(result: RunResult) -> int:
    days = [
        lic.days_left
        for h in result.hosts
        for lic in h.licences
        if lic.status == "Licensed" and lic.days_left is not None and lic.kms_host
    ]
    return max(days) if days else 180


def tell_story(demo: Demo, started: float) -> RunResult:
    """Steps 1-5. Returns the last run's result."""
    demo.step(1)
    audit = demo.run("audit.yml", check=True)
    demo.licences(audit)
    would = sum(1 for h in audit.hosts if any(t.changed for t in h.tasks))
    demo.say(
        "demo.audit_result",
        would=would,
        bad=len(_hosts(audit, HostStatus.FAILED, HostStatus.AUTH_REFUSED)),
        off=len(_hosts(audit, HostStatus.UNREACHABLE)),
    )

    demo.step(2)
    t0 = time.monotonic()
    first = demo.run("site.yml")
    demo.counts(first, time.monotonic() - t0)

    demo.step(3)
    demo.groups(first)

    demo.step(4)
    t0 = time.monotonic()
    fixed_run = demo.run("site.yml", limit="@failed", fix_timezone=True, fix_clock=True)
    demo.counts(fixed_run, time.monotonic() - t0)
    fixed = _hosts(fixed_run, HostStatus.CHANGED, HostStatus.OK)
    if fixed:
        demo.say("demo.fixed", hosts=", ".join(fixed))
    left = _hosts(fixed_run, HostStatus.FAILED, HostStatus.UNREACHABLE, HostStatus.AUTH_REFUSED)
    if left:
        demo.say("demo.not_fixed", hosts=", ".join(left))

    demo.step(5)
    t0 = time.monotonic()
    second = demo.run("site.yml")
    demo.counts(second, time.monotonic() - t0)
    changed = _hosts(second, HostStatus.CHANGED)
    if changed:
        demo.say("demo.second_run_changed", n=len(changed), hosts=", ".join(changed))
    else:
        demo.say("demo.second_run", days=_kms_days(second))
    problems = _hosts(second, HostStatus.FAILED, HostStatus.UNREACHABLE, HostStatus.AUTH_REFUSED)
    if problems:
        console.print()
        demo.say("demo.left", n=len(problems))
        demo.groups(second, fixes=False)
    console.print()
    demo.say("demo.done", seconds=time.monotonic() - started)
    return second


def _cap_slow_pcs(lab: Any, cap_ms: float) -> float | None:
    """Lower the latency of the profile's slow PC(s) to ``cap_ms``; the cap used, or None if none was slow."""
    from orchestrator.lab.control_client import LabControl

    ctl = LabControl(lab.control_url)
    capped = None
    for cfg in lab.hosts:
        latency = cfg.latency_ms
        high = max(latency) if isinstance(latency, tuple) else latency
        if high > cap_ms:
            ctl.latency(cfg.name, cap_ms)
            capped = cap_ms
    return capped


def _demo_history() -> str:
    """The demo's own history (``demo_db_path``): kept after the demo, so ``kmsfleet serve`` can show it."""
    from orchestrator.results.store import demo_db_path

    path = demo_db_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return str(path)


def run_demo(hosts: int, seed: int, lang: str, db: str | None, keep: bool, timing: TimingMode = "windows") -> int:
    from orchestrator.lab import profiles
    from orchestrator.lab.addresses import claim_prefix
    from orchestrator.lab.runner import LabThread

    started = time.monotonic()
    claim = claim_prefix()
    workdir = Path(tempfile.mkdtemp(prefix="kmsfleet-demo-"))
    lab: LabThread | None = None
    try:
        spec = profiles.mixed(hosts, claim.octet, seed)
        lab = LabThread(spec, inventory_path=workdir / "lab-inventory.yml", timing=timing)
        console.print(f"[bold]{escape(tr('demo.title', lang))}[/]")
        lab.start(timeout=120)
        resolved = lab.lab.resolved
        history = db or _demo_history()
        demo = Demo(lang, history, str(lab.inventory_path))
        demo.say(
            "demo.lab",
            n=len(resolved.hosts),
            first=resolved.hosts[0].address,
            last=resolved.hosts[-1].address,
            kms=f"{resolved.kms_address}:{resolved.kms.port}",
        )
        demo.say("demo.mix")
        cap = _cap_slow_pcs(lab, SLOW_CAP_MS)
        if cap is not None:
            demo.say("demo.slow", ms=int(cap))
        last = tell_story(demo, started)
        demo.say("demo.serve", db=history, db_arg=shlex.quote(history))
        if keep:
            console.print()
            demo.say("demo.keep", inventory=lab.inventory_path, control=lab.control_url)
            from orchestrator.cli.run_cmd import _sigterm_as_interrupt

            _sigterm_as_interrupt()
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                demo.say("demo.stopped")
        return 0 if last.exit_code in (0, 2, 3) else int(last.exit_code)
    finally:
        if lab is not None:
            lab.stop()
        claim.release()
        shutil.rmtree(workdir, ignore_errors=True)


def register(app: typer.Typer) -> None:
    @app.command(
        "demo",
        help=DEMO_HELP,
        epilog=examples("kmsfleet demo", "kmsfleet demo --lang zh-TW", "kmsfleet demo --keep"),
    )
    @handle_errors
    def demo(
        lang: str = typer.Option("en", "--lang", envvar="KMSFLEET_LANG", help="Output language: en or zh-TW."),
        keep: bool = typer.Option(
            False, "--keep", help="Leave the lab running afterwards (Ctrl-C stops it) and print its inventory path."
        ),
        db: str | None = typer.Option(
            None,
            "--db",
            help="History database (default: the demo's own demo.db beside the real history, which kmsfleet "
            "serve shows).",
        ),
        hosts: int = typer.Option(40, "--hosts", "-n", min=1, max=1000, help="PCs in the simulated classroom."),
        seed: int = typer.Option(7, "--seed", help="Where the problems sit in the room (any number)."),
        timing: str = typer.Option(
            "windows",
            "--timing",
            help="windows: the PCs take as long as real Windows (docs/lab-timing.md); instant: they answer at once.",
        ),
    ) -> None:
        from orchestrator.cli.lab_cmd import parse_timing

        timing_mode = parse_timing(timing)

        lang = output_lang(lang)
        raise typer.Exit(run_demo(hosts, seed, lang, db, keep, timing_mode))
