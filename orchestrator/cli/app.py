"""The `kmsfleet` command. Each command group lives in its own module and registers itself here."""

from __future__ import annotations

import importlib

import typer

from orchestrator import __version__

HELP = """Activate and audit Windows and Office volume licences (KMS) on whole classrooms at once, over WinRM.

Describe PCs in an Ansible-style inventory, pick a playbook (windows.yml, office2016.yml, site.yml,
audit.yml …) and run it against every PC in parallel. Try it without any Windows PC: `kmsfleet demo`.
"""

app = typer.Typer(
    name="kmsfleet",
    help=HELP,
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Command modules, each exposing `register(app)`. Listed here so `--help` shows them in a sensible order.
COMMAND_MODULES = (
    "orchestrator.cli.demo_cmd",
    "orchestrator.cli.run_cmd",
    "orchestrator.cli.worker_cmd",
    "orchestrator.cli.audit_cmd",
    "orchestrator.cli.history_cmd",
    "orchestrator.cli.schedule_cmd",
    "orchestrator.cli.wake_cmd",
    "orchestrator.cli.inventory_cmd",
    "orchestrator.cli.explain_cmd",
    "orchestrator.cli.lab_cmd",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kmsfleet {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """kmsfleet: volume-licence activation for whole classrooms."""


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # not built yet
            raise
        module.register(app)


_register_all()


def _usage_errors_exit_4() -> None:
    """Usage mistakes (unknown option, missing argument) exit 4 like every other input error, not Click's
    default 2, which kmsfleet reserves for "a task failed". `kmsfleet` alone prints the help and exits 0."""
    try:
        from typer._click import exceptions as cex  # typer >= 0.24 vendors click
    except ImportError:  # pragma: no cover - older typer uses click itself
        from click import exceptions as cex  # type: ignore[no-redef]
    cex.UsageError.exit_code = 4
    no_args = getattr(cex, "NoArgsIsHelpError", None)
    if no_args is not None:
        no_args.exit_code = 0


def main() -> None:
    _usage_errors_exit_4()
    app()
