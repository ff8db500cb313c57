"""The Jinja2 sandbox kmsfleet renders in: strict-but-chainable undefined values, Ansible's lexer rule for
backslashes, an AST guard that sends loops and ``~`` through the budget, and size checks on every operator and
call."""

from __future__ import annotations

import functools
import math
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NoReturn

from jinja2 import nodes
from jinja2.exceptions import (
    SecurityError,
    TemplateRuntimeError,
    UndefinedError,
)
from jinja2.lexer import TOKEN_STRING, TOKEN_VARIABLE_BEGIN, TOKEN_VARIABLE_END, Lexer
from jinja2.nativetypes import NativeCodeGenerator
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing
from jinja2.visitor import NodeTransformer

from orchestrator.templating.limits import (
    MAX_ITEMS,
    MAX_POW_BITS,
    MAX_STRING,
    _Budget,
    _check_format_string,
    _check_join,
    _check_replace,
    _check_size,
    _int_too_big,
    _Limit,
)
from orchestrator.templating.values import _text_concat


class _UndefinedUse(UndefinedError):
    """An undefined value was used. Carries what is needed for a precise message."""

    def __init__(self, message: str, name: Any, obj: Any, via: tuple[str, ...]) -> None:
        super().__init__(message)
        self.name = name
        self.obj = obj
        self.via = via


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
        # The scope of a ``Templar`` render carries the templar, whose budget counts this call.
        budget = getattr(getattr(__context.parent, "templar", None), "_budget", None)
        if isinstance(budget, _Budget):
            budget.tick()
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
