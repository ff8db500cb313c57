"""Several -i sources, inventory directories, host lists, group_vars/host_vars directories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.errors import InputError
from orchestrator.inventory import load_inventory


def put(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_sources_merge_in_order(tmp_path: Path) -> None:
    a = put(tmp_path / "a" / "inv.yml", "room101:\n  vars: {x: a}\n  hosts:\n    pc01: {y: a}\n")
    b = put(tmp_path / "b" / "inv.ini", "[room101]\npc01 y=b\npc02\n[room101:vars]\nx=b\n")
    inv = load_inventory([str(a), str(b)])
    assert inv.hosts == ("pc01", "pc02")
    assert inv.inventory_vars("pc01") == {"x": "b", "y": "b"}
    # the host keeps the file that first listed it
    assert inv.host_vars("pc02")["inventory_file"] == str(b.resolve())
    assert inv.host_vars("pc01")["inventory_file"] == str(a.resolve())


def test_inventory_directory_reads_every_file(tmp_path: Path) -> None:
    d = tmp_path / "inventory"
    put(d / "01-rooms.yml", "room101:\n  hosts:\n    pc01:\n")
    put(d / "02-extra", "[room102]\npc02\n")
    put(d / "sub" / "more.yaml", "room103:\n  hosts:\n    pc03:\n")
    put(d / "README.md", "# not an inventory: ignored\n")
    put(d / "old.retry", "pc99\n")
    put(d / ".hidden.yml", "nope:\n  hosts:\n    pc98:\n")
    put(d / "group_vars" / "all.yml", "k: 1\n")
    inv = load_inventory([str(d)])
    assert inv.hosts == ("pc01", "pc02", "pc03")
    assert inv.host_vars("pc03")["k"] == 1


def test_group_vars_directory_per_group(tmp_path: Path) -> None:
    inv_file = put(tmp_path / "hosts.yml", "room101:\n  hosts:\n    pc01:\n")
    put(tmp_path / "group_vars" / "room101" / "a.yml", "x: 1\ny: 1\n")
    put(tmp_path / "group_vars" / "room101" / "b.yml", "y: 2\n")
    put(tmp_path / "group_vars" / "room101" / "notes.md", "ignored: true\n")
    put(tmp_path / "host_vars" / "pc01", "z: 3\n")
    inv = load_inventory([str(inv_file)])
    assert inv.inventory_vars("pc01") == {"x": 1, "y": 2, "z": 3}
    assert dict(inv.groups["room101"].vars) == {"x": 1, "y": 2}


def test_host_vars_file_named_like_an_address(tmp_path: Path) -> None:
    inv_file = put(tmp_path / "hosts.ini", "127.0.1.5\npc01.lab.local\n")
    put(tmp_path / "host_vars" / "127.0.1.5.yml", "a: 1\n")
    put(tmp_path / "host_vars" / "pc01.lab.local", "b: 2\n")
    inv = load_inventory([str(inv_file)])
    assert inv.inventory_vars("127.0.1.5") == {"a": 1}
    assert inv.inventory_vars("pc01.lab.local") == {"b": 2}


def test_unused_group_vars_file_is_a_warning_with_a_suggestion(tmp_path: Path) -> None:
    inv_file = put(tmp_path / "hosts.yml", "room101:\n  hosts:\n    pc01:\n")
    put(tmp_path / "group_vars" / "room11.yml", "x: 1\n")
    inv = load_inventory([str(inv_file)])
    assert "x" not in inv.host_vars("pc01")
    assert len(inv.warnings) == 1
    assert "room11" in inv.warnings[0] and "did you mean 'room101'?" in inv.warnings[0]


def test_bad_group_vars_file_is_located(tmp_path: Path) -> None:
    inv_file = put(tmp_path / "hosts.yml", "room101:\n  hosts:\n    pc01:\n")
    bad = put(tmp_path / "group_vars" / "room101.yml", "ok: 1\nbad-name: 2\n")
    with pytest.raises(InputError) as info:
        load_inventory([str(inv_file)])
    assert "invalid variable name 'bad-name'" in info.value.message
    assert info.value.location is not None
    assert (info.value.location.file, info.value.location.line, info.value.location.column) == (str(bad), 2, 1)


def test_group_vars_must_be_a_mapping(tmp_path: Path) -> None:
    inv_file = put(tmp_path / "hosts.yml", "room101:\n  hosts:\n    pc01:\n")
    put(tmp_path / "group_vars" / "room101.yml", "- a\n- b\n")
    with pytest.raises(InputError, match="must be a mapping"):
        load_inventory([str(inv_file)])


def test_host_list_source() -> None:
    inv = load_inventory(["pc01,127.0.1.[1:2]:5986,"])
    assert inv.hosts == ("pc01", "127.0.1.1", "127.0.1.2")
    assert inv.groups["ungrouped"].hosts == inv.hosts
    assert inv.inventory_vars("127.0.1.2") == {"ansible_port": 5986}


def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        load_inventory([str(tmp_path / "nope.yml")])
    assert info.value.message == "inventory not found"
    assert info.value.location is not None and info.value.location.file.endswith("nope.yml")


def test_no_source() -> None:
    with pytest.raises(InputError, match="no inventory"):
        load_inventory([])


def test_dynamic_inventory_script_is_refused(tmp_path: Path) -> None:
    script = put(tmp_path / "inv.sh", "#!/bin/sh\necho '{}'\n")
    os.chmod(script, 0o755)
    with pytest.raises(InputError, match="dynamic inventory scripts are not supported"):
        load_inventory([str(script)])


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "inv.yml"
    path.write_bytes(b"all:\n  hosts:\n    pc\xff:\n")
    with pytest.raises(InputError, match="not UTF-8"):
        load_inventory([str(path)])


def test_a_port_in_a_later_host_line_does_not_change_a_known_host(tmp_path: Path) -> None:
    """Ansible keeps ``host:port`` only when it creates the host: later ``pc01:5999`` lines (same or another
    source) add group membership, not a new ``ansible_port``; explicit ``ansible_port=`` still overrides."""
    first = tmp_path / "a.yml"
    first.write_text("all:\n  hosts:\n    pc01:\n      ansible_port: 5985\n    pc02:5986:\n", encoding="utf-8")
    second = tmp_path / "b.ini"
    second.write_text("[room]\npc01:5999\npc02:5999 ansible_port=6000\npc03:5999\n", encoding="utf-8")
    inv = load_inventory([str(first), str(second)])
    assert inv.inventory_vars("pc01")["ansible_port"] == 5985
    assert inv.inventory_vars("pc02")["ansible_port"] == 6000
    assert inv.inventory_vars("pc03")["ansible_port"] == 5999
    assert inv.group_hosts("room") == ["pc01", "pc02", "pc03"]


def test_group_vars_and_host_vars_beside_the_playbook(tmp_path: Path) -> None:
    """Ansible's precedence with a playbook folder: inventory file < inventory group_vars/all < playbook
    group_vars/all < inventory group_vars/<group> < playbook group_vars/<group> < host vars < inventory
    host_vars < playbook host_vars."""
    inv_file = put(
        tmp_path / "inv" / "hosts.yml",
        "all:\n  vars: {a: inv, b: inv, c: inv, d: inv, e: inv, f: inv}\n  children:\n    room101:\n"
        "      vars: {b: room, c: room, d: room, e: room, f: room}\n      hosts:\n        pc01: {e: host, f: host}\n",
    )
    put(tmp_path / "inv" / "group_vars" / "all.yml", "b: igv_all\nc: igv_all\nd: igv_all\n")
    put(tmp_path / "inv" / "group_vars" / "room101.yml", "d: igv_room\n")
    put(tmp_path / "inv" / "host_vars" / "pc01.yml", "f: ihv\n")
    put(tmp_path / "pb" / "group_vars" / "all.yml", "b: pgv_all\nc: pgv_all\n")
    put(tmp_path / "pb" / "group_vars" / "room101.yml", "d: pgv_room\ne: pgv_room\n")
    put(tmp_path / "pb" / "host_vars" / "pc01.yml", "f: phv\ng: phv\n")
    inv = load_inventory([str(inv_file)], playbook_dir=tmp_path / "pb")
    assert inv.inventory_vars("pc01") == {
        "a": "inv", "b": "pgv_all", "c": "pgv_all", "d": "pgv_room", "e": "host", "f": "phv", "g": "phv"
    }  # fmt: skip
    assert "g" not in load_inventory([str(inv_file)]).inventory_vars("pc01")


@pytest.mark.parametrize(
    ("name", "data", "line"),
    [
        ("big5.ini", "[room101]\npc01 note=中文\n".encode("big5"), 2),
        ("big5.yml", "all:\n  hosts:\n    pc01:\n      note: 中文\n".encode("big5"), 4),
    ],
)
def test_an_inventory_not_in_utf8_names_the_line_and_the_fix(tmp_path: Path, name: str, data: bytes, line: int) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(InputError, match="not UTF-8 text") as info:
        load_inventory([str(path)])
    assert info.value.location is not None and info.value.location.line == line
    assert info.value.hint is not None and "UTF-8" in info.value.hint
