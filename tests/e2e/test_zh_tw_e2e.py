"""A Taiwanese school room: zh-TW Windows PCs (Chinese tool texts, cscript output in cp950, localized WMI
captions and time zone names) reach exactly the verdicts of en-US PCs with the same faults, through the real
`kmsfleet` CLI as a subprocess over real WS-Management; the reports show the PCs' Chinese readably.

One lab, two rooms with the same faults: room101 en-US (``en-*``), room102 zh-TW (``tw-*``). One fixture runs
audit, site.yml and seed-procedure.yml once; one test reads what they recorded."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from labkit import FAULT_EXPECTED, FAULT_HOSTS, OFFICE16, hosts_by_name, read_report, room_spec, run_cli, start_lab

from orchestrator.knowledge import i18n
from orchestrator.lab.addresses import claim_prefix
from orchestrator.lab.control_client import LabControl

# the fault classes of tests/e2e/test_licensing_e2e.py, with what an en-US room is known to end with (so "the
# same" cannot mean "both wrong")
FAULTS = FAULT_HOSTS
NAMES = [h["name"] for h in FAULTS]
SITE_EXPECTED = {n: FAULT_EXPECTED[n] for n in NAMES}
SEED_PCS = ("healthy", "slic", "notadmin", "blocked", "oemoffice", "m365", "corrupt")


def _named(prefix: str) -> list[dict[str, Any]]:
    return [{**h, "name": f"{prefix}-{h['name']}"} for h in FAULTS]


class TwinRooms:
    def __init__(self, tmp: Path) -> None:
        self.claim = claim_prefix()
        spec = {
            "rooms": [
                room_spec(self.claim, _named("en"), defaults={"office": OFFICE16, "locale": "en-US"}),
                room_spec(
                    self.claim,
                    _named("tw"),
                    room="room102",
                    room_index=2,
                    defaults={"office": OFFICE16, "locale": "zh-TW"},
                ),
            ]
        }
        self.lab = start_lab(spec)
        self.ctl = LabControl(self.lab.control_url)
        self.tmp = tmp
        self.reports: dict[str, dict[str, Any]] = {}
        self.files: dict[str, Path] = {}
        self.stdout: dict[str, str] = {}

    def run(self, label: str, *args: str, ext: str = "json") -> None:
        out = self.tmp / f"{label}.{ext}"
        db = str(self.tmp / "history.db")
        proc = run_cli(*args, "-i", str(self.lab.inventory_path), "--db", db, "--report", str(out), timeout=300)
        assert out.exists(), f"{label}: no report\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        self.stdout[label] = proc.stdout
        self.files[label] = out
        if ext == "json":
            self.reports[label] = read_report(out)

    def close(self) -> None:
        self.lab.stop()
        self.claim.release()


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwinRooms]:
    rooms = TwinRooms(tmp_path_factory.mktemp("zhtw"))
    try:
        rooms.run("audit", "audit")
        rooms.run("site", "run", "site.yml")
        seed_limit = ",".join(f"{p}-{h}" for p in ("en", "tw") for h in SEED_PCS)
        rooms.run("seed", "run", "seed-procedure.yml", "--limit", seed_limit, "-v")
        rooms.run("audit-csv", "audit", "--lang", "zh-TW", ext="csv")
        rooms.run("audit-html", "audit", "--lang", "zh-TW", ext="html")
        yield rooms
    finally:
        rooms.close()


def verdicts(report: dict[str, Any], prefix: str, names: tuple[str, ...] | list[str]) -> dict[str, Any]:
    hosts = hosts_by_name(report)
    out: dict[str, Any] = {}
    for n in names:
        h = hosts[f"{prefix}-{n}"]
        out[n] = (h["status"], h["error_code"], h["diagnosis"])
    return out


def the_rooms_really_differ_in_language(twins: TwinRooms) -> None:
    tw, en = twins.ctl.host("tw-healthy")["machine"], twins.ctl.host("en-healthy")["machine"]
    assert (tw["locale"], en["locale"]) == ("zh-TW", "en-US")


def site_reaches_the_same_verdicts(twins: TwinRooms) -> None:
    report = twins.reports["site"]
    assert verdicts(report, "en", NAMES) == SITE_EXPECTED
    assert verdicts(report, "tw", NAMES) == SITE_EXPECTED


def audit_reaches_the_same_verdicts(twins: TwinRooms) -> None:
    report = twins.reports["audit"]
    assert verdicts(report, "tw", NAMES) == verdicts(report, "en", NAMES)
    assert verdicts(report, "tw", ["notadmin"])["notadmin"][1:] == ("0x80070005", "KF_NOT_ADMIN")  # whoami by SID


def seed_procedure_reaches_the_same_verdicts(twins: TwinRooms) -> None:
    report = twins.reports["seed"]
    expected = {h: SITE_EXPECTED[h] for h in SEED_PCS}
    assert verdicts(report, "en", SEED_PCS) == expected
    # slmgr printed Chinese in cp950 on the tw-* PCs: the code is still found (錯誤: 0x…)
    assert verdicts(report, "tw", SEED_PCS) == expected


def the_pcs_chinese_is_readable_in_every_report(twins: TwinRooms) -> None:
    caption = "Microsoft Windows 10 教育版"
    # JSON: as characters, not \\u escapes; the slmgr output of the seed procedure decoded from cp950
    text = twins.files["seed"].read_text(encoding="utf-8")
    assert caption in text and "\\u" not in text
    seed = hosts_by_name(twins.reports["seed"])
    outputs = " ".join(str(t.get("data", {}).get("stdout", "")) for t in seed["tw-healthy"]["tasks"])
    assert "金鑰管理服務電腦名稱已成功設定為" in outputs and "產品已成功啟用。" in outputs
    assert "\ufffd" not in outputs  # no replacement characters: nothing was decoded in the wrong code page
    # the terminal (-v): slmgr's Chinese answer on the PC without admin rights, read from cp950
    refused = [ln for ln in twins.stdout["seed"].splitlines() if "[tw-notadmin] Activate Windows" in ln]
    assert len(refused) == 1 and "錯誤: 0x80070005 存取被拒" in refused[0], refused
    # CSV (UTF-8 with BOM for Excel): the OS column as the PC names itself
    data = twins.files["audit-csv"].read_bytes()
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    host_col, os_col = i18n.t("column.host", "zh-TW"), i18n.t("column.os", "zh-TW")
    by_host = {r[host_col]: r for r in rows}
    assert by_host["tw-healthy"][os_col] == caption
    assert by_host["en-healthy"][os_col] == "Microsoft Windows 10 Education"
    # HTML
    html = twins.files["audit-html"].read_text(encoding="utf-8")
    assert f"<td>{caption}</td>" in html and "Microsoft Windows 7 專業版" in html


def test_a_zh_tw_room_reaches_the_verdicts_of_an_en_us_room(twins: TwinRooms) -> None:
    checks = [
        the_rooms_really_differ_in_language,
        site_reaches_the_same_verdicts,
        audit_reaches_the_same_verdicts,
        seed_procedure_reaches_the_same_verdicts,
        the_pcs_chinese_is_readable_in_every_report,
    ]
    failures = []
    for check in checks:
        try:
            check(twins)
        except AssertionError as exc:
            failures.append(f"{check.__name__}: {exc}")
    assert not failures, "\n".join(failures)
