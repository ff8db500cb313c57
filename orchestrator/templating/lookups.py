"""Lookup plugins (``lookup('env', …)``, ``lookup('file', …)``, ``lookup('vars', …)``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2.runtime import Undefined
from jinja2.utils import missing

from orchestrator.booleans import boolean
from orchestrator.templating.limits import MAX_LOOKUP_FILE, _fail
from orchestrator.templating.sandbox import _UndefinedUse

if TYPE_CHECKING:  # the templar calls the lookups; they only read its variables and folder
    from orchestrator.templating.templar import Templar


def _lookup_env(templar: Templar, terms: list[Any], kwargs: dict[str, Any]) -> list[Any]:
    default = kwargs.pop("default", "")
    if kwargs:
        _fail(f"lookup('env'): unknown option(s) {', '.join(kwargs)} (known: default)")
    out: list[Any] = []
    for term in terms:
        name = str(term)
        if name in os.environ:
            out.append(os.environ[name])
        elif isinstance(default, Undefined):
            _fail(f"environment variable {name!r} is not set")
        else:
            out.append(default)
    return out


def _lookup_file(templar: Templar, terms: list[Any], kwargs: dict[str, Any]) -> list[Any]:
    rstrip = boolean(kwargs.pop("rstrip", True))
    lstrip = boolean(kwargs.pop("lstrip", False))
    if kwargs:
        _fail(f"lookup('file'): unknown option(s) {', '.join(kwargs)} (known: rstrip, lstrip)")
    out: list[Any] = []
    for term in terms:
        rel = Path(str(term))
        base = templar.base_dir or Path.cwd()
        candidates = [rel] if rel.is_absolute() else [base / "files" / rel, base / rel]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            looked = ", ".join(str(c) for c in candidates)
            _fail(f"lookup('file'): file not found: {term} (looked in {looked})")
        try:
            if found.stat().st_size > MAX_LOOKUP_FILE:
                _fail(f"lookup('file'): {found} is larger than {MAX_LOOKUP_FILE // 1024} KiB")
            text = found.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError:
            _fail(f"lookup('file'): {found} is not UTF-8 text")
        except OSError as exc:
            _fail(f"lookup('file'): cannot read {found}: {exc.strerror}")
        if rstrip:
            text = text.rstrip()
        if lstrip:
            text = text.lstrip()
        out.append(text)
    return out


def _lookup_vars(templar: Templar, terms: list[Any], kwargs: dict[str, Any]) -> list[Any]:
    default = kwargs.pop("default", missing)
    out: list[Any] = []
    for term in terms:
        name = str(term)
        if name in templar.variables:
            value = templar._resolve(name)
            if isinstance(value, Undefined):
                str(value)
            out.append(value)
        elif default is not missing:
            out.append(default)
        else:
            raise _UndefinedUse(f"{name!r} is undefined", name, missing, ())
    return out


def _lookup_dict(templar: Templar, terms: list[Any], kwargs: dict[str, Any]) -> list[Any]:
    """Ansible's ``dict`` lookup: each mapping as ``[{"key": k, "value": v}, …]`` (``with_dict``'s items)."""
    del templar, kwargs
    out: list[Any] = []
    for term in terms:
        if not isinstance(term, Mapping):
            _fail(f"lookup('dict') needs a mapping (Ansible: with_dict expects a dict), not {type(term).__name__}")
        out.extend({"key": k, "value": v} for k, v in term.items())
    return out


#: Lookup plugins by name. A process may replace entries (the distributed worker narrows ``env`` and ``file``).
LOOKUPS: dict[str, Callable[[Templar, list[Any], dict[str, Any]], list[Any]]] = {
    "env": _lookup_env,
    "file": _lookup_file,
    "vars": _lookup_vars,
    "dict": _lookup_dict,
}
