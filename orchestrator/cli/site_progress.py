"""Live progress per site for `kmsfleet run --distributed` (beside the usual run output)."""

from __future__ import annotations

import threading

from rich.console import Console
from rich.markup import escape

from orchestrator.distributed.controller import SiteProgress

STATE_TEXT = {
    "waiting": "[yellow]waiting for a worker[/]",
    "running": "[cyan]running[/]",
    "done": "[green]done[/]",
    "no_worker": "[bold red]no worker[/]",
}


class SiteProgressPrinter:
    """Prints one line when a site's state changes, at each quarter of its PCs, and for notes (lost workers)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._lock = threading.Lock()

    def __call__(self, p: SiteProgress) -> None:
        workers = f"{p.workers} worker{'s' if p.workers != 1 else ''}"
        problems = f", {p.problems} problems" if p.problems else ""
        line = (
            f"[bold]site {escape(p.site)}[/]: {STATE_TEXT.get(p.state, escape(p.state))} · {workers} · "
            f"{p.done}/{p.total} PCs done{problems}"
        )
        if p.note:
            line += f" — {escape(p.note)}"
        with self._lock:
            self.console.print(line)
