"""Unmodified pywinrm 0.5.0 against the lab: NTLM with message encryption (requests_ntlm, raw NTLM tokens under
the Negotiate scheme, a new TCP connection and handshake per ``run_cmd``), plaintext Basic when the lab allows
unencrypted traffic, and HTTPS."""

from __future__ import annotations

import winrm
from conftest import PASSWORD, USER, StartLab

from orchestrator.lab.control_client import LabControl


def test_run_cmd_hostname_and_slmgr_dlv_over_ntlm(start_lab: StartLab) -> None:
    lab = start_lab()
    host = lab.hosts[0]
    session = winrm.Session(f"http://{host.address}:5985/wsman", auth=(USER, PASSWORD), transport="ntlm")
    result = session.run_cmd("hostname")
    assert result.status_code == 0
    assert result.std_out.strip().decode().upper() == host.computer_name.upper()
    result = session.run_cmd("cscript", ["//nologo", r"C:\Windows\System32\slmgr.vbs", "/dlv"])
    assert result.status_code == 0, result.std_err
    text = result.std_out.decode("utf-8", "replace")
    assert "Activation ID" in text or "License Status" in text
    counters = LabControl(lab.control_url).host(host.name)["requests"]
    assert counters["http:encrypted"] >= 10
    assert counters["Signal"] == 2  # pywinrm's lowercase .../signal/terminate is accepted


def test_plaintext_basic_when_unencrypted_is_allowed(start_lab: StartLab) -> None:
    lab = start_lab(allow_unencrypted=True)
    host = lab.hosts[0]
    session = winrm.Session(f"http://{host.address}:5985/wsman", auth=(USER, PASSWORD), transport="plaintext")
    result = session.run_cmd("hostname")
    assert result.status_code == 0
    assert result.std_out.strip().decode().upper() == host.computer_name.upper()


def test_ssl_transport(start_lab: StartLab) -> None:
    lab = start_lab()
    host = lab.hosts[1]
    session = winrm.Session(
        f"https://{host.address}:5986/wsman",
        auth=(USER, PASSWORD),
        transport="ssl",
        server_cert_validation="ignore",
    )
    result = session.run_cmd("hostname")
    assert result.status_code == 0
    assert result.std_out.strip().decode().upper() == host.computer_name.upper()
