"""Host modules for any Windows PC: win_ping, win_command, win_shell and setup (facts)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from pydantic import Field, field_validator, model_validator

from orchestrator.modules.ansible_facts import distribution_facts, gather_ansible_facts
from orchestrator.modules.base import Module, ModuleArgs, ModuleContext, ModuleOutcome, TaskFailed, register
from orchestrator.transport.errors import WSManFault
from orchestrator.transport.winrm import CommandResult
from orchestrator.winargs import quote_arg

WINDOWS_APP_ID = "55c92734-d682-4d71-983e-d6ec3f16059f"
OFFICE_APP_ID = "0ff1ce15-a989-479d-af46-f275c6370663"


# --------------------------------------------------------------------------- win_ping


class PingArgs(ModuleArgs):
    data: str = "pong"


@register
class WinPing(Module[PingArgs]):
    name = "win_ping"
    args_model = PingArgs
    supports_check = True
    description = "Check that the PC answers WinRM and WMI (one WQL round trip)."

    def run(self, ctx: ModuleContext, args: PingArgs) -> ModuleOutcome:
        if args.data == "crash":
            raise TaskFailed("boom (data=crash was requested)")
        started = time.monotonic()
        rows = ctx.conn.wql("SELECT CSName FROM Win32_OperatingSystem")
        rtt_ms = int((time.monotonic() - started) * 1000)
        name = rows[0].get("CSName") if rows else None
        return ModuleOutcome(data={"ping": args.data, "computer_name": name, "rtt_ms": rtt_ms})


# --------------------------------------------------------------------------- win_command / win_shell


def _check_folder(value: str | None) -> str | None:
    """A Windows folder name cannot contain ``"`` (nor control characters); refusing them keeps the quoting of
    ``cmd_line_in``/``powershell_in`` sound."""
    if value is not None and (not value.strip() or any(c == '"' or ord(c) < 32 for c in value)):
        raise ValueError("'chdir' must be a folder path (not empty, no double quote or control character)")
    return value


def cmd_line_in(folder: str, command: str) -> str:
    """A command line that runs ``command`` in ``folder`` through the WinRS shell's own cmd.exe.

    WinRS already runs a command line as ``cmd.exe /c <line>`` (MS-WSMV ``WINRS_SKIP_CMD_SHELL`` false, the
    default), so the line itself is ``cd /d "FOLDER" && COMMAND``: one cmd.exe changes drive and folder
    (``cd /d``, Microsoft Learn "cd") and runs COMMAND only if that worked (``&&``), in that folder. Wrapping it
    in another ``cmd.exe /c`` is wrong: the outer cmd splits at ``&&`` and runs COMMAND in the profile folder.
    The line starts with ``cd``, not a quote, so cmd's ``/c`` quote-stripping rule never applies; inside the
    double quotes ``&``, ``|``, ``(``, ``)``, ``^`` and blanks are literal; ``%VAR%`` is expanded by cmd."""
    return f'cd /d "{folder}" && {command}'


def powershell_in(folder: str, script: str) -> str:
    """The script preceded by ``Set-Location -LiteralPath 'FOLDER' -ErrorAction Stop``: single-quoted (only
    ``'`` is special there, doubled), no wildcard expansion, and a missing folder ends the script with exit
    code 1 instead of running it elsewhere (Microsoft Learn "Set-Location", about_Quoting_Rules)."""
    quoted = folder.replace("'", "''")
    return f"Set-Location -LiteralPath '{quoted}' -ErrorAction Stop\n{script}"


class CommandArgs(ModuleArgs):
    cmd: str | None = None
    argv: list[str] | None = None
    chdir: str | None = None
    creates: str | None = None
    removes: str | None = None
    stdin: str | None = None
    timeout: float | None = Field(None, gt=0, le=86400)

    _chdir = field_validator("chdir")(_check_folder)

    @model_validator(mode="after")
    def _one(self) -> CommandArgs:
        if (self.cmd is None) == (self.argv is None):
            raise ValueError("give exactly one of 'cmd' (free-form) or 'argv'")
        if self.argv is not None and not self.argv:
            raise ValueError("'argv' must not be empty")
        return self

    def command_line(self) -> str:
        if self.argv is not None:
            return " ".join(quote_arg(a) for a in self.argv)
        return (self.cmd or "").strip()


def _path_test(ctx: ModuleContext, path: str) -> bool:
    script = f"if (Test-Path -LiteralPath '{path.replace(chr(39), chr(39) * 2)}') {{ 'True' }} else {{ 'False' }}"
    res = ctx.conn.run_powershell(script, read_only=True)
    return res.stdout.strip().lower().endswith("true")


def _command_data(res: CommandResult, cmd: str, started: datetime) -> dict[str, Any]:
    ended = datetime.now(UTC)
    return {
        "cmd": cmd,
        "rc": res.rc,
        "stdout": res.stdout,
        "stderr": res.stderr,
        "stdout_lines": res.stdout.splitlines(),
        "stderr_lines": res.stderr.splitlines(),
        "start": started.isoformat(),
        "end": ended.isoformat(),
        "delta": str(ended - started),
    }


def _creates_removes(ctx: ModuleContext, args: CommandArgs, cmd: str, *, skipped: bool = True) -> ModuleOutcome | None:
    """The result when ``creates``/``removes`` says not to run. win_command, win_shell (``$module.Result.skipped =
    $true``) and the script action (``skipped=True``) report a skipped task; win_powershell only sets ``msg``
    (``skipped=False``)."""
    if args.creates and _path_test(ctx, args.creates):
        why = f"skipped, since {args.creates} exists"
    elif args.removes and not _path_test(ctx, args.removes):
        why = f"skipped, since {args.removes} does not exist"
    else:
        return None
    data: dict[str, Any] = {"cmd": cmd, "rc": 0, "stdout": ""}
    if skipped:
        data["skipped"] = True
    return ModuleOutcome(skipped=skipped, msg=why, data=data)


def _finish(res: CommandResult, cmd: str, started: datetime, what: str) -> ModuleOutcome:
    data = _command_data(res, cmd, started)
    if res.truncated:
        data["truncated"] = True
        raise TaskFailed(
            f"{what} printed more than kmsfleet_max_output_bytes allows; its output was cut there and the {what} "
            "was stopped",
            data=data,
        )
    if res.rc != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()
        detail = f": {tail[-1]}" if tail else ""
        raise TaskFailed(f"{what} exited with rc {res.rc}{detail}", data=data)
    return ModuleOutcome(changed=True, data=data)


@register
class WinCommand(Module[CommandArgs]):
    name = "win_command"
    args_model = CommandArgs
    free_form = "cmd"
    supports_check = True  # only decides with creates/removes; otherwise skipped in check mode
    description = "Run a command through cmd.exe's rules (no shell operators); rc != 0 fails the task."

    def run(self, ctx: ModuleContext, args: CommandArgs) -> ModuleOutcome:
        cmd = args.command_line()
        if ctx.check_mode and not (args.creates or args.removes):
            return ModuleOutcome(
                skipped=True, msg="skipped in check mode: win_command cannot tell what it would change"
            )
        done = _creates_removes(ctx, args, cmd)
        if done is not None:
            return done
        if ctx.check_mode:
            return ModuleOutcome(changed=True, msg=f"would run: {cmd}")
        started = datetime.now(UTC)
        stdin = args.stdin.encode() if args.stdin is not None else None
        if args.chdir:
            res = ctx.conn.run_command(cmd_line_in(args.chdir, cmd), stdin=stdin, timeout=args.timeout)
        else:
            exe, _, rest = _split_executable(cmd)
            res = ctx.conn.run_command(exe, [rest] if rest else [], stdin=stdin, timeout=args.timeout)
        return _finish(res, cmd, started, "command")


def _split_executable(cmd: str) -> tuple[str, str, str]:
    """'"C:\\Program Files\\x.exe" /a b' → ('"C:\\Program Files\\x.exe"', ' ', '/a b')."""
    text = cmd.strip()
    if text.startswith('"'):
        end = text.find('"', 1)
        if end > 0:
            return text[: end + 1], " ", text[end + 1 :].strip()
    exe, sep, rest = text.partition(" ")
    return exe, sep, rest.strip()


class ShellArgs(ModuleArgs):
    cmd: str
    chdir: str | None = None
    creates: str | None = None
    removes: str | None = None
    executable: str | None = None  # default PowerShell; "cmd" runs through cmd.exe
    stdin: str | None = None
    timeout: float | None = Field(None, gt=0, le=86400)

    _chdir = field_validator("chdir")(_check_folder)


@register
class WinShell(Module[ShellArgs]):
    name = "win_shell"
    args_model = ShellArgs
    free_form = "cmd"
    supports_check = True
    description = "Run a PowerShell script (sent as -EncodedCommand) or, with executable: cmd, a cmd.exe line."

    def run(self, ctx: ModuleContext, args: ShellArgs) -> ModuleOutcome:
        if ctx.check_mode and not (args.creates or args.removes):
            return ModuleOutcome(skipped=True, msg="skipped in check mode: win_shell cannot tell what it would change")
        cmd_args = CommandArgs(cmd=args.cmd, creates=args.creates, removes=args.removes)
        done = _creates_removes(ctx, cmd_args, args.cmd)
        if done is not None:
            return done
        if ctx.check_mode:
            return ModuleOutcome(changed=True, msg=f"would run: {args.cmd}")
        started = datetime.now(UTC)
        exe = (args.executable or "powershell").lower()
        if exe in ("cmd", "cmd.exe"):
            line = cmd_line_in(args.chdir, args.cmd) if args.chdir else args.cmd
            res = ctx.conn.run_command(line, timeout=args.timeout)
        else:
            script = powershell_in(args.chdir, args.cmd) if args.chdir else args.cmd
            res = ctx.conn.run_powershell(script, timeout=args.timeout)
        return _finish(res, args.cmd, started, "script")


# --------------------------------------------------------------------------- setup


class SetupArgs(ModuleArgs):
    gather_subset: list[str] = Field(default_factory=lambda: ["all"])
    gather_timeout: int = Field(30, ge=1, le=600)


def _first(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return rows[0] if rows else {}


def _to_int(value: Any, default: int | None = None) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default


def _dt(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


def gather_os_facts(ctx: ModuleContext) -> dict[str, Any]:
    conn = ctx.conn
    before = ctx.controller_now()
    t0 = time.monotonic()
    os_row = _first(
        conn.wql(
            "SELECT Caption, Version, BuildNumber, OSArchitecture, CSName, LocalDateTime, LastBootUpTime, "
            "OperatingSystemSKU, ProductType, SerialNumber, ServicePackMajorVersion, ServicePackMinorVersion "
            "FROM Win32_OperatingSystem"
        )
    )
    rtt = time.monotonic() - t0
    tz_row = _first(conn.wql("SELECT Caption, StandardName, Bias FROM Win32_TimeZone"))
    cs_row = _first(conn.wql("SELECT Name, Domain, PartOfDomain, Manufacturer, Model FROM Win32_ComputerSystem"))
    local_dt = _dt(os_row.get("LocalDateTime"))
    offset_s: float | None = None
    if local_dt is not None:
        reference = before.timestamp() + rtt / 2  # the controller's time when the PC read its clock, about
        offset_s = round(local_dt.timestamp() - reference, 1)
    product_type = _to_int(os_row.get("ProductType"), 1)
    facts: dict[str, Any] = {
        **distribution_facts(os_row),
        "ansible_os_installation_type": "Server" if product_type in (2, 3) else "Client",
        "ansible_architecture": os_row.get("OSArchitecture"),
        "ansible_hostname": cs_row.get("Name") or os_row.get("CSName"),
        "ansible_domain": cs_row.get("Domain"),
        "ansible_system_vendor": cs_row.get("Manufacturer"),
        "ansible_product_name": cs_row.get("Model"),
        "kmsfleet_os_build": os_row.get("BuildNumber"),
        "kmsfleet_os_sku": _to_int(os_row.get("OperatingSystemSKU")),
        "kmsfleet_is_server": product_type in (2, 3),
        "kmsfleet_timezone": tz_row.get("StandardName") or tz_row.get("Caption"),
        "kmsfleet_timezone_caption": tz_row.get("Caption"),
        "kmsfleet_timezone_bias": _to_int(tz_row.get("Bias")),
        "kmsfleet_clock_offset_seconds": offset_s,
        "kmsfleet_local_time": local_dt.isoformat() if local_dt else None,
    }
    return facts


def gather_network_facts(ctx: ModuleContext) -> dict[str, Any]:
    rows = ctx.conn.wql(
        "SELECT Description, MACAddress, IPAddress FROM Win32_NetworkAdapterConfiguration WHERE IPEnabled = TRUE"
    )
    interfaces = []
    mac = None
    for row in rows:
        ips = row.get("IPAddress")
        ips = ips if isinstance(ips, list) else [ips] if ips else []
        interfaces.append({"name": row.get("Description"), "macaddress": row.get("MACAddress"), "ipv4": ips})
        mac = mac or row.get("MACAddress")
    return {"ansible_interfaces": interfaces, "kmsfleet_mac": mac}


def gather_product_facts(ctx: ModuleContext, os_version: str = "") -> dict[str, Any]:
    """Which licensable products the PC has (Windows, Office via SPP or OSPP), and SQL Server services.
    The OSPP classes exist only where Office uses its own licensing service: Windows 7 (version 6.1)."""
    conn = ctx.conn
    office: list[dict[str, Any]] = []
    rows = conn.wql(
        "SELECT ID, Name, Description, ApplicationID FROM SoftwareLicensingProduct "
        f"WHERE ApplicationID = '{OFFICE_APP_ID}' AND PartialProductKey IS NOT NULL"
    )
    for row in rows:
        office.append({"name": row.get("Name"), "description": row.get("Description"), "service": "spp"})
    ospp: list[dict[str, Any]] = []
    if os_version.startswith("6.1"):
        try:
            ospp = conn.wql(
                "SELECT ID, Name, Description FROM OfficeSoftwareProtectionProduct WHERE PartialProductKey IS NOT NULL"
            )
        except WSManFault:
            ospp = []  # Office 2013/2016 not installed: no OSPP service
    for row in ospp:
        office.append({"name": row.get("Name"), "description": row.get("Description"), "service": "ospp"})
    versions = sorted({v for v in (_office_version(str(o["name"] or "")) for o in office) if v})
    services = conn.wql("SELECT Name, State FROM Win32_Service WHERE Name LIKE 'MSSQL%'")
    sql = sorted(str(s.get("Name")) for s in services if str(s.get("Name", "")).upper().startswith("MSSQL"))
    return {
        "kmsfleet_office": office,
        "kmsfleet_office_versions": versions,
        "kmsfleet_has_office": bool(office),
        "kmsfleet_sql_services": sql,
        "kmsfleet_has_sql": bool(sql),
    }


def _office_version(name: str) -> int | None:
    """'Office 15, …' → 2013; 'Office 16, Office16…' → 2016; 'Office 19, …2019…' → 2019."""
    m = re.search(r"Office\s*(\d\d)", name)
    if not m:
        return None
    major = int(m.group(1))
    if major == 15:
        return 2013
    if major == 16:
        return 2019 if "2019" in name else 2016
    if major == 19:
        return 2019
    if major == 21:
        return 2021
    if major == 24:
        return 2024
    return None


@register
class Setup(Module[SetupArgs]):
    name = "setup"
    args_model = SetupArgs
    supports_check = True
    description = "Gather facts: OS, time zone and clock offset, network, installed Office and SQL Server."

    def run(self, ctx: ModuleContext, args: SetupArgs) -> ModuleOutcome:
        subset = {s.lower() for s in args.gather_subset}
        every = "all" in subset
        facts: dict[str, Any] = {}
        facts.update(gather_os_facts(ctx))
        if every or "network" in subset:
            facts.update(gather_network_facts(ctx))
        facts.update(gather_ansible_facts(ctx, facts, subset))  # Ansible's key names: date_time, env, addresses …
        if every or "licensing" in subset or "products" in subset:
            facts.update(gather_product_facts(ctx, str(facts.get("ansible_distribution_version") or "")))
        facts["kmsfleet_facts_gathered"] = datetime.now(UTC).isoformat()
        return ModuleOutcome(facts=facts, data={"ansible_facts": facts})
