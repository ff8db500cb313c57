"""``include_vars: dir=…``: the variables files of a folder on the controller, read as ansible-core's
``include_vars`` action does (``lib/ansible/plugins/action/include_vars.py``, ansible-core 2.19):

* **where**: inside a role, a relative ``dir`` is under the role's ``vars/`` folder (``dir: vars/x`` is the role's
  ``vars/x`` when that exists, as written otherwise); outside a role it is relative to the folder of the file the
  task is written in. An absolute ``dir`` is used as it is.
* **order**: ``os.walk`` with links followed, the folders sorted by path and the files of each folder by name;
  ``depth`` 1 is the folder itself, 0 (default) has no limit. Later files override earlier ones (a shallow
  update).
* **which files**: ``files_matching`` (a regular expression searched in the file name), ``ignore_files`` (each
  one searched at the end of the file name, ``re.search(pattern + '$')``), ``extensions`` (``yaml yml json``);
  a file with another extension fails the task unless ``ignore_unknown_extensions`` is true.
* **messages**: ``<dir> directory does not exist``, ``<dir> is not a directory``, ``<file> does not have a valid
  extension: yaml, yml, json``, ``<file> must be stored as a dictionary/hash`` — Ansible's texts.

kmsfleet adds what a controller reading arbitrary folders needs: a FIFO, a device or a link to one is refused
("not a regular file", as ``script`` does) instead of blocking or reading forever; a link back to a folder
already walked is not walked again (``os.walk`` would loop); at most ``MAX_DIRS`` folders and ``MAX_FILES``
files are read.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import KmsfleetError
from orchestrator.modules.base import TaskFailed
from orchestrator.varsfile import load_vars_file

DEFAULT_EXTENSIONS = ("yaml", "yml", "json")
MAX_DIRS = 1_000
MAX_FILES = 10_000


@dataclass(frozen=True)
class FolderQuery:
    """The folder options of one include_vars task (already validated)."""

    root: Path
    depth: int = 0
    files_matching: str | None = None
    ignore_files: tuple[str, ...] = ()
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    ignore_unknown_extensions: bool = False


@dataclass
class FolderVars:
    values: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)


def resolve_dir(source: str, role_path: str | None, task_dir: Path) -> Path:
    """Where Ansible's ``_set_root_dir`` looks for ``dir``."""
    if role_path:
        if source.split("/", maxsplit=1)[0] == "vars":
            inside = Path(role_path) / source
            return inside if inside.exists() else Path(source)
        return Path(role_path) / "vars" / source
    return task_dir / source


def sorted_walk(root: Path, depth: int) -> Iterator[tuple[Path, list[str]]]:
    """(folder, its file names sorted), folders in path order, links followed once, bounded."""
    seen: set[str] = set()
    folders: list[tuple[str, list[str]]] = []
    for current, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(current)
        if real in seen:  # a link back into the tree: os.walk would follow it forever
            dirs.clear()
            continue
        seen.add(real)
        if depth and len(Path(current).relative_to(root).parts) + 1 >= depth:
            dirs.clear()  # nothing below is read: do not walk it (Ansible walks it and drops it)
        if len(folders) >= MAX_DIRS:
            raise TaskFailed(f"{root} holds more than {MAX_DIRS} folders; kmsfleet reads at most that many")
        folders.append((current, files))
    folders.sort(key=lambda item: item[0])
    for current, files in folders:
        level = len(Path(current).relative_to(root).parts) + 1
        if depth and level > depth:
            continue
        yield Path(current), sorted(files)


def _wanted(name: str, query: FolderQuery) -> bool:
    if query.files_matching is not None and not re.search(query.files_matching, name):
        return False
    if any(re.search(f"{pattern}$", name) for pattern in query.ignore_files):
        return False
    return not (query.ignore_unknown_extensions and not has_extension(name, query.extensions))


def has_extension(name: str, extensions: Sequence[str]) -> bool:
    """Ansible's check: the text after the last dot (``os.path.splitext``) is one of ``extensions``."""
    return os.path.splitext(name)[1][1:] in extensions


def _load(path: Path, extensions: Sequence[str]) -> dict[str, Any]:
    if not has_extension(path.name, extensions):
        raise TaskFailed(f"{path} does not have a valid extension: {', '.join(extensions)}")
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise TaskFailed(f"{path}: cannot read file: {exc.strerror}") from None
    if not stat.S_ISREG(mode):  # a FIFO would block the read, /dev/zero would never end
        raise TaskFailed(f"{path} is not a regular file")
    try:
        return load_vars_file(path)
    except KmsfleetError as exc:
        text = str(exc)
        if "must be a mapping" in text:
            raise TaskFailed(f"{path} must be stored as a dictionary/hash") from None
        raise TaskFailed(text) from None


def read_folder(query: FolderQuery) -> FolderVars:
    """Every wanted file of the folder, merged in Ansible's order; fails at the first bad file."""
    root = query.root
    if not root.exists():
        raise TaskFailed(f"{root} directory does not exist")
    if not root.is_dir():
        raise TaskFailed(f"{root} is not a directory")
    out = FolderVars()
    for folder, names in sorted_walk(root, query.depth):
        for name in names:
            path = folder / name
            if not _wanted(name, query) or not os.path.exists(path):  # Ansible skips a broken link
                continue
            if len(out.files) >= MAX_FILES:
                raise TaskFailed(f"{root} holds more than {MAX_FILES} variables files; kmsfleet reads at most that")
            out.values.update(_load(path, query.extensions))
            out.files.append(str(path.absolute()))
    return out


__all__ = ["DEFAULT_EXTENSIONS", "FolderQuery", "FolderVars", "has_extension", "read_folder", "resolve_dir"]
