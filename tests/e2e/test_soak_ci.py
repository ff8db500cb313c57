"""The fault soak at CI size (100 PCs): faults, power-offs, a KMS outage, one SIGINT, then ``--limit @failed``
follow-ups. Runs ``benchmarks/soak.py``'s own ``main`` and checks the invariants from its last JSON line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import soak  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(660)]


def test_soak_ci(capsys: pytest.CaptureFixture[str]) -> None:
    code = soak.main(["--quick", "--hosts", "100", "--fault-rate", "0.1", "--seed", "5", "--timeout", "600"])
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert "error" not in result, result
    assert result["hosts"] == 100
    assert result["final_statuses"] == result["hosts"], result["final_counts"]
    assert result["wrong_status"] == 0, result["wrong_examples"]
    assert result["lost"] == 0
    assert result["hung"] == 0
    first = result["runs"][0]
    assert first["sigint"] and first["exit"] == 99, first
    assert len(result["runs"]) >= 2  # at least one --limit @failed follow-up ran
    assert code == 0
