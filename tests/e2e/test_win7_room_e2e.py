"""A Windows 7 classroom (PowerShell 2.0, WinRM 2.0: 5 shells and 15 operations per user, 150 KB envelopes,
Office 2013/2016 in the OSPP service) reaches the same verdicts as a Windows 10 classroom with the same faults,
through the real `kmsfleet` CLI: `audit.yml` (which tests TCP to the KMS host from each PC), `site.yml` and
`seed-procedure.yml`. Judged by the JSON reports and the lab's ground truth."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from labkit import hosts_by_name, read_report, room_spec, run_cli, start_lab

from orchestrator.lab.addresses import claim_prefix
from orchestrator.lab.control_client import LabControl

FAULTS: dict[str, dict[str, Any]] = {
    "healthy": {},
    "wrongzone": {"timezone": "Pacific Standard Time", "clock_skew_minutes": 960},
    "skewed": {"clock_skew_minutes": 310},
    "notadmin": {"admin": False},
    "blocked": {"blocked_key": True},
    "off": {"power": "off"},
}
ROOMS = {
    "w7": {"os": "Windows 7 Professional", "office": {"version": 2013, "bitness": "x86"}},
    "w10": {"os": "Windows 10 Education", "office": {"version": 2016, "bitness": "x86"}},
}


def _hosts(room: str) -> list[dict[str, Any]]:
    return [{"name": f"{room}-{fault}", **ROOMS[room], **extra} for fault, extra in FAULTS.items()]


@pytest.fixture(scope="module")
def rooms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    claim = claim_prefix()
    spec = {
        "rooms": [
            room_spec(claim, _hosts("w7"), room="room7", room_index=1),
            room_spec(claim, _hosts("w10"), room="room10", room_index=2),
        ]
    }
    lab = start_lab(spec)
    tmp: Path = tmp_path_factory.mktemp("win7")
    out: dict[str, Any] = {"lab": lab, "reports": {}, "procs": {}}
    try:
        inv = str(lab.inventory_path)
        for label, args in (
            ("audit", ("run", "audit.yml")),
            ("site", ("run", "site.yml")),
            ("seed", ("run", "seed-procedure.yml")),
        ):
            report = tmp / f"{label}.json"
            proc = run_cli(*args, "-i", inv, "--db", str(tmp / "h.db"), "--report", str(report), timeout=300)
            out["procs"][label] = proc
            assert report.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
            out["reports"][label] = read_report(report)
        ctl = LabControl(lab.control_url)
        out["truth"] = {h["name"]: h for h in ctl.hosts()}
        ctl.post("/kms", {"up": False})  # the bureau's KMS host is down: audit tests TCP from every PC
        report = tmp / "audit-kmsdown.json"
        proc = run_cli("run", "audit.yml", "-i", inv, "--db", str(tmp / "h.db"), "--report", str(report), timeout=300)
        out["procs"]["audit-kmsdown"] = proc
        assert report.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
        out["reports"]["audit-kmsdown"] = read_report(report)
        yield out
    finally:
        lab.stop()
        claim.release()


def _verdicts(report: dict[str, Any], room: str) -> dict[str, tuple[str, str | None, str | None]]:
    hosts = hosts_by_name(report)
    return {
        fault: (
            hosts[f"{room}-{fault}"]["status"],
            hosts[f"{room}-{fault}"]["error_code"],
            hosts[f"{room}-{fault}"]["diagnosis"],
        )
        for fault in FAULTS
    }


@pytest.mark.parametrize("label", ["audit", "site", "seed", "audit-kmsdown"])
def test_windows7_room_reaches_the_windows10_verdicts(rooms: dict[str, Any], label: str) -> None:
    report = rooms["reports"][label]
    w7, w10 = _verdicts(report, "w7"), _verdicts(report, "w10")
    assert w7 == w10, {f: (w7[f], w10[f]) for f in FAULTS if w7[f] != w10[f]}
    assert w7["off"][0] == "unreachable"
    assert w7["healthy"][2] == ("KF_KMS_PORT_BLOCKED" if label == "audit-kmsdown" else None)
    # no WinRM infrastructure fault leaked into a verdict (quotas handled by the transport)
    for host in report["hosts"]:
        assert host["diagnosis"] != "KF_WSMAN_FAULT", (host["host"], host["msg"])


def test_audit_tests_the_kms_port_on_windows7_too(rooms: dict[str, Any]) -> None:
    hosts = hosts_by_name(rooms["reports"]["audit"])
    for room in ("w7", "w10"):
        notes = " ".join(str(t.get("msg", "")) for t in hosts[f"{room}-healthy"]["tasks"])
        assert "not tested" not in notes, notes
    down = hosts_by_name(rooms["reports"]["audit-kmsdown"])
    for room in ("w7", "w10"):
        assert down[f"{room}-healthy"]["diagnosis"] == "KF_KMS_PORT_BLOCKED", down[f"{room}-healthy"]["msg"]


def test_windows7_pcs_end_licensed_through_ospp(rooms: dict[str, Any]) -> None:
    truth = rooms["truth"]
    for room in ("w7", "w10"):
        machine = truth[f"{room}-healthy"]["machine"]
        keyed = {(p["product"], p["name"]): p["days_left"] for p in machine["products"] if p["partial_key"]}
        assert {kind for kind, _ in keyed} == {"windows", "office"}, keyed
        assert all(days == 180 for days in keyed.values()), (room, keyed)
