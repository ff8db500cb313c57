"""What a page is made of (tables, charts, filter forms, fixes) and how it becomes HTML or CSV.

Every text passes through ``orchestrator.redact`` on its way out (the history holds no secret, but a value that
reached it before its secret was registered must still not be shown), and Jinja escapes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from orchestrator.redact import redact_text
from orchestrator.results.reports.csv_report import table_csv


@dataclass(frozen=True)
class Cell:
    text: str
    link: str | None = None
    css: str = ""

    @property
    def shown(self) -> str:
        return redact_text(self.text)


def cell(value: object, link: str | None = None, css: str = "") -> Cell:
    return Cell("" if value is None else str(value), link, css)


@dataclass(frozen=True)
class Pager:
    page: int
    pages: int
    total: int
    prev_url: str | None
    next_url: str | None
    text: str


@dataclass(frozen=True)
class Table:
    id: str
    caption: str
    headers: Sequence[str]
    rows: Sequence[Sequence[Cell]]
    csv_url: str
    pager: Pager | None = None
    kind: str = "table"

    def csv(self) -> bytes:
        return table_csv(self.headers, ([c.text for c in row] for row in self.rows))


@dataclass(frozen=True)
class Chart:
    caption: str
    svg: str
    kind: str = "chart"

    @property
    def markup(self) -> Markup:
        return Markup(self.svg)  # noqa: S704 - built by charts.py, every text in it escaped there


@dataclass(frozen=True)
class Choice:
    name: str
    label: str
    value: str
    options: Sequence[tuple[str, str]] | None = None  # (value, label); None: a text input


@dataclass(frozen=True)
class Form:
    action: str
    fields: Sequence[Choice]
    submit: str
    hidden: Mapping[str, str] = field(default_factory=dict)
    kind: str = "form"


@dataclass(frozen=True)
class Fix:
    code: str
    title: str
    parts: Sequence[tuple[str, str]]
    steps_label: str
    steps: Sequence[str]
    kind: str = "fix"


@dataclass(frozen=True)
class Note:
    text: str
    kind: str = "note"


Block = Table | Chart | Form | Fix | Note


@dataclass(frozen=True)
class Page:
    title: str
    heading: str
    blocks: Sequence[Block]

    def table(self, table_id: str) -> Table | None:
        return next((b for b in self.blocks if isinstance(b, Table) and b.id == table_id), None)


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("orchestrator.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        finalize=lambda v: redact_text(v) if isinstance(v, str) else v,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def render(page: Page, chrome: Mapping[str, Any]) -> str:
    return _environment().get_template("page.html.j2").render(page=page, **chrome)


__all__ = ["Block", "Cell", "Chart", "Choice", "Fix", "Form", "Note", "Page", "Pager", "Table", "cell", "render"]
