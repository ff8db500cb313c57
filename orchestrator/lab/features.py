"""``Win32_ServerFeature``: the roles and features installed on a simulated Windows Server.

Microsoft's page (https://learn.microsoft.com/windows/win32/wmisdk/win32-serverfeature) defines the class
(``uint32 ID; uint32 ParentID; string Name``), lists the ID values (File Services role services under parent
ID 6, e.g. 255 File Server) and says instances are not available on client computers: on a client Windows the
lab answers the class as unknown (WBEM_E_INVALID_CLASS), as a query there fails. A lab server has the file
server role service every Windows Server installs by default.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.lab.provider import CimValue, WmiError

if TYPE_CHECKING:  # pragma: no cover
    from orchestrator.lab.machine import Machine

FEATURE_PROPS = "ID:uint32 ParentID:uint32 Name:string"
WBEM_E_INVALID_CLASS = 0x80041010

_SERVER_DEFAULTS: tuple[tuple[int, int, str], ...] = (
    (6, 0, "File Services"),
    (255, 6, "File Server"),
)


def rows(m: Machine) -> list[dict[str, CimValue]]:
    if m.config.family != "server":
        raise WmiError(WBEM_E_INVALID_CLASS, "Invalid class", kind="invalid_class")
    return [{"ID": i, "ParentID": p, "Name": n} for i, p, n in _SERVER_DEFAULTS]
