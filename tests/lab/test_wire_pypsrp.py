"""Unmodified pypsrp 0.9.1 against the lab over real sockets: NTLM/Negotiate with message encryption on HTTP,
Basic on HTTPS (certificate verified against the lab's cert), WinRS stdin and signals, the Receive
operation-timeout fault loop, WQL enumeration with a Pull loop, and WMI method invocation that changes the
simulated PC's licence state."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

import pytest
from pypsrp.client import Client
from pypsrp.exceptions import WSManFaultError
from pypsrp.shell import Process, SignalCode, WinRS
from pypsrp.wsman import NAMESPACES, SelectorSet, WSMan
from wirekit import PASSWORD, USER, StartLab

from orchestrator.lab.control_client import LabControl

WSEN = NAMESPACES["wsen"]
WSMAN_NS = NAMESPACES["wsman"]
WMI = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2"
SLP = f"{WMI}/SoftwareLicensingProduct"
SLS = f"{WMI}/SoftwareLicensingService"
WINDOWS_APP_ID = "55c92734-d682-4d71-983e-d6ec3f16059f"
TIMEOUT_CODE = 2150858793


def _wsman(address: str, **kwargs: object) -> WSMan:
    options: dict[str, object] = {"ssl": False, "auth": "ntlm", "read_timeout": 30, "reconnection_backoff": 0.1}
    options.update(kwargs)
    return WSMan(address, username=USER, password=PASSWORD, **options)  # type: ignore[arg-type]


def _poll_until_done(proc: Process, deadline_s: float = 30.0, timeout: int | None = None) -> None:
    end = time.monotonic() + deadline_s
    for _ in range(200):
        proc.poll_invoke(timeout)
        if proc.state == "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done":
            return
        assert time.monotonic() < end, "command did not finish in time"
    raise AssertionError("too many polls")


def _wql(wsman: WSMan, query: str, max_elements: int = 32000) -> tuple[list[ET.Element], int]:
    """Enumerate + Pull as the recorded Windows exchanges show (docs/evidence.md); returns (items, Pulls)."""
    enum = ET.Element(f"{{{WSEN}}}Enumerate")
    ET.SubElement(enum, f"{{{WSMAN_NS}}}OptimizeEnumeration")
    ET.SubElement(enum, f"{{{WSMAN_NS}}}MaxElements").text = str(max_elements)
    ET.SubElement(enum, f"{{{WSMAN_NS}}}Filter", Dialect="http://schemas.microsoft.com/wbem/wsman/1/WQL").text = query
    body = wsman.enumerate(f"{WMI}/*", enum)
    resp = body.find("wsen:EnumerateResponse", NAMESPACES)
    assert resp is not None
    items = list(resp.find("wsman:Items", NAMESPACES) or [])
    ctx = resp.findtext("wsen:EnumerationContext", None, NAMESPACES)
    done = resp.find("wsman:EndOfSequence", NAMESPACES) is not None
    pulls = 0
    while not done and pulls < 100:
        pulls += 1
        pull = ET.Element(f"{{{WSEN}}}Pull")
        ET.SubElement(pull, f"{{{WSEN}}}EnumerationContext").text = ctx
        ET.SubElement(pull, f"{{{WSEN}}}MaxElements").text = str(max_elements)
        pr = wsman.pull(f"{WMI}/*", pull).find("wsen:PullResponse", NAMESPACES)
        assert pr is not None
        items.extend(pr.find("wsen:Items", NAMESPACES) or [])
        ctx = pr.findtext("wsen:EnumerationContext", None, NAMESPACES)
        done = pr.find("wsen:EndOfSequence", NAMESPACES) is not None
    return items, pulls


def _prop(item: ET.Element, name: str) -> str | None:
    if item.tag == f"{{{WSMAN_NS}}}XmlFragment":  # a query naming its properties: unqualified children
        return item.findtext(name)
    uri = item.tag[1:].split("}")[0]
    return item.findtext(f"{{{uri}}}{name}")


def test_execute_cmd_over_ntlm_with_message_encryption(start_lab: StartLab) -> None:
    lab = start_lab()
    host = lab.hosts[0]
    for auth in ("ntlm", "negotiate"):
        client = Client(host.address, username=USER, password=PASSWORD, ssl=False, auth=auth)
        stdout, _stderr, rc = client.execute_cmd("hostname")
        assert rc == 0
        assert stdout.strip().upper() == host.computer_name.upper()
    counters = LabControl(lab.control_url).host(host.name)["requests"]
    assert counters["http:encrypted"] >= 10  # 2 x (Create, Command, Receive, Signal, Delete), all sealed
    assert counters["Create"] == 2 and counters["Delete"] == 2


def test_execute_cmd_over_https_basic_with_verified_certificate(start_lab: StartLab) -> None:
    lab = start_lab()
    host = lab.hosts[1]
    assert lab.cert_path is not None
    client = Client(
        host.address, username=USER, password=PASSWORD, ssl=True, auth="basic", cert_validation=lab.cert_path
    )
    stdout, _, rc = client.execute_cmd("hostname")
    assert rc == 0 and stdout.strip().upper() == host.computer_name.upper()


def test_basic_over_plain_http_is_refused_unless_allowed(start_lab: StartLab) -> None:
    lab = start_lab()
    from pypsrp.exceptions import AuthenticationError

    client = Client(lab.hosts[0].address, username=USER, password=PASSWORD, ssl=False, auth="basic", encryption="never")
    with pytest.raises(AuthenticationError):
        client.execute_cmd("hostname")


def test_execute_ps_meets_an_unregistered_powershell_endpoint(start_lab: StartLab) -> None:
    """PSRP is not served: pypsrp's ``execute_ps`` gets the fault Windows sends for a PowerShell session
    configuration that is not registered (ERROR_WSMAN_INVALID_RESOURCE_URI, the "not found in the WS-Management
    catalog" message; diyan/pywinrm#273), while ``execute_cmd`` on the same client works."""
    lab = start_lab()
    host = lab.hosts[0]
    client = Client(host.address, username=USER, password=PASSWORD, ssl=False, auth="ntlm", read_timeout=30)
    with pytest.raises(WSManFaultError) as info:
        client.execute_ps("$PSVersionTable.PSVersion.Major")
    assert info.value.code == 2150858811
    assert (info.value.reason or "").strip() == (
        "The WS-Management service cannot process the request. The resource URI "
        "(http://schemas.microsoft.com/powershell/Microsoft.PowerShell) was not found in the WS-Management catalog. "
        "The catalog contains the metadata that describes resources, or logical endpoints."
    )
    out, err, rc = client.execute_cmd("hostname")
    assert (out.strip().upper(), rc) == (host.computer_name.upper(), 0), err


def test_winrs_stdin_send_and_signal(start_lab: StartLab) -> None:
    lab = start_lab()
    wsman = _wsman(lab.hosts[0].address)
    with WinRS(wsman) as shell:
        # the exchange of recorded-winrs/test_winrs_send.yml: a script on stdin, sent in two pieces
        proc = Process(shell, "powershell.exe", ["-"])
        proc.begin_invoke()
        proc.send(b'Write-Host "output 1";', end=False)
        proc.send(b'Write-Host "output 2";', end=True)
        _poll_until_done(proc)
        assert b"output 1" in proc.stdout and b"output 2" in proc.stdout
        assert proc.rc == 0
        proc.signal(SignalCode.CTRL_C)
        # a signal for a command id that never existed is the recorded InvalidSelectors fault
        with pytest.raises(WSManFaultError) as info:
            shell.signal(SignalCode.TERMINATE, "8C2E8A5E-0000-4000-8000-000000000000")
        assert info.value.code == 2150858843


def test_receive_operation_timeout_fault_loop_then_ctrl_c(start_lab: StartLab) -> None:
    lab = start_lab()
    wsman = _wsman(lab.hosts[0].address, operation_timeout=1)
    with WinRS(wsman) as shell:
        # wscript shows a dialog nobody can close in a WinRS session: the command never ends on its own
        proc = Process(shell, "wscript", [r"C:\Windows\System32\slmgr.vbs", "/dlv"])
        proc.begin_invoke()
        started = time.monotonic()
        for _ in range(3):
            with pytest.raises(WSManFaultError) as info:
                shell.receive("stdout stderr", proc.id, timeout=1)
            assert info.value.code == TIMEOUT_CODE
        assert time.monotonic() - started >= 2.5  # each Receive was held for its OperationTimeout
        proc.poll_invoke(timeout=1)  # pypsrp's own loop swallows the fault
        assert proc.state != "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"
        proc.signal(SignalCode.CTRL_C)
        state, rc, _ = shell.receive("stdout stderr", proc.id, timeout=1)
        assert state.endswith("/Done")
        assert rc == -1073741510  # STATUS_CONTROL_C_EXIT


def test_wql_enumerate_with_pull_loop(start_lab: StartLab) -> None:
    lab = start_lab()
    wsman = _wsman(lab.hosts[0].address)
    query = f"SELECT * FROM SoftwareLicensingProduct WHERE ApplicationID='{WINDOWS_APP_ID}'"
    everything, _ = _wql(wsman, query)
    one_by_one, pulls = _wql(wsman, query, max_elements=1)
    assert len(everything) >= 2
    assert pulls == len(everything) - 1
    assert [_prop(i, "ID") for i in one_by_one] == [_prop(i, "ID") for i in everything]
    assert all(i.tag.endswith("}SoftwareLicensingProduct") for i in everything)
    with_key, _ = _wql(wsman, query + " AND PartialProductKey IS NOT NULL")
    assert len(with_key) >= 1


def _activate(wsman: WSMan, kms: str) -> tuple[int, list[ET.Element]]:
    query = (
        "SELECT * FROM SoftwareLicensingProduct "
        f"WHERE ApplicationID='{WINDOWS_APP_ID}' AND PartialProductKey IS NOT NULL"
    )
    (product,), _ = _wql(wsman, query)
    product_id = _prop(product, "ID")
    assert product_id
    sel = SelectorSet()
    sel.add_option("ID", product_id)
    inp = ET.Element(f"{{{SLP}}}SetKeyManagementServiceMachine_INPUT")
    ET.SubElement(inp, f"{{{SLP}}}MachineName").text = kms
    env = wsman.invoke(f"{SLP}/SetKeyManagementServiceMachine", SLP, inp, selector_set=sel)
    assert (
        env.findtext(f"s:Body/{{{SLP}}}SetKeyManagementServiceMachine_OUTPUT/{{{SLP}}}ReturnValue", None, NAMESPACES)
        == "0"
    )
    env = wsman.invoke(f"{SLP}/Activate", SLP, ET.Element(f"{{{SLP}}}Activate_INPUT"), selector_set=sel)
    rv = int(env.findtext(f"s:Body/{{{SLP}}}Activate_OUTPUT/{{{SLP}}}ReturnValue", "-1", NAMESPACES))
    after, _ = _wql(wsman, query)
    return rv, after


def test_wmi_invoke_activates_a_healthy_pc(start_lab: StartLab) -> None:
    lab = start_lab()
    host = lab.hosts[0]
    before = LabControl(lab.control_url).host(host.name)["machine"]
    wsman = _wsman(host.address)
    kms_address = lab.lab.resolved.kms_address
    rv, after = _activate(wsman, kms_address)
    assert rv == 0
    assert _prop(after[0], "LicenseStatus") == "1"
    assert _prop(after[0], "KeyManagementServiceMachine") == kms_address
    assert LabControl(lab.control_url).host(host.name)["machine"] != before


def test_clock_skewed_pc_fails_with_invalid_timestamp(start_lab: StartLab) -> None:
    lab = start_lab(hosts=[{"name": "skewed", "clock_skew_minutes": 600}])
    wsman = _wsman(lab.hosts[0].address)
    with pytest.raises(WSManFaultError) as info:
        _activate(wsman, lab.lab.resolved.kms_address)
    assert info.value.code is not None and (int(info.value.code) & 0xFFFFFFFF) == 0xC004F06C


def test_service_singleton_accepts_version_selector_or_none(start_lab: StartLab) -> None:
    lab = start_lab()
    wsman = _wsman(lab.hosts[0].address)
    (svc,), _ = _wql(wsman, "SELECT Version FROM SoftwareLicensingService")
    version = _prop(svc, "Version")
    assert version
    for selectors in ({"Version": version}, {}):
        sel = SelectorSet()
        for k, v in selectors.items():
            sel.add_option(k, v)
        inp = ET.Element(f"{{{SLS}}}SetKeyManagementServiceMachine_INPUT")
        ET.SubElement(inp, f"{{{SLS}}}MachineName").text = "kms.school.example"
        env = wsman.invoke(f"{SLS}/SetKeyManagementServiceMachine", SLS, inp, selector_set=sel)
        rv = env.findtext(
            f"s:Body/{{{SLS}}}SetKeyManagementServiceMachine_OUTPUT/{{{SLS}}}ReturnValue", None, NAMESPACES
        )
        assert rv == "0"


def test_update_max_payload_size_reads_the_config(start_lab: StartLab) -> None:
    lab = start_lab()
    wsman = _wsman(lab.hosts[0].address)
    wsman.update_max_payload_size()
    assert wsman.max_envelope_size == 500 * 1024
    client_out = Client(lab.hosts[0].address, username=USER, password=PASSWORD, ssl=False, auth="ntlm")
    assert client_out.execute_cmd("hostname")[2] == 0


def test_get_one_instance_by_selectors(start_lab: StartLab) -> None:
    lab = start_lab()
    wsman = _wsman(lab.hosts[0].address)
    service = wsman.get(SLS).find(f"{{{SLS}}}SoftwareLicensingService")  # the singleton: no selectors
    assert service is not None and service.findtext(f"{{{SLS}}}Version")
    items, _ = _wql(wsman, f"SELECT ID FROM SoftwareLicensingProduct WHERE ApplicationID='{WINDOWS_APP_ID}'")
    product_id = _prop(items[0], "ID")
    assert product_id
    sel = SelectorSet()
    sel.add_option("ID", product_id)
    product = wsman.get(SLP, selector_set=sel).find(f"{{{SLP}}}SoftwareLicensingProduct")
    assert product is not None and _prop(product, "ID") == product_id
    assert product.get("{http://www.w3.org/2001/XMLSchema-instance}type") == "p:SoftwareLicensingProduct_Type"
    missing = SelectorSet()
    missing.add_option("ID", "00000000-0000-0000-0000-000000000000")
    with pytest.raises(WSManFaultError):
        wsman.get(SLP, selector_set=missing)


def test_long_commands_take_their_time_under_the_operation_timeout(start_lab: StartLab) -> None:
    """Start-Sleep and ``ping -n`` really last (the Receive is held, then answered with the OperationTimeout
    fault, as on Windows); timeout.exe refuses to run without a console; a non-loopback ping times out with no
    traffic."""
    lab = start_lab()
    wsman = _wsman(lab.hosts[0].address, operation_timeout=1)
    with WinRS(wsman) as shell:
        for program, args, expected in (
            ("powershell", ["-NoProfile", "-Command", "Start-Sleep -Seconds 2; Write-Output slept"], b"slept\r\n"),
            ("ping", ["-n", "3", "127.0.0.1"], b"Received = 3, Lost = 0 (0% loss)"),
        ):
            proc = Process(shell, program, args)
            proc.begin_invoke()
            started = time.monotonic()
            timeouts = 0
            out = b""
            for _ in range(20):
                try:
                    state, rc, streams = shell.receive("stdout stderr", proc.id, timeout=1)
                except WSManFaultError as err:
                    assert err.code == TIMEOUT_CODE
                    timeouts += 1
                    continue
                out += streams["stdout"]
                if state.endswith("/Done"):
                    break
            assert expected in out
            assert time.monotonic() - started >= 1.8
            assert timeouts >= 1
            assert rc == 0
        proc = Process(shell, "powershell", ["-Command", "Start-Sleep 1; Write-Output slept"])
        proc.invoke()
        assert proc.rc == 0 and proc.stdout == b"slept\r\n"
        proc = Process(shell, "timeout", ["/t", "30", "/nobreak"])
        proc.invoke()
        assert proc.rc == 1 and b"Input redirection is not supported" in proc.stderr
        proc = Process(shell, "ping", ["-n", "1", "-w", "300", "192.0.2.1"])
        proc.invoke()
        assert proc.rc == 1 and b"Request timed out." in proc.stdout


def test_wmi_faults_carry_the_windows_codes(start_lab: StartLab) -> None:
    """wbemcli.h codes for a missing method and missing parameters; a keyed class read without its key is the
    InvalidSelectors fault (code 2150858843 with its own reason, as in samples/05)."""
    lab = start_lab()
    wsman = _wsman(lab.hosts[0].address)
    with pytest.raises(WSManFaultError) as info:
        wsman.invoke(f"{SLS}/NoSuchMethod", SLS, ET.Element(f"{{{SLS}}}NoSuchMethod_INPUT"))
    assert info.value.code == 0x8004102E  # WBEM_E_INVALID_METHOD
    with pytest.raises(WSManFaultError) as info:
        wsman.invoke(f"{SLS}/InstallProductKey", SLS, ET.Element(f"{{{SLS}}}InstallProductKey_INPUT"))
    assert info.value.code == 0x8004102F  # WBEM_E_INVALID_METHOD_PARAMETERS
    with pytest.raises(WSManFaultError) as info:
        wsman.get(SLP)
    assert info.value.code == 2150858843
    assert "invalid selectors" in (info.value.reason or "")
