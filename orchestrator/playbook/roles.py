"""Finding and reading Ansible roles: ``roles/<name>/{tasks,handlers,defaults,vars,meta}/main.yml``.

The search order is Ansible's (docs.ansible.com, "Roles" → "Storing and finding roles"): a path as written
(relative to the playbook), ``roles/`` next to the playbook, each ``roles_path`` directory (ansible.cfg
``[defaults] roles_path`` or ``ANSIBLE_ROLES_PATH``), then the playbook's own directory.

Collection roles (``namespace.collection.role``) are not installed by kmsfleet (there is no Galaxy): such a name
is looked up by its last part on the same paths, so a role copied into ``roles/<role>`` runs; otherwise the
error says how to make it available.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import InputError, Location
from orchestrator.varsfile import check_vars
from orchestrator.yamlsource import load_yaml_file

#: the sub-directories Ansible knows in a role (files/ and templates/ hold data, not YAML to load)
ROLE_DIRS = ("tasks", "handlers", "defaults", "vars", "meta", "files", "templates", "library", "module_utils")


@dataclass(frozen=True)
class RoleDir:
    name: str  # as written (``kms_client``, ``acme.win.kms_client``, ``../roles/kms``)
    path: Path


def role_candidates(name: str, playbook_dir: Path, roles_path: Sequence[Path]) -> list[Path]:
    """Where ``name`` may live, in Ansible's order."""
    if "/" in name or "\\" in name or name.startswith("."):
        path = Path(name).expanduser()
        return [path if path.is_absolute() else playbook_dir / path]
    short = name.rsplit(".", 1)[-1] if name.count(".") >= 2 else name
    places = [playbook_dir / "roles", *roles_path, playbook_dir]
    return [place / short for place in places]


def find_role(name: str, playbook_dir: Path, roles_path: Sequence[Path], at: Location) -> RoleDir:
    candidates = role_candidates(name, playbook_dir, roles_path)
    for path in candidates:
        if path.is_dir() and any((path / d).is_dir() for d in ROLE_DIRS):
            return RoleDir(name, path.absolute())
    looked = ", ".join(str(c) for c in candidates)
    hint = "put the role in roles/<name>/ next to the playbook, or add its folder to roles_path in ansible.cfg"
    if name.count(".") >= 2:
        hint = (
            "collections are not installed by kmsfleet (no ansible-galaxy); copy the role's folder to "
            f"roles/{name.rsplit('.', 1)[-1]}/ next to the playbook or onto roles_path"
        )
    close = _close_role(name, candidates)
    suggestion = f" — did you mean '{close}'?" if close else ""
    raise InputError(f"role '{name}' not found (looked in {looked}){suggestion}", at, hint)


def _close_role(name: str, candidates: Sequence[Path]) -> str | None:
    """A role folder on the searched paths whose name is close to ``name`` (difflib ratio ≥ 0.8, as the
    playbook's other did-you-mean messages), or None."""
    wanted = candidates[0].name if candidates else name
    found: set[str] = set()
    for place in {c.parent for c in candidates}:
        try:
            entries = list(place.iterdir()) if place.is_dir() else []
        except OSError:
            continue
        for entry in entries[:1000]:  # bounded: a roles folder holds a few dozen roles
            if entry.is_dir() and any((entry / d).is_dir() for d in ROLE_DIRS):
                found.add(entry.name)
    match = difflib.get_close_matches(wanted, sorted(found), n=1, cutoff=0.8)
    return match[0] if match else None


def role_file(role: RoleDir, section: str, stem: str | None, at: Location, *, required: bool) -> Path | None:
    """``<role>/<section>/<stem>.yml`` (``.yaml`` or no extension as well); ``stem`` defaults to ``main``."""
    base = role.path / section
    name = stem or "main"
    for candidate in (base / f"{name}.yml", base / f"{name}.yaml", base / name):
        if candidate.is_file():
            # Ansible refuses a ``*_from`` file outside the role's folder (``is_subpath`` on the normalised path:
            # "Failed loading … as it is not inside the expected role path"); a symlink inside it is followed.
            if not Path(os.path.normpath(candidate)).is_relative_to(os.path.normpath(base)):
                raise InputError(
                    f"role '{role.name}': {section}/{name} is not inside the expected role path",
                    at,
                    hint=f"{section}_from names a file in {base}",
                )
            return candidate
    if required or stem is not None:
        raise InputError(f"role '{role.name}' has no {section}/{name}.yml", at, hint=f"looked in {base}")
    return None


def role_vars_file(role: RoleDir, section: str, stem: str | None, at: Location) -> dict[str, Any]:
    """The mapping in ``defaults/`` or ``vars/`` (empty when the role has none)."""
    path = role_file(role, section, stem, at, required=False)
    if path is None:
        return {}
    data = load_yaml_file(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        where = getattr(data, "location", None) or Location(str(path))
        raise InputError(f"a role's {section} file must be a mapping of name: value", where)
    check_vars(data, Location(str(path)))
    return dict(data)


def role_dependencies(role: RoleDir) -> tuple[list[Any], Location]:
    """``meta/main.yml`` ``dependencies`` (names or mappings, as written), and where they were written."""
    path = role_file(role, "meta", None, Location(str(role.path)), required=False)
    if path is None:
        return [], Location(str(role.path))
    data = load_yaml_file(path)
    where = getattr(data, "location", None) or Location(str(path))
    if data is None:
        return [], where
    if not isinstance(data, dict):
        raise InputError("a role's meta/main.yml must be a mapping", where)
    deps = data.get("dependencies")
    if deps is None:
        return [], where
    if not isinstance(deps, list):
        raise InputError("'dependencies' must be a list of roles", where)
    return list(deps), getattr(deps, "location", None) or where


__all__ = ["ROLE_DIRS", "RoleDir", "find_role", "role_candidates", "role_dependencies", "role_file", "role_vars_file"]
