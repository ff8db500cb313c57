"""The compiled plan's wire codec (``executor.plan_codec``): what a distributed worker receives instead of YAML.

Round trips of the bundled playbooks and of generated values; refusals of everything that is not a plan
(unknown tags, unknown fields, wrong types, hostile nesting), each with a message naming where."""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.errors import Location
from orchestrator.executor import plan as plan_module
from orchestrator.executor.loading import load_plan
from orchestrator.executor.plan import BlockSpec, Plan, PlaySpec, TaskSpec
from orchestrator.executor.plan_codec import MAX_DEPTH, PLAN_CLASSES, PlanCodecError, decode_plan, encode_plan
from orchestrator.yamlsource import UnsafeText

PLAYBOOKS = sorted((Path(__file__).resolve().parents[2] / "orchestrator" / "data" / "playbooks").glob("*.yml"))


def _wire(plan: Plan) -> Plan:
    return decode_plan(json.loads(json.dumps(encode_plan(plan))))


def _closed(plan: Plan) -> Plan:
    """Without the loader's objects a worker never receives (read or answered on the controller)."""
    plays = tuple(dataclasses.replace(p, vars_files=(), vars_prompt=()) for p in plan.plays)
    return dataclasses.replace(plan, plays=plays)


def test_every_plan_dataclass_has_a_tag() -> None:
    classes = {c for _, c in inspect.getmembers(plan_module, inspect.isclass) if dataclasses.is_dataclass(c)}
    classes = {c for c in classes if c.__module__ == plan_module.__name__}
    assert classes <= set(PLAN_CLASSES.values()), classes - set(PLAN_CLASSES.values())


@pytest.mark.parametrize("path", PLAYBOOKS, ids=lambda p: p.name)
def test_the_bundled_playbooks_cross_the_wire_unchanged(path: Path) -> None:
    plan = _closed(load_plan(path))
    again = _wire(plan)
    assert again == plan
    assert encode_plan(again) == encode_plan(plan)


_keys = st.text(max_size=8)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.text(max_size=20).map(UnsafeText),
    st.dates(),
    st.binary(max_size=10),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.one_of(_keys, st.just("!t"), st.integers(0, 9)), inner, max_size=4),
        st.frozensets(st.text(max_size=5), max_size=4),
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(args=st.dictionaries(_keys, _values, max_size=5), when=st.lists(st.text(max_size=10), max_size=3))
def test_any_values_survive_with_their_types(args: dict[str, Any], when: list[str]) -> None:
    task = TaskSpec(name="t", module="debug", args=args, when=tuple(when), tags=frozenset(when))
    block = BlockSpec(name="b", block=(task,), rescue=(task,), location=Location("pb.yml", 3, 5))
    plan = Plan(path="pb.yml", plays=(PlaySpec(name="p", hosts="all", tasks=(block, task), vars=args),))
    again = _wire(plan)
    assert again == plan
    got = again.plays[0].tasks[1]
    assert isinstance(got, TaskSpec)
    assert _types(got.args) == _types(args)


def _types(value: Any) -> Any:
    """The shape of a value with the exact type of every part (``==`` alone says ``(1,) != [1]`` but not
    ``UnsafeText('a') != 'a'``)."""
    if isinstance(value, dict):
        return {(type(k).__name__, k): _types(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return (type(value).__name__, [_types(v) for v in value])
    if isinstance(value, frozenset):
        return ("frozenset", sorted(map(repr, value)))
    return (type(value).__name__, value)


def _task_json(**fields: Any) -> dict[str, Any]:
    task = {"!t": "task", "f": {"name": "t", "module": "debug", "args": {}, **fields}}
    play = {"!t": "play", "f": {"name": "p", "hosts": "all", "tasks": {"!t": "tuple", "v": [task]}}}
    return {"!t": "plan", "f": {"path": "pb.yml", "plays": {"!t": "tuple", "v": [play]}}}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"!t": "os.system", "f": {}}, "unknown type tag 'os.system'"),
        ({"!t": "plan", "f": {"path": "x", "plays": {"!t": "tuple", "v": []}, "evil": 1}}, "no field 'evil'"),
        ({"!t": "plan", "f": {"path": "x"}}, "missing 1 required"),
        ({"!t": "plan", "f": {"path": 7, "plays": {"!t": "tuple", "v": []}}}, r"plan\.path: int is not"),
        ({"!t": "plan", "f": {"path": "x", "plays": ["not", "a", "tuple"]}}, r"plan\.plays: list is not"),
        (_task_json(retries=[1]), r"\.retries: list is not"),
        (_task_json(args={"!t": "bytes", "v": "%%%"}), "is not a bytes"),
        (_task_json(args={"!t": "map", "v": [[1]]}), "malformed tagged value"),
        (_task_json(args={"!t": "tuple", "v": [], "x": 1}), "malformed tagged value"),
        ({"!t": "task", "f": {"name": "t", "module": "m", "args": {}}}, "not a plan"),
        ([], "not a plan"),
    ],
)
def test_anything_but_a_plan_is_refused_saying_where(data: Any, message: str) -> None:
    with pytest.raises(PlanCodecError, match=message):
        decode_plan(data)


def test_hostile_nesting_is_refused_without_recursing_away() -> None:
    deep: Any = "x"
    for _ in range(MAX_DEPTH + 10):
        deep = [deep]
    with pytest.raises(PlanCodecError, match="nested more than"):
        decode_plan(_task_json(args={"deep": deep}))


def test_what_a_worker_cannot_receive_is_refused_when_encoding() -> None:
    task = TaskSpec(name="t", module="debug", args={"when": dt.time(12, 0)})
    with pytest.raises(PlanCodecError, match=r"args\.when: a time cannot be sent"):
        encode_plan(Plan(path="pb.yml", plays=(PlaySpec(name="p", hosts="all", tasks=(task,)),)))
