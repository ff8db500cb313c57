"""YAML is read with libyaml's parser when PyYAML has it (less memory for a large inventory): the same values,
types and file:line:column locations as the pure-Python parser, the same limits, and on an error the very
message the pure-Python parser gives (it reads the text again to say what is wrong)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from orchestrator import yamlsource
from orchestrator.errors import InputError
from orchestrator.yamlsource import LocatedDict, LocatedList, UnsafeText, load_yaml_text

pytestmark = pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML without libyaml")

DOC = """\
all:
  vars:
    note: !unsafe "{{ not templated }}"
    on: yes
    "quoted key": 3.5
  children:
    room101:
      hosts:
        pc01: {ansible_host: 127.0.0.1, 教室: 一〇一}
        pc02:
          list: [1, two, null, 2026-01-02]
"""


def _pure(text: str) -> Any:
    loader = yamlsource._BudgetLoader(text)
    loader.filename = "f.yml"
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _locations(value: Any) -> Any:
    if isinstance(value, LocatedDict):
        return (value.location, value.key_locations, {k: _locations(v) for k, v in value.items()})
    if isinstance(value, LocatedList):
        return (value.location, value.item_locations, [_locations(v) for v in value])
    return (type(value).__name__, value)


def test_libyaml_reads_what_the_pure_python_parser_reads() -> None:
    fast = load_yaml_text(DOC, "f.yml")
    assert fast == _pure(DOC)
    assert _locations(fast) == _locations(_pure(DOC))
    assert isinstance(fast["all"]["vars"]["note"], UnsafeText)
    assert fast["all"]["children"]["room101"]["hosts"]["pc02"]["list"][1] == "two"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a:\n\t- b\n", "'\\t'"),
        ("a: *x\n", "undefined alias 'x'"),
        ("a: [1, 2\n", "expected ',' or ']'"),
        ("a: \udc80\n", "not valid YAML text"),
        ("a: 1\na: 2\n", "duplicate key 'a'"),
    ],
)
def test_errors_are_said_in_the_pure_python_parsers_words(text: str, words: str) -> None:
    with pytest.raises(InputError) as caught:
        load_yaml_text(text, "f.yml")
    assert words in str(caught.value) and "f.yml" in str(caught.value)


def test_alias_bomb_refused_on_the_libyaml_path() -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 8)]
    with pytest.raises(InputError, match="alias"):
        load_yaml_text("\n".join(levels) + "\n", "bomb.yml")


def test_valid_text_goes_through_libyaml(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = yamlsource._read_with_libyaml

    def spy(text: str, filename: str) -> Any:
        calls.append(filename)
        return real(text, filename)

    monkeypatch.setattr(yamlsource, "_read_with_libyaml", spy)
    assert load_yaml_text(DOC, "f.yml") == _pure(DOC)
    assert calls == ["f.yml"]
