"""``win_service`` and ``win_service_info`` (ansible.windows), over WMI: ``Win32_Service`` rows and its methods
StartService, StopService, ChangeStartMode and Delete; delayed automatic start through the service's
``DelayedAutostart`` registry value (StdRegProv), which is where the Service Control Manager keeps it.

Arguments, defaults and return values follow ansible.windows.win_service / win_service_info. Creating or
reconfiguring a service (path, username, password, dependencies, display_name, description …) is not
supported: kmsfleet refuses those arguments before contacting any PC.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import Field, model_validator

from orchestrator.modules import winwmi
from orchestrator.modules.base import Module, ModuleArgs, ModuleContext, ModuleOutcome, TaskFailed, register

# ReturnValue texts of the Win32_Service methods (Microsoft: "StartService method of the Win32_Service class")
RETURN_TEXT = {
    1: "the request is not supported",
    2: "the user did not have the necessary access (run as an administrator)",
    3: "the service cannot be stopped because other running services depend on it",
    4: "the requested control code is not valid, or it is unacceptable to the service",
    5: "the requested control code cannot be sent to the service (its state is stopped, starting or stopping)",
    6: "the service has not been started",
    7: "the service did not respond to the start request in a timely fashion",
    8: "unknown failure when starting the service",
    9: "the directory path to the service executable file was not found",
    10: "the service is already running",
    14: "the service has been disabled",
    15: "the service does not have the correct authentication to run",
    16: "this service is being removed from the system",
    21: "an invalid parameter was passed to the service",
    22: "the account under which this service runs is either invalid or lacks the permissions",
}
START_MODES = {"auto": "Automatic", "manual": "Manual", "disabled": "Disabled", "delayed": "Automatic"}
UNSUPPORTED = (
    "path",
    "display_name",
    "description",
    "username",
    "password",
    "dependencies",
    "dependency_action",
    "desktop_interact",
    "failure_actions",
    "error_control",
    "load_order_group",
    "service_type",
    "sid_info",
    "required_privileges",
    "pre_shutdown_timeout",
    "failure_command",
    "failure_reboot_msg",
    "failure_reset_period_sec",
    "failure_actions_on_non_crash_failure",
    "update_password",
)


class ServiceArgs(ModuleArgs):
    name: str = Field(min_length=1)
    state: Literal["started", "stopped", "restarted", "absent", "paused"] | None = None
    start_mode: Literal["auto", "manual", "disabled", "delayed"] | None = None
    force_dependent_services: bool = False
    # accepted so that the refusal below can name them (creating/reconfiguring services is not supported)
    path: str | None = None
    display_name: str | None = None
    description: str | None = None
    username: str | None = None
    password: str | None = None
    dependencies: list[str] | None = None
    dependency_action: str | None = None
    desktop_interact: bool | None = None
    failure_actions: list[Any] | None = None
    error_control: str | None = None
    load_order_group: str | None = None
    service_type: str | None = None
    sid_info: str | None = None
    required_privileges: list[str] | None = None
    pre_shutdown_timeout: int | None = None
    failure_command: str | None = None
    failure_reboot_msg: str | None = None
    failure_reset_period_sec: int | None = None
    failure_actions_on_non_crash_failure: bool | None = None
    update_password: str | None = None

    @model_validator(mode="after")
    def _supported(self) -> ServiceArgs:
        given = [n for n in UNSUPPORTED if getattr(self, n) is not None]
        if given:
            raise ValueError(
                f"{', '.join(given)} not supported by kmsfleet (it starts, stops, removes services "
                "and sets their start mode over WMI; it does not create or reconfigure them)"
            )
        if self.state == "paused":
            raise ValueError("state 'paused' is not supported by kmsfleet")
        return self


def _state_name(state: Any) -> str:
    """Win32_Service.State ('Running', 'Stop Pending') → Ansible's ('running', 'stop_pending')."""
    return str(state or "").strip().lower().replace(" ", "_")


def _start_mode(row: dict[str, Any]) -> str:
    mode = str(row.get("StartMode") or "").lower()
    if mode == "auto":
        return "delayed" if row.get("DelayedAutoStart") else "auto"
    return mode


def read_service(ctx: ModuleContext, name: str) -> dict[str, Any] | None:
    found = winwmi.rows(ctx, f"SELECT * FROM Win32_Service WHERE Name = '{winwmi.wql_quote(name)}'")
    if not found:  # Ansible's win_service also accepts the display name
        found = winwmi.rows(ctx, f"SELECT * FROM Win32_Service WHERE DisplayName = '{winwmi.wql_quote(name)}'")
    if not found:
        return None
    row = found[0]
    if str(row.get("StartMode") or "").lower() == "auto" and not row.get("DelayedAutoStart"):
        # Win32_Service.DelayedAutoStart exists from Windows 10/Server 2016 on; before (Windows 7), and as a
        # cross-check, the SCM's own record is the service key's DelayedAutostart value.
        key = f"SYSTEM\\CurrentControlSet\\Services\\{row.get('Name')}"
        value = winwmi.Registry(ctx).get(winwmi.HIVES["HKLM"], key, "DelayedAutostart", "dword")
        row["DelayedAutoStart"] = bool(value)
    return row


def service_result(row: dict[str, Any] | None, name: str) -> dict[str, Any]:
    """Return values as ansible.windows.win_service documents them."""
    if row is None:
        return {"exists": False, "name": name}
    return {
        "exists": True,
        "name": row.get("Name"),
        "display_name": row.get("DisplayName"),
        "description": row.get("Description"),
        "path": row.get("PathName"),
        "username": row.get("StartName"),
        "start_mode": _start_mode(row),
        "state": _state_name(row.get("State")),
        "desktop_interact": bool(row.get("DesktopInteract")),
        "can_pause_and_continue": bool(row.get("AcceptPause")),
        "dependencies": [],
        "depended_by": [],
    }


def planned_changes(args: ServiceArgs, before: dict[str, Any], name: str) -> tuple[list[str], dict[str, Any]]:
    """What ``args`` change on a service in state ``before`` (pure): the actions as shown, the state after."""
    if args.state == "absent":
        return ["remove"], {"exists": False, "name": name}
    actions: list[str] = []
    after = dict(before)
    if args.start_mode is not None and args.start_mode != before["start_mode"]:
        actions.append(f"set start mode {args.start_mode}")
        after["start_mode"] = args.start_mode
    running = before["state"] == "running"
    if args.state == "started" and not running:
        actions.append("start")
        after["state"] = "running"
    elif args.state == "stopped" and before["state"] != "stopped":
        actions.append("stop")
        after["state"] = "stopped"
    elif args.state == "restarted":
        actions.append("restart" if running else "start")
        after["state"] = "running"
    return actions, after


@register
class WinService(Module[ServiceArgs]):
    name = "win_service"
    args_model = ServiceArgs
    supports_check = True
    description = "Start, stop, restart or remove a Windows service and set its start mode (WMI Win32_Service)."

    def run(self, ctx: ModuleContext, args: ServiceArgs) -> ModuleOutcome:
        row = read_service(ctx, args.name)
        before = service_result(row, args.name)
        if row is None:
            if args.state in (None, "absent") and args.start_mode is None:
                return ModuleOutcome(data=before)
            raise TaskFailed(
                f"Service '{args.name}' is not installed, need to set 'path' to create a new service "
                "(creating services is not supported by kmsfleet)",
                data=before,
            )
        name = str(row["Name"])
        sel = {"Name": name}
        actions, after = planned_changes(args, before, name)
        diff = {"before": before, "after": after} if ctx.diff and actions else None
        if not actions:
            return ModuleOutcome(data=before)
        if ctx.check_mode:
            return ModuleOutcome(changed=True, msg="would " + ", ".join(actions), data=after, diff=diff)
        if args.state == "absent":
            if before["state"] != "stopped":
                self._method(ctx, sel, "StopService", ok=(0, 5))
            self._method(ctx, sel, "Delete")
            return ModuleOutcome(changed=True, msg="removed", data={"exists": False, "name": name}, diff=diff)
        self._apply(ctx, args, before, name)
        final = read_service(ctx, name)
        data = service_result(final, name)
        if args.state in ("started", "restarted") and data.get("state") != "running":
            data = self._wait(ctx, name, "running")
        return ModuleOutcome(changed=True, msg=", ".join(actions), data=data, diff=diff)

    def _apply(self, ctx: ModuleContext, args: ServiceArgs, before: dict[str, Any], name: str) -> None:
        """The WMI calls for the start mode and state ``args`` ask for (not removal)."""
        sel = {"Name": name}
        if args.start_mode is not None and args.start_mode != before["start_mode"]:
            self._method(ctx, sel, "ChangeStartMode", {"StartMode": START_MODES[args.start_mode]})
            self._set_delayed(ctx, name, args.start_mode == "delayed", before["start_mode"] == "delayed")
        if args.state == "started" and before["state"] != "running":
            self._method(ctx, sel, "StartService", ok=(0, 10))
        elif args.state == "stopped" and before["state"] != "stopped":
            self._method(ctx, sel, "StopService", ok=(0, 5))
        elif args.state == "restarted":
            if before["state"] == "running":
                self._method(ctx, sel, "StopService", ok=(0, 5))
                self._wait(ctx, name, "stopped")
            self._method(ctx, sel, "StartService", ok=(0, 10))

    @staticmethod
    def _method(
        ctx: ModuleContext,
        sel: dict[str, str],
        method: str,
        params: dict[str, Any] | None = None,
        ok: tuple[int, ...] = (0,),
    ) -> None:
        code, _ = winwmi.call(ctx, "Win32_Service", method, sel, params)
        if code not in ok:
            text = RETURN_TEXT.get(code, f"return value {code}")
            raise TaskFailed(f"Win32_Service.{method} on '{sel['Name']}' failed: {text} ({code})", data={"rc": code})

    @staticmethod
    def _set_delayed(ctx: ModuleContext, name: str, delayed: bool, was_delayed: bool) -> None:
        if delayed == was_delayed:
            return
        reg = winwmi.Registry(ctx)
        reg.set(
            winwmi.HIVES["HKLM"],
            f"SYSTEM\\CurrentControlSet\\Services\\{name}",
            "DelayedAutostart",
            "dword",
            int(delayed),
        )

    @staticmethod
    def _wait(ctx: ModuleContext, name: str, state: str, limit_s: float = 30.0) -> dict[str, Any]:
        """Poll until the service reaches ``state`` (services start and stop asynchronously), bounded."""
        deadline = time.monotonic() + limit_s
        while True:
            data = service_result(read_service(ctx, name), name)
            if data.get("state") == state or time.monotonic() >= deadline:
                return data
            if ctx.cancel.wait(0.5):
                return data


class ServiceInfoArgs(ModuleArgs):
    name: str | None = None


@register
class WinServiceInfo(Module[ServiceInfoArgs]):
    name = "win_service_info"
    args_model = ServiceInfoArgs
    supports_check = True
    description = "Facts about Windows services (all, or those matching a name or display name; * wildcards)."

    def run(self, ctx: ModuleContext, args: ServiceInfoArgs) -> ModuleOutcome:
        query = "SELECT * FROM Win32_Service"
        if args.name:
            pattern = winwmi.wql_quote(args.name).replace("*", "%")
            op = "LIKE" if "%" in pattern else "="
            query += f" WHERE Name {op} '{pattern}' OR DisplayName {op} '{pattern}'"
        found = winwmi.rows(ctx, query)
        services = [_info(r) for r in found]
        return ModuleOutcome(data={"exists": bool(services), "services": services})


def _info(row: dict[str, Any]) -> dict[str, Any]:
    """One entry of win_service_info's ``services`` list (the keys Ansible documents that WMI has)."""
    return {
        "name": row.get("Name"),
        "display_name": row.get("DisplayName"),
        "description": row.get("Description"),
        "path": row.get("PathName"),
        "username": row.get("StartName"),
        "start_mode": "auto" if _start_mode(row) == "delayed" else _start_mode(row),
        "delayed_start": bool(row.get("DelayedAutoStart")),
        "state": _state_name(row.get("State")),
        "process_id": row.get("ProcessId"),
        "win32_exit_code": row.get("ExitCode"),
        "service_exit_code": row.get("ServiceSpecificExitCode"),
        "checkpoint": row.get("CheckPoint"),
        "wait_hint_ms": row.get("WaitHint"),
        "type": "win32_own_process" if row.get("ServiceType") == "Own Process" else "win32_share_process",
        "error_control": str(row.get("ErrorControl") or "").lower(),
        "desktop_interact": bool(row.get("DesktopInteract")),
        "dependencies": [],
        "dependency_of": [],
    }
