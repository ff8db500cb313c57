"""One host's pipeline: tasks in order, with when/loop/retries/until/register/changed_when/failed_when,
block/rescue/always, handlers, check mode.

One task is a straight line of values (``run_task``): prepare (keywords, templar) → invoke (the loop, the module
with retries/until, ``changed_when``/``failed_when`` after each attempt) → judge (``judge.verdict``: status,
ignore_errors, rescue) → record (``taskresult.task_result``, notify, register). An exception anywhere on that line
becomes how the task ended in ONE place (``failures.end_of_exception``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

from orchestrator.booleans import boolean
from orchestrator.errors import InputError, KmsfleetError
from orchestrator.executor.failures import end_of_exception
from orchestrator.executor.judge import attempts_allowed, retries_exhausted, verdict, with_attempts, with_conditions
from orchestrator.executor.loop import item_scope, items_of, looped_outcome
from orchestrator.executor.plan import BlockSpec, Node, PlaySpec, TaskSpec
from orchestrator.executor.prepare import render_args, resolve_keywords
from orchestrator.executor.reporter import Reporter
from orchestrator.executor.rolepick import pick_role, picks_role
from orchestrator.executor.state import HostState, RunOptions, facts_namespace
from orchestrator.executor.taskresult import Clock, Outcome, TaskEnd, TaskRef, task_result
from orchestrator.modules.base import REGISTRY, Module, ModuleArgs, ModuleContext, TaskFailed
from orchestrator.results.models import FailureKind, HostTaskResult, TaskStatus, thaw
from orchestrator.templating import OMIT, Templar, mark_unsafe, remove_omitted
from orchestrator.transport.winrm import Cancelled

MAX_RETRIES = 1000


@dataclass
class PlayRun:
    """What a host pipeline needs to know about the play being run (shared, read-only)."""

    play: PlaySpec
    play_vars: Mapping[str, Any]
    play_hosts: Sequence[str]
    magic: Mapping[str, Any]
    aborted: Callable[[], bool] = lambda: False
    abort: Callable[[], None] = lambda: None  # any_errors_fatal: stop the play for every host at once


class _Step(NamedTuple):
    """A task prepared on this host: its keywords concrete, its variables and the templar over them."""

    task: TaskSpec
    variables: dict[str, Any]
    templar: Templar


class _Call(NamedTuple):
    """A module ready to run: an instance, its checked arguments and its context on this host."""

    module: Module[Any]
    args: ModuleArgs
    ctx: ModuleContext


class _Stop(Exception):
    """Internal: the host must stop running tasks (unreachable, auth refused, interrupted)."""


class _BlockFailed(Exception):
    """Internal: a task in a block failed (not ignored), so rescue runs."""

    def __init__(self, result: HostTaskResult) -> None:
        self.result = result
        super().__init__(result.msg)


class HostPipeline:
    def __init__(
        self,
        state: HostState,
        options: RunOptions,
        reporter: Reporter,
        cancel: Any,
        should_run: Callable[[TaskSpec | BlockSpec], bool],
    ) -> None:
        self.state = state
        self.options = options
        self.reporter = reporter
        self.cancel = cancel
        self.should_run = should_run

    # ---------------------------------------------------------------- variables and templating

    def variables(
        self, run: PlayRun, scopes: Sequence[Mapping[str, Any]], defaults: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        s = self.state
        out: dict[str, Any] = dict(defaults or {})  # role defaults: Ansible's lowest precedence
        out.update(s.inventory_vars)
        out.update(s.facts)
        if s.facts:
            out["ansible_facts"] = facts_namespace(s.facts)
        out.update(run.play_vars)
        for scope in scopes:
            out.update(scope)
        out.update(s.scope)
        out.update(self.options.extra_vars)
        out.update(run.magic)
        out["inventory_hostname"] = s.name
        out["inventory_hostname_short"] = s.name.split(".")[0]
        out["group_names"] = sorted(g for g in s.groups if g not in ("all", "ungrouped"))
        out["ansible_check_mode"] = self.options.check
        out["ansible_diff_mode"] = self.options.diff
        out["omit"] = OMIT
        return out

    def templar(self, variables: Mapping[str, Any], run: PlayRun, context: str) -> Templar:
        return Templar(variables, base_dir=Path(run.play.base_dir), context=context)

    # ---------------------------------------------------------------- play

    def run_play(self, run: PlayRun, sections: Iterable[Sequence[Node]] | None = None) -> None:
        """Run every section of the play (or the given ones) for this host, each followed by its notified
        handlers."""
        if run.play.gather_facts and not self.state.facts.get("kmsfleet_facts_gathered"):
            setup = TaskSpec(name="Gathering Facts", module="setup", args={}, location=run.play.location)
            self.run_nodes([setup], run, (), in_block=False, forced=True)
        for section in sections if sections is not None else run.play.all_sections():
            self.run_nodes(section, run, (), in_block=False)
            self.flush_handlers(run)  # as Ansible: after pre_tasks, after tasks, after post_tasks

    def flush_handlers(self, run: PlayRun) -> None:
        if not self.state.notified or not self.state.active or self.state.ended_play is run.play:
            return
        notified, self.state.notified = self.state.notified, set()
        for handler in run.play.handlers:
            if handler.name in notified or notified.intersection(handler.listen):
                self.run_nodes([handler], run, (), in_block=False, forced=True)

    def run_nodes(
        self,
        nodes: Sequence[Node],
        run: PlayRun,
        scopes: tuple[Mapping[str, Any], ...],
        *,
        in_block: bool,
        rescuable: bool = False,
        forced: bool = False,
        inherited_ignore: bool = False,
    ) -> None:
        for node in nodes:
            if not self.state.active or self.state.ended_play is run.play:
                return
            if self.cancel.is_set():
                self.state.interrupted = True
                return
            if run.aborted():
                return
            if not forced and not self.should_run(node):
                continue
            if isinstance(node, BlockSpec):
                self.run_block(node, run, scopes, in_block=in_block, rescuable=rescuable)
            else:
                result = self.run_task(node, run, scopes, rescuable=rescuable, inherited_ignore=inherited_ignore)
                if (
                    in_block
                    and result is not None
                    and result.status is TaskStatus.FAILED
                    and not result.ignored
                    and rescuable
                ):
                    raise _BlockFailed(result)

    def run_block(
        self,
        block: BlockSpec,
        run: PlayRun,
        scopes: tuple[Mapping[str, Any], ...],
        *,
        in_block: bool,
        rescuable: bool,
    ) -> None:
        if block.loop is not None:
            self._run_block_loop(block, run, scopes, in_block=in_block, rescuable=rescuable)
            return
        inner = (*scopes, block.vars)
        nodes = self._block_nodes(block, run, inner)
        if nodes is None:
            return
        has_rescue = bool(block.rescue)
        try:
            self.run_nodes(
                nodes,
                run,
                inner,
                in_block=True,
                rescuable=has_rescue,
                inherited_ignore=boolean(block.ignore_errors),
            )
        except _BlockFailed as failed:
            # The failed task was recorded as rescued (it will not fail the host); now rescue runs.
            self.state.set_var("ansible_failed_task", {"name": failed.result.task, "module": failed.result.module})
            self.state.set_var(
                "ansible_failed_result",
                mark_unsafe(thaw(failed.result.data) | {"failed": True, "msg": failed.result.msg}),
            )
            try:
                self.run_nodes(block.rescue, run, inner, in_block=in_block, rescuable=rescuable)
            finally:
                if block.always and self.state.stopped is None and not self.state.interrupted:
                    self.run_nodes(block.always, run, inner, in_block=in_block, rescuable=rescuable, forced=False)
            return
        if block.always and self.state.stopped is None and not self.state.interrupted:
            # always runs even after an unrescued failure (failed is set, so lift it for the always section)
            was_failed = self.state.failed
            self.state.failed = False
            try:
                self.run_nodes(block.always, run, inner, in_block=in_block, rescuable=rescuable)
            finally:
                self.state.failed = self.state.failed or was_failed

    def _block_nodes(
        self, block: BlockSpec, run: PlayRun, inner: tuple[Mapping[str, Any], ...]
    ) -> tuple[Node, ...] | None:
        """The nodes of ``block`` to run on this host: None when its own ``when`` is false; for a templated
        ``include_role``, the one candidate role whose values its templates render to here."""
        if not block.when and not picks_role(block):
            return block.block
        templar = self.templar(self.variables(run, inner, block.defaults), run, f"block {block.name!r}")
        try:
            if block.when and not all(templar.evaluate(c) for c in block.when):
                return None
            return (pick_role(block, templar),) if picks_role(block) else block.block
        except KmsfleetError as exc:
            self._record_error(block.name, "include_role" if picks_role(block) else "block", run, exc)
            return None

    def _run_block_loop(
        self,
        block: BlockSpec,
        run: PlayRun,
        scopes: tuple[Mapping[str, Any], ...],
        *,
        in_block: bool,
        rescuable: bool,
    ) -> None:
        """``include_tasks`` with ``loop``: the file's tasks once per item, the item (and ``index_var``,
        ``ansible_loop``) visible to them as Ansible's include does."""
        assert block.loop is not None
        variables = self.variables(run, (*scopes, block.vars), block.defaults)
        templar = self.templar(variables, run, f"include {block.name!r} on host {self.state.name}")
        try:
            items = items_of(block.loop, templar, block.location)
        except KmsfleetError as exc:
            self._record_error(block.name, "include_tasks", run, exc)
            return
        for index in range(len(items)):
            if self.cancel.is_set() or not self.state.active or self.state.ended_play is run.play:
                return
            self.run_block(
                replace(block, loop=None, vars={**block.vars, **item_scope(block.loop, items, index)}),
                run,
                scopes,
                in_block=in_block,
                rescuable=rescuable,
            )

    # ---------------------------------------------------------------- one task

    def run_task(
        self,
        task: TaskSpec,
        run: PlayRun,
        scopes: tuple[Mapping[str, Any], ...],
        *,
        rescuable: bool = False,
        inherited_ignore: bool = False,
    ) -> HostTaskResult | None:
        """One task on this host: prepare → invoke → judge → record (``None`` for ``meta``, which leaves no
        result)."""
        variables = self.variables(run, (*scopes, task.vars), task.defaults)
        name = self._display_name(task, run, variables)
        if name != task.name:
            task = replace(task, name=name)
        clock = Clock.start()
        try:
            step = self._prepare(task, run, variables)
            task = step.task
            if task.module == "meta":
                self._meta(task, run, step.templar)
                return None
            outcome = self._invoke(step, run)
        except (_Stop, KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            return self._failed(task, run, exc, clock, rescuable=rescuable, inherited_ignore=inherited_ignore)
        end = verdict(outcome, ignore_errors=inherited_ignore or bool(task.ignore_errors), rescuable=rescuable)
        result = self._record(task, run, end, clock)
        # Values from the host are data, never templates: a PC answering "{{ ... }}" must not run code.
        self._register(task, result, outcome.registered())
        return result

    def _prepare(self, task: TaskSpec, run: PlayRun, variables: dict[str, Any]) -> _Step:
        templar = self.templar(variables, run, f'task "{task.name}" on host {self.state.name}')
        return _Step(resolve_keywords(task, templar, run.play.check_mode), variables, templar)

    def _invoke(self, step: _Step, run: PlayRun) -> Outcome:
        """The task's loop (each item with its own ``when``), or its ``when`` and the module once."""
        task = step.task
        if task.loop is not None:
            return self._looped(step, run, items_of(task.loop, step.templar, task.location))
        if task.when and not step.templar.evaluate(task.when):
            return Outcome.skipped_because("Conditional result was False")
        return self._run_module(task, run, step.variables, step.templar)

    def _looped(self, step: _Step, run: PlayRun, items: list[Any]) -> Outcome:
        task, loop = step.task, step.task.loop
        assert loop is not None
        variables = step.variables
        entries: list[dict[str, Any]] = []
        outcomes: list[Outcome] = []
        for index, item in enumerate(items):
            if self.cancel.is_set():
                raise Cancelled(self.state.name, "the run is stopping")
            item_vars = {**variables, **item_scope(loop, items, index)}
            templar = self.templar(item_vars, run, f'task "{task.name}" item {index} on host {self.state.name}')
            if task.when and not templar.evaluate(task.when):
                entries.append({"skipped": True, "changed": False, loop.var: item, "ansible_loop_var": loop.var})
                continue
            outcome = self._run_module(task, run, item_vars, templar)
            if task.module == "set_fact" and outcome.facts and not outcome.failed:
                # as in Ansible, the next item sees the facts this one set (acc: "{{ acc + [item] }}")
                variables = {**variables, **outcome.facts, **self.options.extra_vars}
            entry = {**outcome.data, loop.var: item, "ansible_loop_var": loop.var}
            if loop.label is not None:
                entry["_ansible_item_label"] = templar.render(loop.label)
            entries.append(entry)
            outcomes.append(outcome)
        return looped_outcome(entries, outcomes)

    def _run_module(self, task: TaskSpec, run: PlayRun, variables: dict[str, Any], templar: Templar) -> Outcome:
        """The module run until ``until`` holds or its retries run out (once without ``until``)."""
        call = self._module_call(task, run, variables, templar)
        if isinstance(call, Outcome):
            return call
        allowed = attempts_allowed(task, MAX_RETRIES)
        attempt = 0
        while True:
            attempt += 1
            outcome = self._attempt(task, call, run, variables)
            if task.until is None:
                return outcome
            outcome = with_attempts(outcome, attempt)
            until_vars = {**variables, task.register: outcome.data} if task.register else variables
            if self.templar(until_vars, run, f'until of task "{task.name}"').evaluate(task.until):
                return outcome
            if attempt >= allowed:
                return retries_exhausted(outcome)
            if self.cancel.wait(max(0.0, float(task.delay))):
                raise Cancelled(self.state.name, "the run is stopping")

    def _module_call(
        self, task: TaskSpec, run: PlayRun, variables: dict[str, Any], templar: Templar
    ) -> _Call | Outcome:
        """The module with its rendered, checked arguments, or the reason it does not run (check mode)."""
        module_cls = REGISTRY.get(task.module)
        if module_cls is None:
            raise InputError(f"unknown module '{task.module}'", task.location)
        args = remove_omitted(render_args(task, templar))
        try:
            parsed = module_cls.parse_args(args)
        except ValueError as exc:
            raise InputError(f"module {task.module}: {exc}", task.location) from None
        check = self.options.check if task.check_mode is None else bool(task.check_mode)
        if check and not module_cls.supports_check:
            return Outcome.skipped_because(f"{task.module} does not support check mode", shown=True)
        return _Call(module_cls(), parsed, self._context(task, run, variables, templar, check))

    def _context(
        self, task: TaskSpec, run: PlayRun, variables: dict[str, Any], templar: Templar, check: bool
    ) -> ModuleContext:
        state, options = self.state, self.options
        defaults = options.connection_defaults
        if run.play.remote_user:
            defaults = {**defaults, "ansible_user": run.play.remote_user}

        def connect() -> Any:
            return state.connection(templar.render, self.cancel, options.password, options.extra_vars, defaults)

        return ModuleContext(
            host=state.name,
            hostvars=variables,
            check_mode=check,
            diff=self.options.diff if task.diff is None else bool(task.diff),
            connect=connect,
            cancel=self.cancel,
            verbosity=self.options.verbosity,
            base_dir=run.play.base_dir,
            task_file=task.location.file,
            render=templar.render,
            evaluate=templar.evaluate,
            render_with=lambda value, extra: self.templar(
                {**variables, **extra}, run, f'task "{task.name}" on host {state.name}'
            ).render(value),
        )

    def _attempt(self, task: TaskSpec, call: _Call, run: PlayRun, variables: dict[str, Any]) -> Outcome:
        """One run of the module: its facts kept, then ``changed_when`` / ``failed_when``."""
        try:
            outcome = Outcome.of(call.module.run(call.ctx, call.args))
        except TaskFailed as failed:
            outcome = Outcome.of_failure(failed)
        if outcome.facts:
            if task.module in ("set_fact", "include_vars"):
                self.state.update_vars(outcome.facts)  # rendered from the playbook: templates already ran
            else:
                self.state.set_facts(mark_unsafe(outcome.facts))

        def evaluate(conditions: tuple[Any, ...], extra: dict[str, Any]) -> bool:
            scope = {**variables, **extra}
            return self.templar(scope, run, f'task "{task.name}" on host {self.state.name}').evaluate(conditions)

        return with_conditions(task, outcome, evaluate)

    # ---------------------------------------------------------------- record

    def _record(self, task: TaskSpec, run: PlayRun, end: TaskEnd, clock: Clock) -> HostTaskResult:
        """The task's result kept and reported; its handlers notified; any_errors_fatal applied."""
        ref = TaskRef(self.state.name, run.play.name, task.name, task.module, task.no_log)
        result = task_result(ref, end, clock)
        if self.state.add(result):
            self.reporter.task_done(result)
        if run.play.any_errors_fatal and (
            self.state.failed or (end.status is TaskStatus.UNREACHABLE and not end.ignored and not end.rescued)
        ):
            run.abort()  # as Ansible: no host starts another task of this play
        if result.status is TaskStatus.CHANGED and task.notify:
            self.state.notified.update(task.notify)
        return result

    def _register(self, task: TaskSpec, result: HostTaskResult, data: Mapping[str, Any]) -> None:
        """``register``: the task's data (hidden by ``no_log``) with its status flags, marked unsafe."""
        if not task.register:
            return
        reg = dict(thaw(result.data)) if result.no_log else dict(thaw(data))
        reg["changed"] = result.status is TaskStatus.CHANGED
        reg["failed"] = result.status is TaskStatus.FAILED
        reg["skipped"] = result.status is TaskStatus.SKIPPED
        reg["unreachable"] = result.status is TaskStatus.UNREACHABLE
        reg.setdefault("msg", result.msg)
        self.state.set_var(task.register, mark_unsafe(reg))

    def _failed(
        self,
        task: TaskSpec,
        run: PlayRun,
        exc: BaseException,
        clock: Clock,
        *,
        rescuable: bool,
        inherited_ignore: bool,
    ) -> HostTaskResult:
        """A task that raised: recorded as ``end_of_exception`` says; an interrupted or unreachable host (not
        ignored) stops here."""
        end = end_of_exception(exc, task.module)
        if isinstance(exc, Cancelled):
            self.state.interrupted = True
            self._record(task, run, end, clock)
            raise _Stop() from None
        if end.status is TaskStatus.UNREACHABLE:
            ignore = boolean(task.ignore_unreachable) or boolean(run.play.ignore_unreachable)
            end = end._replace(ignored=ignore and end.failure is not FailureKind.AUTH)
            if not end.ignored:
                self._record(task, run, end, clock)
                self.state.stopped = end.failure
                raise _Stop() from None
        else:
            ignored = inherited_ignore or task.ignore_errors is True
            end = end._replace(ignored=ignored, rescued=rescuable and not ignored)
        result = self._record(task, run, end, clock)
        # Ansible registers a failed task's result too (ignore_errors + a later check)
        self._register(task, result, _failure_data(result))
        return result

    def _record_error(self, name: str, module: str, run: PlayRun, exc: KmsfleetError) -> None:
        """A block's own ``when`` or loop failed: recorded as a task of that name."""
        task = TaskSpec(name=name, module=module, args={})
        self._failed(task, run, exc, Clock.start(), rescuable=False, inherited_ignore=False)

    # ---------------------------------------------------------------- meta and names

    def _meta(self, task: TaskSpec, run: PlayRun, templar: Templar) -> None:
        """``meta`` steers this host's play and, as in Ansible, leaves no result: ``flush_handlers`` runs the
        notified handlers now; ``end_host`` (and ``end_play``, which ends the play for every host that reaches
        it) stops this host's play without failing it, skipping its pending handlers; ``noop`` does nothing."""
        action = str(templar.render(task.args.get("action", "")))
        if action == "flush_handlers":
            self.flush_handlers(run)
            return
        if task.when and not all(templar.evaluate(c) for c in task.when):
            return
        if action in ("end_host", "end_play"):
            self.state.ended_play = run.play
            self.state.notified.clear()

    def _display_name(self, task: TaskSpec, run: PlayRun, variables: Mapping[str, Any]) -> str:
        """The task's name as Ansible shows it: templated (ansible-core 2.19 shows ``Room {{ inventory_hostname }}``
        as ``Room localhost`` and, in a looped include_tasks, ``Service {{ svc.name }}`` once per service). A name
        that cannot be rendered yet (the task's own loop item) or that would show a secret stays as written."""
        if "{{" not in task.name:
            return task.name
        try:
            value, secret = self.templar(variables, run, f'name of task "{task.name}"').render_tracked(task.name)
        except KmsfleetError:
            return task.name
        return value if isinstance(value, str) and not secret else task.name


def _failure_data(result: HostTaskResult) -> dict[str, Any]:
    """What ``register`` keeps of a task that raised: its message, code and diagnosis."""
    data: dict[str, Any] = {"msg": result.msg}
    if result.error_code is not None:
        data["error_code"] = result.error_hex
    if result.diagnosis:
        data["diagnosis"] = result.diagnosis
    return data


def stop_exception() -> type[Exception]:
    return _Stop
