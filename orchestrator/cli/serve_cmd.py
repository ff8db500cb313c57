"""`kmsfleet serve`: the fleet web page over the history (orchestrator/web; docs/serve.md)."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
from pathlib import Path

import typer

from orchestrator.cli.common import console, err_console, examples, handle_errors
from orchestrator.cli.history_cmd import DB_HELP
from orchestrator.errors import InputError

ENV_TOKEN = "KMSFLEET_SERVE_TOKEN"  # noqa: S105 - the variable's name, not a token
DEFAULT_PORT = 8470
SERVE_HELP = (
    "Serve a read-only web page over the run history: PCs per school and room, licences running out, each "
    "PC's results with causes and fixes, runs and schedules, charts and CSV. Binds 127.0.0.1 unless told "
    f"otherwise; any other address needs a token (--token-file or {ENV_TOKEN})."
)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_token(token_file: Path | None) -> str | None:
    """The token from ``--token-file`` (first line), else ``KMSFLEET_SERVE_TOKEN``; None when neither."""
    if token_file is not None:
        try:
            lines = token_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise InputError(f"cannot read the token file {token_file}: {exc.strerror}") from None
        token = lines[0].strip() if lines else ""
        if not token:
            raise InputError(f"the token file {token_file} is empty")
        return token
    token = os.environ.get(ENV_TOKEN, "").strip()
    return token or None


def _choose_history(db: str | None) -> str | None:
    """``--db``/``KMSFLEET_DB``, else the default history; before any real run, the demo's history (what a
    newcomer who just ran ``kmsfleet demo`` wants to see), said on stderr."""
    from orchestrator.results.store import default_db_path, demo_db_path

    if db is not None or default_db_path().exists() or not demo_db_path().exists():
        return db
    err_console.print(f"no history of real runs yet: showing the demo's ({demo_db_path()})")
    return str(demo_db_path())


def _require_history(db: str | None) -> None:
    """Like the other readers of the history, serve never creates one: a missing SQLite file is a mistake."""
    from orchestrator.results.store import resolve_db_url

    url = resolve_db_url(db)
    local = url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:"
    if local and not Path(str(url.database)).exists():
        raise InputError(
            f"there is no history database at {url.database}",
            hint="runs are recorded by kmsfleet run (or try kmsfleet demo first); give --db if it is elsewhere",
        )


async def _serve(db: str | None, host: str, port: int, token: str | None) -> None:
    from aiohttp import web

    from orchestrator.redact import register_secret
    from orchestrator.results.store import HistoryStore
    from orchestrator.web.app import make_app

    register_secret(token)
    store = HistoryStore(db)
    runner = web.AppRunner(make_app(store, token), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, shutdown_timeout=2.0)
        try:
            await site.start()
        except OSError as exc:
            raise InputError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        for address in runner.addresses:
            shown = f"[{address[0]}]" if ":" in str(address[0]) else address[0]
            console.print(f"serving the history on http://{shown}:{address[1]}/  (Ctrl-C stops)", highlight=False)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
        store.close()


def register(app: typer.Typer) -> None:
    @app.command(
        "serve",
        help=SERVE_HELP,
        epilog=examples(
            "kmsfleet serve",
            "kmsfleet serve --port 8080 --db postgresql+psycopg://kms@dbhost/kmsfleet",
            "kmsfleet serve --bind 0.0.0.0 --token-file /etc/kmsfleet/serve.token",
        ),
    )
    @handle_errors
    def serve(
        bind: str = typer.Option("127.0.0.1", "--bind", help="Address to listen on (loopback by default)."),
        port: int = typer.Option(DEFAULT_PORT, "--port", min=0, max=65535, help="TCP port (0: any free one)."),
        token_file: Path | None = typer.Option(
            None, "--token-file", help=f"File whose first line is the token every request must give (or {ENV_TOKEN})."
        ),
        db: str | None = typer.Option(None, "--db", envvar="KMSFLEET_DB", help=DB_HELP),
    ) -> None:
        token = read_token(token_file)
        db = _choose_history(db)
        _require_history(db)
        if not is_loopback(bind) and token is None:
            raise InputError(
                f"refusing to serve the history on {bind} without a token",
                hint=f"give --token-file FILE or set {ENV_TOKEN}, or keep the default 127.0.0.1",
            )
        asyncio.run(_serve(db, bind, port, token))
