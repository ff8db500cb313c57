"""Headless Chromium for the tests that look at a page as a person would (Debian's chromium, no download)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def chromium() -> str:
    """The Chromium binary; a test without it fails under CI (dev.py installs it) and is skipped elsewhere."""
    for candidate in ("chromium", "chromium-browser", "google-chrome", "/usr/bin/chromium"):
        found = shutil.which(candidate)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("CI is set but no chromium binary was found (apt-get install chromium)")
    pytest.skip("no chromium binary on PATH")


def headless(profile: Path) -> list[str]:
    """Chromium headless with a fresh profile and none of its background traffic (updates, sync, QUIC)."""
    profile.mkdir(exist_ok=True)
    return [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
    ]
