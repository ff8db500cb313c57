"""``kmsfleet run`` asks glibc for fewer malloc arenas (``cli/malloc_arenas.py``): done where glibc is, never
over the user's own ``MALLOC_ARENA_MAX``, and called by ``run`` (``execute``) before the worker threads exist."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

import pytest

from orchestrator.cli import malloc_arenas, run_cmd


def _in_child(code: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, check=True)
    return done.stdout.strip()


CODE = "from orchestrator.cli.malloc_arenas import limit_malloc_arenas as f; print(f())"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_glibc_agrees_in_a_fresh_process() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    assert _in_child(CODE, env) == "True"
    assert _in_child(CODE, {**env, "MALLOC_ARENA_MAX": "8"}) == "False"  # the user's setting is kept


def test_not_linux_or_user_setting_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(malloc_arenas.sys, "platform", "darwin")
    assert malloc_arenas.limit_malloc_arenas() is False
    monkeypatch.setattr(malloc_arenas.sys, "platform", "linux")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert malloc_arenas.limit_malloc_arenas() is False


def test_run_limits_arenas_before_the_run_starts() -> None:
    source = inspect.getsource(run_cmd.execute)
    assert source.index("limit_malloc_arenas()") < source.index("return run_playbook(")
