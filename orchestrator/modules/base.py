"""What every module is: a small class with a pydantic argument model, registered under its name.

Arguments are validated before any host is contacted (``check_args``, used by the playbook loader) and again,
fully typed, after templating on each host (``parse_args``). A module's ``run`` gets a ``ModuleContext``
(the host's connection, check mode, clocks) and returns a ``ModuleOutcome``; transport errors propagate to the
host pipeline, which turns them into ``unreachable``/``failed`` in one place.

Licensing modules follow gather → plan → apply → verify (see ``modules.licensing``).
"""

from __future__ import annotations

import difflib
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from orchestrator.results.models import LicenceRecord
from orchestrator.transport.winrm import WinRMConnection

JINJA_MARKERS = ("{{", "{%")


class ModuleArgs(BaseModel):
    """Base of every module's argument model: unknown arguments are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


A = TypeVar("A", bound=ModuleArgs)


class TaskFailed(Exception):
    """A module's way to fail a task with a code and diagnosis (e.g. an activation error)."""

    def __init__(
        self,
        msg: str,
        *,
        error_code: int | None = None,
        diagnosis: str | None = None,
        data: Mapping[str, Any] | None = None,
        licences: tuple[LicenceRecord, ...] = (),
    ) -> None:
        self.msg = msg
        self.error_code = error_code
        self.diagnosis = diagnosis
        self.data = dict(data or {})
        self.licences = licences
        super().__init__(msg)


@dataclass
class ModuleOutcome:
    changed: bool = False
    failed: bool = False
    skipped: bool = False
    msg: str = ""
    error_code: int | None = None
    diagnosis: str | None = None
    data: dict[str, Any] = field(default_factory=dict)  # what `register` sees (besides changed/failed/msg)
    facts: dict[str, Any] = field(default_factory=dict)  # merged into the host's variables (ansible_facts)
    diff: dict[str, Any] | None = None
    licences: tuple[LicenceRecord, ...] = ()


@dataclass
class ModuleContext:
    """Everything a module may use on one host."""

    host: str
    hostvars: Mapping[str, Any]
    check_mode: bool
    diff: bool
    connect: Callable[[], WinRMConnection]
    cancel: threading.Event
    verbosity: int = 0
    log: Callable[[str], None] = lambda _msg: None
    controller_now: Callable[[], datetime] = lambda: datetime.now(UTC)
    base_dir: str = "."
    #: the file the task is written in (include_vars reads a relative ``dir`` beside it); "" means the playbook
    task_file: str = ""
    render: Callable[[Any], Any] = lambda value: value  # template a value in the task's variable scope
    evaluate: Callable[[Any], bool] = bool  # evaluate a `when`-style condition in the task's scope
    #: template a value in the task's scope plus extra variables (win_template's ansible_managed, template_path …)
    render_with: Callable[[Any, Mapping[str, Any]], Any] = lambda value, _extra: value

    @property
    def conn(self) -> WinRMConnection:
        return self.connect()


class Module(ABC, Generic[A]):
    name: ClassVar[str]
    args_model: ClassVar[type[ModuleArgs]]
    free_form: ClassVar[str | None] = None  # argument receiving free-form text (`win_command: whoami`)
    supports_check: ClassVar[bool] = False
    #: known only to be refused with a reason when a playbook is loaded (win_updates …); not listed as runnable
    refused: ClassVar[bool] = False
    uses_connection: ClassVar[bool] = True
    description: ClassVar[str] = ""

    @abstractmethod
    def run(self, ctx: ModuleContext, args: A) -> ModuleOutcome: ...

    # -------- argument checking (static, before connecting)

    @classmethod
    def check_args(cls, args: Mapping[str, Any]) -> list[str]:
        """Problems with ``args`` as written in the playbook. Values holding Jinja2 are not type-checked."""
        problems: list[str] = []
        fields = cls.args_model.model_fields
        names = list(fields)
        aliases = {f.alias: n for n, f in fields.items() if f.alias}
        for key in args:
            if key not in fields and key not in aliases:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f" — did you mean '{close[0]}'?" if close else ""
                expected = f" (expected one of: {', '.join(names)})" if names else " (this module takes no arguments)"
                problems.append(f"unknown argument '{key}'{expected}{hint}")
        for name, info in fields.items():
            key = info.alias or name
            if info.is_required() and key not in args and name not in args:
                problems.append(f"missing required argument '{key}'")
                continue
            value = args.get(key, args.get(name))
            if value is None or _has_template(value):
                continue
            try:
                TypeAdapter(info.annotation or Any).validate_python(value)
            except ValidationError as exc:
                problems.append(f"argument '{key}': {exc.errors()[0]['msg']}")
        if not problems:
            static = {k: v for k, v in args.items() if not _has_template(v)}
            if len(static) == len(args):
                try:
                    cls.args_model.model_validate(dict(args))
                except ValidationError as exc:
                    err = exc.errors()[0]
                    where = ".".join(str(p) for p in err["loc"])
                    problems.append(f"{where + ': ' if where else ''}{err['msg'].removeprefix('Value error, ')}")
        return problems

    @classmethod
    def parse_args(cls, args: Mapping[str, Any]) -> ModuleArgs:
        """Validate fully-templated arguments. Raises ``ValueError`` with a readable message."""
        try:
            return cls.args_model.model_validate(dict(args))
        except ValidationError as exc:
            parts = []
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"])
                msg = err["msg"].removeprefix("Value error, ")
                if err["type"] == "extra_forbidden":
                    msg = "unknown argument"
                parts.append(f"{where}: {msg}" if where else msg)
            raise ValueError("; ".join(parts)) from None


def _has_template(value: Any) -> bool:
    if isinstance(value, str):
        return any(m in value for m in JINJA_MARKERS)
    if isinstance(value, Mapping):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_template(v) for v in value)
    return False


class _Registry:
    """Modules by name. Implements the playbook loader's ``ModuleCatalog`` protocol."""

    def __init__(self) -> None:
        self._modules: dict[str, type[Module[Any]]] = {}

    def register(self, cls: type[Module[Any]]) -> type[Module[Any]]:
        if cls.name in self._modules:
            raise ValueError(f"module {cls.name!r} is registered twice")
        self._modules[cls.name] = cls
        return cls

    def get(self, name: str) -> type[Module[Any]] | None:
        _load_builtin_modules()
        return self._modules.get(name)

    def names(self) -> Iterable[str]:
        _load_builtin_modules()
        return sorted(self._modules)


REGISTRY = _Registry()
M = TypeVar("M", bound=type[Module[Any]])


def register(cls: M) -> M:
    REGISTRY.register(cls)
    return cls


_loaded = False
_load_lock = threading.Lock()


def _load_builtin_modules() -> None:
    """Import the built-in modules once (thread-safe: hosts look modules up from many threads)."""
    global _loaded
    if _loaded:
        return
    with _load_lock:
        if _loaded:
            return
        _import_builtins()
        _loaded = True


def _import_builtins() -> None:
    import importlib

    for name in BUILTIN_MODULES:
        importlib.import_module(name)


BUILTIN_MODULES = (
    "orchestrator.modules.generic",
    "orchestrator.modules.windows",
    "orchestrator.modules.wmi_modules",
    "orchestrator.modules.win_service",
    "orchestrator.modules.win_registry",
    "orchestrator.modules.win_misc",
    "orchestrator.modules.win_powershell",
    "orchestrator.modules.win_files",
    "orchestrator.modules.include_vars",
    "orchestrator.modules.licensing",
)
