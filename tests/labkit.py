"""Helpers for end-to-end tests: start a lab classroom from a spec on a claimed loopback block, run the real
`kmsfleet` CLI as a subprocess, read its JSON report.

Import from tests as ``from labkit import …`` (tests/ is on sys.path through its conftest)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from orchestrator.lab.addresses import Claim, claim_prefix
from orchestrator.lab.runner import LabThread
from orchestrator.lab.spec import LabSpec, parse_spec

KMSFLEET = str(Path(sys.executable).parent / "kmsfleet")
OFFICE16 = {"version": 2016, "bitness": "x86", "channel": "volume", "state": "unlicensed"}

# One PC per fault class the bureau's Q&A describes (with OFFICE16 as the room's default Office) …
FAULT_HOSTS: list[dict[str, Any]] = [
    {"name": "healthy"},
    {"name": "wrongzone", "timezone": "Pacific Standard Time", "clock_skew_minutes": 960},
    {"name": "skewed", "clock_skew_minutes": 310},
    {"name": "slic", "os": "Windows 7 Professional", "windows_channel": "oem_slic", "office": "none"},
    {"name": "notadmin", "admin": False},
    {"name": "blocked", "blocked_key": True},
    {"name": "proretail", "os": "Windows 10 Pro", "windows_channel": "retail"},
    {"name": "prolicensed", "os": "Windows 10 Pro", "windows_channel": "retail", "windows_state": "licensed"},
    {"name": "home", "os": "Windows 10 Home", "windows_channel": "retail", "office": "none"},
    {"name": "oemoffice", "office": {"version": 2016, "bitness": "x64", "channel": "oem", "state": "licensed"}},
    {"name": "m365", "office": {"version": 2016, "bitness": "x64", "channel": "subscription", "state": "licensed"}},
    {"name": "corrupt", "office": {"version": 2016, "bitness": "x86", "channel": "volume", "state": "corrupt"}},
    {"name": "off", "power": "off"},
]

# … and each one's final status, error code and diagnosis after site.yml (the bureau's Q&A).
FAULT_EXPECTED: dict[str, tuple[str, str | None, str | None]] = {
    "wrongzone": ("failed", "0xC004F06C", "KF_WRONG_TIMEZONE"),
    "skewed": ("failed", "0xC004F06C", "KF_CLOCK_SKEW"),
    "slic": ("failed", "0xC004F035", "0xC004F035"),
    "notadmin": ("failed", "0x80070005", "KF_NOT_ADMIN"),
    "blocked": ("failed", "0xC004C003", "0xC004C003"),
    "proretail": ("failed", "0xC004F057", "KF_NON_VOLUME_WINDOWS"),
    "home": ("failed", "0xC004F057", "KF_NON_VOLUME_WINDOWS"),
    "oemoffice": ("failed", "0xC004F017", "KF_OEM_OFFICE"),
    "m365": ("failed", "0xC004F017", "KF_SUBSCRIPTION_OFFICE"),
    "corrupt": ("failed", "0xC004F056", "0xC004F056"),
    "off": ("unreachable", None, "KF_UNREACHABLE"),
    "healthy": ("changed", None, None),
    "prolicensed": ("changed", None, None),
}

PASSWORD = "Lab-Passw0rd!"


def room_spec(
    block: Claim,
    hosts: list[dict[str, Any]],
    *,
    room: str = "room101",
    room_index: int = 1,
    defaults: dict[str, Any] | None = None,
    kms: dict[str, Any] | None = None,
    password: str = PASSWORD,
) -> dict[str, Any]:
    """One room of a spec as a dict (combine several into {"rooms": [...], "seed": n})."""
    out: dict[str, Any] = {
        "room": room,
        "subnet": f"{block.prefix}.{room_index}",
        "credentials": {"user": "administrator", "password": password},
        "hosts": hosts,
    }
    if defaults:
        out["defaults"] = defaults
    if kms:
        out["kms"] = kms
    return out


def start_lab(spec: dict[str, Any] | LabSpec, **kwargs: Any) -> LabThread:
    lab = LabThread(spec if isinstance(spec, LabSpec) else parse_spec(spec), **kwargs)
    lab.start(timeout=120)
    return lab


def run_cli(
    *args: str,
    timeout: float = 180,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "160", "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [KMSFLEET, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd,
        input=stdin,
        check=False,
    )


def read_report(path: str | Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return data


def hosts_by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {h["host"]: h for h in report["hosts"]}


@contextmanager
def plain_http_lab(room: str, hosts: list[dict[str, Any]], user: str, password: str) -> Iterator[LabThread]:
    """One room on a claimed loopback block, HTTP only, accepting unencrypted (Basic) SOAP, as the contract tests
    need to read and splice the traffic."""
    claim = claim_prefix()
    spec = parse_spec(
        {
            "room": room,
            "subnet": f"{claim.prefix}.1",
            "credentials": {"user": user, "password": password},
            "hosts": hosts,
        }
    )
    thread = LabThread(spec, allow_unencrypted=True, https=False)
    try:
        thread.start(timeout=60)
        yield thread
    finally:
        thread.stop()
        claim.release()


def wait_finished_in_history(db: Path, count: int, seconds: float) -> int:
    """Wait (at most ``seconds``) until ``count`` PCs of a running run are ok/changed in its history database
    (every targeted PC has a pending row from the start, so the finished ones are counted). Returns the count."""
    import sqlite3
    import time

    deadline = time.monotonic() + seconds
    done = 0
    while time.monotonic() < deadline and done < count:
        time.sleep(0.3)
        if db.exists():
            try:
                with sqlite3.connect(db) as con:
                    done = con.execute(
                        "select count(*) from host_results where status in ('ok', 'changed')"
                    ).fetchone()[0]
            except sqlite3.Error:
                done = 0
    return done


@contextmanager
def room_lab(hosts: list[dict[str, Any]]) -> Iterator[LabThread]:
    """One room of lab PCs on a claimed loopback prefix, stopped and released afterwards (for module fixtures)."""
    claim = claim_prefix()
    running = start_lab({"rooms": [room_spec(claim, hosts)]})
    try:
        yield running
    finally:
        running.stop()
        claim.release()


def lab_machine(lab: LabThread, name: str) -> Any:
    """The lab's model of one PC (``orchestrator.lab.machine.Machine``), to read its ground truth."""
    world = lab.lab.world
    assert world is not None
    found = world.machine(name)
    assert found is not None
    return found
