"""The lab's TCP port test (Test-NetConnection, TcpClient.BeginConnect) judges by the kernel's state, over real
loopback sockets: a listening port connects, a closed one does not, and a connect the kernel finished while the
lab's event loop was busy still counts."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest

from orchestrator.lab.commands.tools import _established, tcp_test


@pytest.fixture
def listener() -> Iterator[tuple[str, int]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_listening_and_closed_ports(listener: tuple[str, int]) -> None:
    assert asyncio.run(tcp_test(*listener, timeout=2.0)) is True
    assert asyncio.run(tcp_test("127.0.0.1", _closed_port(), timeout=2.0)) is False
    assert asyncio.run(tcp_test("192.0.2.1", 1688, timeout=2.0)) is False  # not loopback: no traffic at all


def test_a_connect_the_kernel_finished_counts_when_the_loop_was_late(listener: tuple[str, int]) -> None:
    """The event loop is blocked past the whole wait: the completion callback and the timeout are due together."""

    async def late() -> bool:
        loop = asyncio.get_running_loop()
        loop.call_soon(time.sleep, 0.3)  # a starved lab process: nothing runs for 0.3 s
        return await tcp_test(*listener, timeout=0.01)

    assert asyncio.run(late()) is True


def test_established_reads_the_socket_state(listener: tuple[str, int]) -> None:
    with socket.socket() as sock:
        assert _established(sock) is False  # never connected
        sock.connect(listener)
        assert _established(sock) is True
    with socket.socket() as sock:
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", _closed_port()))
        time.sleep(0.1)
        assert _established(sock) is False  # refused
