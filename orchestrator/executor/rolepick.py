"""Run time half of a templated ``include_role``: pick, per host and loop item, the candidate role the loader
read into the plan (``orchestrator.playbook.dynamic_roles`` explains the compile time half)."""

from __future__ import annotations

from orchestrator.errors import TemplateError
from orchestrator.executor.plan import BlockSpec, Node
from orchestrator.playbook.dynamic_roles import role_arg
from orchestrator.templating import Templar


def picks_role(block: BlockSpec) -> bool:
    """Whether ``block`` is a templated include_role: its nodes are candidate roles, each with a ``pick``."""
    return bool(block.block) and all(isinstance(n, BlockSpec) and n.pick for n in block.block)


def pick_role(block: BlockSpec, templar: Templar) -> Node:
    """The candidate whose (argument, template) pairs all render to its values with ``templar``; a value that
    no candidate has (e.g. a variable changed by ``set_fact`` since the playbook was read) is an error naming
    it and the candidates."""
    rendered: dict[str, str] = {}
    for node in block.block:
        assert isinstance(node, BlockSpec)
        for key, template, _ in node.pick:
            if key not in rendered:
                rendered[key] = role_arg(key, templar.render(template))
        if all(rendered[key] == value for key, _, value in node.pick):
            return node
    known = "; ".join(", ".join(f"{k}={v}" for k, _, v in n.pick) for n in block.block if isinstance(n, BlockSpec))
    got = ", ".join(f"{k}={v}" for k, v in rendered.items())
    raise TemplateError(
        f"include_role resolved to {got} on this host, which is not among the roles read before the run ({known})",
        block.location,
        hint="the role's name and *_from files must come from play vars, block/role vars or the loop's items",
    )


__all__ = ["pick_role", "picks_role"]
