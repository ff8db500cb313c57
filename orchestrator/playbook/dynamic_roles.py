"""``include_role`` as ansible-core runs it — dynamic, per host and loop item — inside a closed plan.

ansible-core evaluates an ``include_role`` when a host reaches it (``lib/ansible/playbook/role_include.py``,
``IncludeRole.get_block_list``; the includes of each host and item are gathered by
``lib/ansible/playbook/included_file.py``, ``IncludedFile.process_include_results``, which templates the role's
``name`` and ``*_from`` per item). kmsfleet reads every role before contacting a PC (and a ``--distributed``
worker has no roles folder), so the loader computes here the values a templated ``name``/``*_from`` can take —
from the play's vars, the enclosing block/role vars, role defaults, ``-e`` and the items of a loop known before
the run — reads each candidate role into the plan (``BlockSpec.pick``), and at run time the executor picks, per host
and item, the candidate whose values the templates render to (``executor.rolepick.pick_role``). A template that
needs something only the PC knows (a fact, a registered result, an inventory variable) is refused before the run,
saying why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.errors import InputError, KmsfleetError, Location
from orchestrator.playbook.loops import LoopSpec, loop_items
from orchestrator.templating import Templar, is_template

#: the include_role arguments that name files (and may be templates)
ROLE_ARGS = ("name", "tasks_from", "defaults_from", "vars_from", "handlers_from")
#: a templated include_role may resolve to at most this many distinct roles/files (each is read into the plan)
MAX_CANDIDATES = 100
#: items of a loop over include_role, read before the run
MAX_ITEMS = 10_000

_WHY = (
    "kmsfleet reads every role before contacting a PC, so a templated role name, *_from file or include_role "
    "loop may only use play vars, block/role vars, role defaults, -e and literal loop items — not facts, "
    "registered results or inventory variables"
)


def role_arg(key: str, value: Any) -> str:
    """An include_role argument as compared: text, stripped; ``*_from`` without ``.yml``/``.yaml``."""
    text = str(value).strip()
    if key != "name":
        text = text.removesuffix(".yml").removesuffix(".yaml")
    return text


def static_scopes(loop: LoopSpec | None, scope: Mapping[str, Any], at: Location) -> list[dict[str, Any]]:
    """The variables each run of the include sees before the run: one scope, or one per loop item (the loop
    variable, ``ansible_loop_var`` and the ``index_var``; ``ansible_loop`` of ``extended`` is left out)."""
    if loop is None:
        return [dict(scope)]
    try:
        items = loop_items(loop, Templar(dict(scope), context="include_role loop")) or []
    except KmsfleetError as exc:
        raise InputError(
            f"the items of this include_role loop are not known before the run ({_first_line(exc)})",
            loop.location or at,
            hint=_WHY,
        ) from None
    if len(items) > MAX_ITEMS:
        raise InputError(f"include_role loop has {len(items)} items; the limit is {MAX_ITEMS}", loop.location or at)
    scopes = []
    for index, item in enumerate(items):
        extra: dict[str, Any] = {loop.var: item, "ansible_loop_var": loop.var}
        if loop.index_var:
            extra[loop.index_var] = index
        scopes.append({**scope, **extra})
    return scopes


def candidates(
    args: Mapping[str, Any],
    scopes: Sequence[Mapping[str, Any]],
    where: Mapping[str, Location],
    when: Sequence[Any] = (),
) -> list[dict[str, str]]:
    """The distinct values (``role_arg`` form) the templated ``args`` take over ``scopes``, in first-seen order.
    ``where`` gives each argument's location for the refusal. An item whose values cannot be rendered is left
    out when the include's own ``when`` is already false for it (``loop: [{role: a}, {}]`` with
    ``when: item.role is defined``), as ansible-core never templates a skipped include."""
    found: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
    for scope in scopes:
        templar = Templar(dict(scope), context="include_role")
        try:
            values = {
                k: role_arg(k, _render(templar, k, v, where[k]) if is_template(v) else v) for k, v in args.items()
            }
        except InputError:
            if when and _false(templar, when):
                continue
            raise
        found.setdefault(tuple(sorted(values.items())), values)
        if len(found) > MAX_CANDIDATES:
            raise InputError(
                f"this include_role resolves to more than {MAX_CANDIDATES} different roles/files",
                where["name"],
                hint="split the loop",
            )
    return list(found.values())


def _false(templar: Templar, when: Sequence[Any]) -> bool:
    """Whether ``when`` is known to be false before the run (an error means it is not known)."""
    try:
        return not templar.evaluate(tuple(when))
    except KmsfleetError:
        return False


def _render(templar: Templar, key: str, raw: Any, at: Location) -> Any:
    try:
        value = templar.render(raw)
    except KmsfleetError as exc:
        raise InputError(
            f"include_role '{key}: {raw}' cannot be resolved before the run ({_first_line(exc)})", at, hint=_WHY
        ) from None
    if not isinstance(value, str | int | float) or not str(value).strip():
        raise InputError(f"include_role '{key}: {raw}' gives {value!r}, not a file or role name", at)
    return value


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return str(text).splitlines()[0][:200] if text else type(exc).__name__


__all__ = ["MAX_CANDIDATES", "ROLE_ARGS", "candidates", "role_arg", "static_scopes"]
