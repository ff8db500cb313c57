"""Results that last, end to end: a lab classroom where some PCs are switched off, `kmsfleet` as a real
subprocess with its own history database, and the lab's control API as the ground truth.

Re-running exactly the PCs that were off (--limit @unreachable), history, reports from a stored run, a run
killed with SIGKILL, Wake-on-LAN (the command, MACs from history, the play option) and
--retry-unreachable-for. Magic packets only ever go to the lab's loopback WoL listener (the lab's inventory
sets wol_broadcast/wol_port)."""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from defusedxml import ElementTree

from orchestrator.knowledge import i18n
from orchestrator.lab.addresses import Claim
from orchestrator.lab.control_client import LabControl
from orchestrator.lab.runner import LabThread
from orchestrator.lab.spec import parse_spec
from orchestrator.results.store import HistoryStore

KMSFLEET = Path(sys.executable).parent / "kmsfleet"
PLAYBOOKS = Path(__file__).resolve().parents[1] / "fixtures" / "playbooks"
PLAYBOOK = PLAYBOOKS / "followup.yml"
WAKE_PLAYBOOK = PLAYBOOKS / "followup-wake.yml"
PASSWORD = "Lab-Passw0rd!"
T = TypeVar("T")


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMSFLEET_")}
    env.update(
        {
            "COLUMNS": "200",
            "NO_COLOR": "1",
            "LANG": "C.UTF-8",
            "PYTHONIOENCODING": "utf-8",
            "HOME": str(home),
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_CONFIG_HOME": str(home / "config"),
        }
    )
    return env


def kmsfleet(*args: str | Path, home: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(KMSFLEET), *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=_env(home),
        timeout=timeout,
        check=False,
    )
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    return proc


def start_kmsfleet(*args: str | Path, home: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(KMSFLEET), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        env=_env(home),
    )


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def runs_in(db: Path) -> list[Any]:
    """The runs the history holds right now (oldest first), read while kmsfleet may be writing."""
    if not db.exists():
        return []
    store = HistoryStore(db)
    try:
        return list(reversed(store.runs()))
    finally:
        store.close()


def statuses(report: Path) -> dict[str, str]:
    data = json.loads(report.read_text(encoding="utf-8"))
    return {h["host"]: h["status"] for h in data["hosts"]}


def start_retry_with_two_pcs_off(
    classroom: Callable[..., Any], tmp_path: Path, window: str, every: str
) -> tuple[LabControl, Path, Path, subprocess.Popen[str]]:
    """pc01 on, pc02 and pc03 off; `kmsfleet run --retry-unreachable-for WINDOW --every EVERY` started on them.
    Returns the lab control, the history database, the --report file and the process."""
    lab, ctl = classroom([{"name": "pc01"}, {"name": "pc[02:03]", "power": "off"}])
    db, report = tmp_path / "history.db", tmp_path / "final.json"
    proc = start_kmsfleet(
        "run", PLAYBOOK, "-i", lab.inventory_path, "--db", db, "--report", report,
        "--retry-unreachable-for", window, "--every", every,
        home=tmp_path,
    )  # fmt: skip
    return ctl, db, report, proc


def power_on_pc02_between_passes(ctl: LabControl, db: Path) -> None:
    """During a --retry-unreachable-for run: once the first pass is saved, switch pc02 on and wait for the
    follow-up pass that reaches it."""
    wait_for(lambda: [r for r in runs_in(db) if r.state == "finished"], "the first pass")
    ctl.power("pc02", True)
    wait_for(lambda: [r for r in runs_in(db) if r.limit and r.counts["ok"]], "a pass that reaches pc02")


def power(ctl: LabControl) -> dict[str, str]:
    return {h["name"]: h["power"] for h in ctl.hosts()}


@pytest.fixture
def classroom(lab_block: Claim) -> Iterator[Callable[..., tuple[LabThread, LabControl]]]:
    """``classroom(hosts, **defaults)`` → a started lab (plain HTTP) and its control client."""
    labs: list[LabThread] = []

    def start(hosts: list[dict[str, Any]], **defaults: Any) -> tuple[LabThread, LabControl]:
        room: dict[str, Any] = {
            "room": "room101",
            "subnet": f"{lab_block.prefix}.1",
            "credentials": {"user": "administrator", "password": PASSWORD},
            "hosts": hosts,
        }
        if defaults:
            room["defaults"] = defaults
        lab = LabThread(parse_spec(room), https=False)
        labs.append(lab)
        lab.start(timeout=60)
        return lab, LabControl(lab.control_url)

    try:
        yield start
    finally:
        for lab in labs:
            lab.stop()


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


# ------------------------------------------------------------------------------------------------ tests


def test_rerun_exactly_the_pcs_that_were_off(classroom: Callable[..., Any], tmp_path: Path) -> None:
    lab, ctl = classroom([{"name": "pc[01:05]"}, {"name": "pc[06:07]", "power": "off"}])
    ctl.power("pc03", False)  # and one more switched off through the control API
    off = {name for name, state in power(ctl).items() if state == "off"}
    assert len(off) == 3
    inv, db = lab.inventory_path, tmp_path / "history.db"

    first = kmsfleet("run", PLAYBOOK, "-i", inv, "--db", db, "--report", tmp_path / "first.json", home=tmp_path)
    assert first.returncode == 3, first.stdout + first.stderr
    found = statuses(tmp_path / "first.json")
    assert {h for h, s in found.items() if s == "unreachable"} == off
    assert {h for h, s in found.items() if s == "ok"} == set(power(ctl)) - off

    for name in off:
        ctl.power(name, True)
    again = kmsfleet(
        "run", PLAYBOOK, "-i", inv, "--db", db, "--limit", "@unreachable", "--report", tmp_path / "again.json",
        home=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert statuses(tmp_path / "again.json") == dict.fromkeys(off, "ok")

    listed = json.loads(kmsfleet("history", "--db", db, "--json", home=tmp_path).stdout)
    first_id = json.loads((tmp_path / "first.json").read_text(encoding="utf-8"))["run"]["id"]
    again_id = json.loads((tmp_path / "again.json").read_text(encoding="utf-8"))["run"]["id"]
    assert [r["id"] for r in listed] == [again_id, first_id]
    assert listed[0]["limit"] == "@unreachable" and listed[0]["hosts"] == len(off)
    assert listed[1]["counts"]["unreachable"] == len(off) and listed[1]["exit_code"] == 3
    table = kmsfleet("history", "--db", db, home=tmp_path).stdout
    assert first_id in table and again_id in table

    # every report format, produced later from the stored first run, parses and says what the run found
    for fmt, suffix in (("json", "json"), ("csv", "csv"), ("junit", "xml"), ("html", "html")):
        target = tmp_path / f"stored.{suffix}"
        made = kmsfleet("report", first_id, "--format", fmt, "--output", target, "--db", db, home=tmp_path)
        assert made.returncode == 0, made.stderr
        data = target.read_bytes()
        if fmt == "json":
            assert statuses(target) == found
        elif fmt == "csv":
            assert data.startswith("\ufeff".encode())
            rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
            assert {r["Host"]: r["Status"] for r in rows} == found
        elif fmt == "junit":
            root = ElementTree.fromstring(data)
            failing = {s.get("name", "").rsplit(".", 1)[-1] for s in root.iter("testsuite") if int(s.get("errors", 0))}
            assert failing == off
        else:
            parser = _Text()
            parser.feed(data.decode("utf-8"))
            assert first_id in " ".join(parser.parts) and all(h in " ".join(parser.parts) for h in found)

    # every PC answered by now: a further follow-up selects nothing, runs nothing and records no empty run
    # (so "last" stays the run that did something)
    nothing = kmsfleet("run", PLAYBOOK, "-i", inv, "--db", db, "--limit", "@unreachable", home=tmp_path)
    assert nothing.returncode == 0, nothing.stdout + nothing.stderr
    assert any(i18n.t("recap.no_hosts", lang) in nothing.stdout for lang in ("en", "zh-TW")), nothing.stdout
    listed = json.loads(kmsfleet("history", "--db", db, "--json", home=tmp_path).stdout)
    assert [r["id"] for r in listed] == [again_id, first_id]


def test_due_lists_the_pcs_the_lab_says_expire_soon(classroom: Callable[..., Any], tmp_path: Path) -> None:
    from orchestrator.api import resolve_playbook
    from orchestrator.errors import InputError
    from orchestrator.modules.base import REGISTRY

    try:
        audit = resolve_playbook("audit.yml")
    except InputError:
        pytest.skip("the bundled audit.yml (licensing playbooks) is not there yet")
    if "license_facts" not in REGISTRY.names():
        pytest.skip("the licensing module that records licence state is not there yet")
    lab, ctl = classroom(
        [{"name": "pc01", "days_left": 5}, {"name": "pc02", "days_left": 20}, {"name": "pc[03:04]", "days_left": 170}],
        windows_state="licensed",
    )
    db = tmp_path / "history.db"
    audited = kmsfleet("run", audit, "-i", lab.inventory_path, "--db", db, home=tmp_path)
    assert audited.returncode in (0, 2), audited.stdout + audited.stderr
    truth = {
        h["name"]
        for h in ctl.hosts()
        for p in h["machine"]["products"]
        if p["license_status"] == 1 and p["days_left"] <= 30
    }
    assert truth
    rows = json.loads(kmsfleet("due", "--within", "30d", "--db", db, "--json", home=tmp_path).stdout)
    assert {r["host"] for r in rows} == truth
    lab_days = {(h["name"], p["product"]): p["days_left"] for h in ctl.hosts() for p in h["machine"]["products"]}
    assert all(r["days_left_now"] == lab_days[(r["host"], r["product"])] for r in rows)
    text = kmsfleet("due", "--within", "30d", "--db", db, "--lang", "zh-TW", home=tmp_path).stdout
    assert all(h in text for h in truth) and "到期" in text


def test_a_run_killed_with_sigkill_keeps_the_pcs_that_finished(classroom: Callable[..., Any], tmp_path: Path) -> None:
    lab, _ = classroom([{"name": "pc[01:06]"}], latency_ms=60)
    db = tmp_path / "history.db"
    proc = start_kmsfleet("run", PLAYBOOK, "-i", lab.inventory_path, "--db", db, "--forks", "1", home=tmp_path)
    try:
        recorded = wait_for(
            lambda: [r for r in runs_in(db) if r.hosts - r.counts.get("not_run", 0) >= 2], "two PCs finished"
        )
        assert proc.poll() is None, "the run finished before it could be killed: raise the lab latency"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    run_id = recorded[0].id

    with sqlite3.connect(db) as raw:  # the file is intact …
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    listed = json.loads(kmsfleet("history", "--db", db, "--json", home=tmp_path).stdout)
    assert [r["id"] for r in listed] == [run_id]
    assert listed[0]["state"] == "incomplete" and listed[0]["exit_code"] is None
    assert listed[0]["hosts"] == 6  # every PC is listed from the start (pending until it finishes)
    assert 2 <= 6 - listed[0]["counts"].get("not_run", 0) < 6
    shown = json.loads(kmsfleet("show", run_id, "--db", db, "--json", home=tmp_path).stdout)  # … and readable
    assert len(shown["hosts"]) == listed[0]["hosts"]
    for host in shown["hosts"]:
        if host["status"] == "not_run":  # not reached before the kill
            assert host["tasks"] == [] and "stopped before" in host["msg"]
            continue
        assert host["status"] == "ok"
        assert [t["task"] for t in host["tasks"]][-2:] == ["WinRM answers", "Read the OS over WMI"]
    text = kmsfleet("show", run_id, "--db", db, home=tmp_path).stdout
    assert "stopped without finishing" in text


def test_wake_brings_pcs_up_and_the_run_reaches_them(classroom: Callable[..., Any], tmp_path: Path) -> None:
    lab, ctl = classroom([{"name": "pc01"}, {"name": "pc[02:03]", "power": "off"}])
    inv, db = lab.inventory_path, tmp_path / "history.db"

    woke = kmsfleet("wake", "-i", inv, "--limit", "pc01,pc02", "--wait", "30", "--db", db, home=tmp_path)
    assert woke.returncode == 0, woke.stdout + woke.stderr
    assert "pc01" in woke.stdout and "pc02" in woke.stdout
    assert power(ctl) == {"pc01": "on", "pc02": "on", "pc03": "off"}  # only the PC asked for
    reached = kmsfleet("run", PLAYBOOK, "-i", inv, "--db", db, "--limit", "pc02", home=tmp_path)
    assert reached.returncode == 0, reached.stdout

    # without `mac` in the inventory, the MAC the run just recorded (gather_facts) is used
    data = yaml.safe_load(inv.read_text(encoding="utf-8"))
    for room in data["all"]["children"].values():
        for hostvars in room["hosts"].values():
            del hostvars["mac"]
    no_mac = tmp_path / "no-mac.yml"
    no_mac.write_text(yaml.safe_dump(data), encoding="utf-8")
    ctl.power("pc02", False)
    woke = kmsfleet("wake", "-i", no_mac, "--limit", "pc02,pc03", "--wait", "20", "--db", db, home=tmp_path)
    assert woke.returncode == 3  # pc03 was never reached, so nobody knows its MAC
    assert "No MAC address known for 1 PC: pc03" in woke.stdout
    assert power(ctl) == {"pc01": "on", "pc02": "on", "pc03": "off"}

    # the play option wakes what the play targets before it starts
    woke_by_play = kmsfleet("run", WAKE_PLAYBOOK, "-i", inv, "--db", db, home=tmp_path)
    assert woke_by_play.returncode == 0, woke_by_play.stdout + woke_by_play.stderr
    assert "Already on (2 PCs): pc01, pc02" in woke_by_play.stdout
    assert power(ctl)["pc03"] == "on"


def test_retry_unreachable_until_the_pcs_answer(classroom: Callable[..., Any], tmp_path: Path) -> None:
    started = time.monotonic()
    ctl, db, report, proc = start_retry_with_two_pcs_off(classroom, tmp_path, "90s", "1s")
    try:
        power_on_pc02_between_passes(ctl, db)
        ctl.power("pc03", True)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, output
    assert time.monotonic() - started < 60  # stopped as soon as everyone answered, not at the end of the window
    assert "Still waiting for 2 PCs: pc02, pc03" in output
    assert statuses(report) == {"pc01": "ok", "pc02": "ok", "pc03": "ok"}
    runs = runs_in(db)
    assert len(runs) >= 3 and runs[0].limit is None
    for before, after in itertools.pairwise(runs):
        assert after.limit == f"@unreachable:{before.id}"  # each pass names the pass it follows
    assert json.loads(report.read_text(encoding="utf-8"))["run"]["id"] == runs[0].id


def test_retry_gives_up_when_the_window_closes(classroom: Callable[..., Any], tmp_path: Path) -> None:
    lab, _ = classroom([{"name": "pc01"}, {"name": "pc02", "power": "off"}])
    db = tmp_path / "history.db"
    bad = kmsfleet("run", PLAYBOOK, "-i", lab.inventory_path, "--retry-unreachable-for", "1m", "--every", "2m",
                   home=tmp_path)  # fmt: skip
    assert bad.returncode == 4 and "--every" in bad.stderr
    started = time.monotonic()
    done = kmsfleet(
        "run", PLAYBOOK, "-i", lab.inventory_path, "--db", db, "--retry-unreachable-for", "3s", "--every", "1s",
        home=tmp_path,
    )  # fmt: skip
    assert done.returncode == 3, done.stdout
    assert time.monotonic() - started < 45
    assert "1 PC never answered: pc02" in done.stdout
    runs = runs_in(db)
    assert 2 <= len(runs) <= 4  # the first run and at most one pass per second of the window
    assert all(r.hosts == 1 and r.counts["unreachable"] == 1 for r in runs[1:])


def test_failed_means_each_pcs_latest_result_and_takes_a_run_prefix(
    classroom: Callable[..., Any], tmp_path: Path
) -> None:
    """A follow-up pass with only the PCs that were off must not hide the PCs that failed before it:
    `--limit @failed` is every PC whose latest result from this playbook here is not ok. `@failed:RUN_ID` takes
    a unique prefix of the id and `last`, as `show` and `report` do."""
    lab, ctl = classroom([{"name": "pc01"}, {"name": "pc02", "faults": {"unauthorized": 1.0}}, {"name": "pc03"}])
    ctl.power("pc03", False)
    inv, db = lab.inventory_path, tmp_path / "history.db"

    def hosts_run(*limit: str) -> set[str]:
        report = tmp_path / "pass.json"
        done = kmsfleet("run", PLAYBOOK, "-i", inv, "--db", db, "--report", report, *limit, home=tmp_path)
        assert done.returncode in (0, 3, 5), done.stdout + done.stderr
        return set(statuses(report))

    first = kmsfleet("run", PLAYBOOK, "-i", inv, "--db", db, "--report", tmp_path / "first.json", home=tmp_path)
    assert statuses(tmp_path / "first.json") == {"pc01": "ok", "pc02": "auth_refused", "pc03": "unreachable"}, (
        first.stdout
    )
    first_id = json.loads((tmp_path / "first.json").read_text(encoding="utf-8"))["run"]["id"]
    ctl.power("pc03", True)
    assert hosts_run("--limit", "@unreachable") == {"pc03"}  # pc03 is ok now; pc02 was not in this pass
    assert hosts_run("--limit", "@failed") == {"pc02"}
    assert hosts_run("--limit", f"@failed:{first_id[:6]}") == {"pc02", "pc03"}
    assert hosts_run("--limit", "@failed:last") == {"pc02"}


def test_ctrl_c_while_waiting_keeps_every_pass_in_the_report(classroom: Callable[..., Any], tmp_path: Path) -> None:
    """Ctrl-C between follow-up passes: exit 99, and the --report holds every PC's latest result (pc02 reached
    by the second pass), marked interrupted, not the first pass's view."""
    ctl, db, report, proc = start_retry_with_two_pcs_off(classroom, tmp_path, "5m", "2s")
    try:
        power_on_pc02_between_passes(ctl, db)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 99, output
    assert "Traceback" not in output
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["run"]["interrupted"] is True and data["run"]["exit_code"] == 99
    found = statuses(report)
    assert found["pc01"] == "ok" and found["pc02"] == "ok", found
    assert found["pc03"] in ("unreachable", "interrupted")
