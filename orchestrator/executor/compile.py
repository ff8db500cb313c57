"""Playbook models (``orchestrator.playbook``) → the executor's plan (``executor.plan``).

The loader already computed effective values (a task's ``when``, ``tags`` and ``vars`` include what its blocks
and imports gave it), so blocks here carry only their structure and rescue/always sections.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from orchestrator.executor.plan import BlockSpec, Node, Plan, PlaySpec, TaskSpec
from orchestrator.playbook.loops import loop_spec
from orchestrator.playbook.models import Block, Play, Playbook, Task
from orchestrator.playbook.prompts import prompt_specs
from orchestrator.playbook.varsfiles import vars_file_specs


def _conds(conditions: Any) -> tuple[Any, ...] | None:
    if conditions is None:
        return None
    return tuple(c.expr for c in conditions)


def _inherit(own: Any, parent: Any, default: Any) -> Any:
    if own is not None:
        return own
    if parent is not None:
        return parent
    return default


def compile_task(task: Task, parent: dict[str, Any]) -> TaskSpec:
    return TaskSpec(
        name=task.name or task.module,
        module=task.module,
        args=dict(task.args),
        location=task.location,
        when=_conds(task.when) or (),
        register=task.register,
        loop=loop_spec(task),
        retries=task.retries,
        until=_conds(task.until),
        delay=task.delay if task.delay is not None else 5.0,
        ignore_errors=_inherit(task.ignore_errors, parent.get("ignore_errors"), False),
        ignore_unreachable=_inherit(task.ignore_unreachable, parent.get("ignore_unreachable"), False),
        changed_when=_conds(task.changed_when),
        failed_when=_conds(task.failed_when),
        no_log=_inherit(task.no_log, parent.get("no_log"), False),
        notify=tuple(task.notify),
        vars=dict(task.vars),
        check_mode=_inherit(task.check_mode, parent.get("check_mode"), None),
        diff=_inherit(task.diff, parent.get("diff"), None),
        timeout=_inherit(task.timeout, parent.get("timeout"), None),
        tags=frozenset(task.tags),
        listen=tuple(task.listen),
        defaults=dict(task.defaults),
    )


def _inherited(node: Block | Play, parent: dict[str, Any]) -> dict[str, Any]:
    out = dict(parent)
    for key in ("ignore_errors", "ignore_unreachable", "no_log", "check_mode", "diff", "timeout"):
        value = getattr(node, key, None)
        if value is not None:
            out[key] = value
    return out


def compile_nodes(nodes: Any, parent: dict[str, Any]) -> tuple[Node, ...]:
    out: list[Node] = []
    for node in nodes:
        if isinstance(node, Block):
            inner = _inherited(node, parent)
            out.append(
                BlockSpec(
                    name=node.name or node.origin,
                    block=compile_nodes(node.block, inner),
                    rescue=compile_nodes(node.rescue, inner),
                    always=compile_nodes(node.always, inner),
                    location=node.location,
                    tags=frozenset(node.tags),
                    loop=loop_spec(node),
                    defaults=dict(node.defaults),
                    when=_conds(node.own_when) or (),
                    # a dynamic include_role renders its role's name and its own when with its vars
                    vars=dict(node.vars) if node.origin == "include_role" else {},
                    pick=tuple(node.pick),
                )
            )
        else:
            out.append(compile_task(node, parent))
    return tuple(out)


def _flatten_handlers(nodes: tuple[Node, ...]) -> tuple[TaskSpec, ...]:
    out: list[TaskSpec] = []
    for node in nodes:
        if isinstance(node, BlockSpec):
            out.extend(_flatten_handlers((*node.block, *node.rescue, *node.always)))
        else:
            out.append(node)
    return tuple(out)


def compile_play(play: Play) -> PlaySpec:
    parent = _inherited(play, {})
    hosts = play.hosts if isinstance(play.hosts, str) else ",".join(str(h) for h in play.hosts or [])
    return PlaySpec(
        name=play.name or hosts,
        hosts=hosts,
        pre_tasks=compile_nodes(play.pre_tasks, parent),
        tasks=compile_nodes(play.tasks, parent),
        post_tasks=compile_nodes(play.post_tasks, parent),
        handlers=_flatten_handlers(compile_nodes(play.handlers, parent)),
        vars=dict(play.vars),
        vars_files=vars_file_specs(play),
        gather_facts=True if play.gather_facts is None else play.gather_facts,
        serial=tuple(play.serial or ()),
        strategy=play.strategy,
        any_errors_fatal=bool(play.any_errors_fatal),
        max_fail_percentage=play.max_fail_percentage,
        ignore_unreachable=play.ignore_unreachable if play.ignore_unreachable is not None else False,
        check_mode=play.check_mode,
        wake_on_lan=play.wake_on_lan,
        remote_user=play.remote_user,
        vars_prompt=prompt_specs(play),
        location=play.location,
        base_dir=str(play.base_dir),
        tags=frozenset(play.tags),
    )


def compile_playbook(playbook: Playbook) -> Plan:
    return Plan(path=str(playbook.path), plays=tuple(compile_play(p) for p in playbook.plays))


def render_play_hosts(plan: Plan, extra_vars: Mapping[str, Any]) -> Plan:
    """Plays whose ``hosts:`` is a template (``hosts: "{{ target | default('all') }}"``) get their pattern, as
    Ansible renders it, from the play's ``vars`` and the ``-e`` extra variables."""
    from orchestrator.templating import Templar, is_template

    if not any(is_template(play.hosts) for play in plan.plays):
        return plan
    plays = []
    for play in plan.plays:
        if is_template(play.hosts):
            rendered = Templar({**play.vars, **extra_vars}, context=f"hosts of play {play.name!r}").render(play.hosts)
            pattern = ",".join(str(p) for p in rendered) if isinstance(rendered, list) else str(rendered)
            plays.append(dataclasses.replace(play, hosts=pattern))
        else:
            plays.append(play)
    return dataclasses.replace(plan, plays=tuple(plays))
