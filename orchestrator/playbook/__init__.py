"""Playbooks: YAML → validated, frozen models that remember file:line:column.

playbook = load_playbook("playbooks/site.yml", registry)   # registry implements ModuleCatalog
for play in playbook.plays:
    for task in iter_tasks(play.tasks):
        if should_run(task, tags, skip_tags): ...
"""

from orchestrator.playbook.catalog import ModuleCatalog, ModuleSpec, did_you_mean
from orchestrator.playbook.loader import iter_tasks, load_playbook
from orchestrator.playbook.loops import LoopSpec, loop_items, loop_spec
from orchestrator.playbook.models import (
    Block,
    Condition,
    LoopControl,
    Play,
    Playbook,
    Task,
    TaskNode,
    VarsFileRef,
)
from orchestrator.playbook.prompts import PromptSpec
from orchestrator.playbook.tags import should_run
from orchestrator.playbook.varsfiles import VarsFileSpec, load_vars_files, vars_file_specs
from orchestrator.varsfile import load_vars_file

__all__ = [
    "Block",
    "Condition",
    "LoopControl",
    "LoopSpec",
    "ModuleCatalog",
    "ModuleSpec",
    "Play",
    "Playbook",
    "PromptSpec",
    "Task",
    "TaskNode",
    "VarsFileRef",
    "VarsFileSpec",
    "did_you_mean",
    "iter_tasks",
    "load_playbook",
    "load_vars_file",
    "load_vars_files",
    "loop_items",
    "loop_spec",
    "should_run",
    "vars_file_specs",
]
