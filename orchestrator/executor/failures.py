"""THE place where an exception becomes how a task ended (status, failure kind, message, diagnosis key)."""

from __future__ import annotations

from orchestrator.errors import InputError, KmsfleetError
from orchestrator.executor.taskresult import TaskEnd
from orchestrator.results.models import FailureKind, TaskStatus
from orchestrator.transport.errors import (
    AuthFailed,
    OperationTimeout,
    ProtocolError,
    TransportError,
    Unreachable,
    WSManFault,
)
from orchestrator.transport.winrm import Cancelled

#: transport errors that end the host's run (unless ignore_unreachable), in the order they are tested
_UNREACHABLE: tuple[tuple[type[TransportError], FailureKind, str], ...] = (
    (AuthFailed, FailureKind.AUTH, "KF_AUTH_REFUSED"),
    (Unreachable, FailureKind.UNREACHABLE, "KF_UNREACHABLE"),
    (OperationTimeout, FailureKind.TIMEOUT, "KF_TIMEOUT"),
)


def diagnosis_for(code: int | None, key: str | None) -> str | None:
    """The knowledge-catalogue key to store with a failed result."""
    try:
        from orchestrator.knowledge import catalogue
    except ImportError:  # pragma: no cover - the catalogue ships with kmsfleet
        return key
    try:
        return catalogue.diagnose(code, key)
    except Exception:
        return key


def end_of_exception(exc: BaseException, module: str) -> TaskEnd:
    """How a task that raised ``exc`` ended: ``interrupted`` (the run is stopping), ``unreachable`` (the host
    cannot be talked to), or ``failed`` with the fault's code or the error's text. Ignoring and rescuing are the
    caller's decision."""
    if isinstance(exc, Cancelled):
        return TaskEnd(TaskStatus.FAILED, msg="interrupted", failure=FailureKind.TIMEOUT, diagnosis="KF_INTERRUPTED")
    for error, kind, reason in _UNREACHABLE:
        if isinstance(exc, error):
            return TaskEnd(TaskStatus.UNREACHABLE, msg=exc.message, failure=kind, diagnosis=diagnosis_for(None, reason))
    code: int | None = None
    key: str | None
    if isinstance(exc, WSManFault):
        code = exc.hresult
        failure, msg, key = FailureKind.FAULT, exc.message, "KF_WSMAN_FAULT"
    elif isinstance(exc, ProtocolError):
        failure, msg, key = FailureKind.PROTOCOL, exc.message, "KF_PROTOCOL"
    elif isinstance(exc, InputError):
        failure, msg, key = FailureKind.INPUT, exc.render(), None
    elif isinstance(exc, KmsfleetError):
        failure, msg, key = FailureKind.INPUT, str(exc), None
    else:
        failure, msg, key = FailureKind.TASK, f"internal error in module {module}: {type(exc).__name__}: {exc}", None
    return TaskEnd(TaskStatus.FAILED, msg=msg, error_code=code, diagnosis=diagnosis_for(code, key), failure=failure)
