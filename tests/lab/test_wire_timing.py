"""Windows timing in the lab over real sockets, with unmodified pypsrp as the client (docs/lab-timing.md):
a PowerShell command lasts at least its modelled start, a licensing query longer than the request's
OperationTimeout ends in the real w:TimedOut fault once OperationTimeout has passed, and a KMS host that drops
packets makes Activate wait the client-side KMS timeout and fail 0xC004F074 (or time out first when the
OperationTimeout is shorter). Timings are scaled down so no test waits long."""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET

import pytest
from pypsrp.exceptions import WSManFaultError
from pypsrp.shell import Process, WinRS
from pypsrp.wsman import SelectorSet, WSMan
from test_wire_pypsrp import SLP, TIMEOUT_CODE, WINDOWS_APP_ID, _activate, _prop, _wql
from wirekit import PASSWORD, USER, StartLab

from orchestrator.lab.control_client import LabControl, LabControlError

SLP_QUERY = f"SELECT * FROM SoftwareLicensingProduct WHERE ApplicationID='{WINDOWS_APP_ID}'"
KMS_UNREACHABLE = 0xC004F074


def _wsman(address: str, operation_timeout: int = 20) -> WSMan:
    return WSMan(
        address,
        username=USER,
        password=PASSWORD,
        ssl=False,
        auth="ntlm",
        operation_timeout=operation_timeout,
        read_timeout=operation_timeout + 10,
        reconnection_backoff=0.1,
    )


def _fault_code(err: WSManFaultError) -> int:
    assert err.code is not None
    return int(err.code) & 0xFFFFFFFF


def test_a_windows_timed_powershell_command_lasts_at_least_its_modelled_start(start_lab: StartLab) -> None:
    lab = start_lab(timing="windows", timing_scale=0.2)
    host = lab.hosts[0]
    pc = lab.lab.timing.pc(host.name)
    with WinRS(_wsman(host.address)) as shell:
        for expected_start in (pc.get("powershell_cold_start"), pc.get("powershell_start")):
            started = time.monotonic()
            proc = Process(shell, "powershell", ["-NoProfile", "-Command", "Write-Output timed"])
            proc.invoke()
            elapsed = time.monotonic() - started
            assert proc.rc == 0 and proc.stdout == b"timed\r\n"
            assert elapsed >= expected_start + pc.get("cmd_start")
    assert pc.get("powershell_cold_start") > pc.get("powershell_start")
    timing = LabControl(lab.control_url).stats()["timing"]
    assert (timing["mode"], timing["scale"]) == ("windows", 0.2)
    assert timing["charged"]["shell_create"]["count"] == 1  # what the PC spent, for benchmarks
    assert timing["slowest_pc_s"] >= pc.figures["powershell_cold_start"] + pc.figures["powershell_start"]


def test_the_same_command_is_immediate_with_instant_timing(start_lab: StartLab) -> None:
    lab = start_lab()  # the programmatic default
    assert lab.lab.timing.mode == "instant"
    with WinRS(_wsman(lab.hosts[0].address)) as shell:
        started = time.monotonic()
        proc = Process(shell, "powershell", ["-NoProfile", "-Command", "Write-Output now"])
        proc.invoke()
        assert proc.stdout == b"now\r\n"
        assert time.monotonic() - started < 1.5


def test_a_licensing_query_longer_than_the_operation_timeout_gets_w_timedout(start_lab: StartLab) -> None:
    lab = start_lab(timing="windows", timing_scale=2.0)  # the SKU walk takes 2-6 s here
    host = lab.hosts[0]
    modelled = lab.lab.timing.pc(host.name).get("slp_query")
    assert modelled > 1.5
    wsman = _wsman(host.address, operation_timeout=1)
    started = time.monotonic()
    with pytest.raises(WSManFaultError) as info:
        _wql(wsman, SLP_QUERY)
    elapsed = time.monotonic() - started
    assert _fault_code(info.value) == TIMEOUT_CODE
    assert "OperationTimeout" in str(info.value.reason)
    assert 1.0 <= elapsed < modelled  # answered once OperationTimeout passed, not after the whole walk
    # with room enough the same query answers, after its modelled time
    started = time.monotonic()
    items, _ = _wql(_wsman(host.address, operation_timeout=20), SLP_QUERY)
    assert items and time.monotonic() - started >= modelled


def test_activate_against_a_dropping_kms_host_waits_then_fails_c004f074(start_lab: StartLab) -> None:
    lab = start_lab(timing="windows", timing_scale=0.1, kms={"drop": True})
    host = lab.hosts[0]
    wait = lab.lab.timing.pc(host.name).kms_timeout_s  # 21 s x 0.1
    started = time.monotonic()
    with pytest.raises(WSManFaultError) as info:
        _activate(_wsman(host.address), lab.lab.resolved.kms_address)
    assert _fault_code(info.value) == KMS_UNREACHABLE
    assert time.monotonic() - started >= wait
    kms = LabControl(lab.control_url).kms()
    assert kms["drop"] is True and kms["requests"]["dropped"] >= 1
    with pytest.raises(LabControlError) as bad:
        LabControl(lab.control_url).set_kms(drop="yes")
    assert bad.value.status == 400 and "drop must be true or false" in str(bad.value)
    # the firewall is opened again: the same PC activates
    LabControl(lab.control_url).set_kms(drop=False)
    rv, after = _activate(_wsman(host.address), lab.lab.resolved.kms_address)
    assert rv == 0 and _prop(after[0], "LicenseStatus") == "1"


def test_activate_times_out_first_when_the_operation_timeout_is_shorter(start_lab: StartLab) -> None:
    lab = start_lab(timing="windows", timing_scale=0.15)  # KMS client waits 3.15 s
    host = lab.hosts[0]
    ctl = LabControl(lab.control_url)
    assert ctl.set_kms(drop=True)["drop"] is True
    wsman = _wsman(host.address, operation_timeout=1)
    (product,), _ = _wql(_wsman(host.address), SLP_QUERY + " AND PartialProductKey IS NOT NULL")
    product_id = _prop(product, "ID")
    assert product_id
    sel = SelectorSet()
    sel.add_option("ID", product_id)
    inp = ET.Element(f"{{{SLP}}}SetKeyManagementServiceMachine_INPUT")
    ET.SubElement(inp, f"{{{SLP}}}MachineName").text = lab.lab.resolved.kms_address
    wsman.invoke(f"{SLP}/SetKeyManagementServiceMachine", SLP, inp, selector_set=sel)
    started = time.monotonic()
    with pytest.raises(WSManFaultError) as info:
        wsman.invoke(f"{SLP}/Activate", SLP, ET.Element(f"{{{SLP}}}Activate_INPUT"), selector_set=sel)
    elapsed = time.monotonic() - started
    assert _fault_code(info.value) == TIMEOUT_CODE
    assert 1.0 <= elapsed < lab.lab.timing.pc(host.name).kms_timeout_s
    # the activation itself runs on to its end on the PC and fails there (what slmgr /dlv shows afterwards)
    last_errors: list[object] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        last_errors = [p["last_error"] for p in ctl.host(host.name)["machine"]["products"]]
        if "0xC004F074" in last_errors:
            break
        time.sleep(0.3)
    assert "0xC004F074" in last_errors


def test_slmgr_ato_against_a_dropping_kms_host_waits_and_prints_c004f074(start_lab: StartLab) -> None:
    lab = start_lab(timing="windows", timing_scale=0.1, kms={"drop": True})
    host = lab.hosts[0]
    pc = lab.lab.timing.pc(host.name)
    kms = lab.lab.resolved.kms_address
    with WinRS(_wsman(host.address)) as shell:
        proc = Process(shell, f"cscript //nologo C:\\Windows\\System32\\slmgr.vbs /skms {kms}")
        proc.invoke()
        assert proc.rc == 0, proc.stdout
        started = time.monotonic()
        proc = Process(shell, "cscript //nologo C:\\Windows\\System32\\slmgr.vbs /ato")
        proc.invoke()
        elapsed = time.monotonic() - started
    assert b"0xC004F074" in proc.stdout
    assert elapsed >= pc.kms_timeout_s


def test_held_licensing_answers_keep_the_sealing_order_and_the_modelled_time(start_lab: StartLab) -> None:
    """A WQL answer is built and sealed at arrival and sent after the query's modelled time (lab/server.py
    ``_hold``): three queries in a row on one NTLM-sealed connection each decrypt (a message sealed out of order
    would fail the client's signature check) and each takes at least its modelled time."""
    lab = start_lab(timing="windows", timing_scale=0.3)
    host = lab.hosts[0]
    modelled = lab.lab.timing.pc(host.name).get("slp_query")
    wsman = _wsman(host.address)
    counts = []
    for _ in range(3):
        started = time.monotonic()
        items, _pulls = _wql(wsman, SLP_QUERY)
        assert time.monotonic() - started >= modelled
        counts.append(len(items))
    assert counts[0] > 0 and counts == [counts[0]] * 3


def test_a_pc_switched_off_during_a_held_answer_sends_nothing(start_lab: StartLab) -> None:
    lab = start_lab(timing="windows", timing_scale=1.0)
    host = lab.hosts[0]
    modelled = lab.lab.timing.pc(host.name).get("slp_query")
    assert modelled >= 0.8
    control = LabControl(lab.control_url)
    wsman = _wsman(host.address)
    _wql(wsman, "SELECT Name FROM Win32_OperatingSystem")  # signed in; a cheap query answers at once
    switched: list[float] = []

    def switch_off() -> None:
        time.sleep(modelled / 3)
        control.power(host.name, False)
        switched.append(time.monotonic())

    worker = threading.Thread(target=switch_off)
    started = time.monotonic()
    worker.start()
    with pytest.raises(Exception) as info:  # the connection is closed without an answer: pypsrp's transport error
        _wql(wsman, SLP_QUERY)
    worker.join()
    assert not isinstance(info.value, WSManFaultError)  # no answer at all, not a fault
    assert switched and switched[0] - started < modelled
