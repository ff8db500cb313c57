"""``Templar``: renders values for one host and task, resolves variables lazily, evaluates conditions,
and turns every failure into a ``TemplateError``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2.exceptions import (
    SecurityError,
    TemplateSyntaxError,
)
from jinja2.runtime import Undefined
from jinja2.utils import missing

from orchestrator.booleans import boolean
from orchestrator.errors import Location, TemplateError
from orchestrator.redact import SECRET_KEYS, is_secret_name, is_secret_value, register_secret
from orchestrator.templating.environment import _ENV, _compile, _syntax_message
from orchestrator.templating.limits import MAX_DATA_DEPTH, MAX_RANGE, MAX_VAR_DEPTH, _Budget, _FilterFailure, _Limit
from orchestrator.templating.lookups import LOOKUPS as _LOOKUPS
from orchestrator.templating.sandbox import _KfUndefined, _UndefinedUse
from orchestrator.templating.values import (
    OMIT,
    LazyMapping,
    _contains_secret,
    _did_you_mean,
    _finalize,
    _has_template,
    _snippet,
    _text_concat,
    _to_text,
    is_template,
)
from orchestrator.yamlsource import UnsafeText


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
                # A condition rendered to text: only the YAML 1.1 words are read as booleans here, not the
                # single letters of ``orchestrator.booleans`` ('y' is an expression naming the variable y).
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
        wantlist = boolean(kwargs.pop("wantlist", False))
        results = self._query(name, *terms, **kwargs)
        if wantlist:
            return results
        if len(results) == 1:
            return results[0]
        if all(isinstance(r, str) for r in results):
            return ",".join(_to_text(r) for r in results)
        return results  # Ansible joins text results only; others (the dict lookup's items) stay a list

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


def _now(utc: bool = False, fmt: str | None = None) -> Any:
    moment = datetime.now(UTC) if utc else datetime.now().astimezone()
    return moment.strftime(fmt) if fmt else moment.isoformat()


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
