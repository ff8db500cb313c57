"""`kmsfleet lab serve` as a real subprocess: the one ready line, the inventory it writes, the control API and the
listeners it opens, a clean exit 0 on SIGINT/SIGTERM, and exit 4 naming the field for a bad spec."""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from orchestrator.lab.addresses import claim_prefix
from orchestrator.lab.control_client import LabControl

READY = re.compile(r"^lab ready: (\d+) hosts, inventory (.+), control (http://127\.\d+\.0\.1:\d+)$")


def _kmsfleet(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", NO_COLOR="1", COLUMNS="200")
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _ready_line(proc: subprocess.Popen[str], timeout: float = 60.0) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if line:
                return line.rstrip("\n")
        if proc.poll() is not None:
            raise AssertionError(f"lab serve exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
    raise AssertionError("no ready line in time")


def _stop(proc: subprocess.Popen[str], sig: int) -> tuple[int, str, str]:
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return proc.returncode, out, err


def _free_block_spec(tmp_path: Path) -> tuple[Path, str]:
    """A spec on a block nobody holds (chosen high to stay clear of the test fixtures' blocks)."""
    claim = claim_prefix(low=200, high=250)
    prefix = claim.prefix
    claim.release()
    spec = tmp_path / "classroom.yml"
    spec.write_text(
        f"room: room101\nsubnet: {prefix}.1\ncredentials:\n  user: teacher\n  password: Serve-Passw0rd!\n"
        "hosts:\n  - name: pc[01:03]\n  - name: pc04\n    power: off\n",
        encoding="utf-8",
    )
    return spec, prefix


def _listening(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1.0):
            return True
    except OSError:
        return False


def test_serve_spec_ready_line_inventory_and_clean_sigint(tmp_path: Path) -> None:
    spec, prefix = _free_block_spec(tmp_path)
    inventory = tmp_path / "out" / "inv.yml"
    args = ("lab", "serve", "--spec", str(spec), "--inventory-out", str(inventory), "--seed", "3")
    proc = _kmsfleet(*args, "--timing", "instant", cwd=tmp_path)
    try:
        line = _ready_line(proc)
        match = READY.match(line)
        assert match, line
        assert match.group(1) == "4"
        assert Path(match.group(2)) == inventory
        control = match.group(3)
        assert control.startswith(f"http://{prefix}.0.1:")
        data = yaml.safe_load(inventory.read_text(encoding="utf-8"))
        room = data["all"]["children"]["room101"]
        assert set(room["hosts"]) == {"pc01", "pc02", "pc03", "pc04"}
        pc01 = room["hosts"]["pc01"]
        assert pc01["ansible_host"] == f"{prefix}.1.1"
        assert pc01["ansible_port"] == 5985
        assert pc01["ansible_user"] == "teacher"
        assert pc01["ansible_password"] == "Serve-Passw0rd!"
        assert pc01["ansible_winrm_transport"] == "ntlm" and pc01["ansible_winrm_scheme"] == "http"
        assert re.fullmatch(r"([0-9A-F]{2}:){5}[0-9A-F]{2}", pc01["mac"])
        assert room["vars"]["kms_host"] == f"{prefix}.0.2" and room["vars"]["kms_port"] == 1688
        assert room["vars"]["lab_control_url"] == control
        assert room["vars"]["wol_broadcast"] == f"{prefix}.0.255" and room["vars"]["wol_port"] > 0
        assert (inventory.stat().st_mode & 0o077) == 0
        assert _listening(f"{prefix}.1.1", 5985) and _listening(f"{prefix}.1.3", 5986)
        assert not _listening(f"{prefix}.1.4", 5985)  # powered off in the spec
        stats = LabControl(control).stats()
        assert stats["hosts"] == 4 and stats["powered_on"] == 3
    finally:
        code, out, err = _stop(proc, signal.SIGINT)
    assert code == 0, err
    assert out.strip() == ""  # the ready line was the only output on stdout
    assert "Traceback" not in err
    assert not _listening(f"{prefix}.1.1", 5985)


def test_serve_hosts_uses_the_classroom_profile_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc = _kmsfleet("lab", "serve", "--hosts", "3", "--no-https", "--timing", "instant", cwd=tmp_path)
    try:
        line = _ready_line(proc)
        match = READY.match(line)
        assert match and match.group(1) == "3", line
        inventory = tmp_path / "lab-inventory.yml"
        assert Path(match.group(2)).resolve() == inventory.resolve()
        hosts = [
            h
            for group in yaml.safe_load(inventory.read_text(encoding="utf-8"))["all"]["children"].values()
            for h in group["hosts"].values()
        ]
        assert len(hosts) == 3
        assert all(re.fullmatch(r"127\.\d+\.1\.[1-3]", h["ansible_host"]) for h in hosts)
        assert not _listening(hosts[0]["ansible_host"], 5986)
    finally:
        code, _, err = _stop(proc, signal.SIGTERM)
    assert code == 0, err


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("room: r1\nsubnet: 127.0.1\nhosts:\n  - name: pc01\n    latency_ms: -5\n", "latency_ms"),
        ("room: r1\nsubnet: 10.0.0\nhosts:\n  - name: pc01\n", "subnet"),
        ("room: r1\nsubnet: 127.0.1\nhosts:\n  - name: pc01\n    colour: blue\n", "colour"),
    ],
)
def test_bad_spec_exits_4_naming_the_field(tmp_path: Path, text: str, field: str) -> None:
    spec = tmp_path / "bad.yml"
    spec.write_text(text, encoding="utf-8")
    proc = _kmsfleet("lab", "serve", "--spec", str(spec), cwd=tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, (out, err)
    assert field in err
    assert "Traceback" not in err and out == ""


def test_unknown_timing_exits_4(tmp_path: Path) -> None:
    proc = _kmsfleet("lab", "serve", "--hosts", "1", "--timing", "slow", cwd=tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, (out, err)
    assert "--timing must be windows or instant" in err
    assert "Traceback" not in err and out == ""


def test_serve_help_has_examples(tmp_path: Path) -> None:
    proc = _kmsfleet("lab", "serve", "--help", cwd=tmp_path)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "kmsfleet lab serve --hosts 40" in out and "--spec" in out
