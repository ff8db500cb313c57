"""Where the reference data the tests compare against lives (a copy in tests/data/shared; see its README)."""

from __future__ import annotations

import os
from pathlib import Path

SHARED = Path(os.environ.get("KMSFLEET_SHARED_DIR") or Path(__file__).resolve().parent / "data" / "shared")
