"""A task's ``data`` is kept packed (``results.models.PackedData``) and reads exactly as the frozen mapping it was:
same values, tuples for lists, read-only mappings, JSON and reports unchanged, and it pickles as plain values."""

from __future__ import annotations

import dataclasses
import json
import pickle
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import pytest

from orchestrator.results.models import EMPTY, HostTaskResult, PackedData, TaskStatus, freeze, thaw


def _result(data: Any, module: str = "win_command") -> HostTaskResult:
    return HostTaskResult(host="pc01", play="p", task="t", module=module, status=TaskStatus.OK, data=data)


DATA = {
    "rc": 0,
    "stdout_lines": ["a", "b"],
    "results": [{"item": 1, "seen": datetime(2026, 1, 2, tzinfo=UTC)}],
    "nested": {"tags": {"x"}},
}


def test_packed_data_reads_as_the_frozen_mapping() -> None:
    t = _result(DATA)
    assert isinstance(t.data, PackedData)
    assert t.data == freeze(DATA) and dict(t.data.items()) == dict(freeze(DATA).items())
    assert t.data["stdout_lines"] == ("a", "b") and isinstance(t.data["results"][0], MappingProxyType)
    assert t.data["results"][0]["seen"] == datetime(2026, 1, 2, tzinfo=UTC)
    assert t.data.get("missing", 7) == 7 and "rc" in t.data and len(t.data) == 4
    with pytest.raises(TypeError):
        t.data["results"][0]["item"] = 2  # type: ignore[index]
    assert thaw(t.data) == thaw(freeze(DATA))
    assert json.dumps(t.to_json()["data"], sort_keys=True) == json.dumps(thaw(freeze(DATA)), sort_keys=True)
    assert "stdout_lines" in repr(t)  # shown as its values (what the secret checks on repr rely on)


def test_empty_copied_and_replaced_data() -> None:
    assert _result({}).data is EMPTY
    t = _result(freeze(DATA))  # frozen data (as dataclasses.replace passes it) packs too
    assert isinstance(t.data, PackedData) and t.data == freeze(DATA)
    moved = dataclasses.replace(t, task="u")
    assert moved.data is t.data


def test_packed_data_pickles_as_its_values_not_its_dictionary() -> None:
    _result({"k": "v" * 2000}, module="kind_for_pickle_test")  # teaches the module's dictionary
    t = _result({"k": "w" * 10}, module="kind_for_pickle_test")
    blob = pickle.dumps(t)
    assert len(blob) < 1000, len(blob)  # the 2 KB preset dictionary does not travel with every result
    back = pickle.loads(blob)
    assert back == t and isinstance(back.data, PackedData)


def test_unpicklable_data_stays_frozen() -> None:
    t = _result({"f": lambda: 1}, module="kind_unpicklable")
    assert isinstance(t.data, MappingProxyType) and callable(t.data["f"])
