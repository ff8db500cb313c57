"""Ansible's Jinja tests (``failed``, ``changed``, ``match``, ``version`` …) as plain functions."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from jinja2.runtime import Undefined

from orchestrator.booleans import boolean
from orchestrator.templating.limits import _fail
from orchestrator.templating.regexes import _compile_regex, _regex_flags
from orchestrator.templating.values import _seq


def _result(value: Any, test: str) -> Mapping[str, Any]:
    if isinstance(value, Undefined):
        str(value)
    if not isinstance(value, Mapping):
        _fail(f"the '{test}' test expects a registered task result (a mapping), got {type(value).__name__}")
    return value


def t_failed(value: Any) -> bool:
    return bool(boolean(_result(value, "failed").get("failed", False)))


def t_success(value: Any) -> bool:
    return not t_failed(value)


def t_changed(value: Any) -> bool:
    result = _result(value, "changed")
    if isinstance(result.get("results"), list) and "changed" not in result:
        return any(isinstance(r, Mapping) and boolean(r.get("changed", False)) for r in result["results"])
    return boolean(result.get("changed", False))


def t_skipped(value: Any) -> bool:
    return boolean(_result(value, "skipped").get("skipped", False))


def t_unreachable(value: Any) -> bool:
    return boolean(_result(value, "unreachable").get("unreachable", False))


def t_reachable(value: Any) -> bool:
    return not t_unreachable(value)


def t_match(value: Any, pattern: str, ignorecase: bool = False, multiline: bool = False) -> bool:
    return _compile_regex(pattern, _regex_flags(ignorecase, multiline)).match(str(value)) is not None


def t_search(value: Any, pattern: str, ignorecase: bool = False, multiline: bool = False) -> bool:
    return _compile_regex(pattern, _regex_flags(ignorecase, multiline)).search(str(value)) is not None


def t_regex(
    value: Any, pattern: str, ignorecase: bool = False, multiline: bool = False, match_type: str = "search"
) -> bool:
    compiled = _compile_regex(pattern, _regex_flags(ignorecase, multiline))
    if match_type not in ("search", "match", "fullmatch"):
        _fail("regex test: match_type must be search, match or fullmatch")
    return getattr(compiled, match_type)(str(value)) is not None


_VERSION_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "=": operator.eq, "eq": operator.eq,
    "!=": operator.ne, "<>": operator.ne, "ne": operator.ne,
    "<": operator.lt, "lt": operator.lt, "<=": operator.le, "le": operator.le,
    ">": operator.gt, "gt": operator.gt, ">=": operator.ge, "ge": operator.ge,
}  # fmt: skip


_LOOSE = re.compile(r"(\d+|[a-z]+|\.)", re.IGNORECASE)


_STRICT = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:([ab])(\d+))?$")


_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


def _version_key(text: str, kind: str) -> tuple[Any, ...]:
    if kind == "strict":
        m = _STRICT.match(text)
        if not m:
            _fail(f"invalid strict version {text!r}")
        pre = (0, m.group(4), int(m.group(5))) if m.group(4) else (1, "", 0)
        return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0), pre)
    if kind in ("semver", "semantic"):
        m = _SEMVER.match(text)
        if not m:
            _fail(f"invalid semantic version {text!r}")
        pre_parts: tuple[Any, ...] = (1,)
        if m.group(4):
            pre_parts = (0, *((0, int(p), "") if p.isdigit() else (1, 0, p) for p in m.group(4).split(".")))
        return (int(m.group(1)), int(m.group(2)), int(m.group(3)), pre_parts)
    parts: list[tuple[int, int, str]] = []
    for comp in _LOOSE.findall(text):
        if comp == ".":
            continue
        parts.append((1, int(comp), "") if comp.isdigit() else (0, 0, comp.lower()))
    return tuple(parts)


def t_version(
    value: Any, version: Any, operator: str = "eq", strict: bool = False, version_type: str | None = None
) -> bool:
    kind = version_type or ("strict" if strict else "loose")
    if kind not in ("loose", "strict", "semver", "semantic", "pep440"):
        _fail(f"version: unknown version_type {kind!r} (loose, strict, semver, semantic, pep440)")
    if kind == "pep440":
        kind = "loose"
    op = _VERSION_OPS.get(str(operator))
    if op is None:
        _fail(f"version: invalid operator {operator!r} (use one of {', '.join(_VERSION_OPS)})")
    if value in (None, "") or version in (None, ""):
        _fail("version: both versions must be given")
    return op(_version_key(str(value), kind), _version_key(str(version), kind))


def t_contains(seq: Any, value: Any) -> bool:
    try:
        return value in seq
    except TypeError:
        return False


def t_subset(a: Any, b: Any) -> bool:
    right = _seq(b, "subset")
    return all(x in right for x in _seq(a, "subset"))


def t_superset(a: Any, b: Any) -> bool:
    return t_subset(b, a)


def t_truthy(value: Any, convert_bool: bool = False) -> bool:
    if convert_bool and isinstance(value, str | int):
        return boolean(value)
    return bool(value)


def t_falsy(value: Any, convert_bool: bool = False) -> bool:
    return not t_truthy(value, convert_bool)


def t_any(value: Any) -> bool:
    return any(_seq(value, "any"))


def t_all(value: Any) -> bool:
    return all(_seq(value, "all"))


#: The tests kmsfleet adds to Jinja's own (Ansible's names and aliases).
TESTS: dict[str, Callable[..., Any]] = {
    "success": t_success,
    "succeeded": t_success,
    "successful": t_success,
    "nan": lambda v: isinstance(v, float) and math.isnan(v),
    "isnan": lambda v: isinstance(v, float) and math.isnan(v),
    "failed": t_failed,
    "failure": t_failed,
    "changed": t_changed,
    "change": t_changed,
    "skipped": t_skipped,
    "skip": t_skipped,
    "reachable": t_reachable,
    "unreachable": t_unreachable,
    "match": t_match,
    "search": t_search,
    "regex": t_regex,
    "version": t_version,
    "version_compare": t_version,
    "contains": t_contains,
    "subset": t_subset,
    "superset": t_superset,
    "issubset": t_subset,
    "issuperset": t_superset,
    "truthy": t_truthy,
    "falsy": t_falsy,
    "any": t_any,
    "all": t_all,
}
