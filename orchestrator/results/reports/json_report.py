"""The JSON report: everything about a run, for scripts and dashboards (schema: report.schema.json).

Written a piece at a time (``json_chunks``): the run's header and summary whole, then each PC's stats, result and
licence lines one PC at a time, so a run of thousands of PCs (kept packed, ``results.hostpack``) never holds its
whole report as Python objects. The text is exactly ``json.dumps(report, ensure_ascii=False, indent=2)`` of the
whole document (``build_report``): each piece is dumped with the same options and indented to its depth, and the
secrets are masked per piece by the same ``redact`` walk.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from orchestrator.redact import redact
from orchestrator.results.models import HostResult, RunResult
from orchestrator.results.sorting import room_of
from orchestrator.results.summary import ClassroomSummary, summarise

FORMAT = "kmsfleet-report"
VERSION = 1
INDENT = "  "


def _run_json(result: RunResult) -> dict[str, Any]:
    run = result.info.to_json()
    run.update(
        finished=result.finished.isoformat(),
        exit_code=int(result.exit_code),
        interrupted=result.interrupted,
        counts=result.counts(),
    )
    return run


def _licence_lines(h: HostResult) -> list[dict[str, Any]]:
    return [
        {
            "host": h.host,
            "address": h.address,
            "room": room_of(h.groups),
            "host_status": h.status.value,
            "seen_at": h.finished.isoformat(),
            **lic.to_json(),
        }
        for lic in h.licences
    ]


def _stats_entry(h: HostResult) -> tuple[str, Any]:
    return h.host, h.stats.to_json()


def build_report(result: RunResult, lang: str = "en", summary: ClassroomSummary | None = None) -> dict[str, Any]:
    """The report as plain JSON data (secrets masked), whole: for callers that want the data."""
    summary = summary or summarise(result, lang)
    report = {
        "format": FORMAT,
        "version": VERSION,
        "run": _run_json(result),
        "stats": dict(_stats_entry(h) for h in result.hosts),
        "hosts": [h.to_json() for h in result.hosts],
        "summary": summary.to_json(),
        "licences": [line for h in result.hosts for line in _licence_lines(h)],
    }
    masked: dict[str, Any] = redact(report)
    return masked


def _dumped(value: Any, depth: int) -> str:
    """``value`` as ``json.dumps(..., indent=2)`` prints it ``depth`` levels deep (JSON text has no raw newline
    inside a string, so every line break is one of the layout's)."""
    text = json.dumps(value, ensure_ascii=False, indent=2, default=str)
    return text.replace("\n", "\n" + INDENT * depth) if depth else text


def _key(name: str) -> str:
    return json.dumps(name, ensure_ascii=False) + ": "


def _members(items: Iterable[Any], opening: str, closing: str, entry: Callable[[Any], str]) -> Iterator[str]:
    """A list or mapping at depth 1, one member at a time (``[]``/``{}`` when there is none)."""
    first = True
    for item in items:
        yield (opening + "\n" if first else ",\n") + INDENT * 2 + entry(item)
        first = False
    yield opening + closing if first else "\n" + INDENT + closing


def _stats_member(h: HostResult) -> str:
    ((name, stats),) = redact(dict([_stats_entry(h)])).items()
    return _key(name) + _dumped(stats, 2)


def json_chunks(result: RunResult, lang: str = "en", summary: ClassroomSummary | None = None) -> Iterator[str]:
    """The report's text in pieces (see the module docstring); joined, it is ``render_json``."""
    summary = summary or summarise(result, lang)
    whole: list[tuple[str, Callable[[], Iterator[str]]]] = [
        ("format", lambda: iter([_dumped(redact(FORMAT), 1)])),
        ("version", lambda: iter([_dumped(VERSION, 1)])),
        ("run", lambda: iter([_dumped(redact(_run_json(result)), 1)])),
        ("stats", lambda: _members(result.hosts, "{", "}", _stats_member)),
        ("hosts", lambda: _members(result.hosts, "[", "]", lambda h: _dumped(redact(h.to_json()), 2))),
        ("summary", lambda: iter([_dumped(redact(summary.to_json()), 1)])),
        ("licences", lambda: _members(_all_lines(result), "[", "]", lambda line: _dumped(redact(line), 2))),
    ]
    yield "{\n"
    for index, (name, pieces) in enumerate(whole):
        yield INDENT + _key(name)
        yield from pieces()
        yield ",\n" if index < len(whole) - 1 else "\n"
    yield "}\n"


def _all_lines(result: RunResult) -> Iterator[dict[str, Any]]:
    for h in result.hosts:
        yield from _licence_lines(h)


def render_json(result: RunResult, lang: str = "en", summary: ClassroomSummary | None = None) -> str:
    return "".join(json_chunks(result, lang, summary))
