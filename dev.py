#!/usr/bin/env python3
"""One-command set-up for kmsfleet on a fresh machine (needs only Python 3.11+ and git).

    python3 dev.py demo        # create .venv, install kmsfleet, run `kmsfleet demo` on the embedded lab
    python3 dev.py test        # create .venv, install kmsfleet[test] (+ chromium, redis, postgresql, Go); all checks
    python3 dev.py bench       # run every benchmark (see README "Benchmarks and proofs")

Each command is idempotent: a second run reuses the virtualenv and only installs what changed.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"


def sh(*args: str | Path, check: bool = True, env: dict[str, str] | None = None) -> int:
    print("+", " ".join(str(a) for a in args), flush=True)
    return subprocess.run([str(a) for a in args], cwd=ROOT, check=check, env=env).returncode


def ensure_venv(extras: str = "") -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py itself may be started by an older python3
        sys.exit(f"kmsfleet needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not PY.exists():
        print(f"creating virtualenv {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=False).create(VENV)
    stamp = VENV / f".installed{extras or '-base'}"
    pyproject = ROOT / "pyproject.toml"
    if not (stamp.exists() and stamp.stat().st_mtime >= pyproject.stat().st_mtime):
        target = f".{extras}" if extras else "."
        sh(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
        sh(PY, "-m", "pip", "install", "--quiet", "-e", target)
        stamp.touch()
    compile_bytecode()


def compile_bytecode() -> None:
    """Write kmsfleet's own bytecode, as ``pip install`` does for a regular install (an editable one does not):
    where PYTHONDONTWRITEBYTECODE is set, as on this project's CI machines, every ``kmsfleet`` start would
    otherwise compile ~250 modules from source (~0.4 s of CPU, 1.5 G instructions; docs/performance.md, "Start
    and exit"). Python still checks each file's time stamp, so an edited module is never run stale; only files
    whose bytecode is out of date are compiled again."""
    if sh(PY, "-m", "compileall", "-q", "-j", "0", "orchestrator", check=False) != 0:
        print("note: some bytecode could not be written (a read-only tree?); kmsfleet compiles it at each start")


GOCODE = Path("/usr/share/gocode/src")  # where Debian's golang-*-dev packages put Go sources


def ensure_system_tools() -> None:
    """Debian packages the tests need: chromium (HTML report and web page tests), redis-server (distributed
    tests), postgresql (the shared history: tests start a private cluster with its initdb/pg_ctl), and Go with
    the masterzen/winrm client library (a non-Python WinRM client against the lab, tests/clients/go)."""
    wanted = {
        "chromium": lambda: shutil.which("chromium") is not None,
        "redis-server": lambda: shutil.which("redis-server") is not None,
        "postgresql": lambda: bool(shutil.which("initdb") or glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        "golang-go": lambda: shutil.which("go") is not None,
        "golang-github-masterzen-winrm-dev": (GOCODE / "github.com" / "masterzen" / "winrm").is_dir,
    }
    missing = [pkg for pkg, present in wanted.items() if not present()]
    if not missing:
        return
    can_apt = shutil.which("apt-get") is not None and hasattr(os, "geteuid") and os.geteuid() == 0
    if not can_apt:
        print(
            f"note: {', '.join(missing)} not installed and apt-get is not available as root; "
            "the tests that need them are skipped (in CI they fail instead).",
            flush=True,
        )
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if sh("apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing, check=False, env=env) != 0:
        sh("apt-get", "update", "-qq", check=False, env=env)
        sh("apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing, check=False, env=env)


def cmd_demo(argv: list[str]) -> int:
    ensure_venv()
    return sh(BIN / "kmsfleet", "demo", *argv, check=False)


def cmd_test(argv: list[str]) -> int:
    ensure_venv("[test]")
    ensure_system_tools()
    steps: list[tuple[str | Path, ...]] = [
        (BIN / "ruff", "check", "orchestrator", "tests", "benchmarks", "dev.py"),
        (BIN / "ruff", "format", "--check", "orchestrator", "tests", "benchmarks", "dev.py"),
        (BIN / "mypy",),
        (BIN / "lint-imports",),
        (PY, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-q", *argv),
    ]
    for step in steps:
        rc = sh(*step, check=False)
        if rc != 0:
            print(f"FAILED: {' '.join(str(s) for s in step)} (exit {rc})", flush=True)
            return rc
    print("all checks passed", flush=True)
    return 0


def cmd_bench(argv: list[str]) -> int:
    ensure_venv("[test]")
    return sh(PY, ROOT / "benchmarks" / "run_all.py", *argv, check=False)


def main() -> int:
    commands = {"demo": cmd_demo, "test": cmd_test, "bench": cmd_bench}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__)
        return 2
    return commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
