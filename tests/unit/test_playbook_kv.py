"""Ansible's key=value argument text."""

from __future__ import annotations

import pytest

from orchestrator.playbook.kv import KVError, decode_escapes, parse_kv, split_args


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("a b  c", ["a", "b", "c"]),
        ('msg="two words" x=1', ['msg="two words"', "x=1"]),
        ("msg='it''s'", ["msg='it''s'"]),
        ("msg={{ a + b }} y", ["msg={{ a + b }}", "y"]),
        ("x={% if a %}1{% else %}2{% endif %} y", ["x={% if a %}1{% else %}2{% endif %}", "y"]),
        ("x={% if a %}1 2{% endif %}", ["x={% if a %}1", "2{% endif %}"]),  # as Ansible splits it
        ("x={# c o m #}", ["x={# c o m #}"]),
        ("a=\"{{ 'q' }}\" b", ["a=\"{{ 'q' }}\"", "b"]),
        ("path=C:\\Program\\ Files", ["path=C:\\Program\\ Files"]),
        ("", []),
    ],
)
def test_split_args(text: str, tokens: list[str]) -> None:
    assert split_args(text) == tokens


@pytest.mark.parametrize("text", ["msg='open", 'a="b', "x={{ a"])
def test_split_args_errors(text: str) -> None:
    with pytest.raises(KVError):
        split_args(text)


def test_key_value_module() -> None:
    args, rest, warnings = parse_kv("msg='Hello {{ name }}' verbosity=2", None)
    assert args == {"msg": "Hello {{ name }}", "verbosity": "2"}
    assert rest == [] and warnings == []


def test_non_key_value_words_are_returned_for_non_free_form_modules() -> None:
    args, rest, _ = parse_kv("msg=hello world", None)
    assert args == {"msg": "hello"} and rest == ["world"]


def test_free_form_keeps_unknown_pairs_in_the_command() -> None:
    args, rest, _ = parse_kv("setx PATH=C:\\bin creates=C:\\\\flag removes=x chdir='C:\\My Dir'", "cmd")
    assert args == {"cmd": "setx PATH=C:\\bin", "creates": "C:\\flag", "removes": "x", "chdir": "C:\\My Dir"}
    assert rest == []


def test_free_form_text_is_kept_verbatim_when_nothing_is_extracted() -> None:
    args, _, _ = parse_kv('  echo "a   b"   c  ', "cmd")
    assert args == {"cmd": 'echo "a   b"   c'}


def test_multiline_free_form_is_verbatim() -> None:
    text = "Get-Item x\n  chdir=C:\\Temp\n"
    assert parse_kv(text, "cmd")[0] == {"cmd": text}


def test_escapes_like_ansible() -> None:
    assert decode_escapes("C:\\\\Temp") == "C:\\Temp"
    assert decode_escapes("C:\\Temp") == "C:\\Temp"
    assert decode_escapes("a\\tb") == "a\tb"
    assert decode_escapes("\\u00e9\\x41") == "éA"
    args, _, warnings = parse_kv("chdir=C:\\temp", "cmd")
    assert args == {"chdir": "C:\temp"}
    assert warnings and "chdir=C:\\\\temp" in warnings[0]


def test_equals_inside_templates_and_quotes_is_not_a_separator() -> None:
    assert parse_kv("msg={{ a == b }}", None)[0] == {"msg": "{{ a == b }}"}
    assert parse_kv("'x=1'", None)[1] == ["'x=1'"]
    assert parse_kv("x\\=1", None)[1] == ["x\\=1"]
