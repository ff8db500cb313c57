"""Regular expressions from templates (``regex_search``, ``match``, ``regex_replace`` …), run with a time
limit so a backtracking pattern cannot hang the process."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import regex

from orchestrator.templating.limits import _T, _fail, _Limit
from orchestrator.templating.values import _snippet

REGEX_SECONDS = 2.0  # one regular-expression call from a template (regex_search, match, regex_replace …)


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
