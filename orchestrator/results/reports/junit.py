"""JUnit XML for CI dashboards (Jenkins, GitLab, Azure DevOps …): one testsuite per PC, one testcase per task.

failed task → <failure message=… type=0xC004F074>; unreachable, sign-in refused or timed out → <error>;
skipped → <skipped/>; ignored or rescued failures pass (noted in system-out). A PC that never ran a task gets
one testcase named after its status. Text is stripped of characters XML 1.0 cannot carry (command output
often has escape codes), so any parser reads the file.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # building only; parsing untrusted XML would use defusedxml
from datetime import UTC

from orchestrator.knowledge import i18n
from orchestrator.redact import redact_text
from orchestrator.results.models import (
    FailureKind,
    HostResult,
    HostStatus,
    HostTaskResult,
    RunResult,
    TaskStatus,
)
from orchestrator.results.reports._common import fix_text
from orchestrator.results.sorting import room_of
from orchestrator.results.summary import ClassroomSummary, explain, summarise

_XML_INVALID = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ERROR_KINDS = (FailureKind.UNREACHABLE, FailureKind.AUTH, FailureKind.TIMEOUT)
_MESSAGE_MAX = 1000


def _clean(text: object) -> str:
    return _XML_INVALID.sub("\ufffd", redact_text("" if text is None else str(text)))


def _seconds(ms: int) -> str:
    return f"{max(ms, 0) / 1000:.3f}"


def _classname(host: HostResult) -> str:
    # Dashboards split classname on dots into packages: room.pc, with dots in names flattened.
    name = host.host.replace(".", "_")
    room = room_of(host.groups)
    return f"{room.replace('.', '_')}.{name}" if room else name


def _explanation(task: HostTaskResult, lang: str) -> str:
    exp = explain(task.diagnosis, lang, code=task.error_code) if (task.diagnosis or task.error_code) else None
    if exp is None:
        return ""
    text = exp.title
    if exp.fix:
        text += "\n" + i18n.t("recap.fix", lang) + "\n" + fix_text(exp.fix)
    return text


def _testcase(suite: ET.Element, host: HostResult, task: HostTaskResult, lang: str) -> str | None:
    """Add one testcase; returns its outcome (failure / error / skipped) or None when it passed."""
    case = ET.SubElement(
        suite,
        "testcase",
        name=_clean(f"[{task.play}] {task.task}" if task.play else task.task),
        classname=_clean(_classname(host)),
        time=_seconds(task.duration_ms),
    )
    kind = None
    message = _clean(task.msg)[:_MESSAGE_MAX]
    if task.status is TaskStatus.SKIPPED:
        ET.SubElement(case, "skipped", message=message)
        kind = "skipped"
    elif task.status in (TaskStatus.FAILED, TaskStatus.UNREACHABLE) and not (task.ignored or task.rescued):
        is_error = task.status is TaskStatus.UNREACHABLE or task.failure in _ERROR_KINDS
        kind = "error" if is_error else "failure"
        outcome_type = task.error_hex or (task.failure.value if task.failure else task.status.value)
        element = ET.SubElement(case, kind, message=message, type=_clean(outcome_type))
        element.text = "\n\n".join(x for x in (_clean(task.msg), _clean(_explanation(task, lang))) if x)
    notes = []
    if task.ignored or task.rescued:
        notes.append(i18n.t("status.ignored" if task.ignored else "status.rescued", lang))
    if task.msg and kind is None:
        notes.append(task.msg)
    if notes:
        ET.SubElement(case, "system-out").text = _clean(" — ".join(notes))
    return kind


def _host_case(suite: ET.Element, host: HostResult, lang: str) -> str | None:
    """A testcase for the PC itself when its status is not told by a task: interrupted / not run (skipped),
    or a failure without a failed task (e.g. off before the first task)."""
    not_finished = host.status in (HostStatus.INTERRUPTED, HostStatus.NOT_RUN)
    untold = host.status in (HostStatus.FAILED, HostStatus.UNREACHABLE, HostStatus.AUTH_REFUSED) and (
        host.failed_task is None
    )
    if not (not_finished or untold):
        return None
    label = i18n.t(f"status.{host.status.value}", lang)
    case = ET.SubElement(suite, "testcase", name=_clean(label), classname=_clean(_classname(host)), time="0.000")
    message = _clean(host.msg or label)
    if not_finished:
        ET.SubElement(case, "skipped", message=message)
        return "skipped"
    kind = "failure" if host.status is HostStatus.FAILED else "error"
    ET.SubElement(case, kind, message=message, type=host.status.value).text = message
    return kind


def render_junit(result: RunResult, lang: str = "en", summary: ClassroomSummary | None = None) -> str:
    summary = summary or summarise(result, lang)
    code = summary.lang
    root = ET.Element("testsuites", name=_clean(f"kmsfleet {result.info.playbook} ({result.info.id})"))
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for index, host in enumerate(result.hosts):
        suite = ET.SubElement(
            root,
            "testsuite",
            name=_clean(host.host),
            id=str(index),
            package=_clean(room_of(host.groups) or ""),
            hostname=_clean(host.address or host.host),
            timestamp=host.started.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            time=_seconds(host.duration_ms),
        )
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="status", value=host.status.value)
        ET.SubElement(props, "property", name="run_id", value=_clean(result.info.id))
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        kinds = [_testcase(suite, host, task, code) for task in host.tasks]
        kinds.append(_host_case(suite, host, code))
        for kind in kinds:
            if kind is not None:
                counts[{"failure": "failures", "error": "errors", "skipped": "skipped"}[kind]] += 1
        counts["tests"] = len(suite.findall("testcase"))
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", _seconds(int((result.finished - result.info.started).total_seconds() * 1000)))
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"
