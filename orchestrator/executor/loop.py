"""One loop for tasks and looped ``include_tasks`` alike: the items (bounded) and the variables of each item."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orchestrator.errors import InputError, Location
from orchestrator.executor.plan import LoopSpec
from orchestrator.executor.taskresult import Outcome
from orchestrator.playbook.loops import loop_items
from orchestrator.templating import Templar

MAX_LOOP_ITEMS = 10_000


def items_of(loop: LoopSpec, templar: Templar, where: Location) -> list[Any]:
    """The loop's items rendered with ``templar``; more than ``MAX_LOOP_ITEMS`` is an error (at ``where``, the
    task or include)."""
    items = loop_items(loop, templar) or []
    if len(items) > MAX_LOOP_ITEMS:
        raise InputError(f"loop has {len(items)} items; the limit is {MAX_LOOP_ITEMS}", where)
    return items


def item_scope(loop: LoopSpec, items: Sequence[Any], index: int) -> dict[str, Any]:
    """The variables one item adds: the loop variable, ``ansible_loop_var``, ``index_var`` and, with
    ``loop_control: {extended: true}``, ``ansible_loop``."""
    scope: dict[str, Any] = {loop.var: items[index], "ansible_loop_var": loop.var}
    if loop.index_var:
        scope[loop.index_var] = index
    if loop.extended:
        scope["ansible_loop"] = loop_info(items, index)
    return scope


def loop_info(items: Sequence[Any], index: int) -> dict[str, Any]:
    """``ansible_loop`` of ``loop_control: {extended: true}``, with Ansible's keys."""
    length = len(items)
    info: dict[str, Any] = {
        "allitems": items,
        "index": index + 1,
        "index0": index,
        "revindex": length - index,
        "revindex0": length - index - 1,
        "first": index == 0,
        "last": index == length - 1,
        "length": length,
    }
    if index > 0:
        info["previtem"] = items[index - 1]
    if index < length - 1:
        info["nextitem"] = items[index + 1]
    return info


def looped_outcome(entries: list[dict[str, Any]], outcomes: Sequence[Outcome]) -> Outcome:
    """A looped task's outcome from its items' (``entries``: every item's registered data, skipped ones
    included; ``outcomes``: the items that ran): changed if any changed, failed with the first failure's
    message, code and diagnosis; skipped when no item ran."""
    if not outcomes:
        return Outcome(skipped=True, msg="All items skipped", data={"results": entries, "skipped": True})
    changed = any(o.changed for o in outcomes)
    first_fail = next((o for o in outcomes if o.failed), None)
    failed = first_fail is not None
    msg = first_fail.msg if first_fail else "All items completed"
    return Outcome(
        changed=changed,
        failed=failed,
        msg=msg,
        error_code=first_fail.error_code if first_fail else None,
        diagnosis=first_fail.diagnosis if first_fail else None,
        data={"results": entries, "changed": changed, "failed": failed, "msg": msg},
    )
