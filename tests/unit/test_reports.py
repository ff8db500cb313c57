"""Report writers: every format parsed back (JSON + schema, CSV with BOM, JUnit via xml.etree, HTML)."""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
import json
import re
import uuid
import xml.etree.ElementTree as ET
from datetime import timedelta
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from results_factory import BASE, OUTCOMES, make_host, make_info, make_run

from orchestrator.errors import InputError
from orchestrator.knowledge import catalogue, i18n
from orchestrator.redact import register_secret
from orchestrator.results.models import FailureKind, HostResult, HostStatus, RunResult, TaskStatus
from orchestrator.results.reports import format_for, render_report, write_report
from orchestrator.results.store import HistoryStore

# ----------------------------------------------------------------------------------- a small JSON Schema check
# jsonschema is not installed; this covers the keywords report.schema.json uses (and refuses any other).

KNOWN = {
    "$schema", "$id", "$ref", "$defs", "title", "description", "type", "properties", "required",
    "additionalProperties", "items", "enum", "const", "minimum", "minLength", "minItems", "pattern", "format",
}  # fmt: skip
TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def schema_errors(value: Any, schema: dict[str, Any], root: dict[str, Any], path: str = "$") -> list[str]:
    unknown = set(schema) - KNOWN
    assert not unknown, f"{path}: the checker does not implement {unknown}"
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        return schema_errors(value, root["$defs"][name], root, path)
    errors: list[str] = []
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(TYPES[k](value) for k in kinds):
            return [f"{path}: {value!r:.60} is not {kinds}"]
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: {value!r} != {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']}")
    if "minimum" in schema and isinstance(value, int) and value < schema["minimum"]:
        errors.append(f"{path}: {value} < {schema['minimum']}")
    if "minLength" in schema and isinstance(value, str) and len(value) < schema["minLength"]:
        errors.append(f"{path}: too short")
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        errors.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{path}: missing {key}")
        props = schema.get("properties", {})
        for key, item in value.items():
            if key in props:
                errors += schema_errors(item, props[key], root, f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{path}: unexpected {key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += schema_errors(item, schema["additionalProperties"], root, f"{path}.{key}")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(f"{path}: fewer than {schema['minItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                errors += schema_errors(item, schema["items"], root, f"{path}[{i}]")
    return errors


def load_schema() -> dict[str, Any]:
    text = resources.files("orchestrator.results.reports").joinpath("report.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


# ----------------------------------------------------------------------------------------------- JSON


def test_json_report_matches_its_schema_and_the_run() -> None:
    result = make_run()
    data = json.loads(render_report(result, "json", "zh-TW"))
    schema = load_schema()
    assert schema_errors(data, schema, schema) == []
    assert data["run"]["id"] == result.info.id
    assert data["run"]["exit_code"] == result.exit_code == 2
    assert data["run"]["finished"] == result.finished.isoformat()
    assert data["run"]["interrupted"] is False
    assert data["hosts"] == json.loads(json.dumps([h.to_json() for h in result.hosts]))
    assert data["stats"] == {h.host: h.stats.to_json() for h in result.hosts}
    assert len(data["licences"]) == sum(len(h.licences) for h in result.hosts)
    assert {row["room"] for row in data["licences"]} == {"room101", "room102"}
    assert data["summary"]["failed"] == len(OUTCOMES)
    assert data["summary"]["lang"] == "zh-TW"


def test_the_schema_check_catches_drift() -> None:
    schema = load_schema()
    data = json.loads(render_report(make_run(4), "json"))
    del data["hosts"][0]["status"]
    data["hosts"][1]["status"] = "exploded"
    data["run"]["extra"] = 1
    data["licences"][0]["days_left"] = "soon"
    errors = schema_errors(data, schema, schema)
    assert any("missing status" in e for e in errors)
    assert any("exploded" in e for e in errors)
    assert any("unexpected extra" in e for e in errors)
    assert any("days_left" in e for e in errors)


def test_a_stored_run_gives_the_same_reports(tmp_path: Path) -> None:
    result = make_run()
    with HistoryStore(tmp_path / "h.db") as store:
        store.save(result)
        loaded = store.load_run(result.info.id)
    for fmt in ("json", "csv", "junit", "html"):
        assert render_report(loaded, fmt, "zh-TW") == render_report(result, fmt, "zh-TW"), fmt


# ------------------------------------------------------------------------------------------------ CSV

CSV_HEADER_KEYS = [
    "column.host", "column.room", "column.address", "column.os", "column.status", "column.product", "column.name",
    "column.channel", "column.licence", "column.days_left", "column.expires", "column.kms_host", "column.error",
    "column.diagnosis", "column.fix", "column.message",
]  # fmt: skip


def _csv(data: bytes) -> list[dict[str, str]]:
    assert data.startswith(b"\xef\xbb\xbf"), "Excel needs the UTF-8 BOM to show 中文"
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    return [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]


@pytest.mark.parametrize("lang", ["en", "zh-TW"])
def test_csv_one_row_per_pc_and_product(lang: str) -> None:
    result = make_run()
    data = render_report(result, "csv", lang)
    assert isinstance(data, bytes)
    text = data.decode("utf-8-sig")
    header = next(csv.reader(io.StringIO(text)))
    assert header == [i18n.t(k, lang) for k in CSV_HEADER_KEYS]
    rows = _csv(data)
    assert len(rows) == sum(max(1, len(h.licences)) for h in result.hosts)
    col = {k.split(".")[1]: i18n.t(k, lang) for k in CSV_HEADER_KEYS}
    clock = catalogue.lookup("0xC004F06C")
    assert clock is not None
    pc3 = [r for r in rows if r[col["host"]] == "pc3"]
    windows = next(r for r in pc3 if r[col["product"]] == "Windows")
    assert windows[col["licence"]] == i18n.t("licence.notification", lang)
    assert windows[col["error"]] == "0xC004F06C"
    assert windows[col["diagnosis"]] == clock.text(lang).title
    assert windows[col["fix"]].splitlines()[0] == f"1. {clock.text(lang).fix[0]}"
    office = next(r for r in pc3 if r[col["product"]] == "Office")
    assert office[col["diagnosis"]] == ""  # Office is fine on pc3
    pc22 = [r for r in rows if r[col["host"]] == "pc22"]  # unreachable: no licence data, one row
    assert len(pc22) == 1
    assert pc22[0][col["status"]] == i18n.t("status.unreachable", lang)
    assert pc22[0][col["product"]] == ""
    assert pc22[0][col["diagnosis"]] == catalogue.lookup("KF_UNREACHABLE").text(lang).title  # type: ignore[union-attr]
    assert pc22[0][col["room"]].startswith("room102")
    pc1 = next(r for r in rows if r[col["host"]] == "pc1" and r[col["product"]] == "Windows")
    assert int(pc1[col["days_left"]]) == make_host(1).licences[0].days_left
    hosts_in_order = list(dict.fromkeys(r[col["host"]] for r in rows))
    assert hosts_in_order == [f"pc{i}" for i in range(1, 41)]  # natural order: pc2 before pc10


@pytest.mark.parametrize("lang", ["en", "zh-TW"])
def test_a_licence_still_in_grace_shows_why_the_pc_failed(lang: str) -> None:
    """0x4004F00C (initial grace) is information: the PC's failure (the clock) is why it is not activated, so
    the CSV and HTML rows give that cause and its fix, not 'activate before the grace period ends'."""
    pc3 = make_host(3)  # failed: the clock (0xC004F06C)
    grace = [dataclasses.replace(lic, status="OOBGrace", last_error=0x4004F00C) for lic in pc3.licences]
    result = RunResult(make_info(), (dataclasses.replace(pc3, licences=tuple(grace)),), finished=BASE)
    col = {k.split(".")[1]: i18n.t(k, lang) for k in CSV_HEADER_KEYS}
    clock = catalogue.lookup("0xC004F06C")
    assert clock is not None
    rows = _csv(render_report(result, "csv", lang))  # type: ignore[arg-type]
    assert [(r[col["error"]], r[col["diagnosis"]]) for r in rows] == [("0xC004F06C", clock.text(lang).title)] * 2
    html_text = str(render_report(result, "html", lang))
    assert "0x4004F00C" not in html_text.split("<table", 1)[1]
    # with no failure to point at (an audit), the grace code is the explanation
    ok = dataclasses.replace(result.hosts[0], status=HostStatus.OK, tasks=())
    rows = _csv(render_report(RunResult(make_info(), (ok,), finished=BASE), "csv", lang))  # type: ignore[arg-type]
    assert {r[col["error"]] for r in rows} == {"0x4004F00C"}


def test_csv_cells_cannot_start_a_formula() -> None:
    evil = dataclasses.replace(make_host(3), host='=HYPERLINK("http://x")', msg="@SUM(A1)")
    result = RunResult(make_info(), (evil,), finished=BASE + timedelta(hours=1))
    rows = list(csv.reader(io.StringIO(render_report(result, "csv").decode("utf-8-sig"))))  # type: ignore[union-attr]
    cells = [c for r in rows[1:] for c in r]
    assert all(not c.startswith(("=", "+", "@")) for c in cells)
    assert '\'=HYPERLINK("http://x")' in cells


# ---------------------------------------------------------------------------------------------- JUnit


def test_junit_parses_and_counts_match() -> None:
    result = make_run()
    text = render_report(result, "junit", "en")
    assert isinstance(text, str)
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [h.host for h in result.hosts]
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite, host in zip(suites, result.hosts, strict=True):
        cases = suite.findall("testcase")
        assert len(cases) == len(host.tasks)  # every factory PC that failed has its failed task
        counted = {
            "tests": len(cases),
            "failures": len(suite.findall("testcase/failure")),
            "errors": len(suite.findall("testcase/error")),
            "skipped": len(suite.findall("testcase/skipped")),
        }
        assert {k: int(suite.get(k, "-1")) for k in counted} == counted
        for key in totals:
            totals[key] += counted[key]
        for case, task in zip(cases, host.tasks, strict=True):
            failure, error, skipped = case.find("failure"), case.find("error"), case.find("skipped")
            if task.status is TaskStatus.SKIPPED:
                assert skipped is not None
            elif task.ignored or task.rescued or task.status in (TaskStatus.OK, TaskStatus.CHANGED):
                assert failure is None and error is None
            elif task.status is TaskStatus.UNREACHABLE or task.failure is FailureKind.AUTH:
                assert error is not None
            else:
                assert failure is not None
                assert failure.get("type") == task.error_hex
                assert failure.get("message") == task.msg
            assert float(case.get("time", "x")) == pytest.approx(task.duration_ms / 1000)
    assert {k: int(root.get(k, "-1")) for k in totals} == totals
    expected_failed_tasks = sum(1 for i, o in OUTCOMES.items() if o in ("clock", "slic", "retail"))
    assert totals["failures"] == expected_failed_tasks
    assert totals["errors"] == sum(1 for o in OUTCOMES.values() if o in ("unreachable", "auth"))
    pc3 = suites[2].find("testcase/failure")
    assert pc3 is not None and pc3.text is not None
    assert catalogue.lookup("0xC004F06C").text("en").fix[0] in pc3.text  # type: ignore[union-attr]


def test_junit_survives_control_characters_and_pcs_without_tasks() -> None:
    noisy = dataclasses.replace(
        make_host(3),
        tasks=tuple(dataclasses.replace(t, msg=t.msg + "\x1b[31m\x00 bell\x07") for t in make_host(3).tasks),
    )
    hosts = (
        noisy,
        HostResult(host="pc.off.local", status=HostStatus.UNREACHABLE, msg="no route", started=BASE, finished=BASE),
        HostResult(host="pc9", status=HostStatus.NOT_RUN, started=BASE, finished=BASE),
    )
    text = render_report(RunResult(make_info(), hosts, finished=BASE, interrupted=True), "junit")
    root = ET.fromstring(str(text))
    off = root.find("testsuite[@name='pc.off.local']")
    assert off is not None and off.find("testcase/error") is not None
    assert off.find("testcase").get("classname") == "pc_off_local"  # type: ignore[union-attr]
    not_run = root.find("testsuite[@name='pc9']")
    assert not_run is not None and not_run.find("testcase/skipped") is not None
    assert "\x1b" not in text and "\x00" not in text


# ----------------------------------------------------------------------------------------------- HTML


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html_text: str) -> _Tags:
    parser = _Tags()
    parser.feed(html_text)
    return parser


INJECTION_HOST = "<img src=x onerror=\"document.title='pwned'\">"
INJECTION_MSG = "</script><script>document.title='pwned'</script>"


def _hostile_run() -> RunResult:
    result = make_run()
    hostile = dataclasses.replace(
        make_host(3, host=INJECTION_HOST),
        msg=INJECTION_MSG,
        groups=("all", '"><svg onload=alert(1)>', "windows"),
    )
    return dataclasses.replace(result, hosts=(*result.hosts, hostile))


@pytest.mark.parametrize("lang", ["en", "zh-TW"])
def test_html_is_self_contained_and_escaped(lang: str) -> None:
    page = render_report(_hostile_run(), "html", lang)
    assert isinstance(page, str)
    parsed = _parse(page)
    html_tag = next(attrs for tag, attrs in parsed.tags if tag == "html")
    assert html_tag["lang"] == lang
    names = [tag for tag, _ in parsed.tags]
    assert names.count("script") == 1  # ours only
    assert not {"img", "svg", "link", "iframe", "object", "embed", "base", "form"} & set(names)
    for _, attrs in parsed.tags:
        assert not any(k.startswith("on") for k in attrs), attrs  # no event handler attributes at all
        for key in ("src", "href", "action", "srcset", "poster"):
            assert key not in attrs
    assert "url(" not in page and "@import" not in page and "http://" not in page and "https://" not in page
    csp = next(a for t, a in parsed.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in (csp["content"] or "")
    text = "".join(parsed.text)
    assert INJECTION_HOST in text  # shown as text, not markup
    assert INJECTION_MSG not in page  # the raw form never appears


def test_html_shows_counts_causes_rooms_and_chart() -> None:
    result = make_run()
    page = str(render_report(result, "html", "en"))
    parsed = _parse(page)
    text = "".join(parsed.text)
    counts = result.counts()
    for status in ("ok", "changed", "failed", "unreachable"):
        assert re.search(rf'id="count-{status}">{counts[status]}<', page)
    assert re.search(rf'id="count-total">{len(result.hosts)}<', page)
    assert i18n.t("recap.failed_of_total", "en", failed=len(OUTCOMES), total=40) in text
    clock = catalogue.lookup("0xC004F06C")
    assert clock is not None and clock.text("en").fix[0] in text
    tiles = [a for t, a in parsed.tags if t == "span" and "pc" in (a.get("class") or "").split()]
    assert len(tiles) == 40
    assert {a["data-host"]: (a.get("class") or "").split()[1] for a in tiles}["pc22"] == "s-unreachable"
    rooms = [a["data-room"] for t, a in parsed.tags if t == "div" and "data-room" in a]
    assert rooms == ["room101", "room102"]
    bars = [a["data-bucket"] for t, a in parsed.tags if t == "div" and "data-bucket" in a]
    assert bars == ["expired", "1-7", "8-30", "31-90", "91-180", "181+", "permanent"]
    rows = [a for t, a in parsed.tags if t == "tr" and "data-status" in a]
    assert len(rows) == sum(max(1, len(h.licences)) for h in result.hosts)


# --------------------------------------------------------------------------------------- files, formats


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("r.json", "json"), ("r.csv", "csv"), ("r.xml", "junit"), ("r.junit.xml", "junit"), ("R.HTML", "html")],
)
def test_write_report_chooses_the_format_by_extension(tmp_path: Path, name: str, fmt: str) -> None:
    result = make_run(6)
    path = write_report(result, tmp_path / "out" / name, lang="zh-TW")
    raw = path.read_bytes()
    assert format_for(path) == fmt
    if fmt == "json":
        assert json.loads(raw)["run"]["id"] == result.info.id
    elif fmt == "csv":
        assert _csv(raw)
    elif fmt == "junit":
        assert ET.fromstring(raw).tag == "testsuites"
    else:
        assert raw.startswith(b"<!DOCTYPE html>") and b'lang="zh-TW"' in raw
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_formats_and_errors(tmp_path: Path) -> None:
    result = make_run(2)
    assert isinstance(render_report(result, "csv"), bytes)
    for fmt in ("json", "junit", "xml", "html"):
        assert isinstance(render_report(result, fmt), str)
    write_report(result, tmp_path / "report.txt", fmt="json")
    assert json.loads((tmp_path / "report.txt").read_text("utf-8"))["version"] == 1
    with pytest.raises(InputError):
        write_report(result, tmp_path / "report.txt")
    with pytest.raises(InputError):
        render_report(result, "pdf")
    with pytest.raises(InputError):
        render_report(result, "json", "fr")


def test_secrets_never_reach_any_report(tmp_path: Path) -> None:
    secret = f"Rpt-{uuid.uuid4().hex[:10]}"
    register_secret(secret)
    result = make_run(5, secret=secret)
    forms = [
        secret.encode(),
        base64.b64encode(secret.encode()),
        secret.encode("utf-16-le"),
        base64.b64encode(secret.encode("utf-16-le")),
    ]
    for name in ("r.json", "r.csv", "r.xml", "r.html"):
        raw = write_report(result, tmp_path / name, lang="zh-TW").read_bytes()
        for form in forms:
            assert form not in raw, (name, form)
