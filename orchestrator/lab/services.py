"""Service control on a simulated PC: the ``Win32_Service`` methods and the state they change.

The rows of ``Win32_Service`` are built in ``wmi_classes`` from the PC's configuration; this module keeps what
was changed since (state, start mode, deleted services) per PC and lays it over those rows, and adds two
services every Windows installation has (Print Spooler, Windows Update) so that classroom playbooks that check
them find them.

Methods and return codes follow Microsoft's documentation of the Win32_Service class
(https://learn.microsoft.com/windows/win32/cimwin32prov/win32-service):
- ``StartService`` (…/startservice-method-in-class-win32-service): 0 accepted, 2 access denied (a standard
  user), 10 already running, 14 the service is disabled.
- ``StopService`` (…/stopservice-method-in-class-win32-service): 0 accepted, 2 access denied, 5 "the service
  cannot accept control" when it is not running (its state is stopped), 3 when a running service depends on it
  (not modelled: the lab's services have no dependents).
- ``ChangeStartMode(StartMode)`` (…/changestartmode-method-in-class-win32-service): the argument is one of
  Boot, System, Automatic, Manual, Disabled; anything else is 21 (invalid parameter); 2 access denied. The
  ``StartMode`` property then reads ``Auto``/``Manual``/``Disabled`` (the property's own value set).
- ``Delete`` (…/delete-method-in-class-win32-service): 0, 2 access denied. As the SCM's ``DeleteService``
  documents, a running service is only marked for deletion and leaves the database once it has stopped; a
  second ``Delete`` on it answers 16 ("being removed from the system").
Delayed automatic start is not a ``ChangeStartMode`` value: the Service Control Manager reads it from the
``DelayedAutostart`` DWORD under ``HKLM\\SYSTEM\\CurrentControlSet\\Services\\<name>`` (documented with
``SERVICE_DELAYED_AUTO_START_INFO``, ChangeServiceConfig2), so ``DelayedAutoStart`` is read from the lab's
registry (``lab.registry``) when that value has been written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from orchestrator.lab.per_pc import PerPc
from orchestrator.lab.provider import CimProperty, CimValue, WmiError
from orchestrator.lab.registry_writes import service_delayed_autostart

if TYPE_CHECKING:  # pragma: no cover
    from orchestrator.lab.machine import Machine

SERVICE_METHODS = ("ChangeStartMode", "Delete", "StartService", "StopService")

# Win32_Service method return values (Microsoft docs, see above)
OK = 0
ACCESS_DENIED = 2
CANNOT_ACCEPT_CONTROL = 5
ALREADY_RUNNING = 10
SERVICE_DISABLED = 14
MARKED_FOR_DELETION = 16
INVALID_PARAMETER = 21

_START_MODES = {"boot": "Boot", "system": "System", "automatic": "Auto", "manual": "Manual", "disabled": "Disabled"}


@dataclass
class ServiceChanges:
    state: dict[str, str] = field(default_factory=dict)  # lower name -> Running | Stopped
    start_mode: dict[str, str] = field(default_factory=dict)  # lower name -> Auto | Manual | Disabled | …
    deleted: set[str] = field(default_factory=set)
    pending_delete: set[str] = field(default_factory=set)


_CHANGES: PerPc[ServiceChanges] = PerPc(ServiceChanges)


def changes(m: Machine) -> ServiceChanges:
    return _CHANGES.of(m)


def overlay(m: Machine, rows: list[dict[str, CimValue]]) -> list[dict[str, CimValue]]:
    """The configured rows plus the standard services, with the changes made through the methods applied."""
    ch = changes(m)
    out = []
    for configured in [*rows, *standard_rows(m)]:
        low = str(configured["Name"]).lower()
        if low in ch.deleted:
            continue
        row = dict(configured)
        state = ch.state.get(low)
        if state is not None:
            running = state == "Running"
            row.update(
                State=state,
                Started=running,
                AcceptStop=running,
                ExitCode=0 if running else 1077,
                ProcessId=(m.hardware.pid_base + sum(map(ord, low)) * 4) if running else 0,
            )
        mode = ch.start_mode.get(low)
        if mode is not None:
            row["StartMode"] = mode
        delayed = service_delayed_autostart(m, str(row["Name"]))
        if delayed is not None and not m.os.is_win7:
            row["DelayedAutoStart"] = delayed and row["StartMode"] == "Auto"
        out.append(row)
    return sorted(out, key=lambda r: str(r["Name"]).lower())


def invoke(m: Machine, rows: list[dict[str, CimValue]], method: str, args: dict[str, str], admin: bool) -> int:
    """Run one Win32_Service method on the (single) row the selectors matched; returns ReturnValue."""
    if len(rows) != 1:
        raise WmiError(0x80041002, "Not found", kind="not_found")
    if not admin:
        return ACCESS_DENIED
    handler = _METHODS.get(method)
    if handler is None:
        raise WmiError(0x80041055, "Invalid method", kind="invalid_parameter")
    return handler(changes(m), rows[0], args)


def _start(ch: ServiceChanges, row: dict[str, CimValue], args: dict[str, str]) -> int:
    if row["State"] == "Running":
        return ALREADY_RUNNING
    if row["StartMode"] == "Disabled":
        return SERVICE_DISABLED
    ch.state[str(row["Name"]).lower()] = "Running"
    return OK


def _stop(ch: ServiceChanges, row: dict[str, CimValue], args: dict[str, str]) -> int:
    if row["State"] != "Running":
        return CANNOT_ACCEPT_CONTROL
    low = str(row["Name"]).lower()
    ch.state[low] = "Stopped"
    if low in ch.pending_delete:
        ch.deleted.add(low)
    return OK


def _change_start_mode(ch: ServiceChanges, row: dict[str, CimValue], args: dict[str, str]) -> int:
    wanted = _START_MODES.get(args.get("startmode", "").strip().lower())
    if wanted is None:
        return INVALID_PARAMETER
    ch.start_mode[str(row["Name"]).lower()] = wanted
    return OK


def _delete(ch: ServiceChanges, row: dict[str, CimValue], args: dict[str, str]) -> int:
    """A running service is only marked for deletion and goes when it stops (Microsoft docs, DeleteService)."""
    low = str(row["Name"]).lower()
    if low in ch.pending_delete:
        return MARKED_FOR_DELETION
    if row["State"] == "Running":
        ch.pending_delete.add(low)
    else:
        ch.deleted.add(low)
    return OK


_METHODS: dict[str, Callable[[ServiceChanges, dict[str, CimValue], dict[str, str]], int]] = {
    "StartService": _start,
    "StopService": _stop,
    "ChangeStartMode": _change_start_mode,
    "Delete": _delete,
}


def result(code: int) -> list[CimProperty]:
    return [CimProperty("ReturnValue", "uint32", code)]


def snapshot(m: Machine) -> dict[str, dict[str, str]]:
    """Ground truth for tests and the control API: name -> {state, start_mode}."""
    return {str(r["Name"]): {"state": str(r["State"]), "start_mode": str(r["StartMode"])} for r in _services(m)}


# ------------------------------------------------------------------ the Win32_Service rows


@dataclass(frozen=True, slots=True)
class _ServiceDef:
    """One modelled service as Win32_Service lists it; ``path`` may name ``{sysdir}`` and ``{common}``."""

    name: str
    display: str
    path: str
    mode: str
    desc: str
    own: bool = True
    start_name: str = "LocalSystem"


_WINDOWS_SERVICES = (
    _ServiceDef(
        "sppsvc",
        "Software Protection",
        "{sysdir}\\sppsvc.exe",
        "Auto",
        "Enables the download, installation and enforcement of digital licenses for Windows and Windows "
        "applications. If the service is disabled, the operating system and licensed applications may run in "
        "a notification mode. It is strongly recommended that you not disable the Software Protection service.",
        start_name="NT AUTHORITY\\NetworkService",
    ),
    _ServiceDef(
        "W32Time",
        "Windows Time",
        "{sysdir}\\svchost.exe -k LocalService",
        "Manual",
        "Maintains date and time synchronization on all clients and servers in the network. If this service "
        "is stopped, date and time synchronization will be unavailable. If this service is disabled, any "
        "services that explicitly depend on it will fail to start.",
        own=False,
        start_name="NT AUTHORITY\\LocalService",
    ),
    _ServiceDef(
        "WinRM",
        "Windows Remote Management (WS-Management)",
        "{sysdir}\\svchost.exe -k NetworkService",
        "Auto",
        "Windows Remote Management (WinRM) service implements the WS-Management protocol for remote management.",
        own=False,
        start_name="NT AUTHORITY\\NetworkService",
    ),
)
_OSPP_SERVICE = _ServiceDef(
    "osppsvc",
    "Office  Software Protection Platform",
    '"{common}\\Microsoft Shared\\OfficeSoftwareProtectionPlatform\\OSPPSVC.EXE"',
    "Manual",
    "Office Software Protection Platform manages the download, installation and enforcement of "
    "digital licenses for Office.",
    start_name="NT AUTHORITY\\NetworkService",
)
_C2R_SERVICE = _ServiceDef(
    "ClickToRunSvc",
    "Microsoft Office Click-to-Run Service",
    '"C:\\Program Files\\Common Files\\Microsoft Shared\\ClickToRun\\OfficeClickToRun.exe" /service',
    "Auto",
    "Manages resource coordination, background streaming, and system integration of Microsoft Office "
    "products and their related updates. This service is required to be running during the use of any "
    "Office program.",
)


_STANDARD_SERVICES = (  # (definition, state)
    (
        _ServiceDef(
            "Spooler",
            "Print Spooler",
            "{sysdir}\\spoolsv.exe",
            "Auto",
            "This service spools print jobs and handles interaction with the printer.",
        ),
        "Running",
    ),
    (
        _ServiceDef(
            "wuauserv",
            "Windows Update",
            "{sysdir}\\svchost.exe -k netsvcs",
            "Manual",
            "Enables the detection, download, and installation of updates for Windows and other programs.",
            own=False,
        ),
        "Stopped",
    ),
)


def standard_rows(m: Machine) -> list[dict[str, CimValue]]:
    """Services present on every Windows installation (names, display names, paths as Windows ships them)."""
    sysdir = _sysdir(m)
    return [_service_row(m, svc, svc.path.replace("{sysdir}", sysdir), state) for svc, state in _STANDARD_SERVICES]


def _sysdir(m: Machine) -> str:
    return "C:\\Windows\\system32" if m.os.is_win7 else "C:\\WINDOWS\\system32"


def _sql_service(instance_name: str, instance_id: str) -> _ServiceDef:
    svc = "MSSQLSERVER" if instance_name == "MSSQLSERVER" else f"MSSQL${instance_name}"
    return _ServiceDef(
        svc,
        f"SQL Server ({instance_name})",
        f'"C:\\Program Files\\Microsoft SQL Server\\{instance_id}\\MSSQL\\Binn\\sqlservr.exe" -s{instance_name}',
        "Auto",
        "Provides storage, processing and controlled access of data, and rapid transaction processing.",
        start_name=f"NT Service\\{svc}",
    )


def _service_row(m: Machine, svc: _ServiceDef, path: str, state: str = "Running") -> dict[str, CimValue]:
    running = state == "Running"
    name = svc.name
    return {
        "AcceptPause": False,
        "AcceptStop": running,
        "Caption": svc.display,
        "CheckPoint": 0,
        "CreationClassName": "Win32_Service",
        "DelayedAutoStart": name in ("sppsvc", "WinRM") and not m.os.is_win7,
        "Description": svc.desc,
        "DesktopInteract": False,
        "DisplayName": svc.display,
        "ErrorControl": "Normal",
        "ExitCode": 0 if running else 1077,
        "InstallDate": None,
        "Name": name,
        "PathName": path,
        "ProcessId": (m.hardware.pid_base + sum(map(ord, name)) * 4) if running else 0,
        "ServiceSpecificExitCode": 0,
        "ServiceType": "Own Process" if svc.own else "Share Process",
        "Started": running,
        "StartMode": svc.mode,
        "StartName": svc.start_name,
        "State": state,
        "Status": "OK",
        "SystemCreationClassName": "Win32_ComputerSystem",
        "SystemName": m.computer_name,
        "TagId": 0,
        "WaitHint": 0,
    }


def _services(m: Machine) -> list[dict[str, CimValue]]:
    return overlay(m, _configured_services(m))


def _configured_services(m: Machine) -> list[dict[str, CimValue]]:
    """The modelled services this PC has, as configured (before the state changes ``overlay`` applies)."""
    sysdir = _sysdir(m)
    office = m.office_install
    common = "C:\\Program Files\\Common Files"
    if office is not None and office.bitness != "x64":
        common = "C:\\Program Files (x86)\\Common Files"
    found = list(_WINDOWS_SERVICES)
    if office is not None and m.licensing.ospp is not None:
        found.append(_OSPP_SERVICE)
    if office is not None and office.click_to_run:
        found.append(_C2R_SERVICE)
    found += [_sql_service(inst.name, inst.instance_id) for inst in m.sql_instances()]
    return [_service_row(m, svc, svc.path.replace("{sysdir}", sysdir).replace("{common}", common)) for svc in found]
