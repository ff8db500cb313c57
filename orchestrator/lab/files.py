"""Files and folders written to a simulated PC, and how WMI shows them (``CIM_DataFile``, ``Win32_Directory``).

The lab's file system is small: the programs and folders the command line knows (``commands.base.files`` and
``commands.cmd.known_dirs``, which carry no contents) plus what was written through PowerShell's .NET file calls
(``commands.ps_files``). Those writes live here, per PC: full path → contents and times. ``Test-Path`` and the
WMI classes see both.

WMI shapes follow Microsoft's pages for CIM_DataFile (https://learn.microsoft.com/windows/win32/cimwin32prov/
cim-datafile) and Win32_Directory (…/win32-directory): ``Name`` is the full path, which WMI returns in lower
case (as Windows does for these classes); ``Drive`` ``c:``; ``Path`` the folder with leading and trailing
backslashes; ``FileName`` without extension; ``Extension`` without the dot; ``FileSize`` in bytes;
``LastModified``/``CreationDate``/``LastAccessed`` CIM datetimes; ``FileType`` e.g. "File Folder". Files the lab
knows only by name (programs) have a null ``FileSize``: the lab does not model their contents.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from orchestrator.lab.per_pc import PerPc
from orchestrator.lab.provider import CimValue

if TYPE_CHECKING:  # pragma: no cover
    from orchestrator.lab.machine import Machine

DATAFILE_PROPS = """
Archive:boolean Caption:string Compressed:boolean CreationDate:datetime Drive:string Encrypted:boolean
Extension:string FileName:string FileSize:uint64 FileType:string Hidden:boolean LastAccessed:datetime
LastModified:datetime Name:string Path:string Readable:boolean System:boolean Writeable:boolean
"""
DIRECTORY_PROPS = """
Archive:boolean Caption:string Compressed:boolean CreationDate:datetime Drive:string Encrypted:boolean
Extension:string FileName:string FileType:string Hidden:boolean LastAccessed:datetime LastModified:datetime
Name:string Path:string Readable:boolean System:boolean Writeable:boolean
"""
MAX_FILE_BYTES = 16 * 1024 * 1024  # a bound on what one lab PC keeps (a hostile or runaway client)


@dataclass
class Entry:
    path: str  # as first written (display case)
    is_dir: bool
    data: bytes = b""
    created: datetime | None = None
    modified: datetime | None = None


@dataclass
class FileStore:
    entries: dict[str, Entry] = field(default_factory=dict)  # normalised lower path -> entry
    lock: threading.Lock = field(default_factory=threading.Lock)


_STORES: PerPc[FileStore] = PerPc(FileStore)


def store(m: Machine) -> FileStore:
    return _STORES.of(m)


def norm(path: str) -> str:
    return path.replace("/", "\\").strip().strip('"').rstrip("\\").lower()


def parent(path: str) -> str:
    return norm(path).rpartition("\\")[0]


def base_dirs(m: Machine) -> set[str]:
    """Folders every Windows installation has (and the lab's user profile with its temp folder)."""
    profile = f"c:\\users\\{m.config.user.lower()}"
    out = {"c:", "c:\\users", "c:\\users\\public", "c:\\program files", "c:\\program files (x86)", "c:\\programdata"}
    out |= {"c:\\windows", "c:\\windows\\temp", profile, f"{profile}\\appdata", f"{profile}\\appdata\\local"}
    out.add(f"{profile}\\appdata\\local\\temp")
    return out


def known_dir(m: Machine, path: str, user_dirs: set[str]) -> bool:
    from orchestrator.lab.commands.base import files

    low = norm(path)
    if low in user_dirs or low in base_dirs(m):
        return True
    return any(f.startswith(low + "\\") for f in files(m))


def lookup(m: Machine, path: str) -> str | None:
    """'file', 'dir' or None for a path on the PC (written entries first, then the modelled ones)."""
    from orchestrator.lab.commands.base import files

    low = norm(path)
    st = store(m)
    with st.lock:
        entry = st.entries.get(low)
        user_dirs = {k for k, e in st.entries.items() if e.is_dir}
    if entry is not None:
        return "dir" if entry.is_dir else "file"
    prog = files(m).get(low)
    if prog is not None:
        return "dir" if prog == "dir" else "file"
    return "dir" if known_dir(m, low, user_dirs) else None


def make_dirs(m: Machine, path: str, now: datetime) -> str | None:
    """Create a folder and its parents (Directory.CreateDirectory). None, or the error text."""
    parts = norm(path).split("\\")
    display = path.replace("/", "\\").rstrip("\\").split("\\")
    for i in range(1, len(parts) + 1):
        sub = "\\".join(parts[:i])
        kind = lookup(m, sub)
        if kind == "file":
            return f'Cannot create "{path}" because a file with the same name already exists.'
        if kind is None:
            st = store(m)
            with st.lock:
                st.entries[sub] = Entry("\\".join(display[:i]), True, created=now, modified=now)
    return None


def write(m: Machine, path: str, data: bytes, append: bool, now: datetime) -> str | None:
    """Write or append bytes (File.Open Create/Append). None, or the .NET error text."""
    if lookup(m, parent(path)) != "dir":
        return f"Could not find a part of the path '{path}'."
    if lookup(m, path) == "dir":
        return f"Access to the path '{path}' is denied."
    low = norm(path)
    st = store(m)
    with st.lock:
        entry = st.entries.get(low)
        if entry is None or not append:
            created = entry.created if entry is not None else now
            entry = st.entries[low] = Entry(path.replace("/", "\\"), False, b"", created=created, modified=now)
        if len(entry.data) + len(data) > MAX_FILE_BYTES:
            return "There is not enough space on the disk."
        entry.data += data
        entry.modified = now
    return None


def read(m: Machine, path: str) -> bytes | None:
    st = store(m)
    with st.lock:
        entry = st.entries.get(norm(path))
        return entry.data if entry is not None and not entry.is_dir else None


def touch(m: Machine, path: str, now: datetime) -> None:
    st = store(m)
    with st.lock:
        entry = st.entries.get(norm(path))
        if entry is not None:
            entry.modified = now


def remove(m: Machine, path: str) -> None:
    """Remove a written file or folder with everything under it (Remove-Item -Recurse -Force)."""
    low = norm(path)
    st = store(m)
    with st.lock:
        for key in [k for k in st.entries if k == low or k.startswith(low + "\\")]:
            del st.entries[key]


def snapshot(m: Machine) -> dict[str, dict[str, object]]:
    """Ground truth for tests and the control API: written path -> kind, size and SHA-1."""
    st = store(m)
    with st.lock:
        return {
            e.path: {"dir": True}
            if e.is_dir
            else {"size": len(e.data), "sha1": hashlib.sha1(e.data, usedforsecurity=False).hexdigest()}
            for e in st.entries.values()
        }


def _split(path: str) -> tuple[str, str, str, str]:
    """(drive, folder path with backslashes, file name without extension, extension)."""
    low = norm(path)
    drive, _, rest = low.partition("\\")
    folder, _, leaf = rest.rpartition("\\")
    name, dot, ext = leaf.rpartition(".")
    if not dot:
        name, ext = leaf, ""
    return drive, "\\" + (folder + "\\" if folder else ""), name, ext


def _common(path: str, created: datetime | None, modified: datetime | None) -> dict[str, CimValue]:
    drive, folder, name, ext = _split(path)
    return {
        "Archive": True,
        "Caption": norm(path),
        "Compressed": False,
        "CreationDate": created,
        "Drive": drive,
        "Encrypted": False,
        "Extension": ext,
        "FileName": name,
        "Hidden": False,
        "LastAccessed": modified,
        "LastModified": modified,
        "Name": norm(path),
        "Path": folder,
        "Readable": True,
        "System": False,
        "Writeable": True,
    }


def datafile_rows(m: Machine) -> list[dict[str, CimValue]]:
    from orchestrator.lab.commands.base import files

    rows = []
    st = store(m)
    with st.lock:
        entries = [e for e in st.entries.values() if not e.is_dir]
    for e in entries:
        row = _common(
            e.path, m.to_local(e.created) if e.created else None, m.to_local(e.modified) if e.modified else None
        )
        row.update(FileSize=len(e.data), FileType=f"{row['Extension'].upper()} File" if row["Extension"] else "File")  # type: ignore[union-attr]
        rows.append(row)
    written = {norm(e.path) for e in entries}
    for path, prog in files(m).items():
        if prog != "dir" and path not in written:
            row = _common(path, None, None)
            row.update(FileSize=None, FileType="Application" if path.endswith(".exe") else "File")
            rows.append(row)
    return rows


def directory_rows(m: Machine) -> list[dict[str, CimValue]]:
    from orchestrator.lab.commands.base import files

    st = store(m)
    with st.lock:
        written = {k: e for k, e in st.entries.items() if e.is_dir}
    names = set(written) | base_dirs(m)
    for path in files(m):
        parts = path.split("\\")
        names.update("\\".join(parts[:k]) for k in range(1, len(parts)))
        if files(m)[path] == "dir":
            names.add(path)
    rows = []
    for low in sorted(names):
        e = written.get(low)
        row = _common(low if e is None else e.path, None, None)
        if e is not None:
            row.update(
                CreationDate=m.to_local(e.created) if e.created else None,
                LastModified=m.to_local(e.modified) if e.modified else None,
            )
        if low == "c:":
            row.update(Name="c:\\", Caption="c:\\", Path="\\", FileName="")
        row["FileType"] = "File Folder"
        rows.append(row)
    return rows
