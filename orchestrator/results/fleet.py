"""Fleet-wide questions over the history, aggregated in SQL: what the web page (``orchestrator.web``) shows.

Every query reads the per-PC tables of schema version 2 (``host_latest``, ``licence_latest``, one row per PC and
product) or a bounded slice of the history (one PC's results, one page of runs), so its cost does not grow with
the number of runs kept. Lists are paginated (``Page``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Select, and_, func, select

from orchestrator.results.latest import CATEGORIES, PROBLEM_STATUSES, TREND_STATES, run_licence_counts
from orchestrator.results.models import utcnow
from orchestrator.results.schema import FLEET, TABLES
from orchestrator.results.store import HistoryStore

_HL, _LL = FLEET.host_latest, FLEET.licence_latest
_RUNS, _HR = TABLES.runs, TABLES.host_results
MAX_PER_PAGE = 100_000  # a CSV export takes a whole table in one page


@dataclass(frozen=True)
class Page:
    """One page of a list: ``rows`` (plain dicts), the total count and where this page starts."""

    rows: list[dict[str, Any]]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass(frozen=True)
class RoomCounts:
    site: str
    room: str
    counts: Mapping[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class HostFilter:
    site: str | None = None
    room: str | None = None
    category: str | None = None
    diagnosis: str | None = None
    search: str | None = None
    min_streak: int = 0

    def where(self) -> Any:
        parts: list[Any] = []
        if self.site is not None:
            parts.append(_HL.c.site == self.site)
        if self.room is not None:
            parts.append(_HL.c.room == self.room)
        if self.category:
            parts.append(_HL.c.category == self.category)
        if self.diagnosis:
            parts.append(_HL.c.diagnosis == self.diagnosis)
        if self.search:
            escaped = self.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            parts.append(_HL.c.host.like(f"%{escaped}%", escape="\\"))
        if self.min_streak > 0:
            parts.append(_HL.c.fail_streak >= self.min_streak)
        return and_(True, *parts)


def _paged(conn: Connection, stmt: Select[Any], count: Select[Any], page: int, per_page: int) -> Page:
    per = max(1, min(per_page, MAX_PER_PAGE))
    at = max(1, page)
    total = int(conn.scalar(count) or 0)
    rows = [dict(r) for r in conn.execute(stmt.limit(per).offset((at - 1) * per)).mappings()]
    return Page(rows, total, at, per)


def overview(store: HistoryStore, site: str | None = None) -> list[RoomCounts]:
    """PCs per site and room by category of their latest result (``latest.CATEGORIES``)."""
    stmt = select(_HL.c.site, _HL.c.room, _HL.c.category, func.count()).group_by(_HL.c.site, _HL.c.room, _HL.c.category)
    if site is not None:
        stmt = stmt.where(_HL.c.site == site)

    def work(conn: Connection) -> list[RoomCounts]:
        found: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(CATEGORIES, 0))
        for s, room, cat, n in conn.execute(stmt):
            found[(str(s), str(room))][str(cat)] = int(n)
        return [RoomCounts(s, r, c) for (s, r), c in sorted(found.items())]

    return store.read(work)


def hosts(store: HistoryStore, flt: HostFilter, page: int = 1, per_page: int = 100) -> Page:
    """PCs (their latest result) matching ``flt``, worst streak first, then by name."""
    cond = flt.where()
    stmt = select(_HL).where(cond).order_by(_HL.c.fail_streak.desc(), _HL.c.site, _HL.c.room, _HL.c.host)
    count = select(func.count()).select_from(_HL).where(cond)
    return store.read(lambda conn: _paged(conn, stmt, count, page, per_page))


def causes(store: HistoryStore, site: str | None = None) -> list[tuple[str, int]]:
    """Why PCs fail now: the diagnosis of each failing PC's latest result, most common first."""
    n = func.count().label("n")
    stmt = (
        select(_HL.c.diagnosis, n)
        .where(_HL.c.category.in_(("failing", "unreachable")))
        .group_by(_HL.c.diagnosis)
        .order_by(n.desc(), _HL.c.diagnosis)
    )
    if site is not None:
        stmt = stmt.where(_HL.c.site == site)
    return store.read(lambda conn: [(str(d or ""), int(k)) for d, k in conn.execute(stmt)])


def due(
    store: HistoryStore,
    within_days: int,
    *,
    product: str | None = None,
    now: datetime | None = None,
    page: int = 1,
    per_page: int = 100,
) -> tuple[Page, list[tuple[str, int]]]:
    """Licences that run out within ``within_days`` (expired ones included), soonest first, and the count per
    product."""
    limit = (now or utcnow()) + timedelta(days=within_days)
    cond = and_(_LL.c.runs_out.is_not(None), _LL.c.runs_out <= limit)
    if product:
        cond = and_(cond, _LL.c.product == product)
    cols = [*_LL.c, _HL.c.site, _HL.c.room, _HL.c.address]
    joined = _LL.join(_HL, _HL.c.host == _LL.c.host, isouter=True)
    stmt = select(*cols).select_from(joined).where(cond).order_by(_LL.c.runs_out, _LL.c.host, _LL.c.seq)
    count = select(func.count()).select_from(_LL).where(cond)
    base = and_(_LL.c.runs_out.is_not(None), _LL.c.runs_out <= limit)
    per_product = select(_LL.c.product, func.count()).where(base).group_by(_LL.c.product).order_by(_LL.c.product)

    def work(conn: Connection) -> tuple[Page, list[tuple[str, int]]]:
        return _paged(conn, stmt, count, page, per_page), [(str(p), int(n)) for p, n in conn.execute(per_product)]

    return store.read(work)


@dataclass(frozen=True)
class HostPage:
    latest: dict[str, Any] | None
    licences: list[dict[str, Any]]
    results: Page


def host_page(store: HistoryStore, host: str, page: int = 1, per_page: int = 50) -> HostPage:
    """One PC: its latest result and licences, and every run's result for it, newest first."""
    results = (
        select(_HR.c.run_id, _HR.c.status, _HR.c.msg, _HR.c.finished, _HR.c.error_code, _HR.c.diagnosis)
        .add_columns(_RUNS.c.playbook)
        .join_from(_HR, _RUNS, _RUNS.c.id == _HR.c.run_id)
        .where(_HR.c.host == host)
        .order_by(_HR.c.finished.desc(), _HR.c.id.desc())
    )
    count = select(func.count()).select_from(_HR).where(_HR.c.host == host)

    def work(conn: Connection) -> HostPage:
        latest = conn.execute(select(_HL).where(_HL.c.host == host)).mappings().first()
        lic = conn.execute(select(_LL).where(_LL.c.host == host).order_by(_LL.c.product, _LL.c.seq)).mappings()
        return HostPage(
            dict(latest) if latest else None, [dict(r) for r in lic], _paged(conn, results, count, page, per_page)
        )

    return store.read(work)


def runs_page(store: HistoryStore, page: int = 1, per_page: int = 50) -> Page:
    """Runs newest first with their host counts per status (``counts``)."""
    cols = [_RUNS.c.id, _RUNS.c.playbook, _RUNS.c.started, _RUNS.c.finished, _RUNS.c.state, _RUNS.c.exit_code]
    cols += [_RUNS.c.interrupted, _RUNS.c.controller, _RUNS.c.check_mode, _RUNS.c.counts]
    stmt = select(*cols).order_by(_RUNS.c.started.desc(), _RUNS.c.id.desc())
    count = select(func.count()).select_from(_RUNS)

    def work(conn: Connection) -> Page:
        got = _paged(conn, stmt, count, page, per_page)
        # finished runs kept their counts; only runs still running (or killed) are counted here
        ids = [r["id"] for r in got.rows if not r["counts"]]
        counts: dict[str, dict[str, int]] = defaultdict(dict)
        if ids:
            q = select(_HR.c.run_id, _HR.c.status, func.count()).where(_HR.c.run_id.in_(ids))
            for run_id, status, n in conn.execute(q.group_by(_HR.c.run_id, _HR.c.status)):
                counts[str(run_id)][str(status)] = int(n)
        for row in got.rows:
            row["counts"] = dict(row["counts"] or counts.get(row["id"], {}))
        return got

    return store.read(work)


def run_hosts(store: HistoryStore, run_id: str, status: str | None = None, page: int = 1, per_page: int = 100) -> Page:
    """The PCs of one run (one status, or those that changed or failed when ``status`` is None)."""
    wanted = [status] if status else ["changed", *PROBLEM_STATUSES]
    cond = and_(_HR.c.run_id == run_id, _HR.c.status.in_(wanted))
    cols = [_HR.c.host, _HR.c.status, _HR.c.msg, _HR.c.finished, _HR.c.error_code, _HR.c.diagnosis, _HR.c.room]
    stmt = select(*cols).where(cond).order_by(_HR.c.status, _HR.c.host)
    count = select(func.count()).select_from(_HR).where(cond)
    return store.read(lambda conn: _paged(conn, stmt, count, page, per_page))


@dataclass(frozen=True)
class Series:
    """Runs of one playbook on one inventory: a schedule as the history sees it."""

    playbook: str
    inventory: str
    runs: int
    first: datetime
    last: datetime
    last_id: str
    last_state: str
    last_exit: int | None
    interval: timedelta | None = field(default=None)  # the usual time between runs

    def late(self, now: datetime) -> bool:
        """No run for more than one and a half usual intervals (a nightly run that did not happen)."""
        return self.interval is not None and now - self.last > self.interval * 1.5


def schedules(store: HistoryStore) -> list[Series]:
    """Each playbook × inventory with its number of runs, first and last run and the usual interval."""
    stmt = select(
        _RUNS.c.playbook, _RUNS.c.inventory, func.count(), func.min(_RUNS.c.started), func.max(_RUNS.c.started)
    ).group_by(_RUNS.c.playbook, _RUNS.c.inventory)

    def work(conn: Connection) -> list[Series]:
        out: list[Series] = []
        for playbook, inventory, n, first, _last in conn.execute(stmt).all():
            last_run = conn.execute(
                select(_RUNS.c.id, _RUNS.c.state, _RUNS.c.exit_code, _RUNS.c.started)
                .where(and_(_RUNS.c.playbook == playbook, _RUNS.c.inventory == inventory))
                .order_by(_RUNS.c.started.desc())
                .limit(1)
            ).first()
            assert last_run is not None
            first_at, last_at = _aware(first), last_run.started
            interval = (last_at - first_at) / (int(n) - 1) if int(n) > 1 else None
            out.append(
                Series(
                    str(playbook),
                    ", ".join(inventory or ()),
                    int(n),
                    first_at,
                    last_at,
                    str(last_run.id),
                    str(last_run.state),
                    last_run.exit_code,
                    interval,
                )
            )
        return sorted(out, key=lambda s: s.last, reverse=True)

    return store.read(work)


def _aware(value: Any) -> datetime:
    # min()/max() bypass the column type on SQLite (they come back as text)
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when if when.tzinfo else when.replace(tzinfo=utcnow().tzinfo)


def licence_trend(store: HistoryStore, last_runs: int = 30) -> list[tuple[datetime, str, dict[str, int]]]:
    """For the newest ``last_runs`` runs (oldest first): when, the run id, and the licences it read by state
    (``TREND_STATES``; one count per PC and product). Finished runs' counts were kept when they finished."""
    table = FLEET.run_licence_counts
    recent = select(_RUNS.c.id, _RUNS.c.started).order_by(_RUNS.c.started.desc()).limit(max(1, last_runs))

    def work(conn: Connection) -> list[tuple[datetime, str, dict[str, int]]]:
        runs = conn.execute(recent).all()
        ids = [r.id for r in runs]
        counts: dict[str, dict[str, int]] = {}
        for run_id, state, n in conn.execute(select(table).where(table.c.run_id.in_(ids))):
            counts.setdefault(str(run_id), dict.fromkeys(TREND_STATES, 0))[str(state)] = int(n)
        for run_id in ids:
            if run_id not in counts:  # still running, or never finished
                counts[run_id] = run_licence_counts(conn, run_id)
        return [(r.started, str(r.id), counts[str(r.id)]) for r in reversed(runs)]

    return store.read(work)


def sites(store: HistoryStore) -> list[str]:
    return store.read(lambda conn: [str(s) for s in conn.scalars(select(_HL.c.site).distinct().order_by(_HL.c.site))])


def products(store: HistoryStore) -> list[str]:
    stmt = select(_LL.c.product).distinct().order_by(_LL.c.product)
    return store.read(lambda conn: [str(p) for p in conn.scalars(stmt)])


__all__ = [
    "TREND_STATES",
    "HostFilter",
    "HostPage",
    "Page",
    "RoomCounts",
    "Series",
    "causes",
    "due",
    "host_page",
    "hosts",
    "licence_trend",
    "overview",
    "products",
    "run_hosts",
    "runs_page",
    "schedules",
    "sites",
]
