"""Loading playbooks: structure, inheritance, FQCNs, key=value args, imports, vars_files."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import InputError
from orchestrator.playbook import (
    Block,
    ModuleCatalog,
    ModuleSpec,
    Task,
    iter_tasks,
    load_playbook,
    load_vars_files,
    loop_items,
    loop_spec,
    should_run,
    vars_file_specs,
)
from orchestrator.templating import Templar, is_template
from orchestrator.yamlsource import UnsafeText

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "playbooks"


@dataclass
class FakeSpec:
    """A unit-test stand-in for a module of the lead's registry."""

    name: str
    free_form: str | None
    params: tuple[str, ...]
    ints: tuple[str, ...] = ()

    def check_args(self, args: Mapping[str, Any]) -> list[str]:
        problems = []
        for key, value in args.items():
            if key not in self.params:
                close = difflib.get_close_matches(key, self.params, n=1)
                hint = f" — did you mean '{close[0]}'?" if close else ""
                problems.append(f"unknown argument '{key}' (expected one of: {', '.join(self.params)}){hint}")
            elif key in self.ints and not is_template(value) and not str(value).isdigit():
                problems.append(f"argument '{key}' must be a whole number, got {value!r}")
        return problems


@dataclass
class FakeCatalog:
    modules: dict[str, FakeSpec] = field(
        default_factory=lambda: {
            s.name: s
            for s in (
                FakeSpec("win_command", "cmd", ("cmd", "argv", "chdir", "creates", "removes")),
                FakeSpec("win_shell", "cmd", ("cmd", "chdir", "executable")),
                FakeSpec("debug", None, ("msg", "var", "verbosity"), ints=("verbosity",)),
                FakeSpec("set_fact", None, ("kms_host", "office", "x", "cacheable")),
                FakeSpec("assert", None, ("that", "fail_msg", "success_msg", "quiet")),
                FakeSpec("fail", None, ("msg",)),
                FakeSpec("pause", None, ("seconds", "minutes", "prompt"), ints=("seconds",)),
                FakeSpec("setup", None, ("gather_subset",)),
                FakeSpec("win_licensing", None, ("product", "kms_host", "activate")),
            )
        }
    )

    def get(self, name: str) -> ModuleSpec | None:
        return self.modules.get(name)

    def names(self) -> Iterable[str]:
        return self.modules


CATALOG = FakeCatalog()


def test_fake_catalog_satisfies_the_protocol() -> None:
    assert isinstance(CATALOG, ModuleCatalog)
    assert isinstance(CATALOG.modules["debug"], ModuleSpec)


def write(tmp_path: Path, text: str, name: str = "site.yml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str) -> Any:
    return load_playbook(write(tmp_path, text), CATALOG)


def test_fixture_playbook() -> None:
    book = load_playbook(FIXTURES / "site.yml", CATALOG)
    play = book.plays[0]
    assert play.name == "Activate Windows in room 101"
    assert play.hosts == "room101:!pc05"
    assert play.gather_facts is False and play.strategy == "linear" and play.wake_on_lan is True
    assert play.serial == (1, "30%")
    assert play.vars == {"kms_host": "kms.school.example", "kms_port": 1688}
    assert play.base_dir == FIXTURES
    assert [t.name for t in iter_tasks(play.pre_tasks)] == ["Say hello"]
    names = [t.name for t in iter_tasks(play.tasks)]
    assert names == ["Set KMS host", "Activate now", "Explain", "Check status", "Loop"]
    skms = next(iter_tasks(play.tasks))
    assert skms.module == "win_command" and skms.module_as_written == "ansible.windows.win_command"
    assert skms.args == {
        "cmd": "cscript //nologo slmgr.vbs /skms {{ kms_host }}:{{ kms_port }}",
        "chdir": "C:\\Windows\\System32",
    }
    assert skms.register == "skms"
    assert skms.notify == ("report",)
    assert [c.expr for c in skms.changed_when or ()] == ["'successfully' in skms.stdout"]
    assert skms.location.file.endswith("site.yml") and skms.location.line == 18
    assert skms.key_location("register").line == 20
    block = play.tasks[1]
    assert isinstance(block, Block) and block.origin == "block"
    assert [n.name for n in block.rescue] == ["Explain"]
    imported = block.always[0]
    assert isinstance(imported, Block) and imported.origin == "import_tasks"
    check = imported.block[0]
    assert isinstance(check, Task)
    assert check.location.file.endswith("tasks/check.yml") and check.location.line == 1
    assert check.tags == {"windows", "check", "never", "debug"}
    assert [c.expr for c in check.when] == ["kms_host is defined"]
    assert check.ignore_errors is True and check.vars == {"attempt": 1}
    assert book.warnings == ()


def test_block_keywords_are_inherited(tmp_path: Path) -> None:
    book = load(
        tmp_path,
        """
- hosts: all
  tags: play
  no_log: true
  tasks:
    - block:
        - name: inner
          debug: msg=hi
          when: b == 2
          tags: [task]
          vars: {v: task}
          ignore_errors: false
        - name: nested
          block:
            - debug: msg=deep
          when: c == 3
          vars: {w: nested}
      when: a == 1
      tags: outer
      vars: {v: block, u: block}
      ignore_errors: true
      check_mode: "{{ dry }}"
""",
    )
    inner, deep = list(iter_tasks(book.plays[0].tasks))
    assert [c.expr for c in inner.when] == ["a == 1", "b == 2"]
    assert inner.tags == {"play", "outer", "task"}
    assert inner.vars == {"v": "task", "u": "block"}
    assert inner.ignore_errors is False  # the task's own value wins
    assert inner.no_log is True and inner.check_mode == "{{ dry }}"
    assert [c.expr for c in deep.when] == ["a == 1", "c == 3"]
    assert deep.vars == {"v": "block", "u": "block", "w": "nested"}
    assert deep.ignore_errors is True and deep.tags == {"play", "outer"}


@pytest.mark.parametrize(
    ("task", "module", "args"),
    [
        ("win_command: whoami", "win_command", {"cmd": "whoami"}),
        ("ansible.windows.win_command: whoami /all", "win_command", {"cmd": "whoami /all"}),
        ("win_command: whoami chdir=C:\\\\Temp", "win_command", {"cmd": "whoami", "chdir": "C:\\Temp"}),
        (
            "win_command: 'echo \"a  b\" x=1 creates=C:/flag.txt'",
            "win_command",
            {"cmd": 'echo "a  b" x=1', "creates": "C:/flag.txt"},
        ),
        ("win_shell: echo {{ a }}  and  more", "win_shell", {"cmd": "echo {{ a }}  and  more"}),
        ("ansible.builtin.debug: msg=hello", "debug", {"msg": "hello"}),
        ('debug: msg="Hello {{ name }}" verbosity=1', "debug", {"msg": "Hello {{ name }}", "verbosity": "1"}),
        ("debug: msg={{ a + b }}", "debug", {"msg": "{{ a + b }}"}),
        ("debug: var=result", "debug", {"var": "result"}),
        ("debug:\n        msg: hi", "debug", {"msg": "hi"}),
        ("debug:", "debug", {}),
        (
            "ansible.builtin.set_fact: kms_host=kms.lab office=2016",
            "set_fact",
            {"kms_host": "kms.lab", "office": "2016"},
        ),
        ("ansible.windows.setup:", "setup", {}),
        ("ansible.builtin.setup:", "setup", {}),
        ("ansible.legacy.pause: seconds=5", "pause", {"seconds": "5"}),
        ("assert:\n        that: [x == 1]", "assert", {"that": ["x == 1"]}),
        ("win_command:\n      args:\n        cmd: hostname", "win_command", {"cmd": "hostname"}),
        (
            "win_command: hostname\n      args:\n        chdir: C:\\",
            "win_command",
            {"cmd": "hostname", "chdir": "C:\\"},
        ),
    ],
)
def test_module_invocations(tmp_path: Path, task: str, module: str, args: dict[str, Any]) -> None:
    book = load(tmp_path, f"- hosts: all\n  tasks:\n    - {task}\n")
    only = book.plays[0].tasks[0]
    assert isinstance(only, Task)
    assert only.module == module
    assert only.args == args


def test_multiline_free_form_is_kept_exactly(tmp_path: Path) -> None:
    script = "$p = Get-Process\n  if ($p) { Write-Output 'x=1 chdir=C:\\' }\n"
    body = "".join(f"        {line}\n" for line in script.splitlines())
    book = load(tmp_path, "- hosts: all\n  tasks:\n    - win_shell: |\n" + body)
    task = book.plays[0].tasks[0]
    assert task.args == {"cmd": script}


def test_escape_that_becomes_a_control_character_warns(tmp_path: Path) -> None:
    book = load(tmp_path, "- hosts: all\n  tasks:\n    - win_command: dir chdir=C:\\temp\n")
    assert book.plays[0].tasks[0].args["chdir"] == "C:\temp"
    assert len(book.warnings) == 1 and "became a control character" in book.warnings[0]


def test_unsafe_text_is_kept(tmp_path: Path) -> None:
    book = load(tmp_path, "- hosts: all\n  tasks:\n    - debug:\n        msg: !unsafe '{{ not a template'\n")
    msg = book.plays[0].tasks[0].args["msg"]
    assert isinstance(msg, UnsafeText) and msg == "{{ not a template"


def test_loops(tmp_path: Path) -> None:
    book = load(
        tmp_path,
        """
- hosts: all
  tasks:
    - debug: var=item
      loop: [1, 2]
    - debug: var=item
      with_items: ["a", ["b", "c"]]
    - debug: var=item
      with_list: [["a"], "b"]
    - debug: var=item
      with_dict: "{{ d }}"
    - debug: var=item
      loop: "{{ words }}"
      loop_control: {loop_var: word, index_var: i, label: "{{ word }}"}
""",
    )
    t = Templar({"d": {"k": "v"}, "words": ["x", "y"]})
    tasks = list(iter_tasks(book.plays[0].tasks))
    assert [loop_items(loop_spec(task), t) for task in tasks] == [
        [1, 2],
        ["a", "b", "c"],
        [["a"], "b"],
        [{"key": "k", "value": "v"}],
        ["x", "y"],
    ]
    control = tasks[4].loop_control
    assert control is not None and control.loop_var == "word" and control.index_var == "i"


def test_loop_over_text_fails_at_run_time(tmp_path: Path) -> None:
    book = load(tmp_path, '- hosts: all\n  tasks:\n    - debug: var=item\n      loop: "{{ s }}"\n')
    from orchestrator.errors import TemplateError

    with pytest.raises(TemplateError, match="loop needs a list"):
        loop_items(loop_spec(book.plays[0].tasks[0]), Templar({"s": "a,b"}))


def test_task_without_loop(tmp_path: Path) -> None:
    book = load(tmp_path, "- hosts: all\n  tasks:\n    - debug: msg=x\n")
    assert loop_items(loop_spec(book.plays[0].tasks[0]), Templar({})) is None


def test_hosts_list_and_play_keywords(tmp_path: Path) -> None:
    book = load(
        tmp_path,
        """
- name: p
  hosts: [room101, room102]
  serial: 5
  max_fail_percentage: 20
  any_errors_fatal: true
  ignore_unreachable: yes
  timeout: 30
  tasks:
    - debug: msg=x
""",
    )
    play = book.plays[0]
    assert play.hosts == "room101,room102"
    assert play.serial == (5,)
    assert play.max_fail_percentage == 20.0
    assert play.any_errors_fatal is True and play.ignore_unreachable is True
    task = play.tasks[0]
    assert isinstance(task, Task) and task.timeout == 30 and task.ignore_unreachable is True


def test_ignored_keywords_give_warnings(tmp_path: Path) -> None:
    book = load(
        tmp_path,
        """
- hosts: all
  connection: winrm
  become: false
  gather_subset: [min]
  tasks:
    - debug: msg=x
      become_user: admin
""",
    )
    assert len(book.warnings) == 2  # connection: winrm and become: false need no warning
    assert any("become_user is ignored" in w for w in book.warnings)
    assert all(":" in w.split(" ")[0] for w in book.warnings)  # each starts with file:line:column


def test_import_playbook_relative_with_tags_and_vars(tmp_path: Path) -> None:
    write(tmp_path, "- hosts: all\n  vars: {a: inner, b: inner}\n  tasks:\n    - debug: msg=x\n", "sub/inner.yml")
    write(tmp_path, "- import_playbook: inner.yml\n  tags: imported\n  vars: {a: outer}\n", "sub/middle.yml")
    book = load(tmp_path, "- import_playbook: sub/middle.yml\n- hosts: g\n  tasks:\n    - debug: msg=y\n")
    assert [p.hosts for p in book.plays] == ["all", "g"]
    first = book.plays[0]
    assert first.file.endswith("inner.yml") and first.base_dir == tmp_path / "sub"
    assert first.vars == {"a": "outer", "b": "inner"}
    assert first.tags == {"imported"}
    assert first.tasks[0].tags == {"imported"}


def test_include_tasks_relative_to_the_including_file(tmp_path: Path) -> None:
    write(tmp_path, "- name: leaf\n  debug: msg=leaf\n", "tasks/leaf.yml")
    write(tmp_path, "- include_tasks: leaf.yml\n  when: x\n", "tasks/mid.yml")
    book = load(
        tmp_path,
        "- hosts: all\n  tasks:\n    - ansible.builtin.import_tasks:\n        file: tasks/mid.yml\n      tags: t\n",
    )
    leaf = next(iter_tasks(book.plays[0].tasks))
    assert leaf.name == "leaf" and leaf.tags == {"t"} and [c.expr for c in leaf.when] == ["x"]
    outer = book.plays[0].tasks[0]
    assert isinstance(outer, Block) and outer.origin == "import_tasks"
    inner = outer.block[0]
    assert isinstance(inner, Block) and inner.origin == "include_tasks"


def test_vars_files(tmp_path: Path) -> None:
    write(tmp_path, "a: 1\nb: 1\n", "vars/common.yml")
    write(tmp_path, "b: 2\n", "vars/room101.yml")
    book = load(
        tmp_path,
        """
- hosts: all
  vars_files:
    - vars/common.yml
    - ["vars/{{ room }}.yml", vars/common.yml]
  tasks:
    - debug: msg=x
""",
    )
    play = book.plays[0]
    assert load_vars_files(vars_file_specs(play), Templar({"room": "room101"})) == {"a": 1, "b": 2}
    assert load_vars_files(vars_file_specs(play), Templar({"room": "room999"})) == {"a": 1, "b": 1}
    with pytest.raises(InputError, match="is a template and needs variables"):
        load_vars_files(vars_file_specs(play))


def test_should_run_with_inherited_tags(tmp_path: Path) -> None:
    book = load(
        tmp_path,
        """
- hosts: all
  tasks:
    - debug: msg=untagged
    - debug: msg=kms
      tags: kms
    - block:
        - debug: msg=always
      tags: always
    - debug: msg=never
      tags: [never, debug]
""",
    )
    tasks = list(iter_tasks(book.plays[0].tasks))

    def run(tags: set[str], skip: set[str]) -> list[str]:
        return [t.args["msg"] for t in tasks if should_run(t, tags, skip)]

    assert run(set(), set()) == ["untagged", "kms", "always"]
    assert run({"kms"}, set()) == ["kms", "always"]
    assert run({"debug"}, set()) == ["always", "never"]
    assert run({"untagged"}, set()) == ["untagged", "always"]
    assert run({"tagged"}, set()) == ["kms", "always"]
    assert run(set(), {"always"}) == ["untagged", "kms"]
    assert run(set(), {"all"}) == ["always"]
    assert run(set(), {"kms", "untagged"}) == ["always"]


@pytest.mark.parametrize(
    ("task", "args"),
    [
        ("debug: var=result", {"var": "result"}),
        ('debug: msg="Hello {{ name }}" verbosity=1', {"msg": "Hello {{ name }}", "verbosity": "1"}),
        ("debug: Hello world", {"msg": "Hello world"}),  # kmsfleet's free form (Ansible refuses it)
        ("fail: msg='no {{ x }}'", {"msg": "no {{ x }}"}),
        ("win_command: whoami chdir=C:\\\\Temp", {"cmd": "whoami", "chdir": "C:\\Temp"}),
        ("win_command: echo msg=1", {"cmd": "echo msg=1"}),
        ("meta: flush_handlers", {"action": "flush_handlers"}),
        ("wmi_query: SELECT Name FROM Win32_OS WHERE Name='x'", {"query": "SELECT Name FROM Win32_OS WHERE Name='x'"}),
    ],
)
def test_key_value_text_with_the_real_modules(tmp_path: Path, task: str, args: dict[str, Any]) -> None:
    """Modules with a free-form argument (debug, fail, win_command …) still take ``key=value`` text made only of
    their own arguments as Ansible does: ``debug: var=result`` shows the variable, not the text 'var=result'."""
    from orchestrator.modules.base import REGISTRY

    (tmp_path / "p.yml").write_text(f"- hosts: all\n  tasks:\n    - {task}\n", encoding="utf-8")
    book = load_playbook(tmp_path / "p.yml", REGISTRY)
    assert dict(book.plays[0].tasks[0].args) == args


def test_unsupported_meta_action_is_refused_at_load_time(tmp_path: Path) -> None:
    from orchestrator.modules.base import REGISTRY

    (tmp_path / "p.yml").write_text("- hosts: all\n  tasks:\n    - meta: refresh_inventory\n", encoding="utf-8")
    with pytest.raises(InputError, match="meta action 'refresh_inventory' is not supported"):
        load_playbook(tmp_path / "p.yml", REGISTRY)


def test_ansible_with_lookups(tmp_path: Path) -> None:
    """with_nested, with_together, with_indexed_items, with_subelements and with_sequence give Ansible's items."""
    book = load(
        tmp_path,
        """
- hosts: all
  tasks:
    - debug: var=item
      with_nested: [[a, b], [1, 2]]
    - debug: var=item
      with_together: [[a, b], [1]]
    - debug: var=item
      with_indexed_items: [x, [y]]
    - debug: var=item
      with_subelements: ["{{ users }}", groups]
    - debug: var=item
      with_sequence: start=1 end=5 stride=2 format=pc%02d
    - debug: var=item
      with_sequence: count={{ n }}
""",
    )
    users = [{"name": "a", "groups": ["x", "y"]}, {"name": "b", "groups": ["z"]}]
    t = Templar({"users": users, "n": 2})
    tasks = list(iter_tasks(book.plays[0].tasks))
    assert [loop_items(loop_spec(task), t) for task in tasks] == [
        [["a", 1], ["a", 2], ["b", 1], ["b", 2]],
        [["a", 1], ["b", None]],
        [[0, "x"], [1, "y"]],
        [[users[0], "x"], [users[0], "y"], [users[1], "z"]],
        ["pc01", "pc03", "pc05"],
        ["1", "2"],
    ]
