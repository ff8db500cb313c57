"""Ansible modules Windows playbooks commonly use, implemented natively over WinRS and WMI:
``raw``, ``script``, ``win_timezone``, ``win_reboot`` and ``win_feature``; and the clear
refusal of ``win_updates``, ``win_auto_logon`` and ``win_region``.

Everything sent to PowerShell stays within PowerShell 2.0's language (Windows 7 PCs): no ``[ordered]``,
``ConvertTo-Json``, ``-in``, ``$PSItem`` or ``::new()``.
"""

from __future__ import annotations

import stat
import time
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, Field, model_validator

from orchestrator.modules import winwmi
from orchestrator.modules.base import Module, ModuleArgs, ModuleContext, ModuleOutcome, TaskFailed, register
from orchestrator.modules.win_files import controller_candidates
from orchestrator.modules.windows import CommandArgs, _command_data, _creates_removes
from orchestrator.transport.errors import TransportError
from orchestrator.transport.winrm import CommandResult
from orchestrator.winargs import quote_arg

# A script travels inside one command line as base64 of UTF-16-LE (-EncodedCommand): 4/3 × 2 bytes per
# character. CreateProcess takes at most 32,767 characters, so scripts are bounded well under that.
MAX_SCRIPT_CHARS = 10_000


def _ps_literal(value: Any) -> str:
    """A value as a PowerShell 2.0 literal (strings single-quoted, numbers and booleans as such)."""
    if isinstance(value, bool):
        return "$true" if value else "$false"
    if isinstance(value, int | float):
        return str(value)
    if value is None:
        return "$null"
    if isinstance(value, list | tuple):
        return "@(" + ", ".join(_ps_literal(v) for v in value) + ")"
    return "'" + str(value).replace("'", "''") + "'"


def _bounded(script: str, what: str) -> str:
    if len(script) > MAX_SCRIPT_CHARS:
        raise TaskFailed(
            f"{what} is {len(script)} characters; kmsfleet sends scripts inside one command line "
            f"(-EncodedCommand), at most {MAX_SCRIPT_CHARS} characters"
        )
    return script


def _rc_outcome(res: CommandResult, cmd: str, started: datetime) -> ModuleOutcome:
    """raw's and script's result: always changed; rc != 0 fails with Ansible's message."""
    data = _command_data(res, cmd, started)
    if res.rc != 0:
        raise TaskFailed(f"non-zero return code ({res.rc})", data=data)
    return ModuleOutcome(changed=True, data=data)


# --------------------------------------------------------------------------- raw


class RawArgs(ModuleArgs):
    free_form: str = Field(min_length=1)
    executable: str | None = None


@register
class Raw(Module[RawArgs]):
    """``ansible.builtin.raw`` over WinRM: Ansible's winrm connection runs the text as a PowerShell script
    (``powershell -EncodedCommand``); rc != 0 fails the task, as in Ansible."""

    name = "raw"
    args_model = RawArgs
    free_form = "free_form"
    supports_check = False
    description = "Run a PowerShell script text as Ansible's raw module does over WinRM."

    def run(self, ctx: ModuleContext, args: RawArgs) -> ModuleOutcome:
        if args.executable:
            raise TaskFailed("raw: 'executable' is ignored by Ansible over WinRM and not supported by kmsfleet")
        started = datetime.now(UTC)
        res = ctx.conn.run_powershell(_bounded(args.free_form, "raw script"))
        return _rc_outcome(res, args.free_form, started)


# --------------------------------------------------------------------------- script


class ScriptArgs(ModuleArgs):
    cmd: str = Field(min_length=1)
    creates: str | None = None
    removes: str | None = None
    chdir: str | None = None
    executable: str | None = None
    decrypt: bool = True


@register
class Script(Module[ScriptArgs]):
    """``ansible.builtin.script`` for Windows PCs: a local ``.ps1`` is sent as one PowerShell script (its
    arguments bound as ``& { … } args``); a ``.bat``/``.cmd`` is fed line by line to ``cmd.exe /q`` on its
    standard input (no ``%1`` arguments, labels or ``goto``: those need a file on the PC)."""

    name = "script"
    args_model = ScriptArgs
    free_form = "cmd"
    supports_check = True
    description = "Run a local .ps1/.bat/.cmd script on the PC (sent, not copied; bounded in size)."

    def run(self, ctx: ModuleContext, args: ScriptArgs) -> ModuleOutcome:
        if args.executable:
            raise TaskFailed("script: 'executable' is not supported by kmsfleet (.ps1, .bat and .cmd only)")
        path_text, _, arg_text = args.cmd.strip().partition(" ")
        candidates = controller_candidates(ctx, path_text, "files")
        path = next((c for c in candidates if c.exists()), candidates[-1])
        suffix = path.suffix.lower()
        if suffix not in (".ps1", ".bat", ".cmd"):
            raise TaskFailed(f"script {path_text!r}: kmsfleet runs .ps1, .bat and .cmd scripts on Windows PCs")
        try:
            info = path.stat()
        except OSError:
            raise TaskFailed(f"could not find or access '{path_text}' on the controller") from None
        if not stat.S_ISREG(info.st_mode):  # a FIFO would block the read forever, /dev/zero would never end
            raise TaskFailed(f"script {path_text!r} is not a regular file on the controller")
        size = info.st_size
        if size > MAX_SCRIPT_CHARS * 2:
            raise TaskFailed(
                f"script {path_text!r} is {size} bytes; kmsfleet sends at most {MAX_SCRIPT_CHARS} characters"
            )
        with path.open("rb") as fh:  # bounded: the file may have grown since stat()
            text = fh.read(MAX_SCRIPT_CHARS * 2 + 1).decode("utf-8-sig", errors="replace")
        cmd_args = CommandArgs(cmd=args.cmd, creates=args.creates, removes=args.removes)
        done = _creates_removes(ctx, cmd_args, args.cmd)
        if done is not None:
            return done
        if ctx.check_mode:
            return ModuleOutcome(skipped=True, msg="skipped in check mode: script cannot tell what it would change")
        started = datetime.now(UTC)
        if suffix == ".ps1":
            body = text
            if arg_text.strip():
                body = "& {\n" + text + "\n} " + arg_text.strip()
            if args.chdir:
                body = f"Set-Location -LiteralPath {_ps_literal(args.chdir)}\n" + body
            res = ctx.conn.run_powershell(_bounded(body, f"script {path_text!r}"))
        else:
            if arg_text.strip():
                raise TaskFailed(
                    f"script {path_text!r}: arguments to a .bat/.cmd script are not supported by kmsfleet "
                    "(the script is fed to cmd.exe on its standard input, where %1 is empty)"
                )
            lines = text.replace("\r\n", "\n").split("\n")
            if args.chdir:
                lines.insert(0, f"cd /d {quote_arg(args.chdir)}")
            stdin = ("\r\n".join([*lines, "exit %ERRORLEVEL%"]) + "\r\n").encode("utf-8")
            res = ctx.conn.run_command("cmd.exe", ["/q"], stdin=stdin)
        return _rc_outcome(res, args.cmd, started)


# --------------------------------------------------------------------------- win_timezone


class TimezoneArgs(ModuleArgs):
    timezone: str = Field(min_length=1)


@register
class WinTimezone(Module[TimezoneArgs]):
    """``community.windows.win_timezone`` with ``tzutil /g`` and ``tzutil /s`` (what the module runs)."""

    name = "win_timezone"
    args_model = TimezoneArgs
    supports_check = True
    description = "Set the PC's time zone (tzutil); returns previous_timezone and timezone."

    def run(self, ctx: ModuleContext, args: TimezoneArgs) -> ModuleOutcome:
        current = ctx.conn.run_command("tzutil.exe", ["/g"], read_only=True)
        if current.rc != 0:
            raise TaskFailed(f"tzutil /g failed: {(current.stderr or current.stdout).strip()}")
        previous = current.stdout.strip()
        wanted = args.timezone
        data = {"previous_timezone": previous, "timezone": wanted}
        if previous.lower() == wanted.lower():
            return ModuleOutcome(data={**data, "timezone": previous})
        diff = {"before": previous + "\n", "after": wanted + "\n"} if ctx.diff else None
        if ctx.check_mode:
            return ModuleOutcome(changed=True, msg=f"would set the time zone to {wanted}", data=data, diff=diff)
        res = ctx.conn.run_command("tzutil.exe", ["/s", quote_arg(wanted)])
        if res.rc != 0:
            detail = (res.stderr or res.stdout).strip()
            raise TaskFailed(
                f"The specified timezone: {wanted} isn't supported on the machine. {detail}".strip(), data=data
            )
        return ModuleOutcome(changed=True, msg=f"time zone set to {wanted}", data=data, diff=diff)


# --------------------------------------------------------------------------- win_reboot


class RebootArgs(ModuleArgs):
    pre_reboot_delay: float = Field(
        2, ge=0, le=3600, validation_alias=AliasChoices("pre_reboot_delay", "pre_reboot_delay_sec")
    )
    post_reboot_delay: float = Field(
        0, ge=0, le=3600, validation_alias=AliasChoices("post_reboot_delay", "post_reboot_delay_sec")
    )
    reboot_timeout: float = Field(
        600, gt=0, le=7200, validation_alias=AliasChoices("reboot_timeout", "reboot_timeout_sec")
    )
    connect_timeout: float = Field(
        5, gt=0, le=600, validation_alias=AliasChoices("connect_timeout", "connect_timeout_sec")
    )
    test_command: str | None = None
    msg: str = "Reboot initiated by Ansible"
    boot_time_command: str | None = None
    shutdown_timeout: float | None = None

    @model_validator(mode="after")
    def _supported(self) -> RebootArgs:
        if self.boot_time_command is not None:
            raise ValueError("'boot_time_command' is not supported (kmsfleet reads LastBootUpTime over WMI)")
        return self


@register
class WinReboot(winwmi.AliasedModule[RebootArgs]):
    """``ansible.windows.win_reboot`` over WMI: ``Win32_OperatingSystem.Win32Shutdown`` (forced reboot, flags
    6) after ``pre_reboot_delay``, then wait, bounded by ``reboot_timeout``, until WinRM answers with a new
    ``LastBootUpTime`` and ``test_command`` (default ``whoami``) succeeds."""

    name = "win_reboot"
    args_model = RebootArgs
    supports_check = True
    description = "Restart the PC and wait until it answers again (bounded by reboot_timeout)."
    FLAGS_FORCED_REBOOT: ClassVar[int] = 6

    def run(self, ctx: ModuleContext, args: RebootArgs) -> ModuleOutcome:
        if ctx.check_mode:
            return ModuleOutcome(changed=True, msg="would reboot", data={"rebooted": True, "elapsed": 0})
        started = time.monotonic()
        before = self._boot_row(ctx)
        if ctx.cancel.wait(args.pre_reboot_delay):
            raise TaskFailed("interrupted before the reboot")
        code, _ = winwmi.call(
            ctx,
            "Win32_OperatingSystem",
            "Win32Shutdown",
            {"Name": str(before.get("Name") or "")},
            {"Flags": self.FLAGS_FORCED_REBOOT},
        )
        if code != 0:
            text = {1314: "the account lacks the shutdown privilege (run as an administrator)"}.get(
                code, f"error {code}"
            )
            raise TaskFailed(
                f"Win32_OperatingSystem.Win32Shutdown failed: {text}", data={"rebooted": False, "rc": code}
            )
        deadline = started + args.pre_reboot_delay + args.reboot_timeout
        last_error = ""
        while True:
            if ctx.cancel.wait(1.0):
                raise TaskFailed("interrupted while waiting for the PC to come back", data={"rebooted": True})
            if time.monotonic() >= deadline:
                raise TaskFailed(
                    f"Timed out waiting for the PC to come back after {args.reboot_timeout:g}s ({last_error})",
                    data={"rebooted": True, "elapsed": round(time.monotonic() - started, 1)},
                )
            try:
                ctx.conn.reset()
                now_row = self._boot_row(ctx)
                if now_row.get("LastBootUpTime") == before.get("LastBootUpTime"):
                    last_error = "the boot time has not changed yet"
                    continue
                test = ctx.conn.run_command(args.test_command or "whoami", [], read_only=True)
                if test.rc != 0:
                    last_error = f"test command exited with rc {test.rc}"
                    continue
                break
            except (TransportError, TaskFailed) as exc:
                last_error = str(exc)
        if args.post_reboot_delay and ctx.cancel.wait(args.post_reboot_delay):
            raise TaskFailed("interrupted after the reboot", data={"rebooted": True})
        return ModuleOutcome(changed=True, data={"rebooted": True, "elapsed": round(time.monotonic() - started, 1)})

    @staticmethod
    def _boot_row(ctx: ModuleContext) -> dict[str, Any]:
        found = winwmi.rows(ctx, "SELECT Name, LastBootUpTime FROM Win32_OperatingSystem")
        return found[0] if found else {}


# --------------------------------------------------------------------------- win_feature


class FeatureArgs(ModuleArgs):
    name: list[str] | str
    state: Literal["present", "absent"] = "present"
    include_sub_features: bool = False
    include_management_tools: bool = False
    source: str | None = None


# Install-WindowsFeature names → Win32_ServerFeature IDs (Microsoft's Win32_ServerFeature ID table)
FEATURE_IDS = {
    "file-services": 6,
    "fs-fileserver": 255,
    "web-server": 2,
    "fs-dfs-namespace": 101,
    "fs-dfs-replication": 102,
}


@register
class WinFeature(Module[FeatureArgs]):
    """``ansible.windows.win_feature``, read-only: which roles/features are installed comes from
    ``Win32_ServerFeature`` (Windows Server only). Installing or removing them needs Server Manager's
    Install-WindowsFeature and is not supported: such a task fails, naming the features (``--check`` reports
    what would change)."""

    name = "win_feature"
    args_model = FeatureArgs
    supports_check = True
    description = "Check that Windows Server roles/features are installed (Win32_ServerFeature); no install."

    def run(self, ctx: ModuleContext, args: FeatureArgs) -> ModuleOutcome:
        os_row = winwmi.rows(ctx, "SELECT Caption, ProductType FROM Win32_OperatingSystem")
        product_type = int(str((os_row[0] if os_row else {}).get("ProductType") or 1))
        if product_type == 1:
            caption = (os_row[0] if os_row else {}).get("Caption") or "client Windows"
            raise TaskFailed(
                f"win_feature only works on Windows Server ({caption} is a client; use win_optional_feature)",
                data={"success": False, "exitcode": "Failed", "feature_result": [], "reboot_required": False},
            )
        installed = winwmi.rows(ctx, "SELECT ID, Name FROM Win32_ServerFeature")
        ids = {int(str(r.get("ID"))) for r in installed}
        names = {str(r.get("Name") or "").lower() for r in installed}
        wanted = [args.name] if isinstance(args.name, str) else list(args.name)
        wanted = [n.strip() for w in wanted for n in w.split(",") if n.strip()]
        pending = []
        for feature in wanted:
            fid = FEATURE_IDS.get(feature.lower())
            present = (fid is not None and fid in ids) or feature.lower() in names
            if present != (args.state == "present"):
                pending.append(feature)
        data: dict[str, Any] = {
            "success": True,
            "exitcode": "NoChangeNeeded",
            "feature_result": [],
            "reboot_required": False,
        }
        if not pending:
            return ModuleOutcome(data=data)
        verb = "install" if args.state == "present" else "remove"
        if ctx.check_mode:
            return ModuleOutcome(
                changed=True, msg=f"would {verb} {', '.join(pending)}", data={**data, "exitcode": "Success"}
            )
        raise TaskFailed(
            f"win_feature: {', '.join(pending)} would need to be {verb}ed; kmsfleet does not {verb} Windows features "
            "(Install-WindowsFeature is not available over WMI)",
            data={**data, "success": False, "exitcode": "Failed"},
        )


# --------------------------------------------------------------------------- refused modules


class _AnyArgs(ModuleArgs):
    model_config = ModuleArgs.model_config | {"extra": "allow"}


class _Refused(Module[_AnyArgs]):
    """A module kmsfleet knows but does not run: refused when the playbook is loaded, with the reason."""

    args_model = _AnyArgs
    supports_check = True
    refused = True
    reason: ClassVar[str] = ""

    @classmethod
    def check_args(cls, args: Any) -> list[str]:
        return [f"not supported by kmsfleet: {cls.reason}"]

    def run(self, ctx: ModuleContext, args: _AnyArgs) -> ModuleOutcome:
        raise TaskFailed(f"{self.name} is not supported by kmsfleet: {self.reason}")


@register
class WinUpdates(_Refused):
    name = "win_updates"
    reason = (
        "installing updates needs the Windows Update Agent's COM API run as a scheduled task on the PC (Ansible's "
        "module does exactly that); kmsfleet only uses WMI and WinRS. Use WSUS or Windows Update for Business"
    )


@register
class WinAutoLogon(_Refused):
    name = "win_auto_logon"
    reason = "it stores a logon password on the PC (LSA secret); kmsfleet never writes credentials to PCs"


@register
class WinRegion(_Refused):
    name = "win_region"
    reason = (
        "the format, location and copy-settings options change per-user and default-user profiles through the "
        "intl.cpl unattend XML; not modelled. Set registry values with win_regedit if a fixed value is enough"
    )
