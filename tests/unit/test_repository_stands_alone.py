"""The repository stands on its own: no file points at a path outside it (a developer's folders, the
reference material the project started from) or cites a document that is not in it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# a machine's folders, the reference folder beside the checkout, a facts file that is not in the repository
OUTSIDE = re.compile(r"(?<![\w.])/(?:work|home|root|Users)/|\.\./shared\b|\b(?:FACTS|NOTES)(?:\.md| §)|\bDESIGN\.md\b")


def _tracked() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    # tests/data holds other projects' recordings unchanged (their own paths are part of the evidence)
    return [ROOT / p for p in out.splitlines() if p and not p.startswith("tests/data/")]


def test_no_tracked_file_points_outside_the_repository() -> None:
    hits: list[str] = []
    for path in _tracked():
        if path.suffix not in {".py", ".md", ".yml", ".yaml", ".toml", ".txt", ".cfg", ".go", ".json", ""}:
            continue
        if path == Path(__file__).resolve() or not path.is_file():
            continue
        text = path.read_text("utf-8", errors="replace")
        for n, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert hits == []


def test_the_pattern_finds_what_it_looks_for() -> None:
    for bad in (
        "see /work/shared/domain/FACTS.md",
        "(FACTS §2.1)",
        "(NOTES §1.4)",
        "../shared/seed",
        "/home/dev/x",
        "DESIGN.md",
    ):
        assert OUTSIDE.search(bad), bad
    for fine in ("docs/reference.md §2.1", "tests/data/shared/domain/errors.yaml", "https://example.org/work/x"):
        assert not OUTSIDE.search(fine), fine
