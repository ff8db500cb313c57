"""Leaves everyone relies on: host ranges, YAML with locations, secret redaction, the worker pool."""

from __future__ import annotations

import base64
import threading
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.errors import InputError
from orchestrator.executor.pool import WorkerPool
from orchestrator.hostranges import RangeError, expand
from orchestrator.redact import MASK, redact, redact_text, register_secret
from orchestrator.yamlsource import MAX_YAML_BYTES, LocatedDict, UnsafeText, load_yaml_file, load_yaml_text, location_of


def test_ranges() -> None:
    assert expand("pc[01:03]") == ["pc01", "pc02", "pc03"]
    assert expand("127.0.1.[1:3]") == ["127.0.1.1", "127.0.1.2", "127.0.1.3"]
    assert expand("lab-[a:c]") == ["lab-a", "lab-b", "lab-c"]
    assert expand("x[0:10:5]") == ["x0", "x5", "x10"]
    assert expand("r[1:2]-[a:b]") == ["r1-a", "r1-b", "r2-a", "r2-b"]
    for bad in ("pc[3:1]", "pc[1:x]", "pc[1:2", "pc[a:bb]"):
        with pytest.raises(RangeError):
            expand(bad)


@given(st.integers(0, 500), st.integers(0, 50), st.integers(1, 9))
def test_range_count_property(lo: int, span: int, step: int) -> None:
    names = expand(f"pc[{lo}:{lo + span}:{step}]")
    assert len(names) == span // step + 1
    assert names[0] == f"pc{lo}"


def test_yaml_locations_and_duplicates() -> None:
    data = load_yaml_text("a:\n  b: 1\n  c: [x, y]\n", "f.yml")
    assert isinstance(data, LocatedDict)
    loc = location_of(data, ["a", "c", 1])
    assert loc is not None and (loc.file, loc.line) == ("f.yml", 3)
    with pytest.raises(InputError, match=r"f.yml:2:1: duplicate key 'a'"):
        load_yaml_text("a: 1\na: 2\n", "f.yml")
    with pytest.raises(InputError, match=r"f.yml:\d+:\d+: YAML syntax error"):
        load_yaml_text("a: [1, 2\nb: 3\n", "f.yml")
    assert isinstance(load_yaml_text("x: !unsafe '{{ y }}'")["x"], UnsafeText)
    with pytest.raises(InputError, match="Vault"):
        load_yaml_text("x: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n")


def test_a_huge_yaml_file_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    huge = tmp_path / "huge.yml"
    with huge.open("wb") as fh:  # sparse: 256 MiB on paper, nothing on disk
        fh.truncate(256 * 1024 * 1024)
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=r"huge.yml: file is larger than 16 MiB"):
            load_yaml_file(huge)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * MAX_YAML_BYTES  # not the 512 MiB of reading and decoding it all


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("a: 1\nroom: 教室\n".encode("big5"), r"vars.yml:2:7: not UTF-8 text: kmsfleet reads UTF-8 files"),
        ("a: 1\n".encode("utf-16"), r"vars.yml: this is UTF-16 text"),  # Notepad's "Unicode"
    ],
)
def test_a_file_in_another_encoding_says_where_and_how_to_fix_it(tmp_path: Path, raw: bytes, message: str) -> None:
    path = tmp_path / "vars.yml"
    path.write_bytes(raw)
    with pytest.raises(InputError, match=message) as caught:
        load_yaml_file(path)
    assert caught.value.hint and "UTF-8" in caught.value.hint


@given(st.text(max_size=200))
def test_yaml_never_raises_anything_but_input_error(text: str) -> None:
    try:
        load_yaml_text(text, "fuzz.yml")
    except InputError:
        pass


def test_redaction_forms() -> None:
    secret = "Pa55-Redact-Me"
    register_secret(secret)
    b64 = base64.b64encode(secret.encode()).decode()
    u16 = base64.b64encode(secret.encode("utf-16-le")).decode()
    assert redact_text(f"pw={secret} b={b64} u={u16}") == f"pw={MASK} b={MASK} u={MASK}"
    assert redact({"ansible_password": "anything", "nested": [secret]}) == {
        "ansible_password": MASK,
        "nested": [MASK],
    }


def test_pool_runs_in_parallel_and_abandons_stuck_work() -> None:
    pool = WorkerPool(4)
    gate = threading.Event()
    stuck = pool.submit(lambda: gate.wait(30))
    started = time.monotonic()
    quick = [pool.submit(lambda i=i: i * 2) for i in range(10)]
    assert [f.result(timeout=5) for f in quick] == [i * 2 for i in range(10)]
    assert time.monotonic() - started < 5
    assert not stuck.done()
    pool.shutdown()
    gate.set()
    assert stuck.result(timeout=5) is True
