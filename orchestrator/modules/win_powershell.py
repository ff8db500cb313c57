"""``ansible.windows.win_powershell`` without Ansible's wrapper: the script is sent as Ansible's ``raw`` sends one
(``powershell -EncodedCommand``, PowerShell 2.0 compatible), ``parameters`` bound as ``& { script } -Name value``.
The return values are read from stdout and stderr (``win_powershell_streams``): ``output`` (the output stream's
lines, as text: objects are not serialized, PowerShell 2.0 has no ConvertTo-Json), ``host_out`` (``Write-Host``),
``host_err``, ``error`` (one record each, with ``category_info`` and ``fully_qualified_error_id``),
``warning``/``verbose``/``debug``; ``information`` is empty and ``result`` is ``{}``.

A script that uses ``$Ansible`` (ansible.windows documents ``$Ansible.Changed``, ``.Failed``, ``.Result``,
``.CheckMode``, ``.Verbosity``, ``.Diff``, ``.Tmpdir``) gets such an object before it runs and reports
``Changed``/``Failed`` afterwards in one host line kmsfleet removes from ``host_out``; the script itself runs in a
script block (``& { … }``) so its ``param()`` block stays first. Without this, setting a property of the missing
``$Ansible`` fails on Windows ("The property 'Changed' cannot be found on this object"). ``$Ansible.Result`` is not
returned (PowerShell 2.0 cannot serialize it) and a script that ends with ``exit`` skips the report (the task is
then ``changed``). The lab's PowerShell has no ``New-Object``: this path is tested against text only."""

from __future__ import annotations

import re
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


#: a script that mentions $Ansible gets the object (case-insensitive, as PowerShell's variable names)
USES_ANSIBLE = re.compile(r"\$ansible\b", re.IGNORECASE)
STATE_LINE = "kmsfleet-ansible-state"
_STATE = re.compile(rf"^{STATE_LINE} changed=(True|False) failed=(True|False)\n?$", re.MULTILINE)


def ansible_object(verbosity: int) -> str:
    """``$Ansible`` as ansible.windows' win_powershell documents it, in PowerShell 2.0 (New-Object -Property)."""
    return (
        "$Ansible = New-Object PSObject -Property @{Changed = $true; Failed = $false; Result = @{}; "
        f"CheckMode = $false; Verbosity = {int(verbosity)}; Diff = @{{}}; Tmpdir = $env:TEMP}}"
    )


def build_script(args: PowershellArgs, verbosity: int = 0) -> str:
    """The script as sent: the error action and location first, the parameters bound to a script block, and
    ``$Ansible`` around it when the script uses it."""
    body = args.script
    uses_ansible = bool(USES_ANSIBLE.search(body))
    bound = " ".join(f"-{k} {_ps_literal(v)}" for k, v in (args.parameters or {}).items())
    if bound or uses_ansible:
        body = "& {\n" + body + "\n}" + (" " + bound if bound else "")
    prelude = []
    if args.error_action != "continue":
        prelude.append(f"$ErrorActionPreference = '{_ERROR_ACTION[args.error_action]}'")
    if args.chdir:
        prelude.append(f"Set-Location -LiteralPath {_ps_literal(args.chdir)}")
    if not uses_ansible:
        return "\n".join([*prelude, body])
    report = f"Write-Host ('{STATE_LINE} changed=' + [bool]$Ansible.Changed + ' failed=' + [bool]$Ansible.Failed)"
    return "\n".join([*prelude, ansible_object(verbosity), body, report])


def take_state(host_out: str) -> tuple[str, bool | None, bool]:
    """``host_out`` without the ``$Ansible`` report line, and the Changed/Failed it reported (None: no report)."""
    reports = list(_STATE.finditer(host_out))
    if not reports:
        return host_out, None, False
    found = reports[-1]  # the last one: kmsfleet's line comes after everything the script wrote
    rest = host_out[: found.start()] + host_out[found.end() :]
    return rest, found.group(1) == "True", found.group(2) == "True"


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
        res = ctx.conn.run_powershell(_bounded(build_script(args, ctx.verbosity), "win_powershell script"))
        streams = parse_streams(res.stdout, res.stderr)
        streams.host_out, changed, failed = take_state(streams.host_out)
        if changed is None and streams.output:  # had the host written the line with CRLF, it would be here
            _, changed, failed = take_state(streams.output[-1])
            streams.output = streams.output[:-1] if changed is not None else streams.output
        data = {"result": {}, **streams.as_data(), "rc": res.rc}
        if res.rc != 0 or (args.error_action == "stop" and streams.error):
            first = streams.error[0]["message"] if streams.error else f"the script exited with rc {res.rc}"
            raise TaskFailed(first, data=data)
        if failed:
            raise TaskFailed("the script set $Ansible.Failed", data=data)
        return ModuleOutcome(changed=changed is not False, data=data)


__all__ = ["PowershellArgs", "WinPowershell", "ansible_object", "build_script", "take_state"]
