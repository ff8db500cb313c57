"""Templates cannot escape the sandbox or exhaust the controller: such templates fail with TemplateError."""

from __future__ import annotations

import time

import pytest

from orchestrator.errors import TemplateError
from orchestrator.templating import Templar

ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__ }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ lookup.__globals__ }}",
    "{{ lookup.__self__ }}",
    "{{ range.__globals__ }}",
    "{{ (1).__class__.__base__.__subclasses__() }}",
    "{{ [].__class__.__base__ }}",
    "{{ self.__init__.__globals__ }}",
    "{{ lipsum.__globals__ }}",
    "{{ lipsum(10**6) }}",
    "{{ config.items() }}",
    "{{ request.application }}",
    "{{ '{0.__class__}'.format('') }}",
    "{{ '%s' % ''.__class__ }}",
    "{{ [].append(1) }}",
    "{{ {}.update({'a': 1}) }}",
    "{% set x = [] %}{{ x.pop() }}",
    "{% include '/etc/passwd' %}",
    "{% import 'os' as os %}",
    "{% extends '/etc/passwd' %}",
    "{{ lookup('pipe', 'id') }}",
    "{{ lookup('file', '/nonexistent/secret') }}",
]

BOMBS = [
    "{{ range(10**9) | list }}",
    "{{ 'a' * 10**9 }}",
    "{{ ['a'] * 10**8 }}",
    "{{ 10 ** (10 ** 10) }}",
    "{{ 2 ** 1000000 }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ '%999999999d' % 1 }}",
    "{{ 'x' | center(999999999) }}",
    "{{ 'x' | indent(999999999) }}",
    "{{ 'x'.ljust(10**9) }}",
    "{{ 'x'.zfill(10**9) }}",
    "{{ ('a' * 4000000) ~ ('b' * 4000000) }}",
    "{{ ('a' * 4000000) + ('b' * 4000000) }}",
    "{{ ('a' * 4000000) | replace('a', 'aa') }}",
    "{{ ([('a' * 4000000)] * 3) | join('') }}",
    "{{ ['a' * 4000000, 'b' * 4000000] | join('') }}",
    "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
    "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(10) %}x{% endfor %}{% endfor %}{% endfor %}",
    "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "{{ range(2000) | product(range(2000)) }}",
    "{{ 'x' | wordwrap(10**9) }}",
    "{{ [1] | batch(10**9, 0) | list }}",
]


@pytest.mark.parametrize("template", ESCAPES)
def test_escapes_are_refused(template: str) -> None:
    with pytest.raises(TemplateError):
        Templar({}).render(template)


@pytest.mark.parametrize("template", BOMBS)
def test_resource_bombs_are_refused_quickly(template: str) -> None:
    started = time.monotonic()
    with pytest.raises(TemplateError) as info:
        Templar({}).render(template)
    assert time.monotonic() - started < 15
    assert "refused" in info.value.message or "too" in info.value.message


def test_sandbox_message_is_clear() -> None:
    with pytest.raises(TemplateError) as info:
        Templar({}, context="task 'x' on host pc01").render("{{ ''.__class__ }}")
    assert info.value.message == (
        "refused by the template sandbox: access to attribute '__class__' of 'str' object is unsafe "
        "in task 'x' on host pc01"
    )


def test_removed_globals_are_plain_undefined_variables() -> None:
    with pytest.raises(TemplateError, match="undefined variable 'cycler'"):
        Templar({}).render("{{ cycler.__init__.__globals__ }}")


def test_data_given_to_templates_cannot_be_mutated() -> None:
    data = {"items": [1, 2]}
    with pytest.raises(TemplateError):
        Templar(data).render("{{ items.append(3) }}")
    assert data == {"items": [1, 2]}


def test_huge_template_source_is_refused() -> None:
    with pytest.raises(TemplateError, match="longer than"):
        Templar({}).render("{{ 1 }}" + "x" * 300_000)


def test_ordinary_work_is_not_limited() -> None:
    t = Templar({"hosts": [f"pc{i:02d}" for i in range(40)]})
    assert len(t.render("{% for h in hosts %}{% for i in range(100) %}.{% endfor %}{% endfor %}")) == 4000
    assert t.render("{{ ('ab' * 1000) | length }}") == 2000
