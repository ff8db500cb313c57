"""``include_vars``: variables from a YAML file, or a folder of them, on the controller, for the rest of the play
on this host.

As Ansible's action (ansible-core ``lib/ansible/plugins/action/include_vars.py``): a ``file`` is looked up in the
role's ``vars/`` folder and the role's folder first, then the playbook's ``vars/`` and the playbook's folder; a
``dir`` is read at run time in Ansible's order (``include_vars_dir``); ``name`` puts the variables under one key;
``hash_behaviour: merge`` merges them into the mappings already defined; the task returns
``ansible_included_var_files``. Values keep their templates (rendered when used) and a file encrypted with Ansible
Vault is decrypted as ``vars_files`` are."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from orchestrator.errors import KmsfleetError
from orchestrator.modules.base import Module, ModuleArgs, ModuleContext, ModuleOutcome, TaskFailed, register
from orchestrator.modules.include_vars_dir import DEFAULT_EXTENSIONS, FolderQuery, read_folder, resolve_dir
from orchestrator.modules.win_files import controller_candidates
from orchestrator.varsfile import load_vars_file

#: Ansible's VALID_DIR_ARGUMENTS: they cannot be mixed with ``file``
FOLDER_ARGS = ("dir", "depth", "files_matching", "ignore_files", "extensions", "ignore_unknown_extensions")


def _regex(pattern: str, what: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{what}: invalid regular expression {pattern!r} ({exc})") from None
    return pattern


class IncludeVarsArgs(ModuleArgs):
    file: str | None = None
    name: str | None = None
    dir: str | None = None
    depth: int | None = Field(None, ge=0)
    files_matching: str | None = None
    ignore_files: list[str] | str | None = None
    extensions: list[str] | None = None
    ignore_unknown_extensions: bool | None = None
    hash_behaviour: Literal["replace", "merge"] | None = None

    @field_validator("files_matching")
    @classmethod
    def _matching(cls, value: str | None) -> str | None:
        return None if value is None else _regex(value, "files_matching")

    @field_validator("ignore_files")
    @classmethod
    def _ignored(cls, value: list[str] | str | None) -> list[str] | str | None:
        for pattern in value.split() if isinstance(value, str) else value or []:
            _regex(pattern, "ignore_files")
        return value

    @model_validator(mode="after")
    def _file_or_dir(self) -> IncludeVarsArgs:
        folder = [a for a in FOLDER_ARGS if getattr(self, a) is not None]
        if folder and self.file is not None:
            # Ansible's own words for the same mistake
            raise ValueError("You are mixing file only and dir only arguments, these are incompatible")
        if folder and self.dir is None:
            raise ValueError(f"{', '.join(folder)} need 'dir' (the folder to read)")
        if self.file is None and self.dir is None:
            raise ValueError("include_vars needs a file or a dir (include_vars: vars/site.yml)")
        return self

    def folder_query(self, root: Path) -> FolderQuery:
        ignored = self.ignore_files.split() if isinstance(self.ignore_files, str) else self.ignore_files or []
        return FolderQuery(
            root=root,
            depth=self.depth or 0,
            files_matching=self.files_matching,
            ignore_files=tuple(ignored),
            extensions=tuple(self.extensions) if self.extensions is not None else DEFAULT_EXTENSIONS,
            ignore_unknown_extensions=bool(self.ignore_unknown_extensions),
        )


def _kind(value: Any) -> str:
    """The type's name as Ansible shows it (kmsfleet's located YAML mappings and lists are dicts and lists)."""
    return "dict" if isinstance(value, Mapping) else "list" if isinstance(value, list) else type(value).__name__


def merge_hash(old: Any, new: Any) -> dict[str, Any]:
    """ansible-core ``merge_hash`` (``utils/vars.py``): ``new`` merged into ``old`` recursively, lists replaced;
    both must be mappings, as there."""
    if not (isinstance(old, Mapping) and isinstance(new, Mapping)):
        raise TaskFailed(f"failed to combine variables, expected dicts but got a '{_kind(old)}' and a '{_kind(new)}'")
    out = dict(old)
    for key, value in new.items():
        mine = out.get(key)
        out[key] = merge_hash(mine, value) if isinstance(mine, Mapping) and isinstance(value, Mapping) else value
    return out


def _one_file(ctx: ModuleContext, file: str) -> tuple[dict[str, Any], list[str]]:
    candidates = controller_candidates(ctx, file, "vars")
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        looked = ", ".join(str(c) for c in candidates)
        raise TaskFailed(f"could not find {file} (looked in {looked})")
    try:
        return load_vars_file(found), [str(found.absolute())]
    except KmsfleetError as exc:
        raise TaskFailed(str(exc)) from None


def _folder(ctx: ModuleContext, args: IncludeVarsArgs) -> tuple[dict[str, Any], list[str]]:
    assert args.dir is not None
    role_path = ctx.hostvars.get("role_path")
    written_in = Path(ctx.task_file) if ctx.task_file else None  # "<task>" for tasks kmsfleet makes itself
    task_dir = written_in.parent if written_in is not None and written_in.is_file() else Path(ctx.base_dir)
    root = resolve_dir(args.dir, role_path if isinstance(role_path, str) else None, task_dir)
    found = read_folder(args.folder_query(root))
    return found.values, found.files


@register
class IncludeVars(Module[IncludeVarsArgs]):
    name = "include_vars"
    args_model = IncludeVarsArgs
    free_form = "file"
    supports_check = True
    uses_connection = False
    description = "Load variables from a YAML file or folder on the controller (role vars/ first)."

    def run(self, ctx: ModuleContext, args: IncludeVarsArgs) -> ModuleOutcome:
        try:
            if args.file is not None:
                loaded, files = _one_file(ctx, args.file)
            else:
                loaded, files = _folder(ctx, args)
            values = {args.name: loaded} if args.name else loaded
            if args.hash_behaviour == "merge":  # 'replace' is Ansible's default: nothing to combine
                values = {key: merge_hash(ctx.hostvars.get(key), value) for key, value in values.items()}
        except TaskFailed as failed:
            # Ansible's action reports its reason under 'message'
            raise TaskFailed(failed.msg, data={"message": failed.msg, "ansible_included_var_files": []}) from None
        return ModuleOutcome(facts=values, data={"ansible_facts": values, "ansible_included_var_files": files})


__all__ = ["IncludeVars", "IncludeVarsArgs", "merge_hash"]
