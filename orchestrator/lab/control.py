"""The lab's JSON control API, on the lab's service address (127.<A>.0.1), ephemeral port by default.

    GET  /                          this list
    GET  /hosts                     every PC: machine snapshot + power, faults, latency, request counts
    GET  /hosts/{name}              one PC
    POST /hosts/{name}/power        {"on": true|false}
    POST /hosts/{name}/faults       {"drop": 0.1, "http500": 0, "hang": 0, "unauthorized": 0} (merged)
    POST /hosts/{name}/latency      {"latency_ms": 250} or {"latency_ms": [50, 400]}
    POST /hosts/{name}/clock        {"skew_minutes": -300}
    POST /hosts/{name}/set          {"field": value, ...}   machine tweaks (``Machine.set``: admin, timezone,
                                    blocked_key, office_corrupt, kms_host, cmid …; power/latency_ms/faults
                                    go to the front end)
    POST /clock/advance             {"days": 181}
    GET  /kms                       the lab KMS host's state
    POST /kms                       {"up": false} / {"drop": true} / {"products": [...],
                                     "clock_skew_minutes": n, "count": n, "reset_counts": true}
    GET  /stats                     listener and request totals

Answers are JSON; errors are ``{"error": "..."}`` with 400 (bad input) or 404 (unknown host / path).
Passwords never appear in answers.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from orchestrator.lab.server import require_loopback
from orchestrator.redact import redact

if TYPE_CHECKING:  # pragma: no cover
    from orchestrator.lab.runner import Lab

ENDPOINTS = [
    "GET /hosts",
    "GET /hosts/{name}",
    "POST /hosts/{name}/power",
    "POST /hosts/{name}/faults",
    "POST /hosts/{name}/latency",
    "POST /hosts/{name}/clock",
    "POST /hosts/{name}/set",
    "POST /clock/advance",
    "GET /kms",
    "POST /kms",
    "GET /stats",
]


class BadInput(Exception):
    pass


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(redact(data), default=str, ensure_ascii=False), content_type="application/json"
    )


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise BadInput(f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadInput("the body must be a JSON object")
    return data


class ControlServer:
    def __init__(self, lab: Lab, address: str, port: int = 0) -> None:
        require_loopback(address)
        self.lab = lab
        self.address = address
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=1024 * 1024, middlewares=[self._errors])
        app.router.add_get("/", self.index)
        app.router.add_get("/hosts", self.hosts)
        app.router.add_get("/hosts/{name}", self.host)
        app.router.add_post("/hosts/{name}/power", self.power)
        app.router.add_post("/hosts/{name}/faults", self.faults)
        app.router.add_post("/hosts/{name}/latency", self.latency)
        app.router.add_post("/hosts/{name}/clock", self.clock)
        app.router.add_post("/hosts/{name}/set", self.set_fields)
        app.router.add_post("/clock/advance", self.advance)
        app.router.add_get("/kms", self.kms_get)
        app.router.add_post("/kms", self.kms_post)
        app.router.add_get("/stats", self.stats)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.address, self.port, reuse_address=True)
        await site.start()
        self._runner = runner
        for addr in runner.addresses:
            if isinstance(addr, tuple) and addr[0] == self.address:
                self.port = int(addr[1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            resp: web.StreamResponse = await handler(request)
            return resp
        except web.HTTPNotFound:
            return _error(404, f"no such endpoint: {request.method} {request.path}")
        except web.HTTPMethodNotAllowed:
            return _error(405, f"method not allowed: {request.method} {request.path}")
        except KeyError as exc:
            return _error(404, f"no such host: {exc.args[0] if exc.args else ''}")
        except (BadInput, ValueError, TypeError) as exc:
            return _error(400, str(exc))

    # ---- handlers ---------------------------------------------------------------------------------------------
    async def index(self, request: web.Request) -> web.Response:
        return _json({"endpoints": ENDPOINTS})

    async def hosts(self, request: web.Request) -> web.Response:
        return _json({"hosts": [self.lab.host_snapshot(h.name) for h in self.lab.hosts]})

    async def host(self, request: web.Request) -> web.Response:
        return _json(self.lab.host_snapshot(request.match_info["name"]))

    async def power(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.lab.pc(name)
        body = await _body(request)
        on = body.get("on")
        if not isinstance(on, bool):
            raise BadInput('power needs {"on": true|false}')
        await self.lab.set_power(name, on)
        return _json(self.lab.host_snapshot(name))

    async def faults(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.lab.pc(name)
        body = await _body(request)
        allowed = {"drop", "http500", "hang", "unauthorized"}
        unknown = set(body) - allowed
        if unknown:
            raise BadInput(
                f"unknown fault field(s): {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(allowed))}"
            )
        try:
            self.lab.set_faults(name, body)
        except Exception as exc:  # pydantic validation
            raise BadInput(f"bad fault values: {exc}") from None
        return _json(self.lab.host_snapshot(name))

    async def latency(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.lab.pc(name)
        body = await _body(request)
        if "latency_ms" not in body:
            raise BadInput('latency needs {"latency_ms": number or [min, max]}')
        self.lab.set_latency(name, body["latency_ms"])
        return _json(self.lab.host_snapshot(name))

    async def clock(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        pc = self.lab.pc(name)
        body = await _body(request)
        skew = body.get("skew_minutes")
        if not isinstance(skew, int) or isinstance(skew, bool):
            raise BadInput('clock needs {"skew_minutes": integer}')
        hook = getattr(pc.host, "set_clock_skew", None)
        if hook is None:
            raise BadInput("this machine cannot change its clock")
        hook(skew)
        return _json(self.lab.host_snapshot(name))

    async def set_fields(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        pc = self.lab.pc(name)
        body = await _body(request)
        # Network behaviour belongs to the front end; the rest is the machine's state.
        if "power" in body:
            power = body.pop("power")
            if power not in ("on", "off", True, False):
                raise BadInput("power must be 'on' or 'off'")
            await self.lab.set_power(name, power in ("on", True))
        if "latency_ms" in body:
            self.lab.set_latency(name, body.pop("latency_ms"))
        if "faults" in body:
            faults = body.pop("faults")
            if not isinstance(faults, dict):
                raise BadInput("faults must be an object")
            self.lab.set_faults(name, faults)
        if body:
            hook = getattr(pc.host, "set", None)
            if hook is None:
                raise BadInput("this machine cannot be tweaked")
            hook(**body)
        return _json(self.lab.host_snapshot(name))

    async def advance(self, request: web.Request) -> web.Response:
        body = await _body(request)
        days = body.get("days")
        if not isinstance(days, int | float) or isinstance(days, bool):
            raise BadInput('advance needs {"days": number}')
        world = self.lab.world
        assert world is not None
        world.clock.advance(float(days))
        return _json({"now": world.clock.now().isoformat(), "offset_days": world.clock.offset.total_seconds() / 86400})

    async def kms_get(self, request: web.Request) -> web.Response:
        return _json(self.lab.kms.snapshot())

    async def kms_post(self, request: web.Request) -> web.Response:
        body = await _body(request)
        kms = self.lab.kms
        allowed = {"up", "drop", "products", "clock_skew_minutes", "count", "reset_counts"}
        unknown = set(body) - allowed
        if unknown:
            raise BadInput(f"unknown kms field(s): {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(allowed))}")
        products = body.get("products")
        if products is not None and (not isinstance(products, list) or not all(isinstance(p, str) for p in products)):
            raise BadInput("products must be a list of names")
        skew = body.get("clock_skew_minutes")
        if skew is not None and (not isinstance(skew, int) or isinstance(skew, bool)):
            raise BadInput("clock_skew_minutes must be an integer")
        count = body.get("count")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
            raise BadInput("count must be an integer")
        kms.configure(
            products=tuple(products) if products is not None else None,
            clock_skew_minutes=skew,
            prefill=count,
        )
        if body.get("reset_counts"):
            kms.reset_counts()
        if "up" in body:
            if not isinstance(body["up"], bool):
                raise BadInput("up must be true or false")
            await kms.set_up(body["up"])
        if "drop" in body:
            if not isinstance(body["drop"], bool):
                raise BadInput("drop must be true or false")
            kms.set_drop(body["drop"])
        return _json(kms.snapshot())

    async def stats(self, request: web.Request) -> web.Response:
        return _json(self.lab.stats())
