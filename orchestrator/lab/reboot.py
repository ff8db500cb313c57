"""Restarting a simulated PC: ``Win32_OperatingSystem.Win32Shutdown``/``Reboot`` over WMI.

Microsoft documents ``uint32 Win32Shutdown([in] sint32 Flags)`` (https://learn.microsoft.com/windows/win32/
cimwin32prov/win32shutdown-method-in-class-win32-operatingsystem): Flags 0 log off, 1 shutdown, 2 reboot,
4 forced (added to the others), 8 power off; it returns 0 on success or a Win32 error code, and the caller needs
the shutdown privilege (SeRemoteShutdownPrivilege for a remote caller, held by Administrators): a standard user
gets 1314 (ERROR_PRIVILEGE_NOT_HELD). ``Reboot()`` (…/reboot-method-in-class-win32-operatingsystem) is
Win32Shutdown with Flags 2.

The lab answers 0, then — as Windows does once the shutdown has begun — stops answering: after
``SHUTDOWN_SECONDS`` the PC's listeners close (connection refused), and ``BOOT_SECONDS`` later they open again
with a new ``LastBootUpTime``; WinRS shells and enumerations of the old boot are gone. Real PCs take one to
several minutes; the lab's seconds are a deliberate shortening so that tests stay fast. A PC restarts only
through a lab that registered a power hook (``lab.runner``); elsewhere the method still answers 0 and the PC's
boot time changes at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from orchestrator.lab.provider import CimProperty

if TYPE_CHECKING:  # pragma: no cover
    from orchestrator.lab.machine import Machine

OS_METHODS = ("Reboot", "Shutdown", "Win32Shutdown")
SHUTDOWN_SECONDS = 1.0
BOOT_SECONDS = 3.0
ERROR_PRIVILEGE_NOT_HELD = 1314

PowerHook = Callable[[bool], Awaitable[None]]
_HOOKS: WeakKeyDictionary[Machine, PowerHook] = WeakKeyDictionary()
_GUARD = threading.Lock()
_TASKS: set[asyncio.Task[None]] = set()


def register_power(machine: Machine, hook: PowerHook) -> None:
    with _GUARD:
        _HOOKS[machine] = hook


def invoke(m: Machine, method: str, args: dict[str, str], admin: bool) -> list[CimProperty]:
    if not admin:
        return [CimProperty("ReturnValue", "uint32", ERROR_PRIVILEGE_NOT_HELD)]
    if method == "Reboot":
        flags = 2
    elif method == "Shutdown":
        flags = 1
    else:
        try:
            flags = int(args.get("flags", "0"))
        except ValueError:
            flags = -1
        if flags < 0 or flags & ~0xF:
            return [CimProperty("ReturnValue", "uint32", 87)]  # ERROR_INVALID_PARAMETER
    if flags & 0x3 == 0 and not flags & 8:
        return [CimProperty("ReturnValue", "uint32", 0)]  # log off: nothing to model for a WinRM session
    restart = bool(flags & 2)
    with _GUARD:
        hook = _HOOKS.get(m)
    if hook is None:
        if restart:
            _booted(m)
        return [CimProperty("ReturnValue", "uint32", 0)]
    task = asyncio.get_running_loop().create_task(_cycle(m, hook, restart))
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)
    return [CimProperty("ReturnValue", "uint32", 0)]


def _booted(m: Machine) -> None:
    with m.lock:
        m.boot_time = m.world.clock.now()


async def _cycle(m: Machine, hook: PowerHook, restart: bool) -> None:
    await asyncio.sleep(SHUTDOWN_SECONDS)
    with contextlib.suppress(Exception):
        await hook(False)
    if not restart:
        return
    await asyncio.sleep(BOOT_SECONDS)
    _booted(m)
    with contextlib.suppress(Exception):
        await hook(True)
