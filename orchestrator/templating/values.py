"""Template data helpers: what counts as a template, ``omit``, ``!unsafe`` marking, lazy mappings, and how
native results become plain data or text (within the size limits)."""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from jinja2.runtime import Undefined
from markupsafe import Markup

from orchestrator.redact import redact_text
from orchestrator.results.packed import Packer
from orchestrator.templating.frozen import FrozenVars
from orchestrator.templating.limits import (
    MAX_DATA_DEPTH,
    MAX_ITEMS,
    MAX_STRING,
    _check_size,
    _fail,
    _FilterFailure,
    _Limit,
)
from orchestrator.yamlsource import UnsafeText

#: Ansible's ``omit``: an argument whose rendered value is exactly this is dropped (see ``remove_omitted``).
OMIT = "__omit_place_holder__kmsfleet__"


_TEMPLATE_MARKERS = ("{{", "{%", "{#")


def is_template(text: Any) -> bool:
    """True when ``text`` is a string Jinja2 would change (``UnsafeText`` never is)."""
    return isinstance(text, str) and not isinstance(text, UnsafeText) and any(m in text for m in _TEMPLATE_MARKERS)


def _has_template(value: Any, depth: int = 0) -> bool:
    if isinstance(value, str):
        return is_template(value)
    if depth > MAX_DATA_DEPTH:
        return True  # let render() report the nesting
    if isinstance(value, LazyMapping):
        return False
    if isinstance(value, Mapping):
        return any(_has_template(k, depth + 1) or _has_template(v, depth + 1) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_template(v, depth + 1) for v in value)
    return False


def has_template(value: Any) -> bool:
    """True when ``value`` (any YAML data) holds a string Jinja2 would change."""
    return _has_template(value)


def freeze_vars(base: Mapping[str, Any], own: Mapping[str, Any], packer: Packer) -> FrozenVars | None:
    """``own`` packed over ``base`` as a compact ``FrozenVars`` (None when they cannot be frozen: keep them as
    they are)."""
    return FrozenVars.encode(base, own, packer)


class LazyMapping(Mapping[str, Any]):
    """A mapping that renders its own values on access: ``render()`` passes it through untouched."""

    def __getitem__(self, key: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def __iter__(self) -> Iterator[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError


def mark_unsafe(value: Any) -> Any:
    """Mark every string in ``value`` as never-to-be-templated (for registered results and facts, which come
    from the remote host and must not be executed as templates)."""
    if isinstance(value, UnsafeText):
        return value
    if isinstance(value, str):
        return UnsafeText(value)
    if isinstance(value, Mapping):
        return {k: mark_unsafe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mark_unsafe(v) for v in value]
    return value


def remove_omitted(value: Any) -> Any:
    """Drop mapping entries whose value is ``omit`` (recursively), like Ansible does for module arguments."""
    if isinstance(value, Mapping):
        return {k: remove_omitted(v) for k, v in value.items() if not (isinstance(v, str) and v == OMIT)}
    if isinstance(value, list):
        return [remove_omitted(v) for v in value if not (isinstance(v, str) and v == OMIT)]
    return value


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    match = difflib.get_close_matches(word, [c for c in choices if isinstance(c, str)], n=1, cutoff=0.6)
    return f" — did you mean '{match[0]}'?" if match else ""


def _text_concat(values: Iterable[Any]) -> str:
    """How macro bodies, ``{% set %}…{% endset %}`` blocks and recursive loops join their output."""
    out: list[str] = []
    size = 0
    for value in values:
        text = _to_text(value)
        size += len(text)
        if size > MAX_STRING:
            raise _Limit(f"the template built a string longer than {MAX_STRING} characters")
        out.append(text)
    return "".join(out)


def _plain(value: Any, depth: int = 0) -> Any:
    """Plain JSON/YAML-able data: dict/list/str subclasses become the base types."""
    if depth > MAX_DATA_DEPTH:
        raise _Limit("data is nested too deeply")
    if isinstance(value, Undefined):
        str(value)  # raises the undefined error
    if isinstance(value, bool) or value is None or isinstance(value, int | float):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {(str(k) if isinstance(k, str) else k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset | range | Iterator):
        return [_plain(v, depth + 1) for v in value]
    return str(value)


def _seq(value: Any, name: str) -> list[Any]:
    if isinstance(value, Undefined):
        str(value)
    if isinstance(value, str | Mapping) or not isinstance(value, Iterable):
        _fail(f"{name} expects a list, got {type(value).__name__}")
    out = list(value)
    return _check_size(out)


def _contains_secret(value: Any, depth: int = 0) -> bool:
    if isinstance(value, str):
        return redact_text(value) != value
    if depth > MAX_DATA_DEPTH:
        return False
    if isinstance(value, Mapping) and not isinstance(value, LazyMapping):
        return any(_contains_secret(v, depth + 1) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_contains_secret(v, depth + 1) for v in value)
    return False


def _snippet(source: Any) -> str:
    if isinstance(source, str) and source:
        text = source if len(source) <= 120 else source[:117] + "..."
        return repr(text)
    return ""


def _to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Undefined):
        return str(value)  # raises
    if isinstance(value, types.GeneratorType | list | tuple | Mapping):
        value = _finalize(value, 0)  # as Ansible prints them: tuples (dictsort, items()) as lists
    return str(value)


def _finalize(value: Any, depth: int) -> Any:
    """A native result as plain data: generators become lists, undefined raises, Markup becomes str."""
    if depth > MAX_DATA_DEPTH:
        raise _Limit("the result is nested too deeply")
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Undefined):
        str(value)  # raises the precise undefined error
    if isinstance(value, Markup):
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, Mapping):
        return {k: _finalize(v, depth + 1) for k, v in value.items()}
    if callable(value):
        raise _FilterFailure("the template produced a function, not a value (missing parentheses?)")
    if isinstance(value, Iterable):
        out: list[Any] = []
        for item in value:
            out.append(_finalize(item, depth + 1))
            if len(out) > MAX_ITEMS:
                raise _Limit(f"the result has more than {MAX_ITEMS} items")
        return out
    return str(value)
