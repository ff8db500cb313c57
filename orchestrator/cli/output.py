"""What a run looks like in the terminal: live progress, failures as they happen, the recap and the classroom
summary. A ``Reporter`` (called from worker threads), in English or 繁體中文."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from orchestrator.knowledge import catalogue
from orchestrator.knowledge.i18n import t
from orchestrator.redact import redact_text
from orchestrator.results.models import HostResult, HostStatus, HostTaskResult, RunInfo, RunResult, TaskStatus

STATUS_STYLE = {
    "ok": "green",
    "changed": "yellow",
    "failed": "bold red",
    "unreachable": "magenta",
    "auth_refused": "bold magenta",
    "skipped": "cyan",
    "interrupted": "red",
    "not_run": "dim",
}
RECAP_FULL_LIMIT = 60


def styled(status: str, lang: str, check: bool = False) -> str:
    """A status word in its colour; in check mode "changed" reads "would change" (nothing was changed)."""
    label = t("check.would_change", lang) if check and status == "changed" else t("status." + status, lang)
    return f"[{STATUS_STYLE.get(status, 'white')}]{escape(label)}[/]"


def _cause(task: HostTaskResult | None, lang: str) -> str:
    if task is None:
        return ""
    key = task.diagnosis or (task.error_hex if task.error_code is not None else None)
    entry = catalogue.lookup(key) if key else None
    title = entry.text(lang).title if entry else ""
    code = task.error_hex or ""
    return " ".join(p for p in (code, title) if p)


class TerminalReporter:
    def __init__(self, console: Console, *, lang: str = "en", verbosity: int = 0, check: bool = False) -> None:
        self.console = console
        self.lang = lang
        self.verbosity = verbosity
        self.check = check
        self.total = 0
        self.done = 0
        self.bad = 0
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._task_id: int | None = None
        self._last_line = 0.0
        self._printed_failure: set[str] = set()

    # ----------------------------------------------------------------- events

    def run_started(self, info: RunInfo, hosts: Sequence[str]) -> None:
        self.total = len(hosts)
        mode = "  [cyan](--check)[/]" if info.check else ""
        self.console.print(
            f"[bold]kmsfleet[/] {escape(info.playbook)} · {len(hosts)} hosts · "
            f"{escape(t('recap.run_id', self.lang, run_id=info.id))}{mode}"
        )
        if self.console.is_terminal and self.total:
            self._progress = Progress(
                TextColumn("[progress.description]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[bad]}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
            self._task_id = self._progress.add_task(t("progress.hosts_done", self.lang), total=self.total, bad="")

    def play_started(self, name: str, hosts: Sequence[str]) -> None:
        self.console.print(f"[bold]PLAY[/] {escape(f'[{name}]')} · {len(hosts)} hosts")

    def task_done(self, result: HostTaskResult) -> None:
        show = self.verbosity >= 1 or (
            result.status in (TaskStatus.FAILED, TaskStatus.UNREACHABLE) and not result.ignored and not result.rescued
        )
        if not show:
            return
        status = result.status.value
        line = f"  {styled(status, self.lang, self.check)}: {escape(f'[{result.host}]')} {escape(result.task)}"
        if result.status in (TaskStatus.FAILED, TaskStatus.UNREACHABLE):
            cause = _cause(result, self.lang)
            line += f" — {escape(cause or result.msg)}"
            if result.ignored:
                line += " [dim](ignored)[/]"
            elif result.rescued:
                line += " [dim](rescued)[/]"
            else:
                self._printed_failure.add(result.host)
        elif self.verbosity >= 2 and result.msg:
            line += f" — {escape(result.msg)}"
        self.console.print(line)

    def host_done(self, result: HostResult) -> None:
        with self._lock:
            self.done += 1
            if not result.status.succeeded:
                self.bad += 1
            done, bad = self.done, self.bad
        if (
            not result.status.succeeded
            and result.host not in self._printed_failure
            and result.status not in (HostStatus.NOT_RUN,)
        ):
            self.console.print(
                f"  {styled(result.status.value, self.lang)}: {escape(f'[{result.host}]')} {escape(result.msg)}"
            )
        if self.verbosity >= 1 and result.status.succeeded:
            self.console.print(
                f"  {styled(result.status.value, self.lang, self.check)}: {escape(f'[{result.host}]')} "
                f"({len(result.tasks)} tasks, {result.duration_ms / 1000:.1f}s)"
            )
        if self._progress is not None and self._task_id is not None:
            label = f"{bad} {t('progress.failures_so_far', self.lang)}" if bad else ""
            self._progress.update(self._task_id, completed=done, bad=label)  # type: ignore[arg-type]
        elif self.total >= 10:
            now = time.monotonic()
            step = max(1, self.total // 10)
            if done % step == 0 or done == self.total or now - self._last_line > 10:
                self._last_line = now
                self.console.print(
                    f"[dim]{done}/{self.total} {t('progress.hosts_done', self.lang)}, "
                    f"{bad} {t('progress.failures_so_far', self.lang)}[/]"
                )

    def reporter_failed(self, name: str, error: BaseException) -> None:
        """Another reporter (the history database) failed; the run and this output go on."""
        key = "warning.history" if name == "history" else "warning.reporter"
        self.console.print(f"[yellow]{escape(t(key, self.lang, name=name, error=redact_text(str(error))))}[/]")

    def run_done(self, result: RunResult) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        self.print_recap(result)

    # ----------------------------------------------------------------- recap

    def print_recap(self, result: RunResult) -> None:
        lang = self.lang
        table = Table(title=t("recap.play_recap", lang), title_justify="left", show_edge=False, pad_edge=False)
        table.add_column(t("column.host", lang))
        table.add_column(t("column.status", lang))
        for col in ("ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored"):
            table.add_column(t(f"column.{col}", lang), justify="right")
        table.add_column(t("column.error", lang))
        hosts = result.hosts
        shown = hosts if len(hosts) <= RECAP_FULL_LIMIT else [h for h in hosts if not h.status.succeeded]
        for h in shown:
            s = h.stats
            table.add_row(
                escape(h.host),
                styled(h.status.value, lang, result.info.check),
                str(s.ok),
                str(s.changed),
                str(s.unreachable),
                str(s.failed),
                str(s.skipped),
                str(s.rescued),
                str(s.ignored),
                escape(_cause(h.failed_task, lang)),
            )
        self.console.print()
        self.console.print(table)
        if len(shown) < len(hosts):
            self.console.print(f"[dim]({len(hosts) - len(shown)} hosts ok or changed not listed)[/]")
        counts = result.counts()
        parts = [f"{styled(k, lang, result.info.check)} {v}" for k, v in counts.items() if v]
        self.console.print("  ".join(parts))
        self.print_summary(result)

    def print_summary(self, result: RunResult) -> None:
        from orchestrator.results.summary import render_summary_text, summarise

        summary = summarise(result, self.lang)
        text = render_summary_text(summary, self.lang)
        if text.strip():
            self.console.print()
            self.console.print(escape(text))
