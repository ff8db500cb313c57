"""YAML inventories: structure, host ranges, ports, ungrouped, and errors that name file:line:column."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import InputError
from orchestrator.inventory import load_inventory
from orchestrator.redact import MASK, redact_text

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "inventory"


def write(tmp_path: Path, text: str, name: str = "inv.yml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def error_of(tmp_path: Path, text: str) -> InputError:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as info:
        load_inventory([path])
    return info.value


def test_school_fixture_structure() -> None:
    inv = load_inventory([str(FIXTURES / "school" / "hosts.yml")])
    assert inv.hosts[0] == "teacher-pc"
    assert inv.groups["room101"].hosts == ("pc01", "pc02", "pc03", "pc04", "pc05", "127.0.1.10", "127.0.1.11")
    assert inv.groups["room102"].hosts == ("pc-ba", "pc-bb", "pc-bc")
    assert inv.groups["rooms"].children == ("room101", "room102")
    assert inv.groups["room101"].parents == ("rooms",)
    assert set(inv.groups["all"].children) == {"ungrouped", "rooms", "win10"}
    assert inv.groups["ungrouped"].hosts == ("teacher-pc",)
    assert inv.group_hosts("rooms") == [*inv.groups["room101"].hosts, *inv.groups["room102"].hosts]
    assert inv.groups["room102"].depth == 2 and inv.groups["rooms"].depth == 1 and inv.groups["all"].depth == 0


def test_ranges_ports_and_host_vars(tmp_path: Path) -> None:
    inv = load_inventory(
        [
            write(
                tmp_path,
                """
all:
  hosts:
    pc[01:03]:
      ansible_user: student
    127.0.1.[8:10]:5986:
    lab-[a:c]:
""",
            )
        ]
    )
    assert inv.hosts == ("pc01", "pc02", "pc03", "127.0.1.8", "127.0.1.9", "127.0.1.10", "lab-a", "lab-b", "lab-c")
    assert inv.inventory_vars("pc02") == {"ansible_user": "student"}
    assert inv.inventory_vars("127.0.1.9") == {"ansible_port": 5986}
    assert inv.inventory_vars("lab-b") == {}


def test_hosts_directly_in_all_are_ungrouped(tmp_path: Path) -> None:
    inv = load_inventory(
        [write(tmp_path, "all:\n  hosts:\n    a:\n    b:\n  children:\n    g:\n      hosts:\n        b:\n")]
    )
    assert inv.groups["ungrouped"].hosts == ("a",)
    assert inv.host_groups("a") == ["ungrouped"]
    assert inv.host_groups("b") == ["g"]


def test_top_level_groups_without_all(tmp_path: Path) -> None:
    inv = load_inventory([write(tmp_path, "room101:\n  hosts:\n    pc01:\nroom102:\n  hosts:\n    pc02:\n")])
    assert inv.groups["room101"].parents == ("all",)
    assert inv.select("all") == ["pc01", "pc02"]


def test_host_listed_twice_merges_vars_later_wins(tmp_path: Path) -> None:
    inv = load_inventory(
        [
            write(
                tmp_path,
                "a:\n  hosts:\n    pc01: {x: 1, y: 1}\nb:\n  hosts:\n    pc01: {y: 2}\n",
            )
        ]
    )
    assert inv.hosts == ("pc01",)
    assert inv.host("pc01").groups == ("a", "b")
    assert inv.inventory_vars("pc01") == {"x": 1, "y": 2}


def test_magic_variables(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "all:\n  children:\n    p:\n      children:\n        c:\n          hosts:\n            pc01.lab.local:\n",
    )
    inv = load_inventory([path])
    hv = inv.host_vars("pc01.lab.local")
    assert hv["inventory_hostname"] == "pc01.lab.local"
    assert hv["inventory_hostname_short"] == "pc01"
    assert hv["group_names"] == ["c", "p"]
    assert hv["groups"]["all"] == ["pc01.lab.local"]
    assert hv["groups"]["p"] == ["pc01.lab.local"]
    assert hv["groups"]["ungrouped"] == []
    assert hv["inventory_file"] == str(Path(path).resolve())
    assert hv["inventory_dir"] == str(Path(path).resolve().parent)


def test_host_vars_returns_a_copy(tmp_path: Path) -> None:
    inv = load_inventory([write(tmp_path, "all:\n  hosts:\n    pc01:\n      d: {k: [1]}\n")])
    first = inv.host_vars("pc01")
    first["d"]["k"].append(2)
    assert inv.host_vars("pc01")["d"] == {"k": [1]}


def test_host_vars_are_not_templated(tmp_path: Path) -> None:
    inv = load_inventory([write(tmp_path, 'all:\n  vars:\n    a: "{{ b }}"\n  hosts:\n    pc01:\n')])
    assert inv.host_vars("pc01")["a"] == "{{ b }}"


def test_passwords_are_registered_for_redaction(tmp_path: Path) -> None:
    secret = "Inv-Secret-8c1f2a"
    load_inventory([write(tmp_path, f"all:\n  hosts:\n    pc01:\n      ansible_password: {secret}\n")])
    assert redact_text(f"login with {secret}") == f"login with {MASK}"


def test_empty_inventory_is_a_warning(tmp_path: Path) -> None:
    inv = load_inventory([write(tmp_path, "# nothing yet\n")])
    assert inv.hosts == ()
    assert any("empty" in w for w in inv.warnings)


@pytest.mark.parametrize(
    ("text", "message", "line", "column", "hint"),
    [
        ("all:\n  host:\n    pc01:\n", "unknown key 'host' in group 'all'", 2, 3, "did you mean 'hosts'?"),
        ("all:\n  childs:\n    g:\n", "unknown key 'childs' in group 'all'", 2, 3, "did you mean 'children'?"),
        ("all:\n  hosts:\n    - pc01\n", "'hosts' of group 'all' must be a mapping", 2, 3, "'pc01:'"),
        ("all:\n  hosts:\n    pc[05:01]:\n", "bad host range", 3, 5, None),
        ("all:\n  hosts:\n    pc[01:x]:\n", "bad host range", 3, 5, None),
        ("all:\n  hosts:\n    pc01: hello\n", "host 'pc01' must map to its variables", 3, 5, None),
        ("all:\n  vars: [1]\n", "'vars' of group 'all' must be a mapping", 2, 3, None),
        ("room101:\n  - pc01\n", "group 'room101' must be a mapping", 1, 1, "hosts:"),
        ("- pc01\n", "an inventory must be a mapping of groups", 1, 1, "all:"),
        ("plugin: aws_ec2\n", "inventory plugins are not supported", 1, 1, None),
        ("all:\n  hosts:\n    pc01:\n  children:\n    pc01:\n", "'pc01' is both a group and a host", 5, 5, None),
        ("g:\n  children:\n    h:\nh:\n  children:\n    g:\n", "creates a loop", 6, 5, None),
        ("all:\n  hosts:\n    'pc 01':\n", "contains a space", 3, 5, None),
        ("all:\n  hosts:\n    pc01:\n   bad: indent\n", "YAML syntax error", 4, 4, None),
        ("all:\n  hosts:\n    pc01:\n    pc01:\n", "duplicate key 'pc01'", 4, 5, None),
    ],
)
def test_errors_name_file_line_column(
    tmp_path: Path, text: str, message: str, line: int, column: int, hint: str | None
) -> None:
    err = error_of(tmp_path, text)
    assert message in err.message
    assert err.location is not None
    assert err.location.file.endswith("inv.yml")
    assert (err.location.line, err.location.column) == (line, column)
    if hint is not None:
        assert err.hint is not None and hint in err.hint


def test_host_then_group_with_the_same_name(tmp_path: Path) -> None:
    err = error_of(tmp_path, "a:\n  hosts:\n    web:\nweb:\n  hosts:\n    pc01:\n")
    assert "'web' is both a group and a host" in err.message
    assert err.location is not None and err.location.line == 4


def test_json_inventory(tmp_path: Path) -> None:
    path = write(
        tmp_path, '{"all": {"hosts": {"pc01": {"x": 1}}, "children": {"g": {"hosts": {"pc02": null}}}}}', "i.json"
    )
    inv = load_inventory([path])
    assert inv.hosts == ("pc01", "pc02")
    assert inv.inventory_vars("pc01") == {"x": 1}
