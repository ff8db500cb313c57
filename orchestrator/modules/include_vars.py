"""``include_vars``: variables from a YAML file on the controller, for the rest of the play on this host.

As Ansible's action (ansible.builtin.include_vars): the file is looked up in the role's ``vars/`` folder and the
role's folder first, then the playbook's ``vars/`` and the playbook's folder; ``name`` puts the variables under one
key; the task returns ``ansible_included_var_files``. Values keep their templates (rendered when used) and a file
encrypted with Ansible Vault is decrypted as ``vars_files`` are. Reading a folder (``dir``, ``files_matching`` …)
is refused: kmsfleet validates every playbook before a PC is contacted and a folder's files are not known then."""

from __future__ import annotations

from typing import Any

from pydantic import model_validator

from orchestrator.errors import KmsfleetError
from orchestrator.modules.base import Module, ModuleArgs, ModuleContext, ModuleOutcome, TaskFailed, register
from orchestrator.modules.win_files import controller_candidates
from orchestrator.varsfile import load_vars_file

#: include_vars arguments for reading a folder or merging, which kmsfleet does not implement
FOLDER_ARGS = ("dir", "files_matching", "ignore_files", "extensions", "ignore_unknown_extensions", "depth")


class IncludeVarsArgs(ModuleArgs):
    file: str | None = None
    name: str | None = None
    dir: Any = None
    files_matching: Any = None
    ignore_files: Any = None
    extensions: Any = None
    ignore_unknown_extensions: Any = None
    depth: Any = None
    hash_behaviour: str | None = None

    @model_validator(mode="after")
    def _supported(self) -> IncludeVarsArgs:
        given = [a for a in FOLDER_ARGS if getattr(self, a) is not None]
        if given:
            raise ValueError(
                f"{', '.join(given)} not supported by kmsfleet (it reads one file: include_vars: file.yml)"
            )
        if self.hash_behaviour not in (None, "replace"):
            raise ValueError("hash_behaviour: only 'replace' (Ansible's default) is supported by kmsfleet")
        if self.file is None:
            raise ValueError("include_vars needs a file (include_vars: vars/site.yml)")
        return self


@register
class IncludeVars(Module[IncludeVarsArgs]):
    name = "include_vars"
    args_model = IncludeVarsArgs
    free_form = "file"
    supports_check = True
    uses_connection = False
    description = "Load variables from a YAML file on the controller (role vars/ first)."

    def run(self, ctx: ModuleContext, args: IncludeVarsArgs) -> ModuleOutcome:
        assert args.file is not None  # the validator requires it
        candidates = controller_candidates(ctx, args.file, "vars")
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            looked = ", ".join(str(c) for c in candidates)
            raise TaskFailed(f"could not find {args.file} (looked in {looked})")
        try:
            loaded = load_vars_file(found)
        except KmsfleetError as exc:
            raise TaskFailed(str(exc)) from None
        values = {args.name: loaded} if args.name else loaded
        return ModuleOutcome(
            facts=values,
            data={"ansible_facts": values, "ansible_included_var_files": [str(found.absolute())]},
        )


__all__ = ["IncludeVars", "IncludeVarsArgs"]
