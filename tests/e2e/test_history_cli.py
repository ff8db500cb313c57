"""`kmsfleet history`, `show`, `report` and `due` as real subprocesses on a real SQLite history written by
``HistoryStore`` (the lab-driven versions are in test_followup.py)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import subprocess
import sys
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from defusedxml import ElementTree

from orchestrator.results.models import (
    FailureKind,
    HostResult,
    HostStatus,
    HostTaskResult,
    LicenceRecord,
    RunInfo,
    RunResult,
    TaskStatus,
    utcnow,
)
from orchestrator.results.store import HistoryStore

KMSFLEET = Path(sys.executable).parent / "kmsfleet"


def kmsfleet(*args: str, home: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMSFLEET_")}
    env.update(
        {
            "COLUMNS": "220",
            "NO_COLOR": "1",
            "LANG": "C.UTF-8",
            "PYTHONIOENCODING": "utf-8",
            "HOME": str(home),
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_CONFIG_HOME": str(home / "config"),
        }
    )
    proc = subprocess.run([str(KMSFLEET), *args], capture_output=True, env=env, cwd=cwd, timeout=120, check=False)
    assert b"Traceback" not in proc.stdout + proc.stderr, proc.stderr.decode()
    return proc


def text(proc: subprocess.CompletedProcess[bytes]) -> str:
    return proc.stdout.decode("utf-8")


def licence(
    product: str, *, expires_in: float | None = None, days_left: int | None = None, **kw: object
) -> LicenceRecord:
    now = utcnow()
    return LicenceRecord(
        product=product,
        name=f"{product} licence",
        channel="Volume:GVLK",
        status=str(kw.pop("status", "Licensed")),
        license_status=1,
        days_left=days_left,
        expires=now + timedelta(days=expires_in) if expires_in is not None else None,
        **kw,  # type: ignore[arg-type]
    )


def host(name: str, status: HostStatus, *licences: LicenceRecord, read_days_ago: float = 0.0) -> HostResult:
    finished = utcnow() - timedelta(days=read_days_ago)
    tasks: tuple[HostTaskResult, ...]
    if status is HostStatus.UNREACHABLE:
        tasks = (
            HostTaskResult(
                host=name,
                play="audit",
                task="Read licences",
                module="wmi_query",
                status=TaskStatus.UNREACHABLE,
                msg="connection refused",
                failure=FailureKind.UNREACHABLE,
            ),
        )
    else:
        tasks = (
            HostTaskResult(
                host=name,
                play="audit",
                task="Read licences",
                module="wmi_query",
                status=TaskStatus.OK,
                licences=licences,
            ),
        )
    return HostResult(
        host=name,
        status=status,
        tasks=tasks,
        licences=licences,
        groups=("all", "room101"),
        address=f"10.0.0.{name[-1:]}",
        started=finished - timedelta(seconds=2),
        finished=finished,
    )


@pytest.fixture
def history(tmp_path: Path) -> tuple[Path, list[str]]:
    """Two audits of room101: the first three days ago, the second today (pcA renewed, pcE back on)."""
    db = tmp_path / "history.db"
    now = utcnow()
    first = RunResult(
        RunInfo(
            id="a1b2c3d4e5f6", playbook="/srv/audit.yml", inventory=("school.yml",), started=now - timedelta(days=3)
        ),
        (
            host("pcA", HostStatus.OK, licence("windows", expires_in=5, days_left=8), read_days_ago=3),
            host("pcB", HostStatus.OK, licence("office", days_left=10), read_days_ago=3),  # ≈ 7 days from now
            host("pcC", HostStatus.OK, licence("windows", expires_in=100, days_left=103), read_days_ago=3),
            host("pcD", HostStatus.OK, licence("office", days_left=None), read_days_ago=3),  # permanent
            host("pcE", HostStatus.UNREACHABLE, read_days_ago=3),
        ),
        finished=now - timedelta(days=3),
    )
    second = RunResult(
        RunInfo(id="f6e5d4c3b2a1", playbook="/srv/audit.yml", inventory=("school.yml",), limit="@unreachable"),
        (
            host("pcA", HostStatus.CHANGED, licence("windows", expires_in=180, days_left=180)),
            host("pcE", HostStatus.OK, licence("windows", expires_in=-2, days_left=0, status="OOTGrace")),
        ),
    )
    store = HistoryStore(db)
    try:
        store.save(first)
        store.save(second)
    finally:
        store.close()
    return db, [second.info.id, first.info.id]


def test_history_lists_runs_newest_first(history: tuple[Path, list[str]], tmp_path: Path) -> None:
    db, ids = history
    proc = kmsfleet("history", "--db", str(db), "--json", home=tmp_path)
    assert proc.returncode == 0
    runs = json.loads(proc.stdout)
    assert [r["id"] for r in runs] == ids
    assert [r["hosts"] for r in runs] == [2, 5]
    assert runs[1]["counts"]["unreachable"] == 1 and runs[1]["exit_code"] == 3 and runs[0]["exit_code"] == 0
    table = text(kmsfleet("history", "--db", str(db), home=tmp_path))
    assert all(i in table for i in ids) and "audit.yml" in table and "@unreachable" in table
    assert text(kmsfleet("history", "--db", str(db), "--last", "1", home=tmp_path)).count("audit.yml") == 1


def test_history_without_a_database_says_so_and_creates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "nothing-here.db"
    proc = kmsfleet("history", "--db", str(db), home=tmp_path)
    assert proc.returncode == 0 and "No runs" in text(proc)
    assert not db.exists()
    proc = kmsfleet("show", "last", "--db", str(db), home=tmp_path)
    assert proc.returncode == 4 and b"no history database" in proc.stderr


def test_show_a_run_and_one_pc(history: tuple[Path, list[str]], tmp_path: Path) -> None:
    db, ids = history
    out = text(kmsfleet("show", ids[1][:6], "--db", str(db), home=tmp_path))  # a unique prefix
    assert ids[1] in out
    for name in ("pcA", "pcB", "pcC", "pcD", "pcE"):
        assert name in out
    assert "unreachable" in out
    data = json.loads(kmsfleet("show", "last", "--db", str(db), "--json", home=tmp_path).stdout)
    assert data["run"]["id"] == ids[0] and [h["host"] for h in data["hosts"]] == ["pcA", "pcE"]
    one = json.loads(kmsfleet("show", ids[1], "--host", "pce", "--db", str(db), "--json", home=tmp_path).stdout)
    assert one["host"] == "pcE" and one["status"] == "unreachable" and one["tasks"][0]["failure"] == "unreachable"
    detail = text(kmsfleet("show", ids[1], "--host", "pcE", "--db", str(db), "--lang", "zh-TW", home=tmp_path))
    assert "pcE 上的工作" in detail and "Read licences" in detail and "處理方式" in detail


def test_unknown_run_or_pc_is_exit_4_with_a_hint(history: tuple[Path, list[str]], tmp_path: Path) -> None:
    db, ids = history
    for command in (("show", "0000dead"), ("report", "0000dead", "--format", "json")):
        proc = kmsfleet(*command, "--db", str(db), home=tmp_path)
        err = proc.stderr.decode()
        assert proc.returncode == 4 and proc.stdout == b""
        assert "no run '0000dead'" in err and "recent runs" in err and all(i in err for i in ids)
    proc = kmsfleet("show", ids[0], "--host", "pcZ", "--db", str(db), home=tmp_path)
    assert proc.returncode == 4 and b"pcA, pcE" in proc.stderr


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.mark.parametrize("fmt", ["json", "csv", "junit", "html"])
def test_report_every_format_from_the_stored_run(history: tuple[Path, list[str]], tmp_path: Path, fmt: str) -> None:
    db, ids = history
    run_id = ids[1]
    out = kmsfleet("report", run_id, "--format", fmt, "--db", str(db), home=tmp_path)
    assert out.returncode == 0, out.stderr
    suffix = {"json": "json", "csv": "csv", "junit": "xml", "html": "html"}[fmt]
    target = tmp_path / f"report.{suffix}"
    written = kmsfleet("report", run_id, "--output", str(target), "--db", str(db), home=tmp_path)  # format from name
    assert written.returncode == 0 and target.exists()
    data = target.read_bytes()
    hosts = {"pcA", "pcB", "pcC", "pcD", "pcE"}
    if fmt == "json":
        report = json.loads(data)
        assert report["run"]["id"] == run_id and {h["host"] for h in report["hosts"]} == hosts
        assert json.loads(out.stdout) == report
    elif fmt == "csv":
        assert data.startswith("\ufeff".encode()) and out.stdout == data
        rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
        assert rows[0][0] == "Host" and {r[0] for r in rows[1:]} == hosts
    elif fmt == "junit":
        root = ElementTree.fromstring(data)
        names = {s.get("name", "") for s in root.iter("testsuite")}
        assert all(any(h in n for n in names) for h in hosts)
        assert ElementTree.fromstring(out.stdout) is not None
    else:
        parser = _Collect()
        parser.feed(data.decode("utf-8"))
        body = " ".join(parser.text)
        assert run_id in body and all(h in body for h in hosts)


def test_report_needs_a_format(history: tuple[Path, list[str]], tmp_path: Path) -> None:
    db, _ = history
    proc = kmsfleet("report", "last", "--db", str(db), home=tmp_path)
    assert proc.returncode == 4 and b"--format" in proc.stderr
    proc = kmsfleet("report", "last", "--format", "pdf", "--db", str(db), home=tmp_path)
    assert proc.returncode == 4 and b"unknown report format" in proc.stderr


def test_due_uses_the_latest_state_of_each_pc(history: tuple[Path, list[str]], tmp_path: Path) -> None:
    db, ids = history
    rows = json.loads(kmsfleet("due", "--within", "30d", "--db", str(db), "--json", home=tmp_path).stdout)
    # pcA was due in the first audit but renewed in the second; pcC has 100 days; pcD is permanent
    assert [(r["host"], r["product"]) for r in rows] == [("pcE", "windows"), ("pcB", "office")]
    by_host = {r["host"]: r for r in rows}
    assert by_host["pcE"]["run_id"] == ids[0] and by_host["pcE"]["days_left_now"] <= 0
    assert by_host["pcB"]["run_id"] == ids[1] and by_host["pcB"]["expiry_estimated"] is True
    assert by_host["pcB"]["days_left_now"] == 7  # 10 days left, read 3 days ago
    for window in ("3", "12h", "3d"):
        shown = json.loads(kmsfleet("due", "--within", window, "--db", str(db), "--json", home=tmp_path).stdout)
        assert [r["host"] for r in shown] == ["pcE"]
    assert [
        r["host"] for r in json.loads(kmsfleet("due", "-w", "2w", "--db", str(db), "--json", home=tmp_path).stdout)
    ] == [
        "pcE",
        "pcB",
    ]
    table = text(kmsfleet("due", "--within", "30d", "--db", str(db), "--lang", "zh-TW", home=tmp_path))
    assert "有 2 個授權將在 30 天 內到期" in table and "pcB" in table and "pcE" in table and "pcA" not in table
    proc = kmsfleet("due", "--within", "soon", "--db", str(db), home=tmp_path)
    assert proc.returncode == 4 and b"--within" in proc.stderr


def test_due_lists_a_room_read_together_by_pc_then_product(tmp_path: Path) -> None:
    """Licences read in one run expire microseconds apart: `due` lists them as shown (to the minute), by PC in
    natural order with each PC's products together, not by the microseconds at which they were read."""
    db = tmp_path / "history.db"
    base = (utcnow() + timedelta(days=20)).replace(second=5, microsecond=0)
    hosts = []
    for i, name in enumerate(("pc10", "pc2", "pc1")):  # pc10 read first, expires first (seconds apart)
        records = [
            dataclasses.replace(licence(product), expires=base + timedelta(seconds=3 * i + j), days_left=20)
            for j, product in enumerate(("windows", "office"))
        ]
        hosts.append(host(name, HostStatus.OK, *records))
    run = RunResult(RunInfo(id="d0e1f2a3b4c5", playbook="/srv/audit.yml", inventory=("school.yml",)), tuple(hosts))
    with HistoryStore(db) as store:
        store.save(run)
    rows = json.loads(kmsfleet("due", "--within", "30d", "--db", str(db), "--json", home=tmp_path).stdout)
    assert [(r["host"], r["product"]) for r in rows] == [
        (name, product) for name in ("pc1", "pc2", "pc10") for product in ("office", "windows")
    ]


def test_help_has_examples(tmp_path: Path) -> None:
    proc = kmsfleet("report", "--help", home=tmp_path)
    assert proc.returncode == 0 and "Examples" in text(proc) and "kmsfleet report last" in text(proc)
