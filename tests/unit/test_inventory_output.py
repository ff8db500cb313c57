"""``--list`` JSON and ``--graph`` in ansible-inventory's shapes."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import InputError
from orchestrator.inventory import Inventory, load_inventory
from orchestrator.redact import MASK

INVENTORY = """
all:
  vars:
    site: school
  hosts:
    teacher:
  children:
    rooms:
      vars:
        kms: kms.lab
      children:
        room101:
          hosts:
            pc02:
            pc01:
              ansible_password: Graph-Secret-77
    empty:
"""


@pytest.fixture
def inv(tmp_path: Path) -> Inventory:
    path = tmp_path / "hosts.yml"
    path.write_text(INVENTORY, encoding="utf-8")
    return load_inventory([str(path)])


def test_list_json_shape(inv: Inventory) -> None:
    data = inv.to_list_json()
    assert data["all"] == {"children": ["ungrouped", "rooms", "empty"]}  # definition order, as ansible-core 2.19
    assert data["rooms"] == {"children": ["room101"]}
    assert data["room101"] == {"hosts": ["pc02", "pc01"]}
    assert data["ungrouped"] == {"hosts": ["teacher"]}
    assert "empty" not in data  # empty groups are left out, as ansible-inventory does
    assert data["_meta"]["hostvars"]["pc01"] == {
        "site": "school",
        "kms": "kms.lab",
        "ansible_password": "Graph-Secret-77",
    }
    assert data["_meta"]["hostvars"]["teacher"] == {"site": "school"}
    assert "inventory_hostname" not in data["_meta"]["hostvars"]["pc01"]


def test_list_json_export_keeps_group_vars_on_groups(inv: Inventory) -> None:
    data = inv.to_list_json(export=True)
    assert data["all"]["vars"] == {"site": "school"}
    assert data["rooms"]["vars"] == {"kms": "kms.lab"}
    assert data["_meta"]["hostvars"] == {"pc01": {"ansible_password": "Graph-Secret-77"}}


def test_list_json_with_limit(inv: Inventory) -> None:
    data = inv.to_list_json("pc01")
    assert list(data["_meta"]["hostvars"]) == ["pc01"]
    assert data["room101"] == {"hosts": ["pc01"]}
    assert "ungrouped" not in data


def test_graph(inv: Inventory) -> None:
    assert inv.graph() == "\n".join(
        [
            "@all:",
            "  |--@ungrouped:",
            "  |  |--teacher",
            "  |--@rooms:",
            "  |  |--@room101:",
            "  |  |  |--pc02",
            "  |  |  |--pc01",
            "  |--@empty:",
        ]
    )


def test_graph_of_a_group_with_vars_masks_secrets(inv: Inventory) -> None:
    text = inv.graph("room101", show_vars=True, mask_secrets=True)
    lines = text.splitlines()
    assert lines[0] == "@room101:"
    assert lines[1] == "  |--pc02"
    assert f"  |  |--{{ansible_password = {MASK}}}" in lines
    assert "  |  |--{kms = kms.lab}" in lines
    assert "Graph-Secret-77" not in text
    assert "Graph-Secret-77" in inv.graph("room101", show_vars=True)


def test_graph_shows_group_vars(inv: Inventory) -> None:
    assert inv.graph("rooms", show_vars=True).splitlines()[-1] == "  |--{kms = kms.lab}"


def test_graph_unknown_group(inv: Inventory) -> None:
    with pytest.raises(InputError) as info:
        inv.graph("room11")
    assert info.value.hint == "did you mean 'room101'?"


def test_unknown_host(inv: Inventory) -> None:
    with pytest.raises(InputError) as info:
        inv.host_vars("pc1")
    assert info.value.message == "unknown host 'pc1'"
    assert info.value.hint == "did you mean 'pc01'?"


def test_export_and_graph_vars_show_a_group_priority(tmp_path: Path) -> None:
    path = tmp_path / "hosts.ini"
    path.write_text("[room]\npc01\n[room:vars]\nansible_group_priority=10\nlevel=room\n", encoding="utf-8")
    inv = load_inventory([str(path)])
    assert inv.to_list_json(export=True)["room"]["vars"] == {"level": "room", "ansible_group_priority": 10}
    assert "  |--{ansible_group_priority = 10}" in inv.graph("room", show_vars=True).splitlines()
    assert inv.inventory_vars("pc01") == {"level": "room"}  # never a host variable
