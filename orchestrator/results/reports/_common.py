"""What the report writers share: one row per PC × licensed product, with its diagnosis in one language."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from orchestrator.redact import redact_text
from orchestrator.results.hostpack import host_names
from orchestrator.results.models import HostResult, LicenceRecord, RunResult, format_hresult
from orchestrator.results.sorting import natural_key, room_of
from orchestrator.results.summary import ClassroomSummary, explain

_SEVERITY_ERROR = 0x80000000  # an HRESULT with this bit clear is a success or information code


@dataclass(frozen=True)
class ReportRow:
    """A PC × product line of the CSV and the HTML table (a PC without licence data has one, product-less)."""

    host: HostResult
    licence: LicenceRecord | None
    error_code: str | None  # 0xC004F074 style
    diagnosis: str | None  # catalogue title, in the report's language
    fix: tuple[str, ...]
    message: str

    @property
    def room(self) -> str | None:
        return room_of(self.host.groups)


def os_caption(host: HostResult) -> str:
    """The PC's Windows as it names itself (Win32_OperatingSystem.Caption, in the PC's language), if read."""
    value = host.facts.get("ansible_os_name") or host.facts.get("kmsfleet_os_caption")
    return str(value).strip() if value else ""


def host_message(host: HostResult) -> str:
    task = host.failed_task
    return redact_text((task.msg if task is not None and task.msg else host.msg) or "")


def report_rows(result: RunResult, summary: ClassroomSummary) -> Iterator[ReportRow]:
    """PCs in natural order. A product that is not licensed is explained by its own last error, else by the
    PC's failure cause; a licensed product carries no diagnosis; a PC without licence data gets its cause.
    A status that is information, not an error (0x4004F00C: still in the initial grace), gives way to the
    cause that stopped the PC (the clock, the account …), which is why the product is not activated."""
    lang = summary.lang
    names = host_names(result.hosts)  # one PC read at a time, in natural order (the hosts may be kept packed)
    for position in sorted(range(len(names)), key=lambda i: natural_key(names[i])):
        host = result.hosts[position]
        group = summary.group_for(host.host)
        message = host_message(host)
        for lic in host.licences or (None,):
            code: str | None = None
            title: str | None = None
            fix: tuple[str, ...] = ()
            if lic is not None and lic.status == "Licensed":
                pass  # this product is fine whatever else failed on the PC
            elif lic is not None and lic.last_error and (group is None or lic.last_error & _SEVERITY_ERROR):
                exp = explain(lic.last_error, lang)
                code = format_hresult(lic.last_error)
                if exp is not None:
                    title, fix = exp.title, exp.fix
            elif group is not None:
                code, title, fix = group.code, group.title, group.fix
            yield ReportRow(host, lic, code, title, tuple(fix), message)


def local_time(value: datetime | None) -> str:
    """A time as the school sees it: the controller's local time, to the minute (Excel reads it)."""
    return value.astimezone().strftime("%Y-%m-%d %H:%M") if value is not None else ""


def fix_text(steps: tuple[str, ...]) -> str:
    return "\n".join(f"{i}. {step}" for i, step in enumerate(steps, 1))
