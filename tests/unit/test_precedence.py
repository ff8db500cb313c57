"""Variable precedence, as Ansible documents it for inventory sources:

all (inventory) < other groups (inventory; by depth, ansible_group_priority, name) < group_vars/all <
group_vars/<group> < host (inventory) < host_vars/<host>. Several sources apply in -i order.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import InputError
from orchestrator.inventory import load_inventory


def put(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


INVENTORY = """
all:
  vars: {v: all-inv, only_all: 1}
  children:
    parent:
      vars: {v: parent-inv}
      children:
        child:
          vars: {v: child-inv}
          hosts:
            pc01:
            pc02: {v: host-inv}
"""


def value_for(tmp_path: Path, host: str, files: dict[str, str]) -> object:
    inv_file = put(tmp_path / "hosts.yml", INVENTORY)
    for rel, text in files.items():
        put(tmp_path / rel, text)
    return load_inventory([str(inv_file)]).host_vars(host)["v"]


@pytest.mark.parametrize(
    ("host", "files", "expected"),
    [
        ("pc01", {}, "child-inv"),
        ("pc02", {}, "host-inv"),
        # group_vars/all beats every inventory-file group var (Ansible's documented order)
        ("pc01", {"group_vars/all.yml": "v: all-gv"}, "all-gv"),
        ("pc01", {"group_vars/all.yml": "v: all-gv", "group_vars/parent.yml": "v: parent-gv"}, "parent-gv"),
        (
            "pc01",
            {"group_vars/parent.yml": "v: parent-gv", "group_vars/child.yml": "v: child-gv"},
            "child-gv",
        ),
        # inventory host vars beat any group_vars; host_vars beat those
        ("pc02", {"group_vars/child.yml": "v: child-gv"}, "host-inv"),
        ("pc02", {"host_vars/pc02.yml": "v: host-hv"}, "host-hv"),
        ("pc01", {"host_vars/pc01.yml": "v: host-hv", "group_vars/child.yml": "v: child-gv"}, "host-hv"),
    ],
)
def test_layers(tmp_path: Path, host: str, files: dict[str, str], expected: str) -> None:
    assert value_for(tmp_path, host, files) == expected


def test_untouched_keys_come_from_lower_layers(tmp_path: Path) -> None:
    inv_file = put(tmp_path / "hosts.yml", INVENTORY)
    put(tmp_path / "group_vars" / "child.yml", "v: child-gv\n")
    assert load_inventory([str(inv_file)]).host_vars("pc01")["only_all"] == 1


def test_whole_keys_are_replaced_not_merged(tmp_path: Path) -> None:
    inv_file = put(
        tmp_path / "hosts.yml",
        "all:\n  vars: {d: {a: 1, b: 1}}\n  children:\n    g:\n      vars: {d: {b: 2}}\n      hosts: {pc01: }\n",
    )
    assert load_inventory([str(inv_file)]).host_vars("pc01")["d"] == {"b": 2}


def test_siblings_at_the_same_depth_sort_by_name(tmp_path: Path) -> None:
    inv_file = put(
        tmp_path / "hosts.yml",
        "zeta:\n  vars: {v: zeta}\n  hosts: {pc01: }\nalpha:\n  vars: {v: alpha}\n  hosts: {pc01: }\n",
    )
    # same depth and priority: name order, so 'zeta' is applied last and wins
    assert load_inventory([str(inv_file)]).host_vars("pc01")["v"] == "zeta"


def test_group_priority_beats_name(tmp_path: Path) -> None:
    inv_file = put(
        tmp_path / "hosts.yml",
        "zeta:\n  vars: {v: zeta}\n  hosts: {pc01: }\n"
        "alpha:\n  vars: {v: alpha, ansible_group_priority: 10}\n  hosts: {pc01: }\n",
    )
    inv = load_inventory([str(inv_file)])
    assert inv.host_vars("pc01")["v"] == "alpha"
    assert "ansible_group_priority" not in inv.host_vars("pc01")
    assert inv.groups["alpha"].priority == 10


def test_depth_beats_priority(tmp_path: Path) -> None:
    inv_file = put(
        tmp_path / "hosts.yml",
        "top:\n  vars: {v: top, ansible_group_priority: 99}\n  children:\n    deep:\n      vars: {v: deep}\n"
        "      hosts: {pc01: }\n",
    )
    assert load_inventory([str(inv_file)]).host_vars("pc01")["v"] == "deep"


def test_depth_is_the_longest_path(tmp_path: Path) -> None:
    # 'c' is declared first (as a top-level group) but ends up under a → b, so its depth is 3 and it beats 'b'
    inv_file = put(
        tmp_path / "hosts.ini",
        "[c]\npc01\n[a:children]\nb\n[b:children]\nc\n[b]\npc01\n[b:vars]\nv=b\n[c:vars]\nv=c\n",
    )
    inv = load_inventory([str(inv_file)])
    assert inv.groups["c"].depth == 3
    assert inv.host_vars("pc01")["v"] == "c"


def test_bad_group_priority(tmp_path: Path) -> None:
    inv_file = put(tmp_path / "hosts.yml", "g:\n  vars: {ansible_group_priority: high}\n  hosts: {pc01: }\n")
    with pytest.raises(InputError, match="ansible_group_priority must be a whole number"):
        load_inventory([str(inv_file)])


def test_later_source_wins_for_the_same_layer(tmp_path: Path) -> None:
    a = put(tmp_path / "a" / "hosts.yml", "g:\n  hosts: {pc01: }\n")
    put(tmp_path / "a" / "group_vars" / "g.yml", "v: a\n")
    b = put(tmp_path / "b" / "hosts.yml", "g:\n  hosts: {pc01: }\n")
    put(tmp_path / "b" / "group_vars" / "g.yml", "v: b\n")
    assert load_inventory([str(a), str(b)]).host_vars("pc01")["v"] == "b"
    assert load_inventory([str(b), str(a)]).host_vars("pc01")["v"] == "a"


def test_group_vars_files_apply_source_by_source(tmp_path: Path) -> None:
    # Ansible applies group_vars per source: child of source A < parent of source B.
    a = put(tmp_path / "a" / "hosts.yml", "parent:\n  children:\n    child:\n      hosts: {pc01: }\n")
    put(tmp_path / "a" / "group_vars" / "child.yml", "v: child-a\n")
    b = put(tmp_path / "b" / "hosts.yml", "parent: {}\n")
    put(tmp_path / "b" / "group_vars" / "parent.yml", "v: parent-b\n")
    assert load_inventory([str(a), str(b)]).host_vars("pc01")["v"] == "parent-b"


def test_magic_variables_win(tmp_path: Path) -> None:
    inv_file = put(tmp_path / "hosts.yml", "all:\n  hosts:\n    pc01: {inventory_hostname: spoofed}\n")
    assert load_inventory([str(inv_file)]).host_vars("pc01")["inventory_hostname"] == "pc01"
