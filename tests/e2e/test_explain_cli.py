"""`kmsfleet explain` as a real subprocess: every spelling of a code, both languages, JSON, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.knowledge.catalogue import lookup, seed_codes

KMSFLEET = Path(sys.executable).parent / "kmsfleet"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMSFLEET_")}
    env.update({"COLUMNS": "100", "NO_COLOR": "1", "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8"})
    return subprocess.run(
        [str(KMSFLEET), "explain", *args],
        check=False,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=60,
    )


def _no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr


def test_hex_in_traditional_chinese() -> None:
    proc = run("0xc004f074", "--lang", "zh-TW")
    _no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    entry = lookup("0xC004F074")
    assert entry is not None
    zh = entry.text("zh-TW")
    assert "0xC004F074" in proc.stdout
    assert zh.title in proc.stdout
    assert "1688" in proc.stdout and "VPN" in proc.stdout
    assert "說明" in proc.stdout and "處理方式" in proc.stdout
    assert entry.text("en").title not in proc.stdout


@pytest.mark.parametrize("spelling", ["3221549172", "C004F074", "SL_E_VL_BINDING_SERVICE_UNAVAILABLE"])
def test_other_spellings_explain_the_same_code(spelling: str) -> None:
    proc = run(spelling)
    _no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    entry = lookup("0xC004F074")
    assert entry is not None
    assert "0xC004F074" in proc.stdout and entry.text("en").title in proc.stdout


@pytest.mark.parametrize("args", [("-1073418124", "--json"), ("--json", "--", "-1073418124")])
def test_negative_signed_decimal(args: tuple[str, ...]) -> None:
    proc = run(*args)
    _no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["code"] == "0xC004F074" and data["unsigned"] == 3221549172 and data["signed"] == -1073418124
    assert data["known"] is True and data["seed"] is True and data["lang"] == "en"
    assert data["fix"] and all(isinstance(step, str) for step in data["fix"])


def test_json_in_chinese_for_a_diagnosis_key() -> None:
    proc = run("kf_wrong_timezone", "--json", "--lang", "zh_TW")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    entry = lookup("KF_WRONG_TIMEZONE")
    assert entry is not None
    assert data["key"] == "KF_WRONG_TIMEZONE" and data["code"] is None and data["lang"] == "zh-TW"
    assert data["title"] == entry.text("zh-TW").title


@pytest.mark.parametrize("bad", ["not-a-code", "0x1FFFFFFFF", "KF_NO_SUCH_DIAGNOSIS"])
def test_malformed_input_exits_4_with_a_clear_message(bad: str) -> None:
    proc = run(bad)
    _no_traceback(proc)
    assert proc.returncode == 4
    assert bad in proc.stderr and "error" in proc.stderr
    assert "0xC004F074" in proc.stderr  # the hint shows a valid form
    assert proc.stdout == ""


def test_data_in_the_input_is_not_rich_markup() -> None:
    proc = run("[bold red]x[/]")
    assert proc.returncode == 4
    assert "[bold red]x[/]" in proc.stderr


def test_unknown_but_well_formed_code_gets_generic_advice() -> None:
    proc = run("0x80070002")
    _no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    assert "slui.exe 0x2a 0x80070002" in proc.stdout
    assert "net helpmsg 2" in proc.stdout  # a Win32 error wrapped in an HRESULT


def test_bad_language_and_missing_code_exit_4() -> None:
    proc = run("0xC004F074", "--lang", "fr")
    assert proc.returncode == 4 and "zh-TW" in proc.stderr
    _no_traceback(proc)
    proc = run()
    assert proc.returncode == 4 and "--list" in proc.stderr
    proc = run("")  # `kmsfleet explain "$CODE"` with CODE unset: not "error:  is not an error code."
    assert proc.returncode == 4 and "Give an error code" in proc.stderr and "is not an error code" not in proc.stderr


def test_list_seed_only_json_matches_the_bureau_codes() -> None:
    proc = run("--list", "--seed-only", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [int(r["code"], 16) for r in rows] == list(seed_codes())
    proc = run("--list", "--lang", "zh-TW")
    assert proc.returncode == 0 and "KF_UNKNOWN_ERROR" in proc.stdout and "0xC004F074" in proc.stdout
