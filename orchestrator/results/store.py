"""Run history: every run, every host, every task and licence reading, kept in a database.

SQLAlchemy Core on SQLite by default (WAL, busy timeout, foreign keys), any SQLAlchemy URL otherwise. Hosts are
written one short transaction each, as soon as they finish, from any worker thread; a run that never reached
``finish_run`` (Ctrl-C, SIGKILL, power cut) keeps every host that finished and shows as *incomplete*.

Where the database lives, first match wins: the ``url_or_path`` argument (``--db``: a path or a URL), the
``KMSFLEET_DB`` environment variable, ``$XDG_DATA_HOME/kmsfleet/history.db``,
``~/.local/share/kmsfleet/history.db``.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TypeVar

from sqlalchemy import (
    URL,
    Connection,
    Engine,
    and_,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    make_url,
    select,
    update,
)
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError
from sqlalchemy.pool import StaticPool

from orchestrator import __version__
from orchestrator.errors import InputError, KmsfleetError
from orchestrator.redact import redact_text
from orchestrator.results.codec import (
    HostRows,
    host_from_row,
    host_rows,
    licence_from_row,
    task_from_row,
)
from orchestrator.results.hostpack import host_names
from orchestrator.results.latest import rebuild_latest, store_run_licence_counts, update_latest_many
from orchestrator.results.models import (
    HostResult,
    HostStatus,
    HostTaskResult,
    LicenceRecord,
    RunInfo,
    RunResult,
    utcnow,
)
from orchestrator.results.schema import LATEST_VERSION, MIGRATIONS, TABLES, encode_json, latest_licence_select
from orchestrator.results.sorting import natural_key, natural_sorted

T = TypeVar("T")

ENV_DB = "KMSFLEET_DB"
DEFAULT_BUSY_TIMEOUT_MS = 30_000
DEFAULT_LOCK_RETRY_SECONDS = 120.0
_WRITE = "kmsfleet_write"  # execution option: this transaction writes (SQLite: BEGIN IMMEDIATE)

RunState = Literal["running", "finished", "interrupted", "incomplete"]


class RunNotFound(KmsfleetError, LookupError):
    """No run with that id (or prefix) is in the history."""


class HistoryError(KmsfleetError):
    """The history database cannot be used (written by a newer kmsfleet, bad URL …)."""


# ----------------------------------------------------------------------------------------------- location


def default_db_path() -> Path:
    """``$XDG_DATA_HOME/kmsfleet/history.db`` (an absolute XDG_DATA_HOME only, as the spec says), else
    ``~/.local/share/kmsfleet/history.db``."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / "kmsfleet" / "history.db"


def demo_db_path() -> Path:
    """Where ``kmsfleet demo`` keeps its history, beside the real one and never mixed with it."""
    return default_db_path().with_name("demo.db")


def resolve_db_url(url_or_path: str | os.PathLike[str] | None = None) -> URL:
    """The database URL for ``--db`` / ``KMSFLEET_DB`` / the default path. Paths become ``sqlite:///``."""
    value: str | os.PathLike[str] | None = url_or_path
    if value is None or value == "":
        value = os.environ.get(ENV_DB) or None
    if value is None:
        path = default_db_path()
    elif isinstance(value, str) and "://" in value:
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise InputError(
                f"not a database URL: {value!r}", hint="give a file path or e.g. sqlite:///history.db"
            ) from exc
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return url
    else:
        path = Path(value).expanduser()
    path = path.resolve()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the history directory {path.parent}: {exc.strerror}") from exc
    return URL.create("sqlite+pysqlite", database=str(path))


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists (SQLite would create it 0644 minus the umask, and
    gives its -wal/-shm files the database's mode): the history holds every PC's results. An existing file
    keeps the mode its owner chose; the umask can only narrow 0600."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError:
        pass  # SQLite reports the real problem (a missing folder, no permission) with its own message


# ----------------------------------------------------------------------------------------------- values


@dataclass(frozen=True)
class RunSummary:
    """One line of ``kmsfleet history``."""

    id: str
    playbook: str
    inventory: tuple[str, ...]
    limit: str | None
    check: bool
    started: datetime
    finished: datetime | None
    state: RunState  # running | finished | interrupted | incomplete (never finished and its writer is gone)
    exit_code: int | None
    interrupted: bool
    counts: Mapping[str, int]  # host status -> hosts recorded with it
    hosts: int  # hosts recorded so far
    kmsfleet_version: str
    controller: str

    @property
    def problems(self) -> int:
        return sum(self.counts.get(s.value, 0) for s in _PROBLEM_STATUSES)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "playbook": self.playbook,
            "inventory": list(self.inventory),
            "limit": self.limit,
            "check": self.check,
            "started": self.started.isoformat(),
            "finished": self.finished.isoformat() if self.finished else None,
            "state": self.state,
            "exit_code": self.exit_code,
            "interrupted": self.interrupted,
            "counts": dict(self.counts),
            "hosts": self.hosts,
            "kmsfleet_version": self.kmsfleet_version,
            "controller": self.controller,
        }


_PROBLEM_STATUSES = (HostStatus.FAILED, HostStatus.UNREACHABLE, HostStatus.AUTH_REFUSED)


@dataclass(frozen=True)
class LicenceRow:
    """The latest known licence state of one product on one PC, with when and in which run it was read."""

    host: str
    run_id: str
    seen_at: datetime
    licence: LicenceRecord
    address: str | None = None
    room: str | None = None
    days_left_now: int | None = field(default=None)  # days_left counted down to now (None = permanent)

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "address": self.address,
            "room": self.room,
            "run_id": self.run_id,
            "seen_at": self.seen_at.isoformat(),
            "days_left_now": self.days_left_now,
            **self.licence.to_json(),
        }


def estimate_days_left(lic: LicenceRecord, seen_at: datetime, now: datetime) -> int | None:
    """Days until the licence runs out, as of ``now``: from ``expires`` when known, else ``days_left`` minus
    the whole days since it was read. None when it does not run out (permanent activation)."""
    if lic.expires is not None:
        return math.ceil((lic.expires - now).total_seconds() / 86400)
    if lic.days_left is None:
        return None
    return lic.days_left - int((now - seen_at).total_seconds() // 86400)


# ----------------------------------------------------------------------------------------------- rows

_T = TABLES


def _run_row(info: RunInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "playbook": info.playbook,
        "inventory": list(info.inventory),
        "limit_pattern": info.limit,
        "check_mode": info.check,
        "tags": list(info.tags),
        "skip_tags": list(info.skip_tags),
        "forks": info.forks,
        "strategy": info.strategy,
        "lang": info.lang,
        "started": info.started,
        "finished": None,
        "state": "running",
        "exit_code": None,
        "interrupted": False,
        "counts": None,
        "hosts_total": None,
        "kmsfleet_version": info.kmsfleet_version,
        "controller": info.controller,
        "writer_host": socket.gethostname(),
        "writer_pid": os.getpid(),
    }


#: The message of a host written when its run starts; replaced when the host finishes. Still there after the
#: run: kmsfleet was stopped (``kill -9``, a power cut) before this PC's turn.
PENDING_MSG = "not run: kmsfleet stopped before this PC's turn came (the run never finished)"


def _pending_rows(run_id: str, host: str, position: int, started: datetime) -> HostRows:
    return host_rows(
        run_id,
        HostResult(host=host, status=HostStatus.NOT_RUN, msg=PENDING_MSG, started=started, finished=started),
        position,
        encode=encode_json,
    )


def prepare_host(run_id: str, h: HostResult) -> HostRows:
    """``h`` as the rows ``HistoryStore.record_prepared`` saves."""
    return host_rows(run_id, h, encode=encode_json)


# Statements built once: the hot path (record_prepared) only binds values to already-compiled statements.
_INSERT_RUN = insert(_T.runs)
_INSERT_HOST = insert(_T.host_results)
_INSERT_TASKS = insert(_T.task_results)
_INSERT_LICENCES = insert(_T.licence_state)
_EXISTING_HOSTS = select(_T.host_results.c.host).where(
    and_(
        _T.host_results.c.run_id == bindparam("b_run"),
        _T.host_results.c.host.in_(bindparam("b_hosts", expanding=True)),
    )
)
_DELETE_HOST = tuple(
    delete(table).where(and_(table.c.run_id == bindparam("b_run"), table.c.host == bindparam("b_host")))
    for table in (_T.licence_state, _T.task_results, _T.host_results)
)


def _is_contention(exc: DBAPIError) -> bool:
    """Another writer holds the lock (SQLite) or the server aborted us to break a conflict (PostgreSQL)."""
    message = str(exc.orig).lower()
    if "database is locked" in message or "database is busy" in message or "table is locked" in message:
        return True
    code = getattr(exc.orig, "pgcode", None) or getattr(exc.orig, "sqlstate", None)
    return code in {"40001", "40P01", "55P03"}


def _writer_alive(writer_host: str | None, pid: int | None) -> bool:
    if not pid or writer_host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ----------------------------------------------------------------------------------------------- store


class HistoryStore:
    """The run history. Thread-safe; several processes may write the same SQLite file at once."""

    def __init__(
        self,
        url_or_path: str | os.PathLike[str] | None = None,
        *,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        lock_retry_seconds: float = DEFAULT_LOCK_RETRY_SECONDS,
    ) -> None:
        self.url = resolve_db_url(url_or_path)
        self._lock_retry_seconds = lock_retry_seconds
        self._is_sqlite = self.url.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {}
        memory = self._is_sqlite and self.url.database in (None, "", ":memory:")
        if memory:
            kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
        elif self._is_sqlite:
            kwargs.update(connect_args={"timeout": busy_timeout_ms / 1000})
        if self._is_sqlite and not memory and self.url.database:
            create_private_file(Path(self.url.database).expanduser())
        try:
            self._engine: Engine = create_engine(self.url, **kwargs)
        except (ArgumentError, ImportError) as exc:
            raise InputError(f"cannot use database {self.url.render_as_string()}: {exc}") from exc
        if self._is_sqlite:
            _install_sqlite_hooks(self._engine, busy_timeout_ms, wal=not memory)
        self._writer = self._engine.execution_options(**{_WRITE: True})
        # SQLite has one writer at a time per file: queue this process's threads here instead of in its
        # busy handler (which polls). Other processes are handled by busy_timeout and the retry loop.
        self._write_lock = threading.Lock()
        self._closed = False
        try:
            self._migrate()
        except DBAPIError as exc:
            self._engine.dispose()
            raise HistoryError(f"cannot use the history database {self.url.render_as_string()}: {exc.orig}") from exc

    # -- plumbing

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._engine.dispose()

    def _retrying(self, attempt: Callable[[], T]) -> T:
        deadline = time.monotonic() + self._lock_retry_seconds
        delay = 0.005
        while True:
            try:
                return attempt()
            except DBAPIError as exc:
                if not _is_contention(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(delay)  # back off before retrying the whole transaction
            delay = min(delay * 2, 0.25)

    def _write(self, work: Callable[[Connection], T]) -> T:
        def attempt() -> T:
            with self._write_lock, self._writer.begin() as conn:
                return work(conn)

        return self._retrying(attempt)

    def read(self, work: Callable[[Connection], T]) -> T:
        """Run a read-only query function on a connection (retried on lock contention): for readers of the
        history beside the store's own methods (``orchestrator.web``)."""
        return self._read(work)

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    def _read(self, work: Callable[[Connection], T]) -> T:
        def attempt() -> T:
            with self._engine.connect() as conn:
                return work(conn)

        return self._retrying(attempt)

    def _migrate(self) -> None:
        def version(conn: Connection) -> int:
            if not inspect(conn).has_table(_T.schema_version.name):
                return 0
            return int(conn.scalar(select(func.max(_T.schema_version.c.version))) or 0)

        def upgrade(conn: Connection) -> int:
            if conn.dialect.name == "postgresql":  # one migrating process at a time (SQLite: BEGIN IMMEDIATE)
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7170601)")
            _T.schema_version.create(conn, checkfirst=True)
            current = version(conn)  # again, under the write lock: another process may have migrated
            for number in range(current + 1, LATEST_VERSION + 1):
                MIGRATIONS[number - 1](conn)
                if number == 2:  # the latest tables start from the history already there
                    rebuild_latest(conn, PENDING_MSG)
                conn.execute(
                    insert(_T.schema_version).values(version=number, applied_at=utcnow(), kmsfleet_version=__version__)
                )
            return max(current, LATEST_VERSION)

        current = self._read(version)
        if current > LATEST_VERSION:
            raise HistoryError(
                f"the history database {self.url.render_as_string()} has schema version {current}, "
                f"newer than this kmsfleet understands ({LATEST_VERSION}); upgrade kmsfleet"
            )
        if current < LATEST_VERSION:
            self._write(upgrade)

    @property
    def schema_version(self) -> int:
        return int(self._read(lambda c: c.scalar(select(func.max(_T.schema_version.c.version)))) or 0)

    # -- writing

    def begin_run(self, info: RunInfo, hosts: Sequence[str] = ()) -> None:
        """Record that a run started, with every targeted host as *pending* (``not_run``, ``PENDING_MSG``) in
        the same transaction: a run killed before reaching a PC (``kill -9``, a power cut) still lists it, so
        ``--limit @failed`` retries it. Each host's row is replaced when it finishes (``record_prepared``)."""
        row = _run_row(info)
        pending = [_pending_rows(info.id, name, position, info.started) for position, name in enumerate(hosts)]

        def work(conn: Connection) -> None:
            conn.execute(_INSERT_RUN, [row])
            if pending:
                conn.execute(_INSERT_HOST, [p.host for p in pending])

        try:
            self._write(work)
        except IntegrityError as exc:
            raise HistoryError(f"run {info.id} is already in the history") from exc

    def record_host(self, run_id: str, host_result: HostResult) -> None:
        """Save one finished host in one short transaction (replacing an earlier record of the same host)."""
        self.record_prepared(run_id, [prepare_host(run_id, host_result)])

    def record_prepared(self, run_id: str, prepared: Sequence[HostRows]) -> None:
        """Save hosts already turned into rows by ``prepare_host``, in one transaction (a later record of the same
        host replaces it)."""
        latest = {rows.name: rows for rows in prepared}  # one record per host: the last one given

        def work(conn: Connection) -> None:
            stored = set(conn.scalars(_EXISTING_HOSTS, {"b_run": run_id, "b_hosts": list(latest)}))
            existing = {name for name in latest if redact_text(name) in stored}
            self._replace_hosts(conn, run_id, list(latest.values()), existing=existing)

        try:
            self._write(work)
        except IntegrityError as exc:
            if not self._run_exists(run_id):
                raise RunNotFound(f"no run {run_id} in the history (begin_run first)") from exc
            raise

    def finish_run(self, run_id: str, result: RunResult) -> None:
        """Mark the run finished. Hosts of ``result`` not yet recorded are saved now; already recorded hosts
        are kept as recorded. The host order of ``result`` is remembered for ``load_run``. A run that was
        never begun is created, so ``finish_run`` alone stores a whole result."""
        if result.info.id != run_id:
            raise ValueError(f"finish_run({run_id!r}) given the result of run {result.info.id!r}")
        counts = result.counts()
        exit_code = int(result.exit_code)

        def work(conn: Connection) -> None:
            if not self._run_exists_in(conn, run_id):
                conn.execute(_INSERT_RUN, [_run_row(result.info)])
            hr = _T.host_results
            rows = conn.execute(select(hr.c.host, hr.c.msg).where(hr.c.run_id == run_id))
            stored: dict[str, str] = {str(host): str(msg) for host, msg in rows}
            pending = {host for host, msg in stored.items() if msg == PENDING_MSG}
            names = host_names(result.hosts)  # a packed result is decoded only when it must be saved now
            missing = [
                host_rows(run_id, result.hosts[position], position, encode=encode_json)
                for position, name in enumerate(names)
                if redact_text(name) not in stored or redact_text(name) in pending
            ]
            replaced = {h.name for h in missing if redact_text(h.name) in pending}
            self._replace_hosts(conn, run_id, missing, existing=replaced)
            positions = [{"b_run": run_id, "b_host": name, "b_pos": position} for position, name in enumerate(names)]
            if positions:
                conn.execute(
                    update(hr)
                    .where(and_(hr.c.run_id == bindparam("b_run"), hr.c.host == bindparam("b_host")))
                    .values(position=bindparam("b_pos")),
                    positions,
                )
            conn.execute(
                update(_T.runs)
                .where(_T.runs.c.id == run_id)
                .values(
                    finished=result.finished,
                    state="finished",
                    exit_code=exit_code,
                    interrupted=result.interrupted,
                    counts=counts,
                    hosts_total=len(result.hosts),
                )
            )
            store_run_licence_counts(conn, run_id)

        self._write(work)

    def save(self, result: RunResult) -> None:
        """Store a whole finished result at once (imports, tests): ``finish_run`` creates the run."""
        self.finish_run(result.info.id, result)

    @staticmethod
    def _replace_hosts(conn: Connection, run_id: str, batch: Sequence[HostRows], existing: set[str]) -> None:
        if not batch:
            return
        if existing:
            keys = [{"b_run": run_id, "b_host": host} for host in sorted(existing)]
            for statement in _DELETE_HOST:
                conn.execute(statement, keys)
        conn.execute(_INSERT_HOST, [b.host for b in batch])
        tasks = [row for b in batch for row in b.tasks]
        if tasks:
            conn.execute(_INSERT_TASKS, tasks)
        licences = [row for b in batch for row in b.licences]
        if licences:
            conn.execute(_INSERT_LICENCES, licences)
        finished = [
            b for b in batch if not (b.host["status"] == HostStatus.NOT_RUN.value and b.host["msg"] == PENDING_MSG)
        ]
        if finished:
            update_latest_many(conn, [(b.host, b.licences) for b in finished])

    @staticmethod
    def _run_exists_in(conn: Connection, run_id: str) -> bool:
        return conn.execute(select(_T.runs.c.id).where(_T.runs.c.id == run_id)).first() is not None

    def _run_exists(self, run_id: str) -> bool:
        return self._read(lambda conn: self._run_exists_in(conn, run_id))

    # -- reading

    def load_run(self, run_id: str) -> RunResult:
        """The stored run as the frozen models it was saved from (a run that never finished comes back
        ``interrupted``, ending at its last finished host)."""

        def work(conn: Connection) -> RunResult:
            runs, hr, tr, ls = _T.runs, _T.host_results, _T.task_results, _T.licence_state
            run = conn.execute(select(runs).where(runs.c.id == run_id)).mappings().first()
            if run is None:
                raise RunNotFound(f"no run {run_id} in the history")
            hosts = (
                conn.execute(
                    select(hr)
                    .where(hr.c.run_id == run_id)
                    .order_by(case((hr.c.position.is_(None), 1), else_=0), hr.c.position, hr.c.id)
                )
                .mappings()
                .all()
            )
            tasks: dict[str, list[HostTaskResult]] = defaultdict(list)
            for row in conn.execute(select(tr).where(tr.c.run_id == run_id).order_by(tr.c.host, tr.c.seq)).mappings():
                tasks[row["host"]].append(task_from_row(row["host"], row))
            licences: dict[str, list[LicenceRecord]] = defaultdict(list)
            for row in conn.execute(select(ls).where(ls.c.run_id == run_id).order_by(ls.c.host, ls.c.seq)).mappings():
                licences[row["host"]].append(licence_from_row(row))
            info = _info_from_row(run)
            host_results = tuple(host_from_row(h, tasks.get(h["host"], ()), licences.get(h["host"], ())) for h in hosts)
            if run["finished"] is not None:
                return RunResult(info, host_results, finished=run["finished"], interrupted=run["interrupted"])
            last = max((h.finished for h in host_results), default=info.started)
            return RunResult(info, host_results, finished=last, interrupted=True)

        return self._read(work)

    def runs(self, last: int | None = None) -> list[RunSummary]:
        """Runs, newest first (``last``: only that many)."""

        def work(conn: Connection) -> list[RunSummary]:
            runs, hr = _T.runs, _T.host_results
            stmt = select(runs).order_by(runs.c.started.desc(), runs.c.id.desc())
            if last is not None:
                stmt = stmt.limit(max(0, last))
            rows = conn.execute(stmt).mappings().all()
            if not rows:
                return []
            count_stmt = select(hr.c.run_id, hr.c.status, func.count()).group_by(hr.c.run_id, hr.c.status)
            if last is not None:
                count_stmt = count_stmt.where(hr.c.run_id.in_([r["id"] for r in rows]))
            counts: dict[str, dict[str, int]] = defaultdict(dict)
            for run_id, status, n in conn.execute(count_stmt):
                counts[run_id][status] = int(n)
            return [_summary_from_row(r, counts.get(r["id"], {})) for r in rows]

        return self._read(work)

    def last_run(self, playbook: str, inventory: Sequence[str]) -> str | None:
        """The newest run of this playbook on this inventory (as given on the command line), if any."""
        runs = _T.runs
        # Both sides go through the column types (RedactedText / RedactedJSON), so they encode alike.
        stmt = (
            select(runs.c.id)
            .where(and_(runs.c.playbook == playbook, runs.c.inventory == list(inventory)))
            .order_by(runs.c.started.desc(), runs.c.id.desc())
            .limit(1)
        )

        def work(conn: Connection) -> str | None:
            found = conn.scalar(stmt)
            return None if found is None else str(found)

        return self._read(work)

    def hosts_last_status(
        self, playbook: str, inventory: Sequence[str], statuses: Iterable[HostStatus | str]
    ) -> list[str] | None:
        """PCs whose newest result in the runs of this playbook on this inventory has one of ``statuses`` (for
        ``--limit @failed`` without a run id), in natural order; None when there is no such run. Each PC's own
        latest result counts, so a follow-up that included only some PCs does not hide the others."""
        wanted = {HostStatus(s).value for s in statuses}
        runs, hr = _T.runs, _T.host_results
        same = and_(runs.c.playbook == playbook, runs.c.inventory == list(inventory))
        stmt = (
            select(hr.c.host, hr.c.status)
            .join_from(hr, runs, hr.c.run_id == runs.c.id)
            .where(same)
            .order_by(runs.c.started.desc(), runs.c.id.desc())
        )

        def work(conn: Connection) -> list[str] | None:
            if conn.scalar(select(runs.c.id).where(same).limit(1)) is None:
                return None
            latest: dict[str, str] = {}
            for host, status in conn.execute(stmt):
                latest.setdefault(str(host), str(status))
            return natural_sorted(h for h, status in latest.items() if status in wanted)

        return self._read(work)

    def resolve_run(self, ref: str) -> str:
        """A run id from what a user typed: the id, ``last``/``latest``, or a unique prefix of an id."""
        runs = _T.runs

        def work(conn: Connection) -> str:
            if ref in ("last", "latest"):
                found = conn.scalar(select(runs.c.id).order_by(runs.c.started.desc(), runs.c.id.desc()).limit(1))
                if found is None:
                    raise RunNotFound("the history is empty")
                return str(found)
            if self._run_exists_in(conn, ref):
                return ref
            escaped = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            ids = list(conn.scalars(select(runs.c.id).where(runs.c.id.like(escaped + "%", escape="\\")).limit(2)))
            if len(ids) == 1:
                return str(ids[0])
            if not ids:
                raise RunNotFound(f"no run {ref!r} in the history")
            raise RunNotFound(f"{ref!r} matches several runs; give more of the id")

        return self._read(work)

    def hosts_with_status(self, run_id: str, statuses: Iterable[HostStatus | str]) -> list[str]:
        """Hosts of a run that ended with one of ``statuses`` (for ``--limit @failed``), in natural order."""
        wanted = sorted({HostStatus(s).value for s in statuses})
        hr = _T.host_results

        def work(conn: Connection) -> list[str]:
            if not self._run_exists_in(conn, run_id):
                raise RunNotFound(f"no run {run_id} in the history")
            if not wanted:
                return []
            stmt = select(hr.c.host).where(and_(hr.c.run_id == run_id, hr.c.status.in_(wanted)))
            return natural_sorted(str(h) for h in conn.scalars(stmt))

        return self._read(work)

    def latest_facts(self, hosts: Iterable[str], key: str) -> dict[str, Any]:
        """The newest recorded value of the fact ``key`` for each of ``hosts`` (e.g. ``kmsfleet_mac`` for
        Wake-on-LAN); hosts never recorded with that fact are left out."""
        names = sorted(set(hosts))
        hr = _T.host_results

        def work(conn: Connection) -> dict[str, Any]:
            found: dict[str, Any] = {}
            for start in range(0, len(names), 500):
                chunk = names[start : start + 500]
                stmt = (
                    select(hr.c.host, hr.c.facts)
                    .where(hr.c.host.in_(chunk))
                    .order_by(hr.c.finished.desc(), hr.c.id.desc())
                )
                for host, facts in conn.execute(stmt):
                    if host in found or not isinstance(facts, Mapping):
                        continue
                    value = facts.get(key)
                    if value not in (None, ""):
                        found[str(host)] = value
            return found

        return self._read(work)

    def latest_licences(self, within_days: int | None = None, *, now: datetime | None = None) -> list[LicenceRow]:
        """The latest known licence state per PC × product across all runs, with when and where it was read.

        ``within_days``: only licences that run out within that many days from now (already expired ones
        included; permanent ones never), counting down ``days_left`` by the time since it was read."""
        at = now or utcnow()
        latest = latest_licence_select(_T).subquery("latest")
        hr = _T.host_results
        stmt = select(latest, hr.c.address, hr.c.room).join_from(
            latest, hr, and_(hr.c.run_id == latest.c.run_id, hr.c.host == latest.c.host)
        )

        def work(conn: Connection) -> list[LicenceRow]:
            out: list[LicenceRow] = []
            for row in conn.execute(stmt).mappings():
                lic = licence_from_row(row)
                seen = row["seen_at"]
                left = estimate_days_left(lic, seen, at)
                if within_days is not None and (left is None or left > within_days):
                    continue
                out.append(
                    LicenceRow(
                        host=row["host"],
                        run_id=row["run_id"],
                        seen_at=seen,
                        licence=lic,
                        address=row["address"],
                        room=row["room"],
                        days_left_now=left,
                    )
                )
            out.sort(key=lambda r: (natural_key(r.host), r.licence.product, r.licence.name, r.seen_at))
            return out

        return self._read(work)


# ----------------------------------------------------------------------------------------------- wire format
# Distributed runs (``orchestrator.distributed``) send finished hosts over a message broker as JSON built from
# the very rows the database stores, so a host that crossed the broker equals one loaded with ``load_run``.


def _info_from_row(run: Mapping[Any, Any]) -> RunInfo:
    return RunInfo(
        id=run["id"],
        playbook=run["playbook"],
        inventory=tuple(run["inventory"]),
        limit=run["limit_pattern"],
        check=run["check_mode"],
        tags=tuple(run["tags"]),
        skip_tags=tuple(run["skip_tags"]),
        forks=run["forks"],
        strategy=run["strategy"],
        started=run["started"],
        controller=run["controller"],
        kmsfleet_version=run["kmsfleet_version"],
        lang=run["lang"],
    )


def _summary_from_row(run: Mapping[Any, Any], counts: Mapping[str, int]) -> RunSummary:
    full = {s.value: counts.get(s.value, 0) for s in HostStatus}
    state: RunState
    if run["finished"] is None:
        state = "running" if _writer_alive(run["writer_host"], run["writer_pid"]) else "incomplete"
    elif run["interrupted"]:
        state = "interrupted"
    else:
        state = "finished"
    return RunSummary(
        id=run["id"],
        playbook=run["playbook"],
        inventory=tuple(run["inventory"]),
        limit=run["limit_pattern"],
        check=run["check_mode"],
        started=run["started"],
        finished=run["finished"],
        state=state,
        exit_code=run["exit_code"],
        interrupted=bool(run["interrupted"]),
        counts=MappingProxyType(full),
        hosts=sum(full.values()),
        kmsfleet_version=run["kmsfleet_version"],
        controller=run["controller"],
    )


def _install_sqlite_hooks(engine: Engine, busy_timeout_ms: int, *, wal: bool) -> None:
    """The only SQLite-specific SQL: connection PRAGMAs and who emits BEGIN (we do, so that a writing
    transaction takes the write lock up front and waits in busy_timeout instead of failing on upgrade)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver must not emit BEGIN itself
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if wal:
                cursor.execute("PRAGMA journal_mode = WAL")
            # WAL + NORMAL: a killed process loses nothing committed; only a power cut may lose the last
            # few commits (the file stays consistent either way).
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")


__all__ = [
    "ENV_DB",
    "HistoryError",
    "HistoryStore",
    "LicenceRow",
    "RunNotFound",
    "RunSummary",
    "default_db_path",
    "estimate_days_left",
    "prepare_host",
    "resolve_db_url",
]
