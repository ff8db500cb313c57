"""Property: render() and evaluate() raise nothing but TemplateError, whatever they are given."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import TemplateError
from orchestrator.templating import Templar, check_template

VARS: dict[str, Any] = {
    "a": 1,
    "s": "text",
    "l": [1, "x", None],
    "d": {"k": "{{ a }}", "n": None},
    "t": "{{ s }}-{{ a }}",
    "loop1": "{{ loop2 }}",
    "loop2": "{{ loop1 }}",
    "r": {"changed": True},
}

PIECES = [
    "{{", "}}", "{%", "%}", "{#", "#}", "a", "s", "l", "d", "t", "r", "loop1", "x", ".", "[", "]", "(", ")",
    "|", " ", "'", '"', "1", "0", "-", "+", "*", "**", "/", "~", ",", ":", "=", "==", "if", "else", "for",
    " in ", "endfor", "endif", "set", "not", "and", "or", "is", "defined", "default", "int", "length", "map",
    "join", "list", "range", "lookup", "query", "'env'", "'file'", "__class__", "__globals__", "omit", "none",
    "true", "version", "regex_replace", "to_json", "from_yaml", "combine", "dict2items", "loop", "item",
    "changed", "select", "attribute", "k", "n", "\n",
]  # fmt: skip

TEMPLATES = st.lists(st.sampled_from(PIECES), max_size=14).map("".join)
DATA = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20) | TEMPLATES,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5) | TEMPLATES, children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DATA)
def test_render_raises_only_template_errors(value: Any) -> None:
    try:
        Templar(VARS, context="property test").render(value)
    except TemplateError:
        pass


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEMPLATES | st.text(max_size=40) | st.booleans() | st.lists(TEMPLATES, max_size=3))
def test_evaluate_raises_only_template_errors(condition: Any) -> None:
    try:
        result = Templar(VARS).evaluate(condition)
    except TemplateError:
        return
    assert isinstance(result, bool)


@settings(max_examples=300, deadline=None)
@given(TEMPLATES | st.text(max_size=40))
def test_check_template_agrees_with_rendering(text: str) -> None:
    problem = check_template(text)
    if problem is None:
        return
    try:
        Templar(VARS).render(text)
    except TemplateError:
        return
    raise AssertionError(f"check_template reported {problem!r} but {text!r} rendered")
