"""What `seed-procedure.yml` costs a PC beyond the bureau's seven commands, through the real `kmsfleet` CLI on a
lab with Windows timing (scaled down): ospp.vbs is found with one cmd.exe line (no powershell.exe start), and the
licences are read once, after the commands, so SoftwareLicensingProduct is walked three times per PC (slmgr /ato,
slmgr /dlv, the one licence read). The verdict still comes from that read: every PC ends licensed and reported so,
and a PC without Office runs no ospp.vbs command."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from labkit import OFFICE16, hosts_by_name, read_report, room_spec, run_cli, start_lab

from orchestrator.executor.options import DEFAULT_FORKS
from orchestrator.lab.addresses import claim_prefix
from orchestrator.lab.control_client import LabControl

HOSTS: list[dict[str, Any]] = [
    {"name": "office16", "office": OFFICE16},
    {"name": "office13", "office": {**OFFICE16, "version": 2013, "bitness": "x64"}},
    {"name": "nooffice", "office": "none"},
]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    claim = claim_prefix()
    lab = start_lab({"rooms": [room_spec(claim, HOSTS)], "seed": 5}, timing="windows", timing_scale=0.02)
    tmp: Path = tmp_path_factory.mktemp("seedcost")
    try:
        report = tmp / "seed.json"
        inv = str(lab.inventory_path)
        proc = run_cli("run", "seed-procedure.yml", "-i", inv, "--db", str(tmp / "h.db"), "--report", str(report))
        assert report.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
        ctl = LabControl(lab.control_url)
        with sqlite3.connect(tmp / "h.db") as db:
            forks = db.execute("SELECT forks FROM runs").fetchall()
        yield {"proc": proc, "report": read_report(report), "stats": ctl.stats(), "truth": ctl.hosts(), "forks": forks}
    finally:
        lab.stop()
        claim.release()


def _probe(report_host: dict[str, Any]) -> dict[str, Any]:
    return next(t for t in report_host["tasks"] if t["module"] == "ospp_paths")


def test_every_pc_ends_licensed_and_reported_so(seeded: dict[str, Any]) -> None:
    assert seeded["proc"].returncode == 0, seeded["proc"].stdout[-3000:]
    assert seeded["forks"] == [(DEFAULT_FORKS,)]  # no --forks given: the default, recorded in the history
    hosts = hosts_by_name(seeded["report"])
    assert {name: h["status"] for name, h in hosts.items()} == {h["name"]: "changed" for h in HOSTS}
    for snap in seeded["truth"]:
        assert all(p.get("license_status") == 1 for p in snap["machine"]["products"]), snap["name"]
    assert _probe(hosts["nooffice"])["data"]["paths"] == []
    assert _probe(hosts["office13"])["data"]["paths"] == ["C:\\Program Files\\Microsoft Office\\Office15\\OSPP.VBS"]


def test_the_pcs_pay_one_licence_read_and_no_powershell_start(seeded: dict[str, Any]) -> None:
    charged = seeded["stats"]["timing"]["charged"]
    office_pcs = sum(1 for h in HOSTS if h["office"] != "none")
    # slmgr /ato, slmgr /dlv and license_facts after the commands; /skms queries only the service
    assert charged["slp_query"]["count"] == 3 * len(HOSTS)
    # ospp /sethst, /setprt, /act, /dstatus on the PCs with Office, none elsewhere
    assert charged["ospp_query"]["count"] == 4 * office_pcs
    assert "powershell_cold_start" not in charged and "powershell_start" not in charged
    # the seven commands where there is Office, three where there is not, plus the ospp.vbs probe, on every PC
    assert charged["cmd_start"]["count"] == 7 * office_pcs + 3 * (len(HOSTS) - office_pcs) + len(HOSTS)
