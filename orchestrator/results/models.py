"""The values that carry a run: frozen, JSON-ready, shared by the executor, the store and the reports.

A leaf module: it imports nothing from kmsfleet except ``errors`` and ``results.packed``. Nothing here is mutated
after creation; mappings are ``MappingProxyType`` and sequences are tuples (see ``freeze``). A task's ``data`` is
kept packed (``PackedData``: a run keeps every PC's results for its reports, and a PC's task data cost tens of
kilobytes as Python objects) and reads as the same frozen mapping.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from orchestrator.results.packed import DecodedWalk, Packed, Packer


class TaskStatus(StrEnum):
    OK = "ok"
    CHANGED = "changed"
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    SKIPPED = "skipped"


class HostStatus(StrEnum):
    """Each host ends a run with exactly one of these."""

    OK = "ok"  # every task ok or skipped
    CHANGED = "changed"  # at least one task changed, none failed
    FAILED = "failed"  # a task failed (and was not rescued or ignored)
    UNREACHABLE = "unreachable"  # connection refused / timed out / host died mid-step
    AUTH_REFUSED = "auth_refused"  # credentials rejected (never retried: retries lock accounts)
    INTERRUPTED = "interrupted"  # Ctrl-C while this host was in flight; finished tasks are kept
    NOT_RUN = "not_run"  # Ctrl-C before this host started

    @property
    def succeeded(self) -> bool:
        return self in (HostStatus.OK, HostStatus.CHANGED)


class FailureKind(StrEnum):
    """Why a task did not succeed; set on failed / unreachable results only."""

    TASK = "task"  # the module reported failure (e.g. activation error)
    UNREACHABLE = "unreachable"  # connection refused, DNS, connect timeout, dropped connection
    AUTH = "auth"  # HTTP 401 at the end of authentication
    TIMEOUT = "timeout"  # read/operation timeout, or the host's time budget ran out
    FAULT = "fault"  # a WS-Management fault the module did not expect
    PROTOCOL = "protocol"  # a malformed or hostile response from the host
    INPUT = "input"  # a template or argument error found at run time (undefined variable …)


def freeze(value: Any) -> Any:
    """Deep-freeze JSON-like data: dicts become read-only mappings, lists become tuples."""
    if isinstance(value, MappingProxyType | PackedData):
        return value
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple | set | frozenset):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """The inverse of ``freeze``: plain dicts and lists, ready for ``json.dumps``."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


#: Task data packers, one per module (its results look alike: the first teaches the others, ``results.packed``).
_DATA_PACKERS: dict[str, Packer] = {}
#: More module names than this (a long-lived process running many playbooks) share one packer.
MAX_DATA_PACKERS = 256


def _unfrozen(value: Any) -> Any:
    """``value`` with read-only mappings as dicts and sequences as lists, ready to pickle (``freeze`` undoes it)."""
    if isinstance(value, Mapping):
        return {k: _unfrozen(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_unfrozen(v) for v in value]
    return value


def _data_packer(kind: str) -> Packer:
    packer = _DATA_PACKERS.get(kind)
    if packer is None:
        key = kind if len(_DATA_PACKERS) < MAX_DATA_PACKERS else ""
        packer = _DATA_PACKERS.setdefault(key, Packer())
    return packer


def _kept_data(data: bytes, with_zdict: bool, kind: str) -> PackedData:
    """A ``PackedData`` from ``PackedData.kept_reduce`` (same process: its packer's preset dictionary is here)."""
    return PackedData(_data_packer(kind).packed(data, with_zdict), kind)


class PackedData(DecodedWalk):
    """A task's ``data``, packed: read-only, decoded on access and frozen (as ``freeze`` leaves it); a walk over
    it (``items``, ``thaw``, ``to_json``) decodes once. Travels between processes as its plain values."""

    __slots__ = ("_kind", "_packed")

    def __init__(self, packed: Packed, kind: str) -> None:
        self._packed = packed
        self._kind = kind

    @classmethod
    def of(cls, data: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
        """``data`` packed (with the packer of ``kind``, the module); frozen as it is when it cannot be packed."""
        if isinstance(data, PackedData) or not data:
            return data if data else EMPTY
        packed = _data_packer(kind).pack(_unfrozen(data))
        return freeze(data) if packed is None else cls(packed, kind)

    def kept_reduce(self) -> tuple[Any, tuple[Any, ...]]:
        """How to pickle it within this process (``results.hostpack``): its packed bytes as they are."""
        return _kept_data, (self._packed.data, self._packed.with_zdict, self._kind)

    def _whole(self) -> Mapping[str, Any]:
        values: Mapping[str, Any] = freeze(self._packed.decode())
        return values

    def __getitem__(self, key: str) -> Any:
        return freeze(self._packed.decode()[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._packed.decode())

    def __len__(self) -> int:
        return len(self._packed.decode())

    def __repr__(self) -> str:
        return repr(self._packed.decode())

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return PackedData.of, (self._packed.decode(), self._kind)


def utcnow() -> datetime:
    return datetime.now(UTC)


def format_hresult(code: int | None) -> str | None:
    """0xC004F074 style, from a signed or unsigned 32-bit value."""
    if code is None:
        return None
    return f"0x{code & 0xFFFFFFFF:08X}"


EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class LicenceRecord:
    """What one PC reports about one licensed product (the audit record; read through WMI)."""

    product: str  # windows | office | server | sql
    name: str  # e.g. "Windows(R), Education edition", "Office 16, Office16ProPlusVL_KMS_Client edition"
    channel: str  # Volume:GVLK | Volume:MAK | Retail | OEM:DM | OEM:SLP | Subscription | None (sql)
    status: str  # Licensed | Unlicensed | OOBGrace | OOTGrace | NonGenuineGrace | Notification | ExtendedGrace
    license_status: int | None = None  # the raw LicenseStatus (0..6)
    days_left: int | None = None  # ceil(GracePeriodRemaining / 1440), as slmgr shows it; None = permanent
    expires: datetime | None = None  # when the current KMS activation runs out
    kms_host: str | None = None  # host:port set on the PC (None = auto-discovery)
    last_error: int | None = None  # LicenseStatusReason or the last activation HRESULT, unsigned
    version: str | None = None  # "2016", "10.0.19045", "15.0.2000.5" (SQL) …
    edition: str | None = None
    partial_key: str | None = None
    cmid: str | None = None
    activation_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "product": self.product,
            "name": self.name,
            "channel": self.channel,
            "status": self.status,
            "license_status": self.license_status,
            "days_left": self.days_left,
            "expires": self.expires.isoformat() if self.expires else None,
            "kms_host": self.kms_host,
            "last_error": format_hresult(self.last_error),
            "version": self.version,
            "edition": self.edition,
            "partial_key": self.partial_key,
            "cmid": self.cmid,
            "activation_id": self.activation_id,
        }


@dataclass(frozen=True)
class HostTaskResult:
    """One task on one host. Never mutated after creation."""

    host: str
    play: str
    task: str
    module: str
    status: TaskStatus
    changed: bool = False
    msg: str = ""
    error_code: int | None = None  # HRESULT / WS-Man code, unsigned 32-bit
    diagnosis: str | None = None  # key into the knowledge catalogue (e.g. "0xC004F074", "KF_WRONG_TIMEZONE")
    failure: FailureKind | None = None
    ignored: bool = False  # failed but ignore_errors: true
    rescued: bool = False  # failed inside a block whose rescue ran
    started: datetime = field(default_factory=utcnow)
    duration_ms: int = 0
    # what `register` sees (rc, stdout, results for loops …); a factory: mappingproxy is unhashable on 3.11
    data: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    diff: Mapping[str, Any] | None = None
    licences: tuple[LicenceRecord, ...] = ()
    no_log: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", PackedData.of(self.data, self.module))
        if self.diff is not None:
            object.__setattr__(self, "diff", freeze(self.diff))

    @property
    def error_hex(self) -> str | None:
        return format_hresult(self.error_code)

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "play": self.play,
            "module": self.module,
            "status": self.status.value,
            "changed": self.changed,
            "msg": self.msg,
            "error_code": self.error_hex,
            "diagnosis": self.diagnosis,
            "failure": self.failure.value if self.failure else None,
            "ignored": self.ignored,
            "rescued": self.rescued,
            "started": self.started.isoformat(),
            "duration_ms": self.duration_ms,
            "data": thaw(self.data),
            "diff": thaw(self.diff) if self.diff is not None else None,
            "licences": [lic.to_json() for lic in self.licences],
        }


@dataclass(frozen=True)
class HostStats:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0

    @classmethod
    def of(cls, tasks: Sequence[HostTaskResult]) -> HostStats:
        counts = dict.fromkeys(("ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored"), 0)
        for t in tasks:
            if t.rescued:
                counts["rescued"] += 1
            elif t.ignored:
                counts["ignored"] += 1
                counts["ok"] += 1  # Ansible counts an ignored failure as ok too (and changed when it changed)
                counts["changed"] += int(t.changed)
            elif t.status is TaskStatus.CHANGED:
                counts["changed"] += 1
                counts["ok"] += 1  # Ansible counts changed tasks as ok too
            else:
                counts[t.status.value] += 1
        return cls(**counts)

    def to_json(self) -> dict[str, int]:
        return {
            "ok": self.ok,
            "changed": self.changed,
            "failed": self.failed,
            "unreachable": self.unreachable,
            "skipped": self.skipped,
            "rescued": self.rescued,
            "ignored": self.ignored,
        }


@dataclass(frozen=True)
class HostResult:
    """A host's task results plus the one final status it ended with."""

    host: str
    status: HostStatus
    tasks: tuple[HostTaskResult, ...] = ()
    msg: str = ""  # why it ended that way (unreachable reason, interrupted …)
    started: datetime = field(default_factory=utcnow)
    finished: datetime = field(default_factory=utcnow)
    address: str | None = None  # ansible_host as contacted
    groups: tuple[str, ...] = ()
    licences: tuple[LicenceRecord, ...] = ()  # the latest licence state read on this host in the run
    # selected gathered facts (os, time zone, mac …) for history
    facts: Mapping[str, Any] = field(default_factory=lambda: EMPTY)

    def __post_init__(self) -> None:
        object.__setattr__(self, "facts", freeze(self.facts))

    @property
    def stats(self) -> HostStats:
        return HostStats.of(self.tasks)

    @property
    def failed_task(self) -> HostTaskResult | None:
        for t in reversed(self.tasks):
            if t.status in (TaskStatus.FAILED, TaskStatus.UNREACHABLE) and not (t.ignored or t.rescued):
                return t
        return None

    @property
    def duration_ms(self) -> int:
        return int((self.finished - self.started).total_seconds() * 1000)

    def to_json(self) -> dict[str, Any]:
        failed = self.failed_task
        return {
            "host": self.host,
            "address": self.address,
            "groups": list(self.groups),
            "status": self.status.value,
            "msg": self.msg,
            "error_code": failed.error_hex if failed else None,
            "diagnosis": failed.diagnosis if failed else None,
            "started": self.started.isoformat(),
            "finished": self.finished.isoformat(),
            "duration_ms": self.duration_ms,
            "stats": self.stats.to_json(),
            "licences": [lic.to_json() for lic in self.licences],
            "facts": thaw(self.facts),
            "tasks": [t.to_json() for t in self.tasks],
        }


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass(frozen=True)
class RunInfo:
    """What was asked for. ``id`` is the RUN_ID used by `report`, `show`, `--limit @failed:RUN_ID`."""

    id: str
    playbook: str
    inventory: tuple[str, ...]
    limit: str | None = None
    check: bool = False
    tags: tuple[str, ...] = ()
    skip_tags: tuple[str, ...] = ()
    forks: int = 50
    strategy: str = "free"
    started: datetime = field(default_factory=utcnow)
    controller: str = ""
    kmsfleet_version: str = ""
    lang: str = "en"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "playbook": self.playbook,
            "inventory": list(self.inventory),
            "limit": self.limit,
            "check": self.check,
            "tags": list(self.tags),
            "skip_tags": list(self.skip_tags),
            "forks": self.forks,
            "strategy": self.strategy,
            "started": self.started.isoformat(),
            "controller": self.controller,
            "kmsfleet_version": self.kmsfleet_version,
            "lang": self.lang,
        }


@dataclass(frozen=True)
class RunResult:
    """A run's outcome. ``hosts`` is a tuple, or for a local run ``results.hostpack.PackedHosts`` (each PC's
    result kept packed, decoded when read; its ``statuses`` are kept apart and used here)."""

    info: RunInfo
    hosts: Sequence[HostResult]
    finished: datetime = field(default_factory=utcnow)
    interrupted: bool = False

    def statuses(self) -> Sequence[HostStatus]:
        """Every host's status, in order (without decoding packed results)."""
        kept: Sequence[HostStatus] | None = getattr(self.hosts, "statuses", None)
        return kept if kept is not None else tuple(h.status for h in self.hosts)

    @property
    def exit_code(self) -> int:
        from orchestrator.exitcodes import ExitCode

        statuses = set(self.statuses())
        if self.interrupted:
            return ExitCode.INTERRUPTED
        if HostStatus.FAILED in statuses:
            return ExitCode.TASK_FAILED
        if HostStatus.AUTH_REFUSED in statuses:
            return ExitCode.AUTH_REFUSED
        if HostStatus.UNREACHABLE in statuses:
            return ExitCode.UNREACHABLE
        return ExitCode.OK

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in HostStatus}
        for status in self.statuses():
            out[status.value] += 1
        return out

    def host(self, name: str) -> HostResult | None:
        return next((h for h in self.hosts if h.host == name), None)
