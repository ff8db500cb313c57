"""The history database schema (SQLAlchemy Core, no ORM) and its forward migrations.

Portable by construction: only Core constructs and standard SQL (CREATE VIEW over a compiled ``select``), so
a PostgreSQL URL gets the same schema. SQLite-specific statements (PRAGMAs, ``BEGIN IMMEDIATE``) live only in
the connection hooks in ``store.py``.

Secrets never reach the database: every text column uses ``RedactedText`` and every JSON column
``RedactedJSON``, which run values through ``orchestrator.redact`` on the way in.

Versioning: ``schema_version`` holds one row per applied migration. ``MIGRATIONS[n - 1]`` upgrades version
``n - 1`` to ``n``. A migration is frozen once released: migration 1 builds the version-1 tables from
``define_v1`` on its own ``MetaData``, so a later change to the current tables must come as migration 2
(``ALTER TABLE …``) and must not edit ``define_v1``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Dialect,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Select,
    Table,
    Text,
    UniqueConstraint,
    and_,
    exists,
    select,
    text,
)
from sqlalchemy.types import TypeDecorator

from orchestrator.redact import redact_plain, redact_text

SCHEMA_VERSION_TABLE = "schema_version"
LATEST_VIEW = "latest_licence"


class RedactedText(TypeDecorator[str]):
    """TEXT whose value is scrubbed of registered secrets before it is written."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return redact_text(str(value))


class EncodedJSON(str):
    """A value already redacted and encoded by ``encode_json``, stored by ``RedactedJSON`` as it is."""

    __slots__ = ()


def encode_json(value: Any) -> EncodedJSON:
    """Redact and encode a value for a ``RedactedJSON`` column now, on the calling thread (the history writer
    then only stores text; see ``results/recorder.py``). Secret-looking keys and registered secrets are masked
    *before* encoding, so escapes cannot hide a secret from the scrubber. One pass makes the frozen value plain
    (as ``results.models.thaw``) and scrubs it."""
    return EncodedJSON(json.dumps(redact_plain(value), ensure_ascii=False, separators=(",", ":"), default=str))


class RedactedJSON(TypeDecorator[Any]):
    """JSON stored as TEXT (the same on every backend), redacted as ``encode_json`` does (values encoded by it
    ahead of time are stored as they are)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if isinstance(value, EncodedJSON):
            return str(value)
        return str(encode_json(value))

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return json.loads(value)


class UTCDateTime(TypeDecorator[datetime]):
    """A point in time stored in UTC; read back as an aware UTC datetime (naive input is taken as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        # SQLite has no time zone type: keep the UTC wall time, which also sorts correctly as text.
        return aware.replace(tzinfo=None) if dialect.name == "sqlite" else aware

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _id_type() -> Any:
    # INTEGER PRIMARY KEY is SQLite's auto-increment rowid; BIGINT elsewhere.
    return BigInteger().with_variant(Integer(), "sqlite")


@dataclass(frozen=True)
class Tables:
    schema_version: Table
    runs: Table
    host_results: Table
    task_results: Table
    licence_state: Table


@dataclass(frozen=True)
class FleetTables:
    """Version 2: each PC's latest result and latest licence per product, kept up to date as hosts are written
    (``store.py``), so a fleet page over a year of nightly runs of 30,000 PCs aggregates 30,000 rows, not 11
    million."""

    host_latest: Table
    licence_latest: Table
    run_licence_counts: Table


def _schema_version_table(metadata: MetaData) -> Table:
    return Table(
        SCHEMA_VERSION_TABLE,
        metadata,
        Column("version", Integer, primary_key=True, autoincrement=False),
        Column("applied_at", UTCDateTime, nullable=False),
        Column("kmsfleet_version", Text, nullable=False, default=""),
    )


def _runs_table(metadata: MetaData) -> Table:
    return Table(
        "runs",
        metadata,
        Column("id", Text, primary_key=True),
        Column("playbook", RedactedText, nullable=False),
        Column("inventory", RedactedJSON, nullable=False),  # list of paths, as given
        Column("limit_pattern", RedactedText),
        Column("check_mode", Boolean(create_constraint=False), nullable=False, default=False),
        Column("tags", RedactedJSON, nullable=False),
        Column("skip_tags", RedactedJSON, nullable=False),
        Column("forks", Integer, nullable=False),
        Column("strategy", Text, nullable=False),
        Column("lang", Text, nullable=False),
        Column("started", UTCDateTime, nullable=False),
        Column("finished", UTCDateTime),  # NULL: never finished (still running, or killed)
        Column("state", Text, nullable=False),  # running | finished
        Column("exit_code", Integer),
        Column("interrupted", Boolean(create_constraint=False), nullable=False, default=False),
        Column("counts", RedactedJSON),  # {host status: n} at finish
        Column("hosts_total", Integer),
        Column("kmsfleet_version", RedactedText, nullable=False, default=""),
        Column("controller", RedactedText, nullable=False, default=""),
        Column("writer_host", RedactedText),  # machine and pid that wrote the run, to tell running from dead
        Column("writer_pid", Integer),
        Index("ix_runs_started", "started"),
        Index("ix_runs_playbook_started", "playbook", "started"),
    )


def _host_results_table(metadata: MetaData) -> Table:
    return Table(
        "host_results",
        metadata,
        Column("id", _id_type(), primary_key=True, autoincrement=True),
        Column("run_id", Text, nullable=False),
        Column("host", RedactedText, nullable=False),
        Column("position", Integer),  # index in RunResult.hosts, set by finish_run
        Column("status", Text, nullable=False),
        Column("msg", RedactedText, nullable=False),
        Column("address", RedactedText),
        Column("groups", RedactedJSON, nullable=False),
        Column("room", RedactedText),
        Column("started", UTCDateTime, nullable=False),
        Column("finished", UTCDateTime, nullable=False),
        Column("error_code", BigInteger),  # of the failed task, for queries
        Column("diagnosis", RedactedText),
        Column("facts", RedactedJSON, nullable=False),
        UniqueConstraint("run_id", "host", name="uq_host_results_run_host"),
        ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE", name="fk_host_results_run"),
        Index("ix_host_results_host", "host"),
        Index("ix_host_results_run_status", "run_id", "status"),
    )


def _task_results_table(metadata: MetaData) -> Table:
    return Table(
        "task_results",
        metadata,
        Column("run_id", Text, nullable=False),
        Column("host", RedactedText, nullable=False),
        Column("seq", Integer, nullable=False),
        Column("play", RedactedText, nullable=False),
        Column("task", RedactedText, nullable=False),
        Column("module", RedactedText, nullable=False),
        Column("status", Text, nullable=False),
        Column("changed", Boolean(create_constraint=False), nullable=False),
        Column("msg", RedactedText, nullable=False),
        Column("error_code", BigInteger),
        Column("diagnosis", RedactedText),
        Column("failure", Text),
        Column("ignored", Boolean(create_constraint=False), nullable=False),
        Column("rescued", Boolean(create_constraint=False), nullable=False),
        Column("started", UTCDateTime, nullable=False),
        Column("duration_ms", BigInteger, nullable=False),
        Column("data", RedactedJSON, nullable=False),
        Column("diff", RedactedJSON),
        Column("licences", RedactedJSON, nullable=False),  # LicenceRecords the task read (JSON list)
        Column("no_log", Boolean(create_constraint=False), nullable=False),
        PrimaryKeyConstraint("run_id", "host", "seq", name="pk_task_results"),
        ForeignKeyConstraint(
            ["run_id", "host"],
            ["host_results.run_id", "host_results.host"],
            ondelete="CASCADE",
            name="fk_task_results_host",
        ),
        Index("ix_task_results_error", "error_code"),
    )


def _licence_state_table(metadata: MetaData) -> Table:
    return Table(
        "licence_state",
        metadata,
        Column("run_id", Text, nullable=False),
        Column("host", RedactedText, nullable=False),
        Column("seq", Integer, nullable=False),
        Column("product", RedactedText, nullable=False),
        Column("name", RedactedText, nullable=False),
        Column("channel", RedactedText, nullable=False),
        Column("status", RedactedText, nullable=False),
        Column("license_status", Integer),
        Column("days_left", Integer),
        Column("expires", UTCDateTime),
        Column("kms_host", RedactedText),
        Column("last_error", BigInteger),
        Column("version", RedactedText),
        Column("edition", RedactedText),
        Column("partial_key", RedactedText),
        Column("cmid", RedactedText),
        Column("activation_id", RedactedText),
        Column("seen_at", UTCDateTime, nullable=False),  # when the host finished in that run
        PrimaryKeyConstraint("run_id", "host", "seq", name="pk_licence_state"),
        ForeignKeyConstraint(
            ["run_id", "host"],
            ["host_results.run_id", "host_results.host"],
            ondelete="CASCADE",
            name="fk_licence_state_host",
        ),
        Index("ix_licence_state_host_product_seen", "host", "product", "seen_at"),
    )


def define_v1(metadata: MetaData) -> Tables:
    """The version-1 schema, one table per function above, created in this order. Frozen: never edit once
    released (add a migration instead)."""
    return Tables(
        _schema_version_table(metadata),
        _runs_table(metadata),
        _host_results_table(metadata),
        _task_results_table(metadata),
        _licence_state_table(metadata),
    )


def define_v2(metadata: MetaData) -> FleetTables:
    """The tables migration 2 adds. Frozen like ``define_v1``."""
    host_latest = Table(
        "host_latest",
        metadata,
        Column("host", RedactedText, primary_key=True),
        Column("run_id", Text, nullable=False),
        Column("status", Text, nullable=False),
        Column("category", Text, nullable=False),  # licensed | grace | unlicensed | failing | unreachable | unknown
        Column("msg", RedactedText, nullable=False),
        Column("address", RedactedText),
        Column("site", RedactedText, nullable=False, default=""),
        Column("room", RedactedText, nullable=False, default=""),
        Column("finished", UTCDateTime, nullable=False),
        Column("error_code", BigInteger),
        Column("diagnosis", RedactedText),
        Column("fail_streak", Integer, nullable=False, default=0),  # consecutive results with a problem
        Index("ix_host_latest_site_room", "site", "room"),
        Index("ix_host_latest_category", "category", "diagnosis"),
    )
    licence_latest = Table(
        "licence_latest",
        metadata,
        Column("host", RedactedText, nullable=False),
        Column("product", RedactedText, nullable=False),
        Column("seq", Integer, nullable=False),
        Column("run_id", Text, nullable=False),
        Column("name", RedactedText, nullable=False),
        Column("channel", RedactedText, nullable=False),
        Column("status", RedactedText, nullable=False),
        Column("license_status", Integer),
        Column("days_left", Integer),
        Column("expires", UTCDateTime),
        Column("runs_out", UTCDateTime),  # expires, else seen_at + days_left; NULL: does not run out
        Column("kms_host", RedactedText),
        Column("last_error", BigInteger),
        Column("seen_at", UTCDateTime, nullable=False),
        PrimaryKeyConstraint("host", "product", "seq", name="pk_licence_latest"),
        Index("ix_licence_latest_runs_out", "runs_out"),
    )
    run_licence_counts = Table(
        "run_licence_counts",
        metadata,
        Column("run_id", Text, nullable=False),
        Column("state", Text, nullable=False),  # licensed | grace | unlicensed (``fleet.TREND_STATES``)
        Column("n", Integer, nullable=False),
        PrimaryKeyConstraint("run_id", "state", name="pk_run_licence_counts"),
        ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE", name="fk_run_licence_counts_run"),
    )
    return FleetTables(host_latest, licence_latest, run_licence_counts)


def latest_licence_select(t: Tables) -> Select[Any]:
    """The latest known licence state per host × product: every record from the newest run that reported
    that product on that host (a PC with Office and Visio keeps both; an old edition does not linger)."""
    ls = t.licence_state
    newer = ls.alias("newer")
    newer_exists = exists().where(
        and_(newer.c.host == ls.c.host, newer.c.product == ls.c.product, newer.c.seen_at > ls.c.seen_at)
    )
    return select(ls).where(~newer_exists)


def _create_view(conn: Connection, name: str, query: Select[Any]) -> None:
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    conn.execute(text(f"CREATE VIEW {name} AS {compiled}"))


def migration_0001_initial(conn: Connection) -> None:
    metadata = MetaData()
    tables = define_v1(metadata)
    metadata.create_all(conn, tables=[tables.runs, tables.host_results, tables.task_results, tables.licence_state])
    _create_view(conn, LATEST_VIEW, latest_licence_select(tables))


def migration_0002_fleet(conn: Connection) -> None:
    """Each PC's latest result and licences (filled from the existing history by ``store.rebuild_latest``, which
    the store runs right after this migration), and an index for a PC's results over time."""
    metadata = MetaData()
    v1 = define_v1(metadata)
    fleet = define_v2(metadata)
    metadata.create_all(conn, tables=[fleet.host_latest, fleet.licence_latest, fleet.run_licence_counts])
    Index("ix_host_results_host_finished", v1.host_results.c.host, v1.host_results.c.finished).create(conn)


MIGRATIONS: tuple[Callable[[Connection], None], ...] = (migration_0001_initial, migration_0002_fleet)
LATEST_VERSION = len(MIGRATIONS)

# The tables the store reads and writes: the current version's shape.
METADATA = MetaData()
TABLES = define_v1(METADATA)
FLEET = define_v2(METADATA)
Index("ix_host_results_host_finished", TABLES.host_results.c.host, TABLES.host_results.c.finished)

__all__ = [
    "FLEET",
    "LATEST_VERSION",
    "LATEST_VIEW",
    "METADATA",
    "MIGRATIONS",
    "TABLES",
    "RedactedJSON",
    "RedactedText",
    "Tables",
    "UTCDateTime",
    "define_v1",
    "define_v2",
    "latest_licence_select",
]
