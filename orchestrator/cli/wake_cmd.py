"""`kmsfleet wake`: switch PCs on with Wake-on-LAN, then wait until their WinRM port answers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from orchestrator.cli.common import INVENTORY, LANG, console, examples, handle_errors
from orchestrator.errors import InputError
from orchestrator.exitcodes import ExitCode
from orchestrator.knowledge.i18n import normalise_lang, t

if TYPE_CHECKING:  # pragma: no cover
    from orchestrator.wol import WakeEvent

WAKE_HELP = """Switch PCs on with Wake-on-LAN and wait until they answer on their WinRM port.

Each PC's MAC address comes from the inventory variable `mac`, else from the last run that reached the PC
(gather_facts records it). Packets go to --broadcast/--port, else to the inventory variables
wol_broadcast/wol_port, else to 255.255.255.255 port 9. PCs that already answer are left alone. WoL must be
enabled in the PCs' BIOS, and most switches only pass the broadcast inside one room's network.

Exit codes: 0 every PC answers (or, with --wait 0, every PC that was off got a packet), 3 some PC did not
answer or has no known MAC, 4 invalid input."""


def _wait_seconds(text: str) -> float:
    from orchestrator.followup import parse_duration

    if text.strip() in ("0", "0s"):
        return 0.0
    return parse_duration(text, default_unit="s", option="--wait")


def last_run_on(inventory: Sequence[str], db: str | None) -> str | None:
    """The newest run (any playbook) made with exactly this inventory, if the history has one."""
    from orchestrator.api import canonical_inventory
    from orchestrator.cli.history_cmd import open_history

    wanted = list(canonical_inventory(inventory))
    with open_history(db) as store:
        if store is None:
            return None
        for run in store.runs():
            if list(run.inventory) == wanted:
                return run.id
    return None


def resolve_wake_limit(limit: str | None, inventory: Sequence[str], db: str | None) -> str | None:
    """``@unreachable``/``@failed`` (of the newest run on this inventory, or of ``:RUN_ID``) → host names."""
    from orchestrator.api import FOLLOW_UP, check_limit, resolve_limit

    check_limit(limit)
    if not limit or "@" not in limit:
        return limit

    terms = []
    for term in limit.split(","):
        word, _, run_id = term.strip().partition(":")
        if word in FOLLOW_UP and not run_id:
            found = last_run_on(inventory, db)
            if found is None:
                raise InputError(
                    f"--limit {word}: the history has no run with this inventory",
                    hint="run a playbook on it first, or name a run: --limit @unreachable:RUN_ID",
                )
            run_id = found
        terms.append(f"{word}:{run_id}" if word in FOLLOW_UP else term)
    return resolve_limit(",".join(terms), Path("<wake>"), inventory, db)


class WakePrinter:
    """A ``wake_and_wait`` progress callback: one line per event, "still waiting" every few seconds."""

    def __init__(self, lang: str, every: float = 5.0) -> None:
        self.lang = lang
        self.every = every
        self._last_waiting: float | None = None

    def __call__(self, event: WakeEvent) -> None:
        from orchestrator.followup import format_duration
        from orchestrator.results.summary import host_list

        lang = self.lang
        hosts = host_list(event.hosts, lang)
        n = len(event.hosts)
        if event.kind == "already_up":
            console.print(f"[green]{escape(t('wake.already_up', lang, n=n, hosts=hosts))}[/]")
        elif event.kind == "no_mac":
            console.print(f"[yellow]{escape(t('wake.no_mac', lang, n=n, hosts=hosts))}[/]")
        elif event.kind == "sent":
            if event.remaining > 0:
                console.print(escape(t("wake.sent", lang, n=n, wait=format_duration(event.remaining))))
            else:
                console.print(escape(t("wake.sent_only", lang, n=n)))
        elif event.kind == "send_failed":
            console.print(f"[red]{escape(t('wake.send_failed', lang, n=n, hosts=hosts, reason=event.detail))}[/]")
        elif event.kind == "up":
            text = t("wake.up", lang, elapsed=format_duration(event.elapsed), hosts=hosts)
            console.print(f"[green]{escape(text)}[/]")
        elif event.kind == "resent":
            console.print(escape(t("wake.resent", lang, n=n)))
        elif event.kind == "waiting" and (
            self._last_waiting is None or event.elapsed - self._last_waiting >= self.every
        ):
            self._last_waiting = event.elapsed
            remaining = format_duration(event.remaining)
            console.print(escape(t("wake.waiting", lang, n=n, remaining=remaining, hosts=hosts)))


def register(app: typer.Typer) -> None:
    @app.command(
        "wake",
        help=WAKE_HELP,
        epilog=examples(
            "kmsfleet wake -i school.yml --limit room101",
            "kmsfleet wake -i school.yml --limit @unreachable --wait 3m",
            "kmsfleet wake -i school.yml --limit pc07 --broadcast 192.168.10.255 --port 7",
            "kmsfleet wake -i school.yml --limit room101 && kmsfleet run site.yml -i school.yml --limit room101",
        ),
    )
    @handle_errors
    def wake(
        inventory: list[str] = INVENTORY,
        limit: str | None = typer.Option(
            None, "-l", "--limit", help="Host pattern: room101, pc0*, @unreachable, @unreachable:RUN_ID."
        ),
        broadcast: str | None = typer.Option(None, "--broadcast", help="Broadcast address for the packets."),
        port: int | None = typer.Option(None, "--port", min=1, max=65535, help="UDP port (usually 9 or 7)."),
        wait: str = typer.Option("120", "--wait", help="How long to wait for the PCs to answer: 120, 90s, 3m, 0."),
        db: str | None = typer.Option(None, "--db", envvar="KMSFLEET_DB", help="History database (for MACs)."),
        lang: str = LANG,
    ) -> None:
        from orchestrator.followup import format_duration
        from orchestrator.inventory.loader import load_inventory
        from orchestrator.results.summary import host_list
        from orchestrator.wol import check_broadcast, recorded_macs, wake_and_wait, wake_targets

        try:
            code = normalise_lang(lang)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        seconds = _wait_seconds(wait)
        bcast = check_broadcast(broadcast) if broadcast else None
        inv = load_inventory(list(inventory))
        pattern = resolve_wake_limit(limit, inventory, db)
        hosts = inv.select(pattern) if pattern else list(inv.hosts)
        if not hosts:
            raise InputError("no PC to wake: the limit matches no host", hint="see kmsfleet inventory --list")
        without_mac = [h for h in hosts if not inv.host_vars(h).get("mac")]
        macs = recorded_macs(db, without_mac) if without_mac else {}
        targets = wake_targets(inv, hosts, broadcast=bcast, port=port, history_macs=macs)
        outcome = wake_and_wait(targets, seconds, progress=WakePrinter(code))
        if seconds == 0:
            raise typer.Exit(int(ExitCode.UNREACHABLE if outcome.no_mac else ExitCode.OK))
        if outcome.still_down:
            down = outcome.still_down
            text = t("wake.still_down", code, n=len(down), wait=format_duration(seconds), hosts=host_list(down, code))
            console.print(f"[red]{escape(text)}[/]")
        if not outcome.down:
            console.print(f"[green]{escape(t('wake.all_up', code, n=len(hosts)))}[/]")
            raise typer.Exit(int(ExitCode.OK))
        raise typer.Exit(int(ExitCode.UNREACHABLE))


__all__ = ["WakePrinter", "register", "resolve_wake_limit"]
