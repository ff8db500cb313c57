"""One host's pipeline: tasks in order, with when/loop/retries/until/register/changed_when/failed_when,
block/rescue/always, handlers, check mode — and the ONE place where exceptions become a task status.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from orchestrator.booleans import boolean
from orchestrator.errors import InputError, KmsfleetError, Location
from orchestrator.executor.plan import BlockSpec, Node, PlaySpec, TaskSpec
from orchestrator.executor.reporter import Reporter
from orchestrator.executor.state import HostState, RunOptions, facts_namespace
from orchestrator.modules.base import REGISTRY, ModuleContext, ModuleOutcome, TaskFailed
from orchestrator.redact import MASK, redact, redact_text, register_secret_name, register_secret_values
from orchestrator.results.models import FailureKind, HostTaskResult, TaskStatus, thaw, utcnow
from orchestrator.templating import OMIT, mark_unsafe, remove_omitted
from orchestrator.transport.errors import (
    AuthFailed,
    OperationTimeout,
    ProtocolError,
    TransportError,
    Unreachable,
    WSManFault,
)
from orchestrator.transport.winrm import Cancelled

NO_LOG_MSG = "the output has been hidden due to the fact that 'no_log: true' was specified for this result"
MAX_LOOP_ITEMS = 10_000
MAX_RETRIES = 1000

#: Arguments that only show text to the operator: made from a secret, they are masked whole.
_MESSAGE_ARGS: dict[str, frozenset[str]] = {
    "debug": frozenset({"msg"}),
    "fail": frozenset({"msg"}),
    "assert": frozenset({"msg", "fail_msg", "success_msg"}),
}


def diagnosis_for(code: int | None, key: str | None) -> str | None:
    """The knowledge-catalogue key to store with a failed result."""
    try:
        from orchestrator.knowledge import catalogue
    except ImportError:  # pragma: no cover - the catalogue ships with kmsfleet
        return key
    try:
        return catalogue.diagnose(code, key)
    except Exception:
        return key


@dataclass
class PlayRun:
    """What a host pipeline needs to know about the play being run (shared, read-only)."""

    play: PlaySpec
    play_vars: Mapping[str, Any]
    play_hosts: Sequence[str]
    magic: Mapping[str, Any]
    aborted: Callable[[], bool] = lambda: False
    abort: Callable[[], None] = lambda: None  # any_errors_fatal: stop the play for every host at once


class _Stop(Exception):
    """Internal: the host must stop running tasks (unreachable, auth refused, interrupted)."""


class _BlockFailed(Exception):
    """Internal: a task in a block failed (not ignored), so rescue runs."""

    def __init__(self, result: HostTaskResult) -> None:
        self.result = result
        super().__init__(result.msg)


def _loop_info(items: Sequence[Any], index: int) -> dict[str, Any]:
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


def _checked_items(value: Any, name: str, location: Location) -> list[Any]:
    """A rendered ``loop:`` value as its items: a list, bounded."""
    if isinstance(value, Mapping):
        raise InputError(f"loop over a mapping needs dict2items in task {name!r}", location)
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise InputError(f"loop must be a list in task {name!r}, got {type(value).__name__}", location)
    items = list(value)
    if len(items) > MAX_LOOP_ITEMS:
        raise InputError(f"loop has {len(items)} items; the limit is {MAX_LOOP_ITEMS}", location)
    return items


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

    def templar(self, variables: Mapping[str, Any], run: PlayRun, context: str) -> Any:
        from orchestrator.templating import Templar

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
        if block.when:
            variables = self.variables(run, inner)
            try:
                ok = all(self.templar(variables, run, f"block {block.name!r}").evaluate(c) for c in block.when)
            except KmsfleetError as exc:
                self._record_error(block.name, "block", run, exc)
                return
            if not ok:
                return
        has_rescue = bool(block.rescue)
        try:
            self.run_nodes(
                block.block,
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
        variables = self.variables(run, (*scopes, block.vars), block.defaults)
        templar = self.templar(variables, run, f"include {block.name!r} on host {self.state.name}")
        try:
            if block.source is not None:
                from orchestrator.playbook.loops import loop_items

                items = _checked_items(loop_items(block.source, templar) or [], block.name, block.location)
            else:
                items = _checked_items(templar.render(block.loop), block.name, block.location)
        except KmsfleetError as exc:
            self._record_error(block.name, "include_tasks", run, exc)
            return
        for index, item in enumerate(items):
            if self.cancel.is_set() or not self.state.active or self.state.ended_play is run.play:
                return
            scope: dict[str, Any] = {block.loop_var: item, "ansible_loop_var": block.loop_var}
            if block.index_var:
                scope[block.index_var] = index
            if block.extended:
                scope["ansible_loop"] = _loop_info(items, index)
            self.run_block(
                replace(block, loop=None, vars={**block.vars, **scope}),
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
        state = self.state
        scopes = (*scopes, task.vars)
        variables = self.variables(run, scopes, task.defaults)
        task = replace(task, name=self._display_name(task, run, variables))
        context = f'task "{task.name}" on host {state.name}'
        started = utcnow()
        t0 = time.monotonic()
        try:
            templar = self.templar(variables, run, context)
            task = self._resolve(task, templar, run)
            if task.module == "meta":
                self._meta(task, run, templar)
                return None
            items: list[Any] | None = None
            if task.loop is not None:
                items = self._loop_items(task, templar)
            if items is None:
                if task.when and not all(templar.evaluate(c) for c in task.when):
                    skipped = self._emit(task, run, TaskStatus.SKIPPED, started, t0, msg="Conditional result was False")
                    if task.register:  # Ansible registers skipped tasks too
                        why = {"skip_reason": "Conditional result was False"}
                        state.set_var(task.register, self._registered(skipped, why))
                    return skipped
                outcome, data = self._execute(task, run, variables, templar)
            else:
                outcome, data = self._execute_loop(task, run, variables, items)
        except _Stop:
            raise
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            failed = self._from_exception(task, run, exc, started, t0, rescuable, inherited_ignore)
            if task.register:  # Ansible registers a failed task's result too (ignore_errors + a later check)
                reg: dict[str, Any] = {"msg": failed.msg}
                if failed.error_code is not None:
                    reg["error_code"] = failed.error_hex
                if failed.diagnosis:
                    reg["diagnosis"] = failed.diagnosis
                state.set_var(task.register, mark_unsafe(self._registered(failed, reg)))
            return failed
        if outcome.skipped:
            result = self._emit(task, run, TaskStatus.SKIPPED, started, t0, msg=outcome.msg, data=data)
        else:
            status = TaskStatus.FAILED if outcome.failed else TaskStatus.CHANGED if outcome.changed else TaskStatus.OK
            ignored = status is TaskStatus.FAILED and (
                inherited_ignore or self._ignore_errors(task, templar if "templar" in locals() else None)
            )
            result = self._emit(
                task,
                run,
                status,
                started,
                t0,
                msg=outcome.msg,
                data=data,
                error_code=outcome.error_code,
                diagnosis=outcome.diagnosis
                or (diagnosis_for(outcome.error_code, None) if status is TaskStatus.FAILED else None),
                failure=FailureKind.TASK if status is TaskStatus.FAILED else None,
                ignored=ignored,
                rescued=rescuable and status is TaskStatus.FAILED and not ignored,
                diff=outcome.diff,
                licences=outcome.licences,
            )
            if status is TaskStatus.CHANGED and task.notify:
                state.notified.update(task.notify)
        if task.register:
            # Values from the host are data, never templates: a PC answering "{{ ... }}" must not run code.
            state.set_var(task.register, mark_unsafe(self._registered(result, data)))
        return result

    def _meta(self, task: TaskSpec, run: PlayRun, templar: Any) -> None:
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

    def _resolve(self, task: TaskSpec, templar: Any, run: PlayRun) -> TaskSpec:
        """Keywords that may be templates (retries, delay, ignore_errors, no_log, …) → concrete values."""
        changes: dict[str, Any] = {}

        def flag(value: Any) -> Any:
            return value if value is None or isinstance(value, bool) else bool(templar.evaluate(value))

        def number(value: Any, kind: type) -> Any:
            if value is None or isinstance(value, int | float):
                return value
            rendered = templar.render(value)
            try:
                return kind(rendered)
            except (TypeError, ValueError):
                raise InputError(f"expected a number, got {rendered!r}", task.location) from None

        for key in ("ignore_errors", "ignore_unreachable", "no_log", "check_mode", "diff"):
            value = getattr(task, key)
            if isinstance(value, str):
                changes[key] = flag(value)
        for key, kind in (("retries", int), ("delay", float), ("timeout", float)):
            value = getattr(task, key)
            if isinstance(value, str):
                changes[key] = number(value, kind)
        if task.check_mode is None and run.play.check_mode is not None:
            changes["check_mode"] = flag(run.play.check_mode)
        return replace(task, **changes) if changes else task

    def _ignore_errors(self, task: TaskSpec, templar: Any) -> bool:
        value = task.ignore_errors
        if isinstance(value, str) and templar is not None:
            return bool(templar.evaluate(value))
        return bool(value)

    def _loop_items(self, task: TaskSpec, templar: Any) -> list[Any]:
        if task.source is not None:
            from orchestrator.playbook.loops import loop_items

            found = loop_items(task.source, templar)
            items = found if found is not None else []
            if len(items) > MAX_LOOP_ITEMS:
                raise InputError(f"loop has {len(items)} items; the limit is {MAX_LOOP_ITEMS}", task.location)
            return items
        return _checked_items(templar.render(task.loop), task.name, task.location)

    def _execute_loop(
        self, task: TaskSpec, run: PlayRun, variables: dict[str, Any], items: list[Any]
    ) -> tuple[ModuleOutcome, dict[str, Any]]:
        results: list[dict[str, Any]] = []
        changed = failed = False
        first_fail: ModuleOutcome | None = None
        ran = 0
        for index, item in enumerate(items):
            if self.cancel.is_set():
                raise Cancelled(self.state.name, "the run is stopping")
            item_vars = dict(variables)
            item_vars[task.loop_var] = item
            item_vars["ansible_loop_var"] = task.loop_var
            if task.index_var:
                item_vars[task.index_var] = index
            if task.extended:
                item_vars["ansible_loop"] = _loop_info(items, index)
            templar = self.templar(item_vars, run, f'task "{task.name}" item {index} on host {self.state.name}')
            if task.when and not all(templar.evaluate(c) for c in task.when):
                results.append(
                    {"skipped": True, "changed": False, task.loop_var: item, "ansible_loop_var": task.loop_var}
                )
                continue
            ran += 1
            try:
                outcome, data = self._execute(task, run, item_vars, templar)
            except TaskFailed as tf:
                outcome = ModuleOutcome(failed=True, msg=tf.msg, error_code=tf.error_code, diagnosis=tf.diagnosis)
                data = {**tf.data, "failed": True, "msg": tf.msg}
            if task.module == "set_fact" and outcome.facts and not outcome.failed:
                # as in Ansible, the next item sees the facts this one set (acc: "{{ acc + [item] }}")
                variables = {**variables, **outcome.facts, **self.options.extra_vars}
            entry = {**data, task.loop_var: item, "ansible_loop_var": task.loop_var}
            if task.label is not None:
                entry["_ansible_item_label"] = templar.render(task.label)
            results.append(entry)
            changed = changed or outcome.changed
            if outcome.failed:
                failed = True
                first_fail = first_fail or outcome
        if ran == 0:
            return ModuleOutcome(skipped=True, msg="All items skipped"), {"results": results, "skipped": True}
        msg = first_fail.msg if first_fail else "All items completed"
        return (
            ModuleOutcome(
                changed=changed,
                failed=failed,
                msg=msg,
                error_code=first_fail.error_code if first_fail else None,
                diagnosis=first_fail.diagnosis if first_fail else None,
            ),
            {"results": results, "changed": changed, "failed": failed, "msg": msg},
        )

    def _execute(
        self, task: TaskSpec, run: PlayRun, variables: dict[str, Any], templar: Any
    ) -> tuple[ModuleOutcome, dict[str, Any]]:
        """Run the module (with retries/until), then apply changed_when/failed_when."""
        module_cls = REGISTRY.get(task.module)
        if module_cls is None:
            raise InputError(f"unknown module '{task.module}'", task.location)
        args = remove_omitted(self._render_args(task, templar))
        try:
            parsed = module_cls.parse_args(args)
        except ValueError as exc:
            raise InputError(f"module {task.module}: {exc}", task.location) from None
        check = self.options.check if task.check_mode is None else bool(task.check_mode)
        if check and not module_cls.supports_check:
            return ModuleOutcome(skipped=True, msg=f"{task.module} does not support check mode"), {
                "skipped": True,
                "msg": f"{task.module} does not support check mode",
            }
        module = module_cls()
        state = self.state

        def connect() -> Any:
            return state.connection(
                templar.render,
                self.cancel,
                self.options.password,
                self.options.extra_vars,
                {**self.options.connection_defaults, "ansible_user": run.play.remote_user}
                if run.play.remote_user
                else self.options.connection_defaults,
            )

        ctx = ModuleContext(
            host=state.name,
            hostvars=variables,
            check_mode=check,
            diff=self.options.diff if task.diff is None else bool(task.diff),
            connect=connect,
            cancel=self.cancel,
            verbosity=self.options.verbosity,
            base_dir=run.play.base_dir,
            render=templar.render,
            evaluate=templar.evaluate,
            render_with=lambda value, extra: self.templar(
                {**variables, **extra}, run, f'task "{task.name}" on host {state.name}'
            ).render(value),
        )
        attempts_allowed = 1
        if task.until is not None:
            attempts_allowed = min(MAX_RETRIES, int(task.retries if task.retries is not None else 3) + 1)
        elif task.retries is not None:
            attempts_allowed = 1  # Ansible: retries without until does nothing
        attempt = 0
        while True:
            attempt += 1
            try:
                outcome = module.run(ctx, parsed)
            except TaskFailed as tf:
                outcome = ModuleOutcome(
                    failed=True,
                    msg=tf.msg,
                    error_code=tf.error_code,
                    diagnosis=tf.diagnosis,
                    data=tf.data,
                    licences=tf.licences,
                )
            data = self._data(outcome)
            if outcome.facts:
                if task.module in ("set_fact", "include_vars"):
                    self.state.update_vars(outcome.facts)  # rendered from the playbook: templates already ran
                else:
                    self.state.set_facts(mark_unsafe(outcome.facts))
            outcome, data = self._apply_conditions(task, run, variables, outcome, data)
            if task.until is None:
                break
            data["attempts"] = attempt
            until_vars = dict(variables)
            if task.register:
                until_vars[task.register] = data
            ok = self.templar(until_vars, run, f'until of task "{task.name}"').evaluate(task.until)
            if ok or attempt >= attempts_allowed:
                if not ok:
                    outcome.failed = True
                    outcome.msg = outcome.msg or "Retries exhausted"
                    data["failed"] = True
                break
            if self.cancel.wait(max(0.0, float(task.delay))):
                raise Cancelled(self.state.name, "the run is stopping")
        return outcome, data

    def _render_args(self, task: TaskSpec, templar: Any) -> dict[str, Any]:
        """The task's arguments rendered. A value derived from a secret is marked secret at its source: a
        set_fact variable (its name and value), a registered variable (its name), so no later rendering of it
        (``debug: var=``, ``hostvars``, a report) shows it."""
        if task.module != "set_fact":
            shown = _MESSAGE_ARGS.get(task.module, frozenset())
            rendered: dict[str, Any] = {}
            any_derived = False
            for key, raw in task.args.items():
                value, derived = templar.render_tracked(raw)
                if derived:
                    any_derived = True
                    if key not in shown:  # the PC needs the value; every display of it is masked
                        register_secret_values(value)
                    elif redact_text(str(value)) == str(value):
                        # a message made from a secret that the mask cannot see (joined, sliced, reversed): none
                        # of it shows; one that carries the secret as it is keeps its words around the mask
                        value = MASK
                rendered[key] = value
            if any_derived and task.register:
                register_secret_name(task.register)
            return rendered
        out: dict[str, Any] = {}
        for key, raw in task.args.items():
            value, derived = templar.render_tracked(raw)
            if derived and key != "cacheable":
                register_secret_name(str(key))
                register_secret_values(value)
            out[key] = value
        return out

    def _data(self, outcome: ModuleOutcome) -> dict[str, Any]:
        data = dict(outcome.data)
        data["changed"] = outcome.changed
        data["failed"] = outcome.failed
        if outcome.msg and "msg" not in data:
            data["msg"] = outcome.msg
        if outcome.skipped:
            data["skipped"] = True
        if outcome.error_code is not None:
            data["error_code"] = f"0x{outcome.error_code & 0xFFFFFFFF:08X}"
        return data

    def _apply_conditions(
        self,
        task: TaskSpec,
        run: PlayRun,
        variables: dict[str, Any],
        outcome: ModuleOutcome,
        data: dict[str, Any],
    ) -> tuple[ModuleOutcome, dict[str, Any]]:
        # Ansible evaluates neither condition on a skipped result (TaskExecutor: ``'skipped' not in result``)
        if (task.changed_when is None and task.failed_when is None) or outcome.skipped:
            return outcome, data
        scope = dict(variables)
        if task.register:
            scope[task.register] = data
        templar = self.templar(scope, run, f'task "{task.name}" on host {self.state.name}')
        if task.changed_when is not None:
            outcome.changed = all(templar.evaluate(c) for c in task.changed_when)
            data["changed"] = outcome.changed
        if task.failed_when is not None:
            failed = all(templar.evaluate(c) for c in task.failed_when) if task.failed_when else False
            if failed and not outcome.failed:
                outcome.msg = outcome.msg or "failed_when condition was true"
            if not failed:
                outcome.error_code = None
                outcome.diagnosis = None
            outcome.failed = failed
            data["failed"] = failed
            data["failed_when_result"] = failed
        return outcome, data

    # ---------------------------------------------------------------- results

    def _registered(self, result: HostTaskResult, data: Mapping[str, Any]) -> dict[str, Any]:
        reg = dict(thaw(result.data)) if result.no_log else dict(thaw(data))
        reg["changed"] = result.status is TaskStatus.CHANGED
        reg["failed"] = result.status is TaskStatus.FAILED
        reg["skipped"] = result.status is TaskStatus.SKIPPED
        reg["unreachable"] = result.status is TaskStatus.UNREACHABLE
        reg.setdefault("msg", result.msg)
        return reg

    def _emit(
        self,
        task: TaskSpec,
        run: PlayRun,
        status: TaskStatus,
        started: Any,
        t0: float,
        *,
        msg: str = "",
        data: Mapping[str, Any] | None = None,
        error_code: int | None = None,
        diagnosis: str | None = None,
        failure: FailureKind | None = None,
        ignored: bool = False,
        rescued: bool = False,
        diff: Mapping[str, Any] | None = None,
        licences: tuple[Any, ...] = (),
    ) -> HostTaskResult:
        if task.no_log is True:
            msg = NO_LOG_MSG if msg else ""
            data = {}
            diff = None
        else:
            msg = redact_text(str(msg))
            data = redact(thaw(data or {}))
            diff = redact(thaw(diff)) if diff is not None else None
        result = HostTaskResult(
            host=self.state.name,
            play=run.play.name,
            task=task.name,
            module=task.module,
            status=status,
            changed=status is TaskStatus.CHANGED,
            msg=msg,
            error_code=error_code & 0xFFFFFFFF if error_code is not None else None,
            diagnosis=diagnosis,
            failure=failure,
            ignored=ignored,
            rescued=rescued,
            started=started,
            duration_ms=int((time.monotonic() - t0) * 1000),
            data=data or {},
            diff=diff,
            licences=tuple(licences),
            no_log=bool(task.no_log),
        )
        if self.state.add(result):
            self.reporter.task_done(result)
        if run.play.any_errors_fatal and (
            self.state.failed or (status is TaskStatus.UNREACHABLE and not ignored and not rescued)
        ):
            run.abort()  # as Ansible: no host starts another task of this play
        return result

    def _from_exception(
        self,
        task: TaskSpec,
        run: PlayRun,
        exc: BaseException,
        started: Any,
        t0: float,
        rescuable: bool,
        inherited_ignore: bool,
    ) -> HostTaskResult:
        """THE place where an exception becomes a task status."""
        state = self.state
        ignore_unreachable = boolean(task.ignore_unreachable) or boolean(run.play.ignore_unreachable)
        if isinstance(exc, Cancelled):
            state.interrupted = True
            self._emit(
                task,
                run,
                TaskStatus.FAILED,
                started,
                t0,
                msg="interrupted",
                failure=FailureKind.TIMEOUT,
                diagnosis="KF_INTERRUPTED",
            )
            raise _Stop() from None
        kind: FailureKind | None = None
        key: str | None = None
        if isinstance(exc, AuthFailed):
            kind, key = FailureKind.AUTH, "KF_AUTH_REFUSED"
        elif isinstance(exc, Unreachable):
            kind, key = FailureKind.UNREACHABLE, "KF_UNREACHABLE"
        elif isinstance(exc, OperationTimeout):
            kind, key = FailureKind.TIMEOUT, "KF_TIMEOUT"
        if kind is not None:
            assert isinstance(exc, TransportError)
            result = self._emit(
                task,
                run,
                TaskStatus.UNREACHABLE,
                started,
                t0,
                msg=exc.message,
                failure=kind,
                diagnosis=diagnosis_for(None, key),
                ignored=ignore_unreachable and kind is not FailureKind.AUTH,
            )
            if not result.ignored:
                state.stopped = kind
                raise _Stop() from None
            return result
        code: int | None = None
        if isinstance(exc, WSManFault):
            code = exc.hresult
            failure, msg, key = FailureKind.FAULT, exc.message, "KF_WSMAN_FAULT"
        elif isinstance(exc, ProtocolError):
            failure, msg, key = FailureKind.PROTOCOL, exc.message, "KF_PROTOCOL"
        elif isinstance(exc, InputError):
            failure, msg, key = FailureKind.INPUT, exc.render(), None
        elif isinstance(exc, KmsfleetError):
            failure, msg, key = FailureKind.INPUT, str(exc), None
        else:
            failure = FailureKind.TASK
            msg = f"internal error in module {task.module}: {type(exc).__name__}: {exc}"
            key = None
        ignored = inherited_ignore or bool(task.ignore_errors is True)
        return self._emit(
            task,
            run,
            TaskStatus.FAILED,
            started,
            t0,
            msg=msg,
            error_code=code,
            diagnosis=diagnosis_for(code, key),
            failure=failure,
            ignored=ignored,
            rescued=rescuable and not ignored,
        )

    def _record_error(self, name: str, module: str, run: PlayRun, exc: KmsfleetError) -> None:
        task = TaskSpec(name=name, module=module, args={})
        self._from_exception(task, run, exc, utcnow(), time.monotonic(), False, False)


def stop_exception() -> type[Exception]:
    return _Stop
