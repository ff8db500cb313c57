"""Unit tests of the WS-Management front end without sockets: parsing, fault shapes against the real Windows
samples, CIM serialisation read back by the transport's parser, encryption interop with pypsrp's own code,
WinRS output splitting and quotas (with ``FakeUnitTestHost``), Wake-on-LAN packets, credential files."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import stat
import time
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest
import spnego
from fake_host import FakeUnitTestHost
from pypsrp.encryption import WinRMEncryption
from shared_data import SHARED
from wsman_requests import RSP, SHELL_CMD, WSEN, WST, create_shell, envelope, wql_enumerate

from orchestrator.lab.provider import CimInstance, CimProperty, WmiError
from orchestrator.lab.spec import LabHostConfig, parse_spec, resolve
from orchestrator.lab.timing import PcTiming
from orchestrator.lab.wol import parse_magic_packet
from orchestrator.lab.wsman import cim, faults, ns
from orchestrator.lab.wsman.auth import CredentialStore, NtlmAcceptor, is_kerberos_token, parse_authorization
from orchestrator.lab.wsman.config import ServiceConfig
from orchestrator.lab.wsman.encryption import unwrap, wrap
from orchestrator.lab.wsman.request import MalformedRequest, parse_duration, parse_request
from orchestrator.lab.wsman.service import WSManService
from orchestrator.lab.wsman.shell import CallerInfo
from orchestrator.lab.wsman.xmltext import new_id, new_message_id
from orchestrator.transport.wmi import parse_instance

SAMPLES = SHARED / "wsman" / "samples"
NS = {"s": ns.S, "a": ns.WSA, "w": ns.WSMAN, "f": ns.WSMANFAULT, "rsp": ns.RSP, "n": ns.WSEN}
CALLER = CallerInfo(user="administrator", client_ip="127.0.0.1", endpoint="http://127.0.9.1:5985/wsman")


def _config() -> LabHostConfig:
    spec = parse_spec(
        {"room": "r", "subnet": "127.250.1", "credentials": {"password": "pw-123456"}, "hosts": [{"name": "pc01"}]}
    )
    return resolve(spec).hosts[0]


def _service(max_kb: int = 500) -> tuple[WSManService, FakeUnitTestHost]:
    host = FakeUnitTestHost(_config())
    return WSManService(host, host.address, ServiceConfig(max_envelope_kb=max_kb)), host


def _body(data: bytes) -> ET.Element:
    root = ET.fromstring(data)
    body = root.find("s:Body", NS)
    assert body is not None
    return body


def _shape(elem: ET.Element) -> list[tuple[str, tuple[str, ...]]]:
    """Element names and attribute names, depth first: the structure, without text values."""
    out = [(elem.tag, tuple(sorted(elem.attrib)))]
    for child in elem:
        out.extend(_shape(child))
    return out


# ---- parsing -------------------------------------------------------------------------------------------------


def test_pywinrm_style_envelope_is_parsed_by_namespace() -> None:
    text = envelope(
        f"{WST}/Create",
        SHELL_CMD,
        "<rsp:Shell/>",
        options={"WINRS_NOPROFILE": "FALSE", "WINRS_CODEPAGE": "437"},
        selectors={"ShellId": "ABC"},
        style="pywinrm",
    )
    req = parse_request(text.encode())
    assert req.action == f"{WST}/Create"
    assert req.resource_uri == SHELL_CMD
    assert req.option("winrs_codepage") == "437"
    assert req.selector("shellid") == "ABC"
    assert req.operation_timeout == 20.0
    assert req.body is not None and req.body.tag == f"{{{RSP}}}Shell"


@pytest.mark.parametrize(
    "data",
    [
        b"<not xml",
        b"",
        b"<x:Envelope xmlns:x='urn:not-soap'/>",
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
        b"<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'><s:Header/><s:Body>&lol2;</s:Body></s:Envelope>",
        b"\xff\xfe garbage",
    ],
)
def test_malformed_requests_become_faults(data: bytes) -> None:
    with pytest.raises(MalformedRequest) as info:
        parse_request(data)
    assert info.value.fault.code is not None
    service, _ = _service()
    outcome = asyncio.run(service.handle(data, CALLER))
    assert outcome.status == 500
    assert _body(outcome.body).find("s:Fault", NS) is not None


def test_durations() -> None:
    assert parse_duration("PT20S") == 20
    assert parse_duration("PT60.000S") == 60
    assert parse_duration("P0DT0H1M0S") == 60
    assert parse_duration("P1D") == 86400
    for bad in ("PT-1S", "20", "PTS", "P", ""):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_invalid_operation_timeout_is_the_recorded_header_fault() -> None:
    service, _ = _service()
    outcome = asyncio.run(service.handle(create_shell().replace("PT20S", "PT-1S").encode(), CALLER))
    fault = _body(outcome.body).find("s:Fault", NS)
    assert fault is not None
    assert fault.findtext("s:Code/s:Subcode/s:Value", namespaces=NS) == "a:InvalidMessageInformationHeader"
    assert fault.find("s:Detail/f:WSManFault", NS).get("Code") == "2150858767"  # type: ignore[union-attr]


# ---- fault shapes against the samples ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "fault"),
    [
        ("04b_fault_operation_timeout_2150858793.xml", faults.timed_out()),
        ("05_fault_invalid_command_id_2150858843.xml", faults.invalid_command_id()),
        (
            "08_wmi_wql_fault_cannotprocessfilter_winrb.xml",
            faults.cannot_process_filter(
                "Select * from Win32_Processa", "The specified class does not exist in the given namespace. ", "m"
            ),
        ),
        ("09_wmi_msft_wmierror_quota_fault_winrb.xml", faults.shell_quota()),
    ],
)
def test_fault_shapes_match_windows_samples(sample: str, fault: faults.WSManFault) -> None:
    real = ET.parse(SAMPLES / sample).getroot()
    ours = ET.fromstring(fault.render("127.0.0.1", "uuid:0"))
    real_fault = real.find("s:Body/s:Fault", NS)
    our_fault = ours.find("s:Body/s:Fault", NS)
    assert real_fault is not None and our_fault is not None
    assert _shape(our_fault) == _shape(real_fault)
    for path in ("s:Code/s:Value", "s:Code/s:Subcode/s:Value"):
        assert our_fault.findtext(path, namespaces=NS) == real_fault.findtext(path, namespaces=NS)
    real_code = real_fault.find("s:Detail/f:WSManFault", NS)
    our_code = our_fault.find("s:Detail/f:WSManFault", NS)
    assert (real_code is None) == (our_code is None)
    if real_code is not None and our_code is not None:
        assert our_code.get("Code") == real_code.get("Code")
    assert ours.findtext("s:Header/a:Action", namespaces=NS) == real.findtext("s:Header/a:Action", namespaces=NS)


def test_wmi_provider_error_carries_hresult_twice() -> None:
    fault = faults.from_wmi_error(WmiError(0xC004F074, "No KMS could be contacted."), "10.0.0.1")
    root = ET.fromstring(fault.render("10.0.0.1", "uuid:1"))
    detail = root.find("s:Body/s:Fault/s:Detail", NS)
    assert detail is not None
    assert detail.find("f:WSManFault", NS).get("Code") == str(0xC004F074)  # type: ignore[union-attr]
    wmi_code = detail.findtext(f"{{{ns.WMIERROR}}}MSFT_WmiError/{{{ns.WMIERROR}}}error_Code")
    assert wmi_code == str(0xC004F074)


# ---- CIM serialisation -------------------------------------------------------------------------------------------


def test_cim_instance_round_trips_through_the_transport_parser() -> None:
    when = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    inst = CimInstance(
        "SoftwareLicensingProduct",
        (
            CimProperty("ID", "string", "a<b&c"),
            CimProperty("LicenseStatus", "uint32", 1),
            CimProperty("LicenseIsAddon", "boolean", False),
            CimProperty("KeyManagementServiceMachine", "string", None),
            CimProperty("Tags", "string", ("x", "y")),
            CimProperty("EvaluationEndDate", "datetime", when),
        ),
    )
    text = cim.instance_xml(inst)
    elem = ET.fromstring(text)
    assert elem.get(f"{{{ns.XSI}}}type") == "p:SoftwareLicensingProduct_Type"
    parsed = parse_instance(elem)
    assert parsed["ID"] == "a<b&c"
    assert parsed["LicenseStatus"] == 1  # typed by the transport's property table (transport.cim_types)
    assert parsed["LicenseIsAddon"] is False
    assert parsed["KeyManagementServiceMachine"] is None
    assert parsed["Tags"] == ["x", "y"]
    assert parsed["EvaluationEndDate"] == when
    assert "<cim:Datetime>2024-05-01T12:30:00Z</cim:Datetime>" in text


# ---- encryption interop ------------------------------------------------------------------------------------------


def test_encryption_interoperates_with_pypsrp() -> None:
    store = CredentialStore()
    try:
        path = store.path_for("administrator", "pw-123456", "PC01")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        client = spnego.client("PC01\\administrator", "pw-123456", protocol="ntlm")
        server = NtlmAcceptor.new_context(path)
        token = client.step()
        out = NtlmAcceptor.step(server, token, path)
        token = client.step(out)
        NtlmAcceptor.step(server, token, path)
        assert server.complete
        enc = WinRMEncryption(client, WinRMEncryption.SPNEGO)
        ctype_body = enc.wrap_message(b"<request/>")
        content_type, body = ctype_body
        assert unwrap(server, body, content_type) == b"<request/>"
        reply = wrap(server, b"<response>\xe4\xb8\xad</response>")
        assert enc.unwrap_message(reply, "Encrypted Boundary") == "<response>中</response>".encode()
    finally:
        store.close()
    assert not Path(path).exists()


def test_authorization_headers() -> None:
    assert parse_authorization("Basic " + base64.b64encode(b"a:b").decode()).scheme == "basic"
    assert parse_authorization("http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual").scheme == (
        "certificate"
    )
    assert parse_authorization("Negotiate !!!").scheme == "invalid"
    assert is_kerberos_token(bytes.fromhex("6e82") + b"rest")
    assert not is_kerberos_token(b"NTLMSSP\x00\x01\x00\x00\x00")


# ---- WinRS through the service (fake host, no sockets) --------------------------------------------------------


async def _call(service: WSManService, text: str) -> ET.Element:
    outcome = await service.handle(text.encode(), CALLER)
    return _body(outcome.body)


async def _shell_and_command(service: WSManService, command: str) -> tuple[str, str]:
    body = await _call(service, create_shell())
    shell_id = body.findtext("rsp:Shell/rsp:ShellId", namespaces=NS)
    assert shell_id
    cmd = await _call(
        service,
        envelope(
            f"{RSP}/Command",
            SHELL_CMD,
            f"<rsp:CommandLine><rsp:Command>{command}</rsp:Command></rsp:CommandLine>",
            selectors={"ShellId": shell_id},
        ),
    )
    command_id = cmd.findtext("rsp:CommandResponse/rsp:CommandId", namespaces=NS)
    assert command_id
    return shell_id, command_id


def _receive(shell_id: str, command_id: str, timeout: str = "PT5S", max_envelope: int = 153600) -> str:
    return envelope(
        f"{RSP}/Receive",
        SHELL_CMD,
        f'<rsp:Receive><rsp:DesiredStream CommandId="{command_id}">stdout stderr</rsp:DesiredStream></rsp:Receive>',
        selectors={"ShellId": shell_id},
        timeout=timeout,
        max_envelope=max_envelope,
    )


def test_output_is_split_to_respect_max_envelope_size() -> None:
    async def scenario() -> tuple[bytes, int, list[int]]:
        service, _ = _service()
        shell_id, command_id = await _shell_and_command(service, "big 60000")
        stdout = b""
        sizes: list[int] = []
        for _ in range(50):
            outcome = await service.handle(_receive(shell_id, command_id, max_envelope=8192).encode(), CALLER)
            sizes.append(len(outcome.body))
            body = _body(outcome.body)
            for stream in body.iterfind("rsp:ReceiveResponse/rsp:Stream[@Name='stdout']", NS):
                stdout += base64.b64decode(stream.text or "")
            state = body.find("rsp:ReceiveResponse/rsp:CommandState", NS)
            assert state is not None
            if state.get("State", "").endswith("/Done"):
                return stdout, int(state.findtext("rsp:ExitCode", namespaces=NS) or "-1"), sizes
        raise AssertionError("never Done")

    stdout, rc, sizes = asyncio.run(scenario())
    assert stdout == b"x" * 60000
    assert rc == 3
    assert len(sizes) > 1 and max(sizes) <= 8192


def test_receive_times_out_with_the_windows_fault() -> None:
    async def scenario() -> ET.Element:
        service, _ = _service()
        shell_id, command_id = await _shell_and_command(service, "sleep 5")
        return await _call(service, _receive(shell_id, command_id, timeout="PT0.3S"))

    body = asyncio.run(scenario())
    assert body.find("s:Fault/s:Detail/f:WSManFault", NS).get("Code") == "2150858793"  # type: ignore[union-attr]


def test_thirty_shells_per_user() -> None:
    async def scenario() -> list[ET.Element]:
        service, _ = _service()
        return [await _call(service, create_shell()) for _ in range(31)]

    bodies = asyncio.run(scenario())
    assert all(b.find("rsp:Shell", NS) is not None for b in bodies[:30])
    assert bodies[30].findtext("s:Fault/s:Code/s:Subcode/s:Value", namespaces=NS) == "w:QuotaLimit"


def test_wql_enumeration_is_cut_by_max_elements_and_pulled() -> None:
    async def scenario() -> tuple[int, int]:
        service, _ = _service()
        first = await _call(service, wql_enumerate("SELECT * FROM SoftwareLicensingProduct WHERE many", 7))
        resp = first.find("n:EnumerateResponse", NS)
        assert resp is not None
        count = len(list(resp.find("w:Items", NS) or []))
        context = resp.findtext("n:EnumerationContext", namespaces=NS)
        pulls = 0
        while context:
            pulls += 1
            body = await _call(
                service,
                envelope(
                    f"{WSEN}/Pull",
                    f"{ns.URI_WMI}root/cimv2/*",
                    f"<n:Pull><n:EnumerationContext>{context}</n:EnumerationContext>"
                    "<n:MaxElements>20</n:MaxElements></n:Pull>",
                ),
            )
            pr = body.find("n:PullResponse", NS)
            assert pr is not None
            count += len(list(pr.find("n:Items", NS) or []))
            context = pr.findtext("n:EnumerationContext", namespaces=NS)
            if pr.find("n:EndOfSequence", NS) is not None:
                break
        return count, pulls

    count, pulls = asyncio.run(scenario())
    assert count == 50
    assert pulls == 3  # 1 (Windows' optimized EnumerateResponse carries one item) + 20 + 20 + 9


# ---- Wake-on-LAN ---------------------------------------------------------------------------------------------------


def test_magic_packets() -> None:
    mac = bytes.fromhex("5254000a0101")
    assert parse_magic_packet(b"\xff" * 6 + mac * 16) == "52:54:00:0A:01:01"
    assert parse_magic_packet(b"junk" + b"\xff" * 6 + mac * 16 + b"\x01\x02\x03\x04") == "52:54:00:0A:01:01"
    assert parse_magic_packet(b"\xff" * 6 + mac * 15) is None
    assert parse_magic_packet(b"\xff" * 6 + mac * 15 + bytes(6)) is None


def test_config_resource_reports_the_envelope_limit() -> None:
    service, _ = _service(max_kb=150)
    body = asyncio.run(_call(service, envelope(f"{WST}/Get", ns.URI_CONFIG)))
    assert body.findtext(f"{{{ns.CFG}}}Config/{{{ns.CFG}}}MaxEnvelopeSizekb") == "150"
    assert re.fullmatch(r"\d+", body.findtext(f"{{{ns.CFG}}}Config/{{{ns.CFG}}}MaxTimeoutms") or "")


def test_idle_shells_expire() -> None:
    async def scenario() -> tuple[int, ET.Element]:
        service, _ = _service()
        created = await _call(
            service,
            envelope(
                f"{WST}/Create",
                SHELL_CMD,
                "<rsp:Shell><rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr"
                "</rsp:OutputStreams><rsp:IdleTimeOut>PT60S</rsp:IdleTimeOut></rsp:Shell>",
            ),
        )
        assert created.findtext("rsp:Shell/rsp:IdleTimeOut", namespaces=NS) == "PT60.000S"
        shell_id = created.findtext("rsp:Shell/rsp:ShellId", namespaces=NS)
        assert shell_id
        expired = service.shells.expire_idle(now=time.monotonic() + 61)
        body = await _call(service, envelope(f"{WST}/Delete", SHELL_CMD, selectors={"ShellId": shell_id}))
        return expired, body

    expired, body = asyncio.run(scenario())
    assert expired == 1
    assert body.find("s:Fault/s:Detail/f:WSManFault", NS).get("Code") == "2150858843"  # type: ignore[union-attr]


def test_a_wql_answer_is_prepared_at_once_and_held_for_the_modelled_query_time() -> None:
    """``prepare`` answers at once and leaves the query's modelled time in ``hold_s`` (the server seals the
    answer, then waits: lab/server.py ``_hold``); ``handle`` spends it itself; a query whose modelled time passes
    its OperationTimeout still waits until then and answers w:TimedOut, with nothing left to hold."""
    host = FakeUnitTestHost(_config())
    timing = PcTiming("windows", {"wql_query": 0.3}, 21.0)
    service = WSManService(host, host.address, ServiceConfig(max_envelope_kb=500), timing=timing)
    request = wql_enumerate("SELECT * FROM SoftwareLicensingService").encode()
    started = time.monotonic()
    prepared = asyncio.run(service.prepare(request, CALLER))
    assert time.monotonic() - started < 0.25
    assert prepared.status == 200 and prepared.hold_s == pytest.approx(0.3)
    started = time.monotonic()
    handled = asyncio.run(service.handle(request, CALLER))
    assert time.monotonic() - started >= 0.3 and handled.status == 200
    timed_out = asyncio.run(
        service.prepare(
            wql_enumerate("SELECT * FROM SoftwareLicensingService").replace("PT20S", "PT0.1S").encode(), CALLER
        )
    )
    assert timed_out.status == 500 and timed_out.hold_s == 0.0
    assert b"TimedOut" in timed_out.body


def test_guids_are_random_version_4_upper_case_and_distinct() -> None:
    seen = {new_id() for _ in range(2000)}  # several 4 KB refills of the random pool
    assert len(seen) == 2000
    for text in list(seen)[:300]:
        value = uuid.UUID(text)
        assert text == str(value).upper() and value.version == 4 and value.variant == uuid.RFC_4122
    message_id = new_message_id()
    assert message_id.startswith("uuid:") and uuid.UUID(message_id[5:]).version == 4


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_repeat_its_parents_guids() -> None:
    new_id()  # the pool holds unread blocks now
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write_end, new_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read_end, 100).decode()
    os.close(read_end)
    os.close(write_end)
    assert uuid.UUID(child).version == 4 and child != new_id()
