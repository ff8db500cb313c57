"""User-facing errors. A leaf module: anything may import it.

Every mistake a user can make (bad YAML, unknown module, undefined variable, bad spec field …) is raised as an
``InputError`` carrying where it happened. The CLI prints ``file:line:column: message`` and exits 4 — never a
traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """A place in a user's file. ``line`` and ``column`` are 1-based; 0 means unknown."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line and self.column:
            return f"{self.file}:{self.line}:{self.column}"
        if self.line:
            return f"{self.file}:{self.line}"
        return self.file


class KmsfleetError(Exception):
    """Base of every error kmsfleet raises on purpose."""


class InputError(KmsfleetError):
    """Something the user wrote is wrong. Exit code 4."""

    def __init__(self, message: str, location: Location | None = None, hint: str | None = None) -> None:
        self.message = message
        self.location = location
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        text = f"{self.location}: {self.message}" if self.location else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class TemplateError(InputError):
    """A Jinja2 expression failed (undefined variable, bad filter, sandbox refusal)."""
