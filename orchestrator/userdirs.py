"""The user's folders for kmsfleet's configuration, data and state: the XDG Base Directory rules.

``$XDG_CONFIG_HOME`` (default ``~/.config``), ``$XDG_DATA_HOME`` (``~/.local/share``), ``$XDG_STATE_HOME``
(``~/.local/state``). A relative value is ignored, as the XDG Base Directory Specification requires
("If an implementation encounters a relative path in any of these variables it should consider the path
invalid and ignore it"). platformdirs is not used: on Linux it takes a relative value as given, and on
Windows/macOS it would move the folders the README documents.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["config_base", "config_dir", "data_dir", "state_dir"]

APP = "kmsfleet"


def _base(variable: str, *default: str) -> Path:
    value = os.environ.get(variable, "")
    return Path(value) if value and os.path.isabs(value) else Path.home().joinpath(*default)


def config_base() -> Path:
    """``$XDG_CONFIG_HOME`` or ``~/.config`` (the user's systemd units live below it too)."""
    return _base("XDG_CONFIG_HOME", ".config")


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/kmsfleet``, else ``~/.config/kmsfleet``."""
    return config_base() / APP


def data_dir() -> Path:
    """``$XDG_DATA_HOME/kmsfleet``, else ``~/.local/share/kmsfleet``."""
    return _base("XDG_DATA_HOME", ".local", "share") / APP


def state_dir() -> Path:
    """``$XDG_STATE_HOME/kmsfleet``, else ``~/.local/state/kmsfleet``."""
    return _base("XDG_STATE_HOME", ".local", "state") / APP
