"""The lab KMS host: a tiny TCP service that decides whether a simulated PC may activate.

It deliberately does NOT speak Microsoft's KMS protocol (RPC over TCP 1688). It speaks a small lab-only
protocol that carries exactly the facts the activation rules need, so the rules stay readable and testable.

Lab KMS protocol (version 1)
----------------------------
Transport: TCP on ``world.kms_address:kms.port`` (a 127.x.y.z address, default port 1688). Only loopback
addresses are ever bound or contacted. Messages are UTF-8 JSON objects, one per line (``\\n``-terminated, at
most 64 KiB). A connection may carry several requests in a row (keep-alive); the server answers each line with
exactly one line, in order, and closes a connection idle for 30 s.

Requests::

    {"v": 1, "op": "activate", "cmid": "<guid>", "product": "windows" | "server" | "office",
     "sku": "<activation id>", "client_time": "<ISO-8601 UTC, e.g. 2025-05-24T07:14:07Z>", "pc": "<name>"}
    {"v": 1, "op": "status"}

Answers::

    {"v": 1, "ok": true, "count": 31, "validity_minutes": 259200, "renewal_minutes": 10080,
     "activation_interval_minutes": 120, "host_epid": "03612-00206-...", "host_time": "<ISO-8601 UTC>"}
    {"v": 1, "ok": false, "hresult": "0xC004F038", "count": 12, "message": "<text>"}
    {"v": 1, "ok": true, "up": true, "address": ..., "port": ..., "host_time": ..., "clock_skew_minutes": ...,
     "products": [...], "counts": {"windows": N, "office": N}, "thresholds": {...}, "requests": {...}}

A malformed line gets ``{"v": 1, "ok": false, "hresult": "0x8007000D", "message": ...}``.

Rules, applied in this order to an ``activate`` request:
1. ``product`` must be in the spec's ``kms.products`` -> else 0xC004F042 (wrong host key group).
2. ``|client_time - host_time| <= 4 h``, host_time = lab clock + ``kms.clock_skew_minutes`` -> else 0xC004F06C.
   The request is not counted.
3. The CMID is recorded (last seen = host time). Counting pools: ``windows`` and ``server`` share the Windows
   pool, ``office`` has its own. The count is the spec's ``kms.count`` (a constant background of other PCs)
   plus the distinct lab CMIDs seen in the last 30 days, capped at 50 (Windows pool) / 10 (Office pool).
   PCs cloned without sysprep send the same CMID and therefore count once.
4. The count must reach the threshold (25 for ``windows``, 5 for ``server`` and ``office``) -> else 0xC004F038.
5. Success: validity 259200 min (180 days), renewal 10080 min, activation interval 120 min.

Up/down: ``await host.set_up(False)`` closes the listener (clients then get "connection refused", which the PC
reports as 0xC004F074); ``set_up(True)`` listens again on the same address and port.

Drop (spec ``kms.drop``, control ``POST /kms {"drop": true}``): a firewall in front of the host silently drops
the packets. Nothing is ever answered, so the PC's KMS client waits its own timeout (lab/timing.py
``kms_timeout``: the 21 s TCP connect timeout with windows timing) and then reports 0xC004F074. Deviation: on
loopback the lab cannot drop a SYN, so the TCP connection is accepted and the request read and never answered;
the client sees the same wait and the same failure, but a bare port probe (Test-NetConnection) connects.

Deviations/choices:
- The 4-hour clock tolerance comes from public KMS emulators; Microsoft publishes no number.
- The spec's pre-filled ``kms.count`` never ages out (it stands for other PCs that keep renewing); lab CMIDs age
  out after 30 days of lab time.
- Office pool cap 10 (2 x its threshold) and Windows pool cap 50, as docs/reference.md §1.2 describes for real hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.lab.world import LabWorld

PROTOCOL_VERSION = 1
MAX_LINE = 64 * 1024
IDLE_TIMEOUT_S = 30.0
DROP_HOLD_S = 600.0  # while dropping, a connection is held (never answered) at most this long
CLOCK_TOLERANCE = timedelta(hours=4)
CMID_WINDOW = timedelta(days=30)
VALIDITY_MINUTES = 259_200
RENEWAL_MINUTES = 10_080
ACTIVATION_INTERVAL_MINUTES = 120
THRESHOLDS: dict[str, int] = {"windows": 25, "server": 5, "office": 5}
POOL_CAPS: dict[str, int] = {"windows": 50, "office": 10}

HR_WRONG_KEY_GROUP = 0xC004F042
HR_INVALID_TIMESTAMP = 0xC004F06C
HR_NOT_ENOUGH_COUNT = 0xC004F038
HR_INVALID_DATA = 0x8007000D

_MESSAGES = {
    HR_WRONG_KEY_GROUP: "The specified Key Management Service (KMS) cannot be used "
    "(product not in this host's key group).",
    HR_INVALID_TIMESTAMP: "The Key Management Service (KMS) determined that the request timestamp is invalid.",
    HR_NOT_ENOUGH_COUNT: "The count reported by your Key Management Service (KMS) is insufficient.",
    HR_INVALID_DATA: "The data is invalid.",
}


class KmsUnreachable(Exception):
    """No lab KMS host answered at that address (refused, timed out, not loopback, garbled answer)."""


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def hex_hresult(code: int) -> str:
    return f"0x{code & 0xFFFFFFFF:08X}"


def parse_hresult(text: str) -> int:
    return int(text, 16) & 0xFFFFFFFF


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


# The listen backlog of the KMS host's port. A Windows service listening with SOMAXCONN gets "a maximum reasonable
# value" from the provider, and SOMAXCONN_HINT(N) any N up to 65535 (Microsoft Learn, winsock2.h "listen").
# asyncio's default of 100 is far below that: when a whole city's PCs test port 1688 at once the full queue makes
# Linux drop SYNs, and the retransmission a second later lands after short port tests gave up. 4096 (Linux clamps
# it to net.core.somaxconn, 4096 by default since 5.4) lets every PC of a 2,000-PC lab queue at once.
LISTEN_BACKLOG = 4096


class KmsHost:
    """The lab's KMS host. Create it with the world, then ``await start()`` inside the lab's event loop."""

    def __init__(self, world: LabWorld) -> None:
        spec = world.resolved.kms
        if not is_loopback(world.kms_address):
            raise ValueError(f"the lab KMS host must listen on a loopback address, not {world.kms_address}")
        self.world = world
        self.address = world.kms_address
        self.port = world.kms_port
        self._lock = threading.Lock()
        self._want_up = spec.up
        self.drop = spec.drop
        self.clock_skew_minutes = spec.clock_skew_minutes
        self.products: tuple[str, ...] = tuple(spec.products)
        self.prefill = spec.count
        self._seen: dict[str, dict[str, datetime]] = {"windows": {}, "office": {}}
        self._requests = {"total": 0, "failed": 0, "dropped": 0}
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._started = False
        self.host_epid = world.kms_host_epid

    # -- lifecycle ------------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._started = True
        if self._want_up:
            await self._listen()

    async def stop(self) -> None:
        self._started = False
        await self._close()

    async def set_up(self, up: bool) -> None:
        """Bring the KMS service up (listening) or down (connection refused)."""
        self._want_up = up
        if not self._started:
            return
        if up:
            await self._listen()
        else:
            await self._close()

    def set_drop(self, drop: bool) -> None:
        """Drop every request silently (a firewall) or answer again."""
        with self._lock:
            self.drop = drop

    @property
    def up(self) -> bool:
        return self._server is not None

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._handle, self.address, self.port, reuse_address=True, backlog=LISTEN_BACKLOG
        )

    async def _close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)

    # -- configuration (control API / tests) ------------------------------------------------------------------
    def configure(
        self,
        *,
        products: tuple[str, ...] | None = None,
        clock_skew_minutes: int | None = None,
        prefill: int | None = None,
    ) -> None:
        with self._lock:
            if products is not None:
                self.products = tuple(products)
            if clock_skew_minutes is not None:
                self.clock_skew_minutes = clock_skew_minutes
            if prefill is not None:
                self.prefill = max(0, prefill)

    def reset_counts(self) -> None:
        with self._lock:
            for pool in self._seen.values():
                pool.clear()

    # -- the rules ----------------------------------------------------------------------------------------
    def host_time(self) -> datetime:
        return self.world.clock.now() + timedelta(minutes=self.clock_skew_minutes)

    def _count(self, pool: str, now: datetime) -> int:
        seen = self._seen[pool]
        for cmid in [c for c, t in seen.items() if now - t > CMID_WINDOW]:
            del seen[cmid]
        return min(self.prefill + len(seen), POOL_CAPS[pool])

    def counts(self) -> dict[str, int]:
        now = self.host_time()
        with self._lock:
            return {pool: self._count(pool, now) for pool in self._seen}

    def handle_request(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Apply the protocol to one decoded request (what the TCP handler calls)."""
        op = request.get("op")
        if op == "status":
            return {"v": PROTOCOL_VERSION, "ok": True, **self.snapshot()}
        if op != "activate":
            return self._fail(HR_INVALID_DATA, None, f"unknown op {op!r}")
        cmid = request.get("cmid")
        product = request.get("product")
        client_time_text = request.get("client_time")
        if not isinstance(cmid, str) or not cmid or product not in THRESHOLDS or not isinstance(client_time_text, str):
            return self._fail(HR_INVALID_DATA, None, "activate needs cmid, product and client_time")
        try:
            client_time = _parse_time(client_time_text)
        except ValueError:
            return self._fail(HR_INVALID_DATA, None, "client_time is not ISO-8601")
        pool = "office" if product == "office" else "windows"
        now = self.host_time()
        with self._lock:
            self._requests["total"] += 1
            if product not in self.products:
                return self._fail(HR_WRONG_KEY_GROUP, self._count(pool, now))
            if abs(client_time - now) > CLOCK_TOLERANCE:
                return self._fail(HR_INVALID_TIMESTAMP, self._count(pool, now))
            self._seen[pool][cmid.lower()] = now
            count = self._count(pool, now)
            if count < THRESHOLDS[product]:
                return self._fail(HR_NOT_ENOUGH_COUNT, count)
        return {
            "v": PROTOCOL_VERSION,
            "ok": True,
            "count": count,
            "validity_minutes": VALIDITY_MINUTES,
            "renewal_minutes": RENEWAL_MINUTES,
            "activation_interval_minutes": ACTIVATION_INTERVAL_MINUTES,
            "host_epid": self.host_epid,
            "host_time": iso_utc(now),
        }

    def _fail(self, code: int, count: int | None, message: str | None = None) -> dict[str, Any]:
        if code != HR_INVALID_DATA:
            self._requests["failed"] += 1
        answer: dict[str, Any] = {
            "v": PROTOCOL_VERSION,
            "ok": False,
            "hresult": hex_hresult(code),
            "message": message or _MESSAGES[code],
        }
        if count is not None:
            answer["count"] = count
        return answer

    def snapshot(self) -> dict[str, Any]:
        counts = self.counts()
        with self._lock:
            return {
                "up": self.up if self._started else self._want_up,
                "drop": self.drop,
                "address": self.address,
                "port": self.port,
                "host_time": iso_utc(self.host_time()),
                "clock_skew_minutes": self.clock_skew_minutes,
                "products": list(self.products),
                "counts": counts,
                "prefill": self.prefill,
                "thresholds": dict(THRESHOLDS),
                "requests": dict(self._requests),
                "host_epid": self.host_epid,
                "cmids": {pool: sorted(seen) for pool, seen in self._seen.items()},
            }

    # -- TCP ----------------------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    line = await asyncio.wait_for(reader.readline(), DROP_HOLD_S if self.drop else IDLE_TIMEOUT_S)
                except (TimeoutError, ValueError, ConnectionError):
                    break
                if not line:
                    break
                if self.drop:  # a firewall ate it: read on, answer nothing, until the client gives up
                    with self._lock:
                        self._requests["dropped"] += 1
                    continue
                if len(line) > MAX_LINE:
                    answer = self._fail(HR_INVALID_DATA, None, "request line too long")
                else:
                    try:
                        request = json.loads(line)
                        if not isinstance(request, dict):
                            raise ValueError("not an object")
                        answer = self.handle_request(request)
                    except ValueError as exc:
                        answer = self._fail(HR_INVALID_DATA, None, f"bad JSON: {exc}")
                writer.write(json.dumps(answer, separators=(",", ":")).encode() + b"\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def kms_activate(address: str, port: int, request: Mapping[str, Any], timeout: float = 3.0) -> dict[str, Any]:
    """Send one request to a lab KMS host and return its decoded answer.

    Refuses non-loopback addresses without any network traffic. Raises ``KmsUnreachable`` when nothing (or
    nothing sensible) answers within ``timeout`` seconds.
    """
    if not is_loopback(address):
        raise KmsUnreachable(f"{address} is not a loopback address; the lab never contacts it")
    if not 0 < port < 65536:
        raise KmsUnreachable(f"invalid port {port}")
    host = address.strip("[]")
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError) as exc:
        raise KmsUnreachable(f"{address}:{port}: {exc or 'timed out'}") from None
    try:
        writer.write(json.dumps(dict(request), separators=(",", ":")).encode() + b"\n")
        await asyncio.wait_for(writer.drain(), timeout)
        line = await asyncio.wait_for(reader.readline(), timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        raise KmsUnreachable(f"{address}:{port}: {exc or 'timed out'}") from None
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    try:
        answer = json.loads(line)
    except ValueError:
        raise KmsUnreachable(f"{address}:{port}: not a lab KMS host") from None
    if not isinstance(answer, dict) or "ok" not in answer:
        raise KmsUnreachable(f"{address}:{port}: not a lab KMS host")
    return answer
