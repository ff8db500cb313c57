"""`kmsfleet worker`: a Celery worker inside a school network, for `kmsfleet run --distributed`."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import typer

from orchestrator.cli.common import PASSWORD_ENV, err_console, escape, examples, handle_errors
from orchestrator.errors import InputError

if TYPE_CHECKING:
    from orchestrator.distributed.policy import WorkerPolicy

WORKER_HELP = (
    "Run a worker for one site (school): it takes batches of PCs from the queue kmsfleet.site.SITE on the "
    "broker, runs them with the same engine as `kmsfleet run`, and streams every result back to the "
    "controller.\n\n"
    f"Passwords come from this machine, never from the broker: set {PASSWORD_ENV}, or give the inventory a "
    "template such as ansible_password: \"{{ lookup('env', 'SCHOOL_A_PASSWORD') }}\" (read here).\n\n"
    "It runs only batches signed by the controller key pinned in its key folder (kmsfleet keys), signs every "
    "result it sends back, and keeps its own policy whatever a batch asks: only its --site, only addresses in "
    "--allow-hosts, no Basic over HTTP, no certificate 'ignore', no proxies, no lookup of its files or of "
    "environment variables other than the password variable (and --allow-env names).\n\n"
    "SIGTERM or Ctrl-C: finish the running batches, then exit; a second Ctrl-C stops at once and puts the "
    "unfinished batches back on the queue."
)


def _broker_url(broker: str | None, broker_file: str | None) -> str:
    from orchestrator.distributed.celery_app import resolve_broker

    url = resolve_broker(broker, broker_file)
    if not url:
        raise InputError(
            "kmsfleet worker needs the broker's URL",
            hint="--broker-url-file FILE (keeps the password off the command line), or KMSFLEET_BROKER_URL",
        )
    return url


def worker_policy(site: str, allow_hosts: list[str], allow_env: list[str]) -> WorkerPolicy:
    """What this worker may do: its site, the address ranges it may sign in to, the variables it may read."""
    from orchestrator.distributed.celery_app import check_site
    from orchestrator.distributed.policy import PASSWORD_ENV as PASSWORD_VAR
    from orchestrator.distributed.policy import WorkerPolicy, parse_networks

    networks = parse_networks(allow_hosts)
    if not networks:
        raise InputError(
            "kmsfleet worker needs --allow-hosts: the address ranges of this site's PCs",
            hint="e.g. --allow-hosts 10.12.0.0/16 (a batch naming any other address is refused)",
        )
    names = {n.strip() for v in allow_env for n in v.split(",") if n.strip()}
    bad = sorted(n for n in names if not n.isidentifier())
    if bad:
        raise InputError(f"--allow-env: {bad[0]!r} is not an environment variable name")
    return WorkerPolicy(check_site(site), tuple(networks), frozenset({PASSWORD_VAR, *names}))


def register(app: typer.Typer) -> None:
    @app.command(
        "worker",
        help=WORKER_HELP,
        epilog=examples(
            "kmsfleet worker --site school_a --allow-hosts 10.1.0.0/16 --broker-url-file /etc/kmsfleet/broker.url",
            "KMSFLEET_BROKER_URL=… kmsfleet worker --site school_b --allow-hosts 10.2.0.0/16 --concurrency 2",
        ),
    )
    @handle_errors
    def worker(
        site: str = typer.Option(..., "--site", help="The site (school) whose PCs this worker can reach."),
        allow_hosts: list[str] = typer.Option(
            [], "--allow-hosts", help="Address ranges this worker may sign in to (CIDR, repeat or comma-separate)."
        ),
        allow_env: list[str] = typer.Option(
            [], "--allow-env", help="More environment variables templates may read here (besides KMSFLEET_PASSWORD)."
        ),
        broker: str | None = typer.Option(
            None, "--broker", help="Redis URL (better: --broker-url-file or KMSFLEET_BROKER_URL)."
        ),
        broker_file: str | None = typer.Option(
            None, "--broker-url-file", help="A file holding the broker URL (with its password)."
        ),
        keys: str | None = typer.Option(
            None, "--keys", envvar="KMSFLEET_KEYS", help="The key folder (default ~/.config/kmsfleet/keys)."
        ),
        concurrency: int = typer.Option(
            1, "--concurrency", min=1, max=64, help="Batches run at the same time (one process each)."
        ),
        forks: int | None = typer.Option(
            None, "--forks", min=1, max=5000, help="PCs worked on at once per batch (default: the controller's -f)."
        ),
        loglevel: str = typer.Option("info", "--loglevel", help="debug, info, warning or error."),
    ) -> None:
        from orchestrator.distributed.keys import keys_dir
        from orchestrator.distributed.service import serve_worker

        if loglevel.lower() not in ("debug", "info", "warning", "error"):
            raise InputError(f"--loglevel must be debug, info, warning or error, not {loglevel!r}")
        url = _broker_url(broker, broker_file)
        policy = worker_policy(site, allow_hosts, allow_env)
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

        code = serve_worker(
            policy, url, keys_dir(keys), concurrency=concurrency, forks=forks, loglevel=loglevel, on_ready=ready
        )
        if code:
            err_console.print(f"[red]worker stopped with exit code {code}[/] ({escape(site)})")
        sys.stdout.flush()
        raise typer.Exit(code)
