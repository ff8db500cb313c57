"""What one batch message carries over the broker, and how secrets are kept out of it.

A batch message (JSON) holds:

- ``plan``: the *compiled plan* the controller validated (``executor.plan_codec``: frozen dataclasses as
  tagged JSON), each play's ``vars_files`` already read into its ``vars``. The worker decodes it strictly
  (unknown tags or shapes: the batch is dropped as poison) and runs it; it reads no playbook file, so
  controller and workers need not share a file system and always run the same plan. ``playbook`` names it.
- ``hosts``: the batch's PCs with their group names and their merged inventory variables, *minus secrets*.
- ``selections``: for each play's host pattern, which of the batch's PCs it selects (evaluated on the
  controller against the whole inventory, so slices and intersections mean what they mean in a local run).
- ``options``: check, diff, tags, extra vars (minus secrets), forks, budget, language.
- ``nonce``, ``issued``, ``expires``: the run's random nonce and the message's validity window (see
  ``signing`` for how the whole message is signed, and ``worker`` for how a replay is refused).

Secrets never cross the broker. Withheld: every variable whose name looks like a secret (``ansible_password``,
``*_pass``, ``*token*`` …) unless its value is a template (e.g. ``{{ lookup('env', 'SCHOOL_A_PASSWORD') }}``,
rendered on the worker), any variable such a template reads, and any variable whose value contains a
registered secret. The worker supplies the password itself (``KMSFLEET_PASSWORD`` in its environment, or the
template above). A plan that contains a literal secret (its vars_files included) is refused before anything
is sent.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from jinja2 import Environment, TemplateSyntaxError, meta
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.distributed.policy import plan_tasks, reads_local_files
from orchestrator.errors import InputError, Location
from orchestrator.executor.options import DEFAULT_FORKS
from orchestrator.executor.plan import Plan, PlaySpec
from orchestrator.executor.plan_codec import PlanCodecError, encode_plan
from orchestrator.executor.state import RunOptions
from orchestrator.redact import SECRET_KEYS, contains_secret
from orchestrator.varsfile import SECRET_NAME
from orchestrator.yamlsource import UnsafeText

MAX_PLAN_BYTES = 4 * 1024 * 1024  # the compiled plan as JSON; the whole message stays under kombu_guard's limit
UNSAFE_MARK = "__kmsfleet_unsafe__"  # {"__kmsfleet_unsafe__": text}: an !unsafe string (never templated)
_SECRET_NAME_EXTRA = ("_pass", "passwd")
_IDENTITY_PREFIXES = ("ansible_", "kmsfleet_")
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
_NONCE = r"^[0-9a-f]{32}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HostEntry(_Model):
    name: str
    groups: list[str]  # group_names: every group of the host except "all"
    vars: dict[str, Any]  # merged inventory variables, secrets withheld
    inventory_file: str | None = None


MAX_BATCH_HOSTS = 5000  # --batch-size's own limit
MAX_FORKS = 5000  # -f's own limit
MAX_BUDGET = 7 * 86400.0  # seconds per PC; more is as good as none
MAX_GRACE = 3600.0


class BatchOptions(_Model):
    # Bounded as the CLI bounds them: a signed batch must not make a worker start 10**6 threads (forks) or wait
    # beyond what ``threading.Event.wait`` accepts (grace).
    check: bool = False
    diff: bool = False
    forks: int = Field(default=DEFAULT_FORKS, ge=1, le=MAX_FORKS)
    strategy: Literal["free", "linear"] = "free"
    tags: list[str] = []
    skip_tags: list[str] = []
    extra_vars: dict[str, Any] = {}
    verbosity: int = Field(default=0, ge=0, le=10)
    host_budget: float | None = Field(default=None, gt=0, le=MAX_BUDGET)
    grace: float = Field(default=5.0, ge=0, le=MAX_GRACE)
    lang: str = Field(default="en", max_length=16)


class BatchMessage(_Model):
    v: Literal[3] = 3
    run_id: str = Field(pattern=_ID, max_length=64)
    nonce: str = Field(pattern=_NONCE)  # random per run; every event and the run's open token echo it
    batch_id: str = Field(pattern=_ID, max_length=80)
    attempt: int = Field(default=1, ge=1, le=100)
    site: str = Field(pattern=_ID, max_length=64)
    issued: float  # Unix time the controller signed it
    expires: float  # Unix time after which no worker starts it
    playbook: str = Field(max_length=4096)  # the playbook as the controller named it (for messages only)
    plan: dict[str, Any]  # the compiled plan (``executor.plan_codec``), decoded strictly by the worker
    options: BatchOptions
    hosts: list[HostEntry] = Field(max_length=MAX_BATCH_HOSTS)
    selections: dict[str, list[str]]
    withheld: list[str] = []  # names of variables kept back as secrets (names only, never values)


EventKind = Literal["batch_started", "play", "task", "host", "batch_done", "batch_failed", "batch_refused"]


class StreamEvent(BaseModel):
    """One entry of a run's result stream, as signed by a worker (validated after the signature)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    run: str = Field(max_length=64)
    n: str = Field(pattern=_NONCE)
    b: str = Field(max_length=80)
    a: int = Field(ge=1, le=100)
    s: str = Field(max_length=64)
    t: EventKind
    worker: str | None = Field(default=None, max_length=300)
    hosts: int | None = Field(default=None, ge=0)
    skipped: int | None = Field(default=None, ge=0)
    name: str | None = Field(default=None, max_length=10_000)
    r: dict[str, Any] | None = None  # a task line or a whole host result (store JSON rows)
    counts: dict[str, int] | None = None
    error: str | None = Field(default=None, max_length=20_000)


# ------------------------------------------------------------------------------------------------ secrets


def is_secret_name(name: Any) -> bool:
    if not isinstance(name, str):
        return False
    return bool(SECRET_NAME.search(name) or SECRET_KEYS.search(name)) or name.lower().endswith(_SECRET_NAME_EXTRA)


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and not isinstance(value, UnsafeText) and ("{{" in value or "{%" in value)


def _strings(value: Any, depth: int = 0) -> Iterable[str]:
    if depth > 50:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            if isinstance(k, str):
                yield k
            yield from _strings(v, depth + 1)
    elif isinstance(value, list | tuple | set | frozenset):
        for v in value:
            yield from _strings(v, depth + 1)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)


def mentions_secret(value: Any) -> bool:
    """True when any string inside ``value`` contains a registered secret (or one of its encodings)."""
    return any(contains_secret(text) for text in _strings(value))


def _literal_secret(value: Any, depth: int = 0) -> bool:
    """A mapping (at any depth) with a secret-named key holding a literal (non-template) value."""
    if depth > 50 or not isinstance(value, Mapping | list | tuple):
        return False
    items = value.items() if isinstance(value, Mapping) else enumerate(value)
    for k, v in items:
        scalar = not isinstance(v, Mapping | list | tuple | bool) and v not in (None, "")
        if is_secret_name(k) and scalar and not _is_template(v):
            return True
        if _literal_secret(v, depth + 1):
            return True
    return False


def template_names(text: str) -> set[str] | None:
    """The variables a template reads (None when it does not parse: treat it as reading anything)."""
    try:
        parsed = Environment(autoescape=True).parse(text)  # parsed only, never rendered
        return set(meta.find_undeclared_variables(parsed))
    except TemplateSyntaxError:
        return None


def _template_texts(value: Any) -> list[str]:
    return [s for s in _strings(value) if _is_template(s)]


def sanitise_vars(variables: Mapping[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """(variables safe to send, names withheld). See the module docstring for the rules."""
    out: dict[str, Any] = {}
    withheld: set[str] = set()
    secret_templates: list[str] = []
    for key, value in variables.items():
        literal = (
            is_secret_name(key) and value not in (None, "") and not isinstance(value, bool) and not _is_template(value)
        )
        if literal or _literal_secret(value) or mentions_secret(value):
            withheld.add(key)
            continue
        if is_secret_name(key):
            secret_templates.extend(_template_texts(value))
        out[key] = value
    # Whatever a secret's template reads is a secret too ("{{ vault_school_a }}"); follow chains of templates.
    # Connection identities (ansible_user, ansible_host …) are not secrets and stay.
    pending = list(secret_templates)
    for _ in range(len(variables) + 1):
        if not pending:
            break
        text = pending.pop()
        names = template_names(text)
        targets = set(out) if names is None else names & set(out)
        for name in sorted(targets):
            if name.startswith(_IDENTITY_PREFIXES) and not is_secret_name(name):
                continue
            pending.extend(_template_texts(out.pop(name)))
            withheld.add(name)
    return out, withheld


def encode_value(value: Any) -> Any:
    """JSON-ready copy; ``!unsafe`` strings are wrapped so the worker never templates them."""
    if isinstance(value, UnsafeText):
        return {UNSAFE_MARK: str(value)}
    if isinstance(value, Mapping):
        return {str(k): encode_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [encode_value(v) for v in value]
    return value


def decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and UNSAFE_MARK in value and isinstance(value[UNSAFE_MARK], str):
            return UnsafeText(value[UNSAFE_MARK])
        return {k: decode_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    return value


# ------------------------------------------------------------------------------------------------ options


def batch_options(options: RunOptions) -> tuple[BatchOptions, set[str]]:
    extra, withheld = sanitise_vars(options.extra_vars)
    return (
        BatchOptions(
            check=options.check,
            diff=options.diff,
            forks=min(options.forks, MAX_FORKS),  # ansible.cfg's forks is not bounded by -f's limit
            strategy=options.strategy,
            tags=sorted(options.tags),
            skip_tags=sorted(options.skip_tags),
            extra_vars=encode_value(extra),
            verbosity=min(options.verbosity, 10),
            host_budget=None if options.host_budget is None else min(options.host_budget, MAX_BUDGET),
            grace=min(options.grace, MAX_GRACE),
            lang=options.lang,
        ),
        withheld,
    )


def run_options(opts: BatchOptions, *, password: str | None, forks: int | None) -> RunOptions:
    return RunOptions(
        check=opts.check,
        diff=opts.diff,
        forks=forks or opts.forks,
        strategy=opts.strategy,
        tags=frozenset(opts.tags),
        skip_tags=frozenset(opts.skip_tags),
        extra_vars=decode_value(opts.extra_vars),
        verbosity=opts.verbosity,
        host_budget=opts.host_budget,
        grace=opts.grace,
        password=password,
        lang=opts.lang,
    )


# ------------------------------------------------------------------------------------------------ the plan

PlayVars = Callable[[PlaySpec, Mapping[str, Any]], Mapping[str, Any]]


def plan_for_workers(plan: Plan, extra_vars: Mapping[str, Any], play_vars: PlayVars) -> dict[str, Any]:
    """The compiled plan as a batch carries it (``executor.plan_codec``). Each play's ``vars_files`` are read
    here, as the local run's ``play_vars`` reads them, into the play's ``vars`` (the worker reads no file of
    the controller's); ``vars_prompt`` is already answered by ``-e``. Refused: a plan holding a literal secret
    or a registered secret's text, a task that reads a local file (the worker would read its own, see
    ``policy.check_plan``), and one larger than ``MAX_PLAN_BYTES`` as JSON."""
    _refuse_local_files(plan)
    plays = tuple(
        dataclasses.replace(play, vars=dict(play_vars(play, extra_vars)), vars_files=(), vars_prompt=())
        for play in plan.plays
    )
    try:
        data = encode_plan(dataclasses.replace(plan, plays=plays))
    except PlanCodecError as exc:
        raise InputError(f"--distributed: {exc}", Location(plan.path)) from None
    hint = (
        "--distributed sends the compiled playbook to the workers through the broker: keep passwords out of it "
        "and its vars_files (the worker's KMSFLEET_PASSWORD, or a variable like \"{{ lookup('env', 'NAME') }}\" "
        "read on the worker)"
    )
    if mentions_secret(data):
        raise InputError("this playbook (or one of its vars_files) contains a password", Location(plan.path), hint=hint)
    if _literal_secret(data):
        raise InputError("this playbook sets a secret variable to a literal value", Location(plan.path), hint=hint)
    size = len(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > MAX_PLAN_BYTES:
        raise InputError(
            f"--distributed: the compiled playbook is {size // 1024} KiB (at most {MAX_PLAN_BYTES // 1024})"
        )
    return data


def _refuse_local_files(plan: Plan) -> None:
    for task in plan_tasks(plan):
        if reads_local_files(task):
            raise InputError(
                f"--distributed: {task.module} reads a file where it runs, and a worker reads none of its own",
                task.location,
                hint="give win_copy the text itself as content:, put variables in the play's vars or vars_files "
                "(read here before sending), or run this playbook without --distributed",
            )
