"""include_role as ansible-core runs it: loops, loop_var, templated name/tasks_from, own when, apply — every
candidate role read into the closed plan before the run, one picked per host and item at run time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_executor import Recorder, inventory
from test_playbook_load import write
from test_playbook_roles import role

from orchestrator.executor.compile import compile_playbook
from orchestrator.executor.plan import BlockSpec
from orchestrator.executor.plan_codec import decode_plan, encode_plan
from orchestrator.executor.runner import Runner, new_run_info
from orchestrator.executor.state import RunOptions
from orchestrator.modules.base import REGISTRY
from orchestrator.playbook import load_playbook
from orchestrator.playbook.loader import PlaybookErrors

HEAD = "- hosts: all\n  gather_facts: false\n"


def roles(base: Path) -> None:
    role(
        base / "roles",
        "kms",
        tasks="- debug: msg=kms-main\n",
        tasks__Windows="- debug: msg=kms-windows\n",
        tasks__Linux="- debug: msg=kms-linux\n",
        defaults="kms_secret_default: d\n",
    )
    role(base / "roles", "office", tasks="- debug: msg=office-{{ edition | default('none') }}\n")


def run(
    tmp_path: Path, text: str, *, check: bool = False, extra: dict[str, Any] | None = None, **inv: Any
) -> list[tuple[str, str, str]]:
    plan = compile_playbook(load_playbook(write(tmp_path, text), REGISTRY, extra_vars=extra))
    plan = decode_plan(encode_plan(plan))  # what a distributed worker runs
    options = RunOptions(forks=1, check=check, extra_vars=extra or {})
    info = new_run_info("t", "<t>", ["<inv>"], options, None)
    result = Runner(plan, inventory(1, **inv), info, options, Recorder()).run()
    return [(t.task, t.status.value, t.msg) for t in result.hosts[0].tasks]


def test_loop_over_templated_names_runs_each_role_per_item(tmp_path: Path) -> None:
    roles(tmp_path)
    text = HEAD + "  tasks:\n    - include_role: {name: '{{ item }}'}\n      loop: [kms, office, kms]\n"
    book = load_playbook(write(tmp_path, text), REGISTRY)
    (include,) = compile_playbook(book).plays[0].tasks
    assert isinstance(include, BlockSpec) and include.loop is not None
    picks = [n.pick for n in include.block if isinstance(n, BlockSpec)]
    assert picks == [(("name", "{{ item }}", "kms"),), (("name", "{{ item }}", "office"),)]  # kms read once
    msgs = [m for _, _, m in run(tmp_path, text)]
    assert msgs == ["kms-main", "office-none", "kms-main"]


def test_loop_var_own_when_per_item_and_private_defaults(tmp_path: Path) -> None:
    roles(tmp_path)
    text = HEAD + (
        "  vars: {wanted: [office]}\n  tasks:\n"
        "    - include_role: {name: '{{ r.name }}'}\n"
        "      vars: {edition: '{{ r.edition }}'}\n"
        "      when: r.name in wanted\n"
        "      loop: [{name: kms, edition: x}, {name: office, edition: pro}]\n"
        "      loop_control: {loop_var: r}\n"
        "    - debug: msg={{ kms_secret_default | default('private') }}\n"
    )
    got = run(tmp_path, text)
    assert [m for _, s, m in got if s != "skipped"] == ["office-pro", "private"]


def test_tasks_from_templated_from_play_vars_and_check_mode(tmp_path: Path) -> None:
    roles(tmp_path)
    text = (
        HEAD
        + "  vars: {os_family: Windows}\n  tasks:\n    - include_role: {name: kms, tasks_from: '{{ os_family }}.yml'}\n"
    )
    (include,) = compile_playbook(load_playbook(write(tmp_path, text), REGISTRY)).plays[0].tasks
    assert isinstance(include, BlockSpec) and len(include.block) == 1  # Linux.yml is not read
    assert [m for _, _, m in run(tmp_path, text, check=True)] == ["kms-windows"]


def test_apply_gives_tags_and_when_to_the_roles_tasks(tmp_path: Path) -> None:
    roles(tmp_path)
    text = HEAD + (
        "  tasks:\n    - include_role: {name: '{{ item }}'}\n      loop: [kms, office]\n"
        "      apply: {tags: [lic], when: item == 'office'}\n"
    )
    book = load_playbook(write(tmp_path, text), REGISTRY)
    (include,) = compile_playbook(book).plays[0].tasks
    assert isinstance(include, BlockSpec)
    inner = [t for n in include.block if isinstance(n, BlockSpec) for t in n.block]
    assert all("lic" in t.tags and t.when for t in inner)
    assert [(m, s) for _, s, m in run(tmp_path, text) if s != "skipped"] == [("office-none", "ok")]


@pytest.mark.parametrize(
    ("task", "words", "line"),
    [
        ("    - include_role: {name: '{{ ansible_os_family }}'}\n", "cannot be resolved before the run", 4),
        ("    - include_role: {name: kms, tasks_from: '{{ out.stdout }}'}\n", "tasks_from", 4),
        ("    - include_role: {name: '{{ item }}'}\n      loop: '{{ found.files }}'\n", "loop are not known", 5),
        ("    - import_role: {name: '{{ r }}'}\n", "cannot be resolved before the run", 4),
        ("    - import_role: {name: kms}\n      loop: [a]\n", "'loop' is not supported on import_role", 5),
        ("  handlers:\n    - include_role: {name: '{{ r }}'}\n", "a handler cannot include_role", 5),
    ],
)
def test_names_known_only_on_the_pc_are_refused_at_load(tmp_path: Path, task: str, words: str, line: int) -> None:
    roles(tmp_path)
    with pytest.raises(PlaybookErrors) as err:
        load_playbook(write(tmp_path, HEAD + "  tasks:\n" + task), REGISTRY)
    first = err.value.errors[0]
    assert words in first.message and first.location is not None and first.location.line == line


def test_every_candidate_role_is_validated_before_any_pc(tmp_path: Path) -> None:
    roles(tmp_path)
    role(tmp_path / "roles", "broken", tasks="- win_nosuchmodule: {}\n")
    text = HEAD + "  tasks:\n    - include_role: {name: '{{ item }}'}\n      loop: [kms, broken, missing]\n"
    with pytest.raises(PlaybookErrors) as err:
        load_playbook(write(tmp_path, text), REGISTRY)
    text_of = str(err.value) + " ".join(e.message for e in err.value.errors)
    assert "win_nosuchmodule" in text_of and "role 'missing' not found" in text_of


def test_a_name_changed_on_the_host_fails_that_host_clearly(tmp_path: Path) -> None:
    roles(tmp_path)
    text = HEAD + (
        "  vars: {which: kms}\n  tasks:\n    - set_fact: {which: office}\n    - include_role: {name: '{{ which }}'}\n"
    )
    got = run(tmp_path, text)
    assert got[-1][1] == "failed" and "not among the roles read before the run" in got[-1][2]


def test_extra_vars_can_name_the_role_and_beat_play_vars(tmp_path: Path) -> None:
    roles(tmp_path)
    text = HEAD + "  vars: {which: kms}\n  tasks:\n    - include_role: {name: '{{ which }}'}\n"
    assert [m for _, _, m in run(tmp_path, text, extra={"which": "office"})] == ["office-none"]
    with pytest.raises(PlaybookErrors):  # without -e the name of a role from -e only is not known
        load_playbook(write(tmp_path, HEAD + "  tasks:\n    - include_role: {name: '{{ only_cli }}'}\n"), REGISTRY)
    book = HEAD + "  tasks:\n    - include_role: {name: '{{ only_cli }}'}\n"
    assert [m for _, _, m in run(tmp_path, book, extra={"only_cli": "kms"})] == ["kms-main"]


def test_import_role_and_roles_entries_template_their_names_once_with_play_vars(tmp_path: Path) -> None:
    """ansible-core templates these names as it reads the play (no host yet): play vars and -e."""
    roles(tmp_path)
    text = HEAD + (
        "  vars: {first: kms, style: Windows}\n  roles:\n    - role: '{{ first }}'\n"
        "  tasks:\n    - import_role: {name: '{{ first }}', tasks_from: '{{ style }}'}\n"
    )
    assert [m for _, _, m in run(tmp_path, text)] == ["kms-main", "kms-windows"]
    extra = HEAD + "  vars: {first: kms}\n  roles:\n    - '{{ first }}'\n"
    assert [m for _, _, m in run(tmp_path, extra, extra={"first": "office"})] == ["office-none"]


def test_items_skipped_by_when_need_no_role_and_too_many_roles_are_refused(tmp_path: Path) -> None:
    roles(tmp_path)
    text = HEAD + (
        "  tasks:\n    - include_role: {name: '{{ item.role }}'}\n"
        "      loop: [{role: office}, {}]\n      when: item.role is defined\n"
    )
    assert [(m, s) for _, s, m in run(tmp_path, text)] == [("office-none", "ok")]
    many = HEAD + "  tasks:\n    - include_role: {name: 'r{{ item }}'}\n      loop: '{{ range(200) | list }}'\n"
    with pytest.raises(PlaybookErrors) as err:
        load_playbook(write(tmp_path, many), REGISTRY)
    assert "more than 100 different roles" in err.value.errors[0].message
