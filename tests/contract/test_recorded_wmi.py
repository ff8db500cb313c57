"""Recorded WMI answers of real Windows (tests/data/recordings, see the PROVENANCE files) replayed through
kmsfleet's real transport over loopback, and the same queries sent to the lab, whose answers must have the
recording's structure.

- ``Replay``: a tiny aiohttp server on 127.0.0.1 that answers each POST with the next recorded body (RelatesTo set
  to the request's MessageID, as pypsrp insists), so ``WinRMConnection`` (pypsrp, Basic, no encryption) reads a
  real Windows answer.
- ``Splice``: the same server in front of a lab PC (Basic, the lab started with ``allow_unencrypted``, as
  test_recorded_winrs does): every request goes to the lab, except those matching a pattern, which get a recorded
  answer. That lets whole modules run against a lab PC whose one answer is Windows' own (the recorded OS answer of
  a PC six hours off; the recorded quota fault or w:TimedOut answering Activate).
"""

from __future__ import annotations

import asyncio
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from labkit import plain_http_lab
from pypsrp.wsman import NAMESPACES, WSMan
from shared_data import SHARED

from orchestrator.lab.provider import CimInstance, CimProperty
from orchestrator.lab.runner import LabThread
from orchestrator.lab.wsman import cim
from orchestrator.modules.base import ModuleContext, TaskFailed
from orchestrator.modules.licensing import gather
from orchestrator.modules.licensing.diagnose import diagnose_activation
from orchestrator.modules.licensing.time_sync import TimeSync, TimeSyncArgs
from orchestrator.modules.licensing.windows_kms import WindowsKms, WindowsKmsArgs
from orchestrator.transport import wmi
from orchestrator.transport.connection import ConnectionSpec
from orchestrator.transport.errors import WSManFault, WSManQuotaExceeded
from orchestrator.transport.winrm import WinRMConnection

RECORDINGS = Path(__file__).resolve().parents[1] / "data" / "recordings"
TX = RECORDINGS / "txwinrm"
QUOTA_FAULT = RECORDINGS / "winrb" / "wmi_error_v2.xml"
NOT_FOUND_FAULT = RECORDINGS / "omi" / "wmi_get_instance_not_found.xml"
TIMED_OUT_FAULT = SHARED / "wsman" / "samples" / "04b_fault_operation_timeout_2150858793.xml"
USER, PASSWORD = "administrator", "Contract-Passw0rd!"
WSMAN_NS = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
FRAGMENT = f"{{{WSMAN_NS}}}XmlFragment"
CIM = "http://schemas.dmtf.org/wbem/wscim/1/common"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
_MESSAGE_ID = re.compile(rb"<(?:\w+:)?MessageID>\s*(uuid:[0-9A-Fa-f-]+)\s*</(?:\w+:)?MessageID>")
_RELATES = re.compile(rb"<(\w+:)?RelatesTo>[^<]*</(?:\w+:)?RelatesTo>")
_HEADER_END = re.compile(rb"</(\w+:)?Header>")
OS_QUERY = "SELECT LocalDateTime, CurrentTimeZone, Version FROM Win32_OperatingSystem"


def _answer(recorded: bytes, request: bytes) -> bytes:
    """The recorded body, related to this request (RelatesTo = its MessageID; added when the recording has none)."""
    m = _MESSAGE_ID.search(request)
    message_id = m.group(1) if m else b"uuid:00000000-0000-0000-0000-000000000000"
    if _RELATES.search(recorded):
        return _RELATES.sub(
            lambda r: b"<%sRelatesTo>%s</%sRelatesTo>" % (r.group(1) or b"", message_id, r.group(1) or b""),
            recorded,
            count=1,
        )
    return _HEADER_END.sub(lambda h: b"<a:RelatesTo>%s</a:RelatesTo>%s" % (message_id, h.group(0)), recorded, count=1)


@dataclass
class Replay:
    """Loopback HTTP server: recorded answers in order (``script``), or spliced in front of ``upstream``."""

    script: list[tuple[int, bytes]] = field(default_factory=list)
    upstream: str | None = None
    splices: list[tuple[bytes, int, bytes]] = field(default_factory=list)  # (pattern in the request, status, body)
    port: int = 0
    requests: list[bytes] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _stop: asyncio.Event | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        data = await request.read()
        self.requests.append(data)
        for pattern, status, body in self.splices:
            if pattern in data:
                return web.Response(status=status, body=_answer(body, data), content_type="application/soap+xml")
        if self.upstream is None:
            if not self.script:
                return web.Response(status=500, body=b"")
            status, body = self.script.pop(0)
            return web.Response(status=status, body=_answer(body, data), content_type="application/soap+xml")
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.upstream, data=data, headers=headers, timeout=aiohttp.ClientTimeout(total=60)) as up,
        ):
            body = await up.read()
            return web.Response(status=up.status, body=body, headers={"Content-Type": up.headers["Content-Type"]})

    def __enter__(self) -> Replay:
        ready = threading.Event()

        async def main() -> None:
            app = web.Application()
            app.router.add_post("/wsman", self._handle)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = runner.addresses[0][1]
            self._stop = asyncio.Event()
            ready.set()
            await self._stop.wait()
            await runner.cleanup()

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(main(),), daemon=True)
        self._thread.start()
        assert ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._loop.close()

    def connection(self, retries: int = 1) -> WinRMConnection:
        spec = ConnectionSpec(
            host="pc",
            address="127.0.0.1",
            port=self.port,
            scheme="http",
            transport="basic",
            user=USER,
            password=PASSWORD,
            message_encryption="never",
            operation_timeout=10,
            read_timeout=20,
            budget=120,
        )
        return WinRMConnection(spec, retries=retries)


def recorded(path: Path) -> bytes:
    return path.read_bytes()


def _ctx(conn: WinRMConnection, now: Callable[[], datetime] | None = None) -> ModuleContext:
    return ModuleContext(
        host="pc",
        hostvars={},
        check_mode=False,
        diff=False,
        connect=lambda: conn,
        cancel=threading.Event(),
        controller_now=now or (lambda: datetime.now(UTC)),
    )


# ------------------------------------------------------------------------------------------------ client side


@pytest.mark.parametrize("server", ["server_2003", "server_2008", "server_2012"])
def test_recorded_xml_fragment_gives_the_same_typed_values_as_select_star(server: str) -> None:
    """Windows' named-property answer (XmlFragment, untyped) and its SELECT * answer (typed p:Class) of the same
    PC read as the same Python values through kmsfleet's transport."""
    with Replay(
        script=[
            (200, recorded(TX / server / "Win32_OperatingSystem_all_000.xml")),
            (200, recorded(TX / server / "Win32_OperatingSystem_star_000.xml")),
        ]
    ) as replay:
        conn = replay.connection()
        try:
            (named,) = conn.wql(OS_QUERY)
            (star,) = conn.wql("SELECT * FROM Win32_OperatingSystem")
        finally:
            conn.close()
    assert named["__CLASS"] == star["__CLASS"] == "Win32_OperatingSystem"
    local = named["LocalDateTime"]
    assert isinstance(local, datetime) and local.tzinfo is not None and local.year == 2013
    assert isinstance(star["LocalDateTime"], datetime)
    assert abs((local - star["LocalDateTime"]).total_seconds()) < 5  # the two answers were read moments apart
    for prop in (
        "Caption",
        "Version",
        "BuildNumber",
        "OSType",
        "ProductType",
        "CurrentTimeZone",
        "Primary",
        "CSDVersion",
        "InstallDate",
        "ServicePackMajorVersion",
        "OSLanguage",
    ):
        assert named.get(prop) == star.get(prop), prop
        assert type(named.get(prop)) is type(star.get(prop)), prop
    assert named["CurrentTimeZone"] == 0 and named["OSType"] == 18 and named["Primary"] is True
    assert isinstance(named["ProductType"], int)
    assert str(named["Version"]).count(".") == 2


def test_recorded_arrays_nulls_and_fragment_datetimes() -> None:
    with Replay(
        script=[
            (200, recorded(TX / "server_2012" / "Win32_ComputerSystem_all_000.xml")),
            (200, recorded(TX / "server_2012" / "Win32_NetworkAdapterConfiguration_all_000.xml")),
            (200, recorded(TX / "server_2012" / "Win32_NetworkAdapterConfiguration_all_001.xml")),
        ]
    ) as replay:
        conn = replay.connection()
        try:
            (cs,) = conn.wql("SELECT Name, Roles, PartOfDomain, NumberOfProcessors FROM Win32_ComputerSystem")
            adapters = conn.wql("SELECT Index, DHCPLeaseObtained, MTU FROM Win32_NetworkAdapterConfiguration")
        finally:
            conn.close()
    assert cs["Roles"] == ["LM_Workstation", "LM_Server", "NT", "Server_NT"]
    assert isinstance(cs["PartOfDomain"], bool) and isinstance(cs["NumberOfProcessors"], int)
    assert len(adapters) == 13  # 1 in the EnumerateResponse, 12 from the Pull
    leased = [a for a in adapters if a["DHCPLeaseObtained"] is not None]
    assert leased and all(isinstance(a["DHCPLeaseObtained"], datetime) for a in leased)
    assert all(a["MTU"] is None for a in adapters)  # xsi:nil="true" in every recorded adapter
    assert sorted(a["Index"] for a in adapters) == sorted({a["Index"] for a in adapters})
    assert all(isinstance(a["Index"], int) for a in adapters)


def test_recorded_paging_is_followed_to_the_end() -> None:
    pages = [recorded(TX / "server_2012" / f"Win32_Service_all_{n:03d}.xml") for n in range(4)]
    with Replay(script=[(200, p) for p in pages]) as replay:
        conn = replay.connection()
        try:
            services = conn.wql("SELECT Name, State, AcceptPause, ProcessId FROM Win32_Service")
        finally:
            conn.close()
        pulls = sum(b"enumeration/Pull<" in r for r in replay.requests)
    assert len(services) == 1 + 59 + 61 + 10
    assert pulls == 3
    assert all(isinstance(s["AcceptPause"], bool) and isinstance(s["ProcessId"], int) for s in services)


def test_recorded_os_answer_gives_the_clock_and_a_pc_six_hours_off_is_the_clock() -> None:
    body = recorded(TX / "server_2012" / "Win32_OperatingSystem_all_000.xml")
    recorded_now = datetime(2013, 4, 15, 20, 28, 21, 85000, tzinfo=UTC)
    controller = lambda: recorded_now - timedelta(hours=6)  # noqa: E731 - the PC is 6 h ahead of the controller
    with Replay(script=[(200, body), (200, body), (200, body)]) as replay:
        conn = replay.connection()
        try:
            ctx = _ctx(conn, controller)
            clock = gather.read_clock(ctx)
            os_info = gather.read_os(ctx)
            assert clock.offset_seconds is not None and abs(clock.offset_seconds - 6 * 3600) < 60
            assert clock.utc_offset_minutes == 0 and clock.os_version == "6.2.9200"
            assert os_info.version == "6.2.9200" and os_info.build == "9200" and os_info.product_type == 3
            diag = diagnose_activation(ctx, _facts_stub(), 0xC004F074, None)
        finally:
            conn.close()
    assert diag.key == "KF_CLOCK_SKEW"
    assert "6.0 h ahead" in diag.note


def _facts_stub() -> Any:
    from orchestrator.modules.licensing.model import LicensingFacts, OsInfo, Service

    return LicensingFacts(os=OsInfo(version="6.2.9200"), spp=Service(kind="spp", version="6.2.9200.16384"))


def test_recorded_quota_faults_are_infrastructure_by_code() -> None:
    """0x803381A5 only in MSFT_WmiError (WinRb), 0x803381A6 only in WSManFault@Code under w:InternalError (txwinrm):
    both are WinRM quota faults, neither a licensing error."""
    with Replay(script=[(500, recorded(QUOTA_FAULT)), (500, recorded(TX / "data_error" / "max_concurrent.xml"))]) as r:
        conn = r.connection()
        faults: list[WSManFault] = []
        try:
            for _ in range(2):
                with pytest.raises(WSManFault) as info:
                    conn.invoke("SoftwareLicensingProduct", "Activate", {"ID": "x"}, {})
                faults.append(info.value)
        finally:
            conn.close()
    assert [f.hresult for f in faults] == [0x803381A5, 0x803381A6]
    assert all(isinstance(f, WSManQuotaExceeded) and f.infrastructure for f in faults)
    # the operations quota goes away on a fresh connection; the shells quota does not (another try opens
    # another shell), so only the first is worth a retry
    assert [f.transient for f in faults] == [False, True]


def test_recorded_missing_instance_fault_is_read_as_windows_sent_it() -> None:
    """kmsfleet's transport reads Windows Server 2012 R2's fault for a missing WMI instance (OMI's test data): the
    code 2150858752, the WS-Addressing subcode, a WinRM fault that is neither a quota nor worth another try."""
    with Replay(script=[(500, recorded(NOT_FOUND_FAULT))]) as r:
        conn = r.connection()
        try:
            with pytest.raises(WSManFault) as info:
                conn.invoke("Win32_Service", "StartService", {"Name": "NoSuchService"}, {})
        finally:
            conn.close()
    fault = info.value
    assert (fault.hresult, fault.subcode, fault.kind) == (0x80338000, "a:DestinationUnreachable", "wsman")
    assert not fault.transient
    assert "cannot find the resource identified by the resource URI and selectors" in str(fault)


def test_a_quota_fault_on_a_read_only_query_is_retried() -> None:
    with Replay(
        script=[
            (500, recorded(TX / "data_error" / "max_concurrent.xml")),
            (200, recorded(TX / "server_2012" / "Win32_OperatingSystem_all_000.xml")),
        ]
    ) as replay:
        conn = replay.connection(retries=3)
        try:
            (row,) = conn.wql(OS_QUERY)
        finally:
            conn.close()
        assert len(replay.requests) == 2
    assert row["Version"] == "6.2.9200"


# ------------------------------------------------------------------------------------------------ lab side


@pytest.fixture(scope="module")
def lab() -> Iterator[LabThread]:
    hosts = [{"name": "ok1"}, {"name": "ok2"}, {"name": "ok3"}, {"name": "ahead6h", "clock_skew_minutes": 360}]
    with plain_http_lab("wmi", hosts, USER, PASSWORD) as thread:
        yield thread


def _host(lab: LabThread, name: str) -> Any:
    return next(h for h in lab.hosts if h.name == name)


def _lab_conn(lab: LabThread, name: str) -> WinRMConnection:
    host = _host(lab, name)
    spec = ConnectionSpec(
        host=name, address=host.address, port=5985, scheme="http", transport="ntlm", user=USER, password=PASSWORD
    )
    return WinRMConnection(spec)


def _lab_enumerate(lab: LabThread, query: str) -> list[ET.Element]:
    """The lab's raw answers (EnumerateResponse, then each PullResponse) to ``query``."""
    wsman = WSMan(_host(lab, "ok1").address, username=USER, password=PASSWORD, ssl=False, auth="ntlm")
    uri = wmi.enumerate_uri()
    bodies = [wsman.enumerate(uri, wmi.enumerate_body(query).element())]
    for _ in range(50):
        last = bodies[-1]
        resp = last.find("wsen:EnumerateResponse", NAMESPACES) or last.find("wsen:PullResponse", NAMESPACES)
        assert resp is not None
        context = resp.findtext("wsen:EnumerationContext", None, NAMESPACES)
        if (
            resp.find("wsman:EndOfSequence", NAMESPACES) is not None
            or resp.find("wsen:EndOfSequence", NAMESPACES) is not None
        ):
            break
        assert context
        bodies.append(wsman.pull(uri, wmi.pull_body(context).element()))
    return bodies


def _recorded_body(path: Path) -> ET.Element:
    body = ET.fromstring(path.read_bytes()).find("{http://www.w3.org/2003/05/soap-envelope}Body")
    assert body is not None
    return body


def _items(body: ET.Element) -> list[ET.Element]:
    resp = body[0]
    items = resp.find(f"{{{WSMAN_NS}}}Items")
    if items is None:
        items = resp.find("{http://schemas.xmlsoap.org/ws/2004/09/enumeration}Items")
    return list(items) if items is not None else []


def _frame(body: ET.Element) -> list[str]:
    """The response element and its children's names (items stand for their container), no values."""
    resp = body[0]
    return [resp.tag] + [
        c.tag + ("(context)" if c.tag.endswith("EnumerationContext") and (c.text or "").strip() else "") for c in resp
    ]


def _prop_shape(elem: ET.Element) -> tuple[str, tuple[str, ...], tuple[Any, ...]]:
    return elem.tag, tuple(sorted(elem.attrib)), tuple(_prop_shape(c) for c in elem)


def test_lab_answers_named_properties_in_the_recorded_xml_fragment_shape(lab: LabThread) -> None:
    recorded_item = _items(_recorded_body(TX / "server_2012" / "Win32_OperatingSystem_all_000.xml"))[0]
    (body,) = _lab_enumerate(lab, OS_QUERY + "")
    assert _frame(body) == _frame(_recorded_body(TX / "server_2012" / "Win32_OperatingSystem_all_000.xml"))
    (item,) = _items(body)
    assert item.tag == recorded_item.tag == FRAGMENT
    for name in ("LocalDateTime", "CurrentTimeZone", "Version"):
        mine = item.find(name)
        theirs = recorded_item.find(name)
        assert mine is not None and theirs is not None, name
        assert _prop_shape(mine) == _prop_shape(theirs), name  # unqualified; a datetime as an unqualified <Datetime>
    # a NULL is written as Windows writes it there (CSDVersion is NULL on the recorded 2012 server)
    theirs_null = recorded_item.find("CSDVersion")
    assert theirs_null is not None and theirs_null.get(f"{{{XSI}}}nil") == "true"
    null_instance = CimInstance("Win32_OperatingSystem", (CimProperty("CSDVersion", "string", None),))
    lab_null = ET.fromstring(cim.fragment_xml(null_instance))
    assert _prop_shape(lab_null[0]) == _prop_shape(theirs_null)
    # an array is the element repeated, as recorded (Win32_ComputerSystem.Roles)
    recorded_cs = _items(_recorded_body(TX / "server_2012" / "Win32_ComputerSystem_all_000.xml"))[0]
    (cs,) = _items(_lab_enumerate(lab, "SELECT Roles FROM Win32_ComputerSystem")[0])
    mine_roles, their_roles = cs.findall("Roles"), recorded_cs.findall("Roles")
    assert len(mine_roles) > 1 and len(their_roles) > 1
    assert {_prop_shape(r) for r in mine_roles} == {_prop_shape(r) for r in their_roles}


def test_lab_answers_select_star_typed_as_recorded(lab: LabThread) -> None:
    recorded_body = _recorded_body(TX / "server_2012" / "Win32_OperatingSystem_star_000.xml")
    (theirs,) = _items(recorded_body)
    (body,) = _lab_enumerate(lab, "SELECT * FROM Win32_OperatingSystem")
    assert _frame(body) == _frame(recorded_body)
    (mine,) = _items(body)
    assert mine.tag == theirs.tag and mine.get(f"{{{XSI}}}type") == theirs.get(f"{{{XSI}}}type")
    uri = mine.tag[1:].split("}")[0]
    for name in ("LocalDateTime", "Version", "CSName"):
        a, b = mine.find(f"{{{uri}}}{name}"), theirs.find(f"{{{uri}}}{name}")
        assert a is not None and b is not None and _prop_shape(a) == _prop_shape(b), name
    assert mine.find(f"{{{uri}}}LocalDateTime/{{{CIM}}}Datetime") is not None


def test_lab_pages_like_the_recordings(lab: LabThread) -> None:
    """One item in the EnumerateResponse with a context, then Pulls; the last has no context and n:EndOfSequence."""
    recorded_pages = [_recorded_body(TX / "server_2012" / f"Win32_Service_all_{n:03d}.xml") for n in range(4)]
    pages = _lab_enumerate(lab, "SELECT Name, State, AcceptPause, ProcessId FROM Win32_Service")
    assert len(pages) >= 2, "the lab PC should have more than one service"
    assert len(_items(pages[0])) == len(_items(recorded_pages[0])) == 1
    assert _frame(pages[0]) == _frame(recorded_pages[0])
    assert _frame(pages[-1])[0] == _frame(recorded_pages[-1])[0]
    assert _frame(pages[-1])[1:] == _frame(recorded_pages[-1])[1:]  # n:Items, n:EndOfSequence; no context
    assert all(i.tag == FRAGMENT for p in pages for i in _items(p))


def test_lab_licence_values_arrive_typed_from_xml_fragments(lab: LabThread) -> None:
    conn = _lab_conn(lab, "ok1")
    try:
        ctx = _ctx(conn)
        facts = gather.read_licensing(ctx)
        clock = gather.read_clock(ctx)
    finally:
        conn.close()
    assert facts.windows_skus and all(isinstance(s.status, int) for s in facts.skus)
    assert facts.os.version and facts.spp.version
    assert clock.offset_seconds is not None and abs(clock.offset_seconds) < 120


def test_lab_pc_six_hours_ahead_is_diagnosed_as_the_clock(lab: LabThread) -> None:
    conn = _lab_conn(lab, "ahead6h")
    try:
        with pytest.raises(TaskFailed) as info:
            TimeSync().run(_ctx(conn), TimeSyncArgs())
        assert info.value.diagnosis == "KF_CLOCK_SKEW"
        assert info.value.error_code == 0xC004F06C
        diag = diagnose_activation(_ctx(conn), _facts_stub(), 0xC004F074, None)
        assert diag.key == "KF_CLOCK_SKEW"
        with pytest.raises(TaskFailed) as activation:  # the lab's KMS host rejects the time stamp
            WindowsKms().run(_ctx(conn), WindowsKmsArgs(kms_host=lab.lab.resolved.kms_address))
        assert activation.value.diagnosis == "KF_CLOCK_SKEW", activation.value.msg
    finally:
        conn.close()


def _splice(lab: LabThread, name: str, pattern: bytes, status: int, body: bytes) -> Replay:
    host = _host(lab, name)
    return Replay(upstream=f"http://{host.address}:5985/wsman", splices=[(pattern, status, body)])


def _basic_conn(replay: Replay) -> WinRMConnection:
    return replay.connection()


def test_recorded_os_answer_of_a_pc_six_hours_off_fails_time_sync_as_the_clock(lab: LabThread) -> None:
    body = recorded(TX / "server_2012" / "Win32_OperatingSystem_all_000.xml")
    recorded_now = datetime(2013, 4, 15, 20, 28, 21, tzinfo=UTC)
    with _splice(lab, "ok2", b"FROM Win32_OperatingSystem</", 200, body) as replay:
        conn = _basic_conn(replay)
        try:
            with pytest.raises(TaskFailed) as info:
                TimeSync().run(_ctx(conn, lambda: recorded_now - timedelta(hours=6)), TimeSyncArgs())
        finally:
            conn.close()
        assert any(b"FROM Win32_TimeZone" in r for r in replay.requests)  # the rest came from the lab PC
    # the zone is the lab PC's (Taipei, right); the clock is the recording's, read against a controller 6 h behind
    assert info.value.diagnosis == "KF_CLOCK_SKEW"
    assert info.value.error_code == 0xC004F06C
    assert "6.0 h ahead" in info.value.msg


def _activate_with(lab: LabThread, name: str, body: bytes) -> TaskFailed:
    kms = lab.lab.resolved.kms_address
    with _splice(lab, name, b"SoftwareLicensingProduct/Activate<", 500, body) as replay:
        conn = _basic_conn(replay)
        try:
            with pytest.raises(TaskFailed) as info:
                WindowsKms().run(_ctx(conn), WindowsKmsArgs(kms_host=kms))
        finally:
            conn.close()
    return info.value


def test_quota_fault_answering_activate_is_infrastructure_not_licensing(lab: LabThread) -> None:
    failure = _activate_with(lab, "ok3", recorded(QUOTA_FAULT))
    assert failure.diagnosis == "KF_WSMAN_FAULT"
    assert failure.error_code == 0x803381A5
    assert all(rec.last_error != 0x803381A5 for rec in failure.licences)  # not recorded as a licensing error


def test_timed_out_answering_activate_is_the_kms_host_not_answering(lab: LabThread) -> None:
    failure = _activate_with(lab, "ok1", recorded(TIMED_OUT_FAULT))
    assert failure.diagnosis == "0xC004F074"
    assert "KMS host did not answer" in failure.msg or "did not answer" in failure.msg


_GET = (
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
    'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><s:Header>'
    "<a:To>http://{address}:5985/wsman</a:To>"
    '<w:ResourceURI s:mustUnderstand="true">http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/{cls}'
    "</w:ResourceURI><a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
    '</a:Address></a:ReplyTo><a:Action s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/09/transfer/Get'
    '</a:Action><w:MaxEnvelopeSize s:mustUnderstand="true">153600</w:MaxEnvelopeSize>'
    "<a:MessageID>uuid:5B0B5D8A-9C3E-4F43-9A3B-3F2B7D0C1E11</a:MessageID><w:OperationTimeout>PT20S</w:OperationTimeout>"
    '<w:SelectorSet><w:Selector Name="{key}">{value}</w:Selector></w:SelectorSet></s:Header><s:Body/></s:Envelope>'
)


def _shape(elem: ET.Element) -> tuple[Any, ...]:
    """Element names, attribute names and children in order; no texts."""
    return elem.tag, tuple(sorted(elem.attrib)), tuple(_shape(c) for c in elem)


def test_lab_answers_a_get_of_a_missing_instance_like_windows(lab: LabThread) -> None:
    """Windows Server 2012 R2's recorded fault for a Get of a WMI instance that does not exist (OMI's test data)
    against the lab's for ``Win32_Service`` Name="NoSuchService": same action, code, subcode, FaultDetail,
    WSManFault codes and the same element tree (ProviderFault, inner WSManFault, __ExtendedStatus)."""
    import requests

    host = _host(lab, "ok1")
    body = _GET.format(address=host.address, cls="Win32_Service", key="Name", value="NoSuchService")
    resp = requests.post(
        f"http://{host.address}:5985/wsman",
        data=body.encode(),
        headers={"Content-Type": "application/soap+xml;charset=UTF-8"},
        auth=(USER, PASSWORD),
        timeout=30,
    )
    assert resp.status_code == 500
    ours = ET.fromstring(resp.content)
    recorded = ET.fromstring(NOT_FOUND_FAULT.read_bytes())
    ns = {
        "s": "http://www.w3.org/2003/05/soap-envelope",
        "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
        "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
        "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
    }
    for path in (
        "s:Header/a:Action",
        ".//s:Code/s:Value",
        ".//s:Subcode/s:Value",
        ".//s:Reason/s:Text",
        ".//w:FaultDetail",
    ):
        assert ours.findtext(path, namespaces=ns) == recorded.findtext(path, namespaces=ns), path
    codes = [e.get("Code") for e in ours.iter(f"{{{ns['f']}}}WSManFault")]
    assert codes == [e.get("Code") for e in recorded.iter(f"{{{ns['f']}}}WSManFault")] == ["2150858752"] * 2
    ours_fault, recorded_fault = ours.find(".//s:Fault", ns), recorded.find(".//s:Fault", ns)
    assert ours_fault is not None and recorded_fault is not None
    assert _shape(ours_fault) == _shape(recorded_fault)
    status = "{http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/__ExtendedStatus}"
    assert ours.findtext(f".//{status}ParameterInfo") == 'Win32_Service.Name="NoSuchService"'
    assert ours.findtext(f".//{status}ProviderName") == recorded.findtext(f".//{status}ProviderName") == "CIMWin32"
