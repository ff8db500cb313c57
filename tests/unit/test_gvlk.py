"""Published KMS client keys: the package data matches the reference table and the lookups pick the right row."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from shared_data import SHARED

from orchestrator.knowledge.gvlk import all_office, all_windows, office_gvlk, windows_gvlk

SHARED_GVLK = SHARED / "domain" / "gvlk.yaml"
needs_shared = pytest.mark.skipif(not SHARED_GVLK.is_file(), reason=f"{SHARED_GVLK} not found")

KEY = re.compile(r"[0-9A-Z]{5}(-[0-9A-Z]{5}){4}")


def _reference() -> dict[str, list[dict[str, Any]]]:
    data = yaml.safe_load(SHARED_GVLK.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _ref_key(kind: str, product: str) -> str:
    rows = [r for r in _reference()[kind] if r["product"] == product]
    assert len(rows) == 1, product
    return str(rows[0]["key"])


@needs_shared
def test_package_data_matches_the_reference_table() -> None:
    ref = _reference()
    ours_w = {(e.product, e.key): e for e in all_windows()}
    assert len(ours_w) == len(ref["windows"])
    for row in ref["windows"]:
        entry = ours_w[(row["product"], row["key"])]
        assert entry.edition_id == row["edition_id"]
        assert entry.family == row["family"]
        assert entry.sku_id == row.get("sku_id")
    ours_o = {(e.product, e.key): e for e in all_office()}
    assert len(ours_o) == len(ref["office"])
    for row in ref["office"]:
        entry = ours_o[(row["product"], row["key"])]
        assert entry.version == row["version"]
        assert entry.suite == bool(row.get("suite", False))
        assert entry.sku_id == row.get("sku_id")


def test_keys_are_well_formed() -> None:
    for entry in (*all_windows(), *all_office()):
        assert KEY.fullmatch(entry.key), entry.product


@needs_shared
@pytest.mark.parametrize(
    ("edition_id", "product"),
    [
        ("Education", "Windows 10/11 Education"),
        ("EducationN", "Windows 10/11 Education N"),
        ("Professional", "Windows 10/11 Pro"),
        ("ProfessionalN", "Windows 10/11 Pro N"),
        ("ProfessionalEducation", "Windows 10/11 Pro Education"),
        ("ProfessionalEducationN", "Windows 10/11 Pro Education N"),
        ("Enterprise", "Windows 10/11 Enterprise"),
        ("EnterpriseN", "Windows 10/11 Enterprise N"),
        ("ProfessionalWorkstation", "Windows 10/11 Pro for Workstations"),
    ],
)
def test_windows_10_and_11_editions(edition_id: str, product: str) -> None:
    for hint in (None, "10.0.19045", "10.0.22631"):
        entry = windows_gvlk(edition_id, version_hint=hint)
        assert entry is not None
        assert entry.product == product
        assert entry.key == _ref_key("windows", product)
        assert entry.edition_id == edition_id


def test_edition_id_is_case_insensitive() -> None:
    assert windows_gvlk("education") == windows_gvlk("Education")


@needs_shared
@pytest.mark.parametrize("hint", ["6.1.7601", "6.1", "Windows 7"])
def test_windows_7(hint: str) -> None:
    pro = windows_gvlk("Professional", version_hint=hint)
    ent = windows_gvlk("Enterprise", family="client", version_hint=hint)
    assert pro is not None and pro.key == _ref_key("windows", "Windows 7 Professional")
    assert ent is not None and ent.key == _ref_key("windows", "Windows 7 Enterprise")


@needs_shared
@pytest.mark.parametrize(("year", "build"), [("2016", "10.0.14393"), ("2019", "10.0.17763")])
@pytest.mark.parametrize(
    ("edition_id", "name"),
    [("ServerStandard", "Standard"), ("ServerDatacenter", "Datacenter"), ("ServerSolution", "Essentials")],
)
def test_windows_server_2016_and_2019(year: str, build: str, edition_id: str, name: str) -> None:
    product = f"Windows Server {year} {name}"
    for hint in (build, year, f"Windows Server {year}"):
        entry = windows_gvlk(edition_id, family="server", version_hint=hint)
        assert entry is not None, (edition_id, hint)
        assert entry.product == product
        assert entry.key == _ref_key("windows", product)


@needs_shared
def test_server_2012_and_2012_r2_are_told_apart() -> None:
    plain = windows_gvlk("ServerStandard", version_hint="2012")
    r2 = windows_gvlk("ServerStandard", version_hint="2012 R2")
    by_version = windows_gvlk("ServerStandard", version_hint="6.3.9600")
    assert plain is not None and plain.product == "Windows Server 2012 Standard"
    assert r2 is not None and r2.product == "Windows Server 2012 R2 Standard"
    assert by_version == r2
    client = windows_gvlk("Professional", family="client", version_hint="6.3.9600")
    assert client is not None and client.key == _ref_key("windows", "Windows 8.1 Pro")


@needs_shared
def test_ltsc_builds() -> None:
    ltsc = windows_gvlk("EnterpriseS", version_hint="10.0.19044")
    assert ltsc is not None and "LTSC 2021" in ltsc.product
    ltsb = windows_gvlk("EnterpriseS", version_hint="10.0.14393")
    assert ltsb is not None and ltsb.key == _ref_key("windows", "Windows 10 Enterprise LTSB 2016")
    assert windows_gvlk("EnterpriseS", version_hint="10.0.19045") is None  # 22H2 was never an LTSC release


def test_no_key_where_none_exists() -> None:
    assert windows_gvlk("Core") is None  # Home
    assert windows_gvlk("CoreSingleLanguage") is None
    assert windows_gvlk("Education", family="server") is None
    assert windows_gvlk("Education", version_hint="6.1.7601") is None
    assert windows_gvlk("NoSuchEdition") is None


def test_seed_screenshot_facts() -> None:
    # The bureau's slmgr /dlv screenshot: Windows 10 Enterprise, Activation ID 73111121-…
    ent = windows_gvlk("Enterprise")
    assert ent is not None and ent.sku_id == "73111121-5638-40f6-bc11-f1d7b0d64300"
    # The bureau's ospp.vbs screenshot: Office16ProPlusVL_KMS_Client, SKU d450596f-…, key ending WFG99
    office = office_gvlk(2016)
    assert office is not None
    assert office.sku_id == "d450596f-894d-49e0-966a-fd39ed4c4c64" and office.key.endswith("WFG99")


@needs_shared
@pytest.mark.parametrize(
    ("version", "product"),
    [
        (2013, "Office Professional Plus 2013"),
        (2016, "Office Professional Plus 2016"),
        (2019, "Office Professional Plus 2019"),
        (2021, "Office LTSC Professional Plus 2021"),
        (2024, "Office LTSC Professional Plus 2024"),
    ],
)
def test_office_pro_plus(version: int, product: str) -> None:
    entry = office_gvlk(version)
    assert entry is not None and entry.product == product and entry.suite
    assert entry.key == _ref_key("office", product)
    for spelling in ("ProPlus", "proplus", "Professional Plus", f"ProPlus{version}Volume", product):
        assert office_gvlk(version, spelling) == entry, spelling


@needs_shared
def test_office_other_editions() -> None:
    std = office_gvlk(2019, "Standard")
    assert std is not None and std.key == _ref_key("office", "Office Standard 2019")
    visio = office_gvlk(2021, "VisioPro")
    assert visio is not None and visio.key == _ref_key("office", "Visio LTSC Professional 2021")
    word = office_gvlk(2016, "Word")
    assert word is not None and word.key == _ref_key("office", "Word 2016")


def test_office_unknown() -> None:
    assert office_gvlk(2013, "Word") is None  # not published for 2013 here
    assert office_gvlk(2010) is None
    assert office_gvlk(2016, "Nonsense") is None
