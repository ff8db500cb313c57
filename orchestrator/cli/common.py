"""What every command shares: the consoles, exit handling and the "no traceback for a user mistake" rule."""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

import typer

from orchestrator.cli.safe_console import SafeConsole
from orchestrator.errors import InputError, KmsfleetError
from orchestrator.executor.options import DEFAULT_FORKS
from orchestrator.exitcodes import ExitCode

P = ParamSpec("P")
R = TypeVar("R")

# Not a terminal (a log file, CI, a pipe): use a wide fixed width so tables are not squeezed to 80 columns.
_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 140
# SafeConsole: text that came from a PC never reaches the terminal with its control sequences.
console = SafeConsole(highlight=False, soft_wrap=True, width=_WIDTH)
err_console = SafeConsole(stderr=True, highlight=False, soft_wrap=True, width=_WIDTH)


def fail(message: str, code: ExitCode = ExitCode.INVALID_INPUT) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", markup=True)
    raise typer.Exit(int(code))


def _crash_report(exc: BaseException) -> Path | None:
    """Write the traceback for a bug to a file (not the terminal) so the user can attach it to an issue."""
    try:
        from orchestrator.redact import redact_text

        fd, name = tempfile.mkstemp(prefix="kmsfleet-crash-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(redact_text("".join(traceback.format_exception(exc))))
        return Path(name)
    except Exception:
        return None


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn kmsfleet's own errors into a clear message and the documented exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except InputError as exc:
            err_console.print(f"[bold red]error:[/] {escape(exc.render())}")
            raise typer.Exit(int(ExitCode.INVALID_INPUT)) from None
        except KmsfleetError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}")
            raise typer.Exit(int(ExitCode.INVALID_INPUT)) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except Exception as exc:
            path = _crash_report(exc)
            where = f" Details were written to {path}." if path else ""
            err_console.print(
                f"[bold red]internal error:[/] {escape(type(exc).__name__)}. This is a bug in kmsfleet, "
                f"not something you did.{where}"
            )
            if os.environ.get("KMSFLEET_DEBUG"):
                traceback.print_exc(file=sys.stderr)
            raise typer.Exit(int(ExitCode.INTERNAL_ERROR)) from None

    return wrapper


def escape(text: str) -> str:
    from rich.markup import escape as _escape

    return _escape(text)


def examples(*lines: str) -> str:
    """Format an "Examples" block for a command's --help epilog."""
    body = "\n\n".join(f"  {line}" for line in lines)
    return f"[bold]Examples[/]\n\n{body}"


def output_lang(lang: str) -> str:
    """``--lang`` / ``KMSFLEET_LANG`` as ``en`` or ``zh-TW``; anything else is an input error (exit 4)."""
    from orchestrator.knowledge.i18n import normalise_lang

    try:
        return normalise_lang(lang)
    except ValueError as exc:
        raise InputError(str(exc), hint="use --lang en or --lang zh-TW") from None


def not_none(value: Any, what: str) -> Any:
    if value is None:
        fail(f"{what} is required")
    return value


# Options several commands share, defined once so they read (and behave) the same everywhere.
PASSWORD_ENV = "KMSFLEET_PASSWORD"  # noqa: S105 - the name of a variable, not a password
INVENTORY = typer.Option(..., "-i", "--inventory", help="Inventory file, directory or host list (repeatable).")
LIMIT = typer.Option(None, "-l", "--limit", help="Host pattern: room101, pc0*, room101:!pc05, @failed, @unreachable.")
FORKS = typer.Option(
    DEFAULT_FORKS,
    "-f",
    "--forks",
    min=1,
    max=5000,
    help=f"PCs worked on at the same time (at most; a run on fewer PCs works on all of them at once). "
    f"Default {DEFAULT_FORKS}.",
)
EXTRA_VARS = typer.Option([], "-e", "--extra-vars", help="key=value, @vars.yml or JSON.")
REPORT = typer.Option([], "--report", help="Write a report: .json, .csv, .xml (JUnit), .html.")
DB = typer.Option(None, "--db", envvar="KMSFLEET_DB", help="History database path or URL.")
NO_HISTORY = typer.Option(False, "--no-history", help="Do not record this run in the history.")
LANG = typer.Option("en", "--lang", envvar="KMSFLEET_LANG", help="Output language: en or zh-TW.")
ASK_PASS = typer.Option(False, "-k", "--ask-pass", help=f"Prompt for the password (or set {PASSWORD_ENV}).")
HOST_TIMEOUT = typer.Option(None, "--host-timeout", min=1, help="Time budget per PC, seconds.")
