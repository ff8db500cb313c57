"""Help texts read as prose: one paragraph, one line, so the terminal wraps it.

typer ≥ 0.2x keeps a single newline inside a help paragraph in rich mode, so a docstring wrapped at the source's
120 columns was printed with its source line breaks: sentences broken mid-line on a wide terminal and ragged
half-lines on an 80-column one. Paragraphs (blank-line separated) are joined here; a paragraph holding an
indented line, a list item or click's ``\\b`` no-rewrap marker is kept as written.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from typing import Any

# An indented line, a list item ("- x", "* x", "• x", "1. x") or click's "\b": the paragraph is laid out by hand.
_LAID_OUT = re.compile(r"^(?:[ \t\b]|(?:[-*•]|\d+\.) )")


def reflow(text: str) -> str:
    """``text`` with the single newlines inside each prose paragraph replaced by spaces."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(_reflow_paragraph(p) for p in paragraphs)


def _reflow_paragraph(paragraph: str) -> str:
    lines = paragraph.split("\n")
    if any(_LAID_OUT.match(line) for line in lines):
        return paragraph
    return " ".join(line.strip() for line in lines)


def reflow_app(app: Any) -> None:
    """Reflow the help of every command and command group registered on the typer ``app``, recursively."""
    _reflow_commands(app.registered_commands)
    for group in app.registered_groups:
        if isinstance(group.help, str):
            group.help = reflow(group.help)
        instance = group.typer_instance
        if instance is not None:
            if isinstance(instance.info.help, str):
                instance.info.help = reflow(instance.info.help)
            reflow_app(instance)


def _reflow_commands(commands: Iterable[Any]) -> None:
    for command in commands:
        text = command.help if isinstance(command.help, str) else inspect.getdoc(command.callback)
        if text:
            command.help = reflow(text)
