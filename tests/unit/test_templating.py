"""Templar: native results, lazy variables, UnsafeText, conditions, and error messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import Location, TemplateError
from orchestrator.redact import MASK, redact_text
from orchestrator.templating import (
    OMIT,
    HostVars,
    Templar,
    check_template,
    has_template,
    is_template,
    mark_unsafe,
    remove_omitted,
)
from orchestrator.yamlsource import UnsafeText, load_yaml_text

VARS: dict[str, Any] = {
    "kms_host": "{{ site_kms }}",
    "site_kms": "kms.school.example",
    "port": 1688,
    "endpoint": "{{ kms_host }}:{{ port }}",
    "hosts": ["pc01", "pc02"],
    "count": "{{ hosts | length }}",
    "settings": {"retries": "{{ port // 100 }}", "name": "{{ kms_host }}"},
    "result": {"changed": True, "failed": False, "rc": 0, "stdout": "ok\r\n"},
    "flag_text": "false",
    "loop_a": "{{ loop_b }}",
    "loop_b": "{{ loop_a }}",
    "self_ref": "{{ self_ref }}",
    "broken": "{{ missing_thing }}",
}


@pytest.fixture
def templar() -> Templar:
    return Templar(VARS, context='task "Set KMS host" on host pc03')


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ port }}", 1688),
        ("{{ hosts }}", ["pc01", "pc02"]),
        ("{{ port + 1 }}", 1689),
        ("{{ port > 1000 }}", True),
        ("{{ none }}", None),
        ("{{ {'a': port} }}", {"a": 1688}),
        ("{{ hosts | map('upper') }}", ["PC01", "PC02"]),
        ("{{ [3, 1, 2] | sort }}", [1, 2, 3]),
        ("port={{ port }}", "port=1688"),
        (" {{ port }}", " 1688"),
        ("{{ port }}\n", "1688\n"),
        ("{{ a }}{{ b }}".replace("a", "port").replace("b", "port"), "16881688"),
        ("{% if port %}yes{% endif %}", "yes"),
        ("{{ none }} and {{ hosts }}", " and ['pc01', 'pc02']"),
        ("no template", "no template"),
        ("{{ '{{ port }}' }}", "{{ port }}"),  # a rendered value is not rendered again
    ],
)
def test_native_and_text_results(templar: Templar, template: str, expected: Any) -> None:
    result = templar.render(template)
    assert result == expected
    assert type(result) is type(expected)


def test_lazy_nested_variables(templar: Templar) -> None:
    assert templar.render("{{ endpoint }}") == "kms.school.example:1688"
    assert templar.render("{{ count }}") == 2
    assert templar.render("{{ settings }}") == {"retries": 16, "name": "kms.school.example"}
    assert templar.render("{{ settings.retries * 2 }}") == 32


def test_render_walks_data(templar: Templar) -> None:
    data = {"host": "{{ kms_host }}", "list": ["{{ port }}", 5, None, True], "{{ 'k' ~ port }}": "v"}
    assert templar.render(data) == {"host": "kms.school.example", "list": [1688, 5, None, True], "k1688": "v"}


def test_unsafe_text_is_never_templated(templar: Templar) -> None:
    data = load_yaml_text("a: !unsafe '{{ port }}'\nb: '{{ port }}'\n")
    rendered = templar.render(data)
    assert rendered == {"a": "{{ port }}", "b": 1688}
    assert isinstance(rendered["a"], UnsafeText)
    unsafe_var = Templar({"x": UnsafeText("{{ port }}"), "port": 1})
    assert unsafe_var.render("{{ x }}") == "{{ port }}"
    assert not is_template(UnsafeText("{{ x }}"))


def test_mark_unsafe_protects_registered_results() -> None:
    registered = mark_unsafe({"stdout": "{{ lookup('env', 'HOME') }}", "lines": ["{{ x }}"], "rc": 0})
    t = Templar({"result": registered})
    assert t.render("{{ result.stdout }}") == "{{ lookup('env', 'HOME') }}"
    assert t.render("{{ result.lines[0] }}") == "{{ x }}"


def test_undefined_variable_names_context_and_suggestion(templar: Templar) -> None:
    with pytest.raises(TemplateError) as info:
        templar.render("{{ kms_hots }}")
    assert info.value.message == (
        "undefined variable 'kms_hots' in task \"Set KMS host\" on host pc03 — did you mean 'kms_host'?"
    )


def test_undefined_attribute_suggests_keys(templar: Templar) -> None:
    with pytest.raises(TemplateError) as info:
        templar.render("{{ result.stdot }}")
    assert "has no attribute 'stdot'" in info.value.message
    assert info.value.message.endswith("— did you mean 'stdout'?")


def test_undefined_inside_another_variable(templar: Templar) -> None:
    with pytest.raises(TemplateError) as info:
        templar.render("{{ broken }}")
    assert "undefined variable 'missing_thing' (needed by variable 'broken')" in info.value.message


def test_error_location_is_the_callers() -> None:
    where = Location("site.yml", 12, 7)
    t = Templar({}, context="task 'x' on host pc01", location=where)
    with pytest.raises(TemplateError) as info:
        t.render("{{ nope }}")
    assert info.value.location == where
    assert str(info.value).startswith("site.yml:12:7: undefined variable 'nope'")


def test_default_and_defined_work_on_undefined_chains(templar: Templar) -> None:
    assert templar.render("{{ nothing | default('x') }}") == "x"
    assert templar.render("{{ nothing.deeper['key'] | default('x') }}") == "x"
    assert templar.render("{{ result.missing | default('') }}") == ""
    assert templar.render("{{ nothing is defined }}") is False
    assert templar.render("{{ broken is defined }}") is False  # like Ansible: its value needs an undefined
    assert templar.render("{{ broken | default('fallback') }}") == "fallback"
    assert templar.render("{{ '' | default('empty', true) }}") == "empty"


def test_recursive_variables_are_refused(templar: Templar) -> None:
    with pytest.raises(TemplateError, match="recursive loop in variables: loop_a → loop_b → loop_a"):
        templar.render("{{ loop_a }}")
    with pytest.raises(TemplateError, match="self_ref → self_ref"):
        templar.render("{{ self_ref }}")


def test_deep_variable_chains_are_bounded() -> None:
    chain = {f"v{i}": f"{{{{ v{i + 1} }}}}" for i in range(100)}
    chain["v100"] = "end"
    t = Templar(chain)
    assert t.render("{{ v60 }}") == "end"
    with pytest.raises(TemplateError, match="more than 40 levels"):
        t.render("{{ v0 }}")


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (True, True),
        (False, False),
        (None, True),
        ("", True),
        ("port == 1688", True),
        ("port != 1688", False),
        ("kms_host == 'kms.school.example'", True),
        (["port == 1688", "hosts | length == 2"], True),
        (["port == 1688", "hosts | length == 3"], False),
        ("result is changed", True),
        ("result is failed", False),
        ("result is succeeded", True),
        ("'ok' in result.stdout", True),
        ("flag_text | bool", False),
        ("hosts", True),
        ("[]", False),
        ("0", False),
        ("{{ port == 1688 }}", True),
        ("{{ flag_text }}", False),
        ("nothing is undefined", True),
    ],
)
def test_evaluate(templar: Templar, condition: Any, expected: bool) -> None:
    assert templar.evaluate(condition) is expected


def test_evaluate_short_circuits_lists(templar: Templar) -> None:
    assert templar.evaluate(["false", "nothing == 1"]) is False


def test_evaluate_refuses_a_string_result(templar: Templar) -> None:
    with pytest.raises(TemplateError) as info:
        templar.evaluate("flag_text")
    assert "gave the string 'false', not a boolean" in info.value.message
    assert "flag_text | bool" in info.value.message


def test_evaluate_undefined(templar: Templar) -> None:
    with pytest.raises(TemplateError, match=r"undefined variable 'prot'.*did you mean 'port'"):
        templar.evaluate("prot == 1")


@pytest.mark.parametrize("bad", ["port ==", "port = 1", "{{ port }", "x | nosuchfilter"])
def test_evaluate_syntax_errors(templar: Templar, bad: str) -> None:
    with pytest.raises(TemplateError):
        templar.evaluate(bad)


def test_get_resolves_one_variable(templar: Templar) -> None:
    assert templar.get("endpoint") == "kms.school.example:1688"
    assert templar.get("nope", default=None) is None
    with pytest.raises(TemplateError, match="undefined variable 'nope'"):
        templar.get("nope")


def test_with_vars_and_context(templar: Templar) -> None:
    looped = templar.with_vars({"item": "pc09"})
    assert looped.render("{{ item }}@{{ kms_host }}") == "pc09@kms.school.example"
    with pytest.raises(TemplateError, match="on host pc07"):
        templar.with_context("task 'y' on host pc07").render("{{ nope }}")


def test_omit(templar: Templar) -> None:
    args = templar.render({"a": "{{ omit }}", "b": "{{ port }}", "c": ["{{ omit }}", 1]})
    assert args["a"] == OMIT
    assert remove_omitted(args) == {"b": 1688, "c": [1]}


def test_check_template() -> None:
    assert check_template("{{ x }}") is None
    assert check_template("plain") is None
    assert check_template(UnsafeText("{{ x")) is None
    assert check_template("{{ x") is not None
    assert check_template("{{ x | to_jsno }}") == "unknown filter 'to_jsno' — did you mean 'to_json'?"
    assert check_template("{{ x is versoin('1', '>') }}") == "unknown test 'versoin' — did you mean 'version'?"
    assert check_template("x ==", expression=True) is not None
    assert check_template("x == 1", expression=True) is None
    assert check_template("{{ x }}", expression=True) is None


def test_secret_lookups_are_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KMSFLEET_TEST_PW", "Env-Secret-5d2e91")
    monkeypatch.setenv("KMSFLEET_TEST_OTHER", "Plain-Value-5d2e91")
    t = Templar(
        {
            "ansible_password": "{{ lookup('env', 'KMSFLEET_TEST_PW') }}",
            "greeting": "{{ lookup('env', 'KMSFLEET_TEST_OTHER') }}",
        }
    )
    assert t.render("{{ ansible_password }}") == "Env-Secret-5d2e91"
    assert t.render("{{ greeting }}") == "Plain-Value-5d2e91"
    assert redact_text("Env-Secret-5d2e91") == MASK
    assert redact_text("Plain-Value-5d2e91") == "Plain-Value-5d2e91"


def test_render_secret_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KMSFLEET_TEST_PW2", "Flag-Secret-0b77")
    Templar({}).render("{{ lookup('env', 'KMSFLEET_TEST_PW2') }}", secret=True)
    assert redact_text("x Flag-Secret-0b77") == f"x {MASK}"


def test_file_lookup_relative_to_base_dir(tmp_path: Path) -> None:
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "key.txt").write_text("ABCDE-12345\n\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("  hello  \n", encoding="utf-8")
    t = Templar({}, base_dir=tmp_path)
    assert t.render("{{ lookup('file', 'key.txt') }}") == "ABCDE-12345"
    assert t.render("{{ lookup('file', 'notes.txt') }}") == "  hello"
    assert t.render("{{ lookup('file', 'key.txt', 'notes.txt') }}") == "ABCDE-12345,  hello"
    assert t.render("{{ query('file', 'key.txt') }}") == ["ABCDE-12345"]
    with pytest.raises(TemplateError, match=r"file not found: missing\.txt"):
        t.render("{{ lookup('file', 'missing.txt') }}")


def test_env_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KMSFLEET_TEST_A", "1")
    monkeypatch.delenv("KMSFLEET_TEST_UNSET", raising=False)
    t = Templar({})
    assert t.render("{{ lookup('env', 'KMSFLEET_TEST_A') }}") == "1"
    assert t.render("{{ lookup('env', 'KMSFLEET_TEST_UNSET') }}") == ""
    assert t.render("{{ lookup('env', 'KMSFLEET_TEST_UNSET', default='d') }}") == "d"
    assert t.render("{{ q('env', 'KMSFLEET_TEST_A', 'KMSFLEET_TEST_UNSET') }}") == ["1", ""]
    assert t.render("{{ lookup('env', 'KMSFLEET_TEST_A', wantlist=True) }}") == ["1"]
    with pytest.raises(TemplateError, match="environment variable 'KMSFLEET_TEST_UNSET' is not set"):
        t.render("{{ lookup('env', 'KMSFLEET_TEST_UNSET', default=undef_thing) }}")


def test_unknown_lookup() -> None:
    with pytest.raises(TemplateError) as info:
        Templar({}).render("{{ lookup('evn', 'HOME') }}")
    assert "unknown lookup 'evn' — did you mean 'env'?" in info.value.message
    with pytest.raises(TemplateError, match="unknown lookup 'pipe'"):
        Templar({}).render("{{ lookup('pipe', 'id') }}")
    assert Templar({}).render("{{ lookup('file', 'nope', errors='ignore') }}") == ""
    assert Templar({}).render("{{ query('file', 'nope', errors='ignore') }}") == []


def test_hostvars_render_in_each_hosts_own_context() -> None:
    hostvars = HostVars(
        {
            "pc01": {"ansible_host": "{{ subnet }}.1", "subnet": "127.0.1"},
            "pc02": {"broken": "{{ nope }}"},
        }
    )
    t = Templar({"hostvars": hostvars, "subnet": "not this one"})
    assert t.render("{{ hostvars['pc01'].ansible_host }}") == "127.0.1.1"
    assert t.render("{{ hostvars | length }}") == 2
    assert t.render("{{ hostvars['pc09'] | default('absent') }}") == "absent"
    assert t.render("{{ hostvars['pc01'].missing | default(0) }}") == 0
    with pytest.raises(TemplateError, match="undefined variable 'nope'"):
        t.render("{{ hostvars['pc02'].broken }}")


def test_hostvars_views_are_lazy_and_follow_the_source() -> None:
    """Nothing is walked, copied or cached per PC: the asking template passes ``hostvars`` through untouched,
    each read sees the host's variables as they stand (a running host changes them), ``-e`` wins, and a missing
    variable fails the way Ansible's ``HostVarsVars`` does ("'… object' has no attribute …")."""
    live: dict[str, Any] = {"inventory_hostname": "pc02", "greeting": "hi {{ inventory_hostname }}"}
    hostvars = HostVars({"pc02": live}, extra={"room": "101"})
    t = Templar({"hostvars": hostvars, "inventory_hostname": "pc01"})
    assert not has_template(hostvars) and t.render("{{ hostvars.pc02.greeting }}") == "hi pc02"
    live["greeting"] = "{{ room }}: hello {{ inventory_hostname }}"  # set_fact on the running pc02
    assert t.render("{{ hostvars.pc02.greeting }}") == "101: hello pc02"
    assert t.render("{{ 'pc02' in hostvars and 'pc09' not in hostvars }}") is True
    live["groups"] = {"all": ["{{ not a template here }}"]}  # a static magic variable: never templated
    assert t.render("{{ hostvars.pc02.groups.all[0] }}") == "{{ not a template here }}"
    with pytest.raises(TemplateError) as info:
        t.render("{{ hostvars.pc02.greetin }}")
    message = info.value.message
    assert "'orchestrator.templating.hostvars.HostVarsVars object' has no attribute 'greetin'" in message
    assert "did you mean 'greeting'" in message


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (
            "{% for k, v in d.items() %}{{ loop.index }}/{{ loop.length }}:{{ k }}={{ v }};{% endfor %}",
            "1/2:a=1;2/2:b=2;",
        ),
        ("{% for x in [] %}x{% else %}empty{% endfor %}", "empty"),
        ("{% for i in tree recursive %}{{ i.n }}{{ loop(i.c) }}{% endfor %}", "12"),
        ("{% set ns = namespace(x=0) %}{% for i in range(3) %}{% set ns.x = ns.x + i %}{% endfor %}{{ ns.x }}", "3"),
        ("{% for i in range(5) if i is odd %}{{ i }}{% endfor %}", "13"),
        ("{% macro f(x) %}{{ x }}-{{ none }}{% endmacro %}{{ f(1) }}", "1-"),
        ("{% set x %}{{ 1 }}{{ 2 }}{% endset %}{{ x }}", "12"),
        ("{% filter upper %}{{ 1 }}a{% endfilter %}", "1A"),
    ],
)
def test_jinja_statements(template: str, expected: str) -> None:
    t = Templar({"d": {"a": 1, "b": 2}, "tree": [{"n": 1, "c": [{"n": 2, "c": []}]}]})
    assert t.render(template) == expected


def test_internal_names_are_reserved() -> None:
    with pytest.raises(TemplateError, match="reserved"):
        Templar({}).render("{{ __kf_iter([1]) }}")
