"""A tiny stdlib client for the lab's control API (``orchestrator.lab.control``), for tests and ``kmsfleet demo``.

    ctl = LabControl("http://127.0.0.1:40123")
    ctl.power("pc01", False)
    ctl.advance_clock(181)
    ctl.host("pc01")["machine"]

Only loopback URLs are accepted. Errors come back as ``LabControlError`` with the HTTP status and message.
"""

from __future__ import annotations

import ipaddress
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class LabControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"HTTP {status}: {message}")


class LabControl:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"not a lab control URL: {url!r}")
        try:
            loopback = ipaddress.ip_address(parsed.hostname).is_loopback
        except ValueError:
            loopback = parsed.hostname == "localhost"
        if not loopback:
            raise ValueError(f"the lab control API is only reachable on loopback, not {parsed.hostname}")
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode("utf-8") if body is not None else None
        req = urllib.request.Request(  # noqa: S310 - loopback http URL checked in __init__
            self.url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                message = json.loads(raw).get("error", raw.decode("utf-8", "replace"))
            except (ValueError, AttributeError):
                message = raw.decode("utf-8", "replace")
            raise LabControlError(exc.code, str(message)) from None

    def get(self, path: str) -> Any:
        return self._call("GET", path)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._call("POST", path, body)

    # ---- conveniences ----------------------------------------------------------------------------------------
    def hosts(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get("/hosts")["hosts"]
        return result

    def host(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.get(f"/hosts/{urllib.parse.quote(name)}")
        return result

    def power(self, name: str, on: bool) -> dict[str, Any]:
        result: dict[str, Any] = self.post(f"/hosts/{urllib.parse.quote(name)}/power", {"on": on})
        return result

    def faults(self, name: str, **probabilities: float) -> dict[str, Any]:
        result: dict[str, Any] = self.post(f"/hosts/{urllib.parse.quote(name)}/faults", dict(probabilities))
        return result

    def latency(self, name: str, latency_ms: float | tuple[float, float] | list[float]) -> dict[str, Any]:
        value: Any = list(latency_ms) if isinstance(latency_ms, tuple | list) else latency_ms
        result: dict[str, Any] = self.post(f"/hosts/{urllib.parse.quote(name)}/latency", {"latency_ms": value})
        return result

    def clock_skew(self, name: str, minutes: int) -> dict[str, Any]:
        result: dict[str, Any] = self.post(f"/hosts/{urllib.parse.quote(name)}/clock", {"skew_minutes": minutes})
        return result

    def set(self, name: str, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.post(f"/hosts/{urllib.parse.quote(name)}/set", dict(fields))
        return result

    def advance_clock(self, days: float) -> dict[str, Any]:
        result: dict[str, Any] = self.post("/clock/advance", {"days": days})
        return result

    def kms(self) -> dict[str, Any]:
        result: dict[str, Any] = self.get("/kms")
        return result

    def set_kms(self, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.post("/kms", dict(fields))
        return result

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.get("/stats")
        return result
