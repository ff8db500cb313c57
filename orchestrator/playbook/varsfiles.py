"""Variables files: ``vars_files`` of a play and ``-e @file`` on the command line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import InputError, Location
from orchestrator.templating import is_template
from orchestrator.varsfile import load_vars_file

if TYPE_CHECKING:
    from orchestrator.playbook.models import Play
    from orchestrator.templating import Templar


@dataclass(frozen=True)
class VarsFileSpec:
    """One ``vars_files`` entry as the plan carries it: its candidate paths as written (templates allowed; the
    first existing file is used) and the play's folder, which relative paths start from."""

    candidates: tuple[Any, ...]
    base_dir: str
    location: Location | None = None


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


def vars_file_specs(play: Play) -> tuple[VarsFileSpec, ...]:
    """A loaded play's ``vars_files`` as plan data."""
    base = str(play.base_dir)
    return tuple(VarsFileSpec(tuple(ref.candidates), base, ref.location) for ref in play.vars_files)


def load_vars_files(files: Sequence[VarsFileSpec], templar: Templar | None = None) -> dict[str, Any]:
    """The merged variables of a play's ``vars_files`` (later files win). Templated paths are rendered with
    ``templar`` (host variables, extra vars …); a list entry uses the first file that exists."""
    merged: dict[str, Any] = {}
    for ref in files:
        candidates = [_candidate(raw, ref, templar) for raw in ref.candidates]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise vars_file_missing(candidates, [str(c) for c in candidates], ref.location)
        merged.update(load_vars_file(found))
    return merged


def _candidate(raw: Any, ref: VarsFileSpec, templar: Templar | None) -> Path:
    text = raw
    if is_template(raw):
        if templar is None:
            raise InputError(f"vars_files entry {raw!r} is a template and needs variables", ref.location)
        text = templar.render(raw)
    if not isinstance(text, str) or not text:
        raise InputError(f"vars_files entry {raw!r} did not give a file name", ref.location)
    path = Path(text)
    return path if path.is_absolute() else Path(ref.base_dir) / path
