"""The HTML report opened in a real headless Chromium: its script runs, the counts and fixes are on the page,
the table filters and sorts, and hostile hostnames stay text."""

from __future__ import annotations

import dataclasses
import html
import re
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
from chromekit import headless
from results_factory import OUTCOMES, make_host, make_run

from orchestrator.knowledge import catalogue, i18n
from orchestrator.results.models import RunResult
from orchestrator.results.reports import write_report

pytestmark = pytest.mark.chromium


def dump_dom(page: Path, tmp_path: Path, fragment: str = "") -> str:
    args = [
        *headless(tmp_path / "chromium-profile"),
        "--host-resolver-rules=MAP * ~NOTFOUND",  # belt and braces: the page must not need the network
        "--dump-dom",
        page.resolve().as_uri() + fragment,
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "<html" in done.stdout, done.stderr[-2000:]
    return done.stdout


def _visible_rows(dom: str) -> list[str]:
    return re.findall(r'<tr data-status="([a-z_]+)" data-host="[^"]*">', dom)


@pytest.mark.parametrize("lang", ["en", "zh-TW"])
def test_report_renders_with_counts_and_fixes(tmp_path: Path, lang: str) -> None:
    result = make_run()
    page = write_report(result, tmp_path / "report.html", lang=lang)
    dom = dump_dom(page, tmp_path)
    assert re.search(rf'<html lang="{re.escape(lang)}"[^>]*data-ready="1"', dom), "the page script did not run"
    counts = result.counts()
    for status in ("ok", "changed", "failed", "unreachable", "auth_refused"):
        assert re.search(rf'id="count-{status}">{counts[status]}<', dom), status
    assert f'id="count-total">{len(result.hosts)}<' in dom
    text = html.unescape(dom)
    assert i18n.t("recap.failed_of_total", lang, failed=len(OUTCOMES), total=40) in text
    clock = catalogue.lookup("0xC004F06C")
    assert clock is not None
    assert clock.text(lang).title in text
    for step in clock.text(lang).fix:  # the fix for pc3's failure, every step
        assert step in text
    # the script filled in the counter from the page's own template
    assert i18n.t("report.shown", lang, shown=40, total=40) in text


def test_table_filters_and_sorts_from_the_link(tmp_path: Path) -> None:
    result = make_run()
    page = write_report(result, tmp_path / "report.html", lang="en")
    dom = dump_dom(page, tmp_path, "#status=failed&sort=6&dir=asc")
    rows = re.findall(r'<tr data-status="([a-z_]+)" data-host="([^"]*)"( hidden="")?>(.*?)</tr>', dom, re.S)
    shown = [(status, host, cells) for status, host, hidden, cells in rows if not hidden]
    assert {status for status, _, _ in shown} == {"failed"}
    failed_hosts = {h.host for h in result.hosts if h.status.value == "failed"}
    assert {host for _, host, _ in shown} == failed_hosts
    days = [re.findall(r'<td class="num" data-sort="([^"]*)">', cells)[0] for _, _, cells in shown]
    numbers = [float(d) for d in days if d]
    assert numbers == sorted(numbers)  # sorted by days left, ascending
    assert i18n.t("report.shown", "en", shown=len(failed_hosts), total=40) in html.unescape(dom)
    filtered = dump_dom(page, tmp_path, "#q=" + quote("pc12"))
    visible = re.findall(r'<tr data-status="[a-z_]+" data-host="([^"]*)">', filtered)
    assert set(visible) == {"pc12"}


def test_hostile_names_stay_text_in_the_browser(tmp_path: Path) -> None:
    base = make_run(6)
    payload = "<img src=x onerror=\"document.title='pwned';document.body.setAttribute('data-pwned','1')\">"
    hostile = dataclasses.replace(make_host(3, host=payload), msg="<script>document.title='pwned'</script>")
    result = RunResult(base.info, (*base.hosts, hostile), finished=base.finished)
    page = write_report(result, tmp_path / "hostile.html", lang="zh-TW")
    dom = dump_dom(page, tmp_path)
    assert 'data-ready="1"' in dom
    title = re.search(r"<title>(.*?)</title>", dom, re.S)
    assert title is not None
    assert html.unescape(title.group(1)) == i18n.t("report.title", "zh-TW", playbook=result.info.playbook)
    assert "data-pwned" not in dom.split("<body")[1].split(">")[0]
    assert "<img" not in dom
    assert payload in html.unescape(dom)  # shown as text
