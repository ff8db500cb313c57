"""One simulated PC's WS-Management service: parse the envelope, dispatch on ``wsa:Action`` and the resource
URI, answer with the response or the fault Windows would send."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from orchestrator.lab.provider import SimulatedHost, WmiError
from orchestrator.lab.timing import PcTiming, instant_pc
from orchestrator.lab.wsman import faults, ns, response
from orchestrator.lab.wsman.config import ServiceConfig, config_xml
from orchestrator.lab.wsman.faults import WSManFault
from orchestrator.lab.wsman.identify import identify_response, is_identify
from orchestrator.lab.wsman.request import MalformedRequest, WSManRequest, parse_request, peek_message_id
from orchestrator.lab.wsman.shell import CallerInfo, ShellService
from orchestrator.lab.wsman.wmi import WmiService

log = logging.getLogger(__name__)

DEFAULT_OPERATION_TIMEOUT_S = 60.0
DEFAULT_CLIENT_ENVELOPE = 153600
MIN_ENVELOPE = 8192

_T = TypeVar("_T")
_SHELL_ACTIONS = frozenset({ns.ACT_RECEIVE, ns.ACT_COMMAND, ns.ACT_SEND, ns.ACT_SIGNAL})
_URI_SHELL_CMD = ns.URI_SHELL_CMD.lower()
_URI_SHELL = ns.URI_SHELL.lower()
_URI_CONFIG = ns.URI_CONFIG.lower()
_URI_WMI = ns.URI_WMI.lower()


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int
    body: bytes
    label: str  # for request counters: "Receive", "Invoke:Activate", "fault:…"
    fault_code: int | None = None
    # Modelled time still to spend before the answer goes out (a WQL query's, lab/timing.py): the answer is
    # complete already, so whoever sends it can finish its own work (sealing) before waiting. See ``prepare``.
    hold_s: float = 0.0


class WSManService:
    def __init__(
        self, host: SimulatedHost, machine: str, config: ServiceConfig, *, timing: PcTiming | None = None
    ) -> None:
        self.host = host
        self.machine = machine  # what faults carry in WSManFault@Machine (the PC's address)
        self.config = config
        self.timing = timing or instant_pc()
        self._background: set[asyncio.Future[Any]] = set()
        self.shells = ShellService(host, machine, config)
        self.wmi = WmiService(host, machine)

    def reset(self) -> None:
        """Power off / reboot: shells, commands and enumeration contexts are gone."""
        self.shells.reset()
        self.wmi.reset()

    async def handle(self, data: bytes, caller: CallerInfo) -> Outcome:
        """The answer to one request, after its modelled time."""
        outcome = await self.prepare(data, caller)
        if outcome.hold_s > 0:
            await asyncio.sleep(outcome.hold_s)
        return outcome

    async def prepare(self, data: bytes, caller: CallerInfo) -> Outcome:
        """The answer to one request; for a WQL Enumerate the query's modelled time is left in ``hold_s`` instead
        of spent here. The rows are read at arrival in both cases (they were before the hold existed), so an
        answer prepared now and sent ``hold_s`` later is the same answer; only its sending waits."""
        if is_identify(data):
            return Outcome(200, identify_response(self._os_version()), "Identify")
        try:
            req = parse_request(data)
        except MalformedRequest as exc:
            relates = exc.message_id or peek_message_id(data)
            return Outcome(exc.fault.http_status, exc.fault.render(self.machine, relates), "malformed", exc.fault.code)
        label = _label(req)
        budget = max(
            MIN_ENVELOPE, min(req.max_envelope_size or DEFAULT_CLIENT_ENVELOPE, self.config.max_envelope_bytes)
        )
        hold = 0.0  # set once the request's work is done: a fault raised after it is answered after the wait too
        try:
            body, decl, hold = await self._dispatch(req, caller, budget)
            out = response.envelope(response.response_action(req.action), req.message_id, body, decl)
            if len(out) > budget:
                raise faults.encoding_limit(budget, len(out))
            return Outcome(200, out, label, hold_s=hold)
        except WSManFault as fault:
            return Outcome(fault.http_status, fault.render(self.machine, req.message_id), label, fault.code, hold)
        except WmiError as err:
            wmi_fault = faults.from_wmi_error(err, self.machine, resource_uri=req.resource_uri)
            return Outcome(wmi_fault.http_status, wmi_fault.render(self.machine, req.message_id), label, wmi_fault.code)
        except Exception:  # a bug behind the front end must not take the listener down: answer like Windows
            log.exception("WS-Management request %s on %s failed", label, self.machine)
            internal = faults.internal_error()
            return Outcome(internal.http_status, internal.render(self.machine, req.message_id), label, internal.code)

    def _os_version(self) -> str:
        try:
            version = self.host.get_instance("Win32_OperatingSystem", {}).get("Version")
        except WmiError:
            version = None
        return str(version) if version else "10.0.19041"

    async def _dispatch(self, req: WSManRequest, caller: CallerInfo, budget: int) -> tuple[str, str, float]:
        """The response body, its namespace declarations and the modelled time still to spend before it is sent,
        by ``wsa:Action`` and resource URI."""
        action = req.action
        luri = req.resource_uri.rstrip("/").lower()
        if action in _SHELL_ACTIONS or action in (ns.ACT_CREATE, ns.ACT_DELETE):
            if luri != _URI_SHELL_CMD:
                raise faults.destination_unreachable(req.resource_uri)
            return (*await self._shell_action(req, caller, budget), 0.0)
        if action == ns.ACT_GET:
            return self._get(req, luri), response.DECL_TRANSFER, 0.0
        if action == ns.ACT_ENUMERATE:
            items, hold = await self._enumerate(req, luri, budget)
            return items, response.DECL_ENUM, hold
        if action == ns.ACT_PULL:
            if not luri.startswith(_URI_WMI):
                raise faults.invalid_enumeration_context()
            return self.wmi.pull(req, budget), response.DECL_ENUM, 0.0
        if action == ns.ACT_RELEASE:
            return self.wmi.release(req), response.DECL_ENUM, 0.0
        return await self._invoke(req, caller, luri), response.DECL_TRANSFER, 0.0

    async def _shell_action(self, req: WSManRequest, caller: CallerInfo, budget: int) -> tuple[str, str]:
        """WinRS on the cmd shell URI: Create, Command, Send, Receive, Signal, Delete."""
        action = req.action
        if action == ns.ACT_RECEIVE:
            timeout = min(req.operation_timeout or DEFAULT_OPERATION_TIMEOUT_S, self.config.max_timeout_ms / 1000.0)
            return await self.shells.receive(req, timeout, budget), response.DECL_RECEIVE
        if action == ns.ACT_CREATE:
            deadline = self._deadline(req)
            await self._spend(deadline, self.timing.get("shell_create"))
            return self.shells.create(req, caller), response.DECL_CREATE
        if action == ns.ACT_DELETE:
            return self.shells.delete(req), response.DECL_PLAIN
        if action == ns.ACT_COMMAND:
            return self.shells.command(req), response.DECL_SHELL
        if action == ns.ACT_SEND:
            return self.shells.send(req), response.DECL_SHELL
        return self.shells.signal(req), response.DECL_SHELL

    def _get(self, req: WSManRequest, luri: str) -> str:
        if luri == _URI_CONFIG:
            return config_xml(self.config)
        if luri == _URI_SHELL:
            return self.shells.get(req)
        if luri.startswith(_URI_WMI):
            return self.wmi.get(req)
        raise faults.destination_unreachable(req.resource_uri)

    async def _enumerate(self, req: WSManRequest, luri: str, budget: int) -> tuple[str, float]:
        """The EnumerateResponse and the query's modelled time still to spend (0 once spent here: a query past
        its OperationTimeout waits until then and answers w:TimedOut)."""
        if luri == _URI_SHELL:
            return _shell_enumeration(self.shells.enumerate_xml()), 0.0
        if not luri.startswith(_URI_WMI):
            raise faults.destination_unreachable(req.resource_uri)
        deadline = self._deadline(req)
        items = self.wmi.enumerate(req, budget)
        seconds = self.timing.query(_queried_class(req))
        if seconds > deadline - time.monotonic():
            await self._spend(deadline, seconds)  # raises w:TimedOut once OperationTimeout has passed
        return items, max(0.0, seconds)

    async def _invoke(self, req: WSManRequest, caller: CallerInfo, luri: str) -> str:
        """A WMI method (the action is the class URI + "/" + method), or the fault for an unknown action."""
        action = req.action
        is_wmi = luri.startswith(_URI_WMI)
        if is_wmi and action.lower().startswith(luri + "/"):
            deadline = self._deadline(req)
            method = action.rsplit("/", 1)[-1]
            out = await self._bounded(deadline, self.wmi.invoke(req, caller.user))
            await self._spend(deadline, self.timing.invoke(method))
            return out
        if is_wmi or luri in (_URI_SHELL_CMD, _URI_CONFIG, _URI_SHELL):
            raise faults.action_not_supported(action)
        raise faults.destination_unreachable(req.resource_uri)

    # ---- OperationTimeout (lab/timing.py) ------------------------------------------------------------------
    # DSP0226 (WS-Management) gives every operation the client's wsman:OperationTimeout; past it the service
    # answers wsman:TimedOut. Windows sends ERROR_WSMAN_OPERATION_TIMEDOUT (2150858793) for it; its shape is the
    # recorded Receive fault (faults.timed_out), which the lab also sends for WMI Enumerate/Invoke and shell Create.

    def _deadline(self, req: WSManRequest) -> float:
        limit = min(req.operation_timeout or DEFAULT_OPERATION_TIMEOUT_S, self.config.max_timeout_ms / 1000.0)
        return time.monotonic() + limit

    async def _spend(self, deadline: float, seconds: float) -> None:
        """Spend the modelled ``seconds``; when that passes the request's OperationTimeout, answer w:TimedOut
        once OperationTimeout has passed (not earlier: the client sees the wait, as with Windows)."""
        if seconds <= 0:
            return
        left = deadline - time.monotonic()
        if seconds > left:
            await asyncio.sleep(max(0.0, left))
            raise faults.timed_out()
        await asyncio.sleep(seconds)

    async def _bounded(self, deadline: float, work: Awaitable[_T]) -> _T:
        """Run ``work`` (a WMI method) until it ends or OperationTimeout passes, then answer w:TimedOut. The method
        itself runs on to its own end, as the provider on Windows does [unconfirmed]; its result is dropped."""
        task = asyncio.ensure_future(work)
        left = deadline - time.monotonic()
        done, _ = await asyncio.wait({task}, timeout=max(0.0, left))
        if task in done:
            return task.result()
        self._background.add(task)
        task.add_done_callback(self._forget)
        raise faults.timed_out()

    def _forget(self, task: asyncio.Future[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a late failure of a timed-out call is expected, not a lab bug


def _queried_class(req: WSManRequest) -> str:
    """The class an Enumerate asks for: the WQL filter's FROM, else the resource URI's last segment."""
    text = ""
    if req.body is not None:
        text = next((el.text or "" for el in req.body if el.tag.endswith("}Filter")), "")
    words = text.replace(",", " ").split()
    for i, word in enumerate(words[:-1]):
        if word.lower() == "from":
            return words[i + 1]
    return req.resource_uri.rstrip("/").rsplit("/", 1)[-1]


def _shell_enumeration(shells: list[str]) -> str:
    items = f"<w:Items>{''.join(shells)}</w:Items>" if shells else "<w:Items/>"
    return f"<n:EnumerateResponse><n:EnumerationContext/>{items}<w:EndOfSequence/></n:EnumerateResponse>"


def _label(req: WSManRequest) -> str:
    action = req.action
    for prefix in (ns.RSP + "/", ns.WST + "/", ns.WSEN + "/"):
        if action.startswith(prefix):
            return action[len(prefix) :]
    if req.resource_uri and action.lower().startswith(req.resource_uri.rstrip("/").lower() + "/"):
        return "Invoke:" + action.rsplit("/", 1)[-1]
    return "Other"
