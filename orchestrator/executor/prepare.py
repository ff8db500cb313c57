"""Preparing a task on one host: its keywords that may be templates made concrete, its arguments rendered (and
what is derived from a secret marked secret at its source)."""

from __future__ import annotations

import dataclasses
from typing import Any

from orchestrator.errors import InputError
from orchestrator.executor.plan import TaskSpec
from orchestrator.redact import MASK, redact_text, register_secret_name, register_secret_values
from orchestrator.templating import Templar

#: Arguments that only show text to the operator: made from a secret, they are masked whole.
_MESSAGE_ARGS: dict[str, frozenset[str]] = {
    "debug": frozenset({"msg"}),
    "fail": frozenset({"msg"}),
    "assert": frozenset({"msg", "fail_msg", "success_msg"}),
}
_FLAGS = ("ignore_errors", "ignore_unreachable", "no_log", "check_mode", "diff")
_NUMBERS: tuple[tuple[str, type[int] | type[float]], ...] = (("retries", int), ("delay", float), ("timeout", float))


def resolve_keywords(task: TaskSpec, templar: Templar, play_check_mode: bool | str | None) -> TaskSpec:
    """Keywords that may be templates (retries, delay, ignore_errors, no_log, …) → concrete values; a task
    without ``check_mode`` takes the play's."""

    def flag(value: Any) -> Any:
        return value if value is None or isinstance(value, bool) else bool(templar.evaluate(value))

    def number(value: Any, kind: type[int] | type[float]) -> Any:
        rendered = templar.render(value)
        try:
            return kind(rendered)
        except (TypeError, ValueError):
            raise InputError(f"expected a number, got {rendered!r}", task.location) from None

    changes: dict[str, Any] = {key: flag(getattr(task, key)) for key in _FLAGS if isinstance(getattr(task, key), str)}
    for key, kind in _NUMBERS:
        if isinstance(getattr(task, key), str):
            changes[key] = number(getattr(task, key), kind)
    if task.check_mode is None and play_check_mode is not None:
        changes["check_mode"] = flag(play_check_mode)
    return dataclasses.replace(task, **changes) if changes else task


def render_args(task: TaskSpec, templar: Templar) -> dict[str, Any]:
    """The task's arguments rendered. A value derived from a secret is marked secret at its source: a
    set_fact variable (its name and value), a registered variable (its name), so no later rendering of it
    (``debug: var=``, ``hostvars``, a report) shows it."""
    if task.module == "set_fact":
        return _render_facts(task, templar)
    shown = _MESSAGE_ARGS.get(task.module, frozenset())
    rendered: dict[str, Any] = {}
    any_derived = False
    for key, raw in task.args.items():
        value, derived = templar.render_tracked(raw)
        if derived:
            any_derived = True
            if key not in shown:  # the PC needs the value; every display of it is masked
                register_secret_values(value)
            elif redact_text(str(value)) == str(value):
                # a message made from a secret that the mask cannot see (joined, sliced, reversed): none of it
                # shows; one that carries the secret as it is keeps its words around the mask
                value = MASK
        rendered[key] = value
    if any_derived and task.register:
        register_secret_name(task.register)
    return rendered


def _render_facts(task: TaskSpec, templar: Templar) -> dict[str, Any]:
    """``set_fact``: a variable set from a secret is a secret by name and value (``cacheable`` is a flag)."""
    out: dict[str, Any] = {}
    for key, raw in task.args.items():
        value, derived = templar.render_tracked(raw)
        if derived and key != "cacheable":
            register_secret_name(str(key))
            register_secret_values(value)
        out[key] = value
    return out
