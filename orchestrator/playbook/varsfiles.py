"""Variables files: ``vars_files`` of a play and ``-e @file`` on the command line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import InputError, Location
from orchestrator.templating import is_template
from orchestrator.varsfile import load_vars_file

if TYPE_CHECKING:
    from orchestrator.playbook.models import Play
    from orchestrator.templating import Templar


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
