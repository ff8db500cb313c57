"""Texts a new user meets first: the top-level --help and the demo's last hint."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli.help_text import reflow
from orchestrator.cli.licensing_texts import tr
from orchestrator.cli.serve_cmd import _choose_history


def test_top_level_help_does_not_break_a_sentence() -> None:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    cmd = [sys.executable, "-m", "orchestrator", "--help"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=True).stdout
    assert "(site.yml does everything each PC has) and run it on every PC in parallel." in out


@pytest.mark.parametrize("lang", ["en", "zh-TW"])
def test_demo_serve_hint_shows_the_demo_even_after_real_runs(
    lang: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    home = tmp_path / "kmsfleet"
    home.mkdir()
    demo = home / "my demo.db"  # a space: the hint must stay copy-pasteable
    demo.write_bytes(b"")
    (home / "history.db").write_bytes(b"")  # a real history exists: plain `kmsfleet serve` shows it instead
    text = tr("demo.serve", lang, db=str(demo), db_arg=shlex.quote(str(demo)))
    match = re.search(r"kmsfleet serve (--db (?:'[^']*'|\S+))", text)
    assert match is not None, text
    args = shlex.split(match.group(1))
    assert _choose_history(args[1]) == str(demo)


def _help(*args: str) -> str:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    cmd = [sys.executable, "-m", "orchestrator", *args, "--help"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=True).stdout


def test_command_help_paragraphs_are_not_broken_at_source_lines() -> None:
    # wake's docstring breaks this sentence after "reached" in the source.
    assert "from the last run that reached the PC (gather_facts records it)." in _help("wake")
    # a command group's own help too: `schedule` breaks after "installed" in the source.
    assert "(~/.config/kmsfleet/schedules.yml) and installed as a systemd user timer" in _help("schedule")


def test_reflow_joins_prose_and_keeps_laid_out_paragraphs() -> None:
    text = "First line.\n\nA sentence\nbroken in the source.\n\n- item one\n- item two\n\n  indented\n  example"
    assert reflow(text) == (
        "First line.\n\nA sentence broken in the source.\n\n- item one\n- item two\n\n  indented\n  example"
    )
    assert reflow("--within takes\n30d.") == "--within takes 30d."
