"""The views of ``kmsfleet serve``: each turns a request's query into a ``Page`` from ``results.fleet`` queries.

Views are plain functions of ``(store, Ask)``, so they are tested without a server; ``app.py`` serves them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from orchestrator.knowledge import catalogue
from orchestrator.knowledge.i18n import t
from orchestrator.results import fleet
from orchestrator.results.latest import CATEGORIES, PROBLEM_STATUSES
from orchestrator.results.models import utcnow
from orchestrator.results.reports._common import local_time
from orchestrator.results.store import HistoryStore
from orchestrator.web import charts
from orchestrator.web.page import Block, Cell, Chart, Choice, Fix, Form, Note, Page, Pager, Table, cell

PER_PAGE = 100
CSV_ROWS = 100_000  # a CSV export holds every row of its table up to this many
DEFAULT_DUE_DAYS = 30
MAX_DUE_DAYS = 3650


@dataclass(frozen=True)
class Ask:
    """One request as the views see it: the path, its query and the language chosen."""

    path: str
    query: Mapping[str, str]
    lang: str
    lang_in_query: bool
    csv: str | None = None  # the table wanted as CSV

    def get(self, name: str) -> str | None:
        value = self.query.get(name, "").strip()
        return value or None

    def number(self, name: str, default: int, low: int = 1, high: int = 1_000_000) -> int:
        try:
            return max(low, min(high, int(self.query.get(name, ""))))
        except ValueError:
            return default

    def url(self, path: str, **params: str | int | None) -> str:
        """A link inside the site, keeping the language when it came from the query."""
        query = {k: str(v) for k, v in params.items() if v not in (None, "")}
        if self.lang_in_query:
            query["lang"] = self.lang
        return path + ("?" + urlencode(query) if query else "")

    def here(self, **changes: str | int | None) -> str:
        params: dict[str, str | int | None] = {k: v for k, v in self.query.items() if k != "lang"}
        params.update(changes)
        return self.url(self.path, **params)

    @property
    def per_page(self) -> int:
        return CSV_ROWS if self.csv else PER_PAGE

    @property
    def page(self) -> int:
        return 1 if self.csv else self.number("page", 1)


def _tr(ask: Ask, key: str, **kw: object) -> str:
    return t(key, ask.lang, **kw)


def _when(value: datetime | None) -> str:
    return local_time(value) if value else ""


def _pager(ask: Ask, got: fleet.Page) -> Pager:
    return Pager(
        got.page,
        got.pages,
        got.total,
        ask.here(page=got.page - 1) if got.page > 1 else None,
        ask.here(page=got.page + 1) if got.page < got.pages else None,
        _tr(ask, "web.page", page=got.page, pages=got.pages, total=got.total),
    )


def _table(
    ask: Ask, table_id: str, caption: str, headers: list[str], rows: list[list[Cell]], got: fleet.Page | None = None
) -> Table:
    return Table(table_id, caption, headers, rows, ask.here(csv=table_id, page=None), _pager(ask, got) if got else None)


def _cat(ask: Ask, category: str) -> str:
    return _tr(ask, f"web.cat.{category}")


_CAT_CSS = {"licensed": "good", "grace": "warn", "unlicensed": "bad", "failing": "bad", "unreachable": "bad"}


def _status(ask: Ask, status: str) -> Cell:
    return cell(_tr(ask, f"status.{status}"), css="bad" if status in PROBLEM_STATUSES else "")


def _diagnosis(ask: Ask, code: str | None) -> str:
    if not code:
        return ""
    entry = catalogue.lookup(code)
    return f"{code} · {entry.text(ask.lang).title}" if entry else code


def _pc_link(ask: Ask, host: str) -> str:
    return ask.url("/pc/" + quote(host, safe=""))


def _site_name(ask: Ask, site: str) -> str:
    return site or _tr(ask, "web.no_site")


def _room_name(ask: Ask, room: str) -> str:
    return room or _tr(ask, "web.no_room")


def _site_form(ask: Ask, store: HistoryStore, action: str, *extra: Choice) -> Form:
    sites = [("", _tr(ask, "web.all"))] + [(s, _site_name(ask, s)) for s in fleet.sites(store) if s]
    fields = [Choice("site", _tr(ask, "web.col.site"), ask.get("site") or "", sites), *extra]
    hidden = {"lang": ask.lang} if ask.lang_in_query else {}
    return Form(action, fields, _tr(ask, "web.filter"), hidden)


# --------------------------------------------------------------------------------------------- overview


def overview(store: HistoryStore, ask: Ask) -> Page:
    site = ask.get("site")
    rooms = fleet.overview(store, site)
    headers = [_tr(ask, "web.col.site"), _tr(ask, "web.col.room")] + [_cat(ask, c) for c in CATEGORIES]
    headers.append(_tr(ask, "web.col.total"))
    totals = dict.fromkeys(CATEGORIES, 0)
    rows: list[list[Cell]] = []
    for rc in rooms:
        row = [
            cell(_site_name(ask, rc.site), ask.url("/", site=rc.site) if rc.site else None),
            cell(_room_name(ask, rc.room), ask.url("/hosts", site=rc.site, room=rc.room)),
        ]
        for c in CATEGORIES:
            n = rc.counts.get(c, 0)
            totals[c] += n
            link = ask.url("/hosts", site=rc.site, room=rc.room, category=c) if n else None
            row.append(cell(n, link, "n " + (_CAT_CSS.get(c, "") if n else "")))
        row.append(cell(rc.total, css="n"))
        rows.append(row)
    rows.append(
        [cell(_tr(ask, "web.overall")), cell("")]
        + [cell(totals[c], ask.url("/hosts", site=site, category=c) if totals[c] else None, "n") for c in CATEGORIES]
        + [cell(sum(totals.values()), css="n")]
    )
    blocks: list[Block] = [_site_form(ask, store, "/")]
    if not rooms:
        blocks.append(Note(_tr(ask, "web.empty_history")))
    blocks.append(_table(ask, "rooms", _tr(ask, "web.nav.overview"), headers, rows))
    blocks += _causes_blocks(store, ask, site)
    blocks += _trend_blocks(store, ask)
    return Page(_tr(ask, "web.title"), _tr(ask, "web.nav.overview"), blocks)


def _causes_blocks(store: HistoryStore, ask: Ask, site: str | None) -> list[Block]:
    found = fleet.causes(store, site)
    title = _tr(ask, "web.chart.causes")
    bars = [
        (_diagnosis(ask, d) or _cat(ask, "unknown"), n, ask.url("/hosts", site=site, diagnosis=d)) for d, n in found
    ]
    rows = [[cell(label, link), cell(n, css="n")] for label, n, link in bars]
    out: list[Block] = []
    if bars:
        out.append(Chart(title, charts.horizontal_bars(bars[:15], title=title)))
    out.append(_table(ask, "causes", title, [_tr(ask, "web.col.diagnosis"), _tr(ask, "web.col.total")], rows))
    return out


def _trend_blocks(store: HistoryStore, ask: Ask) -> list[Block]:
    trend = fleet.licence_trend(store, ask.number("runs", 30, 1, 365))
    title = _tr(ask, "web.chart.trend")
    labels = {s: _cat(ask, s) for s in fleet.TREND_STATES}
    columns = [(f"{_when(started)} {run_id}", counts) for started, run_id, counts in trend]
    rows = [
        [cell(run_id, ask.url("/runs/" + quote(run_id, safe=""))), cell(_when(started))]
        + [cell(counts[s], css="n") for s in fleet.TREND_STATES]
        for started, run_id, counts in trend
    ]
    headers = [_tr(ask, "web.col.run"), _tr(ask, "web.col.started"), *labels.values()]
    out: list[Block] = []
    if trend:
        out.append(Chart(title, charts.stacked_bars(columns, labels, title=title)))
    out.append(_table(ask, "trend", title, headers, rows))
    return out


# --------------------------------------------------------------------------------------------- PCs


def hosts(store: HistoryStore, ask: Ask) -> Page:
    category = ask.get("category")
    flt = fleet.HostFilter(
        site=ask.get("site"),
        room=ask.get("room"),
        category=category if category in CATEGORIES else None,
        diagnosis=ask.get("diagnosis"),
        search=ask.get("q"),
    )
    got = fleet.hosts(store, flt, ask.page, ask.per_page)
    headers = [
        _tr(ask, "web.col.host"),
        _tr(ask, "web.col.site"),
        _tr(ask, "web.col.room"),
        _tr(ask, "web.col.category"),
        _tr(ask, "web.col.status"),
        _tr(ask, "web.col.diagnosis"),
        _tr(ask, "web.col.streak"),
        _tr(ask, "web.col.finished"),
        _tr(ask, "web.col.address"),
    ]
    rows = [
        [
            cell(r["host"], _pc_link(ask, r["host"])),
            cell(_site_name(ask, r["site"])),
            cell(_room_name(ask, r["room"])),
            cell(_cat(ask, r["category"]), css=_CAT_CSS.get(r["category"], "")),
            _status(ask, r["status"]),
            cell(_diagnosis(ask, r["diagnosis"])),
            cell(r["fail_streak"], css="n"),
            cell(_when(r["finished"])),
            cell(r["address"]),
        ]
        for r in got.rows
    ]
    cats = [("", _tr(ask, "web.all"))] + [(c, _cat(ask, c)) for c in CATEGORIES]
    form = _site_form(
        ask,
        store,
        "/hosts",
        Choice("category", _tr(ask, "web.col.category"), category or "", cats),
        Choice("q", _tr(ask, "web.search"), ask.get("q") or ""),
    )
    if flt.room is not None:
        form = Form(form.action, form.fields, form.submit, {**form.hidden, "room": flt.room})
    if flt.diagnosis:
        form = Form(form.action, form.fields, form.submit, {**form.hidden, "diagnosis": flt.diagnosis})
    table = _table(ask, "hosts", _tr(ask, "web.nav.hosts"), headers, rows, got)
    return Page(_tr(ask, "web.title"), _tr(ask, "web.nav.hosts"), [form, table])


def _headers(ask: Ask, *columns: str) -> list[str]:
    return [_tr(ask, f"web.col.{c}") for c in columns]


def _pc_latest(ask: Ask, r: Mapping[str, Any]) -> Table:
    """The PC's latest result: where it is, its category and status, since when it has been failing."""
    headers = _headers(ask, "site", "room", "category", "status", "diagnosis", "streak", "finished", "message")
    row = [
        cell(_site_name(ask, r["site"]), ask.url("/", site=r["site"])),
        cell(_room_name(ask, r["room"]), ask.url("/hosts", site=r["site"], room=r["room"])),
        cell(_cat(ask, r["category"]), css=_CAT_CSS.get(r["category"], "")),
        _status(ask, r["status"]),
        cell(_diagnosis(ask, r["diagnosis"])),
        cell(r["fail_streak"], css="n"),
        cell(_when(r["finished"])),
        cell(r["msg"]),
    ]
    return _table(ask, "latest", _tr(ask, "web.pc.latest"), headers, [row])


def _pc_licences(ask: Ask, got: fleet.HostPage) -> Table:
    """The PC's latest licences, with when each runs out."""
    headers = _headers(ask, "product", "licence", "state", "runs_out", "days_left", "kms_host", "finished")
    now = utcnow()
    rows = [
        [
            cell(r["product"]),
            cell(r["name"]),
            cell(r["status"]),
            cell(_when(r["runs_out"])),
            cell(_days(r["runs_out"], now), css="n"),
            cell(r["kms_host"]),
            cell(_when(r["seen_at"])),
        ]
        for r in got.licences
    ]
    return _table(ask, "licences", _tr(ask, "web.pc.licences"), headers, rows)


def _pc_history(ask: Ask, got: fleet.HostPage) -> Table:
    """Every run's result for the PC, newest first, a page at a time."""
    headers = _headers(ask, "finished", "run", "playbook", "status", "diagnosis", "message")
    rows = [
        [
            cell(_when(r["finished"])),
            cell(r["run_id"], ask.url("/runs/" + quote(r["run_id"], safe=""))),
            cell(r["playbook"]),
            _status(ask, r["status"]),
            cell(_diagnosis(ask, r["diagnosis"])),
            cell(r["msg"]),
        ]
        for r in got.results.rows
    ]
    return _table(ask, "history", _tr(ask, "web.pc.history"), headers, rows, got.results)


def pc(store: HistoryStore, ask: Ask, host: str) -> Page:
    got = fleet.host_page(store, host, ask.page, ask.per_page)
    heading = _tr(ask, "web.pc.heading", host=host)
    if got.latest is None and not got.results.total:
        return Page(_tr(ask, "web.title"), heading, [Note(_tr(ask, "web.pc.unknown"))])
    blocks: list[Block | None] = []
    if got.latest:
        blocks.append(_pc_latest(ask, got.latest))
    blocks += [_pc_licences(ask, got), _pc_history(ask, got)]
    codes = [r["diagnosis"] for r in got.results.rows if r["diagnosis"]]
    if got.latest and got.latest["diagnosis"]:
        codes.insert(0, got.latest["diagnosis"])
    blocks += [_fix(ask, code) for code in dict.fromkeys(codes)]
    return Page(_tr(ask, "web.title"), heading, [b for b in blocks if b is not None])


def _days(when: datetime | None, now: datetime) -> str:
    if when is None:
        return ""
    return str(-(-int((when - now).total_seconds()) // 86400))


def _fix(ask: Ask, code: str) -> Block:
    entry = catalogue.lookup(code)
    if entry is None:
        return Note(code)
    text = entry.text(ask.lang)
    parts = [(_tr(ask, "web.fix.meaning"), text.meaning), (_tr(ask, "web.fix.cause"), text.cause)]
    return Fix(code, text.title, parts, _tr(ask, "web.fix.steps"), text.fix)


# --------------------------------------------------------------------------------------------- due


def due(store: HistoryStore, ask: Ask) -> Page:
    days = ask.number("days", DEFAULT_DUE_DAYS, 0, MAX_DUE_DAYS)
    product = ask.get("product")
    now = utcnow()
    got, per_product = fleet.due(store, days, product=product, now=now, page=ask.page, per_page=ask.per_page)
    heading = _tr(ask, "web.due.heading", days=days)
    summary = [[cell(p, ask.url("/due", days=days, product=p)), cell(n, css="n")] for p, n in per_product]
    headers = [
        _tr(ask, "web.col.runs_out"),
        _tr(ask, "web.col.days_left"),
        _tr(ask, "web.col.host"),
        _tr(ask, "web.col.site"),
        _tr(ask, "web.col.room"),
        _tr(ask, "web.col.product"),
        _tr(ask, "web.col.licence"),
        _tr(ask, "web.col.state"),
        _tr(ask, "web.col.kms_host"),
    ]
    rows = [
        [
            cell(_when(r["runs_out"])),
            cell(_days(r["runs_out"], now), css="n bad" if r["runs_out"] <= now else "n warn"),
            cell(r["host"], _pc_link(ask, r["host"])),
            cell(_site_name(ask, r["site"] or "")),
            cell(_room_name(ask, r["room"] or "")),
            cell(r["product"]),
            cell(r["name"]),
            cell(r["status"]),
            cell(r["kms_host"]),
        ]
        for r in got.rows
    ]
    products = [("", _tr(ask, "web.all"))] + [(p, p) for p in fleet.products(store)]
    hidden = {"lang": ask.lang} if ask.lang_in_query else {}
    form = Form(
        "/due",
        [
            Choice("days", _tr(ask, "web.due.within"), str(days)),
            Choice("product", _tr(ask, "web.col.product"), product or "", products),
        ],
        _tr(ask, "web.filter"),
        hidden,
    )
    return Page(
        _tr(ask, "web.title"),
        heading,
        [
            form,
            _table(ask, "due-products", heading, [_tr(ask, "web.col.product"), _tr(ask, "web.col.total")], summary),
            _table(ask, "due", heading, headers, rows, got),
        ],
    )


# --------------------------------------------------------------------------------------------- runs


def runs(store: HistoryStore, ask: Ask) -> Page:
    got = fleet.runs_page(store, ask.page, ask.per_page)
    statuses = ["ok", "changed", "failed", "unreachable", "auth_refused", "not_run"]
    headers = [
        _tr(ask, "web.col.started"),
        _tr(ask, "web.col.run"),
        _tr(ask, "web.col.playbook"),
        _tr(ask, "web.col.state"),
    ] + [_tr(ask, f"status.{s}") for s in statuses]
    rows = [
        [
            cell(_when(r["started"])),
            cell(r["id"], ask.url("/runs/" + quote(r["id"], safe=""))),
            cell(r["playbook"]),
            cell(r["state"] if r["finished"] else _tr(ask, "status.interrupted")),
        ]
        + [
            cell(
                r["counts"].get(s, 0),
                ask.url("/runs/" + quote(r["id"], safe=""), status=s) if r["counts"].get(s) else None,
                "n " + ("bad" if s in PROBLEM_STATUSES and r["counts"].get(s) else ""),
            )
            for s in statuses
        ]
        for r in got.rows
    ]
    return Page(
        _tr(ask, "web.title"),
        _tr(ask, "web.nav.runs"),
        [_table(ask, "runs", _tr(ask, "web.nav.runs"), headers, rows, got)],
    )


def run(store: HistoryStore, ask: Ask, run_id: str) -> Page:
    status = ask.get("status")
    got = fleet.run_hosts(store, run_id, status, ask.page, ask.per_page)
    headers = [
        _tr(ask, "web.col.host"),
        _tr(ask, "web.col.room"),
        _tr(ask, "web.col.status"),
        _tr(ask, "web.col.diagnosis"),
        _tr(ask, "web.col.finished"),
        _tr(ask, "web.col.message"),
    ]
    rows = [
        [
            cell(r["host"], _pc_link(ask, r["host"])),
            cell(r["room"]),
            _status(ask, r["status"]),
            cell(_diagnosis(ask, r["diagnosis"])),
            cell(_when(r["finished"])),
            cell(r["msg"]),
        ]
        for r in got.rows
    ]
    heading = _tr(ask, "web.run.heading", run=run_id)
    return Page(_tr(ask, "web.title"), heading, [_table(ask, "run-hosts", heading, headers, rows, got)])


def schedules(store: HistoryStore, ask: Ask) -> Page:
    now = utcnow()
    headers = [
        _tr(ask, "web.col.playbook"),
        _tr(ask, "web.col.inventory"),
        _tr(ask, "web.col.runs"),
        _tr(ask, "web.col.interval"),
        _tr(ask, "web.col.last_run"),
        _tr(ask, "web.col.run"),
        _tr(ask, "web.col.on_time"),
    ]
    rows = []
    for s in fleet.schedules(store):
        late = s.late(now)
        rows.append(
            [
                cell(s.playbook),
                cell(s.inventory),
                cell(s.runs, css="n"),
                cell(_interval(s.interval)),
                cell(_when(s.last)),
                cell(s.last_id, ask.url("/runs/" + quote(s.last_id, safe=""))),
                cell(_tr(ask, "web.on_time.late" if late else "web.on_time.yes"), css="bad" if late else "good"),
            ]
        )
    title = _tr(ask, "web.nav.schedules")
    return Page(_tr(ask, "web.title"), title, [_table(ask, "schedules", title, headers, rows)])


def _interval(value: object) -> str:
    if value is None:
        return ""
    text = str(value)
    return text.split(".", 1)[0]


View = Callable[[HistoryStore, Ask], Page]
NAV: tuple[tuple[str, str, str], ...] = (
    ("overview", "/", "web.nav.overview"),
    ("hosts", "/hosts", "web.nav.hosts"),
    ("due", "/due", "web.nav.due"),
    ("runs", "/runs", "web.nav.runs"),
    ("schedules", "/schedules", "web.nav.schedules"),
)

__all__ = ["NAV", "Ask", "due", "hosts", "overview", "pc", "run", "runs", "schedules"]
