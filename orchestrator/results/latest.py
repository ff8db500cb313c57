"""Each PC's latest result and latest licence per product (schema version 2: ``host_latest``, ``licence_latest``).

Kept up to date in the same transaction that writes a finished host (``HistoryStore._replace_hosts``), so the
fleet page (``orchestrator.web``) aggregates one row per PC instead of a year of nightly runs. The rules match
``latest_licence_select`` (the ``latest_licence`` view): a product's records come from the newest run that read
that product on that PC; a PC's result is its newest finished one. Writing an older result (a late import)
never replaces a newer one.

On PostgreSQL two controllers writing the same PC at once are serialised by the ``host_latest`` row: ``INSERT
… ON CONFLICT DO UPDATE`` locks the conflicting row (or waits for the other transaction's insert) until commit,
and everything else this module does for that PC happens after it in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from orchestrator.redact import redact_text
from orchestrator.results.schema import FLEET, TABLES

PROBLEM_STATUSES = ("failed", "unreachable", "auth_refused")
#: Categories of the fleet overview, in the order the page shows them (worst last).
CATEGORIES = ("licensed", "grace", "unlicensed", "failing", "unreachable", "unknown")
# LicenseStatus of SoftwareLicensingProduct: 0 Unlicensed, 1 Licensed, 2 OOB grace, 3 OOT grace,
# 4 non-genuine grace, 5 Notification, 6 extended grace (learn.microsoft.com, SoftwareLicensingProduct class).
_GRACE = frozenset({2, 3, 4, 6})
_LICENSED = 1

_HL = FLEET.host_latest
_LL = FLEET.licence_latest


def site_and_room(groups: Sequence[str]) -> tuple[str, str]:
    """A PC's site (school) and room from its inventory groups (sorted, as ``group_names``): the site is the
    group another of its groups extends by name (``school_a`` for ``school_a_room101``), the room its most
    specific group (the longest name other than the site). A PC in one group has that group as its room."""
    names = [g for g in groups if g not in ("all", "ungrouped")]
    site = next((g for g in names if any(o != g and o.startswith(g) for o in names)), "")
    rest = [g for g in names if g != site]
    room = max(rest, key=len) if rest else ""
    return site, room


def category_of(status: str, licence_statuses: Iterable[int | None]) -> str:
    """The overview category of a PC from its latest result and its latest licences."""
    if status == "unreachable":
        return "unreachable"
    if status in PROBLEM_STATUSES:
        return "failing"
    known = [s for s in licence_statuses if s is not None]
    if not known:
        return "unknown"
    if any(s not in _GRACE and s != _LICENSED for s in known):
        return "unlicensed"
    if any(s in _GRACE for s in known):
        return "grace"
    return "licensed"


def runs_out(expires: datetime | None, days_left: int | None, seen_at: datetime) -> datetime | None:
    """When a licence runs out: ``expires`` when known, else ``days_left`` counted from when it was read."""
    if expires is not None:
        return expires
    if days_left is None:
        return None
    return seen_at + timedelta(days=days_left)


def _groups(value: Any) -> list[str]:
    data = json.loads(value) if isinstance(value, str) else value
    return [str(g) for g in data or ()]


_HOST_COLUMNS = (
    "host", "run_id", "status", "category", "msg", "address", "site", "room", "finished", "error_code", "diagnosis",
    "fail_streak",
)  # fmt: skip


@dataclass(frozen=True)
class _Statements:
    """The statements of ``update_latest``, built once per dialect with bound parameters (``b_*``): building
    them anew for every finished PC cost about a tenth of the controller's CPU in a fleet audit
    (docs/performance.md). Each runs once per batch of PCs (``executemany`` or an ``IN`` list)."""

    upsert: Any
    seen: Any
    drop_older: Any
    found: Any
    set_category: Any


def _bind(column: Any) -> Any:
    return bindparam(f"b_{column.name}", type_=column.type)


def _build(dialect: str) -> _Statements:
    stmt = (postgresql.insert(_HL) if dialect == "postgresql" else sqlite.insert(_HL)).values(
        {name: _bind(_HL.c[name]) for name in _HOST_COLUMNS}
    )
    new = stmt.excluded
    same_run = _HL.c.run_id == new.run_id
    streak = case(
        (~or_(*(new.status == status for status in PROBLEM_STATUSES)), 0),  # no IN list: one executemany
        (same_run, case((_HL.c.fail_streak > 0, _HL.c.fail_streak), else_=1)),
        else_=_HL.c.fail_streak + 1,
    )
    changed = {k: getattr(new, k) for k in _HOST_COLUMNS if k not in ("host", "category", "fail_streak")}
    hosts = bindparam("b_hosts", expanding=True, type_=_HL.c.host.type)
    return _Statements(
        upsert=stmt.on_conflict_do_update(
            index_elements=[_HL.c.host], set_={**changed, "fail_streak": streak}, where=_HL.c.finished <= new.finished
        ),
        seen=select(_LL.c.host, _LL.c.product, _LL.c.seen_at).where(_LL.c.host.in_(hosts)),
        drop_older=delete(_LL).where(
            and_(
                _LL.c.host == _bind(_LL.c.host),
                _LL.c.product == _bind(_LL.c.product),
                _LL.c.seen_at <= _bind(_LL.c.seen_at),
            )
        ),
        found=select(_HL.c.host, _HL.c.status, _LL.c.license_status)
        .join_from(_HL, _LL, _LL.c.host == _HL.c.host, isouter=True)
        .where(_HL.c.host.in_(hosts)),
        set_category=update(_HL).where(_HL.c.host == _bind(_HL.c.host)).values(category=_bind(_HL.c.category)),
    )


_BUILT: dict[str, _Statements] = {}
#: PCs per statement at most in ``update_latest_many`` (``IN`` lists stay far below any backend's limit).
CHUNK = 500


def _statements(conn: Connection) -> _Statements:
    name = conn.dialect.name
    built = _BUILT.get(name)
    if built is None:
        built = _BUILT[name] = _build(name)  # a race only builds the same statements twice
    return built


Finished = tuple[Mapping[Any, Any], Sequence[Mapping[Any, Any]]]  # a host_results row and its licence_state rows


def update_latest(conn: Connection, host: Mapping[Any, Any], licences: Sequence[Mapping[Any, Any]]) -> None:
    """Fold one finished host (its ``host_results`` row and ``licence_state`` rows) into the latest tables."""
    update_latest_many(conn, [(host, licences)])


def update_latest_many(conn: Connection, finished: Sequence[Finished]) -> None:
    """Fold finished hosts into the latest tables with a few statements per batch, whatever its size. Hosts
    are handled in name order (one lock order for every writer: no deadlock on PostgreSQL). A host given twice,
    or two names that read the same once scrubbed of secrets, are folded one after the other, as they came."""
    keyed = [(redact_text(str(h["host"])), (h, lics)) for h, lics in finished]
    if len({key for key, _ in keyed}) < len(keyed):
        for _, one in keyed:
            _fold(conn, {redact_text(str(one[0]["host"])): one})
        return
    ordered = dict(sorted(keyed, key=lambda item: item[0]))
    names = list(ordered)
    for start in range(0, len(names), CHUNK):
        _fold(conn, {key: ordered[key] for key in names[start : start + CHUNK]})


def _fold(conn: Connection, batch: Mapping[str, Finished]) -> None:
    """``update_latest_many`` for hosts of distinct stored names (``batch``: stored name -> finished host)."""
    do = _statements(conn)
    conn.execute(do.upsert, [_host_latest_values(h) for h, _ in batch.values()])
    with_licences = [key for key, (_, lics) in batch.items() if lics]
    if with_licences:
        seen: dict[str, list[tuple[str, datetime]]] = {}
        for name, product, at in conn.execute(do.seen, {"b_hosts": with_licences}):
            seen.setdefault(str(name), []).append((str(product), at))
        drop: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []
        for key in with_licences:
            host, licences = batch[key]
            at = _as_stored(host["finished"])
            newer = {product for product, stored in seen.get(key, ()) if _as_stored(stored) > at}
            products = sorted({str(lic["product"]) for lic in licences})
            drop += [{"b_host": host["host"], "b_product": p, "b_seen_at": host["finished"]} for p in products]
            rows += [_licence_latest_row(lic) for lic in licences if redact_text(str(lic["product"])) not in newer]
        if drop:
            conn.execute(do.drop_older, drop)
        if rows:
            conn.execute(_LL.insert(), rows)
    found: dict[str, list[tuple[str, int | None]]] = {}
    for name, status, licence_status in conn.execute(do.found, {"b_hosts": list(batch)}):
        found.setdefault(str(name), []).append((str(status), licence_status))
    categories = []
    for key, (host, _) in batch.items():
        rows_found = found.get(key, [])
        status = rows_found[0][0] if rows_found else str(host["status"])
        category = category_of(status, (row[1] for row in rows_found))
        categories.append({"b_host": host["host"], "b_category": category})
    conn.execute(do.set_category, categories)


def _host_latest_values(host: Mapping[Any, Any]) -> dict[str, Any]:
    site, room = site_and_room(_groups(host["groups"]))
    problem = host["status"] in PROBLEM_STATUSES
    values = {name: host[name] for name in _HOST_COLUMNS if name not in ("category", "site", "room", "fail_streak")}
    values |= {"category": "unknown", "site": site, "room": room, "fail_streak": 1 if problem else 0}
    return {f"b_{k}": v for k, v in values.items()}


def _as_stored(at: datetime) -> datetime:
    """A time as the database compares it: UTC (naive values are UTC, as ``schema.UTCDateTime`` stores them)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _licence_latest_row(lic: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "host": lic["host"],
        "product": lic["product"],
        "seq": lic["seq"],
        "run_id": lic["run_id"],
        "name": lic["name"],
        "channel": lic["channel"],
        "status": lic["status"],
        "license_status": lic["license_status"],
        "days_left": lic["days_left"],
        "expires": lic["expires"],
        "runs_out": runs_out(lic["expires"], lic["days_left"], lic["seen_at"]),
        "kms_host": lic["kms_host"],
        "last_error": lic["last_error"],
        "seen_at": lic["seen_at"],
    }


#: Licence states counted per run for the trend chart.
TREND_STATES = ("licensed", "grace", "unlicensed")


def licence_state_of(license_status: int | None) -> str:
    """``licensed``, ``grace`` or ``unlicensed`` (anything else, unknown included)."""
    if license_status == _LICENSED:
        return "licensed"
    return "grace" if license_status in _GRACE else "unlicensed"


def run_licence_counts(conn: Connection, run_id: str) -> dict[str, int]:
    """The licences one run read, by state (one count per PC and product record), aggregated in SQL."""
    ls = TABLES.licence_state
    counts = dict.fromkeys(TREND_STATES, 0)
    stmt = select(ls.c.license_status, func.count()).where(ls.c.run_id == run_id).group_by(ls.c.license_status)
    for status, n in conn.execute(stmt):
        counts[licence_state_of(status)] += int(n)
    return counts


def store_run_licence_counts(conn: Connection, run_id: str) -> None:
    """Remember a finished run's counts (``run_licence_counts``), so the chart never re-reads its licences."""
    table = FLEET.run_licence_counts
    counts = run_licence_counts(conn, run_id)
    conn.execute(delete(table).where(table.c.run_id == run_id))
    conn.execute(table.insert(), [{"run_id": run_id, "state": k, "n": n} for k, n in counts.items()])


def rebuild_latest(conn: Connection, pending_msg: str) -> None:
    """Fill the latest tables from the whole history (after migration 2), oldest result first."""
    hr, ls = TABLES.host_results, TABLES.licence_state
    conn.execute(delete(_LL))
    conn.execute(delete(_HL))
    hosts = conn.execute(
        select(hr).where(~and_(hr.c.status == "not_run", hr.c.msg == pending_msg)).order_by(hr.c.finished, hr.c.id)
    )
    for row in list(hosts.mappings()):
        licences = conn.execute(
            select(ls).where(and_(ls.c.run_id == row["run_id"], ls.c.host == row["host"])).order_by(ls.c.seq)
        )
        update_latest(conn, row, list(licences.mappings()))
    runs = TABLES.runs
    for run_id in list(conn.scalars(select(runs.c.id).where(runs.c.finished.is_not(None)))):
        store_run_licence_counts(conn, str(run_id))


__all__ = [
    "CATEGORIES",
    "PROBLEM_STATUSES",
    "TREND_STATES",
    "category_of",
    "licence_state_of",
    "rebuild_latest",
    "run_licence_counts",
    "runs_out",
    "site_and_room",
    "store_run_licence_counts",
    "update_latest",
    "update_latest_many",
]
