"""The JSON report: everything about a run, for scripts and dashboards (schema: report.schema.json)."""

from __future__ import annotations

import json
from typing import Any

from orchestrator.redact import redact
from orchestrator.results.models import RunResult
from orchestrator.results.sorting import room_of
from orchestrator.results.summary import ClassroomSummary, summarise

FORMAT = "kmsfleet-report"
VERSION = 1


def build_report(result: RunResult, lang: str = "en", summary: ClassroomSummary | None = None) -> dict[str, Any]:
    """The report as plain JSON data (secrets masked)."""
    summary = summary or summarise(result, lang)
    run = result.info.to_json()
    run.update(
        finished=result.finished.isoformat(),
        exit_code=int(result.exit_code),
        interrupted=result.interrupted,
        counts=result.counts(),
    )
    licences = [
        {
            "host": h.host,
            "address": h.address,
            "room": room_of(h.groups),
            "host_status": h.status.value,
            "seen_at": h.finished.isoformat(),
            **lic.to_json(),
        }
        for h in result.hosts
        for lic in h.licences
    ]
    report = {
        "format": FORMAT,
        "version": VERSION,
        "run": run,
        "stats": {h.host: h.stats.to_json() for h in result.hosts},
        "hosts": [h.to_json() for h in result.hosts],
        "summary": summary.to_json(),
        "licences": licences,
    }
    masked: dict[str, Any] = redact(report)
    return masked


def render_json(result: RunResult, lang: str = "en", summary: ClassroomSummary | None = None) -> str:
    return json.dumps(build_report(result, lang, summary), ensure_ascii=False, indent=2, default=str) + "\n"
