"""Fixtures shared by the contract tests: the Go WinRM client (masterzen/winrm) built once per session."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "tests" / "clients" / "go" / "winrmrun"
GOPATH = Path("/usr/share/gocode")  # Debian's golang-*-dev packages


def _require_go() -> str:
    go = shutil.which("go")
    if go and (GOPATH / "src" / "github.com" / "masterzen" / "winrm").is_dir():
        return go
    message = "go and golang-github-masterzen-winrm-dev are not installed"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {message} (dev.py test installs them with apt-get)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def winrmrun(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go program, built once per session, offline (GOPATH mode, no module download, no cgo)."""
    go = _require_go()
    work = tmp_path_factory.mktemp("go")
    binary = work / "winrmrun"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(work),
        "GO111MODULE": "off",
        "GOPATH": str(GOPATH),
        "GOCACHE": str(work / "cache"),
        "GOFLAGS": "",
        "GOPROXY": "off",
        "CGO_ENABLED": "0",
    }
    proc = subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=SOURCE,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return binary
