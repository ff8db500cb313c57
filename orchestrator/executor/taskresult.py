"""The values one task passes from step to step, and THE constructor of task results.

A task's life (``pipeline.HostPipeline.run_task``) is a straight line of immutable values (named tuples: made
thousands of times a second in a classroom run, they cost a third of a frozen dataclass): the module run gives an
``Outcome`` (what ``register`` sees, plus the status fields), the judge turns it into a ``TaskEnd`` (status, ignored,
rescued …) and ``task_result`` makes the one ``HostTaskResult`` the host keeps. The runner's overrun and crash paths
build their results with ``task_result`` too, so every result is masked (``no_log``, secrets) the same way.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from orchestrator.modules.base import ModuleOutcome, TaskFailed
from orchestrator.redact import redact_plain, redact_text
from orchestrator.results.models import EMPTY, FailureKind, HostTaskResult, LicenceRecord, TaskStatus, utcnow

NO_LOG_MSG = "the output has been hidden due to the fact that 'no_log: true' was specified for this result"


class Outcome(NamedTuple):
    """What a module run (or a loop of them) gave. ``data`` is what ``register`` sees (``changed``/``failed``/
    ``msg`` included); ``facts`` what the module set; ``skip_reason`` is registered but not shown."""

    changed: bool = False
    failed: bool = False
    skipped: bool = False
    msg: str = ""
    error_code: int | None = None
    diagnosis: str | None = None
    data: Mapping[str, Any] = EMPTY
    diff: Mapping[str, Any] | None = None
    licences: tuple[LicenceRecord, ...] = ()
    facts: Mapping[str, Any] = EMPTY
    skip_reason: str | None = None

    @classmethod
    def of(cls, module: ModuleOutcome) -> Outcome:
        """A module's (mutable) ``ModuleOutcome`` as a value, with ``data`` as ``register`` shows it."""
        data = dict(module.data)
        data["changed"] = module.changed
        data["failed"] = module.failed
        if module.msg and "msg" not in data:
            data["msg"] = module.msg
        if module.skipped:
            data["skipped"] = True
        if module.error_code is not None:
            data["error_code"] = f"0x{module.error_code & 0xFFFFFFFF:08X}"
        return cls(
            changed=module.changed,
            failed=module.failed,
            skipped=module.skipped,
            msg=module.msg,
            error_code=module.error_code,
            diagnosis=module.diagnosis,
            data=data,
            diff=module.diff,
            licences=module.licences,
            facts=dict(module.facts),
        )

    @classmethod
    def of_failure(cls, failed: TaskFailed) -> Outcome:
        """A module that failed its task with ``TaskFailed`` (a code, a diagnosis, maybe licences)."""
        return cls.of(
            ModuleOutcome(
                failed=True,
                msg=failed.msg,
                error_code=failed.error_code,
                diagnosis=failed.diagnosis,
                data=failed.data,
                licences=failed.licences,
            )
        )

    @classmethod
    def skipped_because(cls, reason: str, *, shown: bool = False) -> Outcome:
        """A task that did not run: ``shown`` puts the reason in the result's data too (``skipped: true``)."""
        if shown:
            return cls(skipped=True, msg=reason, data={"skipped": True, "msg": reason})
        return cls(skipped=True, msg=reason, skip_reason=reason)

    def registered(self) -> dict[str, Any]:
        """The data ``register`` keeps (before the result's status flags are added)."""
        data = dict(self.data)
        if self.skip_reason is not None:
            data["skip_reason"] = self.skip_reason
        return data


class TaskEnd(NamedTuple):
    """How a task ended, as recorded: everything of a ``HostTaskResult`` but whose and when."""

    status: TaskStatus
    msg: str = ""
    data: Mapping[str, Any] = EMPTY
    error_code: int | None = None
    diagnosis: str | None = None
    failure: FailureKind | None = None
    ignored: bool = False
    rescued: bool = False
    diff: Mapping[str, Any] | None = None
    licences: tuple[LicenceRecord, ...] = ()


class TaskRef(NamedTuple):
    """Whose result: the host, the play and the task (``no_log`` as the task has it: True hides the output)."""

    host: str
    play: str
    task: str
    module: str
    no_log: bool | str = False


class Clock(NamedTuple):
    """When a task started: the wall-clock time shown and a monotonic start for its duration."""

    started: datetime
    t0: float

    @classmethod
    def start(cls) -> Clock:
        return cls(utcnow(), time.monotonic())

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.t0) * 1000)


def task_result(ref: TaskRef, end: TaskEnd, clock: Clock | None = None) -> HostTaskResult:
    """THE constructor of a task's result: ``no_log`` hides the output, secrets are masked in what shows."""
    if ref.no_log is True:
        msg, data, diff = (NO_LOG_MSG if end.msg else ""), {}, None
    else:
        msg = redact_text(str(end.msg))
        data = redact_plain(end.data)  # thawed and scrubbed in one walk (what redact(thaw(...)) gave)
        diff = redact_plain(end.diff) if end.diff is not None else None
    return HostTaskResult(
        host=ref.host,
        play=ref.play,
        task=ref.task,
        module=ref.module,
        status=end.status,
        changed=end.status is TaskStatus.CHANGED,
        msg=msg,
        error_code=end.error_code & 0xFFFFFFFF if end.error_code is not None else None,
        diagnosis=end.diagnosis,
        failure=end.failure,
        ignored=end.ignored,
        rescued=end.rescued,
        started=clock.started if clock is not None else utcnow(),
        duration_ms=clock.elapsed_ms() if clock is not None else 0,
        data=data or {},
        diff=diff,
        licences=tuple(end.licences),
        no_log=bool(ref.no_log),
    )
