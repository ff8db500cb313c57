"""Ansible's common filters and tests, as kmsfleet provides them."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from orchestrator.errors import TemplateError
from orchestrator.templating import Templar

VARS: dict[str, Any] = {
    "words": ["b", "a", "B", "a"],
    "nums": [3, 1, 2],
    "d": {"x": 1, "y": 2},
    "users": [{"name": "amy", "admin": True}, {"name": "bob", "admin": False}],
    "ok_result": {"changed": False, "failed": False, "rc": 0},
    "bad_result": {"changed": True, "failed": True, "rc": 1},
    "loop_result": {"results": [{"changed": False}, {"changed": True}]},
    "skipped_result": {"skipped": True, "changed": False},
    "path": "/opt/kms/slmgr.vbs",
    "winpath": "C:\\Windows\\System32\\slmgr.vbs",
    "text": "line one\nline two",
    "version_output": "Version 10.0.19045 build",
}


@pytest.fixture
def t() -> Templar:
    return Templar(VARS)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ undefined_x | default('d') }}", "d"),
        ("{{ undefined_x | d(5) }}", 5),
        ("{{ '' | default('d', true) }}", "d"),
        ("{{ 'yes' | bool }}", True),
        ("{{ 'off' | bool }}", False),
        ("{{ 1 | bool }}", True),
        ("{{ '42' | int + 1 }}", 43),
        ("{{ '2.5' | float }}", 2.5),
        ("{{ 42 | string }}", "42"),
        ("{{ 'AbC' | lower }}|{{ 'AbC' | upper }}", "abc|ABC"),
        ("{{ '  x  ' | trim }}", "x"),
        ("{{ 'a-b-c' | replace('-', '+') }}", "a+b+c"),
        ("{{ 'Activation succeeded' | regex_search('succ\\w+') }}", "succeeded"),
        ("{{ version_output | regex_search('(\\d+)\\.(\\d+)', '\\1', '\\2') }}", ["10", "0"]),
        ("{{ 'abc' | regex_search('x') }}", None),
        ("{{ 'ABC' | regex_search('b', ignorecase=True) }}", "B"),
        ("{{ 'a1b22' | regex_replace('\\d+', '#') }}", "a#b#"),
        ("{{ 'a1b22' | regex_findall('\\d+') }}", ["1", "22"]),
        ("{{ d | to_json }}", '{"x": 1, "y": 2}'),
        ("{{ '{\"a\": [1]}' | from_json }}", {"a": [1]}),
        ("{{ d | to_yaml }}", "{x: 1, y: 2}\n"),
        ("{{ 'a: [1, 2]' | from_yaml }}", {"a": [1, 2]}),
        ("{{ d | to_nice_json }}", '{\n    "x": 1,\n    "y": 2\n}'),
        ("{{ nums | join(',') }}", "3,1,2"),
        ("{{ nums | first }}-{{ nums | last }}", "3-2"),
        ("{{ words | length }}", 4),
        ("{{ words | unique }}", ["b", "a"]),
        ("{{ [1, 2] | union([2, 3]) }}", [1, 2, 3]),
        ("{{ [1, 2, 3] | intersect([2, 3, 4]) }}", [2, 3]),
        ("{{ [1, 2, 3] | difference([2]) }}", [1, 3]),
        ("{{ [1, [2, [3, [4]]]] | flatten }}", [1, 2, 3, 4]),
        ("{{ [1, [2, [3]]] | flatten(levels=1) }}", [1, 2, [3]]),
        ("{{ d | dict2items }}", [{"key": "x", "value": 1}, {"key": "y", "value": 2}]),
        ("{{ [{'key': 'a', 'value': 1}] | items2dict }}", {"a": 1}),
        ("{{ d | combine({'y': 3, 'z': 4}) }}", {"x": 1, "y": 3, "z": 4}),
        ("{{ {'a': {'b': 1}} | combine({'a': {'c': 2}}, recursive=true) }}", {"a": {"b": 1, "c": 2}}),
        ("{{ {'l': [1]} | combine({'l': [2]}, list_merge='append') }}", {"l": [1, 2]}),
        ("{{ users | map(attribute='name') | list }}", ["amy", "bob"]),
        ("{{ users | selectattr('admin') | map(attribute='name') | list }}", ["amy"]),
        ("{{ users | rejectattr('admin') | map(attribute='name') | list }}", ["bob"]),
        ("{{ nums | select('gt', 1) | list }}", [3, 2]),
        ("{{ nums | reject('gt', 1) | list }}", [1]),
        ("{{ nums | sort }}", [1, 2, 3]),
        ("{{ nums | min }}/{{ nums | max }}/{{ nums | sum }}", "1/3/6"),
        ("{{ 'kms' | b64encode }}", base64.b64encode(b"kms").decode()),
        ("{{ 'kms' | b64encode | b64decode }}", "kms"),
        ("{{ path | basename }}|{{ path | dirname }}", "slmgr.vbs|/opt/kms"),
        ("{{ winpath | win_basename }}", "slmgr.vbs"),
        ('{{ "it\'s" | quote }}', "'it'\"'\"'s'"),
        ("{{ 5 | mandatory }}", 5),
        ("{{ true | ternary('on', 'off') }}", "on"),
        ("{{ none | ternary('on', 'off', 'unknown') }}", "unknown"),
        ("{{ 'kms' | hash('sha1') }}", hashlib.sha1(b"kms").hexdigest()),
        ("{{ 'kms' | checksum }}", hashlib.sha1(b"kms").hexdigest()),
        ("{{ 'kms' | hash('md5') }}", hashlib.md5(b"kms").hexdigest()),
        ("{{ 'kms' | hash('sha256') }}", hashlib.sha256(b"kms").hexdigest()),
        ("{{ text | splitlines }}", ["line one", "line two"]),
        ("{{ 'a,b' | split(',') }}", ["a", "b"]),
        ("{{ [1, 2] | zip(['a', 'b']) }}", [[1, "a"], [2, "b"]]),
        ("{{ 'ab' | list }}", ["a", "b"]),
        ("{{ [['a', 1]] | dict }}", {"a": 1}),
        ("{{ [1, 2] | product(['a']) }}", [[1, "a"], [2, "a"]]),
        ("{{ '10.0.19045' is version('10.0.17763', '>=') }}", True),
        ("{{ '1.9' is version('1.10', '<') }}", True),
        ("{{ '2.0.0-rc1' is version('2.0.0', '<', version_type='semver') }}", True),
        ("{{ '1.2' is version_compare('1.2.0', '==', strict=true) }}", True),
        ("{{ ok_result is success }}|{{ ok_result is succeeded }}|{{ bad_result is failed }}", "True|True|True"),
        ("{{ bad_result is failure }}|{{ ok_result is changed }}|{{ bad_result is changed }}", "True|False|True"),
        ("{{ loop_result is changed }}", True),
        ("{{ skipped_result is skipped }}", True),
        ("{{ x is defined }}|{{ x is undefined }}|{{ none is none }}", "False|True|True"),
        ("{{ 'KMS host' is match('KMS') }}|{{ 'KMS host' is match('host') }}", "True|False"),
        ("{{ 'KMS host' is search('host') }}|{{ 'KMS host' is regex('^K.S') }}", "True|True"),
        ("{{ nums is contains(2) }}|{{ [1] is subset(nums) }}|{{ nums is superset([1, 2]) }}", "True|True|True"),
        ("{{ 'x' is truthy }}|{{ '' is falsy }}|{{ 'no' is falsy(convert_bool=true) }}", "True|True|True"),
        ("{{ 'x' is string }}|{{ 1 is number }}|{{ d is mapping }}|{{ nums is sequence }}", "True|True|True|True"),
        ("{{ nums is iterable }}|{{ 2 is in(nums) }}", "True|True"),
        ("{{ d | type_debug }}", "dict"),
    ],
)
def test_filters_and_tests(t: Templar, template: str, expected: Any) -> None:
    assert t.render(template) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ undefined_x | mandatory }}", "undefined variable 'undefined_x'"),
        ("{{ undefined_x | mandatory('set kms_host first') }}", "set kms_host first"),
        ("{{ 'x' | from_json }}", "from_json: invalid JSON"),
        ("{{ '[' | from_yaml }}", "from_yaml: invalid YAML"),
        ("{{ 'a: &x 1\nb: *x' | from_yaml }}", "aliases"),
        ("{{ 'x' | regex_search('(') }}", "invalid regular expression"),
        ("{{ 1 | dict2items }}", "dict2items expects a dictionary"),
        ("{{ 'abc' | union([1]) }}", "union expects a list"),
        ("{{ 'x' | hash('nope') }}", "unknown hash type 'nope'"),
        ("{{ 5 is failed }}", "the 'failed' test expects a registered task result"),
        ("{{ '1' is version('2', 'around') }}", "invalid operator"),
        ("{{ d | combine(1) }}", "combine expects dictionaries"),
    ],
)
def test_filter_errors(t: Templar, template: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        t.render(template)
    assert message in info.value.message


def test_backslashes_in_string_constants_are_kept_as_ansible_does(t: Templar) -> None:
    """Inside ``{{ }}`` Ansible keeps a string constant's backslashes (YAML already processed them): the
    classic ``regex_replace('^pc(\\d+)$', '\\1')`` from a double-quoted YAML string gives the number, and
    ``'a\\nb'`` is four characters. Conditions (``when``) and ``{% %}`` keep Jinja's escapes."""
    assert t.render("{{ 'pc042' | regex_replace('^pc(\\d+)$', '\\1') }}") == "042"
    assert t.render("{{ 'pc042' | regex_search('pc(\\d+)', '\\1') }}") == ["042"]
    assert t.render("{{ 'a\\nb' | length }}") == 4
    assert t.render("{% set s = 'a\\nb' %}{{ s | length }}") == "3"
    assert t.evaluate("'a\\nb' | length == 3") is True


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # Ansible's bool filter: only yes/on/true/1 (any case) are true
        (
            "{{ 'Yes' | bool }}|{{ 'ON' | bool }}|{{ '1' | bool }}|{{ 1 | bool }}|{{ true | bool }}",
            "True|True|True|True|True",
        ),
        (
            "{{ 'y' | bool }}|{{ 't' | bool }}|{{ ' yes' | bool }}|{{ None | bool }}|{{ 'foo' | bool }}",
            "False|False|False|False|False",
        ),
        ("{{ d | dictsort }}", [["x", 1], ["y", 2]]),
        ("{{ d | dictsort }} and {{ d.items() | list }}", "[['x', 1], ['y', 2]] and [['x', 1], ['y', 2]]"),
        (
            "{{ 10 | log(10) }} {{ 8 | log(2) }} {{ 16 | root }} {{ 27 | root(3) }} {{ 2 | pow(10) }}",
            "1.0 3.0 4.0 3.0 1024.0",
        ),
        ("{{ [1, 2, 3] | combinations(2) | list }}", [[1, 2], [1, 3], [2, 3]]),
        ("{{ [1, 2] | permutations | list }}", [[1, 2], [2, 1]]),
        ("{{ users | subelements('groups') | map('last') | list }}", ["x", "y", "z"]),
        (
            "{{ 1024 | human_readable }}|{{ '2 MB' | human_to_bytes }}|{{ '10' | human_to_bytes('K') }}",
            "1.00 KB|2097152|10240",
        ),
        (
            "{{ 'a/b.txt' | splitext }}|{{ 'a//b/../c' | normpath }}|{{ 'a%20b+c' | urldecode }}",
            "['a/b', '.txt']|a/c|a b c",
        ),
        ("{{ (('2024-01-10' | to_datetime('%Y-%m-%d')) - ('2024-01-01' | to_datetime('%Y-%m-%d'))).days }}", 9),
        ("{{ 'a: 1\n---\nb: 2' | from_yaml_all }}", [{"a": 1}, {"b": 2}]),
        ("{{ skipped_result is successful }}", True),
    ],
)
def test_ansible_filters_added_for_compatibility(template: str, expected: Any) -> None:
    users = [{"name": "a", "groups": ["x", "y"]}, {"name": "b", "groups": ["z"]}]
    assert Templar({**VARS, "users": users}).render(template) == expected


def test_type_debug_names_plain_types_for_values_read_from_yaml(tmp_path: Any) -> None:
    from orchestrator.yamlsource import load_yaml_text

    data = load_yaml_text("d: {a: 1}\nl: [1]\ns: text\n", "x.yml")
    assert Templar(data).render("{{ d | type_debug }} {{ l | type_debug }} {{ s | type_debug }}") == "dict list str"
