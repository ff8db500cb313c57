"""The `kmsfleet` command. Each command group lives in its own module and registers itself here."""

from __future__ import annotations

import importlib

import typer

from orchestrator import __version__
from orchestrator.cli.help_text import reflow_app

# One line per paragraph: rich keeps a newline inside a paragraph, so a wrapped source line would break the
# sentence in the middle of the terminal's line.
HELP = (
    "Activate and audit Windows and Office volume licences (KMS) on whole classrooms at once, over WinRM.\n\n"
    "Describe the PCs in an Ansible-style inventory, pick a playbook (site.yml does everything each PC has) and "
    "run it on every PC in parallel. No Windows PC at hand? `kmsfleet demo` shows it on a simulated classroom.\n"
)

EPILOG = """[bold]Getting started[/]

  kmsfleet demo                                   the whole story on a simulated classroom
  kmsfleet audit -i school.yml                    every licence on every PC, nothing changed
  kmsfleet run site.yml -i school.yml --check     what an activation run would change
  kmsfleet run site.yml -i school.yml             activate; then --limit @failed to retry
  kmsfleet explain 0xC004F074 --lang zh-TW        what an error code means and how to fix it

Exit codes: 0 ok, 2 a task failed, 3 a PC unreachable, 4 invalid input, 5 sign-in refused, 99 interrupted.
"""

PANELS = {
    "demo": "Start here",
    "run": "Run on PCs",
    "audit": "Run on PCs",
    "ping": "Run on PCs",
    "wake": "Run on PCs",
    "history": "Results",
    "show": "Results",
    "report": "Results",
    "due": "Results",
    "serve": "Results",
    "schedule": "Results",
    "explain": "Reference",
    "inventory": "Reference",
    "lab": "Lab and scale-out",
    "worker": "Lab and scale-out",
    "keys": "Lab and scale-out",
}

app = typer.Typer(
    name="kmsfleet",
    help=HELP,
    epilog=EPILOG,
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
    "orchestrator.cli.audit_cmd",
    "orchestrator.cli.wake_cmd",
    "orchestrator.cli.history_cmd",
    "orchestrator.cli.serve_cmd",
    "orchestrator.cli.schedule_cmd",
    "orchestrator.cli.explain_cmd",
    "orchestrator.cli.inventory_cmd",
    "orchestrator.cli.lab_cmd",
    "orchestrator.cli.worker_cmd",
    "orchestrator.cli.keys_cmd",
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
        importlib.import_module(name).register(app)


_register_all()
reflow_app(app)


def _panels() -> None:
    """Group the commands in `kmsfleet --help` (each module registers its own commands)."""
    for command in app.registered_commands:
        name = command.name or (command.callback.__name__ if command.callback else None)
        if name in PANELS:
            command.rich_help_panel = PANELS[name]
    for group in app.registered_groups:
        if group.name in PANELS:
            group.rich_help_panel = PANELS[group.name]


_panels()


def _flags_show_no_value() -> None:
    """Recent typer prints a type beside every option, so `--check <bool>` reads as if it took a value. Flags
    (and counters like -vvv) take none: show nothing there, as `--help` always did. A repeatable option shows
    the type of one value (`-i <str>`, not `<list[str]>`); its help says it can be repeated."""
    try:
        from typer.core import TyperOption
    except ImportError:  # pragma: no cover - older typer has no such column
        return
    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None:  # pragma: no cover
        return

    def display_type_rich(self: TyperOption, ctx: object) -> str | None:
        if (self.is_flag or self.count) and self.metavar is None:
            return None
        result: str | None = shown(self, ctx)
        if result and result.startswith("<list[") and result.endswith("]>"):
            return f"<{result[6:-2]}>"
        return result

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_show_no_value()


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
    """The ``kmsfleet`` command. Ends through ``cli.leave``: everything written and closed, the heap not freed."""
    from orchestrator.cli.leave import leave

    _usage_errors_exit_4()
    try:
        app()
    except SystemExit as done:
        leave(done.code)
    leave(0)
