"""`kmsfleet inventory` as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KMSFLEET = Path(sys.executable).parent / "kmsfleet"
SCHOOL = ROOT / "tests" / "fixtures" / "inventory" / "school" / "hosts.yml"
SECRET = "S3cret-Inventory!"


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    if not KMSFLEET.exists():
        pytest.fail(f"{KMSFLEET} is missing: install kmsfleet into the virtualenv (pip install -e .)")
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [str(KMSFLEET), "inventory", *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
    )


def test_list_masks_passwords() -> None:
    result = run("-i", str(SCHOOL), "--list")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["all"]["children"] == ["ungrouped", "rooms", "win10"]  # as ansible-inventory 2.19 lists them
    assert data["room101"]["hosts"][:2] == ["pc01", "pc02"]
    assert data["_meta"]["hostvars"]["pc01"]["ansible_password"] == "********"
    assert SECRET not in result.stdout
    assert "no group named 'room11'" in result.stderr  # the stray group_vars file is reported


def test_show_secrets() -> None:
    result = run("-i", str(SCHOOL), "--list", "--show-secrets")
    assert result.returncode == 0
    assert json.loads(result.stdout)["_meta"]["hostvars"]["pc01"]["ansible_password"] == SECRET


def test_graph_with_limit() -> None:
    result = run("-i", str(SCHOOL), "--graph", "rooms", "--limit", "room101:&win10")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "@rooms:",
        "  |--@room101:",
        "  |  |--pc02",
        "  |  |--pc04",
        "  |--@room102:",
    ]


def test_graph_vars_are_masked() -> None:
    result = run("-i", str(SCHOOL), "--graph", "room101", "--vars")
    assert result.returncode == 0
    assert "  |  |--{ansible_password = ********}" in result.stdout.splitlines()
    assert SECRET not in result.stdout


def test_host() -> None:
    result = run("-i", str(SCHOOL), "--host", "pc03")
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert data["level"] == "pc03-host_vars"
    assert data["office"] == "2019"


def test_several_inventories(tmp_path: Path) -> None:
    extra = tmp_path / "extra.ini"
    extra.write_text("[room101]\npc01 level=override\n", encoding="utf-8")
    result = run("-i", str(SCHOOL), "-i", str(extra), "--host", "pc01")
    assert result.returncode == 0
    assert json.loads(result.stdout)["level"] == "override"


def test_malformed_inventory_exits_4_with_location(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("all:\n  host:\n    pc01:\n", encoding="utf-8")
    result = run("-i", str(bad), "--list")
    assert result.returncode == 4
    assert f"{bad}:2:3: unknown key 'host' in group 'all'" in result.stderr
    assert "did you mean 'hosts'?" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_unknown_host_and_bad_pattern_exit_4() -> None:
    result = run("-i", str(SCHOOL), "--host", "pc1")
    assert result.returncode == 4 and "did you mean 'pc01'?" in result.stderr
    result = run("-i", str(SCHOOL), "--list", "--limit", "room11")
    assert result.returncode == 4 and "did you mean 'room101'?" in result.stderr


def test_usage_errors() -> None:
    result = run("-i", str(SCHOOL))
    assert result.returncode == 4 and "choose exactly one of --list, --graph or --host" in result.stderr
    result = run("-i", str(SCHOOL), "--list", "--vars")
    assert result.returncode == 4


def test_help_has_examples() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "Examples" in result.stdout and "--graph room101 --vars" in result.stdout
