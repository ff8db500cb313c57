"""The Ansible-style corpus (tests/fixtures/ansible_corpus: a KMS client role in Ansible's usual layout, a role
found on ansible.cfg's roles_path as a meta dependency, a vault-encrypted vars file) run by the real `kmsfleet`
CLI as a subprocess, from the corpus folder (so its ansible.cfg is read), against a lab classroom. Judged by the
lab's ground truth and the JSON report.

The win_command ``chdir`` argument must work for the role's tasks (C:\\Windows\\system32 holds slmgr.vbs)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from labkit import hosts_by_name, read_report, room_spec, run_cli, start_lab

from orchestrator.lab.addresses import claim_prefix
from orchestrator.lab.control_client import LabControl

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "ansible_corpus"
HOSTS = [{"name": "pc01", "office": "none"}, {"name": "pc02", "office": "none"}]


def windows(snap: dict[str, Any], host: str) -> dict[str, Any]:
    return next(p for p in snap[host]["products"] if p["product"] == "windows")


def run_users(tmp: Path, inventory: Path, out: dict[str, Any]) -> None:
    """pc01 loses its ansible_user: the play's remote_user (or -u) signs it in; pc02 keeps its own, which wins."""
    data = yaml.safe_load(inventory.read_text())
    del data["all"]["children"]["room101"]["hosts"]["pc01"]["ansible_user"]
    edited = tmp / "users.yml"
    edited.write_text(yaml.safe_dump(data))
    for label, user in (("user-right", "administrator"), ("user-wrong", "nobody")):
        book = tmp / f"{label}.yml"
        book.write_text(
            f"- hosts: all\n  gather_facts: false\n  remote_user: {user}\n  tasks:\n    - win_command: whoami\n"
        )
        report = tmp / f"{label}.json"
        proc = run_cli("run", str(book), "-i", str(edited), "-u", "ignored-by-the-play", "--no-history",
                       "--report", str(report), cwd=tmp)  # fmt: skip
        out[label] = (proc, read_report(report) if report.exists() else None)


@pytest.fixture(scope="module")
def corpus_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    claim = claim_prefix()
    lab = start_lab({"rooms": [room_spec(claim, HOSTS)]})
    tmp = tmp_path_factory.mktemp("corpus")
    work = tmp / "corpus"
    shutil.copytree(CORPUS, work)
    ctl = LabControl(lab.control_url)
    out: dict[str, Any] = {"kms": f"{claim.prefix}.0.2"}

    def snap() -> dict[str, Any]:
        return {h["name"]: h["machine"] for h in ctl.hosts() if "machine" in h}

    def run(label: str, *extra: str) -> None:
        report = tmp / f"{label}.json"
        proc = run_cli(
            "run",
            "kms_site.yml",
            "-i",
            str(lab.inventory_path),
            "--no-history",
            "--report",
            str(report),
            *extra,
            cwd=work,
            env={"ANSIBLE_CONFIG": ""},
        )
        out[label] = (proc, read_report(report) if report.exists() else None)

    try:
        out["start"] = snap()
        run("check", "--check")
        out["after-check"] = snap()
        run("real")
        out["after-real"] = snap()
        run_users(tmp, Path(lab.inventory_path), out)
        yield out
    finally:
        lab.stop()
        claim.release()


def test_check_mode_changes_nothing_and_runs_no_handler(corpus_runs: dict[str, Any]) -> None:
    proc, report = corpus_runs["check"]
    assert report is not None, proc.stdout[-3000:] + proc.stderr[-3000:]
    for host in ("pc01", "pc02"):
        assert corpus_runs["after-check"][host]["products"] == corpus_runs["start"][host]["products"]
    for host in hosts_by_name(report).values():
        names = [t["task"] for t in host["tasks"]]
        assert "activate windows" not in names, names
    assert proc.stdout.count("nothing was changed") == 1, proc.stdout[-2000:]


def test_every_pc_is_licensed_through_the_lab_kms_host(corpus_runs: dict[str, Any]) -> None:
    proc, report = corpus_runs["real"]
    assert report is not None, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    kms = corpus_runs["kms"]
    for host in ("pc01", "pc02"):
        before = windows(corpus_runs["start"], host)
        after = windows(corpus_runs["after-real"], host)
        assert before["license_status"] != 1
        assert after["license_status"] == 1, after
        assert after["kms_host"] == kms, after  # the inventory's kms_host beat the role default
    by_host = hosts_by_name(report)
    for host in by_host.values():
        names = [t["task"] for t in host["tasks"]]
        # the dependency from roles_path ran first, then the role's tasks, then its handler
        baseline = next(i for i, n in enumerate(names) if n.startswith("Baseline check"))
        assert baseline < names.index("Point Windows at the KMS host"), names
        assert "activate windows" in names
    # ansible.cfg's unused keys are noted once, never an error
    assert proc.stdout.count("stdout_callback is not used by kmsfleet") == 1
    # the vault file's values never reach the output
    assert "Campus KMS key rotation" not in proc.stdout + proc.stderr


def test_remote_user_is_below_the_hosts_ansible_user(corpus_runs: dict[str, Any]) -> None:
    proc, report = corpus_runs["user-right"]
    assert report is not None and proc.returncode == 0, proc.stdout[-3000:]
    proc, report = corpus_runs["user-wrong"]
    assert report is not None, proc.stdout[-3000:]
    by_host = hosts_by_name(report)
    assert by_host["pc02"]["status"] in ("ok", "changed")  # its inventory ansible_user beat the play's remote_user
    assert by_host["pc01"]["status"] not in ("ok", "changed")  # signed in as the play's 'nobody' and was refused
