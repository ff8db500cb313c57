"""Validated, frozen playbook models. Every node remembers its file:line:column.

Values that are templated per host at run time (task names, module arguments, loop expressions, variables …)
are kept exactly as written — ``UnsafeText`` included — for ``orchestrator.templating.Templar`` to render.
Inheritable keywords (``when``, ``tags``, ``vars``, ``ignore_errors``, ``no_log`` …) are already combined
along play → block → import → task, so the executor reads the *effective* value straight off each ``Task``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator

from orchestrator.booleans import parse_boolean
from orchestrator.errors import Location
from orchestrator.templating import is_template


def _bool_or_template(value: Any) -> bool | str:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        if is_template(value):
            return value
        parsed = parse_boolean(value)
        if parsed is not None:
            return parsed
    raise ValueError(f"expected true or false (or a {{{{ template }}}}), got {value!r}")


def _strict_bool(value: Any) -> bool:
    result = _bool_or_template(value)
    if isinstance(result, str):
        raise ValueError(f"expected true or false, got {value!r} (templates are not allowed here)")
    return result


def _int_or_template(value: Any) -> int | str:
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"expected a whole number ≥ 0, got {value}")
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str):
        if is_template(value):
            return value
        if value.strip().isdigit():
            return int(value.strip())
    raise ValueError(f"expected a whole number (or a {{{{ template }}}}), got {value!r}")


def _number_or_template(value: Any) -> float | int | str:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"expected a number ≥ 0, got {value}")
        return value
    if isinstance(value, str):
        if is_template(value):
            return value
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            if number >= 0:
                return number
    raise ValueError(f"expected a number of seconds (or a {{{{ template }}}}), got {value!r}")


def _text(value: Any) -> Any:
    """A scalar kept as written (``UnsafeText`` stays unsafe); numbers become text."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    raise ValueError(f"expected text, got {type(value).__name__}")


def _keep(value: Any) -> Any:
    return value


BoolOrTemplate = Annotated[bool | str, PlainValidator(_bool_or_template)]
StrictBool = Annotated[bool, PlainValidator(_strict_bool)]
IntOrTemplate = Annotated[int | str, PlainValidator(_int_or_template)]
NumberOrTemplate = Annotated[float | int | str, PlainValidator(_number_or_template)]
Text = Annotated[str, PlainValidator(_text)]
Raw = Annotated[Any, PlainValidator(_keep)]
RawDict = Annotated[dict[str, Any], PlainValidator(_keep)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class Condition(_Frozen):
    """One ``when``/``changed_when``/``failed_when``/``until`` entry: a bare expression or a boolean."""

    expr: Raw  # str (maybe UnsafeText) | bool
    location: Location


class LoopControl(_Frozen):
    loop_var: str = "item"
    index_var: str | None = None
    label: Raw = None
    pause: NumberOrTemplate | None = None
    extended: StrictBool = False


# ``register`` is the Ansible keyword; pydantic warns that it shadows ``ABCMeta.register`` (harmless here).
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)

    class Task(_Frozen):
        """One module call. ``args`` are raw (free-form text already placed under the module's free-form key)."""

        kind: Literal["task"] = "task"
        location: Location
        file: str
        name: Text | None = None
        module: str  # canonical name from the catalogue
        module_as_written: str  # e.g. ansible.windows.win_command
        args: RawDict
        when: tuple[Condition, ...] = ()  # effective: inherited conditions first (all must hold)
        register: str | None = None
        loop: Raw = None  # list or template string; None = no loop
        loop_with: str | None = None  # one of keywords.LOOP_KEYWORDS (the loader checks)
        loop_control: LoopControl | None = None
        retries: IntOrTemplate | None = None  # Ansible: 3 when only ``until`` is given
        delay: NumberOrTemplate | None = None  # Ansible: 5 seconds
        until: tuple[Condition, ...] | None = None
        changed_when: tuple[Condition, ...] | None = None
        failed_when: tuple[Condition, ...] | None = None
        ignore_errors: BoolOrTemplate | None = None
        ignore_unreachable: BoolOrTemplate | None = None
        no_log: BoolOrTemplate | None = None
        check_mode: BoolOrTemplate | None = None
        diff: BoolOrTemplate | None = None
        timeout: IntOrTemplate | None = None
        any_errors_fatal: StrictBool | None = None
        notify: tuple[Text, ...] = ()
        listen: tuple[Text, ...] = ()  # handlers only
        tags: frozenset[str] = frozenset()  # effective (own ∪ inherited)
        vars: RawDict = Field(default_factory=dict)  # effective: block/import vars, then the task's own
        defaults: RawDict = Field(default_factory=dict)  # role defaults: below the inventory (Ansible's lowest)
        role: str | None = None  # the role the task comes from
        key_locations: dict[str, Location] = Field(default_factory=dict)

        def key_location(self, key: str) -> Location:
            """Where ``key`` was written (falls back to the task)."""
            return self.key_locations.get(key, self.location)


class Block(_Frozen):
    """``block``/``rescue``/``always``, or a statically imported task file (``origin``)."""

    kind: Literal["block"] = "block"
    location: Location
    file: str
    name: Text | None = None
    origin: Literal["block", "import_tasks", "include_tasks", "role", "include_role"] = "block"
    block: tuple[TaskNode, ...]
    rescue: tuple[TaskNode, ...] = ()
    always: tuple[TaskNode, ...] = ()
    when: tuple[Condition, ...] = ()  # effective (already part of every child's ``when``)
    tags: frozenset[str] = frozenset()
    vars: RawDict = Field(default_factory=dict)
    ignore_errors: BoolOrTemplate | None = None
    ignore_unreachable: BoolOrTemplate | None = None
    no_log: BoolOrTemplate | None = None
    check_mode: BoolOrTemplate | None = None
    diff: BoolOrTemplate | None = None
    timeout: IntOrTemplate | None = None
    any_errors_fatal: StrictBool | None = None
    loop: Raw = None  # include_tasks only: the tasks of the file run once per item (None = no loop)
    loop_with: str | None = None  # one of keywords.LOOP_KEYWORDS when there is a loop
    loop_control: LoopControl | None = None
    defaults: RawDict = Field(default_factory=dict)  # role defaults where the looped include is (for its loop)
    # a dynamic include_role: its own ``when`` (checked once per host and item, not given to the role's tasks)
    own_when: tuple[Condition, ...] = ()
    # one candidate role of a templated include_role: (argument, template, value) — run where all render so
    pick: tuple[tuple[str, Raw, str], ...] = ()
    key_locations: dict[str, Location] = Field(default_factory=dict)

    def key_location(self, key: str) -> Location:
        """Where ``key`` was written (falls back to the block)."""
        return self.key_locations.get(key, self.location)


TaskNode = Annotated[Task | Block, Field(discriminator="kind")]


class VarsFileRef(_Frozen):
    """One ``vars_files`` entry: a path, or a list of paths of which the first existing one is used.
    Paths may be templates; relative paths are relative to the play's file."""

    candidates: tuple[Raw, ...]
    location: Location


class VarPrompt(_Frozen):
    """One ``vars_prompt`` entry: asked on a terminal before the run (``-e name=…`` skips it)."""

    name: str
    prompt: Text | None = None
    default: Raw = None
    private: StrictBool = True
    confirm: StrictBool = False
    location: Location


class Play(_Frozen):
    location: Location
    file: str
    base_dir: Path
    name: Text | None = None
    hosts: Raw  # host pattern (text; may be a template)
    vars: RawDict = Field(default_factory=dict)
    vars_files: tuple[VarsFileRef, ...] = ()
    gather_facts: StrictBool | None = None
    serial: tuple[int | str, ...] | None = None  # batch sizes: ints or "30%" strings
    strategy: Literal["free", "linear"] | None = None
    pre_tasks: tuple[TaskNode, ...] = ()
    tasks: tuple[TaskNode, ...] = ()
    post_tasks: tuple[TaskNode, ...] = ()
    handlers: tuple[TaskNode, ...] = ()
    tags: frozenset[str] = frozenset()
    any_errors_fatal: StrictBool | None = None
    max_fail_percentage: float | None = None
    ignore_unreachable: BoolOrTemplate | None = None
    ignore_errors: BoolOrTemplate | None = None
    check_mode: BoolOrTemplate | None = None
    diff: BoolOrTemplate | None = None
    no_log: BoolOrTemplate | None = None
    timeout: IntOrTemplate | None = None
    wake_on_lan: StrictBool = False
    remote_user: Text | None = None  # the WinRM user when the host has no ansible_user
    vars_prompt: tuple[VarPrompt, ...] = ()
    key_locations: dict[str, Location] = Field(default_factory=dict)


class Playbook(_Frozen):
    path: Path
    plays: tuple[Play, ...]
    warnings: tuple[str, ...] = ()  # keywords accepted but ignored, escapes that changed a value, …


Block.model_rebuild()
