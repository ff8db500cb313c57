"""include_role as ansible-core runs it (tests/fixtures/dynamic_roles): a templated role name over a loop with
loop_var, when and apply, and a templated tasks_from — run by the real `kmsfleet` CLI as a subprocess against a
lab classroom, in --check then for real; judged by the lab's ground truth and the JSON report. A role name that
only the PC knows (a fact) is refused before any PC is contacted."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from labkit import hosts_by_name, read_report, room_spec, run_cli, start_lab

from orchestrator.lab.addresses import claim_prefix
from orchestrator.lab.control_client import LabControl

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "dynamic_roles"
HOSTS = [{"name": "pc01", "office": "none"}, {"name": "pc02", "office": "none"}]


def windows(snap: dict[str, Any], host: str) -> dict[str, Any]:
    return next(p for p in snap[host]["products"] if p["product"] == "windows")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    claim = claim_prefix()
    lab = start_lab({"rooms": [room_spec(claim, HOSTS)]})
    tmp = tmp_path_factory.mktemp("dynroles")
    work = tmp / "book"
    shutil.copytree(FIXTURE, work)
    ctl = LabControl(lab.control_url)
    out: dict[str, Any] = {"kms": f"{claim.prefix}.0.2"}

    def snap() -> dict[str, Any]:
        return {h["name"]: h["machine"] for h in ctl.hosts() if "machine" in h}

    def run(label: str, book: str, *extra: str) -> None:
        report = tmp / f"{label}.json"
        proc = run_cli("run", book, "-i", str(lab.inventory_path), "--no-history", "--report", str(report),
                       *extra, cwd=work, env={"ANSIBLE_CONFIG": ""})  # fmt: skip
        out[label] = (proc, read_report(report) if report.exists() else None)

    try:
        out["start"] = snap()
        before = ctl.stats()["soap_requests"]
        run("refused", "facts_name.yml")
        out["refused-requests"] = ctl.stats()["soap_requests"] - before
        run("check", "site.yml", "--check")
        out["after-check"] = snap()
        run("extra", "site.yml", "--check", "-e", "audit_style=detailed")
        run("real", "site.yml")
        out["after-real"] = snap()
        yield out
    finally:
        lab.stop()
        claim.release()


def test_role_name_from_a_fact_is_refused_before_any_pc(runs: dict[str, Any]) -> None:
    proc, report = runs["refused"]
    assert proc.returncode == 4 and report is None, proc.stdout[-2000:] + proc.stderr[-2000:]
    text = proc.stdout + proc.stderr
    assert "facts_name.yml:5" in text and "cannot be resolved before the run" in text, text[-2000:]
    assert "Traceback" not in text
    assert runs["refused-requests"] == 0  # not one WS-Management request reached a PC


def test_check_mode_picks_the_roles_and_changes_nothing(runs: dict[str, Any]) -> None:
    proc, report = runs["check"]
    assert report is not None, proc.stdout[-3000:] + proc.stderr[-3000:]
    for host in ("pc01", "pc02"):
        assert runs["after-check"][host]["products"] == runs["start"][host]["products"]
    for host in hosts_by_name(report).values():
        names = [t["task"] for t in host["tasks"]]
        assert "Point Windows at the KMS host" in names and "Brief licence audit" in names, names
        assert "Office would be activated here" not in names and "Detailed licence audit" not in names


def test_extra_vars_name_the_tasks_from_file(runs: dict[str, Any]) -> None:
    proc, report = runs["extra"]
    assert report is not None, proc.stdout[-3000:] + proc.stderr[-3000:]
    for host in hosts_by_name(report).values():
        names = [t["task"] for t in host["tasks"]]
        assert "Detailed licence audit" in names and "Brief licence audit" not in names, names


def test_each_item_runs_its_role_and_the_pcs_are_licensed(runs: dict[str, Any]) -> None:
    proc, report = runs["real"]
    assert report is not None, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    for host in ("pc01", "pc02"):
        assert windows(runs["start"], host)["license_status"] != 1
        after = windows(runs["after-real"], host)
        assert after["license_status"] == 1 and after["kms_host"] == runs["kms"], after
    for host in hosts_by_name(report).values():
        names = [t["task"] for t in host["tasks"]]
        assert names.index("Point Windows at the KMS host") < names.index("Activate Windows")
        assert names.index("Activate Windows") < names.index("Brief licence audit"), names
        assert "Office would be activated here" not in names
