"""The error catalogue: coverage of the bureau's codes and errors.yaml, both languages, own wording, parse_code."""

from __future__ import annotations

import re
import string
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from shared_data import SHARED

from orchestrator.knowledge import catalogue
from orchestrator.knowledge.catalogue import (
    UNKNOWN_KEY,
    all_entries,
    diagnose,
    format_code,
    lookup,
    parse_code,
    seed_codes,
    signed_code,
)

ERRORS_YAML = SHARED / "domain" / "errors.yaml"
SEED_DIR = SHARED / "seed"
needs_shared = pytest.mark.skipif(not ERRORS_YAML.is_file(), reason=f"reference data not found at {SHARED}")

CJK = re.compile(r"[\u4e00-\u9fff]")
LANGS = ("en", "zh-TW")

KF_REQUIRED = (
    "KF_UNREACHABLE",
    "KF_AUTH_REFUSED",
    "KF_TIMEOUT",
    "KF_WSMAN_FAULT",
    "KF_PROTOCOL",
    "KF_WRONG_TIMEZONE",
    "KF_CLOCK_SKEW",
    "KF_KMS_PORT_BLOCKED",
    "KF_NOT_ADMIN",
    "KF_NON_VOLUME_WINDOWS",
    "KF_RETAIL_OFFICE",
    "KF_OEM_OFFICE",
    "KF_SUBSCRIPTION_OFFICE",
    "KF_CORRUPT_OFFICE",
    "KF_CLONED_CMID",
    "KF_EXPIRING",
    "KF_NO_OFFICE_KMS_SKU",
    "KF_SQL_AUDIT_ONLY",
    "KF_INTERRUPTED",
    "KF_UNKNOWN_ERROR",
)


def _errors_yaml() -> list[dict[str, Any]]:
    data = yaml.safe_load(ERRORS_YAML.read_text(encoding="utf-8"))
    assert isinstance(data, list)
    return data


def _seed_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(SEED_DIR.glob("*.txt")))


def _codes_in_seed() -> set[int]:
    return {int(m, 16) for m in re.findall(r"0x([0-9a-f]{8})", _seed_text(), flags=re.IGNORECASE)}


def _all_texts(entry: catalogue.Entry, lang: str) -> list[str]:
    loc = entry.text(lang)
    return [loc.title, loc.meaning, loc.cause, *loc.fix]


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _prose(text: str) -> str:
    """Text without "quoted tool output", which is a fact to reproduce exactly, not wording."""
    return re.sub(r'"[^"]*"', " ", text)


# ---------------------------------------------------------------------------------------------- coverage


@needs_shared
def test_every_code_the_seed_mentions_is_present_in_both_languages() -> None:
    mentioned = _codes_in_seed()
    assert len(mentioned) >= 9, "the bureau's Q&A lists at least nine codes"
    for code in mentioned:
        entry = lookup(code)
        assert entry is not None, f"{format_code(code)} from the bureau's Q&A is missing"
        assert entry.seed, f"{entry.key} is in the bureau's Q&A but not marked seed: true"
        for lang in LANGS:
            loc = entry.text(lang)
            assert loc.title and loc.meaning and loc.cause and loc.fix
    assert set(seed_codes()) == mentioned


@needs_shared
def test_every_errors_yaml_code_is_present_with_the_same_facts() -> None:
    for item in _errors_yaml():
        entry = lookup(item["code"])
        assert entry is not None, f"{item['code']} from errors.yaml is missing"
        assert entry.key == item["code"]
        assert entry.code == item["unsigned"]
        assert entry.signed == item["signed"]
        assert entry.name == item["name"]
        assert set(entry.products) == set(item["products"])
        assert entry.seed is item["seed"]


def test_kmsfleet_diagnoses_are_present() -> None:
    for key in KF_REQUIRED:
        entry = lookup(key)
        assert entry is not None, key
        assert entry.is_diagnosis and entry.code is None and entry.hex is None
        assert entry.name == key and not entry.seed


def test_keys_are_unique_and_cross_references_resolve() -> None:
    keys = [e.key for e in all_entries()]
    assert len(keys) == len(set(keys))
    for entry in all_entries():
        for ref in entry.see_also:
            assert lookup(ref) is not None and ref != entry.key
        assert set(entry.products) <= {"windows", "office", "server", "sql"}


# ---------------------------------------------------------------------------------------------- language


def test_zh_tw_is_chinese_and_differs_from_english() -> None:
    for entry in all_entries():
        en, zh = entry.text("en"), entry.text("zh-TW")
        for field in ("title", "meaning", "cause"):
            assert CJK.search(getattr(zh, field)), f"{entry.key} zh-TW {field} has no Chinese"
            assert getattr(zh, field) != getattr(en, field)
        assert len(zh.fix) == len(en.fix), f"{entry.key}: both languages should have the same steps"
        for step_en, step_zh in zip(en.fix, zh.fix, strict=True):
            assert CJK.search(step_zh), f"{entry.key} zh-TW fix step has no Chinese: {step_zh}"
            assert step_zh != step_en
        assert not CJK.search(" ".join(_all_texts(entry, "en"))), f"{entry.key} English text contains CJK"


def test_zh_tw_uses_traditional_not_simplified_characters() -> None:
    simplified_only = set("们这时说对会开关机启动设网络软应该错误连线户为个来码钥删览给务")
    for entry in all_entries():
        text = " ".join(_all_texts(entry, "zh-TW"))
        bad = sorted({ch for ch in text if ch in simplified_only})
        assert not bad, f"{entry.key}: simplified characters {bad}"


def test_placeholders_agree_between_languages() -> None:
    def names(texts: list[str]) -> set[str]:
        found: set[str] = set()
        for text in texts:
            found |= {f for _, f, _, _ in string.Formatter().parse(text) if f}
        return found

    for entry in all_entries():
        raw_en = entry.en
        raw_zh = entry.zh_tw
        en = names([raw_en.title, raw_en.meaning, raw_en.cause, *raw_en.fix])
        zh = names([raw_zh.title, raw_zh.meaning, raw_zh.cause, *raw_zh.fix])
        assert en == zh, f"{entry.key}: placeholders differ {en} vs {zh}"
        assert en <= {"code"}, f"{entry.key}: only {{code}} is filled in, found {en}"


def test_titles_are_short_single_lines() -> None:
    for entry in all_entries():
        for lang in LANGS:
            title = entry.text(lang).title
            assert "\n" not in title and 0 < len(title) <= 60
            assert not title.endswith((".", "。"))


@needs_shared
def test_english_is_not_copied_from_errors_yaml() -> None:
    originals = {
        _norm(item[field])
        for item in _errors_yaml()
        for field in ("meaning_en", "cause_en", "fix_en")
        if item.get(field)
    }
    for entry in all_entries():
        loc = entry.text("en")
        candidates = [loc.meaning, loc.cause, " ".join(loc.fix), *loc.fix]
        for text in candidates:
            assert _norm(text) not in originals, f"{entry.key} copies errors.yaml verbatim: {text}"


@needs_shared
def test_no_long_word_runs_shared_with_errors_yaml_english() -> None:
    run = 9
    grams: set[tuple[str, ...]] = set()
    for item in _errors_yaml():
        for field in ("meaning_en", "cause_en", "fix_en"):
            words = _norm(item.get(field) or "").split()
            grams |= {tuple(words[i : i + run]) for i in range(len(words) - run + 1)}
    for entry in all_entries():
        for text in _all_texts(entry, "en"):
            words = _norm(_prose(text)).split()
            for i in range(len(words) - run + 1):
                assert tuple(words[i : i + run]) not in grams, f"{entry.key}: '{' '.join(words[i : i + run])}'"


@needs_shared
def test_chinese_is_not_copied_from_the_seed_or_errors_yaml() -> None:
    def squash(text: str) -> str:
        return re.sub(r"\s+", "", text)

    sources = [squash(_seed_text())]
    for item in _errors_yaml():
        sources += [squash(item.get("meaning_zh_tw") or ""), squash(item.get("fix_zh_tw") or "")]
    corpus = "\n".join(sources)
    window = 16
    for entry in all_entries():
        for text in _all_texts(entry, "zh-TW"):
            flat = squash(text)
            for i in range(len(flat) - window + 1):
                piece = flat[i : i + window]
                if len(CJK.findall(piece)) >= 12:
                    assert piece not in corpus, f"{entry.key}: copied Chinese '{piece}'"


# ---------------------------------------------------------------------------------------------- advice


def _joined(key: str, lang: str = "en") -> str:
    entry = lookup(key)
    assert entry is not None
    return " ".join(_all_texts(entry, lang))


def test_kms_unreachable_advice_covers_network_port_and_clock() -> None:
    for lang in LANGS:
        text = _joined("0xC004F074", lang)
        assert "1688" in text and "VPN" in text
        assert "fix_timezone" in text and "Taipei Standard Time" in text
        assert "0xC004F06C" in text  # the clock error hiding behind 0xC004F074


def test_clock_advice_names_kmsfleet_options_and_tzutil() -> None:
    for key in ("0xC004F06C", "KF_WRONG_TIMEZONE", "KF_CLOCK_SKEW"):
        for lang in LANGS:
            text = _joined(key, lang)
            assert "time_sync" in text and "fix_clock" in text, key
    for key in ("0xC004F06C", "KF_WRONG_TIMEZONE"):
        assert 'tzutil /s "Taipei Standard Time"' in _joined(key)


def test_oem_office_removal_is_manual_and_follows_the_seed() -> None:
    for key in ("0xC004F017", "KF_OEM_OFFICE"):
        text = _joined(key)
        assert "never" in text.lower() and "troubleshooter" in text and "restart" in text
        assert "Microsoft.Office.Desktop" in text
        assert "不會自動" in _joined(key, "zh-TW")


def test_unreachable_points_to_wake_and_retry() -> None:
    text = _joined("KF_UNREACHABLE")
    assert "kmsfleet wake" in text and "--limit @unreachable" in text


def test_sql_server_is_informational() -> None:
    entry = lookup("KF_SQL_AUDIT_ONLY")
    assert entry is not None and entry.products == ("sql",)


def test_unknown_error_entry_fills_in_the_code() -> None:
    entry = lookup(UNKNOWN_KEY)
    assert entry is not None
    for lang in LANGS:
        text = " ".join(entry.text(lang, code=-1).fix)
        assert "slui.exe 0x2a 0xFFFFFFFF" in text
        assert "{code}" not in " ".join(_all_texts(entry, lang))


# ---------------------------------------------------------------------------------------------- lookup


@pytest.mark.parametrize("lang", ["zh-TW", "zh_TW", "zh-tw", "ZH_tw", "zh"])
def test_text_accepts_the_usual_spellings_of_traditional_chinese(lang: str) -> None:
    entry = lookup("0xC004F074")
    assert entry is not None
    assert entry.text(lang) == entry.text("zh-TW")


def test_text_refuses_an_unknown_language() -> None:
    entry = lookup("0xC004F074")
    assert entry is not None
    with pytest.raises(ValueError, match="zh-TW"):
        entry.text("fr")


@pytest.mark.parametrize(
    "spelling",
    [
        0xC004F074,
        -1073418124,
        "0xC004F074",
        "0xc004f074",
        "C004F074",
        "c004f074",
        "3221549172",
        "-1073418124",
        " 0XC004F074 ",
        "SL_E_VL_BINDING_SERVICE_UNAVAILABLE",
        "sl_e_vl_binding_service_unavailable",
    ],
)
def test_lookup_finds_an_entry_however_the_code_is_written(spelling: str | int) -> None:
    entry = lookup(spelling)
    assert entry is not None and entry.key == "0xC004F074"


def test_lookup_of_diagnosis_keys_is_case_insensitive_and_none_when_unknown() -> None:
    entry = lookup("kf_clock_skew")
    assert entry is not None and entry.key == "KF_CLOCK_SKEW"
    assert lookup("KF_NO_SUCH_THING") is None
    assert lookup(0x12345678) is None
    assert lookup("not a code") is None
    assert lookup(1 << 40) is None


def test_diagnose() -> None:
    assert diagnose(0xC004F074) == "0xC004F074"
    assert diagnose(-1073418124) == "0xC004F074"
    assert diagnose(0xC004F074, "KF_CLOCK_SKEW") == "0xC004F074"  # a known HRESULT wins
    assert diagnose(0x12345678, "KF_CLOCK_SKEW") == "KF_CLOCK_SKEW"
    assert diagnose(None, "kf_clock_skew") == "KF_CLOCK_SKEW"
    assert diagnose(0x12345678) == UNKNOWN_KEY
    assert diagnose(None) is None
    assert diagnose(0) is None
    assert diagnose(0, "KF_INTERRUPTED") == "KF_INTERRUPTED"
    with pytest.raises(ValueError, match="catalogue"):
        diagnose(None, "KF_TYPO")


# ---------------------------------------------------------------------------------------------- parse_code


@given(st.integers(min_value=0, max_value=0xFFFFFFFF))
def test_parse_code_round_trips_every_32_bit_value(value: int) -> None:
    signed = signed_code(value)
    assert -(1 << 31) <= signed < (1 << 31)
    assert parse_code(value) == value
    assert parse_code(signed) == value
    assert parse_code(format_code(value)) == value
    assert parse_code(f"0x{value:x}") == value
    assert parse_code(f"0X{value:08X}") == value
    assert parse_code(f"{value:08x}") == value  # hex without 0x, 8 digits
    assert parse_code(f"{value:08X}") == value
    for decimal in {str(value), str(signed)}:
        if len(decimal) != 8:  # eight bare digits are read as hex: see the next test
            assert parse_code(decimal) == value
    assert format_code(value) == f"0x{value:08X}"


def test_eight_bare_digits_are_hex() -> None:
    assert parse_code("80070005") == 0x80070005
    assert parse_code("12345678") == 0x12345678
    assert parse_code("1234567") == 1234567  # other lengths are decimal
    assert parse_code("123456789") == 123456789


@pytest.mark.parametrize(
    "bad",
    ["", "   ", "0x", "hello", "0xG0000000", "12.5", "0x1FFFFFFFF", "4294967296", "-2147483649", "C004F074h", "--1"],
)
def test_parse_code_rejects_malformed_input_with_a_hint(bad: str) -> None:
    with pytest.raises(ValueError, match="0xC004F074"):
        parse_code(bad)


@pytest.mark.parametrize("bad", [True, 1 << 32, -(1 << 31) - 1, 1.5, None])
def test_parse_code_rejects_non_codes(bad: Any) -> None:
    with pytest.raises(ValueError):
        parse_code(bad)


@given(st.text(max_size=40))
def test_parse_code_never_fails_other_than_with_value_error(text: str) -> None:
    try:
        value = parse_code(text)
    except ValueError:
        return
    assert 0 <= value <= 0xFFFFFFFF
