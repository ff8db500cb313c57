"""Results as plain values and back: the one codec of ``HostResult``/``HostTaskResult``.

Two users, one shape: the history database stores a host as rows (``host_rows``, JSON columns encoded and
redacted by the store's encoder) and reads them back (``host_from_row``); a distributed worker streams a
finished host or task line as JSON (``host_result_to_json``, datetimes in ISO 8601) that the controller turns
back into the same frozen result (``host_result_from_json``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.results.models import (
    FailureKind,
    HostResult,
    HostStatus,
    HostTaskResult,
    LicenceRecord,
    TaskStatus,
    thaw,
)
from orchestrator.results.sorting import room_of

Encoder = Callable[[Any], Any]  # a JSON column's value -> what the database stores


def licence_to_json(lic: LicenceRecord) -> dict[str, Any]:
    """Lossless JSON for a LicenceRecord (raw integers, unlike ``to_json`` which formats for people)."""
    return {
        "product": lic.product,
        "name": lic.name,
        "channel": lic.channel,
        "status": lic.status,
        "license_status": lic.license_status,
        "days_left": lic.days_left,
        "expires": lic.expires.isoformat() if lic.expires else None,
        "kms_host": lic.kms_host,
        "last_error": lic.last_error,
        "version": lic.version,
        "edition": lic.edition,
        "partial_key": lic.partial_key,
        "cmid": lic.cmid,
        "activation_id": lic.activation_id,
    }


def licence_from_json(d: Mapping[str, Any]) -> LicenceRecord:
    expires = d.get("expires")
    return LicenceRecord(
        product=d["product"],
        name=d["name"],
        channel=d["channel"],
        status=d["status"],
        license_status=d.get("license_status"),
        days_left=d.get("days_left"),
        expires=datetime.fromisoformat(expires) if expires else None,
        kms_host=d.get("kms_host"),
        last_error=d.get("last_error"),
        version=d.get("version"),
        edition=d.get("edition"),
        partial_key=d.get("partial_key"),
        cmid=d.get("cmid"),
        activation_id=d.get("activation_id"),
    )


LICENCE_FIELDS = (
    "product",
    "name",
    "channel",
    "status",
    "license_status",
    "days_left",
    "expires",
    "kms_host",
    "last_error",
    "version",
    "edition",
    "partial_key",
    "cmid",
    "activation_id",
)


def licence_from_row(row: Mapping[Any, Any]) -> LicenceRecord:
    return LicenceRecord(**{k: row[k] for k in LICENCE_FIELDS})


@dataclass(frozen=True)
class HostRows:
    """One finished host as database rows, redacted and encoded (``prepare_host``): the costly part of saving a
    host, done on the thread that finished it."""

    host: dict[str, Any]
    tasks: list[dict[str, Any]]
    licences: list[dict[str, Any]]

    @property
    def name(self) -> str:
        return str(self.host["host"])


def host_rows(run_id: str, h: HostResult, position: int | None = None, *, encode: Encoder | None = None) -> HostRows:
    """``encode`` (the store's ``schema.encode_json``): JSON columns redacted and encoded for the database now;
    without, plain values (the wire)."""
    enc = encode or _as_is
    failed = h.failed_task
    host_row = {
        "run_id": run_id,
        "host": h.host,
        "position": position,
        "status": h.status.value,
        "msg": h.msg,
        "address": h.address,
        "groups": enc(list(h.groups)),
        "room": room_of(h.groups),
        "started": h.started,
        "finished": h.finished,
        "error_code": failed.error_code if failed else None,
        "diagnosis": failed.diagnosis if failed else None,
        "facts": enc(h.facts),
    }
    tasks = [task_row(run_id, h.host, seq, t, encode=encode) for seq, t in enumerate(h.tasks)]
    licences = [
        {
            "run_id": run_id,
            "host": h.host,
            "seq": seq,
            "seen_at": h.finished,
            **{k: getattr(lic, k) for k in LICENCE_FIELDS},
        }
        for seq, lic in enumerate(h.licences)
    ]
    return HostRows(host_row, tasks, licences)


def _as_is(value: Any) -> Any:
    return value


def task_row(run_id: str, host: str, seq: int, t: HostTaskResult, *, encode: Encoder | None = None) -> dict[str, Any]:
    enc = encode or _as_is
    return {
        "run_id": run_id,
        "host": host,
        "seq": seq,
        "play": t.play,
        "task": t.task,
        "module": t.module,
        "status": t.status.value,
        "changed": t.changed,
        "msg": t.msg,
        "error_code": t.error_code,
        "diagnosis": t.diagnosis,
        "failure": t.failure.value if t.failure else None,
        "ignored": t.ignored,
        "rescued": t.rescued,
        "started": t.started,
        "duration_ms": t.duration_ms,
        "data": enc(t.data),
        "diff": None if t.diff is None else enc(t.diff),
        "licences": enc([licence_to_json(lic) for lic in t.licences]),
        "no_log": t.no_log,
    }


def host_from_row(
    h: Mapping[Any, Any], tasks: Sequence[HostTaskResult], licences: Sequence[LicenceRecord]
) -> HostResult:
    return HostResult(
        host=h["host"],
        status=HostStatus(h["status"]),
        tasks=tuple(tasks),
        msg=h["msg"],
        started=h["started"],
        finished=h["finished"],
        address=h["address"],
        groups=tuple(h["groups"]),
        licences=tuple(licences),
        facts=h["facts"],
    )


def task_from_row(host: str, row: Mapping[Any, Any]) -> HostTaskResult:
    return HostTaskResult(
        host=host,
        play=row["play"],
        task=row["task"],
        module=row["module"],
        status=TaskStatus(row["status"]),
        changed=row["changed"],
        msg=row["msg"],
        error_code=row["error_code"],
        diagnosis=row["diagnosis"],
        failure=FailureKind(row["failure"]) if row["failure"] else None,
        ignored=row["ignored"],
        rescued=row["rescued"],
        started=row["started"],
        duration_ms=row["duration_ms"],
        data=row["data"],
        diff=row["diff"],
        licences=tuple(licence_from_json(d) for d in row["licences"]),
        no_log=row["no_log"],
    )


_WIRE_SKIP = ("run_id", "position", "seq")


def _wire(row: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = thaw({k: v for k, v in row.items() if k not in _WIRE_SKIP})
    return out


def _when(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def task_result_to_json(t: HostTaskResult, *, data: bool = True) -> dict[str, Any]:
    """One task result as plain JSON (``data=False``: without ``data``/``diff``, for progress events)."""
    row = task_row("", t.host, 0, t)
    if not data:
        row.update(data={}, diff=None)
    return _wire(row)


def task_result_from_json(d: Mapping[str, Any]) -> HostTaskResult:
    return task_from_row(d["host"], {**d, "started": _when(d["started"])})


def host_result_to_json(h: HostResult) -> dict[str, Any]:
    """One finished host as plain JSON (datetimes in ISO 8601); ``host_result_from_json`` is its inverse."""
    rows = host_rows("", h)
    return {
        "host": _wire(rows.host),
        "tasks": [_wire(t) for t in rows.tasks],
        "licences": [_wire(lic) for lic in rows.licences],
    }


def host_result_from_json(d: Mapping[str, Any]) -> HostResult:
    host = {**d["host"], "started": _when(d["host"]["started"]), "finished": _when(d["host"]["finished"])}
    tasks = [task_result_from_json(t) for t in d["tasks"]]
    licences = [licence_from_row({**lic, "expires": _when(lic.get("expires"))}) for lic in d["licences"]]
    return host_from_row(host, tasks, licences)
