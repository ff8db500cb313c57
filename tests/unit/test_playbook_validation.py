"""Everything a typo can break fails at load time, with file:line:column and a did-you-mean."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_playbook_load import CATALOG, write

from orchestrator.errors import InputError
from orchestrator.playbook import load_playbook


def error_of(tmp_path: Path, text: str) -> InputError:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as info:
        load_playbook(path, CATALOG)
    err = info.value
    assert err.location is not None
    return err


def play(tasks: str) -> str:
    return "- hosts: all\n  tasks:\n" + tasks


@pytest.mark.parametrize(
    ("text", "message", "line", "column"),
    [
        (play("    - win_comand: whoami\n"), "unknown module 'win_comand' — did you mean 'win_command'?", 3, 7),
        (
            play("    - ansible.windows.win_comand: whoami\n"),
            "unknown module 'ansible.windows.win_comand' — did you mean 'win_command'?",
            3,
            7,
        ),
        (play("    - name: x\n      win_command: a\n      registr: r\n"), "unknown task keyword 'registr'", 5, 7),
        (play("    - name: x\n      whenn: a\n"), "unknown task keyword 'whenn' — did you mean 'when'?", 4, 7),
        (
            play("    - win_command: a\n      debug: msg=b\n"),
            "two modules in one task: 'win_command' and",
            4,
            7,
        ),
        (play("    - name: only a name\n"), "the task calls no module", 3, 7),
        (play("    - debug: msg=x\n      retries: many\n"), "invalid 'retries': expected a whole number", 4, 7),
        (play("    - debug: msg=x\n      delay: soon\n"), "invalid 'delay'", 4, 7),
        (
            play("    - debug: msg=x\n      ignore_errors: maybe\n"),
            "invalid 'ignore_errors': expected true",
            4,
            7,
        ),
        (play("    - debug: msg=x\n      register: my-result\n"), "'register' must be a variable name", 4, 7),
        (play("    - debug: msg=x\n      register: 1abc\n"), "'register' must be a variable name", 4, 7),
        (play("    - debug: msg=x\n      when: a ==\n"), "invalid condition in 'when'", 4, 7),
        (play("    - debug: msg=x\n      when:\n        - a\n        - b ===\n"), "invalid condition in 'when'", 6, 11),
        (
            play('    - debug: msg=x\n      failed_when: "x | bol"\n'),
            "unknown filter 'bol' — did you mean",
            4,
            7,
        ),
        (play('    - debug: msg="{{ x "\n'), "template syntax error", 3, 7),
        (play('    - debug:\n        msg: "{{ x | to_jsn }}"\n'), "unknown filter 'to_jsn'", 4, 9),
        (play('    - name: "{{ bad"\n      debug: msg=x\n'), "template syntax error", 3, 7),
        (play("    - debug: msg=x\n      vars:\n        bad-name: 1\n"), "invalid variable name 'bad-name'", 5, 9),
        (play("    - debug: msg=x\n      delegate_to: localhost\n"), "'delegate_to' is not supported", 4, 7),
        (play("    - debug: msg=x\n      with_fileglob: '*.txt'\n"), "'with_fileglob' is not supported", 4, 7),
        (
            play("    - debug: msg=x\n      loop: [1]\n      with_items: [2]\n"),
            "only one of loop, with_items",
            5,
            7,
        ),
        (play("    - debug: msg=x\n      loop: items\n"), "'loop' needs a list", 4, 7),
        (play("    - debug: msg=x\n      loop_control: {loopvar: x}\n"), "unknown loop_control key 'loopvar'", 4, 22),
        (play("    - debug: msg=x\n      notify: restat\n"), "notify: no handler named 'restat'", 4, 7),
        (play("    - debug: msg=x\n      listen: topic\n"), "'listen' is only valid on handlers", 4, 7),
        (play("    - debug: msg hello\n"), "takes key=value arguments or a mapping; 'msg' is not key=value", 3, 7),
        (play("    - debug: msg='unbalanced\n"), "unbalanced quote", 3, 7),
        (play("    - debug: [a, b]\n"), "must be a mapping or text", 3, 7),
        (play("    - debug:\n        mgs: hi\n"), "debug: unknown argument 'mgs'", 4, 9),
        (play("    - win_command: whoami comand=x\n"), None, 0, 0),  # comand=x stays part of the command line
        (play("    - debug: msg=x\n      args: text\n"), "'args' must be a mapping", 4, 7),
        (play("    - rescue:\n        - debug: msg=x\n"), "'rescue' needs a 'block'", 3, 7),
        (play("    - block:\n        - debug: msg=x\n      loop: [1]\n"), "unknown block keyword 'loop'", 5, 7),
        (play("    - block:\n        - debug: msg=x\n      debug: msg=y\n"), "a block cannot call a module", 5, 7),
        (play("    - block: []\n"), None, 0, 0),
        (play("    - include_tasks: missing.yml\n"), "task file not found: missing.yml", 3, 7),
        (play('    - import_tasks: "{{ f }}.yml"\n'), "cannot be templates", 3, 7),
        (play("    - import_tasks: x.yml\n      loop: [1]\n"), "import_tasks cannot loop (as in Ansible)", 4, 7),
        (play("    - import_playbook: other.yml\n"), "'import_playbook' is not supported", 3, 7),
        (play("    - include_role: {name: r}\n"), "role 'r' not found", 3, 7),
        (play("    - win_command\n"), "each task must be a mapping", 3, 7),
        (play("    - hosts: all\n"), "'hosts' is not supported", 3, 7),
        ("- hosts: all\n  taks:\n    - debug: msg=x\n", "unknown play keyword 'taks' — did you mean 'tasks'?", 2, 3),
        ("- hosts: all\n  win_command: whoami\n", "unknown play keyword 'win_command'", 2, 3),
        ("- name: no hosts\n  tasks: []\n", "the play has no 'hosts'", 1, 3),
        ("- hosts: all\n  serial: lots\n", "'serial' must be a number of hosts", 2, 3),
        ("- hosts: all\n  serial: 130%\n", "'serial' must be a number of hosts", 2, 3),
        ("- hosts: all\n  strategy: host_pinned\n", "unknown strategy 'host_pinned'", 2, 3),
        ("- hosts: all\n  max_fail_percentage: 120\n", "'max_fail_percentage' must be a number from 0 to 100", 2, 3),
        ("- hosts: all\n  gather_facts: '{{ x }}'\n", "invalid 'gather_facts'", 2, 3),
        ("- hosts: all\n  wake_on_lan: sometimes\n", "invalid 'wake_on_lan'", 2, 3),
        ("- hosts: all\n  tasks: {debug: msg=x}\n", "'tasks' must be a list of tasks", 2, 3),
        ("- hosts: all\n  roles: [common]\n", "role 'common' not found", 2, 11),
        ("- hosts: all\n  become: yes\n", "'become' is not supported", 2, 3),
        ("- hosts: all\n  environment: {A: b}\n", "'environment' is not supported", 2, 3),
        ("- hosts: ''\n", "'hosts' must be a host pattern", 1, 3),
        ("- hosts: all\n  vars_files: [missing.yml]\n", "vars file not found: missing.yml", 2, 16),
        ("- hosts: all\n  vars: [1]\n", "'vars' must be a mapping", 2, 3),
        ("- hosts: all\n  handlers:\n    - debug: msg=x\n", "a handler needs a name", 3, 7),
        ("hosts: all\ntasks: []\n", "a playbook must be a list of plays", 1, 1),
        ("- just text\n", "each play must be a mapping", 1, 3),
        ("- hosts: all\n  tasks:\n  - debug: msg=x\n   bad: indent\n", "YAML syntax error", 4, 4),
        ("- hosts: all\n  tags: {a: b}\n", "'tags' must be a tag", 2, 3),
    ],
)
def test_errors(tmp_path: Path, text: str, message: str | None, line: int, column: int) -> None:
    if message is None:
        load_playbook(write(tmp_path, text), CATALOG)
        return
    err = error_of(tmp_path, text)
    assert message in err.message
    assert err.location is not None
    assert err.location.file.endswith("site.yml")
    assert (err.location.line, err.location.column) == (line, column)


def test_notify_suggests_the_handler(tmp_path: Path) -> None:
    err = error_of(
        tmp_path,
        "- hosts: all\n  tasks:\n    - debug: msg=x\n      notify: restat\n"
        "  handlers:\n    - name: restart\n      debug: msg=r\n",
    )
    assert err.message == "notify: no handler named 'restat' in this play — did you mean 'restart'?"


def test_notify_by_listen_topic_is_fine(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '- hosts: all\n  tasks:\n    - debug: msg=x\n      notify: [kms changed, "{{ dynamic }}"]\n'
        "  handlers:\n    - name: report\n      debug: msg=r\n      listen: kms changed\n",
    )
    book = load_playbook(path, CATALOG)
    assert book.plays[0].handlers[0].listen == ("kms changed",)


def test_module_argument_error_points_at_the_argument(tmp_path: Path) -> None:
    err = error_of(tmp_path, play("    - debug:\n        msg: hi\n        verbosity: loud\n"))
    assert err.message == "debug: argument 'verbosity' must be a whole number, got 'loud'"
    assert err.location is not None and (err.location.line, err.location.column) == (5, 9)


def test_several_argument_problems_are_all_reported(tmp_path: Path) -> None:
    err = error_of(tmp_path, play("    - debug:\n        mgs: hi\n        verbosty: 1\n"))
    assert "unknown argument 'mgs'" in err.message and "did you mean 'msg'?" in err.message
    assert err.hint is not None and "verbosty" in err.hint


def test_templated_arguments_are_not_type_checked(tmp_path: Path) -> None:
    load_playbook(write(tmp_path, play('    - debug:\n        msg: hi\n        verbosity: "{{ v }}"\n')), CATALOG)


def test_import_playbook_cycle(tmp_path: Path) -> None:
    write(tmp_path, "- import_playbook: b.yml\n", "a.yml")
    write(tmp_path, "- import_playbook: a.yml\n", "b.yml")
    with pytest.raises(InputError) as info:
        load_playbook(tmp_path / "a.yml", CATALOG)
    assert info.value.message == "import_playbook loop: a.yml → b.yml → a.yml"
    assert info.value.location is not None and info.value.location.file.endswith("b.yml")


def test_import_playbook_missing(tmp_path: Path) -> None:
    err = error_of(tmp_path, "- import_playbook: nope.yml\n")
    assert err.message.startswith("imported playbook not found")
    assert err.location is not None and (err.location.line, err.location.column) == (1, 3)


def test_import_tasks_cycle(tmp_path: Path) -> None:
    write(tmp_path, "- import_tasks: b.yml\n", "tasks/a.yml")
    write(tmp_path, "- import_tasks: a.yml\n", "tasks/b.yml")
    err = error_of(tmp_path, play("    - import_tasks: tasks/a.yml\n"))
    assert err.message == "import_tasks loop: a.yml → b.yml → a.yml"


def test_errors_inside_imported_task_files_name_that_file(tmp_path: Path) -> None:
    write(tmp_path, "- name: ok\n  debug: msg=x\n- win_comand: whoami\n", "tasks/bad.yml")
    err = error_of(tmp_path, play("    - import_tasks: tasks/bad.yml\n"))
    assert err.location is not None
    assert err.location.file.endswith("tasks/bad.yml") and err.location.line == 3
    assert "did you mean 'win_command'?" in err.message


def test_empty_playbook(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="the playbook is empty"):
        load_playbook(write(tmp_path, "# nothing\n"), CATALOG)
    with pytest.raises(InputError, match="no plays"):
        load_playbook(write(tmp_path, "[]\n"), CATALOG)


def test_missing_playbook(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        load_playbook(tmp_path / "nope.yml", CATALOG)


def test_a_folder_in_vars_files_is_named_as_a_folder(tmp_path: Path) -> None:
    (tmp_path / "vars").mkdir()
    err = error_of(tmp_path, "- hosts: all\n  vars_files: [vars]\n")
    assert "is a folder; vars_files takes YAML files" in err.message
    assert err.hint is not None and "main.yml" in err.hint
