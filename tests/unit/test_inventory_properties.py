"""Properties: host ranges round-trip; patterns and the loader never raise anything but InputError."""

from __future__ import annotations

import fnmatch
import re
import string
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import InputError
from orchestrator.hostranges import expand
from orchestrator.inventory import Inventory, load_inventory
from orchestrator.inventory.ini_source import parse_value

NAME = st.text(alphabet=string.ascii_lowercase + "-", min_size=1, max_size=8).filter(lambda s: s[0] != "-")


@settings(deadline=None)
@given(prefix=NAME, start=st.integers(0, 500), count=st.integers(1, 60), width=st.integers(1, 4), suffix=NAME)
def test_numeric_range_round_trip(prefix: str, start: int, count: int, width: int, suffix: str) -> None:
    end = start + count - 1
    pattern = f"{prefix}[{start:0{width}d}:{end:0{width}d}]{suffix}"
    names = expand(pattern)
    assert len(names) == count
    padded = width > 1 and f"{start:0{width}d}".startswith("0")
    for i, name in enumerate(names):
        assert name.startswith(prefix) and name.endswith(suffix)
        digits = name[len(prefix) : len(name) - len(suffix)]
        assert int(digits) == start + i
        if padded:
            assert len(digits) >= width


@settings(deadline=None)
@given(first=st.sampled_from(string.ascii_lowercase), size=st.integers(1, 10), step=st.integers(1, 3))
def test_letter_range_round_trip(first: str, size: int, step: int) -> None:
    last = chr(min(ord(first) + size, ord("z")))
    names = expand(f"lab-[{first}:{last}:{step}]")
    assert names == [f"lab-{chr(c)}" for c in range(ord(first), ord(last) + 1, step)]


def _inventory() -> Inventory:
    with tempfile.TemporaryDirectory(prefix="kmsfleet-prop-") as directory:
        path = Path(directory) / "hosts.yml"
        path.write_text(
            "all:\n  hosts:\n    teacher:\n  children:\n    room101:\n      hosts:\n        pc[01:12]:\n"
            "    win10:\n      hosts:\n        pc02:\n        127.0.1.[1:3]:\n",
            encoding="utf-8",
        )
        return load_inventory([str(path)])


INV = _inventory()
PATTERN_CHARS = string.ascii_letters + string.digits + "[]:!&~*?,.-@ ()|\\^$+{}"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=PATTERN_CHARS, max_size=30) | st.text(max_size=30))
def test_patterns_never_traceback(pattern: str) -> None:
    try:
        hosts = INV.select(pattern)
    except InputError:
        return
    assert all(h in INV.hosts for h in hosts)
    assert len(hosts) == len(set(hosts))
    # Hosts come in inventory order, except that a term matching a group gives that group's hosts first, then the
    # matching hosts (Ansible's order, checked against ansible-core: `*[0?]` → win10's hosts, then pc10).
    terms = [t.lstrip("!&") for t in re.split(r"[,:]", pattern) if t.strip("!&")]
    if not any(fnmatch.fnmatchcase(g, t) for g in INV.groups for t in terms):
        assert hosts == sorted(hosts, key=INV.index_of)


def test_a_glob_matching_a_group_gives_its_hosts_first() -> None:
    assert INV.select("*[0?]") == [*INV.group_hosts("win10"), "pc10"]


SCALARS = st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=6)
YAML_DATA = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6) | st.integers(0, 3), children, max_size=3)
    ),
    max_leaves=15,
)
GROUPISH = st.dictionaries(
    st.sampled_from(["all", "room101", "pc01", "hosts", "g"]),
    st.none()
    | st.dictionaries(
        st.sampled_from(["hosts", "vars", "children", "host", "pc[01:03]", "room101"]),
        YAML_DATA,
        max_size=3,
    ),
    max_size=3,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(YAML_DATA | GROUPISH)
def test_loader_raises_only_input_errors_on_arbitrary_yaml(data: Any) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "inv.yml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        try:
            inv = load_inventory([str(path)])
        except InputError:
            return
        for host in inv.hosts:
            inv.host_vars(host)
        inv.to_list_json()
        inv.graph(show_vars=True)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_ini_loader_raises_only_input_errors(text: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "hosts.ini"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        try:
            inv = load_inventory([str(path)])
        except InputError:
            return
        inv.to_list_json()


@settings(deadline=None)
@given(st.text(max_size=40))
def test_ini_values_are_plain_data(text: str) -> None:
    value = parse_value(text)
    assert value is None or isinstance(value, str | int | float | bool | list | dict)
