"""INI inventories: sections, Ansible's value parsing, ranges, and located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import InputError
from orchestrator.inventory import load_inventory
from orchestrator.inventory.ini_source import parse_value

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "inventory"


def write(tmp_path: Path, text: str, name: str = "hosts.ini") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5985", 5985),
        ("1.5", 1.5),
        ("True", True),
        ("False", False),
        ("None", None),
        ("yes", "yes"),
        ("FALSE", "FALSE"),
        ("'5'", "5"),
        ("['a', 'b']", ["a", "b"]),
        ("{'k': 1}", {"k": 1}),
        ("(1, 2)", [1, 2]),
        ("C:\\Temp", "C:\\Temp"),
        ("{1, 2}", "{1, 2}"),
        ("b'x'", "b'x'"),
        ("1+2j", "1+2j"),
        ("two words", "two words"),
    ],
)
def test_value_parsing_matches_ansible(text: str, expected: object) -> None:
    assert parse_value(text) == expected


def test_school_ini_fixture() -> None:
    inv = load_inventory([str(FIXTURES / "school.ini")])
    assert inv.hosts == (
        "teacher-pc", "pc01", "pc02", "pc03", "pc04", "pc05", "127.0.1.10", "127.0.1.11", "pc-ba", "pc-bb", "pc-bc",
    )  # fmt: skip
    assert inv.groups["ungrouped"].hosts == ("teacher-pc",)
    assert inv.groups["rooms"].children == ("room101", "room102")
    pc01 = inv.inventory_vars("pc01")
    assert pc01["ansible_password"] == "S3cret-Inventory!"  # shell-style quotes removed on host lines
    assert pc01["port"] == 5985 and pc01["answer"] == "yes" and pc01["path"] == "C:\\Temp"
    assert pc01["kms_host"] == "kms.school.example"
    pcb = inv.inventory_vars("pc-bb")
    assert pcb == {
        "ansible_port": 5986,
        "office": 2019,
        "flag": True,
        "items": ["a", "b"],
        "note": "two words",
        "kms_host": "kms.school.example",
    }


def test_host_line_quotes_then_literal() -> None:
    # shlex removes the quotes first, so '5' becomes the int 5 on a host line (Ansible does the same) …
    assert parse_value("5") == 5


def test_vars_section_keeps_everything_after_equals(tmp_path: Path) -> None:
    inv = load_inventory([write(tmp_path, "[g]\npc01\n[g:vars]\nmotd = Hello world  # not a comment\nq='5'\n")])
    assert inv.inventory_vars("pc01") == {"motd": "Hello world  # not a comment", "q": "5"}


def test_comments_and_blank_lines(tmp_path: Path) -> None:
    inv = load_inventory([write(tmp_path, "# c\n; c\n\n[g]  # trailing\npc01 x=1 # comment\n")])
    assert inv.inventory_vars("pc01") == {"x": 1}


def test_children_and_vars_create_groups(tmp_path: Path) -> None:
    inv = load_inventory([write(tmp_path, "[parent:children]\nchild\n[child]\npc01\n[parent:vars]\nk=v\n")])
    assert inv.groups["parent"].children == ("child",)
    assert inv.host_vars("pc01")["k"] == "v"
    assert inv.host_groups("pc01") == ["child", "parent"]


def test_vars_for_an_empty_group_is_a_warning(tmp_path: Path) -> None:
    inv = load_inventory([write(tmp_path, "[room11]\n[room11:vars]\nk=v\n[room101]\npc01\n")])
    assert any("room11" in w for w in inv.warnings)


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("[room11:vars]\nk=v\n[room101]\npc01\n", "section [room11:vars] is for a group that is never declared", 1),
        ("[school:children]\nroom101\nroom11\n[room101]\npc01\n", "names group 'room11', which is never", 3),
        ("[school:children]\nroom101\n[room101:vars]\nk=v\n", "names group 'room101', which is never", 2),
    ],
)
def test_undeclared_groups_are_refused_as_ansible_does(tmp_path: Path, text: str, message: str, line: int) -> None:
    """Ansible's INI rule: [g:vars] and [parent:children] entries need g declared by [g] or [g:children]
    somewhere in the file (before or after) or in an earlier source; a typo is an error, not a new group."""
    with pytest.raises(InputError) as info:
        load_inventory([write(tmp_path, text)])
    assert message in info.value.message and info.value.location is not None
    assert info.value.location.line == line


def test_forward_references_and_earlier_sources_declare_groups(tmp_path: Path) -> None:
    first = write(tmp_path, "[app:children]\nzeta\nalpha\n[beta]\nh0\n[zeta]\nh2\n[alpha:children]\nsub\n[sub]\nh1\n")
    second = tmp_path / "b.ini"
    second.write_text("[beta:vars]\nc=2\n", encoding="utf-8")
    inv = load_inventory([str(first), str(second)])
    assert inv.groups["app"].children == ("zeta", "alpha")
    assert list(inv.groups) == ["all", "ungrouped", "app", "beta", "zeta", "alpha", "sub"]  # Ansible's order
    assert inv.select("all") == ["h0", "h2", "h1"]
    assert inv.inventory_vars("h0") == {"c": 2}


@pytest.mark.parametrize(
    ("text", "message", "line", "column"),
    [
        ("[g]\npc01 ansible_port\n", "expected key=value", 2, 6),
        ("[g:child]\n", "unknown section type ':child'", 1, 4),
        ("[g\n", "invalid section header", 1, 1),
        ("[g]\npc[3:1]\n", "bad host range", 2, 1),
        ("[g]\npc01 x='unbalanced\n", "cannot split host line", 2, 1),
        ("[g:vars]\njust-a-word\n", "expected key=value", 2, 1),
        ("[g:children]\na b\n", "one group name per line", 2, 1),
        ("[g]\n  pc01\n[pc01]\n", "'pc01' is both a group and a host", 3, 1),
        ("[a:children]\nb\n[b:children]\na\n", "creates a loop", 4, 1),
    ],
)
def test_errors_are_located(tmp_path: Path, text: str, message: str, line: int, column: int) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as info:
        load_inventory([path])
    err = info.value
    assert message in err.message
    assert err.location is not None and err.location.file == path
    assert (err.location.line, err.location.column) == (line, column)


def test_ini_without_extension_is_detected(tmp_path: Path) -> None:
    inv = load_inventory([write(tmp_path, "pc01\npc02 ansible_host=127.0.0.2\n", name="hosts")])
    assert inv.hosts == ("pc01", "pc02")
    assert inv.groups["ungrouped"].hosts == ("pc01", "pc02")


def test_yaml_without_extension_is_detected(tmp_path: Path) -> None:
    inv = load_inventory([write(tmp_path, "all:\n  hosts:\n    pc01:\n", name="hosts")])
    assert inv.hosts == ("pc01",)
