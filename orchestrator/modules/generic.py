"""Controller-side modules: they never contact the host (debug, set_fact, assert, fail, pause, meta)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ConfigDict, Field, model_validator

from orchestrator.modules.base import Module, ModuleArgs, ModuleContext, ModuleOutcome, TaskFailed, register
from orchestrator.redact import MASK, is_secret_name, redact

UNDEFINED_TEXT = "VARIABLE IS NOT DEFINED!"


class DebugArgs(ModuleArgs):
    msg: Any = None
    var: str | None = None
    verbosity: int = Field(0, ge=0, le=4)

    @model_validator(mode="after")
    def _one(self) -> DebugArgs:
        if self.msg is not None and self.var is not None:
            raise ValueError("'msg' and 'var' are mutually exclusive")
        return self


@register
class Debug(Module[DebugArgs]):
    name = "debug"
    args_model = DebugArgs
    free_form = "msg"
    supports_check = True
    uses_connection = False
    description = "Print a message or a variable's value."

    def run(self, ctx: ModuleContext, args: DebugArgs) -> ModuleOutcome:
        if args.verbosity > ctx.verbosity:
            return ModuleOutcome(skipped=True, msg=f"verbosity threshold not met ({args.verbosity})")
        if args.var is not None:
            if not ctx.evaluate(f"({args.var}) is defined"):
                # as Ansible: showing an undefined variable is not an error
                return ModuleOutcome(data={args.var: UNDEFINED_TEXT}, msg=f"{args.var} = {UNDEFINED_TEXT}")
            # masked before it is formatted: repr() would escape a secret's quotes and backslashes
            value = MASK if is_secret_name(args.var) else redact(ctx.render("{{ " + args.var + " }}"))
            return ModuleOutcome(data={args.var: value}, msg=f"{args.var} = {value!r}")
        msg = "Hello world!" if args.msg is None else args.msg
        return ModuleOutcome(data={"msg": msg}, msg=str(msg))


class SetFactArgs(ModuleArgs):
    model_config = ConfigDict(extra="allow", frozen=True)
    cacheable: bool = False


@register
class SetFact(Module[SetFactArgs]):
    name = "set_fact"
    args_model = SetFactArgs
    supports_check = True
    uses_connection = False
    description = "Set host variables for the rest of the run."

    @classmethod
    def check_args(cls, args: Any) -> list[str]:
        problems = []
        for key in args:
            if key != "cacheable" and not str(key).isidentifier():
                problems.append(f"'{key}' is not a valid variable name")
        if not [k for k in args if k != "cacheable"]:
            problems.append("set_fact needs at least one variable to set")
        return problems

    def run(self, ctx: ModuleContext, args: SetFactArgs) -> ModuleOutcome:
        facts = dict(args.model_extra or {})
        return ModuleOutcome(facts=facts, data={"ansible_facts": facts})


class AssertArgs(ModuleArgs):
    that: str | bool | list[str | bool]
    fail_msg: Any = None
    msg: Any = None
    success_msg: Any = None
    quiet: bool = False


@register
class Assert(Module[AssertArgs]):
    name = "assert"
    args_model = AssertArgs
    supports_check = True
    uses_connection = False
    description = "Fail unless every condition is true."

    def run(self, ctx: ModuleContext, args: AssertArgs) -> ModuleOutcome:
        conditions = args.that if isinstance(args.that, list) else [args.that]
        for cond in conditions:
            if not ctx.evaluate(cond):
                message = args.fail_msg if args.fail_msg is not None else args.msg
                text = str(message) if message is not None else "Assertion failed"
                raise TaskFailed(text, data={"assertion": str(cond), "evaluated_to": False})
        ok = str(args.success_msg) if args.success_msg is not None else "All assertions passed"
        return ModuleOutcome(msg=ok, data={"msg": ok})


class FailArgs(ModuleArgs):
    msg: Any = "Failed as requested from task"


@register
class Fail(Module[FailArgs]):
    name = "fail"
    args_model = FailArgs
    free_form = "msg"
    supports_check = True
    uses_connection = False
    description = "Fail the task with a message."

    def run(self, ctx: ModuleContext, args: FailArgs) -> ModuleOutcome:
        raise TaskFailed(str(args.msg))


class PauseArgs(ModuleArgs):
    seconds: float | None = Field(None, ge=0, le=86400)
    minutes: float | None = Field(None, ge=0, le=1440)
    prompt: str | None = None

    @model_validator(mode="after")
    def _one(self) -> PauseArgs:
        if self.seconds is not None and self.minutes is not None:
            raise ValueError("'seconds' and 'minutes' are mutually exclusive")
        if self.seconds is None and self.minutes is None:
            raise ValueError(
                "kmsfleet runs unattended: give 'seconds' or 'minutes' (an open-ended prompt would wait forever)"
            )
        return self


@register
class Pause(Module[PauseArgs]):
    name = "pause"
    args_model = PauseArgs
    supports_check = True
    uses_connection = False
    description = "Wait a while (bounded; Ctrl-C ends the wait)."
    unsupported_keys: ClassVar[tuple[str, ...]] = ()

    def run(self, ctx: ModuleContext, args: PauseArgs) -> ModuleOutcome:
        seconds = args.seconds if args.seconds is not None else (args.minutes or 0) * 60
        interrupted = ctx.cancel.wait(seconds)
        return ModuleOutcome(
            msg="pause interrupted" if interrupted else f"paused for {seconds:g}s",
            data={"delta": seconds, "user_input": ""},
        )


META_ACTIONS = ("flush_handlers", "end_host", "end_play", "noop")


class MetaArgs(ModuleArgs):
    action: str

    @model_validator(mode="after")
    def _known(self) -> MetaArgs:
        if self.action not in META_ACTIONS:
            raise ValueError(f"meta action {self.action!r} is not supported (supported: {', '.join(META_ACTIONS)})")
        return self


@register
class Meta(Module[MetaArgs]):
    """``meta: flush_handlers | end_host | end_play | noop``. The host pipeline carries these out itself
    (they steer the play, not the PC) and, as in Ansible, they add nothing to the recap."""

    name = "meta"
    args_model = MetaArgs
    free_form = "action"
    supports_check = True
    uses_connection = False
    description = "Steer the play: run notified handlers now, end the play for this host, or do nothing."

    @classmethod
    def check_args(cls, args: Any) -> list[str]:
        problems = super().check_args(args)
        action = args.get("action")
        if not problems and isinstance(action, str) and action not in META_ACTIONS:
            problems.append(f"meta action {action!r} is not supported (supported: {', '.join(META_ACTIONS)})")
        return problems

    def run(self, ctx: ModuleContext, args: MetaArgs) -> ModuleOutcome:
        return ModuleOutcome(msg=args.action)  # carried out by the host pipeline
