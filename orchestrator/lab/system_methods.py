"""WMI methods of the classes modelled outside licensing: ``Win32_Service`` (lab.services), ``StdRegProv``
(lab.registry) and the restart methods of ``Win32_OperatingSystem`` (lab.reboot). ``Machine.invoke`` hands
these classes here, under the machine's lock."""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.lab import files, reboot, registry, services, wmi_classes
from orchestrator.lab.provider import CimProperty

if TYPE_CHECKING:  # pragma: no cover
    from orchestrator.lab.machine import Machine
    from orchestrator.lab.wmi_classes import WmiClass

CLASSES = frozenset({"Win32_Service", "StdRegProv", "Win32_OperatingSystem"})


def invoke(
    m: Machine, cls: WmiClass, method: str, selectors: dict[str, str], args: dict[str, str], admin: bool
) -> list[CimProperty]:
    if cls.name == "StdRegProv":
        return registry.invoke(m, method, args, admin)
    if cls.name == "Win32_OperatingSystem":
        return reboot.invoke(m, method, args, admin)
    rows = wmi_classes.select_instances(m, cls, selectors)
    return services.result(services.invoke(m, rows, method, args, admin))


def snapshot(m: Machine) -> dict[str, object]:
    """What the control API's host view adds: services (state, start mode) and the files written to the PC."""
    return {"services": services.snapshot(m), "files": files.snapshot(m)}
