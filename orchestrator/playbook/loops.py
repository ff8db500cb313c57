"""Turning a task's ``loop`` / ``with_items`` / ``with_list`` / ``with_dict`` (and Ansible's ``with_nested``,
``with_together``, ``with_indexed_items``, ``with_subelements``, ``with_sequence`` lookups) into the list of items."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any

from orchestrator.errors import Location, TemplateError
from orchestrator.playbook.models import Block, Task
from orchestrator.templating import Templar
from orchestrator.templating import f_subelements as subelements


def loop_items(task: Task | Block, templar: Templar) -> list[Any] | None:
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
    if task.loop_with in _LOOKUPS:
        return _LOOKUPS[task.loop_with](value, where)
    if task.loop_with == "with_list" and not isinstance(value, list):
        return [value]
    if not isinstance(value, list):
        raise TemplateError(
            f"loop needs a list, got {type(value).__name__} {str(value)[:60]!r}",
            where,
            hint='for a mapping use loop: "{{ d | dict2items }}"; for text, split it: "{{ s | split(\',\') }}"',
        )
    return value


MAX_ITEMS = 100_000


def _lists(value: Any, name: str, where: Location | None) -> list[list[Any]]:
    if not isinstance(value, list) or not value:
        raise TemplateError(f"{name} needs a list of lists", where)
    return [v if isinstance(v, list) else [v] for v in value]


def _nested(value: Any, where: Location | None) -> list[Any]:
    lists = _lists(value, "with_nested", where)
    if math.prod(len(x) for x in lists) > MAX_ITEMS:
        raise TemplateError(f"with_nested would give more than {MAX_ITEMS} items", where)
    return [list(t) for t in itertools.product(*lists)]


def _together(value: Any, where: Location | None) -> list[Any]:
    return [list(t) for t in itertools.zip_longest(*_lists(value, "with_together", where))]


def _indexed(value: Any, where: Location | None) -> list[Any]:
    items = value if isinstance(value, list) else [value]
    flat: list[Any] = []
    for item in items:
        flat.extend(item if isinstance(item, list) else [item])
    return [[i, item] for i, item in enumerate(flat)]


def _subelements(value: Any, where: Location | None) -> list[Any]:
    """``[list of mappings, 'key']`` (optionally ``{skip_missing: true}``): the ``subelements`` filter's items."""
    if not isinstance(value, list) or len(value) not in (2, 3) or not isinstance(value[1], str):
        raise TemplateError(
            "with_subelements needs [list of mappings, 'key'] (and optionally {skip_missing: true})", where
        )
    elements = list(value[0].values()) if isinstance(value[0], Mapping) else value[0]
    skip = len(value) == 3 and isinstance(value[2], Mapping) and bool(value[2].get("skip_missing"))
    try:
        return subelements(elements, value[1], skip)
    except Exception as exc:  # the filter's own refusal, with its message
        raise TemplateError(f"with_{exc}", where) from None


def _sequence(value: Any, where: Location | None) -> list[Any]:
    """``start=1 end=10 stride=2 format=pc%02d`` or ``count=5`` or the short form ``1-10/2:pc%02d``."""
    text = " ".join(str(v) for v in value) if isinstance(value, list) else str(value)
    args: dict[str, str] = {}
    for word in text.split():
        if "=" in word:
            key, _, val = word.partition("=")
            args[key] = val
        else:
            short = word
            if ":" in short:
                short, args["format"] = short.split(":", 1)
            if "/" in short:
                short, args["stride"] = short.split("/", 1)
            if "-" in short:
                args["start"], args["end"] = short.split("-", 1)
            else:
                args["end"] = short
    try:
        start = int(args.get("start", "1"), 0)
        stride = int(args.get("stride", "1"), 0)
        end = start + (int(args["count"], 0) - 1) * stride if "count" in args else int(args["end"], 0)
    except (KeyError, ValueError):
        raise TemplateError(f"with_sequence: cannot read {text!r} (give start=, end= or count=)", where) from None
    if stride == 0 or (end - start) // stride + 1 > MAX_ITEMS:
        raise TemplateError(f"with_sequence: {text!r} gives no usable range", where)
    fmt = args.get("format", "%d")
    return [fmt % i for i in range(start, end + (1 if stride > 0 else -1), stride)]


_LOOKUPS: dict[str, Callable[[Any, Location | None], list[Any]]] = {
    "with_nested": _nested,
    "with_together": _together,
    "with_indexed_items": _indexed,
    "with_subelements": _subelements,
    "with_sequence": _sequence,
}
