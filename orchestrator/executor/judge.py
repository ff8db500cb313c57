"""Judging a task's outcome: ``changed_when`` / ``failed_when`` (after every attempt, so ``until`` sees them, as
Ansible's TaskExecutor applies them inside its retry loop), ``until``, then the status with ``ignore_errors``
and whether a block's rescue takes the failure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.executor.failures import diagnosis_for
from orchestrator.executor.plan import TaskSpec
from orchestrator.executor.taskresult import Outcome, TaskEnd
from orchestrator.results.models import FailureKind, TaskStatus

#: evaluates conditions with extra variables (the registered result) on top of the task's
Evaluate = Callable[[tuple[Any, ...], dict[str, Any]], bool]


def with_conditions(task: TaskSpec, outcome: Outcome, evaluate: Evaluate) -> Outcome:
    """``changed_when`` / ``failed_when`` applied (the registered result visible under the task's ``register``).
    Ansible evaluates neither on a skipped result (TaskExecutor: ``'skipped' not in result``)."""
    if (task.changed_when is None and task.failed_when is None) or outcome.skipped:
        return outcome
    data = dict(outcome.data)
    scope = {task.register: data} if task.register else {}  # failed_when sees what changed_when decided
    changes: dict[str, Any] = {}
    if task.changed_when is not None:
        changes["changed"] = data["changed"] = evaluate(task.changed_when, scope)
    if task.failed_when is not None:
        failed = evaluate(task.failed_when, scope) if task.failed_when else False
        if failed and not outcome.failed:
            changes["msg"] = outcome.msg or "failed_when condition was true"
        if not failed:
            changes["error_code"] = changes["diagnosis"] = None
        changes["failed"] = data["failed"] = data["failed_when_result"] = failed
    return outcome._replace(data=data, **changes)


def with_attempts(outcome: Outcome, attempt: int) -> Outcome:
    """The outcome of an ``until`` task's attempt: ``attempts`` joins what ``register`` sees."""
    return outcome._replace(data={**outcome.data, "attempts": attempt})


def retries_exhausted(outcome: Outcome) -> Outcome:
    """``until`` never held: the task fails (with the module's own message, if it gave one)."""
    return outcome._replace(failed=True, msg=outcome.msg or "Retries exhausted", data={**outcome.data, "failed": True})


def attempts_allowed(task: TaskSpec, limit: int) -> int:
    """How often the module runs at most: ``retries`` + 1 with ``until`` (Ansible's default retries is 3);
    without ``until``, ``retries`` does nothing (as in Ansible)."""
    if task.until is None:
        return 1
    return max(1, min(limit, int(task.retries if task.retries is not None else 3) + 1))


def verdict(outcome: Outcome, *, ignore_errors: bool, rescuable: bool) -> TaskEnd:
    """The task's end: its status, and for a failure whether it is ignored or taken by a block's rescue."""
    if outcome.skipped:
        return TaskEnd(TaskStatus.SKIPPED, msg=outcome.msg, data=outcome.data)
    failed = outcome.failed
    return TaskEnd(
        TaskStatus.FAILED if failed else TaskStatus.CHANGED if outcome.changed else TaskStatus.OK,
        msg=outcome.msg,
        data=outcome.data,
        error_code=outcome.error_code,
        diagnosis=outcome.diagnosis or (diagnosis_for(outcome.error_code, None) if failed else None),
        failure=FailureKind.TASK if failed else None,
        ignored=failed and ignore_errors,
        rescued=failed and rescuable and not ignore_errors,
        diff=outcome.diff,
        licences=outcome.licences,
    )
