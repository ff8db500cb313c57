"""``group_vars/`` and ``host_vars/`` beside an inventory source.

``group_vars/room101.yml`` (or ``.yaml``, ``.json``, no extension) holds the variables of group ``room101``;
``group_vars/room101/`` may instead hold several files, all loaded in name order. The same for ``host_vars/``.
Files whose name matches no group/host are reported as warnings (with a did-you-mean), never silently used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import InputError, Location
from orchestrator.varsfile import load_vars_file

VARS_EXTENSIONS = ("", ".yml", ".yaml", ".json")
MAX_FILES = 10_000


@dataclass
class VarsDir:
    """Variables per entity name found under one ``group_vars`` or ``host_vars`` directory."""

    path: Path
    entities: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, list[Path]] = field(default_factory=dict)


def _files_in(directory: Path) -> list[Path]:
    out: list[Path] = []
    for entry in sorted(directory.rglob("*")):
        if any(part.startswith(".") for part in entry.relative_to(directory).parts):
            continue
        if entry.is_file() and entry.suffix.lower() in VARS_EXTENSIONS:
            out.append(entry)
        if len(out) > MAX_FILES:
            raise InputError(f"more than {MAX_FILES} files", Location(str(directory)))
    return out


def load_vars_dir(directory: Path) -> VarsDir | None:
    """Load every entity of a ``group_vars``/``host_vars`` directory, or None when there is none."""
    if not directory.is_dir():
        return None
    result = VarsDir(directory)
    entries = sorted(p for p in directory.iterdir() if not p.name.startswith("."))
    by_name: dict[str, list[Path]] = {}
    for entry in entries:
        if entry.is_dir():
            by_name.setdefault(entry.name, []).extend(_files_in(entry))
            continue
        suffix = entry.suffix.lower()
        if suffix in (".yml", ".yaml", ".json"):
            by_name.setdefault(entry.stem, []).append(entry)
        elif suffix == "" or not _looks_like_extension(suffix):
            by_name.setdefault(entry.name, []).append(entry)
    for name, paths in by_name.items():
        ordered = sorted(paths, key=lambda p: (_ext_rank(p), str(p)))
        merged: dict[str, Any] = {}
        for path in ordered:
            merged.update(load_vars_file(path))
        result.entities[name] = merged
        result.files[name] = ordered
    return result


def _looks_like_extension(suffix: str) -> bool:
    """``pc01.lab.local`` has the 'suffix' ``.local``: a host name, not a file type. Known non-vars file types
    (``.md``, ``.txt``, ``.bak`` …) are skipped like Ansible does."""
    return suffix in {".md", ".txt", ".rst", ".bak", ".swp", ".orig", ".retry", ".cfg", ".ini", ".pyc", ".py", ".sh"}


def _ext_rank(path: Path) -> int:
    suffix = path.suffix.lower()
    return VARS_EXTENSIONS.index(suffix) if suffix in VARS_EXTENSIONS else 0
