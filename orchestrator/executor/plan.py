"""What the executor runs: plays, blocks and tasks as plain frozen values.

The playbook package validates YAML into its own models; ``compile.compile_playbook`` turns them into these so the
executor depends on a small, stable shape (and tests can build plans directly). The plan is closed: it holds only
plain values (text, numbers, booleans, None, tuples, frozensets, the raw YAML mappings and lists of arguments and
variables, and the small frozen values below), never a loader object, so it pickles and can be shipped to a worker
process as it is; a compiled plan and a hand-built one take the same paths through the executor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from orchestrator.errors import Location
from orchestrator.playbook.loops import LoopSpec
from orchestrator.playbook.prompts import PromptSpec
from orchestrator.playbook.varsfiles import VarsFileSpec

__all__ = ["BlockSpec", "LoopSpec", "Node", "Plan", "PlaySpec", "PromptSpec", "TaskSpec", "VarsFileSpec"]

Node = Union["TaskSpec", "BlockSpec"]


@dataclass(frozen=True)
class TaskSpec:
    name: str
    module: str
    args: Mapping[str, Any]
    location: Location = field(default_factory=lambda: Location("<task>"))
    when: tuple[Any, ...] = ()
    register: str | None = None
    loop: LoopSpec | None = None  # None = no loop
    retries: int | str | None = None  # str = a template, resolved per host
    until: tuple[Any, ...] | None = None
    delay: float | str = 5.0
    ignore_errors: bool | str = False
    ignore_unreachable: bool | str = False
    changed_when: tuple[Any, ...] | None = None
    failed_when: tuple[Any, ...] | None = None
    no_log: bool | str = False
    notify: tuple[str, ...] = ()
    vars: Mapping[str, Any] = field(default_factory=dict)
    check_mode: bool | str | None = None
    diff: bool | str | None = None
    timeout: float | str | None = None
    tags: frozenset[str] = frozenset()
    listen: tuple[str, ...] = ()  # handlers only
    defaults: Mapping[str, Any] = field(default_factory=dict)  # role defaults: below the inventory


@dataclass(frozen=True)
class BlockSpec:
    name: str
    block: tuple[Node, ...]
    rescue: tuple[Node, ...] = ()
    always: tuple[Node, ...] = ()
    location: Location = field(default_factory=lambda: Location("<block>"))
    when: tuple[Any, ...] = ()
    vars: Mapping[str, Any] = field(default_factory=dict)
    tags: frozenset[str] = frozenset()
    ignore_errors: bool | str = False
    ignore_unreachable: bool | str = False
    no_log: bool | str = False
    check_mode: bool | str | None = None
    loop: LoopSpec | None = None  # include_tasks with loop: the block runs once per item (None = once)
    defaults: Mapping[str, Any] = field(default_factory=dict)  # role defaults, to render the loop
    # a candidate role of a templated include_role: runs where each (argument, template) renders to its value
    pick: tuple[tuple[str, Any, str], ...] = ()


@dataclass(frozen=True)
class PlaySpec:
    name: str
    hosts: str
    tasks: tuple[Node, ...] = ()
    pre_tasks: tuple[Node, ...] = ()
    post_tasks: tuple[Node, ...] = ()
    handlers: tuple[TaskSpec, ...] = ()
    vars: Mapping[str, Any] = field(default_factory=dict)
    vars_files: tuple[VarsFileSpec, ...] = ()  # loaded per run by executor.loading.play_vars_loader
    gather_facts: bool = True
    serial: tuple[int | str, ...] = ()
    strategy: str | None = None
    any_errors_fatal: bool = False
    max_fail_percentage: float | None = None
    ignore_unreachable: bool | str = False
    check_mode: bool | str | None = None
    wake_on_lan: bool = False
    remote_user: str | None = None  # WinRM user for hosts without ansible_user (play remote_user / user)
    vars_prompt: tuple[PromptSpec, ...] = ()  # asked by the API before the run
    location: Location = field(default_factory=lambda: Location("<play>"))
    base_dir: str = "."
    tags: frozenset[str] = frozenset()

    def all_sections(self) -> tuple[tuple[Node, ...], ...]:
        return (self.pre_tasks, self.tasks, self.post_tasks)


@dataclass(frozen=True)
class Plan:
    path: str
    plays: tuple[PlaySpec, ...]
