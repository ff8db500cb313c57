"""The CSV report: one row per PC × licensed product (a PC without licence data gets one row), for Excel.

UTF-8 with a byte-order mark, so Excel on Windows shows 中文 instead of mojibake; header and texts in the
chosen language. Cells that would start a formula (=, +, -, @ …) are prefixed with ' : hostnames and messages
come from the network and must not run as formulas in a principal's spreadsheet.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from orchestrator.knowledge import i18n
from orchestrator.redact import redact_text
from orchestrator.results.models import RunResult
from orchestrator.results.reports._common import fix_text, local_time, os_caption, report_rows
from orchestrator.results.summary import ClassroomSummary, licence_status_text, product_text, summarise

BOM = "\ufeff"
COLUMNS = (
    "column.host",
    "column.room",
    "column.address",
    "column.os",
    "column.status",
    "column.product",
    "column.name",
    "column.channel",
    "column.licence",
    "column.days_left",
    "column.expires",
    "column.kms_host",
    "column.error",
    "column.diagnosis",
    "column.fix",
    "column.message",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def _cell(value: object) -> str:
    """Text for one cell: secrets masked, formula starts neutralised (numbers are left as numbers)."""
    if value is None:
        return ""
    if isinstance(value, bool | int):
        return str(value)
    text = redact_text(str(value))
    return "'" + text if text.startswith(_FORMULA_START) else text


def render_csv_text(result: RunResult, lang: str = "en", summary: ClassroomSummary | None = None) -> str:
    summary = summary or summarise(result, lang)
    code = summary.lang
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([i18n.t(key, code) for key in COLUMNS])
    for row in report_rows(result, summary):
        h, lic = row.host, row.licence
        days: object = None
        if lic is not None:
            days = lic.days_left if lic.days_left is not None else i18n.t("licence.permanent", code)
            if lic.days_left is None and lic.status != "Licensed":
                days = None
        writer.writerow(
            [
                _cell(h.host),
                _cell(", ".join(g for g in h.groups if g != "all")),
                _cell(h.address),
                _cell(os_caption(h)),
                _cell(i18n.t(f"status.{h.status.value}", code)),
                _cell(product_text(lic.product, code) if lic else None),
                _cell(lic.name if lic else None),
                _cell(lic.channel if lic else None),
                _cell(licence_status_text(lic.status, code) if lic else None),
                _cell(days),
                _cell(local_time(lic.expires) if lic else None),
                _cell(lic.kms_host if lic else None),
                _cell(row.error_code),
                _cell(row.diagnosis),
                _cell(fix_text(row.fix)),
                _cell(row.message),
            ]
        )
    return BOM + out.getvalue()


def render_csv(result: RunResult, lang: str = "en", summary: ClassroomSummary | None = None) -> bytes:
    """The CSV file's bytes: UTF-8 with BOM, CRLF line ends."""
    return render_csv_text(result, lang, summary).encode("utf-8")


def table_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    """Any table as this report's CSV (UTF-8 with BOM, CRLF, secrets masked, no formulas): for other
    exports of the history (``kmsfleet serve``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([_cell(h) for h in header])
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return (BOM + out.getvalue()).encode("utf-8")
