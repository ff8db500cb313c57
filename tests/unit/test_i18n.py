"""Run-output messages: both languages for every key, matching placeholders, and t()'s run-time behaviour."""

from __future__ import annotations

import re
import string
from importlib import resources
from pathlib import Path

import pytest
import yaml

import orchestrator
from orchestrator.knowledge import i18n
from orchestrator.knowledge.i18n import Message, messages, normalise_lang, t

CJK = re.compile(r"[\u4e00-\u9fff]")
KEY_SHAPE = re.compile(r"[a-z0-9_]+(\.[a-z0-9_]+)+")
SAME_IN_BOTH = {"product.windows", "product.office", "product.server", "product.sql", "explain.column.seed"}

REQUIRED = [
    *(f"status.{s}" for s in ("ok", "changed", "failed", "unreachable", "auth_refused", "skipped")),
    *(f"status.{s}" for s in ("interrupted", "not_run")),
    *(f"column.{s}" for s in ("ok", "changed", "failed", "unreachable", "auth_refused", "skipped")),
    *(f"column.{s}" for s in ("interrupted", "not_run")),
    "recap.play_recap",
    "recap.classroom_summary",
    "recap.failed_of_total",
    "recap.group",
    "recap.fix",
    "column.days_left",
    "column.licence",
    "column.product",
    "column.host",
    "column.status",
    "column.error",
    "recap.next_steps",
    "check.would_change",
    "check.no_changes",
    "progress.hosts_done",
    "progress.failures_so_far",
    "product.windows",
    "product.office",
    "product.server",
    "product.sql",
]


def _raw() -> dict[str, dict[str, object]]:
    text = resources.files("orchestrator.knowledge").joinpath("messages.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def _forms(value: object) -> list[str]:
    if isinstance(value, dict):
        return [str(value["one"]), str(value["other"])]
    assert isinstance(value, str), value
    return [value]


def _names(text: str) -> set[str]:
    return {f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(text) if f is not None}


def test_required_keys_exist() -> None:
    missing = [k for k in REQUIRED if k not in messages()]
    assert not missing


def test_every_key_has_both_languages_with_the_same_placeholders() -> None:
    for key, entry in _raw().items():
        assert KEY_SHAPE.fullmatch(key), f"{key}: keys are lower-case words joined by dots"
        assert "en" in entry and "zh-TW" in entry, f"{key}: needs en and zh-TW"
        forms = {lang: _forms(entry[lang]) for lang in ("en", "zh-TW")}
        expected = _names(forms["en"][0])
        for lang, texts in forms.items():
            for text in texts:
                assert text.strip(), f"{key} {lang}: empty"
                assert _names(text) == expected, f"{key} {lang}: placeholders {_names(text)} != {expected}"
        assert not expected & {"key", "lang"}, f"{key}: placeholders may not be named key or lang"
        if entry.get("plural"):
            assert entry["plural"] in expected


def test_no_duplicate_keys_in_the_file() -> None:
    text = resources.files("orchestrator.knowledge").joinpath("messages.yaml").read_text(encoding="utf-8")
    top = re.findall(r"^([^\s#][^:]*):", text, flags=re.MULTILINE)
    assert len(top) == len(set(top)), {k for k in top if top.count(k) > 1}


def test_chinese_is_chinese() -> None:
    for key, entry in _raw().items():
        if key in SAME_IN_BOTH:
            continue
        for en, zh in zip(_forms(entry["en"]), _forms(entry["zh-TW"]), strict=False):
            assert zh != en, key
        bare = [re.sub(r"\{[^}]*\}|[\W_]", "", z) for z in _forms(entry["zh-TW"])]
        if any(bare):  # a text made only of placeholders and punctuation ("{product}：{status}") is fine
            assert any(CJK.search(z) for z in _forms(entry["zh-TW"])), f"{key}: zh-TW has no Chinese"


def test_every_literal_key_used_in_the_source_exists() -> None:
    root = Path(orchestrator.__file__).parent
    call = re.compile(r"""\bt\(\s*(f?)(["'])([^"']+)\2""")
    used: list[tuple[str, str]] = []
    for path in root.rglob("*.py"):
        for is_f, _, key in ((m.group(1), m.group(2), m.group(3)) for m in call.finditer(path.read_text("utf-8"))):
            used.append((str(path.relative_to(root)), key if not is_f else key.split("{")[0]))
    assert used, "the scan found no t() calls at all"
    known = messages()
    for where, key in used:
        if not key:  # f"{kind}.{value}": fully dynamic, nothing to check statically
            continue
        if key.endswith("."):  # f"product.{p}": some key with that prefix must exist
            assert any(k.startswith(key) for k in known), f"{where}: no key starts with {key}"
        else:
            assert key in known, f"{where}: t({key!r}) has no entry in messages.yaml"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("en", "en"),
        ("EN", "en"),
        ("en_US", "en"),
        ("en-GB", "en"),
        ("zh-TW", "zh-TW"),
        ("zh_TW", "zh-TW"),
        ("zh-tw", "zh-TW"),
        ("zh", "zh-TW"),
        ("zh-Hant", "zh-TW"),
        ("zh_TW.UTF-8", "zh-TW"),
    ],
)
def test_normalise_lang(given: str, expected: str) -> None:
    assert normalise_lang(given) == expected


@pytest.mark.parametrize("bad", ["fr", "", "zh-CN", "chinese"])
def test_normalise_lang_refuses(bad: str) -> None:
    with pytest.raises(ValueError, match="zh-TW"):
        normalise_lang(bad)


def test_t_formats_and_picks_plural_forms() -> None:
    raw = _raw()["recap.group"]
    assert isinstance(raw["en"], dict)
    assert t("recap.group", "en", n=1, title="X") == str(raw["en"]["one"]).format(n=1, title="X")
    assert t("recap.group", "en", n=3, title="X") == str(raw["en"]["other"]).format(n=3, title="X")
    assert t("recap.group", "zh_TW", n=3, title="X") == str(raw["zh-TW"]).format(n=3, title="X")
    assert t("recap.failed_of_total", "zh-TW", failed=2, total=40).count("40") == 1


def test_t_falls_back_at_run_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KMSFLEET_I18N_STRICT", raising=False)
    assert t("no.such.key", "en") == "no.such.key"
    assert t("status.ok", "fr") == t("status.ok", "en")  # unknown language: English
    assert t("recap.group", "en", n=2).endswith("{title}")  # a missing argument stays visible
    only_en = {"x.only_english": Message.model_validate({"en": "Hello {who}"})}
    monkeypatch.setattr(i18n, "messages", lambda: only_en)
    assert t("x.only_english", "zh-TW", who="you") == "Hello you"


def test_t_strict_mode_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KMSFLEET_I18N_STRICT", "1")
    with pytest.raises(KeyError):
        t("no.such.key", "en")


def test_message_model_requires_plural_declaration() -> None:
    with pytest.raises(ValueError, match="plural"):
        Message.model_validate({"en": {"one": "{n} PC", "other": "{n} PCs"}, "zh-TW": "{n} 台"})
    with pytest.raises(ValueError, match="placeholder"):
        Message.model_validate({"plural": "count", "en": {"one": "{n} PC", "other": "{n} PCs"}})
