"""The one configured sandbox environment, the compile cache, and ``check_template`` (validation of a
template before anything renders)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import (
    SecurityError,
    TemplateSyntaxError,
)
from jinja2.parser import Parser

from orchestrator.templating.filters import FILTERS, _guard_filter
from orchestrator.templating.limits import MAX_TEMPLATE_CHARS, _Limit
from orchestrator.templating.sandbox import _Environment, _Guard, _KfUndefined
from orchestrator.templating.tests import TESTS, t_version
from orchestrator.templating.values import _did_you_mean, is_template
from orchestrator.yamlsource import UnsafeText


def _make_environment() -> _Environment:
    env = _Environment(undefined=_KfUndefined, autoescape=False, keep_trailing_newline=True, trim_blocks=True)
    for name in ("lipsum", "cycler", "range"):
        env.globals.pop(name, None)
    filters: dict[str, Callable[..., Any]] = {**FILTERS, "version": t_version, "version_compare": t_version}
    env.filters.update(filters)
    env.filters = {name: _guard_filter(name, f) for name, f in env.filters.items()}
    tests = TESTS
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
