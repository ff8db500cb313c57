"""Ansible host patterns and --limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import InputError, Location
from orchestrator.inventory import Inventory, load_inventory

INVENTORY = """
all:
  hosts:
    teacher:
  children:
    room101:
      hosts:
        pc[01:06]:
    room102:
      hosts:
        pc[07:09]:
        127.0.1.[1:3]:
    win10:
      hosts:
        pc02:
        pc05:
        pc08:
    empty:
"""

ROOM101 = ["pc01", "pc02", "pc03", "pc04", "pc05", "pc06"]
ROOM102 = ["pc07", "pc08", "pc09", "127.0.1.1", "127.0.1.2", "127.0.1.3"]


@pytest.fixture(scope="module")
def inv(tmp_path_factory: pytest.TempPathFactory) -> Inventory:
    path = tmp_path_factory.mktemp("inv") / "hosts.yml"
    path.write_text(INVENTORY, encoding="utf-8")
    return load_inventory([str(path)])


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (None, ["teacher", *ROOM101, *ROOM102]),
        ("all", ["teacher", *ROOM101, *ROOM102]),
        ("*", ["teacher", *ROOM101, *ROOM102]),
        ("room101", ROOM101),
        ("pc03", ["pc03"]),
        ("ungrouped", ["teacher"]),
        ("room101:room102", ROOM101 + ROOM102),
        ("room102,room101", ROOM102 + ROOM101),  # Ansible's order: term by term
        ("room101:&win10", ["pc02", "pc05"]),
        ("room101,&win10", ["pc02", "pc05"]),
        ("room101:!pc05", ["pc01", "pc02", "pc03", "pc04", "pc06"]),
        ("room101:!win10", ["pc01", "pc03", "pc04", "pc06"]),
        ("!room101", ["teacher", *ROOM102]),  # only exclusions: 'all' is implied
        ("&win10", ["pc02", "pc05", "pc08"]),
        ("room101:room102:&win10:!pc05", ["pc02", "pc08"]),
        ("pc0*", [*ROOM101, "pc07", "pc08", "pc09"]),
        ("pc0?", [*ROOM101, "pc07", "pc08", "pc09"]),
        ("127.0.1.*", ["127.0.1.1", "127.0.1.2", "127.0.1.3"]),
        ("room*", ROOM101 + ROOM102),
        ("~pc0[1-3]", ["pc01", "pc02", "pc03"]),
        ("~(teach|pc09)", ["teacher", "pc09"]),
        ("~room10[2]", ROOM102),
        ("room101[0]", ["pc01"]),
        ("room101[-1]", ["pc06"]),
        ("room101[0:2]", ["pc01", "pc02", "pc03"]),  # end inclusive, like Ansible
        ("room101[1-2]", ["pc02", "pc03"]),
        ("room101[4:]", ["pc05", "pc06"]),
        ("room101[:1]", ["pc01", "pc02"]),
        ("room101[3:1]", []),
        ("room101[99]", []),
        ("pc[02:04]", ["pc02", "pc03", "pc04"]),
        ("127.0.1.[2:3]", ["127.0.1.2", "127.0.1.3"]),
        (" room101 , pc07 ", [*ROOM101, "pc07"]),
        ("empty", []),
        ("room101:&room102", []),
        ("pc01,pc99", ["pc01"]),  # an unknown name among known ones is ignored, like Ansible's warning
    ],
)
def test_patterns(inv: Inventory, pattern: str | None, expected: list[str]) -> None:
    assert inv.select(pattern) == expected


def test_unmatched_terms_are_reported(inv: Inventory) -> None:
    selection = inv.match("pc01,room11,pc9")
    assert selection.hosts == ("pc01",)
    assert selection.unmatched == ("room11", "pc9")
    assert any("did you mean 'room101'?" in h for h in selection.hints)


@pytest.mark.parametrize(
    ("pattern", "suggestion"),
    [("room11", "room101"), ("pc001", "pc01"), ("roomm102:&win10", "room102"), ("techer", "teacher")],
)
def test_nothing_matched_is_an_error_with_a_suggestion(inv: Inventory, pattern: str, suggestion: str) -> None:
    with pytest.raises(InputError) as info:
        inv.select(pattern, location=Location("site.yml", 3, 10))
    assert "no host matches" in info.value.message
    assert info.value.location == Location("site.yml", 3, 10)
    assert info.value.hint is not None and f"did you mean '{suggestion}'?" in info.value.hint


def test_limit_intersects(inv: Inventory) -> None:
    assert inv.select("room101", limit="win10") == ["pc02", "pc05"]
    assert inv.select("all", limit="room102:!pc08") == ["pc07", "pc09", "127.0.1.1", "127.0.1.2", "127.0.1.3"]
    assert inv.select("room101", limit="") == ROOM101


def test_limit_that_matches_nothing_is_an_error(inv: Inventory) -> None:
    with pytest.raises(InputError, match="'pc99'"):
        inv.select("all", limit="pc99")


def test_limit_from_a_file(inv: Inventory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "retry.txt").write_text("pc03\n\n# comment\npc07\nroom101:&win10\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert inv.select("all", limit="@retry.txt") == ["pc02", "pc03", "pc05", "pc07"]
    assert inv.select("@retry.txt") == ["pc03", "pc07", "pc02", "pc05"]  # line by line
    assert inv.select("room101", limit="@retry.txt,pc01") == ["pc01", "pc02", "pc03", "pc05"]


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("@missing.txt", "limit file not found"),
        ("room101:&@failed", "@failed .from the history. works only as a whole --limit term"),
        ("@unreachable:1a2b3c", "@unreachable .from the history. works only as a whole --limit term"),
        ("~pc[", "invalid regular expression"),
        ("", "empty host pattern"),
        ("room101[:]", "invalid subscript"),
        ("room101:!", "incomplete host pattern term"),
        ("@", "'@' must be followed by a file name"),
    ],
)
def test_bad_patterns(
    inv: Inventory, pattern: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=message.replace("[", r"\[")):
        inv.select(pattern)


def test_globs_are_case_sensitive(inv: Inventory) -> None:
    assert inv.match("PC0*").hosts == ()


def test_group_hosts_in_ansibles_order(tmp_path: Path) -> None:
    """A group lists its own hosts in its own order (not where they first appeared in the file), then its
    children's, level by level: ``groups['room101'][0]`` and ``room101[0]`` are what Ansible gives."""
    path = tmp_path / "hosts.ini"
    path.write_text(
        "[win10]\npc03\npc02\n[room101]\npc01\npc02\npc03\n[deep]\npc09\n[sub]\npc04\n"
        "[sub:children]\ndeep\n[room101:children]\nsub\n",
        encoding="utf-8",
    )
    inv = load_inventory([str(path)])
    assert inv.group_hosts("room101") == ["pc01", "pc02", "pc03", "pc04", "pc09"]
    assert inv.select("room101[0]") == ["pc01"]
    assert inv.host_vars("pc01")["groups"]["room101"][0] == "pc01"
    assert inv.select("win10,room101") == ["pc03", "pc02", "pc01", "pc04", "pc09"]
    assert inv.select("room101", limit="win10") == ["pc02", "pc03"]
    assert inv.select("all") == ["pc03", "pc02", "pc01", "pc04", "pc09"]


@pytest.mark.parametrize("pattern", [",", " , ", ",,:", "&", "!"])
def test_a_pattern_of_separators_only_is_refused_never_every_host(inv: Inventory, pattern: str) -> None:
    with pytest.raises(InputError):
        inv.select(pattern)


def test_a_limit_file_without_a_size_is_read_with_a_bound(inv: Inventory) -> None:
    # /dev/zero reports size 0 and never ends: reading it whole would exhaust memory
    with pytest.raises(InputError, match="larger than 1 MiB"):
        inv.select("all", limit="@/dev/zero")
