"""`raw` in kmsfleet and in real ansible-core (with pywinrm, the virtualenv benchmarks/ansible_compare.py
creates) against the same lab PCs: the same rc, stdout and failed/changed verdict for the same commands, on
Windows 10 and on Windows 7 (PowerShell 2.0). Skipped, with the reason, when ansible-core cannot be installed."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from labkit import hosts_by_name, read_report, room_spec, run_cli, start_lab

from orchestrator.lab.addresses import claim_prefix
from orchestrator.lab.runner import LabThread

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.ansible_compare import ansible_env, ensure_ansible  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

COMMANDS = ["hostname", "whoami", "tzutil /g", "Write-Host hi; exit 3"]
PLAY = [
    {
        "name": "raw",
        "hosts": "all",
        "gather_facts": False,
        "tasks": [
            {"name": f"raw {i}", "raw": cmd, "register": f"r{i}", "ignore_errors": True}
            for i, cmd in enumerate(COMMANDS)
        ],
    }
]


@pytest.fixture(scope="module")
def ansible_bin() -> Path:
    try:
        return ensure_ansible(timeout=600)
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"ansible-core could not be installed in benchmarks/.ansible-venv: {exc}")


@pytest.fixture(scope="module")
def lab() -> Iterator[LabThread]:
    claim = claim_prefix()
    hosts = [{"name": "w10", "os": "Windows 10 Education"}, {"name": "w7", "os": "Windows 7 Professional"}]
    running = start_lab({"rooms": [room_spec(claim, hosts)]})
    try:
        yield running
    finally:
        running.stop()
        claim.release()


def _ansible_results(ansible_bin: Path, lab: LabThread, tmp: Path) -> dict[str, list[dict[str, Any]]]:
    inv = yaml.safe_load(Path(lab.inventory_path).read_text(encoding="utf-8"))
    hosts: dict[str, Any] = {}
    for group in inv["all"]["children"].values():
        for name, hv in group["hosts"].items():
            hosts[name] = {k: hv[k] for k in ("ansible_host", "ansible_port", "ansible_user", "ansible_password")}
    inventory = tmp / "ansible-inv.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": hosts,
                    "vars": {
                        "ansible_connection": "winrm",
                        "ansible_winrm_transport": "ntlm",
                        "ansible_winrm_scheme": "http",
                        "ansible_winrm_server_cert_validation": "ignore",
                    },
                }
            }
        ),
        encoding="utf-8",
    )
    dump = {
        "name": "dump the registered results on the controller",
        "ansible.builtin.copy": {
            "content": "{{ [" + ", ".join(f"r{i}" for i in range(len(COMMANDS))) + "] | to_json }}",
            "dest": str(tmp) + "/{{ inventory_hostname }}.json",
        },
        "delegate_to": "localhost",
    }
    play = [{**PLAY[0], "tasks": [*PLAY[0]["tasks"], dump]}]
    book = tmp / "raw.yml"
    book.write_text(yaml.safe_dump(play, sort_keys=False), encoding="utf-8")
    env = ansible_env(tmp, 5)
    proc = subprocess.run(
        [str(ansible_bin / "ansible-playbook"), "-i", str(inventory), str(book)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for name in hosts:
        dumped = tmp / f"{name}.json"
        assert dumped.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
        out[name] = json.loads(dumped.read_text(encoding="utf-8"))
    return out


def test_raw_matches_ansible(ansible_bin: Path, lab: LabThread, tmp_path: Path) -> None:
    theirs = _ansible_results(ansible_bin, lab, tmp_path)
    book = tmp_path / "raw-kmsfleet.yml"
    book.write_text(yaml.safe_dump(PLAY, sort_keys=False), encoding="utf-8")
    report = tmp_path / "r.json"
    proc = run_cli(
        "run", str(book), "-i", str(lab.inventory_path), "--db", str(tmp_path / "h.db"), "--report", str(report)
    )
    assert report.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    ours = hosts_by_name(read_report(report))
    for host in ("w10", "w7"):
        for i, (mine, ref) in enumerate(zip(ours[host]["tasks"], theirs[host], strict=True)):
            where = f"{host} {COMMANDS[i]!r}"
            assert mine["data"]["rc"] == ref["rc"], where
            assert mine["data"]["stdout"] == ref["stdout"], where
            assert (mine["status"] == "failed") == bool(ref.get("failed")), where
            if not ref.get("failed"):  # a failed raw is also "changed" in Ansible; kmsfleet's task has one status
                assert mine["changed"] == ref["changed"], where
