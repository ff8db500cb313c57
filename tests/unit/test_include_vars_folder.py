"""``include_vars`` with ``dir`` and its options, as ansible-core's action reads a folder: the real loader and
runner (no PC needed: include_vars runs on the controller), real files, a Vault file made by ansible-vault."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from test_playbook_load import write
from test_playbook_roles import role, run_book

from orchestrator import vault
from orchestrator.modules.base import REGISTRY, ModuleContext, TaskFailed
from orchestrator.modules.include_vars import IncludeVars, IncludeVarsArgs, merge_hash
from orchestrator.modules.include_vars_dir import FolderQuery, read_folder, resolve_dir
from orchestrator.playbook import load_playbook
from orchestrator.playbook.loader import PlaybookErrors

VAULT = Path(__file__).resolve().parents[1] / "data" / "vault"


def tree(base: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return base


def statuses(result: Any) -> list[tuple[str, str, str]]:
    return [(t.task, t.status.value, t.msg) for t in result.hosts[0].tasks]


def ctx(hostvars: dict[str, Any] | None = None, base: Path = Path("."), task_file: str = "") -> ModuleContext:
    def no_connection() -> Any:
        raise AssertionError("include_vars must not connect")

    return ModuleContext(
        host="pc01",
        hostvars=hostvars or {},
        check_mode=False,
        diff=False,
        connect=no_connection,
        cancel=threading.Event(),
        base_dir=str(base),
        task_file=task_file,
    )


def run(args: dict[str, Any], context: ModuleContext) -> Any:
    return IncludeVars().run(context, IncludeVarsArgs.model_validate(args))


def test_folder_order_depth_and_filters(tmp_path: Path) -> None:
    """Folders sorted by path, files by name, later ones win; depth 1 is the folder itself."""
    root = tree(
        tmp_path / "site",
        {
            "a.yml": "room: a\nport: 1\n",
            "b.yaml": "room: b\n",
            "c.json": '{"json_value": 3}',
            "sub/z.yml": "room: sub\n",
            "sub/deeper/y.yml": "deep: true\n",
        },
    )
    found = read_folder(FolderQuery(root=root))
    assert found.values == {"room": "sub", "port": 1, "json_value": 3, "deep": True}
    assert [Path(f).relative_to(root).as_posix() for f in found.files] == [
        "a.yml",
        "b.yaml",
        "c.json",
        "sub/z.yml",
        "sub/deeper/y.yml",
    ]
    assert read_folder(FolderQuery(root=root, depth=1)).values["room"] == "b"
    assert "deep" not in read_folder(FolderQuery(root=root, depth=2)).values
    only_a = read_folder(FolderQuery(root=root, depth=1, files_matching=r"^a\."))
    assert only_a.values == {"room": "a", "port": 1}
    no_yaml = read_folder(FolderQuery(root=root, depth=1, ignore_files=(r"\.yaml", "json")))
    assert no_yaml.values == {"room": "a", "port": 1}
    json_only = read_folder(FolderQuery(root=root, depth=1, extensions=("json",), ignore_unknown_extensions=True))
    assert json_only.values == {"json_value": 3}


def test_unknown_extension_fails_unless_ignored(tmp_path: Path) -> None:
    root = tree(tmp_path / "v", {"a.yml": "x: 1\n", "notes.txt": "not yaml\n"})
    with pytest.raises(TaskFailed) as err:
        read_folder(FolderQuery(root=root))
    assert err.value.msg == f"{root / 'notes.txt'} does not have a valid extension: yaml, yml, json"
    assert read_folder(FolderQuery(root=root, ignore_unknown_extensions=True)).values == {"x": 1}


def test_a_list_is_not_a_variables_file(tmp_path: Path) -> None:
    root = tree(tmp_path / "v", {"a.yml": "- 1\n- 2\n"})
    with pytest.raises(TaskFailed) as err:
        read_folder(FolderQuery(root=root))
    assert err.value.msg == f"{root / 'a.yml'} must be stored as a dictionary/hash"


def test_fifo_refused_and_link_loop_walked_once(tmp_path: Path) -> None:
    root = tree(tmp_path / "v", {"a.yml": "x: 1\n"})
    (root / "loop").symlink_to(root, target_is_directory=True)  # os.walk with followlinks would never end
    assert read_folder(FolderQuery(root=root)).values == {"x": 1}
    os.mkfifo(root / "pipe.yml")
    with pytest.raises(TaskFailed, match=r"pipe\.yml is not a regular file"):
        read_folder(FolderQuery(root=root))


def test_vault_file_in_a_folder_is_decrypted(tmp_path: Path) -> None:
    root = tmp_path / "v"
    root.mkdir()
    shutil.copy(VAULT / "secrets-1.1.yml", root / "secrets.yml")
    with vault.using_secrets([vault.secret_from_source(str(VAULT / "password.txt"))]):
        found = read_folder(FolderQuery(root=root))
    assert found.values == {"kms_admin_password": "S3cret-Vault-Value!", "kms_port": 1688}


def test_where_a_relative_dir_is(tmp_path: Path) -> None:
    role_path = tmp_path / "roles" / "r"
    (role_path / "vars" / "os").mkdir(parents=True)
    assert resolve_dir("os", str(role_path), tmp_path) == role_path / "vars" / "os"
    assert resolve_dir("vars/os", str(role_path), tmp_path) == role_path / "vars" / "os"
    assert resolve_dir("vars/none", str(role_path), tmp_path) == Path("vars/none")  # Ansible leaves it as written
    assert resolve_dir("site", None, tmp_path / "tasks") == tmp_path / "tasks" / "site"
    assert resolve_dir("/abs", None, tmp_path) == Path("/abs")


def test_relative_dir_beside_the_task_file(tmp_path: Path) -> None:
    tree(tmp_path / "tasks", {"site/a.yml": "beside_tasks: true\n", "x.yml": "- include_vars: {dir: site}\n"})
    outcome = run({"dir": "site", "name": "s"}, ctx(base=tmp_path, task_file=str(tmp_path / "tasks" / "x.yml")))
    assert outcome.facts == {"s": {"beside_tasks": True}}


def test_hash_behaviour_merge_as_ansible_core(tmp_path: Path) -> None:
    tree(tmp_path / "v", {"a.yml": "kms: {port: 1700, extra: {b: 2}}\n"})
    defined = {"kms": {"host": "kms.example", "port": 1688, "extra": {"a": 1}}}
    outcome = run({"dir": "v", "hash_behaviour": "merge"}, ctx(defined, base=tmp_path))
    assert outcome.facts == {"kms": {"host": "kms.example", "port": 1700, "extra": {"a": 1, "b": 2}}}
    replaced = run({"dir": "v", "hash_behaviour": "replace"}, ctx(defined, base=tmp_path))
    assert replaced.facts == {"kms": {"port": 1700, "extra": {"b": 2}}}
    with pytest.raises(TaskFailed, match="expected dicts but got a 'NoneType' and a 'dict'"):
        run({"dir": "v", "hash_behaviour": "merge"}, ctx({}, base=tmp_path))
    assert merge_hash({"l": [1, 2]}, {"l": [3]}) == {"l": [3]}  # lists are replaced


def test_playbook_with_folders_runs_and_a_missing_folder_fails_at_run_time(tmp_path: Path) -> None:
    """Validation accepts the folder options; the folder is read when the task runs."""
    tree(tmp_path / "vars" / "rooms", {"r101.yml": "seats: 30\n", "r102.yml": "seats: 24\nlast: r102\n"})
    role(
        tmp_path / "roles",
        "kms",
        vars__main="from_main: true\n",
        tasks="- include_vars: {dir: os, files_matching: '^win'}\n"
        "- assert: {that: [os_name == 'Windows 11', from_main]}\n",
    )
    tree(tmp_path / "roles" / "kms" / "vars" / "os", {"win.yml": "os_name: Windows 11\n", "linux.yml": "x: 1\n"})
    text = (
        "- hosts: all\n  gather_facts: false\n  roles: [kms]\n  tasks:\n"
        "    - include_vars: {dir: vars/rooms, name: rooms}\n      register: inc\n"
        "    - assert:\n        that:\n          - rooms.seats == 24 and rooms.last == 'r102'\n"
        "          - inc.ansible_included_var_files | length == 2\n"
        "    - include_vars: {dir: nowhere}\n"
    )
    result = run_book(tmp_path, text)
    (*passed, missing) = statuses(result)
    assert [s for _, s, _ in passed] == ["ok", "ok", "ok", "ok"], passed
    assert missing[1] == "failed" and missing[2] == f"{tmp_path / 'nowhere'} directory does not exist"


def test_mixing_file_and_folder_options_is_refused_before_the_run(tmp_path: Path) -> None:
    text = (
        "- hosts: all\n  tasks:\n    - include_vars: {file: a.yml, depth: 1}\n"
        "    - include_vars: {dir: v, files_matching: '('}\n    - include_vars: {dir: v, extensions: yml}\n"
    )
    with pytest.raises(PlaybookErrors) as err:
        load_playbook(write(tmp_path, text), REGISTRY)
    mixing, regex, extensions = err.value.errors
    assert "You are mixing file only and dir only arguments, these are incompatible" in mixing.message
    assert "files_matching: invalid regular expression '('" in regex.message
    assert "extensions" in extensions.message and "list" in extensions.message


def test_a_task_kmsfleet_made_itself_reads_beside_the_playbook(tmp_path: Path) -> None:
    tree(tmp_path / "site", {"a.yml": "beside_playbook: true\n"})
    outcome = run({"dir": "site"}, ctx(base=tmp_path, task_file="<task>"))
    assert outcome.facts == {"beside_playbook": True}


def test_hash_behaviour_merge_in_a_play(tmp_path: Path) -> None:
    """The mapping merged into is the one the task sees (play vars here); the result holds for later tasks."""
    tree(tmp_path / "vars" / "site", {"kms.yml": "kms: {port: 1700}\n"})
    text = (
        "- hosts: all\n  gather_facts: false\n  vars:\n    kms: {host: kms.school.example, port: 1688}\n  tasks:\n"
        "    - include_vars: {dir: vars/site, hash_behaviour: merge}\n"
        "    - assert: {that: [kms.host == 'kms.school.example', kms.port == 1700]}\n"
    )
    assert [s for _, s, _ in statuses(run_book(tmp_path, text))] == ["ok", "ok"]
