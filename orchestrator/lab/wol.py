"""Wake-on-LAN for the lab: a UDP listener on the lab's ``wol_broadcast`` address (127.<A>.0.255, a loopback
address; nothing is ever sent to a real broadcast address). A magic packet -- 6 x 0xFF followed by the target
MAC 16 times (optionally a 4- or 6-byte SecureOn password after it) -- powers on the PC with that MAC.
The port is ephemeral unless one is given (real WoL uses 7 or 9, which would need privileges here)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from orchestrator.lab.server import require_loopback

SYNC = b"\xff" * 6


def parse_magic_packet(data: bytes) -> str | None:
    """The MAC a magic packet targets (``52:54:00:12:34:56``), or None when it is not one."""
    start = data.find(SYNC)
    while start >= 0:
        body = data[start + 6 : start + 6 + 96]
        if len(body) == 96:
            mac = body[:6]
            if mac != SYNC and body == mac * 16:
                return ":".join(f"{b:02X}" for b in mac)
        start = data.find(SYNC, start + 1)
    return None


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, listener: WolListener) -> None:
        self.listener = listener

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        mac = parse_magic_packet(data[:1024])
        self.listener.packets += 1
        if mac is not None:
            self.listener.schedule(mac)


class WolListener:
    def __init__(self, address: str, port: int, wake: Callable[[str], Coroutine[Any, Any, bool]]) -> None:
        require_loopback(address)
        self.address = address
        self.port = port
        self._wake = wake
        self._transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[bool]] = set()
        self.packets = 0
        self.woken: list[str] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(self.address, self.port), reuse_port=False
        )
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]

    def schedule(self, mac: str) -> None:
        task: asyncio.Task[bool] = asyncio.get_running_loop().create_task(self._wake(mac))
        self._tasks.add(task)
        task.add_done_callback(self._done(mac))

    def _done(self, mac: str) -> Callable[[asyncio.Task[bool]], None]:
        def callback(task: asyncio.Task[bool]) -> None:
            self._tasks.discard(task)
            if not task.cancelled() and task.exception() is None and task.result():
                self.woken.append(mac)

        return callback

    async def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
