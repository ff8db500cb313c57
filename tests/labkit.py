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
