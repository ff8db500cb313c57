"""Running a lab: ``Lab`` (async, inside an event loop) and ``LabThread`` (a Lab in a background thread with its
own event loop, for tests, benchmarks and ``kmsfleet demo``).

A lab is: the simulated PCs (``build_machine``), the lab KMS host, one WS-Management listener per PC address
(``server``), the Wake-on-LAN listener, the JSON control API and an Ansible inventory describing it all.
Addresses come from the spec (its subnets); the caller is responsible for claiming the 127.<A> block
(``addresses.claim_prefix``) when it needs protection against other labs.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import resource
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any, TypedDict, Unpack

from orchestrator.lab.provider import SimulatedHost
from orchestrator.lab.spec import Faults, LabHostConfig, LabSpec, ResolvedLab, resolve
from orchestrator.lab.timing import LabTiming, TimingMode
from orchestrator.lab.world import LabWorld
from orchestrator.lab.wsman import tls
from orchestrator.lab.wsman.config import service_config_for
from orchestrator.lab.wsman.service import WSManService

HostFactory = Callable[[LabHostConfig, LabWorld], SimulatedHost]


def _default_factory() -> HostFactory:
    from orchestrator.lab.machine import build_machine

    return build_machine


def raise_nofile_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit (a 5,000-PC lab needs ~10,000 listening sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


class LabSettings(TypedDict, total=False):
    """How a lab listens and answers (keyword arguments of ``Lab``; each default in brackets)."""

    seed: int | None  # the spec's seed [the spec's]
    allow_unencrypted: bool  # NTLM without sealing and Basic over HTTP [False]
    https: bool  # also listen on HTTPS with a generated certificate [True]
    inventory_path: str | Path | None  # write an inventory of the PCs here [none]
    control_port: int  # the control API's port [0: any free one]
    wol_port: int  # the Wake-on-LAN listener's UDP port [0: any free one]
    http_port: int  # [5985]
    https_port: int  # [5986]
    max_envelope_kb: int | None  # WinRM MaxEnvelopeSizekb [each OS's default]
    host_factory: HostFactory | None  # builds each simulated PC [the lab's own]
    timing: TimingMode  # "instant" (tests) or "windows" (demo, lab serve, benchmarks) ["instant"]
    timing_scale: float  # multiplies every Windows timing figure [1.0]


class Lab:
    """One running lab. ``await start()`` returns when every listener is up; ``await stop()`` undoes it all."""

    def __init__(self, spec: LabSpec, **settings: Unpack[LabSettings]) -> None:
        seed = settings.get("seed")
        allow_unencrypted = settings.get("allow_unencrypted", False)
        inventory_path = settings.get("inventory_path")
        max_envelope_kb = settings.get("max_envelope_kb")
        timing: TimingMode = settings.get("timing", "instant")
        if seed is not None:
            spec = spec.model_copy(update={"seed": seed})
        self.spec = spec
        self.resolved: ResolvedLab = resolve(spec)
        self.seed = self.resolved.seed
        # ``instant`` for tests (the default here); ``windows`` for the demo, ``lab serve`` and the benchmarks.
        self.timing = LabTiming(timing, self.seed, settings.get("timing_scale", 1.0))
        self.allow_unencrypted = allow_unencrypted
        self.https = settings.get("https", True)
        self.http_port = settings.get("http_port", 5985)
        self.https_port = settings.get("https_port", 5986)
        self._inventory_request = Path(inventory_path) if inventory_path is not None else None
        self._control_port = settings.get("control_port", 0)
        self._wol_port = settings.get("wol_port", 0)
        # the listeners' settings; each PC answers with its own OS's WinRM defaults (service_config_for)
        self.max_envelope_kb = max_envelope_kb
        self.service_config = service_config_for(
            "Windows 10", allow_unencrypted=allow_unencrypted, max_envelope_kb=max_envelope_kb
        )
        self._factory = settings.get("host_factory")
        self.world: LabWorld | None = None
        self.kms: Any = None
        self.front: Any = None
        self.pcs: list[Any] = []
        self._by_name: dict[str, Any] = {}
        self._by_mac: dict[str, Any] = {}
        self._control: Any = None
        self._wol: Any = None
        self._tmpdir: str | None = None
        self.cert_path: str | None = None
        self._inventory_path: Path | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.started = False
        self.start_seconds = 0.0

    # ---- properties ----------------------------------------------------------------------------------------
    @property
    def hosts(self) -> tuple[LabHostConfig, ...]:
        return self.resolved.hosts

    @property
    def control_url(self) -> str:
        if self._control is None:
            raise RuntimeError("the lab is not started")
        return str(self._control.url)

    @property
    def inventory_path(self) -> Path:
        if self._inventory_path is None:
            raise RuntimeError("the lab is not started")
        return self._inventory_path

    @property
    def wol_address(self) -> tuple[str, int]:
        if self._wol is None:
            raise RuntimeError("the lab is not started")
        return self._wol.address, int(self._wol.port)

    # ---- lifecycle ---------------------------------------------------------------------------------------------
    async def start(self) -> None:
        from orchestrator.lab.control import ControlServer
        from orchestrator.lab.inventory_out import write_inventory
        from orchestrator.lab.kms import KmsHost
        from orchestrator.lab.server import WSManFrontEnd, require_loopback
        from orchestrator.lab.wol import WolListener

        t0 = time.perf_counter()
        raise_nofile_limit()
        for cfg in self.resolved.hosts:
            require_loopback(cfg.address)
        require_loopback(self.resolved.service_address)
        require_loopback(self.resolved.kms_address)
        self._tmpdir = tempfile.mkdtemp(prefix="kmsfleet-lab-")
        try:
            factory = self._factory or _default_factory()
            world = LabWorld(self.resolved, self.seed)
            world.timing = self.timing
            self.world = world
            for cfg in self.resolved.hosts:
                pc = self._build_pc(cfg, factory, world)
                self.pcs.append(pc)
                _register_reboot(self, pc.host, cfg.name)
                self._by_name[cfg.name.lower()] = pc
                self._by_mac[cfg.mac.upper()] = pc
            ssl_context = None
            if self.https and any(c.https for c in self.resolved.hosts):
                cert, key = tls.generate([c.address for c in self.resolved.hosts if c.https], self._tmpdir)
                self.cert_path = cert
                ssl_context = tls.server_context(cert, key)
            self.kms = KmsHost(world)
            await self.kms.start()
            self.front = WSManFrontEnd(
                self.pcs,
                service_config=self.service_config,
                ssl_context=ssl_context,
                http_port=self.http_port,
                https_port=self.https_port,
            )
            await self.front.start()
            self._wol = WolListener(self.resolved.wol_broadcast, self._wol_port, self._wake)
            await self._wol.start()
            self._control = ControlServer(self, self.resolved.service_address, self._control_port)
            await self._control.start()
            target = self._inventory_request or Path(self._tmpdir) / "inventory.yml"
            write_inventory(self, target)
            self._inventory_path = target
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        except BaseException:
            await self.stop()
            raise
        self.started = True
        self.start_seconds = time.perf_counter() - t0

    def _build_pc(self, cfg: LabHostConfig, factory: HostFactory, world: LabWorld) -> Any:
        """One PC: its machine (registered with the world), WS-Management service, timing and network state."""
        from orchestrator.lab.server import PcRuntime

        host = factory(cfg, world)
        register = getattr(world, "register", None)
        if register is not None and world.machine(cfg.name) is None:
            with contextlib.suppress(Exception):
                register(host)
        pc_config = service_config_for(
            cfg.os, allow_unencrypted=self.allow_unencrypted, max_envelope_kb=self.max_envelope_kb
        )
        pc_timing = self.timing.pc(cfg.name)
        return PcRuntime(
            config=cfg,
            host=host,
            service=WSManService(host, cfg.address, pc_config, timing=pc_timing),
            rng=random.Random(self.seed * 1_000_003 + cfg.index),
            power_on=cfg.power == "on",
            latency_ms=cfg.latency_ms,
            faults=cfg.faults,
            timing=pc_timing,
        )

    async def stop(self) -> None:
        self.started = False
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._sweeper
            self._sweeper = None
        for part in (self._control, self._wol, self.front, self.kms):
            if part is not None:
                with contextlib.suppress(Exception):
                    await part.stop()
        self._control = self._wol = self.front = self.kms = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    async def _sweep(self) -> None:
        """Expire idle WinRS shells (IdleTimeOut) now and then."""
        while True:
            await asyncio.sleep(30.0)
            for pc in self.pcs:
                if pc.service.shells.shells:
                    pc.service.shells.expire_idle()

    # ---- operations (control API, WoL, tests) ---------------------------------------------------------------
    def pc(self, name: str) -> Any:
        pc = self._by_name.get(name.lower())
        if pc is None:
            raise KeyError(name)
        return pc

    async def set_power(self, name: str, on: bool) -> None:
        pc = self.pc(name)
        await self.front.set_power(pc, on)
        hook = getattr(pc.host, "set", None)
        if callable(hook):
            with contextlib.suppress(Exception):
                hook(power="on" if on else "off")

    async def _wake(self, mac: str) -> bool:
        pc = self._by_mac.get(mac.upper())
        if pc is None:
            return False
        await self.set_power(pc.name, True)
        return True

    def set_faults(self, name: str, values: dict[str, Any]) -> Faults:
        pc = self.pc(name)
        merged = {**pc.faults.model_dump(), **values}
        pc.faults = Faults(**merged)
        return pc.faults  # type: ignore[no-any-return]

    def set_latency(self, name: str, value: float | list[float] | tuple[float, float]) -> Any:
        pc = self.pc(name)
        if isinstance(value, list | tuple):
            lo, hi = (float(v) for v in value)
            if lo < 0 or hi < lo or hi > 600_000:
                raise ValueError("latency_ms range must be [min, max] with 0 <= min <= max <= 600000")
            pc.latency_ms = (lo, hi)
        else:
            v = float(value)
            if not 0 <= v <= 600_000:
                raise ValueError("latency_ms must be between 0 and 600000")
            pc.latency_ms = v
        return pc.latency_ms

    def host_snapshot(self, name: str) -> dict[str, Any]:
        pc = self.pc(name)
        snap: dict[str, Any] = {
            "name": pc.name,
            "room": pc.config.room,
            "address": pc.address,
            "mac": pc.config.mac,
            "computer_name": pc.config.computer_name,
        }
        machine_snapshot = getattr(pc.host, "snapshot", None)
        if callable(machine_snapshot):
            snap["machine"] = machine_snapshot()
        snap.update(pc.network_state())
        return snap

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "start_seconds": round(self.start_seconds, 3),
            "seed": self.seed,
            "timing": self.timing.describe(),
        }
        if self.front is not None:
            out.update(self.front.stats())
        return out


def _register_reboot(lab: Lab, host: Any, name: str) -> None:
    """Let a restart through WMI switch the PC off and on (lab.reboot)."""
    from orchestrator.lab import reboot
    from orchestrator.lab.machine import Machine

    if isinstance(host, Machine):

        async def power(on: bool) -> None:
            await lab.set_power(name, on)

        reboot.register_power(host, power)


class LabThread:
    """A ``Lab`` running in a background thread with its own event loop.

        with LabThread(spec, allow_unencrypted=True) as lab:   # start() with the default timeout
            ...lab.control_url, lab.inventory_path, lab.hosts...

    ``start(timeout)`` returns once every listener is up (or raises what the lab raised). ``call(coro_fn)``
    runs a coroutine function in the lab's loop and returns its result.
    """

    def __init__(self, spec: LabSpec, **lab_kwargs: Any) -> None:
        self.lab = Lab(spec, **lab_kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop_requested: asyncio.Event | None = None

    # ---- proxies ------------------------------------------------------------------------------------------------
    @property
    def hosts(self) -> tuple[LabHostConfig, ...]:
        return self.lab.hosts

    @property
    def control_url(self) -> str:
        return self.lab.control_url

    @property
    def inventory_path(self) -> Path:
        return self.lab.inventory_path

    @property
    def cert_path(self) -> str | None:
        return self.lab.cert_path

    @property
    def wol_address(self) -> tuple[str, int]:
        return self.lab.wol_address

    # ---- lifecycle ----------------------------------------------------------------------------------------------
    def start(self, timeout: float = 120.0) -> LabThread:
        if self._thread is not None:
            raise RuntimeError("LabThread already started")
        self._thread = threading.Thread(target=self._run, name="kmsfleet-lab", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise TimeoutError(f"the lab did not start within {timeout} s")
        if self._error is not None:
            self.stop()
            raise self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
        finally:
            with contextlib.suppress(Exception):
                _cancel_all(loop)
            loop.close()

    async def _main(self) -> None:
        self._stop_requested = asyncio.Event()
        try:
            await self.lab.start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop_requested.wait()
        finally:
            await self.lab.stop()

    def call(self, fn: Callable[[], Any], timeout: float = 30.0) -> Any:
        """Run ``fn()`` (a coroutine function or a plain function) in the lab's loop; return its result."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("the lab is not running")

        async def runner() -> Any:
            result = fn()
            if asyncio.iscoroutine(result):
                result = await result
            return result

        fut: Future[Any] = asyncio.run_coroutine_threadsafe(runner(), loop)
        return fut.result(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        loop, thread = self._loop, self._thread
        if thread is None:
            return
        if loop is not None and self._stop_requested is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._stop_requested.set)
        thread.join(timeout)
        self._thread = None

    def __enter__(self) -> LabThread:
        if self._thread is None:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for t in tasks:
        t.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
