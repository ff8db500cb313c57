"""``win_stat``, ``win_file``, ``win_copy`` and ``win_template`` (ansible.windows) without Ansible's PowerShell
wrapper: facts about a path come from WMI (``CIM_DataFile``, ``Win32_Directory``); changes and checksums are
.NET calls every PowerShell from 2.0 on understands (``[IO.Directory]::CreateDirectory``, ``[IO.File]::Open``,
``SHA1CryptoServiceProvider``).

win_copy sends small files only (content or src up to ``MAX_COPY_BYTES``), in chunks small enough for the
smallest WinRM envelope of the fleet (Windows 7: MaxEnvelopeSizekb 150): each chunk is one PowerShell script
read from standard input (``powershell -Command -``) holding the chunk's base64. The checksum is SHA-1, as
Ansible's. Paths must be ASCII (a script on standard input is read in the console's code page).
"""

from __future__ import annotations

import base64
import hashlib
import platform
import time
from datetime import datetime
from pathlib import Path, PureWindowsPath
from typing import Any, Literal

from pydantic import AliasChoices, Field, model_validator

from orchestrator.ansiblecfg import load_config
from orchestrator.errors import KmsfleetError
from orchestrator.modules import winwmi
from orchestrator.modules.base import Module, ModuleArgs, ModuleContext, ModuleOutcome, TaskFailed, register
from orchestrator.transport.winrm import CommandResult

MAX_COPY_BYTES = 1024 * 1024
CHUNK_BYTES = 48 * 1024  # 64 KiB of base64 per script: one WinRS Send stays far below 150 KB


def _q(path: str) -> str:
    return "'" + path.replace("'", "''") + "'"


def _windows_path(path: str) -> str:
    text = path.replace("/", "\\").strip()
    if not (len(text) >= 3 and text[1] == ":" and text[2] == "\\"):
        raise TaskFailed(f"path {path!r} must be an absolute Windows path such as C:\\folder\\file.txt")
    if not text.isascii():
        raise TaskFailed(f"path {path!r}: kmsfleet's file modules support ASCII paths only")
    return text.rstrip("\\") if len(text) > 3 else text


def _ps(ctx: ModuleContext, lines: list[str]) -> CommandResult:
    """Run PowerShell statements read from standard input (``-Command -``), one per line."""
    script = "\r\n".join(["$ErrorActionPreference = 'Stop'", *lines, ""]).encode("ascii")
    return ctx.conn.run_command(
        "powershell.exe",
        ["-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Unrestricted", "-Command", "-"],
        stdin=script,
    )


def _checked(res: CommandResult, what: str) -> CommandResult:
    if res.rc != 0 or res.stderr.strip():
        lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
        raise TaskFailed(f"{what} failed: {lines[0] if lines else f'rc {res.rc}'}", data={"rc": res.rc})
    return res


def _epoch(value: Any) -> float | None:
    return value.timestamp() if isinstance(value, datetime) else None


def stat_path(ctx: ModuleContext, path: str) -> dict[str, Any]:
    """``stat`` of a path as win_stat reports it (exists false when absent)."""
    quoted = winwmi.wql_quote(path.lower())
    rows = ctx.conn.wql(f"SELECT * FROM CIM_DataFile WHERE Name = '{quoted}'")
    is_dir = False
    if not rows:
        rows = ctx.conn.wql(f"SELECT * FROM Win32_Directory WHERE Name = '{quoted}'")
        is_dir = bool(rows)
    if not rows:
        return {"exists": False}
    row = rows[0]
    leaf = PureWindowsPath(path).name
    attributes = [n for n, key in (("Archive", "Archive"), ("Hidden", "Hidden"), ("System", "System")) if row.get(key)]
    if is_dir:
        attributes.insert(0, "Directory")
    out: dict[str, Any] = {
        "exists": True,
        "path": path,
        "filename": leaf,
        "extension": "" if is_dir or "." not in leaf else "." + leaf.rsplit(".", 1)[1],
        "isdir": is_dir,
        "isreg": not is_dir,
        "islnk": False,
        "isjunction": False,
        "isshared": False,
        "isarchive": bool(row.get("Archive")),
        "ishidden": bool(row.get("Hidden")),
        "isreadonly": row.get("Writeable") is False,
        "attributes": ", ".join(attributes),
        "creationtime": _epoch(row.get("CreationDate")),
        "lastwritetime": _epoch(row.get("LastModified")),
        "lastaccesstime": _epoch(row.get("LastAccessed")),
        "nlink": 1,
        "hlnk_targets": [],
    }
    if not is_dir and row.get("FileSize") is not None:
        out["size"] = int(str(row["FileSize"]))
    return out


def remote_sha1(ctx: ModuleContext, path: str) -> str:
    res = _checked(
        _ps(
            ctx,
            [
                "$h = New-Object System.Security.Cryptography.SHA1CryptoServiceProvider",
                f"[BitConverter]::ToString($h.ComputeHash(($s = [IO.File]::OpenRead({_q(path)})))).Replace('-', '')"
                ".ToLower()",
                "$s.Close()",
            ],
        ),
        f"checksum of {path}",
    )
    return res.stdout.strip().splitlines()[-1].strip() if res.stdout.strip() else ""


# --------------------------------------------------------------------------- win_stat


class StatArgs(ModuleArgs):
    path: str = Field(min_length=1, validation_alias=AliasChoices("path", "dest", "name"))
    get_checksum: bool = True
    checksum_algorithm: Literal["md5", "sha1", "sha256", "sha384", "sha512"] = "sha1"
    follow: bool = False
    get_size: bool = True

    @model_validator(mode="after")
    def _sha1(self) -> StatArgs:
        if self.get_checksum and self.checksum_algorithm != "sha1":
            raise ValueError("only checksum_algorithm sha1 is supported by kmsfleet")
        return self


@register
class WinStat(winwmi.AliasedModule[StatArgs]):
    name = "win_stat"
    args_model = StatArgs
    supports_check = True
    description = "Facts about a file or folder (WMI CIM_DataFile/Win32_Directory; SHA-1 checksum)."

    def run(self, ctx: ModuleContext, args: StatArgs) -> ModuleOutcome:
        path = _windows_path(args.path)
        stat = stat_path(ctx, path)
        if stat["exists"] and stat["isreg"] and args.get_checksum:
            stat["checksum"] = remote_sha1(ctx, path)
        return ModuleOutcome(data={"stat": stat})


# --------------------------------------------------------------------------- win_file


class FileArgs(ModuleArgs):
    path: str = Field(min_length=1, validation_alias=AliasChoices("path", "dest", "name"))
    state: Literal["file", "directory", "absent", "touch"] | None = None


@register
class WinFile(winwmi.AliasedModule[FileArgs]):
    name = "win_file"
    args_model = FileArgs
    supports_check = True
    description = "Create folders, touch or remove files and folders (state file/directory/absent/touch)."

    def run(self, ctx: ModuleContext, args: FileArgs) -> ModuleOutcome:
        path = _windows_path(args.path)
        stat = stat_path(ctx, path)
        kind = None if not stat["exists"] else ("directory" if stat["isdir"] else "file")
        state = args.state or (kind or "file")
        if state == "file":
            if kind is None:
                raise TaskFailed(f"path {path} will not be created")
            if kind == "directory":
                raise TaskFailed(f"path {path} exists but is a directory, not a file")
            return ModuleOutcome()
        if state == "directory" and kind == "directory":
            return ModuleOutcome()
        if state == "directory" and kind == "file":
            raise TaskFailed(f"path {path} exists but is a file, not a directory")
        if state == "absent" and kind is None:
            return ModuleOutcome()
        after = "absent" if state == "absent" else ("directory" if state == "directory" else "file")
        diff = {"before": {"path": path, "state": kind or "absent"}, "after": {"path": path, "state": after}}
        if ctx.check_mode:
            return ModuleOutcome(changed=True, msg=f"would make {path} {state}", diff=diff if ctx.diff else None)
        if state == "directory":
            lines = [f"[void][IO.Directory]::CreateDirectory({_q(path)})"]
        elif state == "absent":
            lines = [f"Remove-Item -LiteralPath {_q(path)} -Recurse -Force"]
        else:
            if kind == "directory":
                raise TaskFailed(f"path {path} is a directory; touch works on files")
            lines = [
                f"$f = [IO.File]::Open({_q(path)}, 'OpenOrCreate', 'Write')",
                "$f.Close()",
                f"[IO.File]::SetLastWriteTime({_q(path)}, [DateTime]::Now)",
            ]
        _checked(_ps(ctx, lines), f"win_file {state} {path}")
        return ModuleOutcome(changed=True, diff=diff if ctx.diff else None)


# --------------------------------------------------------------------------- win_copy / win_template


class CopyArgs(ModuleArgs):
    dest: str = Field(min_length=1)
    src: str | None = None
    content: str | None = None
    force: bool = True
    backup: bool = False
    remote_src: bool = False
    decrypt: bool = True
    local_follow: bool = True

    @model_validator(mode="after")
    def _one(self) -> CopyArgs:
        if (self.src is None) == (self.content is None):
            raise ValueError("give exactly one of 'src' or 'content'")
        if self.backup or self.remote_src:
            raise ValueError("'backup' and 'remote_src' are not supported by kmsfleet")
        return self


def controller_candidates(ctx: ModuleContext, src: str, folder: str) -> list[Path]:
    """Where Ansible looks for ``src`` on the controller: inside a role its ``templates/`` (``files/``) folder
    and the role's folder first, then the playbook's ``templates/`` (``files/``) and the playbook's folder."""
    path = Path(src)
    if path.is_absolute():
        return [path]
    places: list[Path] = []
    role_path = ctx.hostvars.get("role_path")
    if isinstance(role_path, str) and role_path:
        places += [Path(role_path) / folder, Path(role_path)]
    places += [Path(ctx.base_dir) / folder, Path(ctx.base_dir)]
    return [place / src for place in places]


def _local_file(ctx: ModuleContext, src: str, folder: str) -> Path:
    candidates = controller_candidates(ctx, src, folder)
    for cand in candidates:
        if cand.is_file():
            return cand
        if cand.is_dir():
            raise TaskFailed(f"src {src!r} is a directory: kmsfleet's win_copy copies single files")
    raise TaskFailed(f"could not find src {src!r} on the controller")


def copy_bytes(ctx: ModuleContext, data: bytes, dest: str, src: str | None, force: bool) -> ModuleOutcome:
    """Put ``data`` at ``dest`` unless an identical file is there; return win_copy's values."""
    if len(data) > MAX_COPY_BYTES:
        raise TaskFailed(
            f"{len(data)} bytes is more than kmsfleet's win_copy sends ({MAX_COPY_BYTES} bytes): copy large files "
            "from a share or with a software deployment tool"
        )
    target = _windows_path(dest)
    if dest.endswith(("\\", "/")) or stat_path(ctx, target).get("isdir"):
        if src is None:
            raise TaskFailed(f"dest {dest!r} is a folder: with 'content', dest must be a file path")
        target = f"{target.rstrip(chr(92))}\\{Path(src).name}"
    checksum = hashlib.sha1(data, usedforsecurity=False).hexdigest()
    values = {
        "dest": target,
        "src": src,
        "checksum": checksum,
        "size": len(data),
        "original_basename": Path(src).name if src else None,
        "operation": "file_copy",
    }
    current = stat_path(ctx, target)
    if current["exists"] and (not force or remote_sha1(ctx, target) == checksum):
        return ModuleOutcome(data=values)
    parent = str(PureWindowsPath(target).parent)
    # in check mode an earlier task of the play may be the one that creates the folder
    if not ctx.check_mode and not stat_path(ctx, parent).get("isdir"):
        raise TaskFailed(f"Destination directory '{parent}' does not exist", data=values)
    diff = None
    if ctx.diff:
        diff = {
            "before": {"path": target, "exists": current["exists"]},
            "after": {"path": target, "checksum": checksum},
        }
    if ctx.check_mode:
        return ModuleOutcome(changed=True, msg=f"would copy {len(data)} bytes to {target}", data=values, diff=diff)
    chunks = [data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)] or [b""]
    for index, chunk in enumerate(chunks):
        mode = "Create" if index == 0 else "Append"
        lines = [f"$f = [IO.File]::Open({_q(target)}, '{mode}', 'Write')"]
        if chunk:
            lines += [
                f"$b = [Convert]::FromBase64String('{base64.b64encode(chunk).decode()}')",
                "$f.Write($b, 0, $b.Length)",
            ]
        lines.append("$f.Close()")
        _checked(_ps(ctx, lines), f"writing {target}")
    written = remote_sha1(ctx, target)
    if written != checksum:
        raise TaskFailed(f"the copy of {target} has checksum {written}, expected {checksum}", data=values)
    return ModuleOutcome(changed=True, msg=f"copied {len(data)} bytes to {target}", data=values, diff=diff)


@register
class WinCopy(Module[CopyArgs]):
    name = "win_copy"
    args_model = CopyArgs
    supports_check = True
    description = "Copy a small file (src on the controller, or content) to the PC; SHA-1 checked."

    def run(self, ctx: ModuleContext, args: CopyArgs) -> ModuleOutcome:
        if args.content is not None:
            return copy_bytes(ctx, args.content.encode("utf-8"), args.dest, None, args.force)
        assert args.src is not None
        local = _local_file(ctx, args.src, "files")
        if local.stat().st_size > MAX_COPY_BYTES:
            raise TaskFailed(f"src {args.src!r} is larger than kmsfleet's win_copy sends ({MAX_COPY_BYTES} bytes)")
        return copy_bytes(ctx, local.read_bytes(), args.dest, args.src, args.force)


class TemplateArgs(ModuleArgs):
    src: str = Field(min_length=1)
    dest: str = Field(min_length=1)
    newline_sequence: Literal["\n", "\r", "\r\n"] = "\r\n"
    force: bool = True
    backup: bool = False
    output_encoding: str = "utf-8"

    @model_validator(mode="after")
    def _supported(self) -> TemplateArgs:
        if self.backup:
            raise ValueError("'backup' is not supported by kmsfleet")
        return self


def managed_text(setting: str, mtime: float) -> str:
    """``ansible_managed`` as ansible-core makes it from ansible.cfg's ``[defaults] ansible_managed``
    (``_generate_ansible_managed``): ``{host}``, ``{uid}`` and ``{file}`` become the templates
    ``{{ template_host }}``, ``{{ template_uid }}`` and ``{{ template_path }}`` (rendered where the text is used),
    then ``strftime`` codes take the template file's modification time."""
    try:
        text = setting.format(host="{{ template_host }}", uid="{{ template_uid }}", file="{{ template_path }}")
    except (KeyError, IndexError, ValueError) as exc:
        raise TaskFailed(
            f"ansible.cfg's ansible_managed {setting!r} cannot be formatted ({type(exc).__name__}: {exc}): "
            "only {host}, {uid} and {file} may appear in braces"
        ) from None
    return time.strftime(text, time.localtime(mtime))


def _owner(uid: int) -> str | int:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return uid


def template_vars(ctx: ModuleContext, src: str, local: Path, dest: str) -> dict[str, Any]:
    """The variables Ansible's win_template action adds (ansible-core ``generate_ansible_template_vars``):
    ``template_path`` (``src`` as written), ``template_fullpath``, ``template_destpath``, ``template_host``,
    ``template_uid``, ``template_mtime``, ``template_run_date``, and ``ansible_managed`` from ansible.cfg
    (read as the CLI reads it: ``ANSIBLE_CONFIG``, ``./ansible.cfg`` unless world-writable, ``~/.ansible.cfg``,
    ``/etc/ansible/ansible.cfg``) unless the play already defines it (ansible.windows keeps a user's value)."""
    info = local.stat()
    extra: dict[str, Any] = {
        "template_path": src,
        "template_fullpath": str(local.absolute()),
        "template_destpath": dest,
        "template_host": platform.node(),
        "template_uid": _owner(info.st_uid),
        "template_mtime": datetime.fromtimestamp(info.st_mtime),
        "template_run_date": datetime.now(),
    }
    if "ansible_managed" not in ctx.hostvars:
        try:
            setting = load_config().ansible_managed
        except KmsfleetError as exc:
            raise TaskFailed(str(exc)) from None
        extra["ansible_managed"] = managed_text(setting, info.st_mtime)
    return extra


def render_template(ctx: ModuleContext, src: str, local: Path, dest: str) -> str:
    """The template rendered with the task's variables plus ``template_vars``."""
    return str(ctx.render_with(local.read_text(encoding="utf-8"), template_vars(ctx, src, local, dest)))


@register
class WinTemplate(Module[TemplateArgs]):
    """Render a Jinja2 template on the controller (kmsfleet's sandbox, the task's variables) and copy the
    result as win_copy does. Lines end with CRLF unless ``newline_sequence`` says otherwise (as Ansible's)."""

    name = "win_template"
    args_model = TemplateArgs
    supports_check = True
    description = "Render a template locally (sandboxed Jinja2) and copy it to the PC."

    def run(self, ctx: ModuleContext, args: TemplateArgs) -> ModuleOutcome:
        local = _local_file(ctx, args.src, "templates")
        if local.stat().st_size > MAX_COPY_BYTES:
            raise TaskFailed(f"template {args.src!r} is larger than {MAX_COPY_BYTES} bytes")
        rendered = render_template(ctx, args.src, local, args.dest)
        text = args.newline_sequence.join(rendered.replace("\r\n", "\n").split("\n"))
        try:
            data = text.encode(args.output_encoding)
        except (LookupError, UnicodeEncodeError) as exc:
            raise TaskFailed(f"win_template: cannot encode the result as {args.output_encoding}: {exc}") from None
        return copy_bytes(ctx, data, args.dest, args.src, args.force)
