"""Turning a task's ``loop`` / ``with_items`` / ``with_list`` / ``with_dict`` (and Ansible's ``with_nested``,
``with_together``, ``with_indexed_items``, ``with_subelements``, ``with_sequence`` lookups) into the list of items.

``LoopSpec`` is the loop as the plan carries it: plain frozen data (the keyword, its raw value, where it was
written, and ``loop_control``), the same for a task and a looped ``include_tasks``, and for a compiled plan and a
hand-built one."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import Location, TemplateError
from orchestrator.playbook.models import Block, Task
from orchestrator.templating import Templar
from orchestrator.templating import f_subelements as subelements


@dataclass(frozen=True)
class LoopSpec:
    """One loop as written: ``items`` is the raw value of ``keyword`` (a list or a template), ``location`` where
    the keyword was written; the rest is ``loop_control``."""

    items: Any
    keyword: str = "loop"  # loop | with_items | with_list | with_dict | with_<lookup> (keywords.LOOP_KEYWORDS)
    location: Location | None = None
    var: str = "item"
    index_var: str | None = None
    label: Any = None
    extended: bool = False  # loop_control.extended: the ansible_loop variable


def loop_spec(node: Task | Block) -> LoopSpec | None:
    """The loop of a loaded task or looped include, as plan data (None when it has none)."""
    if node.loop_with is None:
        return None
    lc = node.loop_control
    return LoopSpec(
        items=node.loop,
        keyword=node.loop_with,
        location=node.key_location(node.loop_with),
        var=lc.loop_var if lc else "item",
        index_var=lc.index_var if lc else None,
        label=lc.label if lc else None,
        extended=lc.extended if lc else False,
    )


def loop_items(loop: LoopSpec | None, templar: Templar) -> list[Any] | None:
    """The items to run a loop over (rendered with ``templar``), or None when there is no loop.

    ``with_items`` flattens one level (as in Ansible), ``with_dict`` gives ``{key, value}`` items,
    ``loop``/``with_list`` need a list."""
    if loop is None:
        return None
    value = templar.render(loop.items)
    where = loop.location
    if loop.keyword == "with_dict":
        if not isinstance(value, Mapping):
            raise TemplateError(f"with_dict needs a mapping, got {type(value).__name__}", where)
        return [{"key": k, "value": v} for k, v in value.items()]
    if loop.keyword == "with_items":
        return _flattened(value)
    if loop.keyword in _LOOKUPS:
        return _LOOKUPS[loop.keyword](value, where)
    if loop.keyword == "with_list" and not isinstance(value, list):
        return [value]
    if not isinstance(value, list):
        raise TemplateError(
            f"loop needs a list, got {type(value).__name__} {str(value)[:60]!r}",
            where,
            hint='for a mapping use loop: "{{ d | dict2items }}"; for text, split it: "{{ s | split(\',\') }}"',
        )
    return value


def _flattened(value: Any) -> list[Any]:
    """``with_items``: a list flattened one level (a single value is a list of one)."""
    out: list[Any] = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, list):
            out.extend(item)
        else:
            out.append(item)
    return out


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
