"""`kmsfleet serve` without --db: the user's history, or, before any real run, the demo's."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cli.serve_cmd import _choose_history


@pytest.fixture
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    (tmp_path / "kmsfleet").mkdir()
    return tmp_path / "kmsfleet"


def test_before_any_real_run_the_demo_history_is_shown(data_home: Path) -> None:
    (data_home / "demo.db").write_bytes(b"")
    assert _choose_history(None) == str(data_home / "demo.db")


def test_the_real_history_wins_once_it_exists(data_home: Path) -> None:
    (data_home / "demo.db").write_bytes(b"")
    (data_home / "history.db").write_bytes(b"")
    assert _choose_history(None) is None  # the default history


def test_an_explicit_db_is_never_replaced(data_home: Path) -> None:
    (data_home / "demo.db").write_bytes(b"")
    assert _choose_history("other.db") == "other.db"


def test_without_a_demo_the_default_stays(data_home: Path) -> None:
    assert _choose_history(None) is None
