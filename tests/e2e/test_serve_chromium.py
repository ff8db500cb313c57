"""`kmsfleet serve` in a real headless Chromium, over the history a real `kmsfleet demo` wrote (a simulated
classroom on loopback): every view renders, filters narrow the lists, links lead where they say, zh-TW renders,
and Chromium's own network log shows no request leaving 127.0.0.1. Also writes docs/img/serve-overview.png."""

from __future__ import annotations

import html
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from chromekit import headless

pytestmark = [pytest.mark.chromium, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
KMSFLEET = [sys.executable, "-m", "orchestrator"]


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("serve")
    db = folder / "history.db"
    done = subprocess.run(
        [*KMSFLEET, "demo", "--db", str(db), "--timing", "instant", "--hosts", "24"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=folder,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert done.returncode in (0, 2), done.stdout[-2000:] + done.stderr[-2000:]
    return db


@pytest.fixture(scope="module")
def server(history: Path) -> Iterator[str]:
    proc = subprocess.Popen(
        [*KMSFLEET, "serve", "--db", str(history), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert found, line
        yield found.group(0)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def browse(url: str, tmp_path: Path, *, screenshot: Path | None = None, lang: str = "en-US") -> str:
    """The page's DOM after Chromium loaded it; asserts that Chromium contacted nothing but 127.0.0.1."""
    netlog = tmp_path / "netlog.json"
    args = [
        *headless(tmp_path / "chromium-profile"),
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # nothing else could be reached anyway
        f"--lang={lang}",
        f"--accept-lang={lang}",
        f"--log-net-log={netlog}",
    ]
    if screenshot is not None:
        args += ["--hide-scrollbars", "--window-size=1200,1100", f"--screenshot={screenshot}"]
    else:
        args.append("--dump-dom")
    done = subprocess.run([*args, url], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    contacted = set(re.findall(r'"(?:url|original_url)":"([a-z]+://[^"/]+)', netlog.read_text(errors="replace")))
    # Chromium's own background services (sign-in, component updates) show up in its log even with every
    # background feature off; they are the browser's, never the page's, and the resolver rule stops them.
    outside = {
        u
        for u in contacted
        if urlsplit(u).hostname not in ("127.0.0.1", "localhost") and not _browser_service(urlsplit(u).hostname)
    }
    assert not outside, outside
    if screenshot is None:
        for ref in re.findall(r'(?:href|src|action)="([^"]*)"', done.stdout):
            target = urlsplit(html.unescape(ref))
            assert not target.netloc or target.hostname == "127.0.0.1", ref
        assert "<script" not in done.stdout
    return done.stdout


def _browser_service(host: str | None) -> bool:
    return (
        bool(host)
        and re.fullmatch(r"(?:[a-z0-9-]+\.)*(?:google\.com|gstatic\.com|googleapis\.com)", host or "") is not None
    )


def _links(dom: str, base: str) -> list[str]:
    return [urljoin(base, html.unescape(h)) for h in re.findall(r'<a[^>]* href="([^"]+)"', dom)]


def _rows(dom: str, table_id: str) -> list[str]:
    found = re.search(rf'<table id="{table_id}">(.*?)</table>', dom, re.S)
    assert found, table_id
    return re.findall(r"<tr>(.*?)</tr>", found.group(1).split("<tbody>", 1)[1], re.S)


def test_every_view_renders_and_links_lead_where_they_say(server: str, tmp_path: Path) -> None:
    dom = browse(server, tmp_path)
    assert '<html lang="en">' in dom
    assert "room101" in dom
    assert re.search(r"<svg[^>]*class=\"chart\"", dom), "no chart"
    nav = dict(re.findall(r'<a href="([^"]+)" id="nav-([a-z]+)"', dom))
    assert set(nav.values()) == {"overview", "hosts", "due", "runs", "schedules"}
    for href, name in nav.items():
        page = browse(urljoin(server, html.unescape(href)), tmp_path)
        assert f'id="nav-{name}" class="here"' in page, name
    # the "failing" count of room101 leads to exactly that many failing PCs
    failing = re.search(r'<a href="([^"]*category=failing[^"]*)">(\d+)</a>', dom)
    assert failing, "no failing PCs in the demo's overview"
    listed = browse(urljoin(server, html.unescape(failing.group(1))), tmp_path)
    rows = _rows(listed, "hosts")
    assert len(rows) == int(failing.group(2))
    assert all("failing" in r for r in rows)
    # a PC link leads to that PC's page, with the cause and the fix of its failure
    pc_link = _links(listed, server)
    pc_url = next(u for u in pc_link if "/pc/" in u)
    pc = browse(pc_url, tmp_path)
    name = urlsplit(pc_url).path.rsplit("/", 1)[1]
    assert f"<h1>PC {name}</h1>" in pc
    assert re.search(r'<section class="fix" id="fix-[^"]+">', pc)
    assert len(_rows(pc, "history")) >= 2  # the demo ran several times


def test_filters_narrow_the_lists(server: str, tmp_path: Path) -> None:
    everyone = _rows(browse(urljoin(server, "/hosts"), tmp_path), "hosts")
    named = _rows(browse(urljoin(server, "/hosts?q=pc01"), tmp_path), "hosts")
    assert 0 < len(named) < len(everyone)
    assert all("pc01" in r for r in named)
    due_dom = browse(urljoin(server, "/due?days=3650"), tmp_path)
    products = re.findall(r'<a href="([^"]*product=[^"]*)">([^<]+)</a>', due_dom)
    assert products
    href, product = products[0]
    only = _rows(browse(urljoin(server, html.unescape(href)), tmp_path), "due")
    assert only and all(f"<td>{product}</td>" in r for r in only)
    assert '<form method="get" action="/due">' in due_dom


def test_zh_tw_and_csv(server: str, tmp_path: Path) -> None:
    dom = browse(urljoin(server, "/?lang=zh-TW"), tmp_path)
    assert '<html lang="zh-TW">' in dom
    assert "總覽" in dom and "失敗" in dom
    nav = re.findall(r'<a href="([^"]+)" id="nav-', dom)
    assert all("lang=zh-TW" in html.unescape(h) for h in nav)
    by_header = browse(server, tmp_path, lang="zh-TW")
    assert '<html lang="zh-TW">' in by_header
    csv_href = re.search(r'id="csv-rooms" href="([^"]+)"', dom)
    assert csv_href
    with urllib.request.urlopen(urljoin(server, html.unescape(csv_href.group(1))), timeout=30) as reply:
        body = reply.read()
        assert reply.headers["Content-Type"].startswith("text/csv")
    assert body.startswith("\ufeff".encode())
    assert "教室" in body.decode("utf-8")


def test_overview_screenshot_for_the_readme(server: str, tmp_path: Path) -> None:
    shot = tmp_path / "overview.png"
    browse(server, tmp_path, screenshot=shot)
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 10_000
    target = ROOT / "docs" / "img" / "serve-overview.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def test_headers_forbid_other_sources_and_writes(server: str) -> None:
    with urllib.request.urlopen(server, timeout=30) as reply:
        csp = reply.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    request = urllib.request.Request(server, data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=30)
    assert err.value.code == 405


def test_refuses_a_public_address_without_a_token(history: Path) -> None:
    done = subprocess.run(
        [*KMSFLEET, "serve", "--db", str(history), "--bind", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "KMSFLEET_SERVE_TOKEN"},
    )
    assert done.returncode != 0
    assert "without a token" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_token_is_required_when_configured(history: Path, tmp_path: Path) -> None:
    token = "tok-" + os.urandom(8).hex()
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    proc = subprocess.Popen(
        [*KMSFLEET, "serve", "--db", str(history), "--port", "0", "--token-file", str(token_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url, line
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url.group(0), timeout=30)
        assert err.value.code == 401
        wrong = urllib.request.Request(url.group(0), headers={"Authorization": "Bearer nope"})
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(wrong, timeout=30)
        right = urllib.request.Request(url.group(0), headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(right, timeout=30) as reply:
            assert reply.status == 200
            assert token not in reply.read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert token not in line + out


def test_net_log_parser_sees_requests(server: str, tmp_path: Path) -> None:
    """The loopback check above is not vacuous: the network log lists the page's own request."""
    browse(server, tmp_path)
    text = (tmp_path / "netlog.json").read_text(errors="replace")
    assert server.rstrip("/") in text


def test_a_missing_history_is_a_clear_error_and_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.db"
    done = subprocess.run(
        [*KMSFLEET, "serve", "--db", str(missing), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 4
    assert "no history database" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert not missing.exists()
