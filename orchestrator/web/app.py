"""The aiohttp application of ``kmsfleet serve``: read-only pages over the history, optional token.

Nothing on the page loads from elsewhere: no script at all, styles and SVG charts inline, and a Content
Security Policy that forbids any other source. Only GET and HEAD are answered. With a token configured every
request must carry it (HTTP Basic with the token as password, any user name, or ``Authorization: Bearer``),
compared in constant time; the token is never logged (access logging is off).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from orchestrator.knowledge.i18n import DEFAULT_LANG, normalise_lang, t
from orchestrator.results.store import HistoryStore, RunNotFound
from orchestrator.web import views
from orchestrator.web.page import Page, render

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
STORE_KEY: web.AppKey[HistoryStore] = web.AppKey("store", HistoryStore)
TOKEN_KEY: web.AppKey[bytes | None] = web.AppKey("token", bytes)
_LANG_RANGE = re.compile(r"\s*([A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*)\s*(?:;\s*q\s*=\s*([0-9.]+))?\s*$")
_CSV_ID = re.compile(r"^[a-z][a-z-]{0,30}$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def choose_lang(query_lang: str | None, accept_language: str | None) -> tuple[str, bool]:
    """The page language: ``?lang=`` when valid, else the best of Accept-Language (RFC 9110 §12.5.4), else
    English. Second value: whether it came from the query (then links carry it)."""
    if query_lang:
        try:
            return normalise_lang(query_lang), True
        except ValueError:
            pass
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "")[:1000].split(",")[:30]):
        m = _LANG_RANGE.match(part)
        if not m:
            continue
        try:
            q = float(m.group(2)) if m.group(2) else 1.0
        except ValueError:
            continue
        tag = m.group(1).lower()
        lang = "zh-TW" if tag == "zh" or tag.startswith("zh-") else "en" if tag == "en" or tag.startswith("en-") else ""
        if lang and q > 0:
            ranked.append((-q, i, lang))
    return (min(ranked)[2] if ranked else DEFAULT_LANG), False


def _presented_token(request: web.Request) -> bytes | None:
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip().encode()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
        except ValueError:
            return None
        return decoded.partition(b":")[2]
    return None


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method not in ("GET", "HEAD"):
        raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"], headers=_HEADERS)
    token = request.app[TOKEN_KEY]
    if token is not None:
        given = _presented_token(request) or b""
        if not hmac.compare_digest(given, token):
            raise web.HTTPUnauthorized(
                headers={**_HEADERS, "WWW-Authenticate": 'Basic realm="kmsfleet", charset="UTF-8"'},
                text="a token is required: give it as the password (any user name)",
            )
    response = await handler(request)
    response.headers.update(_HEADERS)
    return response


def _ask(request: web.Request) -> views.Ask:
    lang, from_query = choose_lang(request.query.get("lang"), request.headers.get("Accept-Language"))
    query = {k: v for k, v in request.query.items() if k not in ("csv",)}
    wanted = request.query.get("csv")
    return views.Ask(request.path, query, lang, from_query, wanted if wanted and _CSV_ID.match(wanted) else None)


def _respond(page: Page, ask: views.Ask) -> web.Response:
    if ask.csv is not None:
        table = page.table(ask.csv)
        if table is None:
            raise web.HTTPNotFound(text="no such table on this page", headers=_HEADERS)
        name = f"kmsfleet-{ask.csv}.csv"
        return web.Response(
            body=table.csv(),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    other = "en" if ask.lang == "zh-TW" else "zh-TW"
    query = {k: v for k, v in ask.query.items() if k != "lang"}
    chrome: dict[str, Any] = {
        "lang": ask.lang,
        "site_title": t("web.title", ask.lang),
        "nav": [
            {"id": nav_id, "url": ask.url(path), "label": t(key, ask.lang), "here": ask.path == path}
            for nav_id, path, key in views.NAV
        ],
        "other_lang": other,
        "other_lang_label": "English" if other == "en" else "中文",
        "other_lang_url": views.Ask(ask.path, query, other, True).url(ask.path, **query),
        "csv_label": t("web.csv", ask.lang),
        "no_data": t("web.no_data", ask.lang),
        "prev_label": t("web.prev", ask.lang),
        "next_label": t("web.next", ask.lang),
    }
    return web.Response(text=render(page, chrome), content_type="text/html", charset="utf-8")


def _route(view: Callable[..., Page], *, arg: str | None = None) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        ask = _ask(request)
        store = request.app[STORE_KEY]
        extra = [unquote(request.match_info[arg])] if arg else []
        try:
            page = await asyncio.to_thread(view, store, ask, *extra)
        except RunNotFound as exc:
            raise web.HTTPNotFound(text=str(exc), headers=_HEADERS) from None
        return _respond(page, ask)

    return handler


def make_app(store: HistoryStore, token: str | None = None) -> web.Application:
    """The web application over ``store``; ``token``: required of every request when given."""
    app = web.Application(middlewares=[_guard], client_max_size=64 * 1024)
    app[STORE_KEY] = store
    app[TOKEN_KEY] = token.encode() if token else None
    app.router.add_get("/", _route(views.overview))
    app.router.add_get("/hosts", _route(views.hosts))
    app.router.add_get("/due", _route(views.due))
    app.router.add_get("/pc/{host}", _route(views.pc, arg="host"))
    app.router.add_get("/runs", _route(views.runs))
    app.router.add_get("/runs/{run}", _route(views.run, arg="run"))
    app.router.add_get("/schedules", _route(views.schedules))
    return app


__all__ = ["CSP", "choose_lang", "make_app"]
