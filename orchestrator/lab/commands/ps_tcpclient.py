"""``System.Net.Sockets.TcpClient`` as PowerShell scripts use it for a TCP port test that runs on every Windows
PowerShell from 2.0 on (``Test-NetConnection`` needs 4.0 and Windows 8.1)::

    $tcp = New-Object System.Net.Sockets.TcpClient
    $wait = $tcp.BeginConnect('127.0.0.2', 1688, $null, $null)
    $open = $wait.AsyncWaitHandle.WaitOne(3000, $false) -and $tcp.Connected
    $tcp.Close()
    $open

.NET semantics modelled (TcpClient.BeginConnect / WaitHandle.WaitOne, .NET Framework 2.0+ docs): the connect
runs in the background; ``WaitOne(ms)`` is True when the attempt finished (connected *or* refused, or the name
did not resolve) within ``ms``, False when nothing answered in time; ``Connected`` is True only after a
successful connect. The connect waits the script's whole WaitOne timeout (at most ``MAX_WAIT_S``): a KMS
host whose accept queue is briefly full still answers when the client's SYN is retransmitted.
The lab connects for real to loopback addresses only; a name it cannot resolve fails at
once; any other address never answers (WaitOne waits its whole timeout, with no traffic).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.lab.commands.powershell import PsState

_NEW = re.compile(
    r"(?i)^\$(\w+)\s*=\s*New-Object\s+(?:-TypeName\s+)?['\"]?(?:System\.)?Net\.Sockets\.TcpClient['\"]?\s*$"
)
_BEGIN = re.compile(
    r"(?i)^\$(\w+)\s*=\s*\$(\w+)\.BeginConnect\(\s*(.+?)\s*,\s*(\S+?)\s*,\s*\$null\s*,\s*\$null\s*\)\s*$"
)
_WAIT = re.compile(
    r"(?i)^\$(\w+)\s*=\s*\$(\w+)\.AsyncWaitHandle\.WaitOne\(\s*(\d+)\s*(?:,\s*\$(?:false|true)\s*)?\)"
    r"\s*(?:-and\s+\$(\w+)\.Connected)?\s*$"
)
_CLOSE = re.compile(r"(?i)^\$(\w+)\.(Close|Dispose)\(\s*\)\s*$")
_CONNECTED = re.compile(r"(?i)^\$(\w+)\.Connected\s*$")


# The longest real wait the lab grants one WaitOne (a script may ask for hours; Windows would wait them).
MAX_WAIT_S = 30.0


@dataclass
class TcpClientSim:
    connected: bool = False
    closed: bool = False


@dataclass
class ConnectAttempt:
    client: TcpClientSim
    host: str
    port: int


async def run_statement(state: PsState, stmt: str) -> bool:
    """Run ``stmt`` when it is one of the TcpClient statements above; False when it is something else."""
    for pattern, handler in _HANDLERS:
        m = pattern.match(stmt)
        if m and await handler(state, m):
            state.ok = True
            return True
    return False


def _client(state: PsState, name: str) -> TcpClientSim | None:
    found = state.objects.get(name.lower())
    return found if isinstance(found, TcpClientSim) else None


async def _new(state: PsState, m: re.Match[str]) -> bool:
    state.objects[m.group(1).lower()] = TcpClientSim()
    return True


async def _begin(state: PsState, m: re.Match[str]) -> bool:
    client = _client(state, m.group(2))
    port_text = _literal(state, m.group(4))
    if client is None or not port_text.isdigit():
        return False
    state.objects[m.group(1).lower()] = ConnectAttempt(client, _literal(state, m.group(3)), int(port_text))
    return True


async def _wait(state: PsState, m: re.Match[str]) -> bool:
    attempt = state.objects.get(m.group(2).lower())
    if not isinstance(attempt, ConnectAttempt):
        return False
    value = await _connect(state, attempt, int(m.group(3)) / 1000.0)
    if m.group(4) is not None:
        client = _client(state, m.group(4))
        value = value and client is not None and client.connected
    state.variables[m.group(1).lower()] = "True" if value else "False"
    return True


async def _close(state: PsState, m: re.Match[str]) -> bool:
    client = _client(state, m.group(1))
    if client is None:
        return False
    client.closed = True
    client.connected = False
    return True


async def _connected(state: PsState, m: re.Match[str]) -> bool:
    client = _client(state, m.group(1))
    if client is None:
        return False
    state.out += ("True" if client.connected else "False") + "\r\n"
    return True


_HANDLERS: tuple[tuple[re.Pattern[str], Callable[[PsState, re.Match[str]], Awaitable[bool]]], ...] = (
    (_NEW, _new),
    (_BEGIN, _begin),
    (_WAIT, _wait),
    (_CLOSE, _close),
    (_CONNECTED, _connected),
)


def _literal(state: PsState, text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return state.expand(text[1:-1])
    if text.startswith("$"):
        return state.value_text(text)
    return text


async def _connect(state: PsState, attempt: ConnectAttempt, wait_s: float) -> bool:
    """Whether the attempt finished within ``wait_s``; sets ``Connected`` on success."""
    from orchestrator.lab.commands.tools import tcp_test
    from orchestrator.lab.licensing import resolve_kms_address

    address = resolve_kms_address(attempt.host)
    if address is None:
        if re.fullmatch(r"[\d.]+|\[?[0-9a-fA-F:]+\]?", attempt.host.strip()):
            state.duration += wait_s  # an address the lab cannot reach: nothing ever answers
            return False
        return True  # DNS failure: the attempt ends at once, not connected
    # WaitOne waits its whole timeout for the connect (bounded by the lab's cap on a script's wait)
    ok = await tcp_test(address, attempt.port, timeout=max(0.05, min(wait_s, MAX_WAIT_S)))
    attempt.client.connected = ok and not attempt.client.closed
    return True
