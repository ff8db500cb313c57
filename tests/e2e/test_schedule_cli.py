"""`kmsfleet schedule` as a real subprocess, with fake `crontab` and `systemctl` executables first on PATH and
a temporary XDG config dir: the real user's crontab and systemd are never touched. The crontab entry that
`schedule add` installs is then executed as cron would (sh -c), against a lab classroom."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from orchestrator.lab.addresses import Claim
from orchestrator.lab.control_client import LabControl
from orchestrator.lab.runner import LabThread
from orchestrator.lab.spec import parse_spec
from orchestrator.results.store import HistoryStore

KMSFLEET = Path(sys.executable).parent / "kmsfleet"
PLAYBOOK = Path(__file__).resolve().parents[1] / "fixtures" / "playbooks" / "followup.yml"

FAKE_CRONTAB = """#!/bin/sh
F="${FAKE_CRONTAB_FILE:?}"
case "$1" in
  -l) if [ -f "$F" ]; then cat "$F"; else echo "no crontab for tester" >&2; exit 1; fi ;;
  -) cat > "$F" ;;
  *) echo "usage: crontab [-l | -]" >&2; exit 2 ;;
esac
"""
FAKE_SYSTEMCTL = """#!/bin/sh
echo "$@" >> "${FAKE_SYSTEMCTL_LOG:?}"
if [ "$2" = "show-environment" ]; then exit "${FAKE_SYSTEMD_RC:-1}"; fi
exit 0
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("crontab", FAKE_CRONTAB), ("systemctl", FAKE_SYSTEMCTL)):
        (bin_dir / name).write_text(body, encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    out = {k: v for k, v in os.environ.items() if not k.startswith(("KMSFLEET_", "XDG_"))}
    out.update(
        {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(tmp_path / "home"),
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "XDG_STATE_HOME": str(tmp_path / "state"),
            "XDG_DATA_HOME": str(tmp_path / "data"),
            "FAKE_CRONTAB_FILE": str(tmp_path / "crontab.txt"),
            "FAKE_SYSTEMCTL_LOG": str(tmp_path / "systemctl.log"),
            "COLUMNS": "200",
            "NO_COLOR": "1",
            "LANG": "C.UTF-8",
        }
    )
    return out


def kmsfleet(*args: str | Path, env: dict[str, str], **extra: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(KMSFLEET), *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env={**env, **extra},
        timeout=120,
        check=False,
    )
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    return proc


@pytest.fixture
def lab(lab_block: Claim) -> Iterator[LabThread]:
    spec = parse_spec(
        {
            "room": "room101",
            "subnet": f"{lab_block.prefix}.1",
            "credentials": {"user": "administrator", "password": "Lab-Passw0rd!"},
            "hosts": [{"name": "pc01"}, {"name": "pc02", "power": "off"}],
        }
    )
    with LabThread(spec, https=False) as running:
        yield running


def test_schedule_add_list_run_remove(env: dict[str, str], lab: LabThread, tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    crontab = tmp_path / "crontab.txt"
    crontab.write_text("MAILTO=it@school.example\n", encoding="utf-8")

    added = kmsfleet(
        "schedule", "add", "weekday", "--playbook", PLAYBOOK, "-i", lab.inventory_path, "--cron", "0 7 * * 1-5",
        "--check", "--db", db, env=env,
    )  # fmt: skip
    assert added.returncode == 0, added.stdout + added.stderr
    assert "OnCalendar=Mon..Fri *-*-* 07:00:00" in added.stdout
    assert (
        'schtasks /Create /TN "kmsfleet\\weekday"' in added.stdout
        and "/SC WEEKLY /D MON,TUE,WED,THU,FRI" in added.stdout
    )
    # no systemd user instance (the fake says so): a crontab entry after the existing lines
    lines = crontab.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "MAILTO=it@school.example"
    assert lines[1].startswith("# kmsfleet-schedule: weekday")
    assert lines[2].startswith("0 7 * * 1-5 ") and "schedule run weekday" in lines[2]
    stored = yaml.safe_load((tmp_path / "config" / "kmsfleet" / "schedules.yml").read_text(encoding="utf-8"))
    assert stored["schedules"]["weekday"]["backend"] == "cron" and stored["schedules"]["weekday"]["check"] is True

    bad = kmsfleet(
        "schedule", "add", "bad", "--playbook", PLAYBOOK, "-i", lab.inventory_path, "--cron", "0 7 * *", env=env
    )
    assert bad.returncode == 4 and "has 4 field(s), not 5" in bad.stderr
    assert crontab.read_text(encoding="utf-8").splitlines() == lines

    # a systemd user instance that answers: timer + service in $XDG_CONFIG_HOME/systemd/user, enabled
    sd = kmsfleet(
        "schedule", "add", "evening", "--playbook", PLAYBOOK, "-i", lab.inventory_path, "--cron", "30 17 * * *",
        "--db", db, env=env, FAKE_SYSTEMD_RC="0",
    )  # fmt: skip
    assert sd.returncode == 0, sd.stdout + sd.stderr
    units = tmp_path / "config" / "systemd" / "user"
    assert "OnCalendar=*-*-* 17:30:00" in (units / "kmsfleet-evening.timer").read_text(encoding="utf-8")
    assert "--user enable --now kmsfleet-evening.timer" in (tmp_path / "systemctl.log").read_text(encoding="utf-8")

    listed = json.loads(kmsfleet("schedule", "list", "--json", env=env).stdout)
    assert {(s["name"], s["backend"], s["installed"]) for s in listed} == {
        ("weekday", "cron", True),
        ("evening", "systemd", True),
    }

    # what cron would do at 07:00: run the installed entry's command with sh
    entry = lines[2].split(" ", 5)[5]
    fired = subprocess.run(["sh", "-c", entry], env=env, timeout=120, check=False)
    power = {h["name"]: h["power"] for h in LabControl(lab.control_url).hosts()}
    assert fired.returncode == (3 if "off" in power.values() else 0)  # same exit codes as kmsfleet run
    log = tmp_path / "state" / "kmsfleet" / "schedule-weekday.log"
    assert "Check mode" in log.read_text(encoding="utf-8")
    store = HistoryStore(db)
    try:
        (run,) = store.runs()
        result = store.load_run(run.id)
    finally:
        store.close()
    assert run.check is True and run.playbook == str(PLAYBOOK)
    assert {h.host: h.status.value for h in result.hosts} == {
        name: "ok" if state == "on" else "unreachable" for name, state in power.items()
    }
    now = kmsfleet("schedule", "run", "weekday", env=env)  # the same, by hand
    assert now.returncode == fired.returncode

    assert kmsfleet("schedule", "remove", "weekday", env=env).returncode == 0
    assert crontab.read_text(encoding="utf-8").splitlines() == ["MAILTO=it@school.example"]
    assert kmsfleet("schedule", "remove", "evening", env=env, FAKE_SYSTEMD_RC="0").returncode == 0
    assert not list(units.iterdir())
    missing = kmsfleet("schedule", "run", "weekday", env=env)
    assert missing.returncode == 4 and "no schedule named 'weekday'" in missing.stderr
    assert json.loads(kmsfleet("schedule", "list", "--json", env=env).stdout) == []


def test_schedule_names_and_duplicates(env: dict[str, str], tmp_path: Path) -> None:
    inventory = tmp_path / "school.yml"
    inventory.write_text("all:\n  hosts:\n    pc01:\n", encoding="utf-8")
    common = ("--playbook", PLAYBOOK, "-i", inventory, "--cron", "@weekly", "--backend", "none")
    assert kmsfleet("schedule", "add", "a/b", *common, env=env).returncode == 4
    assert kmsfleet("schedule", "add", "weekly", *common, env=env).returncode == 0
    again = kmsfleet("schedule", "add", "weekly", *common, env=env)
    assert again.returncode == 4 and "--replace" in again.stderr
    assert kmsfleet("schedule", "add", "weekly", *common, "--replace", env=env).returncode == 0
    missing = kmsfleet("schedule", "add", "x", "--playbook", tmp_path / "nope.yml", "-i", inventory, "--cron", "@daily",
                       env=env)  # fmt: skip
    assert missing.returncode == 4 and "playbook not found" in missing.stderr
    assert not (tmp_path / "crontab.txt").exists()  # --backend none touched no scheduler


def test_schedule_add_checks_the_whole_playbook_and_the_limit_now(env: dict[str, str], tmp_path: Path) -> None:
    """Not at 07:00 on Monday with nobody watching: a typo in a module name fails `schedule add` itself."""
    inventory = tmp_path / "school.yml"
    inventory.write_text("all:\n  hosts:\n    pc01:\n", encoding="utf-8")
    typo = tmp_path / "typo.yml"
    typo.write_text("- hosts: all\n  tasks:\n    - win_pingg:\n", encoding="utf-8")
    common = ("-i", inventory, "--cron", "@daily", "--backend", "none")
    bad = kmsfleet("schedule", "add", "nightly", "--playbook", typo, *common, env=env)
    assert bad.returncode == 4 and "typo.yml:3:7: unknown module 'win_pingg'" in bad.stderr
    empty = kmsfleet("schedule", "add", "nightly", "--playbook", PLAYBOOK, *common, "--limit", "", env=env)
    assert empty.returncode == 4 and "names no PC" in empty.stderr
    listed = kmsfleet("schedule", "list", "--json", env=env)
    assert listed.returncode == 0 and "nightly" not in listed.stdout
