"""The lab under hostile or unlucky conditions, over real sockets: wrong passwords, malformed and oversized
requests, unknown resources and WQL classes, refused auth schemes, power off / Wake-on-LAN, latency and the
seeded fault injection (drop / http500 / hang). Never a crash, never a state change."""

from __future__ import annotations

import socket
import time
import xml.etree.ElementTree as ET
from typing import Any

import pytest
import requests
import winrm
from pypsrp.client import Client
from pypsrp.exceptions import AuthenticationError
from wirekit import PASSWORD, USER, StartLab
from wsman_requests import SHELL_CMD, WST, create_shell, envelope, wql_enumerate

from orchestrator.lab.control_client import LabControl
from orchestrator.lab.runner import LabThread

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
}
SOAP = {"Content-Type": "application/soap+xml;charset=UTF-8"}


def _url(address: str) -> str:
    return f"http://{address}:5985/wsman"


def _post(address: str, body: bytes | str, timeout: float = 10.0, **kwargs: Any) -> requests.Response:
    data = body.encode() if isinstance(body, str) else body
    return requests.post(_url(address), data=data, auth=(USER, PASSWORD), headers=SOAP, timeout=timeout, **kwargs)


def _fault_code(resp: requests.Response) -> tuple[str | None, str | None]:
    root = ET.fromstring(resp.content)
    fault = root.find("s:Body/s:Fault", NS)
    assert fault is not None, resp.text
    detail = fault.find("s:Detail/f:WSManFault", NS)
    return fault.findtext("s:Code/s:Subcode/s:Value", namespaces=NS), detail.get("Code") if detail is not None else None


def _stable(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A machine snapshot without the values that move with the clock by themselves."""
    out = {k: v for k, v in snapshot.items() if k != "pc_time_utc"}
    out["products"] = [
        {k: v for k, v in p.items() if k not in ("grace_minutes", "days_left")} for p in snapshot.get("products", [])
    ]
    return out


def _machine(lab: LabThread, name: str) -> Any:
    return _stable(LabControl(lab.control_url).host(name)["machine"])


def test_wrong_password_is_refused_without_any_state_change(start_lab: StartLab) -> None:
    lab = start_lab()
    host = lab.hosts[0]
    ctl = LabControl(lab.control_url)
    before = _machine(lab, host.name)
    with pytest.raises(AuthenticationError):
        Client(host.address, username=USER, password="wrong", ssl=False, auth="ntlm").execute_cmd("hostname")
    with pytest.raises(AuthenticationError):
        Client(
            host.address, username=USER, password="wrong", ssl=True, auth="basic", cert_validation=False
        ).execute_cmd("hostname")
    with pytest.raises(winrm.exceptions.InvalidCredentialsError):
        winrm.Session(_url(host.address), auth=(USER, "wrong"), transport="ntlm").run_cmd("hostname")
    with pytest.raises(AuthenticationError):  # another PC's computer name is not a valid domain here
        Client(
            host.address, username=f"{lab.hosts[1].computer_name}\\{USER}", password=PASSWORD, ssl=False, auth="ntlm"
        ).execute_cmd("hostname")
    state = ctl.host(host.name)
    assert _stable(state["machine"]) == before
    assert state["shells"] == 0
    assert state["requests"]["http:401"] >= 4
    assert not {"Create", "Command", "Receive"} & set(state["requests"])


def test_hostile_requests_get_faults_and_change_nothing(start_lab: StartLab) -> None:
    lab = start_lab(allow_unencrypted=True)
    host = lab.hosts[0]
    before = _machine(lab, host.name)
    cases: list[tuple[bytes | str, str | None, str | None]] = [
        (b"<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'><s:Header>", None, "2150858819"),
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            b"<x>&b;</x>",
            None,
            "2150858819",
        ),
        (b"\x00\x01\x02 binary junk", None, "2150858819"),
        (
            envelope(f"{WST}/Create", "http://schemas.microsoft.com/powershell/Microsoft.PowerShell", "<x/>"),
            "a:DestinationUnreachable",
            "2150858811",
        ),
        (envelope(f"{WST}/Get", "http://schemas.microsoft.com/wbem/wsman/1/nope"), "a:DestinationUnreachable", None),
        (wql_enumerate("SELECT * FROM Win32_NoSuchClass"), "n:CannotProcessFilter", "2150858778"),
        (wql_enumerate("DELETE everything"), "n:CannotProcessFilter", "2150858778"),
        (envelope("http://example.invalid/DoSomething", SHELL_CMD), "a:ActionNotSupported", None),
    ]
    for body, subcode, code in cases:
        resp = _post(host.address, body)
        assert resp.status_code == 500, (body, resp.status_code, resp.text)
        got_subcode, got_code = _fault_code(resp)
        if subcode is not None:
            assert got_subcode == subcode
        if code is not None:
            assert got_code == code
    # larger than MaxEnvelopeSizekb (500 KB): HTTP 413 as Windows answers
    big = create_shell().replace("<rsp:InputStreams>", "<rsp:InputStreams>" + "x" * 600_000, 1)
    assert _post(host.address, big).status_code == 413
    # absurdly large: refused before it is read (the client may see the 413 or the closed connection)
    try:
        assert _post(host.address, b"x" * 3_000_000).status_code == 413
    except requests.exceptions.ConnectionError:
        pass
    state = LabControl(lab.control_url).host(host.name)
    assert _stable(state["machine"]) == before
    assert state["shells"] == 0
    out, _, rc = Client(host.address, username=USER, password=PASSWORD, ssl=False, auth="ntlm").execute_cmd("hostname")
    assert rc == 0 and out.strip()


def test_refused_auth_schemes_say_why(start_lab: StartLab) -> None:
    lab = start_lab()
    host = lab.hosts[0]
    kerberos = requests.post(
        _url(host.address), data=b"", headers={"Authorization": "Kerberos YIIBhgYJKoZIhvcSAQICAQBu"}
    )
    assert kerberos.status_code == 401 and "Kerberos" in kerberos.text
    assert kerberos.headers["Server"] == "Microsoft-HTTPAPI/2.0"
    assert "Negotiate" in kerberos.headers.get("WWW-Authenticate", "")
    cert = requests.post(
        f"https://{host.address}:5986/wsman",
        data=b"",
        headers={"Authorization": "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual"},
        verify=lab.cert_path,
    )
    assert cert.status_code == 401 and "Certificate" in cert.text
    unauthenticated = requests.post(_url(host.address), data=create_shell(), headers=SOAP)
    assert unauthenticated.status_code == 401
    basic_http = _post(host.address, create_shell())  # lab started without allow_unencrypted
    assert basic_http.status_code == 401


def _port_open(address: str, port: int = 5985) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1.0):
            return True
    except OSError:
        return False


def test_power_off_refuses_connections_and_wake_on_lan_brings_it_back(start_lab: StartLab) -> None:
    lab = start_lab()
    host = lab.hosts[0]
    ctl = LabControl(lab.control_url)
    ctl.power(host.name, False)
    assert ctl.host(host.name)["power"] == "off"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host.address, 5985), timeout=2.0).close()
    with pytest.raises(requests.exceptions.ConnectionError):
        Client(host.address, username=USER, password=PASSWORD, ssl=False, auth="ntlm").execute_cmd("hostname")
    assert _port_open(lab.hosts[1].address)  # the neighbour is unaffected

    wol_address, wol_port = lab.wol_address
    mac = bytes.fromhex(host.mac.replace(":", ""))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"\xff" * 6 + b"\x00" * 6 * 16, (wol_address, wol_port))  # not this PC's MAC
        sock.sendto(b"\xff" * 6 + mac * 16, (wol_address, wol_port))
    deadline = time.monotonic() + 10
    while not _port_open(host.address) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ctl.host(host.name)["power"] == "on"
    out, _, rc = Client(host.address, username=USER, password=PASSWORD, ssl=False, auth="ntlm").execute_cmd("hostname")
    assert rc == 0 and out.strip()


def test_latency_is_added_to_each_request(start_lab: StartLab) -> None:
    lab = start_lab(allow_unencrypted=True)
    host = lab.hosts[0]
    LabControl(lab.control_url).latency(host.name, 300)
    started = time.monotonic()
    resp = _post(host.address, envelope(f"{WST}/Get", "http://schemas.microsoft.com/wbem/wsman/1/config"))
    assert resp.status_code == 200
    assert time.monotonic() - started >= 0.3


def _fault_sequence(lab: LabThread, count: int) -> list[str]:
    host = lab.hosts[0]
    LabControl(lab.control_url).faults(host.name, drop=0.25, http500=0.25, hang=0.2)
    body = envelope(f"{WST}/Get", "http://schemas.microsoft.com/wbem/wsman/1/config")
    outcomes: list[str] = []
    for _ in range(count):
        try:
            resp = _post(host.address, body, timeout=0.5)
        except requests.exceptions.ReadTimeout:
            outcomes.append("hang")
            continue
        except requests.exceptions.ConnectionError:
            outcomes.append("drop")
            continue
        outcomes.append("ok" if resp.status_code == 200 else str(resp.status_code))
    lab.stop()
    return outcomes


def test_fault_injection_is_reproducible_with_a_seed(start_lab: StartLab) -> None:
    first = _fault_sequence(start_lab(seed=11, allow_unencrypted=True), 24)
    second = _fault_sequence(start_lab(seed=11, allow_unencrypted=True), 24)
    other = _fault_sequence(start_lab(seed=12, allow_unencrypted=True), 24)
    assert first == second
    assert {"ok", "500", "drop", "hang"} <= set(first)
    assert other != first


def test_urls_other_than_wsman_are_not_found_whatever_the_method(start_lab: StartLab) -> None:
    """HTTP.sys answers 404 for a URL no listener registered (GET / included); only /wsman says 405 to a GET."""
    lab = start_lab()
    base = f"http://{lab.hosts[0].address}:5985"
    assert requests.get(base + "/", timeout=10).status_code == 404
    assert requests.post(base + "/other", data=b"x", timeout=10).status_code == 404
    wrong_method = requests.get(base + "/wsman", timeout=10)
    assert wrong_method.status_code == 405 and wrong_method.headers.get("Allow") == "POST"
