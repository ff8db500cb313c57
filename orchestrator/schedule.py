"""Scheduled runs: a weekly audit, a morning activation pass … stored in one small file and installed as a
systemd user timer, a crontab entry, or (for a Windows controller) printed as a ``schtasks`` line.

``$XDG_CONFIG_HOME/kmsfleet/schedules.yml`` (default ``~/.config/kmsfleet/schedules.yml``) is the single
source of truth: ``schedule list``/``run``/``remove`` read it; the timer or crontab entry only says *when* and
runs ``kmsfleet schedule run NAME``, which reads the rest from the file.

Cron expressions have the usual five fields (minute hour day-of-month month day-of-week) with ``*``, lists,
ranges, steps and names (jan…dec, sun…sat; 0 and 7 are Sunday), or a macro (@hourly, @daily, @weekly,
@monthly, @yearly). As in cron, when both day-of-month and day-of-week are restricted a day matching either
one counts. ``to_on_calendar`` converts to systemd ``OnCalendar=`` lines (two lines for that either-day case).

The backends run ``crontab`` and ``systemctl`` found on PATH (or given explicitly), so tests substitute fake
executables and a temporary XDG directory and never touch the real user's crontab or systemd.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml

from orchestrator.errors import InputError, KmsfleetError, Location
from orchestrator.redact import MASK, mask_url, url_has_password
from orchestrator.userdirs import config_base, config_dir, state_dir

# ============================================================================================ cron expressions

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
CRON_HINT = 'five fields: minute hour day-of-month month day-of-week, e.g. "0 7 * * 1-5" (07:00 Monday to Friday)'


@dataclass(frozen=True)
class _FieldSpec:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    name_base: int = 0  # value of names[0]


_FIELDS = (
    _FieldSpec("minute", 0, 59),
    _FieldSpec("hour", 0, 23),
    _FieldSpec("day of month", 1, 31),
    _FieldSpec("month", 1, 12, MONTHS, 1),
    _FieldSpec("day of week", 0, 7, DAYS, 0),
)


class CronError(InputError):
    """A cron expression that cannot be used."""


@dataclass(frozen=True)
class CronField:
    text: str
    values: frozenset[int]
    star: bool  # written starting with "*": unrestricted for the day-of-month/day-of-week rule
    step: int | None = None  # "*/n": every n from the lowest value

    def sorted(self) -> list[int]:
        return sorted(self.values)


def _value(text: str, spec: _FieldSpec, index: int, expr: str) -> int:
    word = text.lower()
    if spec.names and word in spec.names:
        return spec.names.index(word) + spec.name_base
    if not word.isdigit():
        names = f" or a name ({', '.join(spec.names)})" if spec.names else ""
        raise CronError(f"cron {expr!r}: field {index} ({spec.name}) has {text!r}, not a number{names}", hint=CRON_HINT)
    number = int(word)
    if not spec.low <= number <= spec.high:
        raise CronError(
            f"cron {expr!r}: field {index} ({spec.name}): {number} is out of range {spec.low}-{spec.high}",
            hint=CRON_HINT,
        )
    return number


def _parse_field(text: str, spec: _FieldSpec, index: int, expr: str) -> CronField:
    values: set[int] = set()
    only_step: int | None = None
    for item in text.split(","):
        if not item:
            raise CronError(f"cron {expr!r}: field {index} ({spec.name}) has an empty list item", hint=CRON_HINT)
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(
                    f"cron {expr!r}: field {index} ({spec.name}): step {step_text!r} must be a whole number above 0",
                    hint=CRON_HINT,
                )
            step = int(step_text)
            if step > spec.high - spec.low + 1:
                raise CronError(
                    f"cron {expr!r}: field {index} ({spec.name}): step {step} is larger than the field's range "
                    f"{spec.low}-{spec.high}",
                    hint=CRON_HINT,
                )
        if base == "*":
            low, high = spec.low, spec.high
            if spec.name == "day of week":
                high = 6
            if slash and text == item:
                only_step = step
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = _value(first, spec, index, expr), _value(last, spec, index, expr)
            if high < low:
                raise CronError(
                    f"cron {expr!r}: field {index} ({spec.name}): range {base} runs backwards", hint=CRON_HINT
                )
        else:
            low = _value(base, spec, index, expr)
            high = spec.high if slash else low  # "5/15" means 5-max/15, as in Vixie cron
            if slash and spec.name == "day of week":
                high = 6
        values.update(range(low, high + 1, step))
    if spec.name == "day of week" and 7 in values:
        values.discard(7)
        values.add(0)
    return CronField(text, frozenset(values), star=text.startswith("*"), step=only_step)


@dataclass(frozen=True)
class CronExpr:
    """A parsed, validated five-field cron expression."""

    text: str
    minute: CronField
    hour: CronField
    dom: CronField
    month: CronField
    dow: CronField

    @property
    def fields(self) -> tuple[CronField, ...]:
        return (self.minute, self.hour, self.dom, self.month, self.dow)

    def _day_matches(self, day: datetime) -> bool:
        if day.month not in self.month.values:
            return False
        dom_ok = day.day in self.dom.values
        dow_ok = (day.isoweekday() % 7) in self.dow.values
        if self.dom.star or self.dow.star:  # Vixie cron: a field written with * does not widen the other
            return dom_ok and dow_ok
        return dom_ok or dow_ok  # both restricted: either kind of day will do

    def matches(self, when: datetime) -> bool:
        return when.minute in self.minute.values and when.hour in self.hour.values and self._day_matches(when)

    def next_after(self, when: datetime) -> datetime | None:
        """The first time strictly after ``when`` (same time zone, whole minutes) the expression fires; None
        when it never fires within ~28 years (e.g. 31 February)."""
        start = when.replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = start.replace(hour=0, minute=0)
        hours = self.hour.sorted()
        minutes = self.minute.sorted()
        for _ in range(366 * 28):
            if self._day_matches(day):
                for h in hours:
                    for m in minutes:
                        candidate = day.replace(hour=h, minute=m)
                        if candidate >= start:
                            return candidate
            day = (day + timedelta(days=1)).replace(hour=0, minute=0)
        return None

    def next_times(self, when: datetime, count: int) -> list[datetime]:
        out: list[datetime] = []
        current: datetime | None = when
        while current is not None and len(out) < count:
            current = self.next_after(current)
            if current is not None:
                out.append(current)
        return out


def parse_cron(text: str) -> CronExpr:
    """Parse and validate a cron expression; ``CronError`` (an ``InputError``, exit 4) says what is wrong."""
    raw = " ".join(str(text).split())
    if not raw:
        raise CronError("the cron expression is empty", hint=CRON_HINT)
    expanded = MACROS.get(raw.lower(), raw)
    if expanded.startswith("@"):
        raise CronError(f"unknown cron macro {raw!r}", hint="one of: " + ", ".join(MACROS))
    parts = expanded.split(" ")
    if len(parts) != 5:
        raise CronError(f"cron {raw!r} has {len(parts)} field(s), not 5", hint=CRON_HINT)
    parsed = [_parse_field(p, spec, i, raw) for i, (p, spec) in enumerate(zip(parts, _FIELDS, strict=True), 1)]
    expr = CronExpr(raw, *parsed)
    if expr.next_after(datetime(2000, 1, 1)) is None:
        raise CronError(f"cron {raw!r} never fires (no such date)", hint=CRON_HINT)
    return expr


# ---------------------------------------------------------------------------------------- systemd OnCalendar

_SYSTEMD_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _runs(values: Sequence[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for v in values:
        if out and v == out[-1][1] + 1:
            out[-1] = (out[-1][0], v)
        else:
            out.append((v, v))
    return out


def _calendar_numbers(f: CronField, low: int) -> str:
    if f.star and (f.step is None or f.step == 1):
        return "*"
    if f.step is not None:
        return f"{low:02d}/{f.step}"
    parts: list[str] = []
    for a, b in _runs(f.sorted()):
        if b - a >= 2:
            parts.append(f"{a:02d}..{b:02d}")
        else:
            parts.extend(f"{v:02d}" for v in range(a, b + 1))
    return ",".join(parts)


def _calendar_days(f: CronField) -> str:
    # cron: 0 = Sunday; systemd lists Monday first, so Sunday (0) becomes position 6
    positions = sorted((v - 1) % 7 for v in f.values)
    parts: list[str] = []
    for a, b in _runs(positions):
        if b - a >= 2:
            parts.append(f"{_SYSTEMD_DAYS[a]}..{_SYSTEMD_DAYS[b]}")
        else:
            parts.extend(_SYSTEMD_DAYS[v] for v in range(a, b + 1))
    return ",".join(parts)


def to_on_calendar(expr: CronExpr | str) -> list[str]:
    """systemd ``OnCalendar=`` values equivalent to the cron expression (one, or two when both day fields
    are restricted: cron fires on a day matching *either*, systemd needs both in one line)."""
    cron = parse_cron(expr) if isinstance(expr, str) else expr
    minute = _calendar_numbers(cron.minute, 0)
    hour = _calendar_numbers(cron.hour, 0)
    dom = _calendar_numbers(cron.dom, 1)
    month = _calendar_numbers(cron.month, 1)
    time_part = f"{hour}:{minute}:00"
    days = _calendar_days(cron.dow)
    if cron.dom.star or cron.dow.star:
        prefix = "" if len(cron.dow.values) == 7 else days + " "
        return [f"{prefix}*-{month}-{dom} {time_part}"]
    return [f"{days} *-{month}-* {time_part}", f"*-{month}-{dom} {time_part}"]


# ---------------------------------------------------------------------------------------- Windows schtasks

_SCHTASKS_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_SCHTASKS_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
MAX_SCHTASKS_LINES = 6


def windows_quote(arg: str) -> str:
    """One argument for a Windows command line (CommandLineToArgvW rules)."""
    if arg and not re.search(r'[\s"]', arg):
        return arg
    out = ['"']
    backslashes = 0
    for ch in arg:
        if ch == "\\":
            backslashes += 1
            continue
        if ch == '"':
            out.append("\\" * (backslashes * 2 + 1) + '"')
        else:
            out.append("\\" * backslashes + ch)
        backslashes = 0
    out.append("\\" * (backslashes * 2) + '"')
    return "".join(out)


def schtasks_lines(name: str, expr: CronExpr | str, command: Sequence[str]) -> tuple[list[str], str | None]:
    """``schtasks /Create`` lines doing what the cron expression does, running ``command`` on a Windows
    controller; ([], reason) when Task Scheduler's simple triggers cannot express it."""
    cron = parse_cron(expr) if isinstance(expr, str) else expr
    task_run = " ".join(windows_quote(a) for a in command).replace('"', '\\"')
    base = f'schtasks /Create /TN "kmsfleet\\{name}" /TR "{task_run}" /F'
    minutes, hours = cron.minute.sorted(), cron.hour.sorted()
    dom_any = cron.dom.star and cron.dom.step is None
    month_any = cron.month.star and cron.month.step is None
    dow_any = cron.dow.star and cron.dow.step is None
    if dom_any and month_any and dow_any:
        if cron.minute.step and cron.hour.star and cron.hour.step is None and 60 % cron.minute.step == 0:
            return [f"{base} /SC MINUTE /MO {cron.minute.step}"], None
        if len(minutes) == 1 and cron.hour.star and (cron.hour.step or 1) in (1, 2, 3, 4, 6, 8, 12):
            return [f"{base} /SC HOURLY /MO {cron.hour.step or 1} /ST 00:{minutes[0]:02d}"], None
    times = sorted(h * 60 + m for h in hours for m in minutes)
    gaps = {b - a for a, b in itertools.pairwise(times)}
    repeat = ""
    if len(gaps) == 1:  # evenly spaced start times: one trigger repeating every gap minutes
        gap = gaps.pop()
        repeat = f" /RI {gap} /DU {(times[-1] - times[0] + 1) // 60:02d}:{(times[-1] - times[0] + 1) % 60:02d}"
        times = times[:1]
    if len(times) > MAX_SCHTASKS_LINES:
        return [], f"{len(times)} start times a day: use Task Scheduler's trigger editor"
    if dom_any and month_any:
        if dow_any:
            schedule = "/SC DAILY"
        else:
            schedule = "/SC WEEKLY /D " + ",".join(_SCHTASKS_DAYS[d] for d in sorted(cron.dow.values))
    elif not dow_any:
        return [], "both a day of the month (or month) and a day of the week: use Task Scheduler's trigger editor"
    else:
        schedule = "/SC MONTHLY /D " + ",".join(str(d) for d in cron.dom.sorted())
        if not month_any:
            schedule += " /M " + ",".join(_SCHTASKS_MONTHS[m - 1] for m in cron.month.sorted())
        if dom_any:
            return [], "every day of some months only: use Task Scheduler's trigger editor"
    lines = []
    for i, start in enumerate(times):
        task = base if len(times) == 1 else base.replace(f'"kmsfleet\\{name}"', f'"kmsfleet\\{name}-{i + 1}"')
        lines.append(f"{task} {schedule} /ST {start // 60:02d}:{start % 60:02d}{repeat}")
    return lines, None


# ============================================================================================ stored schedules

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
FILE_VERSION = 1
BackendName = Literal["systemd", "cron", "none"]


class ScheduleError(KmsfleetError):
    """A scheduler backend (crontab, systemctl) failed."""


def schedules_path() -> Path:
    return config_dir() / "schedules.yml"


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise InputError(
            f"schedule name {name!r} is not allowed",
            hint="use letters, digits, '-' and '_' (up to 64), starting with a letter or digit, e.g. weekly-audit",
        )
    return name


@dataclass(frozen=True)
class Schedule:
    name: str
    playbook: str
    inventory: tuple[str, ...]
    cron: str
    check: bool = False
    limit: str | None = None
    db: str | None = None
    extra_vars: tuple[str, ...] = ()
    workdir: str = ""
    backend: BackendName = "none"
    created: str = ""

    def run_args(self) -> list[str]:
        """The ``kmsfleet`` arguments that do what this schedule does (for schtasks and for people)."""
        args = ["run", self.playbook]
        for inv in self.inventory:
            args += ["-i", inv]
        if self.check:
            args.append("--check")
        if self.limit:
            args += ["--limit", self.limit]
        for ev in self.extra_vars:
            args += ["-e", ev]
        if self.db:
            args += ["--db", self.db]
        return args

    def shown_args(self) -> list[str]:
        """``run_args`` as shown to people (``schedule list``, the schtasks line): a database password masked."""
        shown = []
        for arg in self.run_args():
            key, eq, _ = arg.partition("=")
            if eq and key.isidentifier() and _SECRET_VAR.search(key):  # stored before secrets were refused
                shown.append(f"{key}={MASK}")
            else:
                shown.append(mask_url(arg) if "://" in arg else arg)
        return shown

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "playbook": self.playbook,
            "inventory": list(self.inventory),
            "cron": self.cron,
            "check": self.check,
            "limit": self.limit,
            "db": self.db,
            "extra_vars": list(self.extra_vars),
            "workdir": self.workdir,
            "backend": self.backend,
            "created": self.created,
        }
        return data


def _schedule_from(name: str, data: Any, path: Path) -> Schedule:
    if not isinstance(data, Mapping):
        raise InputError(f"schedule {name!r} must be a mapping", Location(str(path)))
    try:
        inventory = data.get("inventory") or []
        if isinstance(inventory, str):
            inventory = [inventory]
        backend = str(data.get("backend") or "none")
        if backend not in ("systemd", "cron", "none"):
            backend = "none"
        return Schedule(
            name=check_name(str(name)),
            playbook=str(data["playbook"]),
            inventory=tuple(str(i) for i in inventory),
            cron=str(data["cron"]),
            check=bool(data.get("check", False)),
            limit=str(data["limit"]) if data.get("limit") else None,
            db=str(data["db"]) if data.get("db") else None,
            extra_vars=tuple(str(e) for e in data.get("extra_vars") or ()),
            workdir=str(data.get("workdir") or ""),
            backend=backend,  # type: ignore[arg-type]
            created=str(data.get("created") or ""),
        )
    except KeyError as exc:
        raise InputError(f"schedule {name!r} has no {exc.args[0]!r}", Location(str(path))) from None


class ScheduleFile:
    """``schedules.yml``: read, and changed under a lock (two ``schedule add`` at once both land)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or schedules_path()

    def load(self) -> dict[str, Schedule]:
        if not self.path.exists():
            return {}
        from orchestrator.yamlsource import load_yaml_file

        data = load_yaml_file(self.path)
        if data is None:
            return {}
        if not isinstance(data, Mapping) or not isinstance(data.get("schedules", {}) or {}, Mapping):
            raise InputError("expected 'schedules:' with one entry per schedule name", Location(str(self.path)))
        entries = data.get("schedules") or {}
        return {str(name): _schedule_from(str(name), value, self.path) for name, value in entries.items()}

    def get(self, name: str) -> Schedule:
        schedules = self.load()
        if name not in schedules:
            known = ", ".join(sorted(schedules)) or "none yet"
            raise InputError(
                f"no schedule named {name!r}",
                hint=f"schedules: {known} (kmsfleet schedule list; add one with kmsfleet schedule add)",
            )
        return schedules[name]

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _save(self, schedules: Mapping[str, Schedule]) -> None:
        body = {
            "version": FILE_VERSION,
            "schedules": {name: schedules[name].to_data() for name in sorted(schedules)},
        }
        text = (
            "# kmsfleet schedules (kmsfleet schedule add/list/remove/run). The timers and crontab entries only say\n"
            "# when; everything else is read from here.\n" + yaml.safe_dump(body, sort_keys=False, allow_unicode=True)
        )
        fd, tmp = tempfile.mkstemp(prefix=".schedules-", dir=str(self.path.parent))
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.chmod(tmp, 0o600)  # extra vars may hold things people would rather keep to themselves
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put(self, schedule: Schedule, *, replace_existing: bool = False) -> None:
        with self._locked():
            schedules = self.load()
            if schedule.name in schedules and not replace_existing:
                raise InputError(
                    f"a schedule named {schedule.name!r} exists already",
                    hint="choose another name, add --replace, or kmsfleet schedule remove it first",
                )
            schedules[schedule.name] = schedule
            self._save(schedules)

    def delete(self, name: str) -> Schedule:
        with self._locked():
            schedules = self.load()
            if name not in schedules:
                known = ", ".join(sorted(schedules)) or "none yet"
                raise InputError(f"no schedule named {name!r}", hint=f"schedules: {known} (kmsfleet schedule list)")
            removed = schedules.pop(name)
            self._save(schedules)
            return removed


# ============================================================================================ backends


def kmsfleet_command() -> list[str]:
    """How a timer or cron runs this kmsfleet: this interpreter with ``-m orchestrator`` (no PATH needed)."""
    return [sys.executable, "-m", "orchestrator"]


def schedule_run_command(name: str) -> list[str]:
    return [*kmsfleet_command(), "schedule", "run", name]


def _environment() -> dict[str, str]:
    """Variables a scheduled run needs to find the same schedules file and history as ``schedule add`` did. A
    ``KMSFLEET_DB`` URL carrying a password is left out (unit files and crontab lines are readable): ``schedule
    add`` keeps it in the schedule itself, in the 0600 schedules file (``db_for_schedule``)."""
    keep = ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "KMSFLEET_DB", "KMSFLEET_LANG")
    return {k: os.environ[k] for k in keep if os.environ.get(k) and not url_has_password(os.environ[k])}


def db_for_schedule(db: str | None) -> str | None:
    """The database a schedule records: ``--db`` as given, else a ``KMSFLEET_DB`` URL with a password (which
    ``_environment`` keeps out of the scheduler's files)."""
    if db:
        return db
    env = os.environ.get("KMSFLEET_DB", "")
    return env if url_has_password(env) else None


#: Variables a schedule refuses inline: they would be stored in schedules.yml and shown on every command line.
_SECRET_VAR = re.compile(r"(password|passwd|(^|_)pass$|secret|token|credential|api_?key)", re.IGNORECASE)


def refuse_secret_vars(extra_vars: Mapping[str, Any], given: str) -> None:
    """A schedule never stores a secret given with ``-e``: it points to KMSFLEET_PASSWORD or a credentials file."""
    for key, value in extra_vars.items():
        if isinstance(key, str) and _SECRET_VAR.search(key) and value not in (None, "") and "{{" not in str(value):
            raise InputError(
                f"-e {key}=…: a schedule does not store secrets (schedules.yml, the timer's command line and "
                "`kmsfleet schedule list` would all show it)",
                Location(given[:40] if key not in given else f"-e {key}"),
                hint="give the scheduler KMSFLEET_PASSWORD (systemd: a 0600 EnvironmentFile= drop-in, cron: a "
                "0600 file it sources), or keep the password in a 0600 credentials file read with "
                f'-e \'{key}={{{{ lookup("file", "/path/to/credentials") }}}}\'',
            )


def _run(args: Sequence[str], *, stdin: str | None = None, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            list(args), input=stdin, capture_output=True, text=True, timeout=timeout, check=False, env=os.environ.copy()
        )
    except FileNotFoundError:
        raise ScheduleError(f"{args[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise ScheduleError(f"{' '.join(args[:3])} did not finish within {timeout:.0f} s") from None


class Backend(Protocol):
    name: BackendName

    def install(self, schedule: Schedule) -> list[str]:
        """Install (or replace) the schedule; returns lines telling the user what was done."""
        ...

    def uninstall(self, name: str) -> list[str]: ...

    def installed(self) -> set[str]: ...


class NoBackend:
    name: BackendName = "none"

    def install(self, schedule: Schedule) -> list[str]:
        return []

    def uninstall(self, name: str) -> list[str]:
        return []

    def installed(self) -> set[str]:
        return set()


CRON_MARKER = "# kmsfleet-schedule:"


class CronBackend:
    """A crontab entry per schedule, after a marker comment line ``# kmsfleet-schedule: NAME``."""

    name: BackendName = "cron"

    def __init__(self, crontab: str = "crontab", log_dir: Path | None = None) -> None:
        self.crontab = crontab
        self.log_dir = log_dir or state_dir()

    def read(self) -> str:
        proc = _run([self.crontab, "-l"])
        if proc.returncode == 0:
            return proc.stdout
        if "no crontab" in (proc.stderr + proc.stdout).lower():
            return ""
        raise ScheduleError(f"crontab -l failed: {(proc.stderr or proc.stdout).strip() or proc.returncode}")

    def write(self, text: str) -> None:
        proc = _run([self.crontab, "-"], stdin=text)
        if proc.returncode != 0:
            raise ScheduleError(f"crontab - failed: {(proc.stderr or proc.stdout).strip() or proc.returncode}")

    @staticmethod
    def _without(text: str, name: str) -> tuple[list[str], bool]:
        lines = text.splitlines()
        out: list[str] = []
        removed = False
        skip_next = False
        for line in lines:
            if skip_next:
                skip_next = False
                if not line.lstrip().startswith("#"):
                    continue
            if line.strip().startswith(CRON_MARKER) and _marker_name(line) == name:
                removed = True
                skip_next = True
                continue
            out.append(line)
        return out, removed

    def entry(self, schedule: Schedule) -> list[str]:
        cron = parse_cron(schedule.cron)
        expanded = MACROS.get(cron.text.lower(), cron.text)
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in _environment().items())
        log = self.log_dir / f"schedule-{schedule.name}.log"
        command = " ".join(shlex.quote(a) for a in schedule_run_command(schedule.name))
        workdir = shlex.quote(schedule.workdir or str(Path.home()))
        line = f"{expanded} cd {workdir} && {env + ' ' if env else ''}{command} >> {shlex.quote(str(log))} 2>&1"
        line = line.replace("%", "\\%")  # cron turns a bare % into a newline
        return [f"{CRON_MARKER} {schedule.name} (managed by kmsfleet: kmsfleet schedule remove {schedule.name})", line]

    def install(self, schedule: Schedule) -> list[str]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        lines, _ = self._without(self.read(), schedule.name)
        lines += self.entry(schedule)
        self.write("\n".join(lines) + "\n")
        return [f"crontab entry added (output goes to {self.log_dir / f'schedule-{schedule.name}.log'})"]

    def uninstall(self, name: str) -> list[str]:
        lines, removed = self._without(self.read(), name)
        if not removed:
            return []
        self.write("\n".join(lines) + "\n" if lines else "")
        return ["crontab entry removed"]

    def installed(self) -> set[str]:
        return {
            n for line in self.read().splitlines() if line.strip().startswith(CRON_MARKER) and (n := _marker_name(line))
        }


def _marker_name(line: str) -> str:
    rest = line.strip()[len(CRON_MARKER) :].strip()
    return rest.split()[0] if rest else ""


def _systemd_quote(arg: str) -> str:
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if re.search(r"[\s\"'\\;]", escaped) or not escaped:
        return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return escaped


class SystemdBackend:
    """A user service + timer in ``$XDG_CONFIG_HOME/systemd/user``; enabled through ``systemctl --user`` only
    when the user's systemd instance answers (``manage``)."""

    name: BackendName = "systemd"

    def __init__(self, unit_dir: Path | None = None, systemctl: str = "systemctl", manage: bool | None = None) -> None:
        self.unit_dir = unit_dir or config_base() / "systemd" / "user"
        self.systemctl = systemctl
        self._manage = manage

    @property
    def manage(self) -> bool:
        if self._manage is None:
            self._manage = user_systemd_available(self.systemctl)
        return self._manage

    @staticmethod
    def unit(name: str) -> str:
        return f"kmsfleet-{name}"

    def files(self, name: str) -> tuple[Path, Path]:
        return self.unit_dir / f"{self.unit(name)}.service", self.unit_dir / f"{self.unit(name)}.timer"

    def unit_texts(self, schedule: Schedule) -> tuple[str, str]:
        calendars = to_on_calendar(schedule.cron)
        inventory = ", ".join(schedule.inventory)
        env_lines = "".join(f"Environment={_systemd_quote(f'{k}={v}')}\n" for k, v in _environment().items())
        command = " ".join(_systemd_quote(a) for a in schedule_run_command(schedule.name))
        service = (
            "# Managed by kmsfleet (kmsfleet schedule add/remove); the schedule itself is in schedules.yml.\n"
            "[Unit]\n"
            f"Description=kmsfleet schedule {schedule.name}: {schedule.playbook} on {inventory}\n\n"
            "[Service]\n"
            "Type=oneshot\n"
            f"WorkingDirectory={_systemd_quote(schedule.workdir or str(Path.home()))}\n"
            f"{env_lines}"
            f"ExecStart={command}\n"
            # the run's exit code says how the PCs are (2 failed, 3 unreachable …), not that the job broke
            "SuccessExitStatus=2 3 5\n"
        )
        timer = (
            "# Managed by kmsfleet (kmsfleet schedule add/remove).\n"
            "[Unit]\n"
            f"Description=kmsfleet schedule {schedule.name} (cron: {schedule.cron})\n\n"
            "[Timer]\n" + "".join(f"OnCalendar={c}\n" for c in calendars) + "Persistent=true\n\n"
            "[Install]\n"
            "WantedBy=timers.target\n"
        )
        return service, timer

    def _systemctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run([self.systemctl, "--user", *args])

    def install(self, schedule: Schedule) -> list[str]:
        service, timer = self.unit_texts(schedule)
        service_path, timer_path = self.files(schedule.name)
        self.unit_dir.mkdir(parents=True, exist_ok=True)
        for path, text in ((service_path, service), (timer_path, timer)):
            _atomic_write(path, text)
        notes = [f"systemd user timer written: {timer_path}"]
        unit = f"{self.unit(schedule.name)}.timer"
        if self.manage:
            for args in (("daemon-reload",), ("enable", "--now", unit)):
                proc = self._systemctl(*args)
                if proc.returncode != 0:
                    raise ScheduleError(
                        f"systemctl --user {' '.join(args)} failed: {(proc.stderr or proc.stdout).strip()}"
                    )
            notes.append(f"enabled: systemctl --user list-timers {unit}")
        else:
            notes.append(
                f"the systemd user instance is not running here: enable it later with "
                f"systemctl --user daemon-reload && systemctl --user enable --now {unit} "
                "(and loginctl enable-linger so it runs while nobody is logged in)"
            )
        return notes

    def uninstall(self, name: str) -> list[str]:
        service_path, timer_path = self.files(name)
        if not (service_path.exists() or timer_path.exists()):
            return []
        unit = f"{self.unit(name)}.timer"
        if self.manage:
            self._systemctl("disable", "--now", unit)  # already disabled is fine
        for path in (timer_path, service_path):
            path.unlink(missing_ok=True)
        if self.manage:
            self._systemctl("daemon-reload")
        return [f"systemd user timer removed: {timer_path}"]

    def installed(self) -> set[str]:
        if not self.unit_dir.is_dir():
            return set()
        return {p.name[len("kmsfleet-") : -len(".timer")] for p in self.unit_dir.glob("kmsfleet-*.timer")}


def _umask() -> int:
    current = os.umask(0o077)
    os.umask(current)
    return current


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644 & ~_umask())  # readable as unit files are, never wider than the user's umask
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def user_systemd_available(systemctl: str = "systemctl") -> bool:
    """True when ``systemctl --user`` can talk to this user's systemd instance."""
    if shutil.which(systemctl) is None:
        return False
    try:
        proc = subprocess.run(
            [systemctl, "--user", "show-environment"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def choose_backend(wanted: str = "auto") -> Backend:
    """``systemd`` when the user's systemd instance answers, else ``cron`` when ``crontab`` exists, else
    systemd unit files only (when systemctl exists), else ``none``. ``wanted`` forces one."""
    wanted = wanted.lower()
    if wanted == "systemd":
        return SystemdBackend()
    if wanted == "cron":
        if shutil.which("crontab") is None:
            raise InputError("--backend cron: crontab is not installed here")
        return CronBackend()
    if wanted == "none":
        return NoBackend()
    if wanted != "auto":
        raise InputError(f"unknown --backend {wanted!r}", hint="use auto, systemd, cron or none")
    if user_systemd_available():
        return SystemdBackend(manage=True)
    if shutil.which("crontab") is not None:
        return CronBackend()
    if shutil.which("systemctl") is not None:
        return SystemdBackend(manage=False)
    return NoBackend()


def backend_named(name: str) -> Backend:
    """The backend a stored schedule was installed with (for ``list`` and ``remove``)."""
    if name == "systemd":
        return SystemdBackend()
    if name == "cron":
        return CronBackend()
    return NoBackend()


def with_backend(schedule: Schedule, backend: Backend) -> Schedule:
    return replace(schedule, backend=backend.name)


__all__ = [
    "CronBackend",
    "CronError",
    "CronExpr",
    "NoBackend",
    "Schedule",
    "ScheduleError",
    "ScheduleFile",
    "SystemdBackend",
    "choose_backend",
    "config_dir",
    "parse_cron",
    "schedule_run_command",
    "schedules_path",
    "schtasks_lines",
    "to_on_calendar",
    "windows_quote",
]
