"""``load_playbook(path, catalog, roles_path)``: YAML → validated ``Playbook``, entirely before any host is
contacted. Roles (``roles:``, ``import_role``/``include_role``, meta dependencies) are read here too, statically.

Every problem is collected in one pass (at most ``MAX_ERRORS`` listed) and raised together as ``PlaybookErrors``.
Everything a typo can break fails here with file:line:column and a did-you-mean: unknown play/task keywords,
unknown modules (``ansible.windows.win_command`` and other FQCNs resolve to the short name), two modules in
one task or none, bad types (``retries: many``), module arguments (checked by the catalogue), Jinja2 syntax in
every templated string (compiled, not rendered), ``register`` names, ``notify`` targets, missing task and
vars files, and ``import_playbook``/``import_tasks`` cycles.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from orchestrator.booleans import boolean, parse_boolean
from orchestrator.errors import InputError, Location
from orchestrator.playbook import keywords as kw
from orchestrator.playbook.catalog import ModuleCatalog, ModuleSpec, did_you_mean
from orchestrator.playbook.dynamic_roles import ROLE_ARGS, candidates, role_arg, static_scopes
from orchestrator.playbook.kv import KVError, parse_kv
from orchestrator.playbook.loops import LoopSpec
from orchestrator.playbook.models import Block, Condition, LoopControl, Play, Playbook, Task, VarPrompt, VarsFileRef
from orchestrator.playbook.roles import RoleDir, find_role, role_dependencies, role_file, role_vars_file
from orchestrator.playbook.varsfiles import vars_file_missing
from orchestrator.templating import check_template, is_template
from orchestrator.varsfile import check_vars, load_vars_file
from orchestrator.yamlsource import LocatedDict, LocatedList, UnsafeText, load_yaml_file, location_of

_M = TypeVar("_M", bound=BaseModel)
#: did-you-mean only for really close words (difflib ratio): 'win_service' is not a typo of 'win_shell'
_CLOSE = 0.8
_RESERVED_NAMES = frozenset({"True", "False", "None", "and", "or", "not", "in", "is", "if", "else", "for"})


@dataclass(frozen=True)
class _Inherit:
    """Values flowing from play → block → import → task."""

    when: tuple[Condition, ...] = ()
    tags: frozenset[str] = frozenset()
    vars: Mapping[str, Any] = field(default_factory=dict)
    values: Mapping[str, Any] = field(default_factory=dict)  # kw.INHERITED keys that are set
    defaults: Mapping[str, Any] = field(default_factory=dict)  # role defaults (the lowest precedence)
    role: str | None = None


#: at most this many problems are listed (then "… and N more")
MAX_ERRORS = 50


class PlaybookErrors(InputError):
    """Every problem found in one pass over a playbook (the first one is this error's location and message)."""

    def __init__(self, errors: list[InputError], total: int) -> None:
        self.errors = errors
        self.total = total
        first = errors[0]
        super().__init__(first.message, first.location, first.hint)

    def render(self) -> str:
        parts = [InputError.render(e) for e in self.errors]
        if self.total > len(self.errors):
            parts.append(f"… and {self.total - len(self.errors)} more")
        if self.total > 1:
            parts.append(f"{self.total} problems found in the playbook")
        return "\n".join(parts)


def load_playbook(
    path: str | Path,
    catalog: ModuleCatalog,
    roles_path: Iterable[Path] = (),
    extra_vars: Mapping[str, Any] | None = None,
) -> Playbook:
    """Load, resolve imports and roles of, and validate a playbook. Raises ``InputError`` listing every
    problem found (``PlaybookErrors`` when there are several). ``extra_vars`` (``-e``) are seen only by
    templated role names and ``*_from`` files (the roles a run may need are read now)."""
    loader = _Loader(catalog, tuple(roles_path), extra_vars or {})
    file = Path(path)
    plays = loader.load_plays(file, (), frozenset(), {}, None)
    loader.raise_errors()
    if not plays:
        raise InputError("the playbook has no plays", Location(str(file)))
    return Playbook(path=file, plays=tuple(plays), warnings=tuple(loader.warnings))


class _Loader:
    def __init__(
        self, catalog: ModuleCatalog, roles_path: tuple[Path, ...] = (), extra_vars: Mapping[str, Any] | None = None
    ) -> None:
        self.catalog = catalog
        self.extra_vars = dict(extra_vars or {})
        self.roles_path = roles_path
        self.warnings: list[str] = []
        self._module_names: list[str] | None = None
        self.errors: list[InputError] = []
        self.error_count = 0
        self._seen_errors: set[str] = set()
        self._play_dir = Path(".")
        self._role_handlers: list[Task | Block] = []
        self._public_defaults: dict[str, Any] = {}  # roles:/import_role defaults and vars: visible play-wide
        self._public_vars: dict[str, Any] = {}
        self._public = True  # include_role is private (Ansible's ``public: false`` default)
        self._roles_done: set[tuple[str, str, str]] = set()
        self._role_stack: tuple[Path, ...] = ()
        self._handler_files: set[str] = set()
        self._play_vars: Mapping[str, Any] = {}  # the current play's vars (include_role templates, before the run)

    # ------------------------------------------------------------------------------------------- errors

    def add_error(self, exc: InputError) -> None:
        if isinstance(exc, PlaybookErrors):
            for one in exc.errors:
                self.add_error(one)
            return
        key = exc.render()
        if key in self._seen_errors:
            return
        self._seen_errors.add(key)
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(exc)

    def raise_errors(self) -> None:
        if self.errors:
            raise PlaybookErrors(self.errors, self.error_count)

    # ------------------------------------------------------------------------------------------- playbooks

    def load_plays(
        self,
        file: Path,
        stack: tuple[Path, ...],
        tags: frozenset[str],
        import_vars: Mapping[str, Any],
        at: Location | None,
    ) -> list[Play]:
        resolved = file.resolve()
        if resolved in stack:
            chain = " → ".join(p.name for p in (*stack[stack.index(resolved) :], resolved))
            raise InputError(f"import_playbook loop: {chain}", at)
        if at is not None and not file.is_file():
            raise InputError(f"imported playbook not found: {file}", at)
        data = load_yaml_file(file)
        name = str(file)
        if data is None:
            raise InputError("the playbook is empty", Location(name))
        if not isinstance(data, list):
            hint = "a playbook is a list of plays: start each play with '- name:' or '- hosts:'"
            raise InputError(f"a playbook must be a list of plays, not {_kind(data)}", _loc(data, name), hint)
        plays: list[Play] = []
        for index, item in enumerate(data):
            where = data.item_locations[index] if isinstance(data, LocatedList) else Location(name)
            if not isinstance(item, dict):
                raise InputError(f"each play must be a mapping, not {_kind(item)}", where)
            imported = [k for k in item if _short(k) == "import_playbook"]
            try:
                if imported:
                    plays.extend(self._import_playbook(item, imported[0], file, (*stack, resolved), tags, import_vars))
                else:
                    plays.append(self.parse_play(item, file, tags, import_vars))
            except InputError as exc:
                self.add_error(exc)
        return plays

    def _import_playbook(
        self,
        raw: dict[str, Any],
        key: str,
        file: Path,
        stack: tuple[Path, ...],
        tags: frozenset[str],
        import_vars: Mapping[str, Any],
    ) -> list[Play]:
        allowed = {key, "name", "tags", "vars"}
        for other in raw:
            if other not in allowed:
                hint = did_you_mean(other, allowed)
                raise InputError(
                    f"'{other}' is not allowed on import_playbook (only name, tags, vars)",
                    _key_loc(raw, other, file),
                    hint=f"did you mean '{hint}'?" if hint else None,
                )
        target = raw[key]
        at = _key_loc(raw, key, file)
        if not isinstance(target, str) or not target.strip():
            raise InputError("import_playbook needs a file name", at)
        if is_template(target):
            raise InputError("import_playbook file names cannot be templates (imports are resolved before the run)", at)
        own_tags = self._tags(raw, file)
        own_vars = self._vars(raw, file)
        return self.load_plays(file.parent / target, stack, tags | own_tags, {**import_vars, **own_vars}, at)

    # ------------------------------------------------------------------------------------------- plays

    def parse_play(self, raw: dict[str, Any], file: Path, tags: frozenset[str], import_vars: Mapping[str, Any]) -> Play:
        name = str(file)
        errors_before = self.error_count
        for key in raw:
            try:
                self._check_keyword(raw, key, file, kw.PLAY_KEYWORDS, "play")
            except InputError as exc:
                self.add_error(exc)
        if "hosts" not in raw:
            hint = "add 'hosts: all' (or a group) to the play"
            if "tasks" not in raw and any(self._module(k) for k in raw):
                hint = "this looks like a task: put it under a play's 'tasks:'"
            raise InputError("the play has no 'hosts'", _loc(raw, name), hint)
        hosts = self._hosts(raw["hosts"], _key_loc(raw, "hosts", file))
        play_vars = {**self._vars(raw, file), **import_vars}
        self._play_vars = play_vars
        own_tags = self._tags(raw, file) | tags
        values = {k: raw[k] for k in kw.INHERITED if k in raw and raw[k] is not None}
        inherit = _Inherit(tags=own_tags, values=self._validated_inherited(values, raw, file))
        self._play_dir = file.parent
        self._role_handlers = []
        self._public_defaults = {}
        self._public_vars = {}
        self._roles_done = set()
        self._handler_files = set()
        sections = self._play_sections(raw, file, inherit)
        remote_user = self._remote_user(raw, file)
        prompts = self._collecting(lambda: self._vars_prompt(raw, file), ())
        fields: dict[str, Any] = {
            "location": _loc(raw, name),
            "file": name,
            "base_dir": file.parent,
            "name": raw.get("name"),
            "hosts": hosts,
            "vars": play_vars,
            "vars_files": self._collecting(lambda: self._vars_files(raw, file), ()),
            "remote_user": remote_user,
            "vars_prompt": prompts,
            "tags": own_tags,
            "key_locations": _key_locations(raw),
            **sections,
        }
        fields.update(self._play_options(raw, file))
        self._check_strings(raw.get("name"), _key_loc(raw, "name", file))
        self._check_strings(hosts, _key_loc(raw, "hosts", file))
        play = self._build(Play, fields, raw, file)
        if self.error_count == errors_before:  # notify targets are only meaningful when every task was read
            self._check_notify(play)
        return play

    def _play_sections(self, raw: dict[str, Any], file: Path, inherit: _Inherit) -> dict[str, Any]:
        """pre_tasks, tasks (the play's roles first), post_tasks and handlers (the roles' last), each read on
        its own so one section's error does not hide another's."""
        sections: dict[str, Any] = {}
        for section in ("pre_tasks", "tasks", "post_tasks", "handlers"):
            try:
                sections[section] = self.parse_tasks(
                    raw.get(section), raw, section, file, inherit, (), section == "handlers"
                )
            except InputError as exc:
                self.add_error(exc)
                sections[section] = ()
            if section == "pre_tasks" and raw.get("roles") is not None:
                # Ansible runs the play's roles after pre_tasks and before tasks
                sections["roles"] = self._collecting(lambda: self._play_roles(raw, file, inherit), ())
        sections["tasks"] = (*sections.pop("roles", ()), *sections["tasks"])
        sections["handlers"] = (*sections["handlers"], *self._role_handlers)
        if self._public_defaults or self._public_vars:
            for section in ("pre_tasks", "tasks", "post_tasks", "handlers"):
                sections[section] = tuple(
                    _with_public_role_vars(n, self._public_defaults, self._public_vars) for n in sections[section]
                )
        return sections

    def _play_options(self, raw: dict[str, Any], file: Path) -> dict[str, Any]:
        """The play keywords that take a value as written (strategy checked), serial and max_fail_percentage."""
        fields: dict[str, Any] = {}
        for key in ("gather_facts", "strategy", "any_errors_fatal", "wake_on_lan", *kw.INHERITED):
            if key in raw and raw[key] is not None:
                fields[key] = raw[key]
        if "serial" in raw and raw["serial"] is not None:
            fields["serial"] = self._serial(raw["serial"], _key_loc(raw, "serial", file))
        if "max_fail_percentage" in raw and raw["max_fail_percentage"] is not None:
            fields["max_fail_percentage"] = self._percentage(
                raw["max_fail_percentage"], _key_loc(raw, "max_fail_percentage", file)
            )
        if isinstance(raw.get("strategy"), str) and raw["strategy"] not in ("free", "linear"):
            raise InputError(
                f"unknown strategy '{raw['strategy']}' (kmsfleet has 'free' and 'linear')",
                _key_loc(raw, "strategy", file),
            )
        return fields

    def _collecting(self, fn: Any, default: Any) -> Any:
        """``fn()``, or ``default`` after recording its error (so the pass goes on and finds the others)."""
        try:
            return fn()
        except InputError as exc:
            self.add_error(exc)
            return default

    def _remote_user(self, raw: dict[str, Any], file: Path) -> Any:
        keys = [k for k in ("remote_user", "user") if raw.get(k) is not None]
        if not keys:
            return None
        value = raw[keys[0]]
        at = _key_loc(raw, keys[0], file)
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"'{keys[0]}' must be a user name (the WinRM account)", at)
        self._check_strings(value, at)
        return value

    def _vars_prompt(self, raw: dict[str, Any], file: Path) -> tuple[VarPrompt, ...]:
        value = raw.get("vars_prompt")
        if value is None:
            return ()
        at = _key_loc(raw, "vars_prompt", file)
        if not isinstance(value, list):
            raise InputError("'vars_prompt' must be a list of prompts (- name: …  prompt: …)", at)
        allowed = ("name", "prompt", "default", "private", "confirm", "encrypt", "salt_size", "salt", "unsafe")
        out: list[VarPrompt] = []
        for index, item in enumerate(value):
            where = value.item_locations[index] if isinstance(value, LocatedList) else at
            if not isinstance(item, dict) or "name" not in item:
                raise InputError("each vars_prompt entry needs a 'name'", where)
            for key in item:
                if key not in allowed:
                    suggestion = did_you_mean(key, allowed, cutoff=0.8)
                    raise InputError(
                        f"unknown vars_prompt key '{key}'" + (f" — did you mean '{suggestion}'?" if suggestion else ""),
                        _key_loc(item, key, file),
                    )
            if "encrypt" in item:
                raise InputError(
                    "vars_prompt 'encrypt' is not supported (kmsfleet has no passlib hashing)",
                    _key_loc(item, "encrypt", file),
                )
            self._identifier(item["name"], _key_loc(item, "name", file), "name")
            fields = {k: item[k] for k in ("name", "prompt", "default", "private", "confirm") if k in item}
            out.append(self._build(VarPrompt, {**fields, "location": where}, item, file))
        return tuple(out)

    def _hosts(self, value: Any, at: Location) -> Any:
        if isinstance(value, list):
            if not value or not all(isinstance(v, str) and v.strip() for v in value):
                raise InputError("'hosts' must be a host pattern or a list of them", at)
            return ",".join(v.strip() for v in value)
        if not isinstance(value, str) or not value.strip():
            raise InputError("'hosts' must be a host pattern like 'all', 'room101' or 'room101:!pc05'", at)
        return value.strip() if not isinstance(value, UnsafeText) else value

    def _serial(self, value: Any, at: Location) -> tuple[int | str, ...]:
        items = value if isinstance(value, list) else [value]
        if not items:
            raise InputError("'serial' must not be an empty list", at)
        out: list[int | str] = []
        for item in items:
            if isinstance(item, int) and not isinstance(item, bool) and item >= 0:
                out.append(item)
                continue
            if isinstance(item, str):
                text = item.strip()
                if text.isdigit():
                    out.append(int(text))
                    continue
                if text.endswith("%") and _is_number(text[:-1]) and 0 < float(text[:-1]) <= 100:
                    out.append(text)
                    continue
            raise InputError(
                f"'serial' must be a number of hosts, a percentage like '30%', or a list of those; got {item!r}", at
            )
        return tuple(out)

    def _percentage(self, value: Any, at: Location) -> float:
        text = str(value).strip().rstrip("%") if isinstance(value, str) else value
        if isinstance(text, str) and _is_number(text):
            text = float(text)
        if isinstance(text, bool) or not isinstance(text, int | float) or not 0 <= text <= 100:
            raise InputError(f"'max_fail_percentage' must be a number from 0 to 100, got {value!r}", at)
        return float(text)

    def _vars_files(self, raw: dict[str, Any], file: Path) -> tuple[VarsFileRef, ...]:
        if "vars_files" not in raw or raw["vars_files"] is None:
            return ()
        value = raw["vars_files"]
        at = _key_loc(raw, "vars_files", file)
        items = value if isinstance(value, list) else [value]
        refs: list[VarsFileRef] = []
        for index, item in enumerate(items):
            where = value.item_locations[index] if isinstance(value, LocatedList) else at
            candidates = item if isinstance(item, list) else [item]
            if not candidates or not all(isinstance(c, str) and c.strip() for c in candidates):
                raise InputError("each vars_files entry must be a file name (or a list of alternatives)", where)
            for c in candidates:
                self._check_strings(c, where)
            static = [c for c in candidates if not is_template(c)]
            if len(static) == len(candidates):
                paths = [file.parent / c for c in candidates]
                found = next((p for p in paths if p.is_file()), None)
                if found is None:
                    raise vars_file_missing(paths, candidates, where)
                load_vars_file(found)  # validate now; loaded again per run by load_vars_files()
            refs.append(VarsFileRef(candidates=tuple(candidates), location=where))
        return tuple(refs)

    # ------------------------------------------------------------------------------------------- tasks

    def parse_tasks(
        self,
        value: Any,
        parent: dict[str, Any],
        section: str,
        file: Path,
        inherit: _Inherit,
        stack: tuple[Path, ...],
        handlers: bool,
    ) -> tuple[Task | Block, ...]:
        if value is None:
            return ()
        at = _key_loc(parent, section, file)
        if not isinstance(value, list):
            raise InputError(
                f"'{section}' must be a list of tasks, not {_kind(value)}", at, hint="start each task with '- name:'"
            )
        nodes: list[Task | Block] = []
        for index, item in enumerate(value):
            where = value.item_locations[index] if isinstance(value, LocatedList) else at
            if not isinstance(item, dict):
                hint = "a task is a mapping such as '- win_command: whoami'"
                if isinstance(item, str):
                    hint = f"did you mean '- {item}:' (a module call) or '- name: {item}' followed by a module?"
                self.add_error(InputError(f"each task must be a mapping, not {_kind(item)}", where, hint))
                continue
            try:
                nodes.append(self.parse_node(item, file, inherit, stack, handlers))
            except InputError as exc:
                self.add_error(exc)
        return tuple(nodes)

    def parse_node(
        self, raw: dict[str, Any], file: Path, inherit: _Inherit, stack: tuple[Path, ...], handlers: bool
    ) -> Task | Block:
        if any(k in raw for k in ("block", "rescue", "always")):
            return self._block(raw, file, inherit, stack, handlers)
        role_imports = [k for k in raw if _short(k) in kw.ROLE_IMPORTS]
        if role_imports:
            return self._import_role(raw, role_imports[0], file, inherit, stack, handlers)
        imports = [k for k in raw if _short(k) in kw.IMPORT_TASKS]
        if imports:
            return self._import_tasks(raw, imports, file, inherit, stack, handlers)
        return self._task(raw, file, inherit, handlers)

    def _child_inherit(self, raw: dict[str, Any], file: Path, inherit: _Inherit) -> _Inherit:
        own = {k: raw[k] for k in kw.INHERITED if k in raw and raw[k] is not None}
        return _Inherit(
            when=inherit.when + self._conditions(raw, "when", file),
            tags=inherit.tags | self._tags(raw, file),
            vars={**inherit.vars, **self._vars(raw, file)},
            values={**inherit.values, **self._validated_inherited(own, raw, file)},
            defaults=inherit.defaults,
            role=inherit.role,
        )

    def _block(
        self, raw: dict[str, Any], file: Path, inherit: _Inherit, stack: tuple[Path, ...], handlers: bool
    ) -> Block:
        name = str(file)
        for key in raw:
            if key not in kw.BLOCK_KEYWORDS and self._module(key) is not None:
                raise InputError(
                    f"a block cannot call a module ('{key}')",
                    _key_loc(raw, key, file),
                    hint="put the module in a task inside 'block:'",
                )
            self._check_keyword(raw, key, file, kw.BLOCK_KEYWORDS, "block")
        if "block" not in raw:
            missing = "rescue" if "rescue" in raw else "always"
            raise InputError(f"'{missing}' needs a 'block' in the same task", _key_loc(raw, missing, file))
        self._check_strings(raw.get("name"), _key_loc(raw, "name", file))
        child = self._child_inherit(raw, file, inherit)
        fields: dict[str, Any] = {
            "location": _loc(raw, name),
            "file": name,
            "name": raw.get("name"),
            "origin": "block",
            "when": child.when,
            "tags": child.tags,
            "vars": dict(child.vars),
            "key_locations": _key_locations(raw),
            **child.values,
        }
        for section in ("block", "rescue", "always"):
            fields[section] = self.parse_tasks(raw.get(section), raw, section, file, child, stack, handlers)
        return self._build(Block, fields, raw, file)

    def _import_tasks(
        self,
        raw: dict[str, Any],
        imports: list[str],
        file: Path,
        inherit: _Inherit,
        stack: tuple[Path, ...],
        handlers: bool,
    ) -> Block:
        key = imports[0]
        at = _key_loc(raw, key, file)
        if len(imports) > 1:
            raise InputError("a task can import only one task file", _key_loc(raw, imports[1], file))
        loops = [k for k in raw if k in kw.LOOP_KEYWORDS]
        self._check_import_keywords(raw, key, file)
        found = _task_file(raw[key], _short(key), at, file, stack)
        resolved = found.resolve()
        chain = stack or (file.resolve(),)
        if resolved in chain:
            names = " → ".join(p.name for p in (*chain[chain.index(resolved) :], resolved))
            raise InputError(f"{_short(key)} loop: {names}", at)
        data = load_yaml_file(found)
        child = self._child_inherit(raw, file, inherit)
        nested = {"tasks": data}
        tasks = self.parse_tasks(data, nested, "tasks", found, child, (*chain, resolved), handlers)
        fields: dict[str, Any] = {
            "location": _loc(raw, str(file)),
            "file": str(file),
            "name": raw.get("name"),
            "origin": _short(key),
            "block": tasks,
            "when": child.when,
            "tags": child.tags,
            "vars": dict(child.vars),
            "key_locations": _key_locations(raw),
            **child.values,
        }
        if len(loops) > 1:
            raise InputError("a task can have only one loop", _key_loc(raw, loops[1], file))
        if loops and handlers:
            raise InputError("a handler cannot include_tasks with a loop", _key_loc(raw, loops[0], file))
        if loops:
            fields["defaults"] = dict(child.defaults)
            fields.update(self._include_loop(raw, loops[0], file))
        elif "loop_control" in raw:
            at_lc = _key_loc(raw, "loop_control", file)
            raise InputError("'loop_control' needs a 'loop' on the same include_tasks", at_lc)
        return self._build(Block, fields, raw, file)

    def _include_loop(self, raw: dict[str, Any], loop_key: str, file: Path) -> dict[str, Any]:
        """The loop fields of an include_tasks with a loop (and its loop_control)."""
        fields: dict[str, Any] = {
            "loop_with": loop_key,
            "loop": self._loop(raw[loop_key], loop_key, _key_loc(raw, loop_key, file)),
        }
        if raw.get("loop_control") is not None:
            lc_at = _key_loc(raw, "loop_control", file)
            fields["loop_control"] = self._loop_control(raw["loop_control"], lc_at, file)
        return fields

    def _check_import_keywords(self, raw: dict[str, Any], key: str, file: Path) -> None:
        """The keywords beside import_tasks/include_tasks: loops only on include_tasks, no 'apply'."""
        include = _short(key) == "include_tasks"
        for other in raw:
            if other == key or (include and other in (*kw.LOOP_KEYWORDS, "loop_control")):
                continue
            if other in kw.LOOP_KEYWORDS or other.startswith("with_") or other == "loop_control":
                if include:
                    raise InputError(
                        f"'{other}' is not supported on include_tasks",
                        _key_loc(raw, other, file),
                        hint='use loop: (e.g. loop: "{{ my_list }}", or "{{ my_dict | dict2items }}")',
                    )
                # Ansible: "You cannot use loops on 'import_tasks' statements. You should use 'include_tasks'"
                raise InputError(
                    "import_tasks cannot loop (as in Ansible)",
                    _key_loc(raw, other, file),
                    hint="use include_tasks with loop:",
                )
            if other == "apply":
                raise InputError(
                    "'apply' is not supported", _key_loc(raw, other, file), hint="put the keywords on the task itself"
                )
            self._check_keyword(raw, other, file, kw.IMPORT_KEYWORDS, _short(key))

    def _task(self, raw: dict[str, Any], file: Path, inherit: _Inherit, handlers: bool) -> Task:
        name = str(file)
        spec, module_key = self._resolve_module(raw, self._module_candidates(raw, file), file)
        if "listen" in raw and not handlers:
            raise InputError("'listen' is only valid on handlers", _key_loc(raw, "listen", file))
        if handlers and raw.get("name") is None and raw.get("listen") is None:
            raise InputError("a handler needs a name (or 'listen') so tasks can notify it", _loc(raw, name))
        args = self._args(raw, module_key, spec, file)
        loop_keys = [k for k in kw.LOOP_KEYWORDS if k in raw]
        if len(loop_keys) > 1:
            raise InputError(f"use only one of {', '.join(loop_keys)}", _key_loc(raw, loop_keys[1], file))
        fields: dict[str, Any] = {
            "location": _loc(raw, name),
            "file": name,
            "name": raw.get("name"),
            "module": spec.name,
            "module_as_written": module_key,
            "args": args,
            "when": inherit.when + self._conditions(raw, "when", file),
            "tags": inherit.tags | self._tags(raw, file),
            "vars": {**inherit.vars, **self._vars(raw, file)},
            "defaults": dict(inherit.defaults),
            "role": inherit.role,
            "key_locations": _key_locations(raw),
            **inherit.values,
        }
        self._check_strings(raw.get("name"), _key_loc(raw, "name", file))
        fields.update(self._task_options(raw, file, loop_keys))
        return self._build(Task, fields, raw, file)

    def _module_candidates(self, raw: dict[str, Any], file: Path) -> list[str]:
        """The task's keys that are not task keywords: one of them names the module."""
        candidates: list[str] = []
        for key in raw:
            if key in kw.TASK_KEYWORDS:
                continue
            if key in kw.IGNORED:
                self._ignored(raw, key, file)
                continue
            if key in kw.REFUSED:
                raise InputError(f"'{key}' is not supported", _key_loc(raw, key, file), hint=kw.REFUSED[key])
            if key.startswith("with_"):
                raise InputError(
                    f"'{key}' is not supported",
                    _key_loc(raw, key, file),
                    hint='use loop: with a filter, e.g. loop: "{{ mydict | dict2items }}"',
                )
            candidates.append(key)
        return candidates

    def _task_options(self, raw: dict[str, Any], file: Path, loop_keys: list[str]) -> dict[str, Any]:
        """The task keywords beside the module: conditions, retries, loop, register, notify/listen."""
        fields: dict[str, Any] = {}
        for key in ("changed_when", "failed_when", "until"):
            if key in raw:
                fields[key] = self._conditions(raw, key, file)
        for key in ("retries", "delay", "timeout", *kw.INHERITED):
            if key in raw and raw[key] is not None:
                fields[key] = raw[key]
                self._check_strings(raw[key], _key_loc(raw, key, file))
        if loop_keys:
            fields["loop_with"] = loop_keys[0]
            fields["loop"] = self._loop(raw[loop_keys[0]], loop_keys[0], _key_loc(raw, loop_keys[0], file))
        if "loop_control" in raw and raw["loop_control"] is not None:
            fields["loop_control"] = self._loop_control(raw["loop_control"], _key_loc(raw, "loop_control", file), file)
        if "register" in raw:
            fields["register"] = self._identifier(raw["register"], _key_loc(raw, "register", file), "register")
        for key in ("notify", "listen"):
            if key in raw and raw[key] is not None:
                fields[key] = self._names(raw[key], _key_loc(raw, key, file), key)
        return fields

    def _resolve_module(self, raw: dict[str, Any], candidates: list[str], file: Path) -> tuple[ModuleSpec, str]:
        known = [(k, spec) for k in candidates if (spec := self._module(k)) is not None]
        unknown = [k for k in candidates if self._module(k) is None]
        if len(known) > 1:
            raise InputError(
                f"two modules in one task: '{known[0][0]}' and '{known[1][0]}'",
                _key_loc(raw, known[1][0], file),
                hint="split them into two tasks",
            )
        if known:
            if unknown:
                key = unknown[0]
                suggestion = did_you_mean(key, kw.TASK_KEYWORDS)
                hint = f"did you mean '{suggestion}'?" if suggestion else None
                if hint is None and did_you_mean(_short(key), self.module_names()):
                    hint = f"a task calls one module, and this one already calls '{known[0][0]}'"
                raise InputError(f"unknown task keyword '{key}'", _key_loc(raw, key, file), hint=hint)
            return known[0][1], known[0][0]
        if not unknown:
            raise InputError(
                "the task calls no module",
                _loc(raw, str(file)),
                hint="add a module such as 'win_command: whoami' or 'debug: msg=…'",
            )
        for key in unknown:
            kw_match = did_you_mean(key, kw.TASK_KEYWORDS | set(kw.IGNORED), cutoff=_CLOSE)
            mod_match = did_you_mean(_short(key), self.module_names(), cutoff=_CLOSE)
            if mod_match is not None or kw_match is None:
                continue
            raise InputError(
                f"unknown task keyword '{key}' — did you mean '{kw_match}'?",
                _key_loc(raw, key, file),
                hint="and the task calls no module" if len(unknown) == 1 else None,
            )
        key = unknown[0]
        short = _ansible_short(key)
        if short in kw.KNOWN_ANSIBLE_MODULES:
            raise InputError(
                f"{short} is an Ansible module kmsfleet does not support (yet)",
                _key_loc(raw, key, file),
                hint=f"modules kmsfleet runs: {', '.join(self.runnable_module_names())}",
            )
        windows = f"win_{_short(key)}"
        if windows in self.runnable_module_names():
            # Ansible's Windows guide: the ansible.builtin modules for Linux/Unix do not run on Windows hosts
            raise InputError(
                f"'{key}' is Ansible's module for Linux/Unix hosts; on Windows use {windows}",
                _key_loc(raw, key, file),
                hint=f"kmsfleet runs {windows} with Ansible's arguments for it",
            )
        suggestion = did_you_mean(_short(key), self.module_names(), cutoff=_CLOSE)
        message = f"unknown module '{key}'" + (f" — did you mean '{suggestion}'?" if suggestion else "")
        # Ansible says "couldn't resolve module/action 'x'. This often indicates a misspelling, missing
        # collection, or incorrect module path."
        hint = None if suggestion else f"a misspelling? kmsfleet's modules: {', '.join(self.runnable_module_names())}"
        raise InputError(message, _key_loc(raw, key, file), hint=hint)

    def _args(self, raw: dict[str, Any], module_key: str, spec: ModuleSpec, file: Path) -> dict[str, Any]:
        at = _key_loc(raw, module_key, file)
        value = raw[module_key]
        args: dict[str, Any] = {}
        if "args" in raw and raw["args"] is not None:
            if not isinstance(raw["args"], dict):
                raise InputError("'args' must be a mapping of argument: value", _key_loc(raw, "args", file))
            args.update(raw["args"])
        if value is None:
            pass
        elif isinstance(value, dict):
            args.update(value)
        elif isinstance(value, str | int | float) and not isinstance(value, bool):
            args.update(self._text_args(value, spec, module_key, at))
        else:
            raise InputError(f"the arguments of '{module_key}' must be a mapping or text, not {_kind(value)}", at)
        for arg in args:
            if not isinstance(arg, str) or not arg:
                raise InputError(f"invalid argument name {arg!r}", at)
        self._check_strings(raw.get("args"), _key_loc(raw, "args", file))
        self._check_strings(value if isinstance(value, dict) else args, at)
        problems = spec.check_args(args)
        if problems:
            where = at
            for arg in args:
                if f"'{arg}'" in problems[0]:
                    where = (location_of(value, [arg]) if isinstance(value, dict) else None) or at
                    break
            hint = ("also: " + "; ".join(problems[1:])) if len(problems) > 1 else None
            raise InputError(f"{spec.name}: {problems[0]}", where, hint)
        return args

    def _text_args(self, value: str | int | float, spec: ModuleSpec, module_key: str, at: Location) -> dict[str, Any]:
        """Arguments written as text: ``key=value`` pairs, or a free-form module's text."""
        if isinstance(value, UnsafeText):
            if spec.free_form is None:
                raise InputError(f"module '{spec.name}' takes key=value arguments or a mapping", at)
            return {spec.free_form: value}
        try:
            parsed, rest, warnings = self._parse_kv_text(str(value), spec)
        except KVError as exc:
            raise InputError(f"cannot read the arguments of '{module_key}': {exc}", at) from None
        if rest:
            raise InputError(
                f"module '{spec.name}' takes key=value arguments or a mapping; {rest[0]!r} is not key=value",
                at,
                hint="quote values that contain spaces: msg='two words'",
            )
        self.warnings.extend(f"{at}: {w}" for w in warnings)
        return parsed

    @staticmethod
    def _parse_kv_text(text: str, spec: ModuleSpec) -> tuple[dict[str, str], list[str], list[str]]:
        """``key=value`` text as Ansible reads it. A module with a free-form argument takes text made only of
        its own ``key=value`` arguments as arguments (``debug: var=result``, ``fail: msg="no {{ x }}"``),
        anything else as its free-form text (``win_command: whoami chdir=C:\\``)."""
        if spec.free_form is not None and "\n" not in text.strip():
            try:
                parsed, rest, warnings = parse_kv(text, None)
            except KVError:
                parsed, rest, warnings = {}, [], []
            if parsed and not rest and not spec.check_args(parsed):
                return parsed, rest, warnings
        return parse_kv(text, spec.free_form)

    def _loop(self, value: Any, key: str, at: Location) -> Any:
        """A literal list, or a template that gives one (``with_items: word`` is ``[word]``; ``with_dict`` takes
        a mapping too)."""
        if isinstance(value, str) and not is_template(value):
            if key == "with_sequence":
                self._check_strings(value, at)
                return value
            if key != "with_items":
                needs = "a mapping (Ansible: 'with_dict expects a dict')" if key == "with_dict" else "a list"
                raise InputError(
                    f"'{key}' needs {needs}, not {_kind(value)}", at, f'did you mean {key}: "{{{{ {value} }}}}"?'
                )
            value = [value]
        elif isinstance(value, dict) and key != "with_dict":
            raise InputError(f"'{key}' needs a list, not a mapping", at, hint='use loop: "{{ d | dict2items }}"')
        elif key == "with_dict" and not isinstance(value, dict | str):
            raise InputError(
                f"'with_dict' needs a mapping (Ansible: 'with_dict expects a dict'), not {_kind(value)}",
                at,
                "write a mapping ({a: 1, b: 2}) or a template that gives one",
            )
        elif not isinstance(value, list | str | dict):
            raise InputError(f"'{key}' needs a list, not {_kind(value)}", at, "write a list: loop: [a, b]")
        self._check_strings(value, at)
        return value

    def _loop_control(self, value: Any, at: Location, file: Path) -> LoopControl:
        if not isinstance(value, dict):
            raise InputError("'loop_control' must be a mapping", at)
        allowed = ("loop_var", "index_var", "label", "pause", "extended", "extended_allitems")
        for key in value:
            if key not in allowed:
                suggestion = did_you_mean(key, allowed)
                raise InputError(
                    f"unknown loop_control key '{key}'" + (f" — did you mean '{suggestion}'?" if suggestion else ""),
                    _key_loc(value, key, file),
                )
        fields = {k: v for k, v in value.items() if k != "extended_allitems"}
        for key in ("loop_var", "index_var"):
            if key in fields:
                fields[key] = self._identifier(fields[key], _key_loc(value, key, file), key)
        self._check_strings(fields.get("label"), _key_loc(value, "label", file))
        return self._build(LoopControl, fields, value, file)

    # ------------------------------------------------------------------------------------------- helpers

    def module_names(self) -> list[str]:
        if self._module_names is None:
            self._module_names = sorted(self.catalog.names())
        return self._module_names

    def runnable_module_names(self) -> list[str]:
        """The modules kmsfleet runs (not those it knows only to refuse, like win_updates)."""
        return [n for n in self.module_names() if not getattr(self.catalog.get(n), "refused", False)]

    def _module(self, key: str) -> ModuleSpec | None:
        spec = self.catalog.get(key)
        if spec is None and key.startswith(kw.FQCN_PREFIXES):
            spec = self.catalog.get(_short(key))
        return spec

    def _check_keyword(self, raw: dict[str, Any], key: str, file: Path, allowed: frozenset[str], what: str) -> None:
        if key in allowed:
            return
        at = _key_loc(raw, key, file)
        if key in kw.IGNORED:
            self._ignored(raw, key, file)
            return
        if key in kw.REFUSED:
            raise InputError(f"'{key}' is not supported", at, hint=kw.REFUSED[key])
        suggestion = did_you_mean(key, allowed, cutoff=_CLOSE)
        message = f"unknown {what} keyword '{key}'" + (f" — did you mean '{suggestion}'?" if suggestion else "")
        hint = None
        if suggestion is None and what == "play" and (self._module(key) is not None or key in kw.TASK_KEYWORDS):
            hint = "tasks go under 'tasks:'"
        raise InputError(message, at, hint=hint)

    # ------------------------------------------------------------------------------------------- roles

    def _play_roles(self, raw: dict[str, Any], file: Path, inherit: _Inherit) -> tuple[Block, ...]:
        value = raw["roles"]
        at = _key_loc(raw, "roles", file)
        if not isinstance(value, list):
            raise InputError("'roles' must be a list of role names or mappings (- role: name)", at)
        blocks: list[Block] = []
        for index, entry in enumerate(value):
            where = value.item_locations[index] if isinstance(value, LocatedList) else at
            try:
                block = self._role_entry(entry, where, file, inherit, (), dedupe=True)
            except InputError as exc:
                self.add_error(exc)
                continue
            if block is not None:
                blocks.append(block)
        return tuple(blocks)

    def _role_entry(
        self, entry: Any, at: Location, file: Path, inherit: _Inherit, stack: tuple[Path, ...], *, dedupe: bool
    ) -> Block | None:
        """One ``roles:`` or ``dependencies:`` entry: ``name``, or a mapping with ``role:`` and keywords/params."""
        if isinstance(entry, str) and entry.strip():
            entry_raw: dict[str, Any] = {}
            name = entry.strip()
        elif isinstance(entry, dict):
            keys = [k for k in ("role", "name") if k in entry]
            if not keys or not isinstance(entry[keys[0]], str) or not entry[keys[0]].strip():
                raise InputError("a role entry needs 'role: <name>'", at)
            name = entry[keys[0]].strip()
            entry_raw = entry
        else:
            raise InputError(f"a role entry must be a name or a mapping, not {_kind(entry)}", at)
        if is_template(name):
            # ansible-core templates a roles:/dependencies name with the play's vars as it reads the play
            # (``RoleDefinition._load_role_name``): there is no host yet, so no facts nor inventory variables
            self._check_strings(name, at)
            name = self._static_role_args({"name": name}, inherit, {"name": at})["name"]
        params: dict[str, Any] = {}
        for key, val in entry_raw.items():
            if key in ("role", "name") or key in kw.ROLE_ENTRY_KEYWORDS:
                continue
            if key in kw.IGNORED:
                self._ignored(entry_raw, key, file)
            elif key in kw.REFUSED:
                raise InputError(f"'{key}' is not supported", _key_loc(entry_raw, key, file), hint=kw.REFUSED[key])
            else:
                params[key] = val
        if params:
            check_vars(params, at)
            self._check_strings(params, at)
        role = find_role(name, self._play_dir, self.roles_path, at)
        self._check_role_loop(role, at)
        if dedupe:
            seen = (str(role.path.resolve()), repr(sorted(params.items())), "main")
            if seen in self._roles_done:
                return None  # Ansible runs a role once per play unless its parameters differ
            self._roles_done.add(seen)
        child = self._child_inherit(entry_raw, file, inherit) if entry_raw else inherit
        return self._role_block(role, child, params, at, file, stack, {})

    def _role_block(
        self,
        role: RoleDir,
        inherit: _Inherit,
        params: Mapping[str, Any],
        at: Location,
        file: Path,
        stack: tuple[Path, ...],
        sources: Mapping[str, str | None],
        handlers_section: bool = False,
    ) -> Block:
        resolved = self._check_role_loop(role, at)
        self._role_stack = (*self._role_stack, resolved)
        try:
            dep_blocks, dep_defaults = self._role_dependencies(role, file, inherit, stack)
            defaults = {
                **inherit.defaults,
                **dep_defaults,
                **role_vars_file(role, "defaults", sources.get("defaults_from"), at),
            }
            role_vars = role_vars_file(role, "vars", sources.get("vars_from"), at)
            if self._public:
                self._public_defaults.update(defaults)
                self._public_vars.update(role_vars)
            magic = {"role_path": str(role.path), "role_name": role.path.name}
            inner = _Inherit(
                when=inherit.when,
                tags=inherit.tags,
                vars={**inherit.vars, **role_vars, **params, **magic},
                values=inherit.values,
                defaults=defaults,
                role=role.path.name,
            )
            tasks_file = role_file(
                role, "tasks", sources.get("tasks_from"), at, required=sources.get("tasks_from") is not None
            )
            tasks: tuple[Task | Block, ...] = ()
            if tasks_file is not None:
                data = load_yaml_file(tasks_file)
                tasks = self.parse_tasks(
                    data, {"tasks": data}, "tasks", tasks_file, inner, (*stack, tasks_file.resolve()), handlers_section
                )
            self._add_role_handlers(role, sources.get("handlers_from"), at, inner)
        finally:
            self._role_stack = self._role_stack[:-1]
        fields: dict[str, Any] = {
            "location": at,
            "file": str(file),
            "name": f"role {role.name}",
            "origin": "role",
            "block": (*dep_blocks, *tasks),
            "when": inherit.when,
            "tags": inherit.tags,
            "vars": dict(inner.vars),
            **inherit.values,
        }
        return Block(**fields)

    def _role_dependencies(
        self, role: RoleDir, file: Path, inherit: _Inherit, stack: tuple[Path, ...]
    ) -> tuple[list[Block], dict[str, Any]]:
        """The blocks of the roles ``role`` depends on (meta/main.yml), and the defaults they give it."""
        deps, deps_at = role_dependencies(role)
        dep_blocks: list[Block] = []
        dep_defaults: dict[str, Any] = {}
        for dep in deps:
            block = self._role_entry(dep, deps_at, file, inherit, stack, dedupe=True)
            if block is not None:
                dep_blocks.append(block)
                dep_defaults.update(_first_defaults(block))
        return dep_blocks, dep_defaults

    def _add_role_handlers(self, role: RoleDir, handlers_from: str | None, at: Location, inner: _Inherit) -> None:
        """The role's handlers join the play's, once per handlers file."""
        handlers_file = role_file(role, "handlers", handlers_from, at, required=handlers_from is not None)
        if handlers_file is None or str(handlers_file.resolve()) in self._handler_files:
            return
        self._handler_files.add(str(handlers_file.resolve()))
        data = load_yaml_file(handlers_file)
        handler_nodes = self.parse_tasks(
            data, {"handlers": data}, "handlers", handlers_file, inner, (handlers_file.resolve(),), True
        )
        self._role_handlers.extend(_with_role_alias(n, role.path.name) for n in handler_nodes)

    def _check_role_loop(self, role: RoleDir, at: Location) -> Path:
        resolved = role.path.resolve()
        if resolved in self._role_stack:
            chain = " → ".join(p.name for p in (*self._role_stack[self._role_stack.index(resolved) :], resolved))
            raise InputError(f"role dependency loop: {chain}", at)
        return resolved

    def _import_role(
        self,
        raw: dict[str, Any],
        key: str,
        file: Path,
        inherit: _Inherit,
        stack: tuple[Path, ...],
        handlers: bool,
    ) -> Block:
        at = _key_loc(raw, key, file)
        include = _short(key) == "include_role"
        self._check_role_keywords(raw, key, file, include)
        spec = self._role_spec(raw, key, file)
        templated = [a for a in ROLE_ARGS if is_template(spec.get(a))]
        if templated and not include:
            # ansible-core templates an import_role's name and *_from once, as it reads the play, with the vars
            # known then (``_process_static_role_import`` in ``lib/ansible/playbook/helpers.py``)
            where = {a: _key_loc(spec, a, file) for a in templated}
            spec = {**spec, **self._static_role_args({a: spec[a] for a in templated}, inherit, where)}
        if include and (templated or "apply" in raw or any(k in kw.LOOP_KEYWORDS for k in raw)):
            call = _RoleCall(spec, {a: spec[a] for a in templated}, at, file, stack, handlers)
            return self._include_role(raw, call, inherit)
        sources = {f"{p}_from": _from_file(spec.get(f"{p}_from")) for p in ("tasks", "defaults", "vars", "handlers")}
        role = find_role(spec["name"].strip(), self._play_dir, self.roles_path, at)
        child = self._child_inherit(raw, file, inherit)
        public = spec.get("public")
        self._public = not include if public is None else boolean(public)
        try:
            block = self._role_block(role, child, {}, at, file, stack, sources, handlers)
        finally:
            self._public = True
        return block.model_copy(update={"name": raw.get("name") or block.name, "key_locations": _key_locations(raw)})

    def _check_role_keywords(self, raw: dict[str, Any], key: str, file: Path, include: bool) -> None:
        """The keywords beside import_role/include_role: loops and ``apply`` only on include_role."""
        loops = [k for k in raw if k in kw.LOOP_KEYWORDS]
        for other in raw:
            if other == key or (include and other in (*kw.LOOP_KEYWORDS, "loop_control", "apply")):
                continue
            if other in kw.LOOP_KEYWORDS or other.startswith("with_") or other == "loop_control":
                # Ansible: "You cannot use loops on 'import_role' statements. You should use 'include_role'"
                hint = "use loop: (e.g. loop: [a, b])" if include else "use include_role with loop:"
                raise InputError(f"'{other}' is not supported on {_short(key)}", _key_loc(raw, other, file), hint)
            self._check_keyword(raw, other, file, kw.IMPORT_KEYWORDS, _short(key))
        if len(loops) > 1:
            raise InputError("a task can have only one loop", _key_loc(raw, loops[1], file))
        if "loop_control" in raw and not loops:
            raise InputError(
                "'loop_control' needs a 'loop' on the same include_role", _key_loc(raw, "loop_control", file)
            )

    def _role_spec(self, raw: dict[str, Any], key: str, file: Path) -> dict[str, Any]:
        """The include_role/import_role mapping, its arguments checked (``*_from`` must be text)."""
        at = _key_loc(raw, key, file)
        spec = raw[key]
        if isinstance(spec, str):
            spec = {"name": spec}
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"].strip():
            raise InputError(f"{_short(key)} needs 'name: <role>'", at)
        for arg in spec:
            if arg not in kw.ROLE_IMPORT_ARGS:
                suggestion = did_you_mean(arg, kw.ROLE_IMPORT_ARGS, cutoff=_CLOSE)
                raise InputError(
                    f"unknown {_short(key)} argument '{arg}'"
                    + (f" — did you mean '{suggestion}'?" if suggestion else ""),
                    _key_loc(spec, arg, file),
                    hint=f"{_short(key)} takes: {', '.join(sorted(kw.ROLE_IMPORT_ARGS))}",
                )
        for part in ("tasks", "defaults", "vars", "handlers"):
            value = spec.get(f"{part}_from")
            if value is not None and not isinstance(value, str):
                raise InputError(f"'{part}_from' must be a file name", _key_loc(spec, f"{part}_from", file))
            if is_template(value):
                self._check_strings(value, _key_loc(spec, f"{part}_from", file))
        self._check_strings(spec["name"], _key_loc(spec, "name", file))
        return spec

    def _include_role(self, raw: dict[str, Any], call: _RoleCall, inherit: _Inherit) -> Block:
        """A dynamic include_role (a loop, templated arguments or ``apply``): its own ``when`` is checked per host
        and item (not given to the role's tasks); ``apply`` keywords go to the role's tasks; every role the
        templates can name is read now (``dynamic_roles``) and the executor picks one per host and item."""
        file, at = call.file, call.at
        outer = replace(self._child_inherit(raw, file, inherit), when=inherit.when)
        loops = [k for k in raw if k in kw.LOOP_KEYWORDS]
        if call.handlers:  # ansible-core's include_role documentation: "Does not work in handlers"
            raise InputError(
                "a handler cannot include_role with a loop, a templated name/*_from or 'apply'",
                at,
                hint="use import_role (static) in handlers, or notify the role's own handlers",
            )
        loop_fields = self._include_loop(raw, loops[0], file) if loops else {}
        where = {a: _key_loc(call.spec, a, file) for a in call.templated}
        scope = {**outer.defaults, **self._play_vars, **outer.vars, **self.extra_vars}
        own_when = self._conditions(raw, "when", file)
        combos: list[dict[str, str]] = [{}]
        if call.templated:
            scopes = static_scopes(_loop_of(loop_fields, raw, file), scope, at)
            combos = candidates(call.templated, scopes, where, [c.expr for c in own_when])
        role_inherit = self._apply(raw, file, outer)
        fields: dict[str, Any] = {
            "location": _loc(raw, str(file)),
            "file": str(file),
            "name": raw.get("name") or f"include_role {call.spec['name']}",
            "origin": "include_role",
            "block": tuple(self._candidate_role(call, combo, role_inherit) for combo in combos),
            "when": outer.when,
            "own_when": own_when,
            "tags": outer.tags,
            "vars": dict(outer.vars),
            "defaults": dict(outer.defaults),
            "key_locations": _key_locations(raw),
            **outer.values,
            **loop_fields,
        }
        return self._build(Block, fields, raw, file)

    def _static_role_args(
        self, args: Mapping[str, Any], inherit: _Inherit, where: Mapping[str, Location]
    ) -> dict[str, str]:
        """Templated role arguments rendered once, before the run, with the play's vars, ``-e`` and the
        enclosing block/role vars and defaults (refused, saying why, when they need what only a PC knows)."""
        scope = {**inherit.defaults, **self._play_vars, **inherit.vars, **self.extra_vars}
        return candidates(args, [scope], where)[0]

    def _apply(self, raw: dict[str, Any], file: Path, outer: _Inherit) -> _Inherit:
        """include_role's ``apply``: keywords (``tags``, ``when``, ``vars``, ``ignore_errors`` …) given to the
        role's tasks (ansible-core ``IncludeRole.get_block_list`` wraps them in a block with these keywords)."""
        apply = raw.get("apply")
        if apply is None:
            return outer
        if not isinstance(apply, dict):
            raise InputError("'apply' must be a mapping of keywords (tags, when, …)", _key_loc(raw, "apply", file))
        for key in apply:
            self._check_keyword(apply, key, file, kw.IMPORT_KEYWORDS - {"name"}, "apply")
        return self._child_inherit(apply, file, outer)

    def _candidate_role(self, call: _RoleCall, combo: Mapping[str, str], inherit: _Inherit) -> Block:
        """One role an include_role can run, read into the plan, with the values its templates must give."""
        values = {a: role_arg(a, call.spec[a]) for a in ROLE_ARGS if call.spec.get(a) is not None} | dict(combo)
        sources: dict[str, str | None] = {
            f"{p}_from": values.get(f"{p}_from") for p in ("tasks", "defaults", "vars", "handlers")
        }
        role = find_role(values["name"], self._play_dir, self.roles_path, call.at)
        public = call.spec.get("public")
        self._public = False if public is None else boolean(public)
        try:
            block = self._role_block(role, inherit, {}, call.at, call.file, call.stack, sources, call.handlers)
        finally:
            self._public = True
        pick = tuple((a, call.templated[a], combo[a]) for a in combo)
        return block.model_copy(update={"pick": pick})

    def _ignored(self, raw: dict[str, Any], key: str, file: Path) -> None:
        if key == "connection" and str(raw.get(key)) in kw.WINRM_CONNECTIONS:
            return
        if key == "become":
            value = raw.get(key)
            if value is None or parse_boolean(value) is False:
                return
            raise InputError("'become' is not supported", _key_loc(raw, key, file), hint=kw.BECOME_REFUSED)
        self.warnings.append(f"{_key_loc(raw, key, file)}: {kw.IGNORED[key]}")

    def _validated_inherited(self, values: dict[str, Any], raw: dict[str, Any], file: Path) -> dict[str, Any]:
        for key, value in values.items():
            self._check_strings(value, _key_loc(raw, key, file))
        return values

    def _conditions(self, raw: dict[str, Any], key: str, file: Path) -> tuple[Condition, ...]:
        if key not in raw or raw[key] is None:
            return ()
        value = raw[key]
        at = _key_loc(raw, key, file)
        items = value if isinstance(value, list) else [value]
        out: list[Condition] = []
        for index, item in enumerate(items):
            where = value.item_locations[index] if isinstance(value, LocatedList) else at
            if isinstance(item, bool):
                out.append(Condition(expr=item, location=where))
                continue
            if isinstance(item, int | float):
                out.append(Condition(expr=bool(item), location=where))
                continue
            if not isinstance(item, str):
                raise InputError(f"'{key}' must be a condition (text), a boolean, or a list of them", where)
            problem = check_template(item, expression=True)
            if problem:
                raise InputError(f"invalid condition in '{key}': {problem}", where, hint=f"condition: {item}")
            out.append(Condition(expr=item, location=where))
        return tuple(out)

    def _tags(self, raw: dict[str, Any], file: Path) -> frozenset[str]:
        if "tags" not in raw or raw["tags"] is None:
            return frozenset()
        value = raw["tags"]
        items = value if isinstance(value, list) else [value]
        out: set[str] = set()
        for item in items:
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                raise InputError(
                    "'tags' must be a tag, a comma-separated list, or a list of tags", _key_loc(raw, "tags", file)
                )
            out.update(t.strip() for t in str(item).split(",") if t.strip())
        return frozenset(out)

    def _vars(self, raw: dict[str, Any], file: Path) -> dict[str, Any]:
        if "vars" not in raw or raw["vars"] is None:
            return {}
        value = raw["vars"]
        at = _key_loc(raw, "vars", file)
        blocks = value if isinstance(value, list) else [value]
        out: dict[str, Any] = {}
        for block in blocks:
            if not isinstance(block, dict):
                raise InputError(f"'vars' must be a mapping of name: value, not {_kind(block)}", at)
            check_vars(block, at)
            self._check_strings(block, at)
            out.update(block)
        return out

    def _identifier(self, value: Any, at: Location, key: str) -> str:
        if not isinstance(value, str) or not value.isidentifier() or value in _RESERVED_NAMES:
            raise InputError(f"'{key}' must be a variable name (letters, digits, underscores), got {value!r}", at)
        return value

    def _names(self, value: Any, at: Location, key: str) -> tuple[str, ...]:
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(i, str) and i.strip() for i in items):
            raise InputError(f"'{key}' must be a name or a list of names", at)
        for item in items:
            self._check_strings(item, at)
        return tuple(items)

    def _check_strings(self, value: Any, at: Location, depth: int = 0) -> None:
        """Compile every template in ``value`` (syntax, unknown filters/tests) without rendering it."""
        if depth > 100:
            return
        if isinstance(value, str):
            problem = check_template(value)
            if problem:
                raise InputError(problem, at, hint=f"in {value[:120]!r}")
        elif isinstance(value, Mapping):
            for k, v in value.items():
                where = value.key_locations.get(k, at) if isinstance(value, LocatedDict) else at
                self._check_strings(k, where, depth + 1)
                self._check_strings(v, where, depth + 1)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                where = value.item_locations[i] if isinstance(value, LocatedList) else at
                self._check_strings(v, where, depth + 1)

    def _build(self, model: type[_M], fields: dict[str, Any], raw: Any, file: Path) -> _M:
        try:
            return model(**fields)
        except ValidationError as exc:
            error = exc.errors()[0]
            loc_path = [p for p in error["loc"] if isinstance(p, str | int)]
            where = location_of(raw, loc_path) or _loc(raw, str(file))
            key = str(loc_path[0]) if loc_path else "value"
            message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
            raise InputError(f"invalid '{key}': {message}", where) from None

    def _check_notify(self, play: Play) -> None:
        targets: set[str] = set()
        for node in _walk(play.handlers):
            if node.name and not is_template(node.name):
                targets.add(node.name)
            targets.update(node.listen)
        for node in _walk((*play.pre_tasks, *play.tasks, *play.post_tasks, *play.handlers)):
            for target in node.notify:
                if is_template(target) or target in targets:
                    continue
                suggestion = did_you_mean(target, targets)
                raise InputError(
                    f"notify: no handler named '{target}' in this play"
                    + (f" — did you mean '{suggestion}'?" if suggestion else ""),
                    node.key_location("notify"),
                    hint=None if targets else "add it under the play's 'handlers:'",
                )


def _walk(nodes: Iterable[Task | Block]) -> Iterator[Task]:
    for node in nodes:
        if isinstance(node, Task):
            yield node
        else:
            yield from _walk((*node.block, *node.rescue, *node.always))


def _first_defaults(block: Block) -> dict[str, Any]:
    """The role defaults its tasks see (a dependency's defaults are visible to the role that needs it)."""
    for task in _walk((block,)):
        return dict(task.defaults)
    return {}


def _with_public_role_vars(node: Task | Block, defaults: Mapping[str, Any], variables: Mapping[str, Any]) -> Any:
    """Ansible makes the defaults and vars of ``roles:`` and ``import_role`` visible to the whole play; a task's
    own role vars, block vars and task vars still win (they are applied after these)."""
    if isinstance(node, Block):
        update: dict[str, Any] = {
            part: tuple(_with_public_role_vars(n, defaults, variables) for n in getattr(node, part))
            for part in ("block", "rescue", "always")
        }
        return node.model_copy(update=update)
    return node.model_copy(update={"defaults": {**defaults, **node.defaults}, "vars": {**variables, **node.vars}})


def _with_role_alias(node: Task | Block, role: str) -> Task | Block:
    """A role's handler also answers ``notify: "<role> : <handler name>"`` as in Ansible."""
    if isinstance(node, Block):
        return node.model_copy(
            update={
                part: tuple(_with_role_alias(n, role) for n in getattr(node, part))
                for part in ("block", "rescue", "always")
            }
        )
    if node.name and not is_template(node.name):
        return node.model_copy(update={"listen": (*node.listen, f"{role} : {node.name}")})
    return node


@dataclass(frozen=True)
class _RoleCall:
    """One include_role as written: its arguments, the templated ones, and where it is."""

    spec: Mapping[str, Any]
    templated: Mapping[str, Any]
    at: Location
    file: Path
    stack: tuple[Path, ...]
    handlers: bool


def _from_file(value: str | None) -> str | None:
    return role_arg("tasks_from", value) if value else None


def _loop_of(loop_fields: Mapping[str, Any], raw: Mapping[str, Any], file: Path) -> LoopSpec | None:
    """The loop of an include_role, as ``dynamic_roles.static_scopes`` reads it before the run."""
    if not loop_fields:
        return None
    keyword = loop_fields["loop_with"]
    control = loop_fields.get("loop_control") or LoopControl()
    return LoopSpec(
        items=loop_fields["loop"],
        keyword=keyword,
        location=_key_loc(raw, keyword, file),
        var=control.loop_var,
        index_var=control.index_var,
    )


def iter_tasks(nodes: Iterable[Task | Block]) -> Iterator[Task]:
    """Every task in a task tree, depth first (block, then rescue, then always)."""
    return _walk(nodes)


def _short(key: str) -> str:
    for prefix in kw.FQCN_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def _ansible_short(key: str) -> str:
    """``community.windows.win_xml`` → ``win_xml`` (any collection prefix)."""
    return key.rsplit(".", 1)[-1] if key.count(".") >= 2 else key


def _loc(value: Any, file: str) -> Location:
    return getattr(value, "location", None) or Location(file)


def _key_loc(mapping: Any, key: str, file: Path) -> Location:
    if isinstance(mapping, LocatedDict) and key in mapping.key_locations:
        return mapping.key_locations[key]
    return _loc(mapping, str(file))


def _key_locations(raw: Any) -> dict[str, Location]:
    return dict(raw.key_locations) if isinstance(raw, LocatedDict) else {}


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, str):
        return f"the text {value!r}" if len(value) < 40 else "a text"
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {value!r}"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _task_file(target: Any, keyword: str, at: Location, file: Path, stack: tuple[Path, ...]) -> Path:
    """The file an import_tasks/include_tasks names: beside the importing file, else beside the playbook."""
    if isinstance(target, dict):
        extra = [k for k in target if k != "file"]
        if extra or "file" not in target:
            raise InputError(f"{keyword} takes a file name, or a mapping with only 'file:'", at)
        target = target["file"]
    if not isinstance(target, str) or not target.strip():
        raise InputError(f"{keyword} needs a file name", at)
    if is_template(target):
        raise InputError(
            f"{keyword} file names cannot be templates in kmsfleet (task files are imported before the run)", at
        )
    candidates = [file.parent / target]
    playbook_dir = stack[0].parent if stack else file.parent
    if playbook_dir / target not in candidates:
        candidates.append(playbook_dir / target)
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        looked = ", ".join(str(c) for c in candidates)
        raise InputError(f"task file not found: {target} (looked in {looked})", at)
    return found


__all__ = ["iter_tasks", "load_playbook"]
