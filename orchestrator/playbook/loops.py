"""Turning a task's ``loop`` / ``with_items`` / ``with_list`` / ``with_dict`` into the list of items."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.errors import TemplateError
from orchestrator.playbook.models import Task
from orchestrator.templating import Templar


def loop_items(task: Task, templar: Templar) -> list[Any] | None:
    """The items to run ``task`` over (rendered with ``templar``), or None when the task has no loop.

    ``with_items`` flattens one level (as in Ansible), ``with_dict`` gives ``{key, value}`` items,
    ``loop``/``with_list`` need a list."""
    if task.loop_with is None:
        return None
    value = templar.render(task.loop)
    where = task.key_location(task.loop_with)
    if task.loop_with == "with_dict":
        if not isinstance(value, Mapping):
            raise TemplateError(f"with_dict needs a mapping, got {type(value).__name__}", where)
        return [{"key": k, "value": v} for k, v in value.items()]
    if task.loop_with == "with_items":
        items = value if isinstance(value, list) else [value]
        out: list[Any] = []
        for item in items:
            if isinstance(item, list):
                out.extend(item)
            else:
                out.append(item)
        return out
    if task.loop_with == "with_list" and not isinstance(value, list):
        return [value]
    if not isinstance(value, list):
        raise TemplateError(
            f"loop needs a list, got {type(value).__name__} {str(value)[:60]!r}",
            where,
            hint='for a mapping use loop: "{{ d | dict2items }}"; for text, split it: "{{ s | split(\',\') }}"',
        )
    return value
