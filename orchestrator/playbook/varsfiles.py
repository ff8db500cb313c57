"""Variables files: ``vars_files`` of a play and ``-e @file`` on the command line."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import InputError, Location
from orchestrator.templating import is_template
from orchestrator.yamlsource import LocatedDict, load_yaml_file

if TYPE_CHECKING:
    from orchestrator.playbook.models import Play
    from orchestrator.templating import Templar


def check_vars(variables: Mapping[str, Any], at: Location) -> None:
    """Variable names must be identifiers; secret-looking values are registered for redaction."""
    from orchestrator.inventory._util import register_secrets

    for key in variables:
        if not isinstance(key, str) or not key.isidentifier():
            where = variables.key_locations.get(key, at) if isinstance(variables, LocatedDict) else at
            raise InputError(
                f"invalid variable name {key!r}",
                where,
                hint="variable names are letters, digits and underscores, not starting with a digit",
            )
    register_secrets(variables)


def vars_file_missing(candidates: list[Path], named: list[str], at: Location | None) -> InputError:
    """The error for a vars_files entry none of whose ``candidates`` is a file (``named`` as the user wrote them)."""
    folder = next((c for c in candidates if c.is_dir()), None)
    if folder is not None:
        return InputError(
            f"vars_files entry {folder.name!r} is a folder; vars_files takes YAML files",
            at,
            hint=f"name a file inside it, e.g. {folder / 'main.yml'}",
        )
    return InputError(f"vars file not found: {', '.join(named)}", at)


def load_vars_file(path: str | Path) -> dict[str, Any]:
    """A YAML/JSON file holding a mapping of variables (an empty file is an empty mapping)."""
    data = load_yaml_file(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(
            f"a variables file must be a mapping of name: value, not {type(data).__name__}",
            getattr(data, "location", None) or Location(str(path)),
        )
    check_vars(data, Location(str(path)))
    return data


def load_vars_files(play: Play, templar: Templar | None = None) -> dict[str, Any]:
    """The merged variables of ``play.vars_files`` (later files win). Templated paths are rendered with
    ``templar`` (host variables, extra vars …); a list entry uses the first file that exists."""
    merged: dict[str, Any] = {}
    for ref in play.vars_files:
        candidates: list[Path] = []
        for raw in ref.candidates:
            text = raw
            if is_template(raw):
                if templar is None:
                    raise InputError(f"vars_files entry {raw!r} is a template and needs variables", ref.location)
                text = templar.render(raw)
            if not isinstance(text, str) or not text:
                raise InputError(f"vars_files entry {raw!r} did not give a file name", ref.location)
            path = Path(text)
            candidates.append(path if path.is_absolute() else play.base_dir / path)
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise vars_file_missing(candidates, [str(c) for c in candidates], ref.location)
        merged.update(load_vars_file(found))
    return merged
