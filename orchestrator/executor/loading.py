"""A playbook as the executor runs it: the compiled plan (roles found on ansible.cfg's path) and each play's
variables with its ``vars_files``. Below ``api`` so every engine reads ``vars_files`` the same way (a distributed
run's controller reads them into the plan before sending it; workers read no playbook file)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator.executor.compile import compile_playbook
from orchestrator.executor.plan import Plan, PlaySpec
from orchestrator.modules.base import REGISTRY


def load_plan(
    playbook: str | Path, roles_path: Sequence[Path] | None = None, extra_vars: Mapping[str, Any] | None = None
) -> Plan:
    """The compiled plan of a playbook; roles are looked up on ``roles_path`` (default: ansible.cfg's
    ``roles_path`` / ``ANSIBLE_ROLES_PATH``) after the playbook's own ``roles/`` folder; ``extra_vars`` (``-e``)
    can name the roles a templated ``include_role`` runs."""
    from orchestrator.ansiblecfg import load_config
    from orchestrator.playbook.loader import load_playbook

    if roles_path is None:
        roles_path = load_config().roles_path
    return compile_playbook(load_playbook(Path(playbook), REGISTRY, roles_path, extra_vars))


def play_vars_loader(play: PlaySpec, extra_vars: Mapping[str, Any]) -> Mapping[str, Any]:
    """A play's ``vars`` plus its ``vars_files`` (paths may be templates over play and extra vars)."""
    if not play.vars_files:
        return play.vars
    from orchestrator.playbook.varsfiles import load_vars_files
    from orchestrator.templating import Templar

    templar = Templar({**play.vars, **extra_vars}, base_dir=Path(play.base_dir), context=f"vars_files of {play.name}")
    merged = dict(play.vars)
    merged.update(load_vars_files(play.vars_files, templar))
    return merged
