"""Ansible's filters (``to_json``, ``regex_replace``, ``combine`` …) as plain
functions, and the wrapper that size-checks each filter's result."""

from __future__ import annotations

import base64
import functools
import hashlib
import itertools
import json
import math
import ntpath
import posixpath
import re
import shlex
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import regex
import yaml
from jinja2 import pass_environment
from jinja2.filters import do_unique
from jinja2.runtime import Undefined

from orchestrator.templating.limits import (
    MAX_ITEMS,
    MAX_STRING,
    _check_format_string,
    _check_join,
    _check_replace,
    _check_size,
    _fail,
    _int_too_big,
    _Limit,
)
from orchestrator.templating.regexes import _compile_regex, _regex_flags
from orchestrator.templating.values import _plain, _seq


def f_bool_filter(value: Any) -> bool:
    """The ``bool`` filter exactly as Ansible's: 'yes', 'on', 'true', '1' (any case), 1 and True are true;
    everything else ('y', 't', ' yes', 'foo', None …) is false. Deliberately narrower than
    ``orchestrator.booleans``: Ansible documents the filter's own list (``plugins/filter/bool.yml``: True,
    'yes', 'on', '1', 'true', 1)."""
    if isinstance(value, str):
        return value.lower() in ("yes", "on", "true", "1")
    if isinstance(value, int):
        return str(value).lower() in ("true", "1")
    try:
        return bool(value == 1)
    except TypeError:
        return False


def f_to_json(value: Any, *args: Any, **kwargs: Any) -> str:
    kwargs.setdefault("default", str)
    try:
        return json.dumps(_plain(value), *args, **kwargs)
    except (TypeError, ValueError) as exc:
        _fail(f"to_json: {exc}")


def f_to_nice_json(value: Any, indent: int = 4, sort_keys: bool = True, **kwargs: Any) -> str:
    if _int_too_big(indent, 64):
        _fail("to_nice_json: indent is too large")
    kwargs.setdefault("separators", (",", ": "))
    kwargs.setdefault("ensure_ascii", False)
    return f_to_json(value, indent=indent, sort_keys=sort_keys, **kwargs)


def f_from_json(value: Any) -> Any:
    if not isinstance(value, str):
        _fail(f"from_json expects a string, got {type(value).__name__}")
    try:
        return json.loads(value)
    except ValueError as exc:
        _fail(f"from_json: invalid JSON: {exc}")


def f_to_yaml(value: Any, **kwargs: Any) -> str:
    kwargs.setdefault("allow_unicode", True)
    kwargs.setdefault("default_flow_style", None)
    kwargs.pop("Dumper", None)
    try:
        return str(yaml.safe_dump(_plain(value), **kwargs))
    except (yaml.YAMLError, TypeError) as exc:
        _fail(f"to_yaml: {exc}")


def f_to_nice_yaml(value: Any, indent: int = 4, **kwargs: Any) -> str:
    if _int_too_big(indent, 64):
        _fail("to_nice_yaml: indent is too large")
    kwargs.setdefault("default_flow_style", False)
    return f_to_yaml(value, indent=indent, **kwargs)


def f_from_yaml(value: Any) -> Any:
    if not isinstance(value, str):
        _fail(f"from_yaml expects a string, got {type(value).__name__}")
    try:
        aliases = sum(1 for tok in yaml.scan(value) if isinstance(tok, yaml.AliasToken))
        if aliases:
            _fail("from_yaml: YAML aliases (*name) are not supported in templates")
        return yaml.safe_load(value)
    except yaml.YAMLError as exc:
        _fail(f"from_yaml: invalid YAML: {exc}")


def f_from_yaml_all(value: Any) -> list[Any]:
    if not isinstance(value, str):
        _fail(f"from_yaml_all expects a string, got {type(value).__name__}")
    try:
        if any(isinstance(tok, yaml.AliasToken) for tok in yaml.scan(value)):
            _fail("from_yaml_all: YAML aliases (*name) are not supported in templates")
        return list(yaml.safe_load_all(value))
    except yaml.YAMLError as exc:
        _fail(f"from_yaml_all: invalid YAML: {exc}")


def f_regex_search(value: Any, regex: str, *groups: str, ignorecase: bool = False, multiline: bool = False) -> Any:
    wanted: list[int | str] = []
    for g in groups:
        named = re.fullmatch(r"\\g<(\w+)>", str(g))
        numbered = re.fullmatch(r"\\(\d+)", str(g))
        if named:
            wanted.append(named.group(1))
        elif numbered:
            wanted.append(int(numbered.group(1)))
        else:
            _fail(f"regex_search: unknown group reference {g!r} (use '\\\\1' or '\\\\g<name>')")
    match = _compile_regex(regex, _regex_flags(ignorecase, multiline)).search(str(value))
    if match is None:
        return None
    if not wanted:
        return match.group()
    try:
        return [match.group(g) for g in wanted]
    except IndexError:
        _fail("regex_search: no such group")


def f_regex_replace(
    value: Any = "",
    pattern: str = "",
    replacement: str = "",
    ignorecase: bool = False,
    multiline: bool = False,
    count: int = 0,
    mandatory_count: int = 0,
) -> str:
    text = str(value)
    if len(text) + (len(text) + 1) * len(str(replacement)) > MAX_STRING:
        raise _Limit("regex_replace could build a string that is too large")
    compiled = _compile_regex(pattern, _regex_flags(ignorecase, multiline))
    try:
        result, n = compiled.subn(str(replacement), text, count=count)
    except (regex.error, re.error, IndexError) as exc:
        _fail(f"regex_replace: {exc}")
    if mandatory_count and n != mandatory_count:
        _fail(f"regex_replace: expected {mandatory_count} replacements, made {n}")
    return result


def f_regex_findall(value: Any, regex: str, multiline: bool = False, ignorecase: bool = False) -> list[Any]:
    return _compile_regex(regex, _regex_flags(ignorecase, multiline)).findall(str(value))


def f_regex_escape(value: Any, re_type: str = "python") -> str:
    if re_type != "python":
        _fail("regex_escape: only re_type='python' is supported")
    return re.escape(str(value))


def _unique_list(items: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for x in items:
        if x not in out:
            out.append(x)
    return out


@pass_environment
def f_unique(environment: Any, value: Any, case_sensitive: bool | None = None, attribute: Any = None) -> list[Any]:
    items = _seq(value, "unique")
    try:
        return list(do_unique(environment, items, case_sensitive=bool(case_sensitive), attribute=attribute))
    except TypeError:
        if attribute is not None:
            raise
        return _unique_list(items)


def f_union(a: Any, b: Any) -> list[Any]:
    return _unique_list(_seq(a, "union") + _seq(b, "union"))


def f_intersect(a: Any, b: Any) -> list[Any]:
    right = _seq(b, "intersect")
    return _unique_list(x for x in _seq(a, "intersect") if x in right)


def f_difference(a: Any, b: Any) -> list[Any]:
    right = _seq(b, "difference")
    return _unique_list(x for x in _seq(a, "difference") if x not in right)


def f_symmetric_difference(a: Any, b: Any) -> list[Any]:
    left, right = _seq(a, "symmetric_difference"), _seq(b, "symmetric_difference")
    return _unique_list([x for x in left if x not in right] + [x for x in right if x not in left])


def f_flatten(value: Any, levels: int | None = None, skip_nulls: bool = True) -> list[Any]:
    def walk(items: Iterable[Any], depth: int) -> Iterator[Any]:
        for item in items:
            if skip_nulls and item in (None, "None", "null"):
                continue
            if isinstance(item, list | tuple) and (levels is None or depth < levels):
                yield from walk(item, depth + 1)
            else:
                yield item

    return _check_size(list(walk(_seq(value, "flatten"), 0)))


def f_dict2items(value: Any, key_name: str = "key", value_name: str = "value") -> list[dict[str, Any]]:
    if not isinstance(value, Mapping):
        _fail(f"dict2items expects a dictionary, got {type(value).__name__}")
    return [{key_name: k, value_name: v} for k, v in value.items()]


def f_items2dict(value: Any, key_name: str = "key", value_name: str = "value") -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for item in _seq(value, "items2dict"):
        if not isinstance(item, Mapping) or key_name not in item or value_name not in item:
            _fail(f"items2dict expects a list of mappings with '{key_name}' and '{value_name}'")
        out[item[key_name]] = item[value_name]
    return out


def _merge(a: Any, b: Any, recursive: bool, list_merge: str) -> Any:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out = dict(a)
        for k, v in b.items():
            out[k] = _merge(out[k], v, recursive, list_merge) if recursive and k in out else v
            if not recursive and k in out and isinstance(out[k], list) and isinstance(a.get(k), list):
                out[k] = _merge_lists(a[k], v, list_merge) if isinstance(v, list) else v
        return out
    if isinstance(a, list) and isinstance(b, list):
        return _merge_lists(a, b, list_merge)
    return b


def _merge_lists(a: list[Any], b: list[Any], mode: str) -> list[Any]:
    if mode == "replace":
        return list(b)
    if mode == "keep":
        return list(a)
    if mode == "append":
        return list(a) + list(b)
    if mode == "prepend":
        return list(b) + list(a)
    if mode == "append_rp":
        return [x for x in a if x not in b] + list(b)
    if mode == "prepend_rp":
        return list(b) + [x for x in a if x not in b]
    _fail(f"combine: list_merge must be one of replace, keep, append, prepend, append_rp, prepend_rp, not {mode!r}")


def f_combine(*terms: Any, recursive: bool = False, list_merge: str = "replace") -> dict[str, Any]:
    dicts: list[Any] = []
    for t in terms:
        if isinstance(t, list | tuple):
            dicts.extend(t)
        else:
            dicts.append(t)
    out: dict[str, Any] = {}
    for d in dicts:
        if not isinstance(d, Mapping):
            _fail(f"combine expects dictionaries, got {type(d).__name__}")
        if recursive:
            out = _merge(out, d, True, list_merge)
        else:
            for k, v in d.items():
                out[k] = (
                    _merge_lists(out[k], v, list_merge) if isinstance(out.get(k), list) and isinstance(v, list) else v
                )
    return out


def f_b64encode(value: Any, encoding: str = "utf-8") -> str:
    return base64.b64encode(str(value).encode(encoding, "surrogateescape")).decode("ascii")


def f_b64decode(value: Any, encoding: str = "utf-8") -> str:
    try:
        return base64.b64decode(str(value), validate=False).decode(encoding, "replace")
    except (ValueError, LookupError) as exc:
        _fail(f"b64decode: {exc}")


def f_mandatory(value: Any, msg: str | None = None) -> Any:
    if isinstance(value, Undefined):
        if msg:
            _fail(str(msg))
        str(value)
    return value


def f_ternary(value: Any, true_val: Any, false_val: Any, none_val: Any = None) -> Any:
    if value is None and none_val is not None:
        return none_val
    return true_val if value else false_val


def f_hash(value: Any, hashtype: str = "sha1") -> str:
    if hashtype not in hashlib.algorithms_guaranteed:
        _fail(f"hash: unknown hash type {hashtype!r} (known: {', '.join(sorted(hashlib.algorithms_guaranteed))})")
    data = value.encode("utf-8") if isinstance(value, str) else str(value).encode("utf-8")
    h = hashlib.new(hashtype, data)
    return h.hexdigest(16) if hashtype.startswith("shake") else h.hexdigest()  # type: ignore[call-arg]


def f_zip(*lists: Any) -> list[list[Any]]:
    return [list(t) for t in zip(*(_seq(x, "zip") for x in lists), strict=False)]


def f_zip_longest(*lists: Any, fillvalue: Any = None) -> list[list[Any]]:
    return _check_size(
        [list(t) for t in itertools.zip_longest(*(_seq(x, "zip_longest") for x in lists), fillvalue=fillvalue)]
    )


def f_product(*lists: Any, repeat: int = 1) -> list[list[Any]]:
    seqs = [_seq(x, "product") for x in lists]
    size = math.prod(len(s) for s in seqs) ** max(repeat, 0) if seqs else 0
    if size > MAX_ITEMS or _int_too_big(repeat, 64):
        raise _Limit("product would build too many combinations")
    return [list(t) for t in itertools.product(*seqs, repeat=repeat)]


def f_log(value: Any, base: float = math.e) -> float:
    return math.log(float(value), float(base))


def f_pow(value: Any, exponent: Any) -> float:
    if abs(float(exponent)) > 1024:
        raise _Limit("pow: the exponent is too large")
    return math.pow(float(value), float(exponent))


def f_root(value: Any, base: float = 2) -> float:
    return math.sqrt(float(value)) if float(base) == 2 else math.pow(float(value), 1.0 / float(base))


def _choose(value: Any, r: Any, name: str, func: Callable[..., Iterable[tuple[Any, ...]]]) -> list[list[Any]]:
    items = _seq(value, name)
    n, k = len(items), int(r)
    size = math.perm(n, k) if k <= n else 0
    if size > MAX_ITEMS:
        raise _Limit(f"{name} would build too many combinations")
    return [list(t) for t in func(items, k)]


def f_combinations(value: Any, r: Any) -> list[list[Any]]:
    return _choose(value, r, "combinations", itertools.combinations)


def f_permutations(value: Any, r: Any = None) -> list[list[Any]]:
    items = _seq(value, "permutations")
    return _choose(items, len(items) if r is None else r, "permutations", itertools.permutations)


def f_subelements(value: Any, key: str, skip_missing: bool = False) -> list[list[Any]]:
    """``users | subelements('groups')``: [user, group] for every group of every user (Ansible's filter)."""
    out: list[list[Any]] = []
    for element in _seq(value, "subelements"):
        current: Any = element
        for part in str(key).split("."):
            if isinstance(current, Mapping) and part in current:
                current = current[part]
            elif skip_missing:
                current = None
                break
            else:
                _fail(f"subelements: could not find {key!r} in {element!r}")
        if current is None:
            continue
        if not isinstance(current, list):
            _fail(f"subelements: the key {key!r} should point to a list, got {type(current).__name__}")
        out.extend([element, sub] for sub in current)
        _check_size(out)
    return out


_BYTE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50, "E": 1 << 60}


def f_human_readable(value: Any, isbits: bool = False, unit: str | None = None) -> str:
    number = float(value)
    suffix = "b" if isbits else "B"
    for letter in ("E", "P", "T", "G", "M", "K"):
        if (unit is None and abs(number) >= _BYTE_UNITS[letter]) or (unit or "")[:1].upper() == letter:
            return f"{number / _BYTE_UNITS[letter]:.2f} {letter}{suffix}"
    return f"{number:.2f} {'Bits' if isbits else 'Bytes'}"


def f_human_to_bytes(value: Any, default_unit: str | None = None, isbits: bool = False) -> int:
    m = re.fullmatch(r"\s*(-?[0-9.]+)\s*([KMGTPE]?)(i?[Bb]?|[Bb]ytes?|[Bb]its?)?\s*", str(value))
    if m is None:
        _fail(f"human_to_bytes: cannot read {value!r} as a size")
    letter = m.group(2) or (default_unit or "")[:1].upper()
    if letter not in _BYTE_UNITS:
        _fail(f"human_to_bytes: unknown unit in {value!r}")
    return round(float(m.group(1)) * _BYTE_UNITS[letter])


def f_strftime(fmt: Any, second: Any = None, utc: bool = False) -> str:
    moment = time.time() if second is None else float(second)
    return time.strftime(str(fmt), time.gmtime(moment) if utc else time.localtime(moment))


def f_to_datetime(value: Any, fmt: str = "%Y-%m-%d %H:%M:%S") -> Any:
    import datetime as _dt

    return _dt.datetime.strptime(str(value), fmt)


def f_dict(value: Any) -> dict[Any, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    try:
        return dict(_seq(value, "dict"))
    except (TypeError, ValueError) as exc:
        _fail(f"dict expects a list of [key, value] pairs: {exc}")


def f_split(value: Any, sep: str | None = None, maxsplit: int = -1) -> list[str]:
    return str(value).split(sep, maxsplit)


def f_extract(item: Any, container: Any, morekeys: Any = None) -> Any:
    try:
        value = container[item]
        for key in [] if morekeys is None else morekeys if isinstance(morekeys, list) else [morekeys]:
            value = value[key]
    except (KeyError, IndexError, TypeError) as exc:
        _fail(f"extract: {exc!r} not found")
    return value


def f_type_debug(value: Any) -> str:
    """The Python type name, as Ansible shows it: kmsfleet's own str/dict/list subclasses (values that remember
    their file position, unsafe text) show as the plain type."""
    for plain in (bool, int, float, str, dict, list, tuple):
        if isinstance(value, plain) and type(value).__module__.startswith("orchestrator"):
            return plain.__name__
    return type(value).__name__


def f_quote(value: Any) -> str:
    return shlex.quote(str(value))


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a filter so its result is size-checked, and the few that can allocate from a small input
    (``center``, ``indent``, ``format``, ``replace``, ``join`` …) are checked before they run."""
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

    def pre(real: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        extra = (*real[1:], *kwargs.values())
        if name in ("center", "indent"):
            if any(_int_too_big(a, 10_000) or (isinstance(a, str) and len(a) > 10_000) for a in extra):
                raise _Limit(f"{name} width is too large")
        elif name == "format":
            _check_format_string(str(real[0]) if real else "", extra)
        elif name in ("batch", "slice", "wordwrap", "truncate", "random", "round"):
            if any(_int_too_big(a, MAX_ITEMS) for a in extra):
                raise _Limit(f"{name}: argument is too large")
        elif name == "replace" and len(real) >= 3:
            _check_replace(str(real[0]), real[1], real[2])
        elif name == "join" and real and isinstance(real[0], list | tuple):
            _check_join(real[1] if len(real) > 1 else kwargs.get("d", ""), real[0])

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        pre(args[skip:], kwargs)
        return _check_size(func(*args, **kwargs))

    return guarded


#: The filters kmsfleet adds to Jinja's own (``version`` is in ``tests``: it is both).
FILTERS: dict[str, Callable[..., Any]] = {
    "bool": f_bool_filter,
    "to_json": f_to_json,
    "to_nice_json": f_to_nice_json,
    "from_json": f_from_json,
    "to_yaml": f_to_yaml,
    "to_nice_yaml": f_to_nice_yaml,
    "from_yaml": f_from_yaml,
    "regex_search": f_regex_search,
    "regex_replace": f_regex_replace,
    "regex_findall": f_regex_findall,
    "regex_escape": f_regex_escape,
    "unique": f_unique,
    "union": f_union,
    "intersect": f_intersect,
    "difference": f_difference,
    "symmetric_difference": f_symmetric_difference,
    "flatten": f_flatten,
    "dict2items": f_dict2items,
    "items2dict": f_items2dict,
    "combine": f_combine,
    "b64encode": f_b64encode,
    "b64decode": f_b64decode,
    "basename": lambda p: posixpath.basename(str(p)),
    "dirname": lambda p: posixpath.dirname(str(p)),
    "win_basename": lambda p: ntpath.basename(str(p)),
    "win_dirname": lambda p: ntpath.dirname(str(p)),
    "win_splitdrive": lambda p: list(ntpath.splitdrive(str(p))),
    "path_join": lambda parts: posixpath.join(*[str(p) for p in _seq(parts, "path_join")]),
    "quote": f_quote,
    "mandatory": f_mandatory,
    "ternary": f_ternary,
    "hash": f_hash,
    "checksum": lambda v: f_hash(v, "sha1"),
    "md5": lambda v: f_hash(v, "md5"),
    "sha1": lambda v: f_hash(v, "sha1"),
    "splitlines": lambda v: str(v).splitlines(),
    "split": f_split,
    "zip": f_zip,
    "zip_longest": f_zip_longest,
    "product": f_product,
    "dict": f_dict,
    "extract": f_extract,
    "type_debug": f_type_debug,
    "log": f_log,
    "pow": f_pow,
    "root": f_root,
    "combinations": f_combinations,
    "permutations": f_permutations,
    "subelements": f_subelements,
    "human_readable": f_human_readable,
    "human_to_bytes": f_human_to_bytes,
    "strftime": f_strftime,
    "to_datetime": f_to_datetime,
    "splitext": lambda p: list(posixpath.splitext(str(p))),
    "normpath": lambda p: posixpath.normpath(str(p)),
    "urldecode": lambda v: urllib.parse.unquote_plus(str(v)),
    "from_yaml_all": f_from_yaml_all,
}
