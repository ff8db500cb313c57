"""The registry writes made on a simulated PC (through StdRegProv or reg.exe), replayed over the base tree by
``lab.registry``; and what they say about a service's ``DelayedAutostart`` (read by ``lab.services``). A leaf,
so the service rows and the registry tree can each read the other's facts without importing each other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestrator.lab.per_pc import PerPc
from orchestrator.lab.provider import CimValue

if TYPE_CHECKING:
    from orchestrator.lab.machine import Machine


@dataclass(frozen=True)
class Op:
    kind: str  # create_key | delete_key | set_value | delete_value
    hive: str
    path: tuple[str, ...]
    name: str = ""
    reg_type: str = ""
    display: str = ""  # the value as reg.exe shows it


_OPS: PerPc[list[Op]] = PerPc(list)


def _ops(m: Machine) -> list[Op]:
    return _OPS.of(m)


def typed_value(reg_type: str, display: str) -> CimValue:
    """A value as WMI returns it, from reg.exe's display form ('0x1a' for a DWORD, '\\0'-joined multi-strings,
    hex digits for binary data)."""
    if reg_type in ("REG_DWORD", "REG_QWORD"):
        return int(display, 16) if display.lower().startswith("0x") else int(display or "0")
    if reg_type == "REG_MULTI_SZ":
        return tuple(display.split("\\0")) if display else ()
    if reg_type == "REG_BINARY":
        return tuple(bytes.fromhex(display))
    return display


def service_delayed_autostart(m: Machine, service: str) -> bool | None:
    """``DelayedAutostart`` of a service when a write has touched it (see ``lab.services``), else None."""
    path = ("system", "currentcontrolset", "services", service.lower())
    found: bool | None = None
    for op in _ops(m):
        if op.hive != "HKEY_LOCAL_MACHINE":
            continue
        low = tuple(p.lower() for p in op.path)
        if op.kind == "delete_key" and path[: len(low)] == low:
            found = False
        elif low == path and op.name.lower() == "delayedautostart":
            if op.kind == "delete_value":
                found = False
            elif op.kind == "set_value":
                found = op.reg_type == "REG_DWORD" and bool(typed_value(op.reg_type, op.display))
    return found
