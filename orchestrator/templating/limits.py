"""The template budget: size and work limits, the errors a refused template raises, and the checks that
keep a small template from building a huge value (``"x" * 10**9``, ``"{:>99999999}".format(1)`` …)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import Any, NoReturn, TypeVar

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


_T = TypeVar("_T")


class _Limit(Exception):
    """A resource bound was hit; the message says which."""


class _FilterFailure(Exception):
    """A filter/test/lookup refused its input; the message is for the user."""


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


def _fail(message: str) -> NoReturn:
    raise _FilterFailure(message)
