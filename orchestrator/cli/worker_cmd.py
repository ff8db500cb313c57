"""`kmsfleet worker`: a Celery worker inside a school network, for `kmsfleet run --distributed`."""

from __future__ import annotations

import os
import sys

import typer

from orchestrator.cli.common import PASSWORD_ENV, err_console, escape, examples, handle_errors

WORKER_HELP = (
    "Run a worker for one site (school): it takes batches of PCs from the queue kmsfleet.site.SITE on the "
    "broker, runs them with the same engine as `kmsfleet run`, and streams every result back to the "
    "controller.\n\n"
    f"Passwords come from this machine, never from the broker: set {PASSWORD_ENV}, or give the inventory a "
    "template such as ansible_password: \"{{ lookup('env', 'SCHOOL_A_PASSWORD') }}\" (read here).\n\n"
    "SIGTERM or Ctrl-C: finish the running batches, then exit; a second Ctrl-C stops at once and puts the "
    "unfinished batches back on the queue."
)


def register(app: typer.Typer) -> None:
    @app.command(
        "worker",
        help=WORKER_HELP,
        epilog=examples(
            "kmsfleet worker --site school_a --broker redis://127.0.0.1:6379/0",
            "KMSFLEET_PASSWORD=… kmsfleet worker --site school_b --broker redis://10.1.2.3:6379/0 --concurrency 2",
        ),
    )
    @handle_errors
    def worker(
        site: str = typer.Option(..., "--site", help="The site (school) whose PCs this worker can reach."),
        broker: str = typer.Option(
            ..., "--broker", envvar="KMSFLEET_BROKER", help="Redis URL, e.g. redis://127.0.0.1:6379/0."
        ),
        concurrency: int = typer.Option(
            1, "--concurrency", min=1, max=64, help="Batches run at the same time (one process each)."
        ),
        forks: int | None = typer.Option(
            None, "--forks", min=1, max=5000, help="PCs worked on at once per batch (default: the controller's -f)."
        ),
        loglevel: str = typer.Option("info", "--loglevel", help="debug, info, warning or error."),
    ) -> None:
        from orchestrator.distributed.service import serve_worker

        if loglevel.lower() not in ("debug", "info", "warning", "error"):
            from orchestrator.errors import InputError

            raise InputError(f"--loglevel must be debug, info, warning or error, not {loglevel!r}")
        if not os.environ.get(PASSWORD_ENV):
            err_console.print(
                f"[yellow]note:[/] {PASSWORD_ENV} is not set: PCs are signed in to only with passwords the "
                "inventory gives as templates read on this worker."
            )

        def ready(node: str) -> None:
            sys.stdout.write(
                f"worker ready: site {site}, queue kmsfleet.site.{site}, node {node}, concurrency {concurrency}\n"
            )
            sys.stdout.flush()

        code = serve_worker(site, broker, concurrency=concurrency, forks=forks, loglevel=loglevel, on_ready=ready)
        if code:
            err_console.print(f"[red]worker stopped with exit code {code}[/] ({escape(site)})")
        sys.stdout.flush()
        raise typer.Exit(code)
