"""The one place templates render: Ansible-flavoured Jinja2 in a sandbox.

``Templar(variables, base_dir=..., context=...)`` renders values the way Ansible does:

- ``render(value)`` walks dicts and lists; a string that is exactly one ``{{ expr }}`` returns the native value
  (an int stays an int, a list stays a list); any other template renders to text. ``UnsafeText`` (``!unsafe``)
  is never templated.
- Variables whose values are templates themselves are resolved lazily, on first use, with loop detection and a
  depth limit — exactly one level of Ansible's "templates all the way down".
- ``evaluate(expr)`` is ``when`` / ``failed_when`` / ``changed_when`` / ``until``: bare expressions, lists are
  AND, booleans pass through. A condition that yields a *string* is refused (``"false"`` is truthy in Python,
  which is never what the author meant); Ansible 2.19 refuses it too.
- Every failure is a ``TemplateError`` naming the undefined variable, the caller's context (task and host) and
  a did-you-mean.

The environment is an ``ImmutableSandboxedEnvironment`` with ``StrictUndefined`` semantics (chainable the way
Ansible's undefined is, so ``result.stdout | default('')`` works). On top of Jinja's sandbox (no ``__class__``,
no ``__globals__``, no mutation of lists/dicts) a per-render budget bounds loop iterations, calls, wall time,
string and list sizes, exponentiation and repetition, so a template cannot eat the controller's memory or CPU.
"""

from __future__ import annotations

import base64
import difflib
import functools
import hashlib
import itertools
import json
import math
import ntpath
import operator
import os
import posixpath
import re
import shlex
import time
import types
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import regex
import yaml
from jinja2 import nodes, pass_environment
from jinja2.exceptions import (
    SecurityError,
    TemplateRuntimeError,
    TemplateSyntaxError,
    UndefinedError,
)
from jinja2.filters import do_unique
from jinja2.lexer import TOKEN_STRING, TOKEN_VARIABLE_BEGIN, TOKEN_VARIABLE_END, Lexer
from jinja2.nativetypes import NativeCodeGenerator
from jinja2.parser import Parser
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing
from jinja2.visitor import NodeTransformer
from markupsafe import Markup

from orchestrator.errors import Location, TemplateError
from orchestrator.redact import SECRET_KEYS, is_secret_name, is_secret_value, redact_text, register_secret
from orchestrator.yamlsource import UnsafeText

__all__ = [
    "OMIT",
    "HostVars",
    "LazyMapping",
    "Templar",
    "TemplateError",
    "check_template",
    "is_template",
    "mark_unsafe",
    "remove_omitted",
]

# ----------------------------------------------------------------------------------------------- limits

MAX_TEMPLATE_CHARS = 256 * 1024  # source text of one template
MAX_STRING = 4 * 1024 * 1024  # characters in any string a template builds
MAX_ITEMS = 1_000_000  # elements in any list/dict a template builds
MAX_RANGE = 100_000  # elements of one range()
MAX_STEPS = 250_000  # loop iterations + calls in one top-level render
MAX_SECONDS = 10.0  # wall time of one top-level render
MAX_VAR_DEPTH = 40  # variables whose templates use variables whose templates use …
MAX_DATA_DEPTH = 200  # nesting of dicts/lists walked by render()
MAX_LOOKUP_FILE = 1024 * 1024
MAX_POW_BITS = 100_000
REGEX_SECONDS = 2.0  # one regular-expression call from a template (regex_search, match, regex_replace …)

#: Ansible's ``omit``: an argument whose rendered value is exactly this is dropped (see ``remove_omitted``).
OMIT = "__omit_place_holder__kmsfleet__"

_TEMPLATE_MARKERS = ("{{", "{%", "{#")
_T = TypeVar("_T")


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


class LazyMapping(Mapping[str, Any]):
    """A mapping that renders its own values on access: ``render()`` passes it through untouched."""

    def __getitem__(self, key: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def __iter__(self) -> Iterator[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError


class HostVars(LazyMapping):
    """Ansible's ``hostvars``: ``hostvars['pc01'].ansible_host`` renders pc01's variable in pc01's own
    context (lazily, on access), not in the context of the host whose template asks for it."""

    def __init__(self, vars_by_host: Mapping[str, Mapping[str, Any]], *, base_dir: Path | None = None) -> None:
        self._vars = vars_by_host
        self._base_dir = base_dir
        self._views: dict[str, _HostView] = {}

    def __getitem__(self, host: str) -> Any:
        if host not in self._vars:
            raise KeyError(host)
        view = self._views.get(host)
        if view is None:
            view = _HostView(Templar(self._vars[host], base_dir=self._base_dir, context=f"hostvars of {host}"))
            self._views[host] = view
        return view

    def __iter__(self) -> Iterator[str]:
        return iter(self._vars)

    def __len__(self) -> int:
        return len(self._vars)


class _HostView(LazyMapping):
    def __init__(self, templar: Templar) -> None:
        self._templar = templar

    def __getitem__(self, key: str) -> Any:
        if key not in self._templar.variables:
            raise KeyError(key)
        return self._templar.get(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._templar.variables)

    def __len__(self) -> int:
        return len(self._templar.variables)


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


# ----------------------------------------------------------------------------------------------- internal errors


class _Limit(Exception):
    """A resource bound was hit; the message says which."""


class _FilterFailure(Exception):
    """A filter/test/lookup refused its input; the message is for the user."""


class _UndefinedUse(UndefinedError):
    """An undefined value was used. Carries what is needed for a precise message."""

    def __init__(self, message: str, name: Any, obj: Any, via: tuple[str, ...]) -> None:
        super().__init__(message)
        self.name = name
        self.obj = obj
        self.via = via


# ----------------------------------------------------------------------------------------------- undefined


class _KfUndefined(Undefined):
    """Strict (every use fails) but chainable (``a.b.c`` of an undefined ``a`` is still undefined, so
    ``| default`` and ``is defined`` work at the end of a chain) — Ansible's semantics."""

    __slots__ = ("_kf_via",)

    def __init__(
        self,
        hint: str | None = None,
        obj: Any = missing,
        name: str | None = None,
        exc: type[TemplateRuntimeError] = UndefinedError,
        via: tuple[str, ...] = (),
    ) -> None:
        super().__init__(hint, obj, name, exc)
        self._kf_via = via

    def _kf_fail(self, *args: Any, **kwargs: Any) -> NoReturn:
        if issubclass(self._undefined_exception, SecurityError):
            raise SecurityError(self._undefined_message)
        raise _UndefinedUse(self._undefined_message, self._undefined_name, self._undefined_obj, self._kf_via)

    def __getattr__(self, name: str) -> Any:
        if name[:2] == "__" and name[-2:] == "__":
            raise AttributeError(name)
        return self

    def __getitem__(self, key: Any) -> Any:
        return self

    __add__ = __radd__ = __sub__ = __rsub__ = _kf_fail
    __mul__ = __rmul__ = __div__ = __rdiv__ = _kf_fail
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = _kf_fail
    __mod__ = __rmod__ = __pos__ = __neg__ = __call__ = _kf_fail
    __lt__ = __le__ = __gt__ = __ge__ = _kf_fail
    __int__ = __float__ = __complex__ = __pow__ = __rpow__ = _kf_fail
    __iter__ = __str__ = __len__ = __bool__ = __contains__ = _kf_fail
    __eq__ = __ne__ = __hash__ = _kf_fail

    def __repr__(self) -> str:
        return "Undefined"


# ----------------------------------------------------------------------------------------------- budget


class _Budget:
    __slots__ = ("deadline", "steps")

    def __init__(self) -> None:
        self.steps = MAX_STEPS
        self.deadline = time.monotonic() + MAX_SECONDS

    def tick(self, n: int = 1) -> None:
        self.steps -= n
        if self.steps < 0:
            raise _Limit(f"the template does too much work (more than {MAX_STEPS} loop iterations and calls)")
        if time.monotonic() > self.deadline:
            raise _Limit(f"the template took longer than {MAX_SECONDS:g} s to render")


def _check_size(value: _T) -> _T:
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise _Limit(f"the template built a string longer than {MAX_STRING} characters")
    elif isinstance(value, list | tuple | dict | set | frozenset) and len(value) > MAX_ITEMS:
        raise _Limit(f"the template built a collection of more than {MAX_ITEMS} items")
    return value


def _int_too_big(value: Any, limit: int = MAX_STRING) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > limit


_FORMAT_WIDTH = re.compile(r"\d{7,}")


def _check_format_string(fmt: str, args: Iterable[Any]) -> None:
    if _FORMAT_WIDTH.search(fmt) or any(_int_too_big(a, 10**6) for a in args):
        raise _Limit("format width or precision is too large")


# ----------------------------------------------------------------------------------------------- environment


class _Guard(NodeTransformer):
    """Rewrites the template AST so loops and ``~`` concatenation go through the budget."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Call(nodes.Name("__kf_iter", "load"), [node.iter], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Call(nodes.Name("__kf_concat", "load"), list(node.nodes), [], None, None, lineno=node.lineno)


class _CodeGenerator(NativeCodeGenerator):
    """Native output, but a constant-folded single expression keeps its type (``{{ [1, 2] | sort }}`` is a
    list, not the text of one)."""

    def _output_const_repr(self, group: Iterable[Any]) -> str:
        items = list(group)
        if len(items) == 1:
            return repr(items[0])
        return repr("".join("" if v is None else str(v) for v in items))


_STR_SIZE_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})


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


class _Lexer(Lexer):
    r"""Ansible's lexer rule: inside ``{{ }}`` a string constant keeps its backslashes as written, so
    ``regex_replace('^(.*)$', '\\1')`` in a YAML double-quoted string gets the back-reference ``\1``, not the
    character U+0001 (backslashes are processed once, by YAML). ``{% %}`` statements and bare conditions
    (``when``, ``until``, ``failed_when`` …) keep Jinja's own escapes, as in Ansible."""

    def tokeniter(self, *args: Any, **kwargs: Any) -> Iterator[tuple[int, str, str]]:
        in_variable = False
        for lineno, token, value in super().tokeniter(*args, **kwargs):
            if token == TOKEN_VARIABLE_BEGIN:
                in_variable = True
            elif token == TOKEN_VARIABLE_END:
                in_variable = False
            elif in_variable and token == TOKEN_STRING:
                yield lineno, token, value.replace("\\", "\\\\")
                continue
            yield lineno, token, value


class _Environment(ImmutableSandboxedEnvironment):
    code_generator_class = _CodeGenerator
    concat = staticmethod(_text_concat)

    @functools.cached_property
    def lexer(self) -> Lexer:
        return _Lexer(self)

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Undefined):
            return obj  # an undefined stays undefined (and reports its own name) however it is poked
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, Undefined):
            return obj
        return super().getitem(obj, argument)

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        both_int = isinstance(left, int) and isinstance(right, int)
        if operator == "**":
            if both_int and right > 0 and abs(left) > 1 and right * math.log2(abs(left)) > MAX_POW_BITS:
                raise _Limit("the number is too large (exponent)")
        elif operator == "*":
            for seq, count in ((left, right), (right, left)):
                limit = MAX_STRING if isinstance(seq, str) else MAX_ITEMS
                if isinstance(seq, str | list | tuple) and isinstance(count, int) and len(seq) * count > limit:
                    raise _Limit("repetition would build a value that is too large")
            if both_int and left.bit_length() + right.bit_length() > MAX_POW_BITS:
                raise _Limit("the number is too large (multiplication)")
        elif operator == "+":
            if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
                limit = MAX_STRING if isinstance(left, str) else MAX_ITEMS
                if len(left) + len(right) > limit:
                    raise _Limit("concatenation would build a value that is too large")
        elif operator == "%" and isinstance(left, str):
            _check_format_string(left, right if isinstance(right, tuple) else (right,))
        return _check_size(self.binop_table[operator](left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        templar = getattr(__context.parent, "templar", None)
        if isinstance(templar, Templar) and templar._budget is not None:
            templar._budget.tick()
        if isinstance(__obj, types.BuiltinMethodType | types.MethodWrapperType):
            owner = getattr(__obj, "__self__", None)
            name = getattr(__obj, "__name__", "")
            if isinstance(owner, str):
                if name in _STR_SIZE_METHODS and any(_int_too_big(a) for a in (*args, *kwargs.values())):
                    raise _Limit(f"str.{name}() width is too large")
                if name == "join" and args:
                    _check_join(owner, args[0])
                if name == "replace" and len(args) >= 2:
                    _check_replace(owner, args[0], args[1])
        return _check_size(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt: str = value.__self__

        def guarded(*args: Any, **kwargs: Any) -> str:
            _check_format_string(fmt, (*args, *kwargs.values()))
            return _check_size(wrapped(*args, **kwargs))

        return guarded


def _check_join(sep: Any, items: Any) -> None:
    if isinstance(items, list | tuple):
        total = sum(len(x) if isinstance(x, str) else 16 for x in items) + len(str(sep)) * len(items)
        if total > MAX_STRING:
            raise _Limit("join would build a string that is too large")


def _check_replace(text: Any, old: Any, new: Any) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        count = len(text) + 1 if old == "" else text.count(old)
        if len(text) + count * max(len(new) - len(old), 0) > MAX_STRING:
            raise _Limit("replace would build a string that is too large")


# ----------------------------------------------------------------------------------------------- filters


def _fail(message: str) -> NoReturn:
    raise _FilterFailure(message)


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


def f_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, str):
        value = value.strip().lower()
    return value in ("yes", "on", "1", "true", "y", "t", 1)


def f_bool_filter(value: Any) -> bool:
    """The ``bool`` filter exactly as Ansible's: 'yes', 'on', 'true', '1' (any case), 1 and True are true;
    everything else ('y', 't', ' yes', 'foo', None …) is false."""
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


def _regex_flags(ignorecase: bool, multiline: bool) -> int:
    return int(regex.IGNORECASE if ignorecase else 0) | int(regex.MULTILINE if multiline else 0)


class _BoundedRegex:
    """A template's regular expression, run by the ``regex`` package with a time limit. Python's ``re`` cannot
    be interrupted: ``'^(a|aa)+$'`` on 40 characters backtracks for hours, holding the GIL, so the whole
    process (and its SIGTERM handler) would hang. ``regex`` keeps ``re``'s syntax and semantics (back-references,
    look-arounds, ``\\g<name>``, which RE2 lacks and Ansible playbooks use) and stops a match after
    ``REGEX_SECONDS``."""

    def __init__(self, pattern: str, flags: int) -> None:
        self.text = pattern
        self.compiled = regex.compile(pattern, flags)

    def _bounded(self, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except TimeoutError:
            raise _Limit(
                f"regular expression {_snippet(self.text)} took longer than {REGEX_SECONDS:g} s "
                "(nested repetition such as (a+)+ backtracks exponentially)"
            ) from None

    def search(self, text: str) -> Any:
        return self._bounded(lambda: self.compiled.search(text, timeout=REGEX_SECONDS))

    def match(self, text: str) -> Any:
        return self._bounded(lambda: self.compiled.match(text, timeout=REGEX_SECONDS))

    def fullmatch(self, text: str) -> Any:
        return self._bounded(lambda: self.compiled.fullmatch(text, timeout=REGEX_SECONDS))

    def findall(self, text: str) -> list[Any]:
        return self._bounded(lambda: self.compiled.findall(text, timeout=REGEX_SECONDS))

    def subn(self, replacement: str, text: str, count: int = 0) -> tuple[str, int]:
        return self._bounded(lambda: self.compiled.subn(replacement, text, count=count, timeout=REGEX_SECONDS))


def _compile_regex(pattern: Any, flags: int) -> _BoundedRegex:
    if not isinstance(pattern, str):
        _fail(f"regular expression must be a string, got {type(pattern).__name__}")
    try:
        return _BoundedRegex(pattern, flags)
    except (regex.error, re.error) as exc:
        _fail(f"invalid regular expression {pattern!r}: {exc}")


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


def _seq(value: Any, name: str) -> list[Any]:
    if isinstance(value, Undefined):
        str(value)
    if isinstance(value, str | Mapping) or not isinstance(value, Iterable):
        _fail(f"{name} expects a list, got {type(value).__name__}")
    out = list(value)
    return _check_size(out)


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


# ----------------------------------------------------------------------------------------------- tests


def _result(value: Any, test: str) -> Mapping[str, Any]:
    if isinstance(value, Undefined):
        str(value)
    if not isinstance(value, Mapping):
        _fail(f"the '{test}' test expects a registered task result (a mapping), got {type(value).__name__}")
    return value


def t_failed(value: Any) -> bool:
    return bool(f_bool(_result(value, "failed").get("failed", False)))


def t_success(value: Any) -> bool:
    return not t_failed(value)


def t_changed(value: Any) -> bool:
    result = _result(value, "changed")
    if isinstance(result.get("results"), list) and "changed" not in result:
        return any(isinstance(r, Mapping) and f_bool(r.get("changed", False)) for r in result["results"])
    return f_bool(result.get("changed", False))


def t_skipped(value: Any) -> bool:
    return f_bool(_result(value, "skipped").get("skipped", False))


def t_unreachable(value: Any) -> bool:
    return f_bool(_result(value, "unreachable").get("unreachable", False))


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
        return f_bool(value)
    return bool(value)


def t_falsy(value: Any, convert_bool: bool = False) -> bool:
    return not t_truthy(value, convert_bool)


def t_any(value: Any) -> bool:
    return any(_seq(value, "any"))


def t_all(value: Any) -> bool:
    return all(_seq(value, "all"))


# ----------------------------------------------------------------------------------------------- environment setup


def _make_environment() -> _Environment:
    env = _Environment(undefined=_KfUndefined, autoescape=False, keep_trailing_newline=True, trim_blocks=True)
    for name in ("lipsum", "cycler", "range"):
        env.globals.pop(name, None)
    filters: dict[str, Callable[..., Any]] = {
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
        "version": t_version,
        "version_compare": t_version,
    }
    env.filters.update(filters)
    env.filters = {name: _guard_filter(name, f) for name, f in env.filters.items()}
    tests: dict[str, Callable[..., Any]] = {
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
    env.tests.update(tests)
    return env


_ENV = _make_environment()


@functools.lru_cache(maxsize=4096)
def _compile(source: str, expression: bool) -> tuple[Any, bool]:
    """Compile a template (or a bare expression) once; returns (Template, native)."""
    if len(source) > MAX_TEMPLATE_CHARS:
        raise _Limit(f"the template is longer than {MAX_TEMPLATE_CHARS} characters")
    if expression:
        parser = Parser(_ENV, source, state="variable")
        expr = parser.parse_expression()
        if not parser.stream.eos:
            raise TemplateSyntaxError(
                f"unexpected '{parser.stream.current.value}' after the expression",
                parser.stream.current.lineno,
                None,
                None,
            )
        tree = nodes.Template([nodes.Output([expr], lineno=1)], lineno=1)
        native = True
    else:
        tree = Parser(_ENV, source).parse()
        native = (
            len(tree.body) == 1
            and isinstance(tree.body[0], nodes.Output)
            and len(tree.body[0].nodes) == 1
            and not isinstance(tree.body[0].nodes[0], nodes.TemplateData)
        )
    for name in tree.find_all(nodes.Name):
        if name.name.startswith("__kf_"):
            raise TemplateSyntaxError(f"the name '{name.name}' is reserved", name.lineno, None, None)
    tree = _Guard().visit(tree)
    tree.set_environment(_ENV)
    code = _ENV.compile(tree)
    template = _ENV.template_class.from_code(_ENV, code, _ENV.make_globals(None), None)
    return template, native


def _parse(source: str, expression: bool) -> nodes.Node:
    """The template's syntax tree (``_compile`` succeeded on the same source, so this parses)."""
    if expression:
        return Parser(_ENV, source, state="variable").parse_expression()
    return Parser(_ENV, source).parse()


def _refuse_private_access(tree: nodes.Node) -> None:
    """Refuse sandbox escapes while a playbook or inventory is validated, before anything renders:
    ``x.__class__``, ``x._private`` (the sandbox refuses every attribute starting with '_' at render time
    anyway) and ``x['__globals__']``-style dunder subscripts. So one is rejected with exit 4 before any PC is
    contacted, not on each host at run time (where the sandbox still refuses it, with its own message)."""
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getattr):
            name: Any = node.attr
            unsafe = name.startswith("_")
        else:
            arg = node.arg if isinstance(node, nodes.Getitem) else None
            name = arg.value if isinstance(arg, nodes.Const) else None
            unsafe = isinstance(name, str) and name.startswith("__")
        if unsafe:
            raise SecurityError(f"access to attribute {name!r} is unsafe")


def _syntax_message(exc: TemplateSyntaxError) -> str:
    text = (exc.message or "invalid template").rstrip(".")
    missing_name = re.search(r"No (filter|test) named '([^']+)'", text)
    if missing_name:
        kind, name = missing_name.groups()
        known = _ENV.filters if kind == "filter" else _ENV.tests
        return f"unknown {kind} '{name}'{_did_you_mean(name, known)}"
    line = f" (line {exc.lineno})" if exc.lineno and exc.lineno > 1 else ""
    return f"template syntax error: {text}{line}"


def check_template(text: Any, *, expression: bool = False) -> str | None:
    """Compile ``text`` (a template, or with ``expression=True`` a bare condition like ``x == 1``) without
    rendering it. Returns the problem, or None when it compiles. Non-strings and ``UnsafeText`` are fine."""
    if not isinstance(text, str) or isinstance(text, UnsafeText):
        return None
    if not is_template(text) and (not expression or not text.strip()):
        return None
    try:
        _compile(text, expression and not is_template(text))
        _refuse_private_access(_parse(text, expression and not is_template(text)))
    except TemplateSyntaxError as exc:
        return _syntax_message(exc)
    except _Limit as exc:
        return str(exc)
    except SecurityError as exc:
        return f"refused by the template sandbox: {str(exc).rstrip('.')}"
    except (RecursionError, MemoryError):
        return "the template is nested too deeply"
    return None


# ----------------------------------------------------------------------------------------------- lookups


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
    rstrip = f_bool(kwargs.pop("rstrip", True))
    lstrip = f_bool(kwargs.pop("lstrip", False))
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


_LOOKUPS: dict[str, Callable[[Templar, list[Any], dict[str, Any]], list[Any]]] = {
    "env": _lookup_env,
    "file": _lookup_file,
    "vars": _lookup_vars,
}


# ----------------------------------------------------------------------------------------------- templar


class _Scope(Mapping[str, Any]):
    """What a template sees: the variables (resolved lazily) over kmsfleet's globals."""

    def __init__(self, templar: Templar) -> None:
        self.templar = templar

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (key in self.templar.variables or key in self.templar._globals)

    def __getitem__(self, key: str) -> Any:
        if key in self.templar.variables:
            value = self.templar._resolve(key)
            if is_secret_name(key) or is_secret_value(value):
                self.templar._touched_secret = True
            return value
        return self.templar._globals[key]

    def __iter__(self) -> Iterator[str]:
        seen = set(self.templar.variables)
        yield from self.templar.variables
        yield from (k for k in self.templar._globals if k not in seen)

    def __len__(self) -> int:
        return len(set(self.templar.variables) | set(self.templar._globals))


class Templar:
    """Renders templates for one host and one task (not thread-safe: make one per host/task)."""

    def __init__(
        self,
        variables: Mapping[str, Any],
        *,
        base_dir: Path | None = None,
        context: str = "",
        location: Location | None = None,
    ) -> None:
        self.variables: Mapping[str, Any] = variables
        self.base_dir = base_dir
        self.context = context
        self.location = location
        self._cache: dict[str, Any] = {}
        self._resolving: list[str] = []
        self._budget: _Budget | None = None
        self._lookup_log: list[str] = []
        self._touched_secret = False
        self._scope = _Scope(self)
        self._globals: dict[str, Any] = {
            **_ENV.globals,
            "lookup": self._lookup,
            "query": self._query,
            "q": self._query,
            "range": self._range,
            "now": _now,
            "omit": OMIT,
            "__kf_iter": self._iter,
            "__kf_concat": self._concat_pieces,
        }

    # ---------------------------------------------------------------- derived templars

    def with_vars(self, extra: Mapping[str, Any]) -> Templar:
        """A templar seeing ``extra`` over this one's variables (loop items, task vars, registered results)."""
        return Templar(
            {**self.variables, **extra}, base_dir=self.base_dir, context=self.context, location=self.location
        )

    def with_context(self, context: str, location: Location | None = None) -> Templar:
        t = Templar(self.variables, base_dir=self.base_dir, context=context, location=location or self.location)
        t._cache = self._cache  # same variables: resolved values stay valid
        return t

    # ---------------------------------------------------------------- public API

    def render(self, value: Any, *, secret: bool = False) -> Any:
        """Render ``value`` (any YAML data). With ``secret=True`` the result and anything read through
        ``lookup`` while rendering it are registered with ``orchestrator.redact``."""
        with self._top(value) as log_start:
            result = self._render(value, 0)
            if secret:
                self._register_secrets(result, log_start)
            return result

    def render_tracked(self, value: Any) -> tuple[Any, bool]:
        """``render(value)``, and whether the result derives from a secret: the template read a secret-named
        variable or a registered secret's value, or the result contains a registered secret."""
        before = self._touched_secret
        self._touched_secret = False
        try:
            result = self.render(value)
            derived = self._touched_secret or _contains_secret(result)
        finally:
            self._touched_secret = before
        return result, derived

    def evaluate(self, expr: str | bool | list[Any] | tuple[Any, ...] | None) -> bool:
        """Truth of a ``when``-style condition (a list is an AND, evaluated left to right)."""
        if isinstance(expr, list | tuple):
            return all(self.evaluate(e) for e in expr)
        with self._top(expr):
            return self._evaluate(expr)

    def get(self, name: str, default: Any = missing) -> Any:
        """One variable, rendered (lazily, like a template would see it). Secret-looking names register
        their value with ``orchestrator.redact``."""
        with self._top(name):
            if name not in self.variables:
                if default is not missing:
                    return default
                raise _UndefinedUse(f"{name!r} is undefined", name, missing, ())
            value = self._resolve(name)
            if isinstance(value, Undefined):
                str(value)
            return value

    def is_template(self, text: Any) -> bool:
        return is_template(text)

    # ---------------------------------------------------------------- machinery

    def _top(self, source: Any) -> _TopLevel:
        return _TopLevel(self, source)

    def _render(self, value: Any, depth: int) -> Any:
        if depth > MAX_DATA_DEPTH:
            raise _Limit("data is nested too deeply to render")
        if isinstance(value, UnsafeText):
            return value
        if isinstance(value, str):
            return self._render_text(value) if is_template(value) else value
        if isinstance(value, LazyMapping):
            return value
        if isinstance(value, Mapping):
            return {
                (self._render(k, depth + 1) if is_template(k) else k): self._render(v, depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self._render(v, depth + 1) for v in value]
        return value

    def _render_text(self, text: str) -> Any:
        template, native = _compile(text, False)
        return self._run(template, native)

    def _run(self, template: Any, native: bool) -> Any:
        ctx = template.new_context(self._scope, shared=True)
        gen = template.root_render_func(ctx)
        if native:
            values = list(gen)
            if len(values) == 1:
                return _finalize(values[0], 0)
            return self._join(values)
        return self._join(gen)

    def _join(self, pieces: Iterable[Any]) -> str:
        return _text_concat(pieces)

    def _evaluate(self, expr: Any) -> bool:
        if expr is None or isinstance(expr, bool):
            return expr is not False
        if isinstance(expr, int | float):
            return bool(expr)
        if isinstance(expr, UnsafeText):
            raise _FilterFailure("a condition marked !unsafe cannot be evaluated")
        if not isinstance(expr, str):
            raise _FilterFailure(f"a condition must be a string or a boolean, not {type(expr).__name__}")
        text = expr.strip()
        if not text:
            return True
        if is_template(text):
            value = self._render_text(text)
            if isinstance(value, str) and not isinstance(value, UnsafeText):
                lowered = value.strip().lower()
                if lowered in ("true", "false", "yes", "no", "on", "off", "1", "0", ""):
                    return lowered in ("true", "yes", "on", "1")
                template, _ = _compile(value.strip(), True)
                value = self._run(template, True)
        else:
            template, _ = _compile(text, True)
            value = self._run(template, True)
        return _truth(value, text)

    def _resolve(self, name: str) -> Any:
        if name in self._cache:
            return self._cache[name]
        raw = self.variables[name]
        if not _has_template(raw):
            return raw
        if name in self._resolving:
            chain = " → ".join([*self._resolving[self._resolving.index(name) :], name])
            raise _Limit(f"recursive loop in variables: {chain}")
        if len(self._resolving) >= MAX_VAR_DEPTH:
            raise _Limit(f"variables refer to each other more than {MAX_VAR_DEPTH} levels deep")
        self._resolving.append(name)
        log_start = len(self._lookup_log)
        try:
            value = self._render(raw, 0)
        except _UndefinedUse as exc:
            value = _KfUndefined(
                hint=str(exc),
                name=exc.name if isinstance(exc.name, str) else None,
                obj=exc.obj,
                via=(name, *exc.via),
            )
        finally:
            self._resolving.pop()
        if SECRET_KEYS.search(name) and not isinstance(value, Undefined):
            self._register_secrets(value, log_start)
        self._cache[name] = value
        return value

    def _register_secrets(self, value: Any, log_start: int) -> None:
        for item in self._lookup_log[log_start:]:
            register_secret(item)
        if isinstance(value, str | int) and not isinstance(value, bool):
            register_secret(str(value))

    # ---------------------------------------------------------------- globals bound to this templar

    def _iter(self, iterable: Any) -> Iterator[Any]:
        budget = self._budget
        for item in iterable:
            if budget is not None:
                budget.tick()
            yield item

    def _concat_pieces(self, *pieces: Any) -> str:
        return self._join(pieces)

    def _range(self, *args: Any) -> range:
        if any(not isinstance(a, int) or isinstance(a, bool) for a in args):
            raise _FilterFailure("range() takes whole numbers")
        try:
            rng = range(*args)
        except (TypeError, ValueError) as exc:
            raise _FilterFailure(f"range(): {exc}") from None
        if len(rng) > MAX_RANGE:
            raise _Limit(f"range() is limited to {MAX_RANGE} numbers")
        return rng

    def _query(self, name: Any, *terms: Any, **kwargs: Any) -> list[Any]:
        plugin = _LOOKUPS.get(str(name))
        if plugin is None:
            raise _FilterFailure(
                f"unknown lookup '{name}'{_did_you_mean(str(name), _LOOKUPS)} (available: {', '.join(_LOOKUPS)})"
            )
        errors = kwargs.pop("errors", "strict")
        kwargs.pop("wantlist", None)
        flat: list[Any] = []
        for term in terms:
            if isinstance(term, Undefined):
                str(term)
            flat.extend(term if isinstance(term, list | tuple) else [term])
        try:
            results = plugin(self, flat, kwargs)
        except _FilterFailure:
            if errors == "ignore":
                return []
            raise
        self._lookup_log.extend(r for r in results if isinstance(r, str))
        return results

    def _lookup(self, name: Any, *terms: Any, **kwargs: Any) -> Any:
        wantlist = f_bool(kwargs.pop("wantlist", False))
        results = self._query(name, *terms, **kwargs)
        if wantlist:
            return results
        if len(results) == 1:
            return results[0]
        return ",".join(_to_text(r) for r in results)

    # ---------------------------------------------------------------- errors

    def _error(self, exc: BaseException, source: Any) -> TemplateError:
        where = f" in {self.context}" if self.context else ""
        snippet = _snippet(source)
        hint = f"while rendering {snippet}" if snippet else None
        if isinstance(exc, _UndefinedUse):
            return self._undefined_error(exc, where, hint)
        if isinstance(exc, SecurityError):
            detail = str(exc).rstrip(".")
            return TemplateError(f"refused by the template sandbox: {detail}{where}", self.location, hint)
        if isinstance(exc, TemplateSyntaxError):
            return TemplateError(f"{_syntax_message(exc)}{where}", self.location, hint)
        if isinstance(exc, _Limit):
            return TemplateError(f"refused: {exc}{where}", self.location, hint)
        if isinstance(exc, _FilterFailure):
            return TemplateError(f"{exc}{where}", self.location, hint)
        if isinstance(exc, RecursionError):
            return TemplateError(f"refused: the template recurses too deeply{where}", self.location, hint)
        if isinstance(exc, MemoryError):
            return TemplateError(f"refused: the template needs too much memory{where}", self.location, hint)
        detail = str(exc) or type(exc).__name__
        return TemplateError(f"template error: {detail}{where}", self.location, hint)

    def _undefined_error(self, exc: _UndefinedUse, where: str, hint: str | None) -> TemplateError:
        name = exc.name
        via = f" (needed by variable '{exc.via[0]}')" if exc.via else ""
        if exc.obj is missing and isinstance(name, str):
            suggestion = _did_you_mean(name, [*self.variables, *self._globals])
            return TemplateError(f"undefined variable '{name}'{via}{where}{suggestion}", self.location, hint)
        suggestion = ""
        if isinstance(exc.obj, Mapping) and isinstance(name, str):
            suggestion = _did_you_mean(name, [k for k in exc.obj if isinstance(k, str)])
        message = str(exc)
        if exc.via and message.endswith(f"(needed by variable '{exc.via[0]}')"):
            via = ""
        return TemplateError(f"{message}{via}{where}{suggestion}", self.location, hint)


class _TopLevel:
    """Context manager: a fresh budget for each top-level call, and every error becomes a TemplateError."""

    def __init__(self, templar: Templar, source: Any) -> None:
        self.templar = templar
        self.source = source
        self.outer = False

    def __enter__(self) -> int:
        if self.templar._budget is None:
            self.templar._budget = _Budget()
            self.outer = True
        return len(self.templar._lookup_log)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if self.outer:
            self.templar._budget = None
            self.templar._resolving.clear()
        if exc is None or not self.outer:
            return
        if isinstance(exc, TemplateError) or not isinstance(exc, Exception):
            return
        raise self.templar._error(exc, self.source) from None


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


def _now(utc: bool = False, fmt: str | None = None) -> Any:
    moment = datetime.now(UTC) if utc else datetime.now().astimezone()
    return moment.strftime(fmt) if fmt else moment.isoformat()


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


def _truth(value: Any, text: str) -> bool:
    if isinstance(value, Undefined):
        str(value)
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, str):
        raise _FilterFailure(
            f"condition {text!r} gave the string {value!r}, not a boolean; "
            f"write '{text} | bool' if it holds yes/no/true/false text"
        )
    if isinstance(value, int | float | Sequence | Mapping):
        return bool(value)
    return bool(value)
