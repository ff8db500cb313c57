"""The HTML report: one self-contained file a principal can open offline or receive by e-mail.

No network at all: inline CSS and vanilla JS, no fonts, images or scripts by URL, and a Content-Security-Policy
that forbids fetching anything even if some text slipped through. Every value is escaped: hostnames and
messages come from the network. The page shows headline counts, failures grouped by cause with their fixes, a
grid of each room's PCs coloured by status, a days-left chart (CSS bars), and a sortable, filterable table.
"""

from __future__ import annotations

import html
from collections import defaultdict

from orchestrator import __version__
from orchestrator.knowledge import i18n
from orchestrator.redact import redact_text
from orchestrator.results.models import HostStatus, RunResult
from orchestrator.results.reports._common import local_time, os_caption, report_rows
from orchestrator.results.sorting import natural_key, room_of
from orchestrator.results.summary import (
    PROBLEM_STATUSES,
    CauseGroup,
    ClassroomSummary,
    all_ok_line,
    bucket_text,
    host_list,
    licence_status_text,
    product_text,
    summarise,
)

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)
# Always shown, even at zero; the other statuses only when some PC has them.
MAIN_STATUSES = (HostStatus.OK, HostStatus.CHANGED, HostStatus.FAILED, HostStatus.UNREACHABLE)

STYLE = """
:root{--ok:#2e7d32;--changed:#1565c0;--failed:#c62828;--unreachable:#6d4c41;--auth_refused:#6a1b9a;
--interrupted:#ef6c00;--not_run:#9e9e9e;--fg:#1f2328;--muted:#59636e;--line:#d0d7de;--bg:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;padding:1.5rem;font:15px/1.5 system-ui,"Segoe UI","Microsoft JhengHei","PingFang TC",
"Noto Sans CJK TC","Noto Sans TC",sans-serif;color:var(--fg);background:#fff}
h1{font-size:1.5rem;margin:0 0 .5rem}h2{font-size:1.2rem;margin:2rem 0 .75rem;border-bottom:1px solid var(--line)}
h3{font-size:1rem;margin:0 0 .25rem}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:.1rem 1rem;margin:0;color:var(--muted)}
dl.meta dt{font-weight:600}dl.meta dd{margin:0}
.banner{padding:.6rem 1rem;border-radius:6px;margin:1rem 0;background:#fff4e5;border:1px solid #f0c36d}
.cards{display:flex;flex-wrap:wrap;gap:.75rem;margin:1rem 0}
.card{min-width:8rem;padding:.6rem 1rem;border-radius:8px;background:var(--bg);border-left:6px solid var(--line)}
.card .n{display:block;font-size:1.8rem;font-weight:700}.card .l{color:var(--muted)}
.card.s-ok{border-color:var(--ok)}.card.s-changed{border-color:var(--changed)}
.card.s-failed{border-color:var(--failed)}.card.s-unreachable{border-color:var(--unreachable)}
.card.s-auth_refused{border-color:var(--auth_refused)}.card.s-interrupted{border-color:var(--interrupted)}
.card.s-not_run{border-color:var(--not_run)}
#headline{font-size:1.1rem;font-weight:600}
.cause{border:1px solid var(--line);border-left:6px solid var(--failed);border-radius:6px;padding:.75rem 1rem;
margin:.75rem 0}
.cause.licence{border-left-color:var(--interrupted)}
.cause .count{display:inline-block;min-width:2rem;text-align:center;background:var(--failed);color:#fff;
border-radius:1rem;margin-right:.4rem}
.cause.licence .count{background:var(--interrupted)}
.cause code{color:var(--muted);margin-left:.4rem}.cause .pcs{margin:.25rem 0;font-weight:600}
.cause .msg{color:var(--muted);margin:.25rem 0;white-space:pre-wrap}.cause ol{margin:.25rem 0 0}
.rooms{display:flex;flex-wrap:wrap;gap:1.5rem}
.room .grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(4.5rem,1fr));gap:4px;min-width:16rem;
max-width:40rem}
.pc{display:block;padding:.35rem .2rem;border-radius:4px;color:#fff;text-align:center;font-size:.8rem;
cursor:pointer;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.pc.s-ok{background:var(--ok)}.pc.s-changed{background:var(--changed)}.pc.s-failed{background:var(--failed)}
.pc.s-unreachable{background:var(--unreachable)}.pc.s-auth_refused{background:var(--auth_refused)}
.pc.s-interrupted{background:var(--interrupted)}.pc.s-not_run{background:var(--not_run)}
.legend{display:flex;flex-wrap:wrap;gap:1rem;color:var(--muted);font-size:.85rem;margin:.5rem 0}
.legend i{display:inline-block;width:.8rem;height:.8rem;border-radius:2px;margin-right:.3rem;vertical-align:-1px}
.chart{max-width:40rem}.bar-row{display:grid;grid-template-columns:10rem 1fr 3rem;gap:.5rem;align-items:center;
margin:.2rem 0}
.bar{display:block;height:1.1rem;background:var(--changed);border-radius:3px;min-width:1px}
.bar.b-expired{background:var(--failed)}.bar.b-1-7{background:var(--interrupted)}
.bar.b-permanent{background:var(--not_run)}.bn{text-align:right;font-variant-numeric:tabular-nums}
.controls{display:flex;flex-wrap:wrap;gap:.75rem;align-items:center;margin:.5rem 0}
.controls input,.controls select{font:inherit;padding:.3rem .5rem;border:1px solid var(--line);border-radius:4px}
.controls input{min-width:16rem}#shown{color:var(--muted)}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{padding:.35rem .5rem;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:var(--bg);cursor:pointer;user-select:none;position:sticky;top:0}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td .st{display:inline-block;padding:0 .4rem;border-radius:3px;color:#fff}
footer{margin-top:2rem;color:var(--muted);font-size:.85rem}
@media print{th{position:static}.controls{display:none}}
"""

SCRIPT = """
(function () {
  "use strict";
  var table = document.getElementById("hosts");
  if (!table) { return; }
  var tbody = table.tBodies[0];
  var rows = Array.prototype.slice.call(tbody.rows);
  var filter = document.getElementById("filter");
  var statusSel = document.getElementById("status-filter");
  var shown = document.getElementById("shown");
  var heads = table.tHead.rows[0].cells;
  var sortCol = -1;
  var ascending = true;

  function sortKey(row, col, numeric) {
    var cell = row.cells[col];
    var value = cell.getAttribute("data-sort");
    if (value === null) { value = cell.textContent; }
    if (numeric) {
      var n = parseFloat(value);
      return isNaN(n) ? Infinity : n;
    }
    return value.toLowerCase();
  }

  function sortBy(col, asc) {
    var th = heads[col];
    if (!th) { return; }
    var numeric = th.getAttribute("data-type") === "num";
    sortCol = col;
    ascending = asc;
    rows.sort(function (a, b) {
      var x = sortKey(a, col, numeric);
      var y = sortKey(b, col, numeric);
      return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
    });
    rows.forEach(function (row) { tbody.appendChild(row); });
    Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
  }

  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener("click", function () {
      sortBy(col, sortCol === col ? !ascending : true);
    });
  });

  function applyFilter() {
    var query = filter.value.trim().toLowerCase();
    var status = statusSel.value;
    var visible = {};
    var all = {};
    var count = 0;
    var total = 0;
    rows.forEach(function (row) {
      var host = row.getAttribute("data-host");
      var match = (!status || row.getAttribute("data-status") === status) &&
        (!query || row.textContent.toLowerCase().indexOf(query) !== -1);
      row.hidden = !match;
      if (!Object.prototype.hasOwnProperty.call(all, host)) { all[host] = true; total += 1; }
      if (match && !Object.prototype.hasOwnProperty.call(visible, host)) { visible[host] = true; count += 1; }
    });
    shown.textContent = shown.getAttribute("data-template")
      .replace("{shown}", String(count)).replace("{total}", String(total));
  }

  filter.addEventListener("input", applyFilter);
  statusSel.addEventListener("change", applyFilter);
  Array.prototype.forEach.call(document.querySelectorAll(".pc[data-host]"), function (tile) {
    tile.addEventListener("click", function () {
      filter.value = tile.getAttribute("data-host");
      statusSel.value = "";
      applyFilter();
      table.scrollIntoView();
    });
  });
  // A link can carry a view: report.html#q=pc3&status=failed&sort=6&dir=desc
  var params = {};
  location.hash.replace(/^#/, "").split("&").forEach(function (pair) {
    var i = pair.indexOf("=");
    if (i > 0) {
      try { params[pair.slice(0, i)] = decodeURIComponent(pair.slice(i + 1)); } catch (e) { /* ignore */ }
    }
  });
  if (params.q) { filter.value = params.q; }
  if (params.status) { statusSel.value = params.status; }
  if (params.sort && /^[0-9]+$/.test(params.sort)) { sortBy(parseInt(params.sort, 10), params.dir !== "desc"); }
  applyFilter();
  document.documentElement.setAttribute("data-ready", "1");
})();
"""


def _e(value: object) -> str:
    """Escape for HTML text and attribute values (secrets masked first)."""
    return html.escape(redact_text("" if value is None else str(value)), quote=True)


def _status_label(status: str, lang: str) -> str:
    return i18n.t(f"status.{status}", lang)


def _cards(summary: ClassroomSummary, lang: str) -> str:
    parts = [
        f'<div class="card" data-status="total"><span class="n" id="count-total">{summary.total}</span>'
        f'<span class="l">{_e(i18n.t("column.pcs", lang))}</span></div>'
    ]
    for status in HostStatus:
        n = summary.status_counts.get(status.value, 0)
        if n or status in MAIN_STATUSES:
            parts.append(
                f'<div class="card s-{status.value}" data-status="{status.value}">'
                f'<span class="n" id="count-{status.value}">{n}</span>'
                f'<span class="l">{_e(i18n.t(f"column.{status.value}", lang))}</span></div>'
            )
    return '<div class="cards">' + "".join(parts) + "</div>"


def _cause(group: CauseGroup, lang: str, css: str = "cause") -> str:
    code = f"<code>{_e(group.code)}</code>" if group.code and group.code not in group.title else ""
    out = [
        f'<article class="{css}" data-key="{_e(group.key)}">',
        f'<h3><span class="count">{group.count}</span>{_e(group.title)}{code}</h3>',
        f'<p class="pcs">{_e(host_list(group.hosts, lang, limit=40))}</p>',
    ]
    if group.message:
        out.append(f'<p class="msg">{_e(group.message)}</p>')
    if group.fix:
        out.append(f'<div><strong>{_e(i18n.t("recap.fix", lang))}</strong><ol class="fix">')
        out.extend(f"<li>{_e(step)}</li>" for step in group.fix)
        out.append("</ol></div>")
    out.append("</article>")
    return "".join(out)


def _rooms(result: RunResult, summary: ClassroomSummary, lang: str) -> str:
    rooms: dict[str | None, list[tuple[str, HostStatus]]] = defaultdict(list)  # not the results: may be packed
    for host in result.hosts:
        rooms[room_of(host.groups)].append((host.host, host.status))
    order = sorted(rooms, key=lambda r: (r is None, natural_key(r or "")))
    present = [s for s in HostStatus if summary.status_counts.get(s.value, 0)]
    legend = "".join(
        f'<span><i style="background:var(--{s.value})"></i>{_e(_status_label(s.value, lang))}</span>' for s in present
    )
    out = [f'<div class="legend">{legend}</div><div class="rooms">']
    for room in order:
        hosts = sorted(rooms[room], key=lambda h: natural_key(h[0]))
        name = room if room is not None else i18n.t("report.no_room", lang)
        out.append(f'<div class="room" data-room="{_e(room or "")}"><h3>{_e(name)} <small>({len(hosts)})</small></h3>')
        out.append('<div class="grid">')
        for pc, status in hosts:
            group = summary.group_for(pc)
            tip = f"{pc} — {_status_label(status.value, lang)}" + (f": {group.title}" if group else "")
            out.append(f'<span class="pc s-{status.value}" data-host="{_e(pc)}" title="{_e(tip)}">{_e(pc)}</span>')
        out.append("</div></div>")
    out.append("</div>")
    return "".join(out)


def _days_chart(summary: ClassroomSummary, lang: str) -> str:
    biggest = max(summary.days_left.values(), default=0) or 1
    out = ['<div class="chart" id="days-chart">']
    for bucket, n in summary.days_left.items():
        width = round(100 * n / biggest)
        out.append(
            f'<div class="bar-row" data-bucket="{_e(bucket)}"><span class="bl">{_e(bucket_text(bucket, lang))}</span>'
            f'<span><span class="bar b-{_e(bucket)}" style="width:{width}%"></span></span>'
            f'<span class="bn">{n}</span></div>'
        )
    out.append("</div>")
    if summary.licence_counts:
        out.append('<ul class="licence-counts">')
        for product, counts in summary.licence_counts.items():
            spread = ", ".join(f"{licence_status_text(s, lang)} {n}" for s, n in counts.items())
            out.append(f"<li><strong>{_e(product_text(product, lang))}</strong>: {_e(spread)}</li>")
        out.append("</ul>")
    return "".join(out)


def _table(result: RunResult, summary: ClassroomSummary, lang: str) -> str:
    columns = (
        ("column.host", "text"),
        ("column.room", "text"),
        ("column.address", "text"),
        ("column.status", "text"),
        ("column.product", "text"),
        ("column.licence", "text"),
        ("column.days_left", "num"),
        ("column.expires", "text"),
        ("column.error", "text"),
        ("column.diagnosis", "text"),
        ("column.os", "text"),  # last: links into the report (#sort=N) keep their column numbers
    )
    statuses = [s for s in HostStatus if summary.status_counts.get(s.value, 0)]
    options = "".join(f'<option value="{s.value}">{_e(_status_label(s.value, lang))}</option>' for s in statuses)
    out = [
        '<div class="controls">',
        f'<input type="search" id="filter" placeholder="{_e(i18n.t("report.filter", lang))}" '
        f'aria-label="{_e(i18n.t("report.filter", lang))}">',
        f'<select id="status-filter" aria-label="{_e(i18n.t("column.status", lang))}">'
        f'<option value="">{_e(i18n.t("report.all_statuses", lang))}</option>{options}</select>',
        f'<span id="shown" data-template="{_e(i18n.t("report.shown", lang))}"></span>',
        "</div>",
        '<table id="hosts"><thead><tr>',
    ]
    out.extend(f'<th data-type="{kind}" scope="col">{_e(i18n.t(key, lang))}</th>' for key, kind in columns)
    out.append("</tr></thead><tbody>")
    for rank, row in enumerate(report_rows(result, summary)):
        h, lic = row.host, row.licence
        days = ""
        days_sort = ""
        if lic is not None and lic.days_left is not None:
            days = days_sort = str(lic.days_left)
        elif lic is not None and lic.status == "Licensed":
            days, days_sort = i18n.t("licence.permanent", lang), "1e9"
        status = h.status.value
        lic_status = licence_status_text(lic.status, lang) if lic else ""
        cells = [
            f'<td data-sort="{rank:06d}">{_e(h.host)}</td>',
            f"<td>{_e(row.room or '')}</td>",
            f"<td>{_e(h.address or '')}</td>",
            f'<td><span class="st" style="background:var(--{status})">{_e(_status_label(status, lang))}</span></td>',
            f"<td>{_e(product_text(lic.product, lang) if lic else '')}</td>",
            f'<td title="{_e(lic.name if lic else "")}">{_e(lic_status)}</td>',
            f'<td class="num" data-sort="{_e(days_sort)}">{_e(days)}</td>',
            f"<td>{_e(local_time(lic.expires) if lic else '')}</td>",
            f"<td>{_e(row.error_code or '')}</td>",
            f"<td>{_e(row.diagnosis or (row.message if h.status in PROBLEM_STATUSES else ''))}</td>",
            f"<td>{_e(os_caption(h))}</td>",
        ]
        out.append(f'<tr data-status="{status}" data-host="{_e(h.host)}">' + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def render_html(result: RunResult, lang: str = "en", summary: ClassroomSummary | None = None) -> str:
    summary = summary or summarise(result, lang)
    code = summary.lang
    info = result.info
    title = i18n.t("report.title", code, playbook=info.playbook)
    meta = [
        (i18n.t("report.run", code), info.id),
        (i18n.t("report.playbook", code), info.playbook),
        (i18n.t("report.inventory", code), ", ".join(info.inventory)),
        (i18n.t("report.limit", code), info.limit or ""),
        (i18n.t("report.started", code), local_time(info.started)),
        (i18n.t("report.finished", code), local_time(result.finished)),
        (i18n.t("report.exit_code", code), str(int(result.exit_code))),
    ]
    if summary.failed:
        headline = i18n.t("recap.failed_of_total", code, failed=summary.failed, total=summary.total)
    else:
        headline = all_ok_line(summary, code)
    body = [
        f'<header><h1>{_e(title)}</h1><dl class="meta">',
        "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in meta if v),
        "</dl></header>",
    ]
    if summary.check:
        body.append(f'<p class="banner" id="check-banner">{_e(i18n.t("check.banner", code))}</p>')
    if result.interrupted:
        body.append(f'<p class="banner" id="interrupted-banner">{_e(i18n.t("report.interrupted", code))}</p>')
    body.append(f'<section id="counts">{_cards(summary, code)}<p id="headline">{_e(headline)}</p></section>')
    body.append(f'<section id="causes"><h2>{_e(i18n.t("report.failures", code))}</h2>')
    if summary.groups:
        body.extend(_cause(g, code) for g in summary.groups)
    else:
        body.append(f"<p>{_e(i18n.t('report.no_failures', code))}</p>")
    body.append("</section>")
    if summary.licence_issues:
        body.append(f'<section id="licence-issues"><h2>{_e(i18n.t("summary.licence_issues", code))}</h2>')
        body.extend(_cause(g, code, "cause licence") for g in summary.licence_issues)
        body.append("</section>")
    body.append(
        f'<section id="rooms"><h2>{_e(i18n.t("report.rooms", code))}</h2>{_rooms(result, summary, code)}</section>'
    )
    body.append(
        f'<section id="days"><h2>{_e(i18n.t("summary.days_left", code))}</h2>{_days_chart(summary, code)}</section>'
    )
    body.append(
        f'<section id="table"><h2>{_e(i18n.t("report.hosts", code))}</h2>{_table(result, summary, code)}</section>'
    )
    body.append(f"<footer>{_e(i18n.t('report.generated', code, version=__version__))} · {_e(info.id)}</footer>")
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{_e(code)}"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + f"\n<script>{SCRIPT}</script>\n</body></html>\n"
    )
