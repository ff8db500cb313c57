"""Schedules: cron validation, cron → systemd OnCalendar (checked against systemd-analyze when present),
schtasks lines, the schedules file, and the crontab/systemd backends run as real subprocesses against fake
``crontab``/``systemctl`` executables in a temp dir (never the real user's)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.errors import InputError
from orchestrator.schedule import (
    CRON_MARKER,
    CronBackend,
    CronError,
    Schedule,
    ScheduleError,
    ScheduleFile,
    SystemdBackend,
    parse_cron,
    schtasks_lines,
    to_on_calendar,
    windows_quote,
)

# ------------------------------------------------------------------------------------------- cron parsing


def brute_force_next(expr: str, after: datetime) -> datetime:
    """The next firing by checking every minute with a separate, naive reading of cron (the reference)."""
    fields = expr.split()
    names = {
        **{
            m: i + 1
            for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])
        },
        **{d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])},
    }

    def values(text: str, low: int, high: int) -> set[int]:
        out: set[int] = set()
        for item in text.split(","):
            base, _, step = item.partition("/")
            if base == "*":
                a, b = low, high
            elif "-" in base:
                x, y = base.split("-")
                a, b = names.get(x.lower()) or int(x), names.get(y.lower()) or int(y)
            else:
                a = names[base.lower()] if base.lower() in names else int(base)
                b = high if step else a
            out |= set(range(a, b + 1, int(step or 1)))
        return out

    minute, hour = values(fields[0], 0, 59), values(fields[1], 0, 23)
    dom, month = values(fields[2], 1, 31), values(fields[3], 1, 12)
    dow = {d % 7 for d in values(fields[4], 0, 6 if fields[4].startswith("*") else 7)}
    t = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    for _ in range(60 * 24 * 800):
        day_ok_dom = t.day in dom
        day_ok_dow = t.isoweekday() % 7 in dow
        if fields[2].startswith("*") or fields[4].startswith("*"):
            day_ok = day_ok_dom and day_ok_dow
        else:
            day_ok = day_ok_dom or day_ok_dow
        if t.minute in minute and t.hour in hour and t.month in month and day_ok:
            return t
        t += timedelta(minutes=1)
    raise AssertionError("no firing found")


EXPRESSIONS = [
    "0 7 * * 1-5",
    "*/15 * * * *",
    "30 6 * * sun,sat",
    "0 0 1,15 * 5",
    "5/20 3 * * 0-2",
    "0 8-17/2 * * mon-fri",
    "0 12 */2 jan-mar *",
    "45 23 31 * *",
    "0 7 * * 7",
    "10,40 6-7 1-7 * mon",
]


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_next_after_agrees_with_a_minute_by_minute_reference(expr: str) -> None:
    cron = parse_cron(expr)
    start = datetime(2025, 3, 3, 6, 59, 30)
    got = cron.next_times(start, 5)
    expected = []
    t = start
    for _ in range(5):
        t = brute_force_next(expr, t)
        expected.append(t)
    assert got == expected


def test_leap_day() -> None:
    assert parse_cron("0 0 29 2 *").next_times(datetime(2025, 3, 3), 2) == [
        datetime(2028, 2, 29),
        datetime(2032, 2, 29),
    ]


def test_macros_and_names() -> None:
    assert parse_cron("@weekly").next_after(datetime(2025, 3, 3)) == datetime(2025, 3, 9)
    assert parse_cron("@daily").dow.values == frozenset(range(7))
    assert parse_cron("0 7 * JAN-mar Mon").month.values == frozenset({1, 2, 3})
    assert parse_cron("0 7 * * 7").dow.values == frozenset({0})


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        ("", "empty"),
        ("0 7 * *", "4 field"),
        ("0 7 * * 1-5 2025", "6 field"),
        ("60 7 * * *", "minute"),
        ("0 24 * * *", "hour"),
        ("0 7 0 * *", "day of month"),
        ("0 7 * 13 *", "month"),
        ("0 7 * * 8", "day of week"),
        ("0 7 * * mon-xyz", "not a number"),
        ("*/0 * * * *", "step"),
        ("*/61 * * * *", "step"),
        ("0 7 5-1 * *", "backwards"),
        ("0 7 1,,2 * *", "empty list item"),
        ("@fortnightly", "unknown cron macro"),
        ("0 0 30 2 *", "never fires"),
    ],
)
def test_bad_cron_expressions_are_clear_input_errors(expr: str, words: str) -> None:
    with pytest.raises(CronError) as err:
        parse_cron(expr)
    assert isinstance(err.value, InputError)
    assert words in str(err.value)
    assert err.value.hint


# --------------------------------------------------------------------------------------- OnCalendar


@pytest.mark.parametrize(
    ("expr", "calendars"),
    [
        ("0 7 * * 1-5", ["Mon..Fri *-*-* 07:00:00"]),
        ("*/15 * * * *", ["*-*-* *:00/15:00"]),
        ("30 6 * * sun,sat", ["Sat,Sun *-*-* 06:30:00"]),
        ("0 0 1,15 * 5", ["Fri *-*-* 00:00:00", "*-*-01,15 00:00:00"]),
        ("0 12 */2 jan-mar *", ["*-01..03-01/2 12:00:00"]),
        ("@monthly", ["*-*-01 00:00:00"]),
        ("0 7 * * 0-2", ["Mon,Tue,Sun *-*-* 07:00:00"]),
    ],
)
def test_on_calendar_conversion(expr: str, calendars: list[str]) -> None:
    assert to_on_calendar(expr) == calendars


def _systemd_elapses(calendars: list[str], base: datetime, count: int) -> list[datetime]:
    proc = subprocess.run(
        [
            "systemd-analyze",
            "calendar",
            f"--iterations={count}",
            f"--base-time={base:%Y-%m-%d %H:%M:%S} UTC",
            *calendars,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "TZ": "UTC", "LC_ALL": "C"},
        timeout=30,
        check=False,
    )
    if proc.returncode != 0 and "base-time" in proc.stderr:
        pytest.skip("this systemd-analyze has no --base-time")
    assert proc.returncode == 0, proc.stderr
    found = re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", proc.stdout)
    return sorted({datetime.strptime(f, "%Y-%m-%d %H:%M:%S") for f in found})[:count]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("expr", [*EXPRESSIONS, "0 0 29 2 *", "@hourly"])
def test_on_calendar_fires_when_cron_does_according_to_systemd(expr: str) -> None:
    base = datetime(2025, 3, 3, 6, 59, 30)
    ours = parse_cron(expr).next_times(base, 8)
    assert _systemd_elapses(to_on_calendar(expr), base, 8) == ours


# ------------------------------------------------------------------------------------------ schtasks


def test_schtasks_weekday_line() -> None:
    lines, why = schtasks_lines(
        "weekday-audit", "0 7 * * 1-5", ["kmsfleet", "run", "audit.yml", "-i", "C:\\校園\\a b.yml"]
    )
    assert why is None and len(lines) == 1
    line = lines[0]
    assert line.startswith('schtasks /Create /TN "kmsfleet\\weekday-audit" /TR "kmsfleet run audit.yml -i ')
    assert '\\"C:\\校園\\a b.yml\\"' in line  # the path with a space is quoted inside /TR
    assert line.endswith("/SC WEEKLY /D MON,TUE,WED,THU,FRI /ST 07:00")


@pytest.mark.parametrize(
    ("expr", "tail"),
    [
        ("*/15 * * * *", "/SC MINUTE /MO 15"),
        ("20 */2 * * *", "/SC HOURLY /MO 2 /ST 00:20"),
        ("30 6 * * *", "/SC DAILY /ST 06:30"),
        ("0 9 1,15 * *", "/SC MONTHLY /D 1,15 /ST 09:00"),
        ("0 9 1 jan,jul *", "/SC MONTHLY /D 1 /M JAN,JUL /ST 09:00"),
        # evenly spaced start times: one trigger that repeats (/RI minutes) for a while (/DU hh:mm)
        ("*/15 8-16 * * mon-fri", "/SC WEEKLY /D MON,TUE,WED,THU,FRI /ST 08:00 /RI 15 /DU 08:46"),
        ("0 8-16/2 * * *", "/SC DAILY /ST 08:00 /RI 120 /DU 08:01"),
    ],
)
def test_schtasks_schedules(expr: str, tail: str) -> None:
    lines, why = schtasks_lines("x", expr, ["kmsfleet", "run", "site.yml"])
    assert why is None and lines[0].endswith(tail)


def test_schtasks_says_when_it_cannot() -> None:
    lines, why = schtasks_lines("x", "0 0 1,15 * 5", ["kmsfleet"])
    assert lines == [] and why
    lines, why = schtasks_lines("x", "0,20 8-16 * * *", ["kmsfleet"])
    assert lines == [] and why and "18 start times" in why
    lines, why = schtasks_lines("x", "5 7,8,13 * * *", ["kmsfleet"])
    assert why is None and [x.split("/ST ")[1] for x in lines] == ["07:05", "08:05", "13:05"]
    assert [re.search(r'/TN "([^"]+)"', x).group(1) for x in lines] == [
        "kmsfleet\\x-1",
        "kmsfleet\\x-2",
        "kmsfleet\\x-3",
    ]  # type: ignore[union-attr]


def test_windows_quote() -> None:
    assert windows_quote("plain") == "plain"
    assert windows_quote("a b") == '"a b"'
    assert windows_quote('say "hi"') == '"say \\"hi\\""'
    assert windows_quote("C:\\dir with space\\") == '"C:\\dir with space\\\\"'


# -------------------------------------------------------------------------------------- schedules file


def _schedule(name: str = "weekday", **kw: object) -> Schedule:
    base: dict[str, object] = {
        "name": name,
        "playbook": "/srv/kms/audit.yml",
        "inventory": ("/srv/kms/school.yml",),
        "cron": "0 7 * * 1-5",
        "check": True,
        "extra_vars": ("kms_host=10.0.0.5",),
        "workdir": "/srv/kms",
    }
    base.update(kw)
    return Schedule(**base)  # type: ignore[arg-type]


def test_schedule_file_round_trip_and_errors(tmp_path: Path) -> None:
    store = ScheduleFile(tmp_path / "kmsfleet" / "schedules.yml")
    assert store.load() == {}
    a, b = _schedule("weekday"), _schedule("friday", cron="30 16 * * fri", limit="room101", check=False)
    store.put(a)
    store.put(b)
    assert store.load() == {"weekday": a, "friday": b}
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    with pytest.raises(InputError, match="exists already"):
        store.put(a)
    store.put(a.__class__(**{**a.__dict__, "cron": "@daily"}), replace_existing=True)
    assert store.get("weekday").cron == "@daily"
    assert store.delete("friday") == b
    with pytest.raises(InputError) as err:
        store.get("friday")
    assert err.value.hint and "weekday" in err.value.hint


def test_schedule_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "schedules.yml"
    path.write_text("schedules:\n  weekly:\n    cron: '0 7 * * 1'\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        ScheduleFile(path).load()
    assert "playbook" in str(err.value) and str(path) in str(err.value)


# ------------------------------------------------------------------------------- backends (fake binaries)

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
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("crontab", FAKE_CRONTAB), ("systemctl", FAKE_SYSTEMCTL)):
        path = bin_dir / name
        path.write_text(text, encoding="utf-8")
        path.chmod(0o755)
    monkeypatch.setenv("FAKE_CRONTAB_FILE", str(tmp_path / "crontab.txt"))
    monkeypatch.setenv("FAKE_SYSTEMCTL_LOG", str(tmp_path / "systemctl.log"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir


def test_cron_backend_keeps_other_entries_and_finds_its_own(fake_bin: Path, tmp_path: Path) -> None:
    crontab_file = tmp_path / "crontab.txt"
    crontab_file.write_text("MAILTO=it@school.example\n15 2 * * * /usr/local/bin/backup\n", encoding="utf-8")
    backend = CronBackend(crontab=str(fake_bin / "crontab"), log_dir=tmp_path / "logs")
    backend.install(_schedule("weekday"))
    backend.install(_schedule("friday", cron="30 16 * * fri"))
    backend.install(_schedule("weekday", cron="0 6 * * 1-5"))  # replaces, does not duplicate
    text = crontab_file.read_text(encoding="utf-8")
    assert text.startswith("MAILTO=it@school.example\n15 2 * * * /usr/local/bin/backup\n")
    assert text.count(f"{CRON_MARKER} weekday ") == 1
    entry = text.splitlines()[text.splitlines().index(next(x for x in text.splitlines() if "weekday (" in x)) + 1]
    assert entry.startswith("0 6 * * 1-5 ") and "schedule run weekday" in entry
    assert f"XDG_CONFIG_HOME={tmp_path / 'config'}" in entry
    assert backend.installed() == {"weekday", "friday"}
    assert backend.uninstall("weekday") == ["crontab entry removed"]
    assert backend.installed() == {"friday"}
    assert backend.uninstall("weekday") == []
    assert "/usr/local/bin/backup" in crontab_file.read_text(encoding="utf-8")


def test_cron_backend_with_no_crontab_yet(fake_bin: Path, tmp_path: Path) -> None:
    backend = CronBackend(crontab=str(fake_bin / "crontab"), log_dir=tmp_path / "logs")
    assert backend.installed() == set()
    backend.install(_schedule())
    assert backend.installed() == {"weekday"}


def test_cron_backend_reports_a_broken_crontab(tmp_path: Path) -> None:
    broken = tmp_path / "crontab"
    broken.write_text("#!/bin/sh\necho 'crontab: permission denied' >&2\nexit 1\n", encoding="utf-8")
    broken.chmod(0o755)
    with pytest.raises(ScheduleError, match="permission denied"):
        CronBackend(crontab=str(broken)).read()
    with pytest.raises(ScheduleError, match="not installed"):
        CronBackend(crontab=str(tmp_path / "missing")).read()


def test_systemd_backend_writes_units_and_enables_the_timer(fake_bin: Path, tmp_path: Path) -> None:
    unit_dir = tmp_path / "config" / "systemd" / "user"
    backend = SystemdBackend(unit_dir=unit_dir, systemctl=str(fake_bin / "systemctl"), manage=True)
    backend.install(_schedule("weekday", cron="0 0 1,15 * 5"))
    service = (unit_dir / "kmsfleet-weekday.service").read_text(encoding="utf-8")
    timer = (unit_dir / "kmsfleet-weekday.timer").read_text(encoding="utf-8")
    assert "ExecStart=" in service and " -m orchestrator schedule run weekday" in service
    assert "WorkingDirectory=/srv/kms" in service
    assert timer.count("OnCalendar=") == 2 and "OnCalendar=Fri *-*-* 00:00:00" in timer
    assert "WantedBy=timers.target" in timer
    assert backend.installed() == {"weekday"}
    log = (tmp_path / "systemctl.log").read_text(encoding="utf-8").splitlines()
    assert log == ["--user daemon-reload", "--user enable --now kmsfleet-weekday.timer"]
    backend.uninstall("weekday")
    assert not any(unit_dir.iterdir())
    log = (tmp_path / "systemctl.log").read_text(encoding="utf-8").splitlines()
    assert log[2:] == ["--user disable --now kmsfleet-weekday.timer", "--user daemon-reload"]


def test_systemd_backend_without_a_user_instance_only_writes_files(fake_bin: Path, tmp_path: Path) -> None:
    unit_dir = tmp_path / "units"
    backend = SystemdBackend(unit_dir=unit_dir, systemctl=str(fake_bin / "systemctl"))  # fake answers rc 1
    notes = backend.install(_schedule())
    assert (unit_dir / "kmsfleet-weekday.timer").exists()
    assert any("enable --now kmsfleet-weekday.timer" in n for n in notes)
    assert (tmp_path / "systemctl.log").read_text(encoding="utf-8").splitlines() == ["--user show-environment"]


def test_now_is_not_needed_for_parsing() -> None:
    # parse_cron does not depend on the current date (tests above pass fixed starts)
    assert parse_cron("0 7 * * 1-5").next_after(datetime(2030, 1, 4, 8, 0, tzinfo=UTC)) == datetime(
        2030, 1, 7, 7, 0, tzinfo=UTC
    )
