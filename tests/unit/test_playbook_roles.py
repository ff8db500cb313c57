"""Ansible roles: layout, search order, variables and their precedence, handlers, dependencies, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_executor import Recorder, inventory, statuses
from test_playbook_load import CATALOG, write

from orchestrator.errors import InputError
from orchestrator.executor.compile import compile_playbook
from orchestrator.executor.runner import Runner, new_run_info
from orchestrator.executor.state import RunOptions
from orchestrator.exitcodes import ExitCode
from orchestrator.modules.base import REGISTRY
from orchestrator.playbook import Block, Task, iter_tasks, load_playbook
from orchestrator.playbook.loader import PlaybookErrors


def role(base: Path, name: str, **files: str) -> Path:
    """``files``: ``tasks="…"`` → tasks/main.yml, ``tasks__extra="…"`` → tasks/extra.yml."""
    root = base / name
    for key, text in files.items():
        section, _, stem = key.partition("__")
        write(root, text, f"{section}/{stem or 'main'}.yml")
    return root


def tasks_of(book: Any, section: str = "tasks") -> list[Task]:
    return list(iter_tasks(getattr(book.plays[0], section)))


def test_role_layout_defaults_vars_params_handlers_and_role_path(tmp_path: Path) -> None:
    root = role(
        tmp_path / "roles",
        "kms",
        defaults="kms_host: kms.example\nkms_port: 1688\n",
        vars="slmgr: slmgr.vbs\n",
        tasks="- name: point\n  win_command: cscript {{ slmgr }} /skms {{ kms_host }}\n  notify: activate\n",
        handlers="- name: activate\n  win_command: cscript slmgr.vbs /ato\n",
    )
    book = load_playbook(
        write(tmp_path, "- hosts: all\n  roles:\n    - role: kms\n      kms_port: 1700\n      tags: [kms]\n"), CATALOG
    )
    (point,) = tasks_of(book)
    assert point.defaults == {"kms_host": "kms.example", "kms_port": 1688}
    assert point.vars["slmgr"] == "slmgr.vbs" and point.vars["kms_port"] == 1700  # params beat defaults
    assert point.vars["role_path"] == str(root.absolute()) and point.vars["role_name"] == "kms"
    assert point.tags == frozenset({"kms"}) and point.role == "kms"
    assert point.location.file.endswith("roles/kms/tasks/main.yml") and point.location.line == 1
    (handler,) = tasks_of(book, "handlers")
    assert handler.name == "activate" and "kms : activate" in handler.listen


def test_roles_run_after_pre_tasks_and_before_tasks_once_each(tmp_path: Path) -> None:
    role(tmp_path / "roles", "r", tasks="- debug: msg=in-role\n")
    book = load_playbook(
        write(
            tmp_path,
            "- hosts: all\n  pre_tasks: [{debug: msg=pre}]\n  roles: [r, r]\n  tasks: [{debug: msg=task}]\n",
        ),
        CATALOG,
    )
    play = book.plays[0]
    assert [t.args["msg"] for t in iter_tasks(play.pre_tasks)] == ["pre"]
    assert [t.args["msg"] for t in iter_tasks(play.tasks)] == ["in-role", "task"]  # the same role runs once


def test_meta_dependencies_run_first_with_their_params(tmp_path: Path) -> None:
    role(tmp_path / "roles", "base", defaults="label: none\n", tasks="- debug: msg='base {{ label }}'\n")
    role(
        tmp_path / "roles",
        "app",
        meta="galaxy_info: {author: x}\ndependencies:\n  - role: base\n    label: from-app\n",
        tasks="- debug: msg=app\n",
    )
    book = load_playbook(write(tmp_path, "- hosts: all\n  roles: [app]\n"), CATALOG)
    first, second = tasks_of(book)
    assert first.args["msg"] == "base {{ label }}" and first.vars["label"] == "from-app"
    assert second.args["msg"] == "app" and second.defaults["label"] == "none"  # a dependency's defaults are seen


def test_import_role_with_from_files_and_when(tmp_path: Path) -> None:
    role(
        tmp_path / "roles",
        "kms",
        tasks__office="- debug: msg='office {{ port }}'\n",
        defaults__office="port: 1688\n",
        vars__office="kind: office\n",
        handlers__office="- name: office handler\n  debug: msg=h\n",
    )
    text = (
        "- hosts: all\n  tasks:\n    - name: office part\n      include_role:\n        name: kms\n"
        "        tasks_from: office\n        defaults_from: office.yml\n        vars_from: office\n"
        "        handlers_from: office\n      when: do_office\n"
    )
    book = load_playbook(write(tmp_path, text), CATALOG)
    block = book.plays[0].tasks[0]
    assert isinstance(block, Block) and block.origin == "role" and block.name == "office part"
    (inner,) = tasks_of(book)
    assert [c.expr for c in inner.when] == ["do_office"]
    assert inner.defaults == {"port": 1688} and inner.vars["kind"] == "office"
    assert [h.name for h in tasks_of(book, "handlers")] == ["office handler"]


def test_roles_path_and_collection_style_names(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    role(shared, "baseline", tasks="- debug: msg=shared\n")
    book = load_playbook(write(tmp_path, "- hosts: all\n  roles: [acme.windows.baseline]\n"), CATALOG, [shared])
    assert [t.args["msg"] for t in tasks_of(book)] == ["shared"]
    with pytest.raises(InputError) as err:
        load_playbook(write(tmp_path, "- hosts: all\n  roles: [acme.windows.missing]\n"), CATALOG, [shared])
    assert "role 'acme.windows.missing' not found" in err.value.message
    assert "collections are not installed" in (err.value.hint or "")


def test_an_error_in_a_role_file_names_the_role_file(tmp_path: Path) -> None:
    role(tmp_path / "roles", "bad", tasks="- name: x\n  win_comand: whoami\n")
    with pytest.raises(InputError) as err:
        load_playbook(write(tmp_path, "- hosts: all\n  roles: [bad]\n"), CATALOG)
    assert err.value.location is not None
    assert err.value.location.file.endswith("roles/bad/tasks/main.yml")
    assert (err.value.location.line, err.value.location.column) == (2, 3)


def test_dependency_loops_and_missing_tasks_from(tmp_path: Path) -> None:
    role(tmp_path / "roles", "a", meta="dependencies: [b]\n", tasks="- debug: msg=a\n")
    role(tmp_path / "roles", "b", meta="dependencies: [a]\n", tasks="- debug: msg=b\n")
    role(tmp_path / "roles", "c", tasks="- debug: msg=c\n")
    with pytest.raises(InputError, match="role dependency loop: a → b → a"):
        load_playbook(write(tmp_path, "- hosts: all\n  roles: [a]\n"), CATALOG)
    with pytest.raises(InputError, match=r"has no tasks/nope\.yml"):
        load_playbook(
            write(tmp_path, "- hosts: all\n  tasks:\n    - import_role: {name: c, tasks_from: nope}\n"), CATALOG
        )


# ------------------------------------------------------------------------------------------ precedence (run)


def run_book(tmp_path: Path, text: str, **inventory_vars: Any) -> Any:
    plan = compile_playbook(load_playbook(write(tmp_path, text), REGISTRY))
    options = RunOptions(forks=2)
    rec = Recorder()
    info = new_run_info("t", "<t>", ["<inv>"], options, None)
    return Runner(plan, inventory(1, **inventory_vars), info, options, rec).run()


def test_ansible_precedence_defaults_inventory_play_vars_role_vars_params(tmp_path: Path) -> None:
    role(
        tmp_path / "roles",
        "r",
        defaults="a: default\nb: default\nc: default\nd: default\ne: default\n",
        vars="d: role-vars\ne: role-vars\n",
        tasks="- assert:\n    that:\n      - a == 'default'\n      - b == 'inventory'\n      - c == 'play'\n"
        "      - d == 'role-vars'\n      - e == 'param'\n",
    )
    text = "- hosts: all\n  gather_facts: false\n  vars: {c: play, d: play}\n  roles:\n    - {role: r, e: param}\n"
    result = run_book(tmp_path, text, b="inventory", c="inventory")
    assert result.exit_code == ExitCode.OK, statuses(result, "pc01")


# ------------------------------------------------------------------------------------------ errors in one pass


def test_every_error_is_reported_in_one_pass(tmp_path: Path) -> None:
    text = (
        "- hosts: all\n  tasks:\n    - win_comand: whoami\n    - debug: msg=ok\n    - name: t\n      debug: msg=x\n"
        "      whenn: y\n    - win_service: {name: sppsvc}\n- hosts: all\n  strategy: host_pinned\n"
    )
    with pytest.raises(PlaybookErrors) as err:
        load_playbook(write(tmp_path, text), CATALOG)
    exc = err.value
    assert exc.total == 4
    lines = [e.location.line for e in exc.errors if e.location]
    assert lines == [3, 7, 8, 10]
    text_out = str(exc)
    assert "4 problems found" in text_out
    assert "win_service is an Ansible module kmsfleet does not support (yet)" in text_out
    assert "did you mean 'win_shell'" not in text_out


def test_errors_are_bounded(tmp_path: Path) -> None:
    text = "- hosts: all\n  tasks:\n" + "".join(f"    - win_bad{i}: x\n" for i in range(70))
    with pytest.raises(PlaybookErrors) as err:
        load_playbook(write(tmp_path, text), CATALOG)
    assert len(err.value.errors) == 50 and err.value.total == 70
    assert "… and 20 more" in str(err.value)


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        (
            "    - debug: msg=x\n      with_dict: mydict\n",
            "'with_dict' needs a mapping (Ansible: 'with_dict expects a dict'), not the text 'mydict'",
        ),
        ("    - debug: msg=x\n      with_dict: [a]\n", "expects a dict'), not a list"),
        ("    - win_servise: {name: x}\n", "unknown module 'win_servise'"),
    ],
)
def test_messages(tmp_path: Path, tasks: str, message: str) -> None:
    with pytest.raises(InputError) as err:
        load_playbook(write(tmp_path, "- hosts: all\n  tasks:\n" + tasks), CATALOG)
    assert message in str(err.value)


def test_play_user_become_false_and_vars_prompt(tmp_path: Path) -> None:
    text = (
        "- hosts: all\n  user: labadmin\n  become: false\n  vars_prompt:\n    - name: kms_key\n"
        "      prompt: KMS key?\n      private: yes\n      default: none\n  tasks: [{debug: msg=x}]\n"
    )
    book = load_playbook(write(tmp_path, text), CATALOG)
    play = book.plays[0]
    assert play.remote_user == "labadmin"
    (prompt,) = play.vars_prompt
    assert (prompt.name, prompt.prompt, prompt.private, prompt.default) == ("kms_key", "KMS key?", True, "none")
    with pytest.raises(InputError) as err:
        load_playbook(write(tmp_path, "- hosts: all\n  become: yes\n  become_method: runas\n"), CATALOG)
    assert "WinRM already signs in" in (err.value.hint or "")


def test_roles_defaults_and_vars_are_public_but_include_role_is_private(tmp_path: Path) -> None:
    role(tmp_path / "roles", "pub", defaults="kms_host: kms.example\n", vars="v: pub\n", tasks="- debug: msg=r\n")
    role(tmp_path / "roles", "priv", defaults="hidden: yes\n", tasks="- debug: msg=p\n")
    text = (
        "- hosts: all\n  roles: [pub]\n  tasks:\n    - include_role: {name: priv}\n"
        "  post_tasks:\n    - debug: msg=after\n"
    )
    book = load_playbook(write(tmp_path, text), CATALOG)
    (after,) = tasks_of(book, "post_tasks")
    assert after.defaults == {"kms_host": "kms.example"} and after.vars == {"v": "pub"}
    assert "hidden" not in after.defaults


@pytest.mark.parametrize(
    "value", ["        msg: {{ greeting }}\n", "        msg: {{ greeting }} there\n", "      with_items: {{ pcs }}\n"]
)
def test_unquoted_template_gets_ansibles_quoting_hint(tmp_path: Path, value: str) -> None:
    text = (
        "- hosts: all\n  tasks:\n    - debug:\n" + value
        if "msg" in value
        else ("- hosts: all\n  tasks:\n    - debug: msg=x\n" + value)
    )
    with pytest.raises(InputError) as err:
        load_playbook(write(tmp_path, text), CATALOG)
    assert "missing quotes" in (err.value.hint or "")
    assert err.value.location is not None and err.value.location.line == 4


def test_unsupported_module_hint_lists_only_modules_that_run(tmp_path: Path) -> None:
    """The hint after "an Ansible module kmsfleet does not support" lists what kmsfleet runs: not win_updates,
    win_auto_logon or win_region, which kmsfleet knows only to refuse them."""
    text = "- hosts: all\n  tasks:\n    - community.windows.win_firewall_rule: {name: kms, localport: 1688}\n"
    with pytest.raises(PlaybookErrors) as err:
        load_playbook(write(tmp_path, text), REGISTRY)
    hint = err.value.errors[0].hint or ""
    assert "win_firewall_rule is an Ansible module kmsfleet does not support" in str(err.value)
    assert "win_service" in hint and "win_regedit" in hint
    assert not {"win_updates", "win_auto_logon", "win_region"} & set(hint.replace(",", " ").split())
    assert REGISTRY.get("win_updates") is not None  # still known: using it is refused with its reason


# ------------------------------------------------------------------------------------------ include_tasks + loop


def test_include_tasks_with_loop_runs_the_file_once_per_item(tmp_path: Path) -> None:
    """Public roles write ``include_tasks: svc.yml`` with ``loop:`` and ``loop_control: {loop_var: svc}``; as in
    Ansible the file's tasks run once per item, with the loop variable, index_var and the include's when."""
    (tmp_path / "svc.yml").write_text(
        '- name: per service\n  debug:\n    msg: "{{ idx }}:{{ svc.name }}:{{ svc.mode }}"\n'
        '- name: second\n  set_fact:\n    seen: "{{ (seen | default([])) + [svc.name] }}"\n'
    )
    text = (
        "- hosts: all\n  gather_facts: false\n  vars:\n    services:\n      - {name: Spooler, mode: disabled}\n"
        "      - {name: wuauserv, mode: manual}\n      - {name: Skip, mode: x}\n  tasks:\n"
        '    - name: each service\n      include_tasks: svc.yml\n      loop: "{{ services }}"\n'
        "      loop_control:\n        loop_var: svc\n        index_var: idx\n      when: svc.name != 'Skip'\n"
        "    - assert:\n        that: seen == ['Spooler', 'wuauserv']\n"
    )
    result = run_book(tmp_path, text)
    assert result.exit_code == ExitCode.OK, statuses(result, "pc01")
    host = result.host("pc01")
    assert host is not None
    shown = [t.msg for t in host.tasks if t.task == "per service" and t.status.value == "ok"]
    assert shown == ["0:Spooler:disabled", "1:wuauserv:manual"]


def test_import_tasks_loop_and_include_with_items_are_refused_with_ansibles_reason(tmp_path: Path) -> None:
    (tmp_path / "t.yml").write_text("- debug: msg=x\n")
    text = (
        "- hosts: all\n  tasks:\n    - import_tasks: t.yml\n      loop: [1, 2]\n"
        "    - include_tasks: t.yml\n      with_items: [1, 2]\n"
        "    - include_tasks: t.yml\n      loop_control: {loop_var: x}\n"
    )
    with pytest.raises(PlaybookErrors) as err:
        load_playbook(write(tmp_path, text), REGISTRY)
    out = str(err.value)
    assert "import_tasks cannot loop" in out and "include_tasks with loop" in out
    assert "'loop_control' needs a 'loop'" in out
    assert [e.location.line for e in err.value.errors if e.location] == [4, 8]


def test_include_tasks_with_items_and_with_dict_as_older_roles_write_them(tmp_path: Path) -> None:
    """``with_items`` (flattening one level) and ``with_dict`` on include_tasks, as Ansible runs them."""
    (tmp_path / "t.yml").write_text('- name: "show {{ item }}"\n  debug: msg="{{ item }}"\n')
    text = (
        "- hosts: all\n  gather_facts: false\n  vars: {more: [b, c]}\n  tasks:\n"
        "    - include_tasks: t.yml\n      with_items: [a, '{{ more }}']\n"
        "    - include_tasks: t.yml\n      with_dict: {k: v}\n"
    )
    result = run_book(tmp_path, text)
    assert result.exit_code == ExitCode.OK
    host = result.host("pc01")
    assert host is not None
    assert [t.msg for t in host.tasks] == ["a", "b", "c", "{'key': 'k', 'value': 'v'}"]


def test_task_names_are_templated_as_ansible_shows_them(tmp_path: Path) -> None:
    """ansible-core 2.19 shows ``Room {{ inventory_hostname }}`` as ``Room localhost``, ``Play var {{ pv }}`` with
    the play's value, and a looped include's tasks with the loop variable; a task's own loop item is unknown when
    the name is shown (kmsfleet keeps the name as written), and a secret never shows in a name."""
    (tmp_path / "inc.yml").write_text('- name: "Service {{ svc }}"\n  debug: msg=x\n')
    text = (
        "- hosts: all\n  gather_facts: false\n  vars: {pv: playvar, ansible_password: s3cret-Pw}\n  tasks:\n"
        '    - name: "Room {{ inventory_hostname }}"\n      debug: msg=x\n'
        '    - name: "Play var {{ pv }}"\n      debug: msg=x\n'
        '    - name: "Install {{ item }}"\n      debug: msg=x\n      loop: [a]\n'
        '    - name: "Each {{ svc }}"\n      include_tasks: inc.yml\n      loop: [s1, s2]\n'
        "      loop_control: {loop_var: svc}\n"
        '    - name: "Login {{ ansible_password }}"\n      debug: msg=x\n'
    )
    result = run_book(tmp_path, text)
    assert [name for name, _ in statuses(result, "pc01")] == [
        "Room pc01",
        "Play var playvar",
        "Install {{ item }}",
        "Service s1",
        "Service s2",
        "Login {{ ansible_password }}",
    ]


def test_missing_role_suggests_a_close_role_on_the_search_path(tmp_path: Path) -> None:
    """A typo in a role name names the role that exists (only a close one: no guess from an unrelated name)."""
    role(tmp_path / "roles", "windows_baseline", tasks="- debug: msg=x\n")
    with pytest.raises(PlaybookErrors) as err:
        load_playbook(write(tmp_path, "- hosts: all\n  roles:\n    - windows_baselin\n    - kms_client\n"), REGISTRY)
    first, second = err.value.errors
    assert "role 'windows_baselin' not found" in first.message
    assert "did you mean 'windows_baseline'?" in first.message
    assert "role 'kms_client' not found" in second.message and "did you mean" not in second.message


def test_posix_module_names_point_at_their_windows_module(tmp_path: Path) -> None:
    """``copy``, ``command``, ``service`` … are Ansible's modules for POSIX hosts (Ansible's Windows guide: use
    the win_ modules); kmsfleet names the Windows module it runs instead of listing every module."""
    text = (
        "- hosts: all\n  tasks:\n    - ansible.builtin.copy: {src: a, dest: b}\n    - command: whoami\n"
        "    - service: {name: x, state: started}\n    - lineinfile: {path: x, line: y}\n"
    )
    with pytest.raises(PlaybookErrors) as err:
        load_playbook(write(tmp_path, text), REGISTRY)
    copy, command, service, lineinfile = err.value.errors
    assert "'ansible.builtin.copy' is Ansible's module for Linux/Unix hosts; on Windows use win_copy" in copy.message
    assert "on Windows use win_command" in command.message and "on Windows use win_service" in service.message
    assert "unknown module 'lineinfile'" in lineinfile.message  # no runnable win_lineinfile: no such pointer


# ------------------------------------------------------------------------------------------ include_vars


def test_include_vars_in_a_role_and_a_playbook(tmp_path: Path) -> None:
    """``include_vars`` as public roles write it: free form with a templated name (found in the role's vars/
    folder first), ``file:`` with ``name:`` (the variables under one key); the values' templates render when
    used; -e still wins."""
    role(
        tmp_path / "roles",
        "r",
        vars__Windows="kms_port: 1688\nslmgr: '{{ system32 }}/slmgr.vbs'\n",
        tasks='- include_vars: "{{ os_family }}.yml"\n'
        "- assert:\n    that:\n      - kms_port == 1688\n      - slmgr == 'C:/W/slmgr.vbs'\n      - pinned == 'cli'\n",
    )
    (tmp_path / "vars").mkdir()
    (tmp_path / "vars" / "site.yml").write_text("room: r101\npinned: file\n")
    text = (
        "- hosts: all\n  gather_facts: false\n  vars: {os_family: Windows, system32: 'C:/W'}\n  roles: [r]\n"
        "  tasks:\n    - include_vars:\n        file: site.yml\n        name: site\n      register: inc\n"
        "    - assert:\n        that:\n          - site.room == 'r101'\n"
        "          - inc.ansible_included_var_files | length == 1\n"
    )
    plan = compile_playbook(load_playbook(write(tmp_path, text), REGISTRY))
    options = RunOptions(forks=1, extra_vars={"pinned": "cli"})
    info = new_run_info("t", "<t>", ["<inv>"], options, None)
    result = Runner(plan, inventory(1), info, options, Recorder()).run()
    assert result.exit_code == ExitCode.OK, [(t.task, t.msg) for t in result.hosts[0].tasks]


def test_include_vars_says_where_it_looked(tmp_path: Path) -> None:
    text = "- hosts: all\n  tasks:\n    - include_vars: {dir: vars}\n    - include_vars: {file: a.yml, dir: b}\n"
    with pytest.raises(PlaybookErrors) as err:  # a folder is read at run time; file and dir together are not
        load_playbook(write(tmp_path, text), REGISTRY)
    assert "You are mixing file only and dir only arguments" in str(err.value) and err.value.total == 1
    result = run_book(tmp_path, "- hosts: all\n  gather_facts: false\n  tasks:\n    - include_vars: missing.yml\n")
    host = result.hosts[0]
    assert host.tasks[0].status.value == "failed" and "could not find missing.yml" in host.tasks[0].msg
