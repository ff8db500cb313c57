"""The fuzzer at CI size: 300 cases over inventories, playbooks, lab specs, CLI arguments and hostile WS-Man
answers served on loopback to the real transport. Runs ``benchmarks/fuzz.py``'s own ``main``; nothing may escape
but the documented error types, and no case may hang."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import fuzz  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_fuzz_ci(capsys: pytest.CaptureFixture[str]) -> None:
    code = fuzz.main(["--cases", "300", "--seed", "7", "--timeout", "240"])
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["cases"] >= 290, result  # hypothesis may stop a few short when a space is exhausted
    assert result["tracebacks"] == 0, result["findings"]
    assert result["hangs"] == 0, result["findings"]
    assert set(result["by_target"]) == {"inventory", "playbook", "lab_spec", "cli", "wsman"}
    assert code == 0
