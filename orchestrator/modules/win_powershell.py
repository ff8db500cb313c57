"""``ansible.windows.win_powershell`` without Ansible's wrapper: the script is sent as Ansible's ``raw`` sends one
(``powershell -EncodedCommand``, PowerShell 2.0 compatible), ``parameters`` bound as ``& { script } -Name value``.
The return values are read from stdout and stderr (``win_powershell_streams``): ``output`` (the output stream's
lines, as text: objects are not serialized, PowerShell 2.0 has no ConvertTo-Json), ``host_out`` (``Write-Host``),
``host_err``, ``error`` (one record each, with ``category_info`` and ``fully_qualified_error_id``),
``warning``/``verbose``/``debug``; ``information`` is empty and ``result`` is ``{}``: ``$Ansible`` does not exist
without the wrapper, so ``$Ansible.Changed``/``$Ansible.Result`` are not honoured (the task is ``changed`` unless
it fails)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from orchestrator.modules.base import Module, ModuleArgs, ModuleContext, ModuleOutcome, TaskFailed, register
from orchestrator.modules.win_misc import _bounded, _ps_literal
from orchestrator.modules.win_powershell_streams import parse_streams
from orchestrator.modules.windows import CommandArgs, _creates_removes


class PowershellArgs(ModuleArgs):
    script: str = Field(min_length=1)
    parameters: dict[str, Any] | None = None
    arguments: list[str] | None = None
    chdir: str | None = None
    creates: str | None = None
    removes: str | None = None
    error_action: Literal["silently_continue", "continue", "stop"] = "continue"
    executable: str | None = None
    depth: int = Field(2, ge=0)
    sensitive_parameters: list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _supported(self) -> PowershellArgs:
        if self.executable is not None or self.arguments is not None:
            raise ValueError("'executable'/'arguments' (another PowerShell) are not supported by kmsfleet")
        if self.sensitive_parameters is not None:
            raise ValueError("'sensitive_parameters' is not supported by kmsfleet")
        return self


_ERROR_ACTION = {"silently_continue": "SilentlyContinue", "continue": "Continue", "stop": "Stop"}


def build_script(args: PowershellArgs) -> str:
    """The script as sent: the error action and location first, the parameters bound to a script block."""
    body = args.script
    if args.parameters:
        bound = " ".join(f"-{k} {_ps_literal(v)}" for k, v in args.parameters.items())
        body = "& {\n" + body + "\n} " + bound
    prelude = []
    if args.error_action != "continue":
        prelude.append(f"$ErrorActionPreference = '{_ERROR_ACTION[args.error_action]}'")
    if args.chdir:
        prelude.append(f"Set-Location -LiteralPath {_ps_literal(args.chdir)}")
    return "\n".join([*prelude, body])


@register
class WinPowershell(Module[PowershellArgs]):
    name = "win_powershell"
    args_model = PowershellArgs
    supports_check = True
    description = "Run a PowerShell script (2.0-compatible); returns output, error, host_out like Ansible."

    def run(self, ctx: ModuleContext, args: PowershellArgs) -> ModuleOutcome:
        cmd_args = CommandArgs(cmd=args.script, creates=args.creates, removes=args.removes)
        done = _creates_removes(ctx, cmd_args, args.script, skipped=False)  # win_powershell: msg only
        if done is not None:
            return done
        if ctx.check_mode:
            return ModuleOutcome(skipped=True, msg="skipped in check mode: the script does not declare check support")
        res = ctx.conn.run_powershell(_bounded(build_script(args), "win_powershell script"))
        streams = parse_streams(res.stdout, res.stderr)
        data = {"result": {}, **streams.as_data(), "rc": res.rc}
        if res.rc != 0 or (args.error_action == "stop" and streams.error):
            first = streams.error[0]["message"] if streams.error else f"the script exited with rc {res.rc}"
            raise TaskFailed(first, data=data)
        return ModuleOutcome(changed=True, data=data)


__all__ = ["PowershellArgs", "WinPowershell", "build_script"]
