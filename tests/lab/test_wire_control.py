"""The lab's JSON control API over real HTTP (through ``LabControl``), and what its changes do on the wire."""

from __future__ import annotations

import json
import urllib.request
from datetime import datetime

import pytest
from pypsrp.client import Client
from test_wire_pypsrp import _activate, _wsman
from wirekit import PASSWORD, USER, StartLab

from orchestrator.lab.control_client import LabControl, LabControlError


def test_hosts_snapshot_and_errors(start_lab: StartLab) -> None:
    lab = start_lab()
    ctl = LabControl(lab.control_url)
    hosts = ctl.hosts()
    assert [h["name"] for h in hosts] == [h.name for h in lab.hosts]
    first = hosts[0]
    assert first["address"] == lab.hosts[0].address and first["power"] == "on"
    assert first["machine"]["computer_name"] == lab.hosts[0].computer_name
    with urllib.request.urlopen(lab.control_url + "/hosts", timeout=10) as resp:
        assert PASSWORD not in resp.read().decode()
    with pytest.raises(LabControlError) as info:
        ctl.host("no-such-pc")
    assert info.value.status == 404
    for bad in ({"on": "yes"}, {}):
        with pytest.raises(LabControlError) as info:
            ctl.post(f"/hosts/{lab.hosts[0].name}/power", bad)
        assert info.value.status == 400
    with pytest.raises(LabControlError) as info:
        ctl.faults(lab.hosts[0].name, drop=2.0)
    assert info.value.status == 400
    with pytest.raises(LabControlError) as info:
        ctl.post(f"/hosts/{lab.hosts[0].name}/faults", {"explode": 1})
    assert info.value.status == 400 and "explode" in info.value.message
    with pytest.raises(ValueError):
        LabControl("http://192.0.2.1:80")
    assert ctl.stats()["hosts"] == 2


def test_clock_skew_clock_advance_and_machine_tweaks(start_lab: StartLab) -> None:
    lab = start_lab()
    ctl = LabControl(lab.control_url)
    name = lab.hosts[0].name
    assert ctl.clock_skew(name, -300)["machine"]["clock_skew_minutes"] == -300
    before = datetime.fromisoformat(ctl.host(name)["machine"]["pc_time_utc"].replace("Z", "+00:00"))
    assert ctl.advance_clock(181)["offset_days"] == pytest.approx(181)
    after = datetime.fromisoformat(ctl.host(name)["machine"]["pc_time_utc"].replace("Z", "+00:00"))
    assert 180.9 < (after - before).total_seconds() / 86400 < 181.1
    assert ctl.set(name, admin=False)["machine"]["admin"] is False
    snap = ctl.set(name, latency_ms=[5, 10], faults={"http500": 0.5})
    assert snap["latency_ms"] == [5, 10] and snap["faults"]["http500"] == 0.5
    with pytest.raises(LabControlError) as info:
        ctl.set(name, no_such_field=1)
    assert info.value.status == 400


def test_kms_down_then_up(start_lab: StartLab) -> None:
    from pypsrp.exceptions import WSManFaultError

    lab = start_lab(hosts=[{"name": "pc[01:02]"}])
    ctl = LabControl(lab.control_url)
    kms = lab.lab.resolved.kms_address
    assert ctl.set_kms(up=False)["up"] is False
    with pytest.raises(WSManFaultError) as info:
        _activate(_wsman(lab.hosts[0].address), kms)
    assert int(info.value.code or 0) & 0xFFFFFFFF == 0xC004F074
    assert ctl.set_kms(up=True)["up"] is True
    rv, _ = _activate(_wsman(lab.hosts[1].address), kms)
    assert rv == 0
    assert ctl.kms()["requests"]["total"] >= 1


def test_power_via_control_resets_shells(start_lab: StartLab) -> None:
    lab = start_lab()
    ctl = LabControl(lab.control_url)
    host = lab.hosts[0]
    client = Client(host.address, username=USER, password=PASSWORD, ssl=False, auth="ntlm")
    assert client.execute_cmd("hostname")[2] == 0
    assert ctl.power(host.name, False)["power"] == "off"
    assert ctl.host(host.name)["machine"]["power"] == "off"
    assert ctl.host(host.name)["shells"] == 0
    assert ctl.power(host.name, True)["power"] == "on"
    # pypsrp keeps its sealed NTLM session; on a rebooted PC that session is gone (401), as with real Windows,
    # so a client must start a new WSMan after a connection failure.
    fresh = Client(host.address, username=USER, password=PASSWORD, ssl=False, auth="ntlm")
    assert fresh.execute_cmd("hostname")[2] == 0
    assert json.dumps(ctl.host(host.name)["requests"])
