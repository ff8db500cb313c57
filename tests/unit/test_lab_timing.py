"""The lab's timing model (orchestrator/lab/timing.py): every drawn figure inside its documented range, the same
draws for the same seed and PC, instant is zero everywhere, and the program/query/method costs add up as
documented in docs/lab-timing.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.lab.timing import INSTANT_KMS_TIMEOUT_S, WINDOWS, LabTiming

DOC = Path(__file__).resolve().parents[2] / "docs" / "lab-timing.md"


@pytest.mark.parametrize("seed", [0, 1, 7, 12345])
def test_windows_figures_are_drawn_inside_their_ranges(seed: int) -> None:
    timing = LabTiming("windows", seed)
    for name in ("pc01", "pc02", "A-VERY-LONG-PC-NAME-42"):
        pc = timing.pc(name)
        assert set(pc.figures) == set(WINDOWS)
        for key, figure in WINDOWS.items():
            assert figure.low_s <= pc.get(key) <= figure.high_s, key
        assert pc.kms_timeout_s == pytest.approx(21.0)


def test_draws_are_reproducible_by_seed_and_differ_between_pcs_and_seeds() -> None:
    first = LabTiming("windows", 7).pc("pc01").figures
    again = LabTiming("windows", 7).pc("PC01").figures  # names are matched without case, as Windows does
    assert first == again
    assert LabTiming("windows", 7).pc("pc02").figures != first
    assert LabTiming("windows", 8).pc("pc01").figures != first


def test_instant_is_zero_everywhere() -> None:
    pc = LabTiming("instant", 3).pc("pc01")
    assert pc.program_start("powershell", "Get-WmiObject SoftwareLicensingProduct") == 0.0
    assert pc.program_start("cscript", "//nologo C:\\Windows\\System32\\slmgr.vbs /dlv") == 0.0
    assert pc.program_start("w32tm", "/resync") == 0.0
    assert pc.query("SoftwareLicensingProduct") == 0.0
    assert pc.invoke("InstallProductKey") == 0.0
    assert pc.get("signin") == 0.0 and pc.get("shell_create") == 0.0
    assert pc.kms_timeout_s == INSTANT_KMS_TIMEOUT_S


def test_scale_multiplies_every_windows_figure() -> None:
    full = LabTiming("windows", 5).pc("pc01")
    tenth = LabTiming("windows", 5, scale=0.1).pc("pc01")
    for key in WINDOWS:
        assert tenth.get(key) == pytest.approx(full.get(key) * 0.1)
    assert tenth.kms_timeout_s == pytest.approx(2.1)


def test_powershell_first_start_is_cold_then_warm() -> None:
    pc = LabTiming("windows", 1).pc("pc01")
    cold = pc.program_start("powershell", "Write-Output hi")
    warm = pc.program_start("powershell", "Write-Output hi")
    assert cold == pc.get("powershell_cold_start")
    assert warm == pc.get("powershell_start")
    assert cold > warm


def test_licensing_classes_cost_their_query() -> None:
    pc = LabTiming("windows", 2).pc("pc01")
    pc.program_start("powershell", "")  # past the cold start
    plain = pc.program_start("powershell", "Get-Date")
    slp = pc.program_start("powershell", "Get-CimInstance SoftwareLicensingProduct | Select Name")
    assert slp == pytest.approx(plain + pc.get("slp_query"))
    dlv = pc.program_start("cscript", "//nologo C:\\Windows\\System32\\slmgr.vbs /dlv")
    assert dlv == pytest.approx(pc.get("cscript_start") + pc.get("slp_query"))
    ospp = pc.program_start("cscript", '"C:\\Program Files\\Microsoft Office\\Office16\\OSPP.VBS" /dstatus')
    assert ospp == pytest.approx(pc.get("cscript_start") + pc.get("ospp_query"))
    assert pc.query("softwarelicensingproduct") == pc.get("slp_query")
    assert pc.query("OfficeSoftwareProtectionProduct") == pc.get("ospp_query")
    assert pc.query("Win32_OperatingSystem") == pc.get("wql_query")
    assert pc.program_start("w32tm", "/resync") == pc.get("w32tm_resync")
    assert pc.program_start("w32tm", "/query /status") == 0.0
    assert pc.invoke("Activate") == 0.0  # its KMS round trip is spent by the licensing model
    assert pc.invoke("InstallProductKey") == pc.get("wql_query")


@pytest.mark.parametrize(("mode", "scale"), [("slow", 1.0), ("windows", 0.0), ("windows", 11.0)])
def test_bad_modes_and_scales_are_refused(mode: str, scale: float) -> None:
    with pytest.raises(ValueError):
        LabTiming(mode, 0, scale)  # type: ignore[arg-type]


def test_every_figure_is_documented_with_its_source() -> None:
    text = DOC.read_text(encoding="utf-8")
    for name, figure in WINDOWS.items():
        assert f"`{name}`" in text, name
        first_source = figure.source.split(";")[0].strip()
        assert first_source in text, (name, first_source)


def test_slmgr_kms_host_options_query_only_the_service_unless_given_an_activation_id() -> None:
    pc = LabTiming("windows", 4).pc("pc01")
    slmgr = "//nologo C:\\Windows\\System32\\slmgr.vbs"
    skms = pc.program_start("cscript", f"{slmgr} /skms 10.0.0.5:1688")
    assert skms == pytest.approx(pc.get("cscript_start") + pc.get("wql_query"))
    ckms = pc.program_start("cscript", f"{slmgr} /ckms")
    assert ckms == pytest.approx(pc.get("cscript_start") + pc.get("wql_query"))
    with_id = pc.program_start("cscript", f"{slmgr} /skms kms:1688 2de67392-b7a7-462a-b1ca-108dd189f588")
    assert with_id == pytest.approx(pc.get("cscript_start") + pc.get("slp_query"))
    ato = pc.program_start("cscript", f"{slmgr} /ato")
    assert ato == pytest.approx(pc.get("cscript_start") + pc.get("slp_query"))
    ospp = '"C:\\Program Files\\Microsoft Office\\Office16\\OSPP.VBS"'
    assert pc.program_start("cscript", f"{ospp} /sethst:kms") == pytest.approx(
        pc.get("cscript_start") + pc.get("ospp_query")
    )


def test_what_each_pc_spent_is_counted_per_figure() -> None:
    timing = LabTiming("windows", 6)
    one, two = timing.pc("pc01"), timing.pc("pc02")
    one.program_start("cscript", "//nologo C:\\Windows\\System32\\slmgr.vbs /dlv")
    two.program_start("cmd")
    two.program_start("cmd")
    charged = timing.charged()
    assert charged["cscript_start"]["count"] == 1
    assert charged["slp_query"]["seconds"] == pytest.approx(one.figures["slp_query"], abs=1e-3)
    assert charged["cmd_start"] == {"count": 2, "seconds": pytest.approx(2 * two.figures["cmd_start"], abs=1e-3)}
    assert "powershell_start" not in charged
    assert timing.describe()["charged"] == charged
    slowest = max(one.figures["cscript_start"] + one.figures["slp_query"], 2 * two.figures["cmd_start"])
    assert timing.slowest_pc_s() == pytest.approx(slowest, abs=1e-3)
    instant = LabTiming("instant", 6)
    instant.pc("pc01").program_start("cmd")
    assert instant.charged() == {}
