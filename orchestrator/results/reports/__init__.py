"""Report writers: a RunResult (fresh, or loaded from the history) as JSON, CSV, JUnit XML or HTML.

``write_report(result, path)`` picks the format from the file name (.json, .csv, .xml / .junit.xml, .html);
``render_report(result, fmt)`` returns the text (bytes for CSV, which carries a BOM) for stdout.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from orchestrator.errors import InputError, Location
from orchestrator.results.models import RunResult
from orchestrator.results.summary import ClassroomSummary, lang_code, summarise

FORMATS = ("json", "csv", "junit", "html")
_ALIASES = {"json": "json", "csv": "csv", "junit": "junit", "xml": "junit", "html": "html", "htm": "html"}
_SUFFIXES = (
    (".junit.xml", "junit"),
    (".xml", "junit"),
    (".json", "json"),
    (".csv", "csv"),
    (".html", "html"),
    (".htm", "html"),
)


def format_for(path: str | os.PathLike[str], fmt: str | None = None) -> str:
    """The report format: ``fmt`` if given (json, csv, junit/xml, html), else from the file name."""
    if fmt:
        try:
            return _ALIASES[fmt.lower().lstrip(".")]
        except KeyError:
            raise InputError(f"unknown report format {fmt!r}", hint="use one of: " + ", ".join(FORMATS)) from None
    name = Path(path).name.lower()
    for suffix, found in _SUFFIXES:
        if name.endswith(suffix):
            return found
    raise InputError(
        f"cannot tell the report format from {os.fspath(path)!r}",
        hint="name the file .json, .csv, .xml (JUnit) or .html, or give the format explicitly",
    )


def render_report(
    result: RunResult, fmt: str, lang: str = "en", summary: ClassroomSummary | None = None
) -> str | bytes:
    """The report as text (bytes for CSV: UTF-8 with BOM so Excel shows 中文)."""
    kind = format_for("", fmt)
    code = lang_code(lang)
    summary = summary if summary is not None and summary.lang == code else summarise(result, code)
    if kind == "json":
        from orchestrator.results.reports.json_report import render_json

        return render_json(result, code, summary)
    if kind == "csv":
        from orchestrator.results.reports.csv_report import render_csv

        return render_csv(result, code, summary)
    if kind == "junit":
        from orchestrator.results.reports.junit import render_junit

        return render_junit(result, code, summary)
    from orchestrator.results.reports.html import render_html

    return render_html(result, code, summary)


def _report_pieces(result: RunResult, kind: str, lang: str, summary: ClassroomSummary | None) -> Iterator[bytes]:
    """The report's bytes: the JSON report a PC at a time (``json_report.json_chunks``: a run of thousands of
    PCs never holds it whole), the others at once; ``render_report``'s text either way."""
    if kind == "json":
        from orchestrator.results.reports.json_report import json_chunks

        code = lang_code(lang)
        summary = summary if summary is not None and summary.lang == code else summarise(result, code)
        return (chunk.encode("utf-8") for chunk in json_chunks(result, code, summary))
    content = render_report(result, kind, lang, summary)
    return iter([content if isinstance(content, bytes) else content.encode("utf-8")])


_SQLITE_MAGIC = b"SQLite format 3\x00"


def refuse_database(target: Path, option: str = "--report") -> None:
    """Never replace a database with a report: an existing SQLite file (the history itself, given by mistake
    as ``--output H.db``) or its ``-wal``/``-shm``/``-journal`` companion is refused."""
    companion = re.sub(r"-(wal|shm|journal)$", "", target.name)
    for candidate in {target, target.with_name(companion)}:
        try:
            with open(candidate, "rb") as fh:
                head = fh.read(len(_SQLITE_MAGIC))
        except OSError:
            continue
        if head == _SQLITE_MAGIC:
            raise InputError(
                f"{option}: {target} is a database (SQLite), not a report file; refusing to replace it",
                Location(str(target)),
                hint="give a new file name ending in .json, .csv, .xml or .html",
            )


def check_writable(path: str | os.PathLike[str], option: str = "--report") -> None:
    """Refuse a report file that could not be written, before anything runs: a folder, a missing folder, or a
    folder where this user may not create files (the report is written there atomically, via a temp file)."""
    target = Path(path)
    where = Location(os.fspath(path))
    refuse_database(target, option)
    if target.is_dir():
        raise InputError(f"{option}: this is a folder; give a file name inside it", where)
    parent = target.parent
    if not parent.is_dir():
        problem = "is a file, not a folder" if parent.exists() else "does not exist"
        raise InputError(f"{option}: folder {parent} {problem}", where)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise InputError(f"{option}: cannot write in folder {parent}: {exc.strerror}", where) from None


def write_report(
    result: RunResult,
    path: str | os.PathLike[str],
    fmt: str | None = None,
    lang: str = "en",
    summary: ClassroomSummary | None = None,
) -> Path:
    """Write the report to ``path`` atomically (a reader never sees half a file); returns the path."""
    target = Path(path)
    refuse_database(target)
    pieces = _report_pieces(result, format_for(target, fmt), lang, summary)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise InputError(f"cannot write the report: {exc.strerror}", Location(str(target))) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            for piece in pieces:
                fh.write(piece)
        os.replace(tmp, target)  # mkstemp made it 0600: a report names every PC and its problems
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):  # a full disk, or the file name is a folder
            raise InputError(f"cannot write the report: {exc.strerror}", Location(str(target))) from None
        raise
    return target


__all__ = ["FORMATS", "check_writable", "format_for", "refuse_database", "render_report", "write_report"]
