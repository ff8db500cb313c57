"""One variables file (``vars_files``, ``include_vars``, ``-e @file``, ``group_vars``): a YAML mapping whose names
are identifiers, its secret-looking values registered for redaction. It sits below the inventory, the playbook
loader and the modules, which all read such files."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from orchestrator.errors import InputError, Location
from orchestrator.redact import register_secrets as register_secret_texts
from orchestrator.yamlsource import LocatedDict, load_yaml_file

#: Variable names whose values are secrets (ansible_password, ansible_become_pass, api_token …).
SECRET_NAME = re.compile(r"(password|passwd|(^|_)pass$|secret|token|credential|api_?key)", re.IGNORECASE)


def register_secrets(variables: Mapping[str, Any]) -> None:
    """Register every secret-looking value (by its variable name) with ``orchestrator.redact``, in one batch.
    Templates are not secrets themselves (their rendered value is registered when it is rendered)."""
    register_secret_texts(secret_values(variables))


def secret_values(variables: Mapping[str, Any], depth: int = 0) -> Iterator[str]:
    """The secret-looking values of ``variables`` (nested mappings included), templates left out."""
    if depth > 50:
        return
    for key, value in variables.items():
        if isinstance(value, Mapping):
            yield from secret_values(value, depth + 1)
            continue
        if not isinstance(key, str) or not SECRET_NAME.search(key):
            continue
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, str | int | float):
            text = str(value)
            if "{{" not in text and "{%" not in text:
                yield text


def check_vars(variables: Mapping[str, Any], at: Location) -> None:
    """Variable names must be identifiers; secret-looking values are registered for redaction."""
    for key in variables:
        if not isinstance(key, str) or not key.isidentifier():
            where = variables.key_locations.get(key, at) if isinstance(variables, LocatedDict) else at
            raise InputError(
                f"invalid variable name {key!r}",
                where,
                hint="variable names are letters, digits and underscores, not starting with a digit",
            )
    register_secrets(variables)


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
