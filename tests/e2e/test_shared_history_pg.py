"""Two controllers, one PostgreSQL history: two real `kmsfleet run` processes against one lab write the same
database at once, and nothing is lost (every PC, task and licence reading of both runs is there, and the fleet
tables hold each PC once)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from labkit import PASSWORD

from orchestrator.lab.addresses import Claim
from orchestrator.lab.runner import LabThread
from orchestrator.lab.spec import parse_spec
from orchestrator.results import fleet
from orchestrator.results.store import HistoryStore

pytestmark = pytest.mark.slow

KMSFLEET = Path(sys.executable).parent / "kmsfleet"
PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "audit.yml"
PCS = 24


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMSFLEET_")}
    env.update({"NO_COLOR": "1", "HOME": str(home), "XDG_DATA_HOME": str(home / "data"), "COLUMNS": "160"})
    return env


def test_two_controllers_write_one_postgresql_history_at_once(lab_block: Claim, pg_url: str, tmp_path: Path) -> None:
    spec = {
        "room": "room101",
        "subnet": f"{lab_block.prefix}.1",
        "credentials": {"user": "administrator", "password": PASSWORD},
        "hosts": [{"name": f"pc[01:{PCS:02d}]"}],
    }
    lab = LabThread(parse_spec(spec), https=False)
    lab.start(timeout=60)
    try:
        procs = []
        for name in ("a", "b"):
            report = tmp_path / f"{name}.json"
            args = [str(KMSFLEET), "run", str(PLAYBOOK), "-i", str(lab.inventory_path), "--db", pg_url]
            args += ["--report", str(report), "--forks", "8"]
            procs.append(
                (
                    report,
                    subprocess.Popen(
                        args, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
                    ),
                )
            )
        outputs = [(report, proc.communicate(timeout=300)[0], proc.returncode) for report, proc in procs]
    finally:
        lab.stop()
    for _report, out, code in outputs:
        assert "Traceback" not in out, out[-3000:]
        assert code in (0, 2), out[-3000:]
    with HistoryStore(pg_url) as store:
        runs = store.runs()
        assert len(runs) == 2
        assert all(r.state == "finished" and r.hosts == PCS for r in runs)
        for report, _out, _code in outputs:
            data: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
            run_id = data["run"]["id"] if "run" in data else data["id"]
            stored = store.load_run(run_id)
            by_name = {h.host: h for h in stored.hosts}
            assert len(by_name) == PCS
            for h in data["hosts"]:
                got = by_name[h["host"]]
                assert got.status.value == h["status"]
                assert len(got.tasks) == len(h["tasks"])
                assert len(got.licences) == len(h["licences"])
        page = fleet.hosts(store, fleet.HostFilter(), per_page=1000)
        assert page.total == PCS
        assert {r["run_id"] for r in page.rows} <= {r.id for r in runs}
