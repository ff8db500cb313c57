"""The compiled plan as JSON and back: what a distributed worker receives instead of the playbook's YAML.

Generic over the plan's frozen dataclasses: every field by name, recursing into tuples, lists, mappings,
frozensets and nested dataclasses, so a field added to a plan class travels without a change here. Each
dataclass is written ``{"!t": TAG, "f": {field: value}}`` with its tag from ``PLAN_CLASSES``, an explicit
registry: decoding never imports or looks up a class by a name read from the wire, only in that table.

Other shapes that JSON cannot tell apart are tagged too: ``tuple``, ``frozenset``, a mapping whose keys are
not all strings or that holds the tag key itself (``map``, a list of pairs), ``!unsafe`` text (``unsafe``:
never templated on the worker), and the YAML scalars ``date``/``datetime``/``bytes``. Everything else a plan
holds is a JSON scalar.

Decoding is strict: an unknown tag, an unknown field, a missing required field, a value whose type is not the
field's declared type (``typing.get_type_hints`` of the class), more than ``MAX_DEPTH`` levels or
``MAX_NODES`` values raise ``PlanCodecError`` saying where; the worker drops such a batch as poison.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import types
import typing
from collections.abc import Mapping
from typing import Any

from orchestrator.errors import KmsfleetError, Location
from orchestrator.executor.plan import BlockSpec, LoopSpec, Plan, PlaySpec, PromptSpec, TaskSpec, VarsFileSpec
from orchestrator.yamlsource import UnsafeText

TAG = "!t"
MAX_DEPTH = 200  # YAML nests far less; a guard against a hostile message's recursion
MAX_NODES = 2_000_000  # values in one decoded plan (a 16 MiB message holds fewer)

#: Every class a plan may hold, by its tag. A new plan dataclass must be added here (a unit test checks).
PLAN_CLASSES: Mapping[str, type[Any]] = types.MappingProxyType(
    {
        "plan": Plan,
        "play": PlaySpec,
        "block": BlockSpec,
        "task": TaskSpec,
        "loop": LoopSpec,
        "vars_file": VarsFileSpec,
        "prompt": PromptSpec,
        "location": Location,
    }
)
_TAG_OF = {cls: tag for tag, cls in PLAN_CLASSES.items()}


class PlanCodecError(KmsfleetError):
    """A plan that cannot be written as JSON, or JSON that is not a plan (the text says where and why)."""


# ------------------------------------------------------------------------------------------------ encode


def encode_plan(plan: Plan) -> dict[str, Any]:
    """``plan`` as JSON-ready values (``decode_plan`` is the inverse)."""
    out = _encode(plan, "plan", 0)
    assert isinstance(out, dict)
    return out


def _encode(value: Any, where: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise PlanCodecError(f"{where}: nested more than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, UnsafeText):
        return {TAG: "unsafe", "v": str(value)}
    if isinstance(value, str):
        return str(value)
    if type(value) in _TAG_OF:
        return _encode_dataclass(value, where, depth)
    return _encode_container(value, where, depth)


def _encode_container(value: Any, where: str, depth: int) -> Any:
    if isinstance(value, Mapping):
        return _encode_mapping(value, where, depth)
    if isinstance(value, tuple):
        return {TAG: "tuple", "v": [_encode(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, frozenset | set):
        items = sorted(value, key=repr)
        return {TAG: "frozenset", "v": [_encode(v, f"{where}{{}}", depth + 1) for v in items]}
    return _encode_scalar(value, where)


def _encode_dataclass(value: Any, where: str, depth: int) -> dict[str, Any]:
    fields = {
        f.name: _encode(getattr(value, f.name), f"{where}.{f.name}", depth + 1) for f in dataclasses.fields(value)
    }
    return {TAG: _TAG_OF[type(value)], "f": fields}


def _encode_mapping(value: Mapping[Any, Any], where: str, depth: int) -> dict[str, Any]:
    if all(isinstance(k, str) and not isinstance(k, UnsafeText) for k in value) and TAG not in value:
        return {str(k): _encode(v, f"{where}.{k}", depth + 1) for k, v in value.items()}
    pairs = [[_encode(k, where, depth + 1), _encode(v, f"{where}.{k}", depth + 1)] for k, v in value.items()]
    return {TAG: "map", "v": pairs}


def _encode_scalar(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, dt.datetime):
        return {TAG: "datetime", "v": value.isoformat()}
    if isinstance(value, dt.date):
        return {TAG: "date", "v": value.isoformat()}
    if isinstance(value, bytes):
        return {TAG: "bytes", "v": base64.b64encode(value).decode("ascii")}
    raise PlanCodecError(f"{where}: a {type(value).__name__} cannot be sent to a worker")


# ------------------------------------------------------------------------------------------------ decode


def decode_plan(data: Any) -> Plan:
    """The plan ``encode_plan`` wrote; ``PlanCodecError`` for anything else."""
    plan = _Decoder().value(data, "plan", 0)
    if not isinstance(plan, Plan):
        raise PlanCodecError("plan: not a plan")
    return plan


class _Decoder:
    def __init__(self) -> None:
        self.nodes = 0

    def value(self, data: Any, where: str, depth: int) -> Any:
        self.nodes += 1
        if depth > MAX_DEPTH or self.nodes > MAX_NODES:
            raise PlanCodecError(f"{where}: nested more than {MAX_DEPTH} levels or over {MAX_NODES} values")
        if data is None or isinstance(data, bool | int | float | str):
            return data
        if isinstance(data, list):
            return [self.value(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(data)]
        if not isinstance(data, dict):
            raise PlanCodecError(f"{where}: {type(data).__name__} is not a JSON value")
        if TAG not in data:
            return {k: self.value(v, f"{where}.{k}", depth + 1) for k, v in data.items()}
        return self.tagged(data, where, depth)

    def tagged(self, data: dict[str, Any], where: str, depth: int) -> Any:
        tag = data[TAG]
        if not isinstance(tag, str):  # a list or mapping as a tag must not reach the table look-ups (unhashable)
            raise PlanCodecError(f"{where}: a type tag must be text, not a {type(tag).__name__}")
        if tag in PLAN_CLASSES and set(data) == {TAG, "f"}:
            return self.dataclass(PLAN_CLASSES[tag], data["f"], where, depth)
        if set(data) != {TAG, "v"}:
            raise PlanCodecError(f"{where}: unknown type tag {str(tag)[:40]!r} or malformed tagged value")
        raw = data["v"]
        if tag in _SCALARS:
            if not isinstance(raw, str):
                raise PlanCodecError(f"{where}: a {tag} needs text")
            try:
                return _SCALARS[tag](raw)
            except ValueError:
                raise PlanCodecError(f"{where}: {raw[:40]!r} is not a {tag}") from None
        if not isinstance(raw, list):
            raise PlanCodecError(f"{where}: unknown type tag {str(tag)[:40]!r} or malformed tagged value")
        items = [self.value(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(raw)]
        return self.collection(tag, items, where)

    def collection(self, tag: Any, items: list[Any], where: str) -> Any:
        if tag == "tuple":
            return tuple(items)
        try:
            if tag == "frozenset":
                return frozenset(items)
            if tag == "map" and all(isinstance(p, list) and len(p) == 2 for p in items):
                return {k: v for k, v in items}
        except TypeError:
            raise PlanCodecError(f"{where}: a {tag} of values that cannot be keys") from None
        raise PlanCodecError(f"{where}: unknown type tag {str(tag)[:40]!r} or malformed tagged value")

    def dataclass(self, cls: type[Any], fields: Any, where: str, depth: int) -> Any:
        if not isinstance(fields, dict):
            raise PlanCodecError(f"{where}: the fields of a {cls.__name__} must be a mapping")
        hints = _hints(cls)
        unknown = sorted(set(fields) - set(hints))
        if unknown:
            raise PlanCodecError(f"{where}: {cls.__name__} has no field {unknown[0][:40]!r}")
        values = {}
        for name, raw in fields.items():
            value = self.value(raw, f"{where}.{name}", depth + 1)
            if not _conforms(value, hints[name]):
                raise PlanCodecError(f"{where}.{name}: {type(value).__name__} is not a {hints[name]}")
            values[name] = value
        try:
            return cls(**values)
        except TypeError as exc:  # a required field missing
            raise PlanCodecError(f"{where}: {exc}") from None


_SCALARS: Mapping[str, Any] = {
    "unsafe": UnsafeText,
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "bytes": lambda text: base64.b64decode(text, validate=True),
}


_HINTS: dict[str, dict[str, Any]] = {}  # tag -> the declared type of each field (resolved once)


def _hints(cls: type[Any]) -> dict[str, Any]:
    tag = _TAG_OF[cls]
    if tag not in _HINTS:
        names = {f.name for f in dataclasses.fields(cls)}
        _HINTS[tag] = {k: v for k, v in typing.get_type_hints(cls).items() if k in names}
    return _HINTS[tag]


def _conforms(value: Any, hint: Any) -> bool:
    """``value`` has the shape of the declared type ``hint`` (tuples and frozensets checked item by item;
    ``Any`` and unparameterised types accept what their origin accepts)."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, arg) for arg in typing.get_args(hint))
    if origin is None:
        return _is_instance(value, hint)
    return isinstance(value, origin) and _items_conform(value, origin, typing.get_args(hint))


def _is_instance(value: Any, hint: Any) -> bool:
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:  # JSON's true is Python's bool, an int subclass: a declared int is never a flag
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(hint, type) and isinstance(value, hint)


def _items_conform(value: Any, origin: Any, args: tuple[Any, ...]) -> bool:
    if origin is tuple and args:
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_conforms(v, args[0]) for v in value)
        return len(args) == len(value) and all(_conforms(v, a) for v, a in zip(value, args, strict=True))
    if origin is frozenset and args:
        return all(_conforms(v, args[0]) for v in value)
    return True
