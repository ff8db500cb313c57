"""benchmarks/ansible_compare.py's explanation of the Ansible gap: the per-PC counts it reads from the lab's
/stats, and the speedup ceiling the Windows timing model itself allows (the same draws as the lab's)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from orchestrator.lab.timing import LabTiming

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.ansible_compare import (  # noqa: E402
    _model_rows,
    build_spec,
    model_bounds,
    model_figures,
    model_kmsfleet_s,
    pc_names,
    per_pc_counts,
    pool_wall,
)


def test_per_pc_counts_divide_the_labs_counters_and_charges_by_the_pcs() -> None:
    stats = {
        "http_requests": 112,
        "soap_requests": 70,
        "requests": {"auth:ok": 14, "Create": 14, "Command": 14, "Receive": 20, "Invoke:Activate": 2},
        "timing": {
            "charged": {"slp_query": {"count": 4, "seconds": 7.5}, "cmd_start": {"count": 14, "seconds": 0.5}},
            "slowest_pc_s": 4.5,
        },
    }
    out = per_pc_counts(stats, 2)
    assert out["soap_requests"] == 35 and out["signins"] == 7 and out["shells"] == 7 and out["receives"] == 10
    assert out["invokes"] == 1 and out["wql_enumerates"] == 0
    assert out["n_slp_query"] == 2 and out["s_slp_query"] == pytest.approx(3.75)
    assert out["s_charged_total"] == pytest.approx(4.0)
    assert out["s_slowest_pc"] == 4.5  # one PC's total, not divided


def test_the_ideal_tool_pays_each_pcs_commands_once_and_ansible_pays_its_per_task_overhead() -> None:
    names = pc_names(3)
    bounds = model_bounds(names, seed=3, forks=(1, 40))
    timing = LabTiming("windows", 3)
    per_pc = []
    for name in names:
        f = timing.pc(name).figures
        queries = f["wql_query"] + 2 * f["slp_query"] + 4 * f["ospp_query"] + 2 * f["kms_round_trip"]
        per_pc.append(f["signin"] + f["shell_create"] + 7 * (f["cmd_start"] + f["cscript_start"]) + queries)
    assert bounds["model_ideal_s"] == pytest.approx(max(per_pc))
    # One fork: every task of every PC in a row; each task signs in, creates a shell and starts powershell.exe
    # (cold the first time), where the ideal tool signs in and creates its shell once.
    overhead = 0.0
    for name in names:
        f = timing.pc(name).figures
        overhead += 6 * (f["signin"] + f["shell_create"] + f["powershell_start"]) + f["powershell_cold_start"]
    assert bounds["model_ansible_forks1_s"] == pytest.approx(sum(per_pc) + overhead)
    assert bounds["model_bound_forks1"] == pytest.approx(bounds["model_ansible_forks1_s"] / max(per_pc))
    # Enough forks for every PC: each task still waits for its slowest PC before the next starts.
    assert bounds["model_ansible_forks40_s"] >= max(per_pc)


def test_the_forks_5_ceiling_grows_with_the_pc_count() -> None:
    small, large = model_bounds(pc_names(10), seed=3), model_bounds(pc_names(60), seed=3)
    assert large["model_bound_forks5"] > 4 * small["model_bound_forks5"]


def test_pc_names_are_the_labs_names_for_the_spec() -> None:
    assert pc_names(3) == ["pc01", "pc02", "pc03"]
    assert pc_names(120)[0] == "pc001" and len(pc_names(120)) == 120
    assert build_spec(120)["hosts"] == [{"name": "pc[001:120]"}]


def test_pool_wall_takes_jobs_in_order_as_workers_come_free() -> None:
    assert pool_wall([3.0, 1.0, 1.0, 1.0], 2) == 3.0  # worker 2 runs the three short jobs meanwhile
    assert pool_wall([1.0, 1.0, 1.0], 1) == 3.0
    assert pool_wall([2.0, 5.0], 40) == 5.0
    assert pool_wall([], 5) == 0.0


def test_kmsfleet_in_the_model_pays_the_ideal_plus_its_probe_and_one_licence_read() -> None:
    names = pc_names(30)
    timing = LabTiming("windows", 3)
    extra = []
    for name in names:
        f = timing.pc(name).figures
        extra.append(f["cmd_start"] + 3 * f["wql_query"] + f["slp_query"])
    every_pc_at_once = model_kmsfleet_s(names, seed=3, forks=30)
    ideal = model_bounds(names, seed=3)["model_ideal_s"]
    assert ideal < every_pc_at_once <= ideal + max(extra)
    # three waves of ten PCs take longer than one wave of thirty
    assert model_kmsfleet_s(names, seed=3, forks=10) > 2 * every_pc_at_once


def test_model_figures_give_kmsfleet_with_the_old_and_the_run_forks_and_the_table_shows_them() -> None:
    names = pc_names(120)
    res = model_figures(names, seed=3, kmsfleet_forks=250)
    assert res["model_kmsfleet_forks50_s"] == pytest.approx(model_kmsfleet_s(names, 3, 50))
    # 120 PCs in three waves of 50, or all at once
    assert res["model_kmsfleet_forks50_s"] > 2 * res["model_kmsfleet_forks250_s"]
    rows = {label: value for label, value, _ in _model_rows(res)}
    assert rows["model: kmsfleet --forks 250"] == f"{res['model_kmsfleet_forks250_s']:.2f} s"
