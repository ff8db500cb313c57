"""Wake-on-LAN: send magic packets to PCs that are off, then wait (bounded) until their WinRM port answers.

A magic packet is 6 bytes 0xFF followed by the PC's MAC address 16 times, sent over UDP to a broadcast
address (default 255.255.255.255, port 9). Where a PC's MAC comes from, first match wins: the inventory
variable ``mac``; the fact ``kmsfleet_mac`` recorded in the run history the last time the PC was reached
(gather_facts reads it). Broadcast address and port: ``--broadcast``/``--port``, else the inventory variables
``wol_broadcast``/``wol_port`` (the lab's inventory points them at its loopback listener), else the defaults.

"Up" means a TCP connection to ``ansible_host:ansible_port`` succeeds: the PC's WinRM listener is there.
Every loop here is bounded in count and time; packets are repeated a few times (NICs miss some), never more.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from orchestrator.errors import InputError

DEFAULT_BROADCAST = "255.255.255.255"
DEFAULT_PORT = 9
DEFAULT_WAIT = 120.0
MAX_WAIT = 3600.0
PACKET_REPEAT = 3  # copies of each packet per send
RESEND_EVERY = 15.0  # seconds between re-sends to PCs that still do not answer
POLL_EVERY = 1.0  # seconds between TCP probes while waiting
PROBE_TIMEOUT = 1.0
PROBE_WORKERS = 64
MAC_FACT = "kmsfleet_mac"

_MAC_RE = re.compile(r"^[0-9A-Fa-f]{2}([:-]?)[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}$")
_MAC_DOTTED = re.compile(r"^[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}$")


def parse_mac(text: str) -> bytes:
    """The 6 bytes of a MAC written ``52:54:00:12:34:56``, ``52-54-00-12-34-56``, ``525400123456`` or
    ``5254.0012.3456``. Raises ``ValueError`` otherwise."""
    raw = str(text).strip()
    if not (_MAC_RE.match(raw) or _MAC_DOTTED.match(raw)):
        raise ValueError(f"{text!r} is not a MAC address (write it like 52:54:00:12:34:56)")
    return bytes.fromhex(re.sub(r"[^0-9A-Fa-f]", "", raw))


def format_mac(mac: bytes | str) -> str:
    raw = parse_mac(mac) if isinstance(mac, str) else mac
    return ":".join(f"{b:02X}" for b in raw)


def magic_packet(mac: bytes | str) -> bytes:
    """6 x 0xFF, then the MAC 16 times (102 bytes)."""
    raw = parse_mac(mac) if isinstance(mac, str) else mac
    if len(raw) != 6:
        raise ValueError("a MAC address has 6 bytes")
    return b"\xff" * 6 + raw * 16


def check_broadcast(address: str) -> str:
    """An IPv4 address to send magic packets to (a broadcast address such as 192.168.1.255)."""
    try:
        ip = ipaddress.ip_address(str(address).strip())
    except ValueError:
        raise InputError(
            f"Wake-on-LAN broadcast address {address!r} is not an IPv4 address",
            hint="give the room's broadcast address, e.g. --broadcast 192.168.10.255",
        ) from None
    if ip.version != 4:
        raise InputError(f"Wake-on-LAN needs an IPv4 broadcast address, not {address}")
    return str(ip)


def check_port(port: Any) -> int:
    try:
        value = int(port)
    except (TypeError, ValueError):
        raise InputError(f"Wake-on-LAN port {port!r} is not a number") from None
    if not 1 <= value <= 65535:
        raise InputError(f"Wake-on-LAN port {value} is out of range (1-65535)")
    return value


def send_magic_packets(packets: Iterable[tuple[bytes | str, str, int]], repeat: int = PACKET_REPEAT) -> int:
    """Send each (mac, broadcast, port) ``repeat`` times over one UDP socket; returns datagrams sent."""
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        for mac, broadcast, port in packets:
            data = magic_packet(mac)
            for _ in range(max(1, min(repeat, 10))):
                sock.sendto(data, (broadcast, port))
                sent += 1
    return sent


def answers(address: str, port: int, timeout: float = PROBE_TIMEOUT) -> bool:
    """True when a TCP connection to ``address:port`` succeeds within ``timeout``."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class WakeTarget:
    host: str
    address: str  # ansible_host (or the inventory name)
    port: int  # WinRM port (ansible_port)
    mac: str | None  # None: unknown, cannot be woken
    mac_source: Literal["inventory", "history", ""]
    broadcast: str
    wol_port: int


def _render(value: Any, variables: Mapping[str, Any]) -> Any:
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        from orchestrator.templating import Templar

        return Templar(variables, context="Wake-on-LAN variables").render(value)
    return value


def wake_targets(
    inventory: Any,
    hosts: Sequence[str],
    *,
    broadcast: str | None = None,
    port: int | None = None,
    history_macs: Mapping[str, str] | None = None,
) -> list[WakeTarget]:
    """What is needed to wake and probe each host, from its inventory variables (and recorded MACs)."""
    out: list[WakeTarget] = []
    for host in hosts:
        hv = inventory.host_vars(host)
        mac_raw = _render(hv.get("mac"), hv)
        source: Literal["inventory", "history", ""] = ""
        mac: str | None = None
        if mac_raw:
            try:
                mac = format_mac(str(mac_raw))
            except ValueError as exc:
                raise InputError(f"host {host}: inventory variable mac: {exc}") from None
            source = "inventory"
        elif history_macs and history_macs.get(host):
            try:
                mac = format_mac(str(history_macs[host]))
                source = "history"
            except ValueError:
                mac = None
        bcast = broadcast or _render(hv.get("wol_broadcast"), hv) or DEFAULT_BROADCAST
        wport = port if port is not None else _render(hv.get("wol_port"), hv) or DEFAULT_PORT
        address = str(_render(hv.get("ansible_host"), hv) or host)
        winrm_port = _render(hv.get("ansible_port", 5986), hv)
        try:
            winrm = int(winrm_port)
        except (TypeError, ValueError):
            raise InputError(f"host {host}: ansible_port {winrm_port!r} is not a number") from None
        out.append(
            WakeTarget(
                host=host,
                address=address,
                port=winrm,
                mac=mac,
                mac_source=source,
                broadcast=check_broadcast(str(bcast)),
                wol_port=check_port(wport),
            )
        )
    return out


def recorded_macs(db: str | None, hosts: Sequence[str]) -> dict[str, str]:
    """MAC addresses the history recorded (fact ``kmsfleet_mac``) for ``hosts``; {} without a history."""
    from orchestrator.results.store import HistoryStore, resolve_db_url

    url = resolve_db_url(db)
    if url.get_backend_name() == "sqlite" and url.database and not _exists(url.database):
        return {}  # no history yet: do not create one just to look
    store = HistoryStore(db)
    try:
        found = store.latest_facts(hosts, MAC_FACT)
    finally:
        store.close()
    return {h: str(v) for h, v in found.items() if isinstance(v, str) and v}


def _exists(path: str) -> bool:
    from pathlib import Path

    return path == ":memory:" or Path(path).exists()


# ---------------------------------------------------------------------------------------------- waking

WakeEventKind = Literal["already_up", "no_mac", "sent", "send_failed", "up", "waiting", "resent"]


@dataclass(frozen=True)
class WakeEvent:
    kind: WakeEventKind
    hosts: tuple[str, ...]
    elapsed: float = 0.0
    remaining: float = 0.0
    detail: str = ""  # send_failed: the system's reason


@dataclass
class WakeOutcome:
    already_up: list[str] = field(default_factory=list)
    woken: list[str] = field(default_factory=list)  # answered after the packets
    still_down: list[str] = field(default_factory=list)  # packets sent, no answer within the wait
    no_mac: list[str] = field(default_factory=list)  # off, and no MAC known: not woken
    packets: int = 0
    send_errors: list[str] = field(default_factory=list)
    cancelled: bool = False

    @property
    def down(self) -> list[str]:
        """PCs that do not answer at the end (no MAC or no answer)."""
        return [*self.no_mac, *self.still_down]


def probe(targets: Sequence[WakeTarget], timeout: float = PROBE_TIMEOUT) -> dict[str, bool]:
    """TCP-probe every target at once (bounded thread pool); host -> answers."""
    if not targets:
        return {}
    workers = max(1, min(PROBE_WORKERS, len(targets)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kmsfleet-wol-probe") as pool:
        results = list(pool.map(lambda t: answers(t.address, t.port, timeout), targets))
    return {t.host: ok for t, ok in zip(targets, results, strict=True)}


def wake_and_wait(
    targets: Sequence[WakeTarget],
    wait: float = DEFAULT_WAIT,
    *,
    progress: Callable[[WakeEvent], None] | None = None,
    cancel: threading.Event | None = None,
    poll: float = POLL_EVERY,
    resend_every: float = RESEND_EVERY,
    probe_timeout: float = PROBE_TIMEOUT,
    now: Callable[[], float] = time.monotonic,
) -> WakeOutcome:
    """Wake the targets that do not answer and wait up to ``wait`` seconds (0: send and return) for them.

    PCs that answer already are left alone; PCs without a known MAC are reported, not woken."""
    notify = progress or (lambda _event: None)
    stop = cancel or threading.Event()
    wait = max(0.0, min(float(wait), MAX_WAIT))
    t0 = now()
    outcome = WakeOutcome()
    state = probe(targets, probe_timeout)
    down = [t for t in targets if not state.get(t.host)]
    outcome.already_up = [t.host for t in targets if state.get(t.host)]
    if outcome.already_up:
        notify(WakeEvent("already_up", tuple(outcome.already_up)))
    outcome.no_mac = [t.host for t in down if t.mac is None]
    if outcome.no_mac:
        notify(WakeEvent("no_mac", tuple(outcome.no_mac)))
    pending = [t for t in down if t.mac is not None]
    if not pending:
        return outcome

    def send(targets: Sequence[WakeTarget]) -> bool:
        try:
            outcome.packets += send_magic_packets((t.mac or "", t.broadcast, t.wol_port) for t in targets)
        except OSError as exc:  # no route to that broadcast address, no network …
            where = ", ".join(sorted({f"{t.broadcast}:{t.wol_port}" for t in targets}))
            reason = f"{where}: {exc.strerror or exc}"
            outcome.send_errors.append(reason)
            notify(WakeEvent("send_failed", tuple(t.host for t in targets), now() - t0, 0.0, reason))
            return False
        return True

    if not send(pending):
        outcome.still_down = [t.host for t in pending]
        return outcome
    notify(WakeEvent("sent", tuple(t.host for t in pending), 0.0, wait))
    deadline = t0 + wait
    last_send = now()
    while pending and now() < deadline:
        if stop.wait(min(poll, max(0.0, deadline - now()))):
            outcome.cancelled = True
            break
        state = probe(pending, min(probe_timeout, max(0.05, deadline - now())))
        up = [t for t in pending if state.get(t.host)]
        pending = [t for t in pending if not state.get(t.host)]
        elapsed = now() - t0
        if up:
            outcome.woken.extend(t.host for t in up)
            notify(WakeEvent("up", tuple(t.host for t in up), elapsed, max(0.0, deadline - now())))
        if pending and now() - last_send >= resend_every and now() < deadline:
            last_send = now()
            if send(pending):
                notify(WakeEvent("resent", tuple(t.host for t in pending), elapsed, max(0.0, deadline - now())))
        elif pending:
            notify(WakeEvent("waiting", tuple(t.host for t in pending), elapsed, max(0.0, deadline - now())))
    outcome.still_down = [t.host for t in pending]
    return outcome


__all__ = [
    "DEFAULT_BROADCAST",
    "DEFAULT_PORT",
    "DEFAULT_WAIT",
    "WakeEvent",
    "WakeOutcome",
    "WakeTarget",
    "answers",
    "check_broadcast",
    "check_port",
    "format_mac",
    "magic_packet",
    "parse_mac",
    "probe",
    "recorded_macs",
    "send_magic_packets",
    "wake_and_wait",
    "wake_targets",
]
