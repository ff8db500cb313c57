"""``benchmarks/city.py --distributed`` at test size: the audit over two local per-site workers (real
redis-server on loopback, real ``kmsfleet worker`` processes, a real lab). Runs the script's own ``main`` and
checks its last JSON line: every PC has a result, both sides' CPU and memory were measured."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import city  # noqa: E402
from tests.distkit import require_redis  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


def test_city_audit_over_two_per_site_workers(capsys: pytest.CaptureFixture[str]) -> None:
    require_redis()
    code = city.main(["--distributed", "--hosts", "24", "--forks", "8", "--timing", "instant", "--timeout", "360"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and "error" not in result, result
    assert result["distributed"] is True and result["sites"] == 2 and result["worker_forks"] == 4
    assert sum(result["statuses"].values()) == 24, result["statuses"]
    assert result["soap_requests"] >= 24 * 10
    assert result["controller_cpu_s"] > 0 and result["workers_cpu_s"] > 0
    assert 0 < result["rss_mb"] < 1000 and 0 < result["workers_rss_mb"] <= result["workers_rss_total_mb"]


def test_each_site_gets_half_of_a_labs_pcs(tmp_path: Path) -> None:
    inventory = tmp_path / "lab.yml"
    hosts = {f"pc{i:02d}": {"ansible_host": f"127.0.9.{i}"} for i in range(1, 6)}
    inventory.write_text(json.dumps({"all": {"children": {"room": {"hosts": hosts}}}}), encoding="utf-8")

    lab = SimpleNamespace(inventory=inventory)  # only its inventory is read
    out = city._site_inventory(lab, tmp_path / "sites.yml")  # type: ignore[arg-type]
    sites = [hv["site"] for hv in yaml.safe_load(out.read_text())["all"]["children"]["room"]["hosts"].values()]
    assert sites == ["site1", "site1", "site1", "site2", "site2"]
