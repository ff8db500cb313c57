"""WMI over WS-Management: WQL Enumerate/Pull, Get of one instance, and method Invoke (MS-WSMV §4.1.4).

Enumerate on ``.../wmi/<namespace>/*`` (or a class URI) with a ``wsman:Filter`` in the WQL dialect. A query
that names its properties is answered with ``w:XmlFragment`` items, ``SELECT *`` (and a class enumerated without
a filter) with typed ``p:<Class>`` items (``cim.py``).

Paging, as recorded from Windows Server 2008 R2 and 2012 (Zenoss txwinrm's test data: every query with more than
one result, e.g. ``server_2012/Win32_Service_all_000..003.xml``): with ``wsman:OptimizeEnumeration`` and
MaxElements 32000 the EnumerateResponse carries exactly ONE item in ``w:Items`` plus an EnumerationContext; when
that one item is all there is, the context is empty and ``w:EndOfSequence`` follows. Each Pull answers a batch of
``n:Items`` that stopped short of about 76,800 characters (75-77 K in every recorded PullResponse, although the
client allowed 512,000 bytes: half of the 153,600-byte default envelope, i.e. Windows' UTF-16 buffer - inferred,
not documented), with a new EnumerationContext while more remain; the last has no context and ``n:EndOfSequence``.
Windows Server 2003 (WinRM 1.1) answered everything in the EnumerateResponse; Windows 7-11 are not in these
recordings (unconfirmed, modelled like 2008 R2/2012). Items are also cut so no response exceeds the client's
MaxEnvelopeSize. Enumeration contexts expire after ``EnumerationTimeoutms`` (240 s) like Windows'.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from orchestrator.lab import wql
from orchestrator.lab.provider import ARRAY_JOIN, SimulatedHost, WmiError
from orchestrator.lab.wsman import cim, faults, ns
from orchestrator.lab.wsman.ns import q
from orchestrator.lab.wsman.request import WSManRequest
from orchestrator.lab.wsman.xmltext import esc, new_id

ENUMERATION_TIMEOUT_S = 240.0
OPTIMIZED_FIRST_BATCH = 1  # items in an optimized EnumerateResponse (recorded, see above)
PULL_BATCH_CHARS = 76_800  # a Pull batch stops before this much item text (recorded 75-77 K; see above)
MAX_CONTEXTS = 64  # per host; the oldest is dropped beyond this (Windows: MaxConcurrentOperationsPerUser)
_ENVELOPE_OVERHEAD = 1024

_ENUMERATE = q(ns.WSEN, "Enumerate")
_PULL = q(ns.WSEN, "Pull")
_RELEASE = q(ns.WSEN, "Release")
_OPTIMIZE = q(ns.WSMAN, "OptimizeEnumeration")
_W_MAX = q(ns.WSMAN, "MaxElements")
_N_MAX = q(ns.WSEN, "MaxElements")
_FILTER = q(ns.WSMAN, "Filter")
_N_FILTER = q(ns.WSEN, "Filter")
_CONTEXT = q(ns.WSEN, "EnumerationContext")
_NIL = q(ns.XSI, "nil")


@dataclass
class _Context:
    items: list[str]
    created: float


class WmiService:
    """Per-host WMI front end: holds the open enumeration contexts."""

    def __init__(self, host: SimulatedHost, machine_name: str) -> None:
        self.host = host
        self.machine_name = machine_name
        self._contexts: OrderedDict[str, _Context] = OrderedDict()

    def reset(self) -> None:
        self._contexts.clear()

    # ---- Enumerate / Pull / Release -------------------------------------------------------------------
    def enumerate(self, req: WSManRequest, budget: int) -> str:
        body = req.body
        if body is None or body.tag != _ENUMERATE:
            raise faults.schema_validation("The Enumerate request needs an n:Enumerate body. ")
        where = cim.split_class_uri(req.resource_uri)
        if where is None:
            raise faults.destination_unreachable(req.resource_uri)
        namespace, class_name = where
        namespace = req.selector("__cimnamespace") or namespace
        filt = body.find(_FILTER)
        if filt is None:
            filt = body.find(_N_FILTER)
        query: str | None = None
        if filt is not None:
            dialect = filt.get("Dialect") or ns.DIALECT_WQL
            if dialect.lower() != ns.DIALECT_WQL.lower():
                raise faults.filter_dialect_unavailable(dialect)
            query = (filt.text or "").strip()
        if query is None:
            if class_name == "*":
                raise faults.cannot_process_filter("", "A WQL filter is required for this resource URI. ", self._m)
            if class_name.lower() not in {c.lower() for c in self._class_names(namespace, req.resource_uri)}:
                raise faults.destination_unreachable(req.resource_uri)
            query = f"SELECT * FROM {class_name}"
        try:
            instances = self.host.wql(query, namespace)
        except WmiError as err:
            raise faults.from_wmi_error(err, self._m, query=query) from None
        render = cim.fragment_xml if _names_properties(query) else cim.instance_xml
        items = [render(i) for i in instances]
        optimize = body.find(_OPTIMIZE) is not None
        max_elements = _int(body.findtext(_W_MAX), 20) if optimize else 0
        if optimize:
            batch, rest = _take(items, min(max_elements, OPTIMIZED_FIRST_BATCH), budget)
        else:
            batch, rest = [], items
        context = self._store(rest) if rest else ""
        parts = [f"<n:EnumerationContext>{context}</n:EnumerationContext>" if context else "<n:EnumerationContext/>"]
        if optimize:
            parts.append(f"<w:Items>{''.join(batch)}</w:Items>" if batch else "<w:Items/>")
            if not rest:
                parts.append("<w:EndOfSequence/>")
        return f"<n:EnumerateResponse>{''.join(parts)}</n:EnumerateResponse>"

    def pull(self, req: WSManRequest, budget: int) -> str:
        body = req.body
        if body is None or body.tag != _PULL:
            raise faults.schema_validation("The Pull request needs an n:Pull body. ")
        context_id = (body.findtext(_CONTEXT) or "").strip()
        self._expire()
        ctx = self._contexts.pop(context_id, None)
        if ctx is None:
            raise faults.invalid_enumeration_context()
        batch, rest = _take(ctx.items, _int(body.findtext(_N_MAX), 1), budget, PULL_BATCH_CHARS)
        parts: list[str] = []
        if rest:
            new_context = self._store(rest)
            parts.append(f"<n:EnumerationContext>{new_context}</n:EnumerationContext>")
        parts.append(f"<n:Items>{''.join(batch)}</n:Items>")
        if not rest:
            parts.append("<n:EndOfSequence/>")
        return f"<n:PullResponse>{''.join(parts)}</n:PullResponse>"

    def release(self, req: WSManRequest) -> str:
        body = req.body
        context_id = (body.findtext(_CONTEXT) or "").strip() if body is not None else ""
        if self._contexts.pop(context_id, None) is None:
            raise faults.invalid_enumeration_context()
        return ""

    # ---- Get / Invoke -----------------------------------------------------------------------------------
    def get(self, req: WSManRequest) -> str:
        namespace, class_name = self._class_of(req)
        selectors = {k: v for k, v in req.selectors.items() if k.lower() != "__cimnamespace"}
        try:
            inst = self.host.get_instance(class_name, selectors, namespace)
        except WmiError as err:
            raise faults.from_wmi_error(err, self._m, resource_uri=req.resource_uri, selectors=selectors) from None
        return cim.instance_xml(inst)

    async def invoke(self, req: WSManRequest, user: str) -> str:
        namespace, class_name = self._class_of(req)
        prefix = req.resource_uri.rstrip("/") + "/"
        if not req.action.lower().startswith(prefix.lower()):
            raise faults.action_not_supported(req.action)
        method = req.action[len(prefix) :]
        if not method or "/" in method:
            raise faults.action_not_supported(req.action)
        params: dict[str, str] = {}
        if req.body is not None:
            for child in req.body:
                if child.get(_NIL) in ("true", "1"):
                    continue
                name = child.tag.rsplit("}", 1)[-1]
                text = child.text or ""  # an array is its element repeated (provider.ARRAY_JOIN)
                params[name] = params[name] + ARRAY_JOIN + text if name in params else text
        selectors = {k: v for k, v in req.selectors.items() if k.lower() != "__cimnamespace"}
        try:
            out = await self.host.invoke(class_name, method, selectors, params, user, namespace)
        except WmiError as err:
            raise faults.from_wmi_error(err, self._m, resource_uri=req.resource_uri) from None
        return cim.method_output_xml(class_name, method, out, namespace)

    # ---- helpers -------------------------------------------------------------------------------------------
    @property
    def _m(self) -> str:
        return self.machine_name

    def _class_of(self, req: WSManRequest) -> tuple[str, str]:
        where = cim.split_class_uri(req.resource_uri)
        if where is None or where[1] == "*":
            raise faults.destination_unreachable(req.resource_uri)
        namespace, class_name = where
        namespace = req.selector("__cimnamespace") or namespace
        known = {c.lower(): c for c in self._class_names(namespace, req.resource_uri)}
        if class_name.lower() not in known:
            raise faults.destination_unreachable(req.resource_uri)
        return namespace, known[class_name.lower()]

    def _class_names(self, namespace: str, resource_uri: str) -> frozenset[str]:
        try:
            return self.host.class_names(namespace)
        except WmiError:
            raise faults.destination_unreachable(resource_uri) from None

    def _store(self, items: list[str]) -> str:
        self._expire()
        context_id = "uuid:" + new_id()
        self._contexts[context_id] = _Context(items, time.monotonic())
        while len(self._contexts) > MAX_CONTEXTS:
            self._contexts.popitem(last=False)
        return esc(context_id)

    def _expire(self) -> None:
        cutoff = time.monotonic() - ENUMERATION_TIMEOUT_S
        while self._contexts:
            key, ctx = next(iter(self._contexts.items()))
            if ctx.created >= cutoff:
                break
            del self._contexts[key]


def _names_properties(query: str) -> bool:
    """Does the WQL (already run by the host) name its properties, rather than ``SELECT *``?"""
    try:
        return wql.parse(query).properties is not None
    except WmiError:  # a host with its own query language (a test double): typed, as for SELECT *
        return False


def _take(
    items: list[str], max_elements: int, budget: int, batch_chars: int | None = None
) -> tuple[list[str], list[str]]:
    """As many items as fit in ``max_elements``, ``budget`` bytes and (a batch being cut like Windows cuts it)
    ``batch_chars``; at least one that fits ``budget``, so Pull always progresses."""
    room = budget - _ENVELOPE_OVERHEAD
    soft = min(room, batch_chars) if batch_chars else room
    count = 0
    used = 0
    limit = max(1, max_elements)
    for item in items:
        size = len(item.encode("utf-8")) if not item.isascii() else len(item)
        if count >= limit or (count > 0 and used + size > soft):
            break
        used += size
        count += 1
    if count == 1 and used > room:
        raise faults.encoding_limit(budget)
    return items[:count], items[count:]


def _int(text: str | None, default: int) -> int:
    try:
        return int((text or "").strip())
    except ValueError:
        return default
