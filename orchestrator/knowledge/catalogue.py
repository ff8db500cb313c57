"""The error catalogue: what a Windows/Office activation code (or a kmsfleet diagnosis) means and what to do.

Data: ``catalogue.yaml`` beside this file (validated here, loaded once). Codes are plain 32-bit ints
(unsigned, as ``0xC004F074`` reads); ``parse_code`` accepts every way a user or a tool writes one.

    >>> lookup("0xc004f074").text("zh-TW").title
    '無法連線到 KMS 主機'
    >>> diagnose(-1073418124)
    '0xC004F074'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from orchestrator.knowledge._yaml import load_resource
from orchestrator.knowledge.i18n import normalise_lang

Product = Literal["windows", "office", "server", "sql"]

KF_PREFIX: Final = "KF_"
UNKNOWN_KEY: Final = "KF_UNKNOWN_ERROR"
CODE_PLACEHOLDER: Final = "{code}"  # replaced by Entry.text(lang, code=...) with the hex code

_U32: Final = 0xFFFFFFFF
_HEX_PREFIXED = re.compile(r"([+-]?)0x([0-9a-f]+)", re.IGNORECASE)
_DECIMAL = re.compile(r"[+-]?[0-9]+")
_HEX_BARE = re.compile(r"[0-9a-f]+", re.IGNORECASE)
_CANONICAL = re.compile(r"0x[0-9A-F]{8}")
_KF_KEY = re.compile(r"KF_[A-Z0-9_]+")

_FORMS_HINT = "write it as hex (0xC004F074 or C004F074), unsigned decimal (3221549172) or signed decimal (-1073418124)"


def format_code(code: int) -> str:
    """``0xC004F074``: the canonical spelling (and catalogue key) of a 32-bit code."""
    return f"0x{code & _U32:08X}"


def signed_code(code: int) -> int:
    """The same 32 bits read as a signed int (what VBScript's Err.Number and WMI show)."""
    code &= _U32
    return code - (1 << 32) if code & 0x80000000 else code


def _fit(value: int, shown: str) -> int:
    if -(1 << 31) <= value <= _U32:
        return value & _U32
    raise ValueError(f"{shown} does not fit in 32 bits, so it is not a Windows error code; {_FORMS_HINT}")


def parse_code(text: str | int) -> int:
    """An error code as an unsigned 32-bit int, from any usual spelling.

    Accepted: hex with or without ``0x`` in any case (``0xc004f074``, ``C004F074``), unsigned decimal
    (``3221549172``) and signed decimal (``-1073418124``); ints likewise (signed or unsigned). A bare string of
    exactly eight digits is read as hex (``80070005`` is 0x80070005 - nobody types an HRESULT as an 8-digit
    decimal); other all-digit strings are decimal. Raises ``ValueError`` with a hint otherwise.
    """
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not an error code; {_FORMS_HINT}")
    if isinstance(text, int):
        return _fit(text, str(text))
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not an error code; {_FORMS_HINT}")
    s = text.strip()
    if not s:
        raise ValueError(f"an empty string is not an error code; {_FORMS_HINT}")
    if m := _HEX_PREFIXED.fullmatch(s):
        value = int(m.group(2), 16)
        return _fit(-value if m.group(1) == "-" else value, repr(text))
    if _DECIMAL.fullmatch(s):
        if len(s) == 8:  # bare 8 digits: an HRESULT written without 0x
            return int(s, 16)
        return _fit(int(s), repr(text))
    if _HEX_BARE.fullmatch(s):
        return _fit(int(s, 16), repr(text))
    raise ValueError(f"{text!r} is not an error code; {_FORMS_HINT}")


class Localised(BaseModel):
    """An entry's text in one language. ``fix`` is a list of steps (``fix_text`` numbers them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str = Field(min_length=1, max_length=60)
    meaning: str = Field(min_length=1)
    cause: str = Field(min_length=1)
    fix: tuple[str, ...] = Field(min_length=1)

    @field_validator("title", "meaning", "cause")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return " ".join(value.split())

    @field_validator("fix")
    @classmethod
    def _steps(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        steps = tuple(" ".join(step.split()) for step in value)
        if any(not step for step in steps):
            raise ValueError("a fix step is empty")
        return steps

    @property
    def fix_text(self) -> str:
        """The steps as ``1. …`` lines."""
        return "\n".join(f"{i}. {step}" for i, step in enumerate(self.fix, 1))

    def with_code(self, shown: str) -> Localised:
        """A copy with every ``{code}`` token replaced by ``shown``."""

        def sub(text: str) -> str:
            return text.replace(CODE_PLACEHOLDER, shown)

        return Localised(
            title=sub(self.title),
            meaning=sub(self.meaning),
            cause=sub(self.cause),
            fix=tuple(sub(step) for step in self.fix),
        )


class Entry(BaseModel):
    """One catalogue entry: an HRESULT (``code``) or a kmsfleet diagnosis (``key`` starting with KF_)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    code_hex: str | None = Field(default=None, alias="code")
    kf_key: str | None = Field(default=None, alias="key")
    unsigned: int | None = None
    signed: int | None = None
    symbol: str | None = Field(default=None, alias="name")
    products: tuple[Product, ...]
    seed: bool
    see_also: tuple[str, ...] = ()
    en: Localised
    zh_tw: Localised = Field(alias="zh-TW")

    @model_validator(mode="after")
    def _consistent(self) -> Entry:
        if (self.code_hex is None) == (self.kf_key is None):
            raise ValueError("give exactly one of `code` (an HRESULT) or `key` (a KF_ diagnosis)")
        if self.code_hex is not None:
            if not _CANONICAL.fullmatch(self.code_hex):
                raise ValueError(f"code {self.code_hex!r} must be written 0x + 8 upper-case hex digits")
            value = int(self.code_hex, 16)
            if self.unsigned != value:
                raise ValueError(f"unsigned {self.unsigned} does not match {self.code_hex} ({value})")
            if self.signed != signed_code(value):
                raise ValueError(f"signed {self.signed} does not match {self.code_hex} ({signed_code(value)})")
        else:
            assert self.kf_key is not None
            if not _KF_KEY.fullmatch(self.kf_key):
                raise ValueError(f"key {self.kf_key!r} must look like KF_UPPER_CASE")
            if self.unsigned is not None or self.signed is not None or self.symbol is not None:
                raise ValueError(f"{self.kf_key}: a KF_ diagnosis has no unsigned/signed/name")
            if self.seed:
                raise ValueError(f"{self.kf_key}: seed is about codes the bureau's Q&A lists; use false")
        if len(set(self.products)) != len(self.products):
            raise ValueError("products lists a product twice")
        return self

    @property
    def key(self) -> str:
        """The catalogue key: ``0xC004F074`` or ``KF_CLOCK_SKEW`` (what results store as ``diagnosis``)."""
        return self.code_hex if self.code_hex is not None else str(self.kf_key)

    @property
    def code(self) -> int | None:
        """The HRESULT as an unsigned int; None for a KF_ diagnosis."""
        return self.unsigned

    @property
    def hex(self) -> str | None:
        return self.code_hex

    @property
    def name(self) -> str | None:
        """Symbolic name (``SL_E_VL_BINDING_SERVICE_UNAVAILABLE``); the key for a KF_ diagnosis; None if unknown."""
        return self.kf_key if self.kf_key is not None else self.symbol

    @property
    def is_diagnosis(self) -> bool:
        return self.kf_key is not None

    def text(self, lang: str, code: int | str | None = None) -> Localised:
        """The texts in ``lang`` ("en" or "zh-TW"; "zh_TW", "zh-tw", "zh" also work).

        ``code`` fills the ``{code}`` token (used by KF_UNKNOWN_ERROR); without it the token reads ``0x<code>``.
        """
        localised = self.en if normalise_lang(lang) == "en" else self.zh_tw
        shown = format_code(parse_code(code)) if code is not None else "0x<code>"
        return localised.with_code(shown)


@dataclass(frozen=True)
class _Catalogue:
    entries: tuple[Entry, ...]
    by_key: Mapping[str, Entry]
    by_code: Mapping[int, Entry]
    by_name: Mapping[str, Entry]


@cache
def _catalogue() -> _Catalogue:
    raw = load_resource("catalogue.yaml")
    if not isinstance(raw, list):
        raise ValueError("catalogue.yaml: expected a list of entries")
    entries: list[Entry] = []
    for i, item in enumerate(raw):
        try:
            entries.append(Entry.model_validate(item))
        except ValidationError as exc:
            label = item.get("code") or item.get("key") if isinstance(item, dict) else None
            raise ValueError(f"catalogue.yaml entry {i + 1} ({label}): {exc}") from None
    by_key: dict[str, Entry] = {}
    by_code: dict[int, Entry] = {}
    by_name: dict[str, Entry] = {}
    for entry in entries:
        if entry.key in by_key:
            raise ValueError(f"catalogue.yaml: {entry.key} appears twice")
        by_key[entry.key] = entry
        if entry.code is not None:
            by_code[entry.code] = entry
        if entry.name is not None:
            by_name.setdefault(entry.name.upper(), entry)
    for entry in entries:
        for ref in entry.see_also:
            if ref not in by_key or ref == entry.key:
                raise ValueError(f"catalogue.yaml: {entry.key} see_also {ref!r} is not another entry")
    if UNKNOWN_KEY not in by_key:
        raise ValueError(f"catalogue.yaml: the {UNKNOWN_KEY} entry is missing")
    return _Catalogue(tuple(entries), by_key, by_code, by_name)


def all_entries() -> tuple[Entry, ...]:
    """Every entry, in catalogue order (the bureau's codes first, kmsfleet's KF_ diagnoses last)."""
    return _catalogue().entries


def seed_codes() -> tuple[int, ...]:
    """The codes the education bureau's Q&A lists (unsigned ints, catalogue order)."""
    return tuple(e.code for e in all_entries() if e.seed and e.code is not None)


def lookup(code_or_key: str | int) -> Entry | None:
    """The entry for an HRESULT (int, or any spelling ``parse_code`` accepts), a ``KF_`` key or a symbolic
    name such as ``SL_E_VL_INVALID_TIMESTAMP``. None when there is none (or the input is not a code at all)."""
    cat = _catalogue()
    if isinstance(code_or_key, str):
        text = code_or_key.strip()
        upper = text.upper()
        if upper.startswith(KF_PREFIX):
            return cat.by_key.get(upper)
        try:
            return cat.by_code.get(parse_code(text))
        except ValueError:
            return cat.by_name.get(upper)
    try:
        return cat.by_code.get(parse_code(code_or_key))
    except ValueError:
        return None


def diagnose(code: int | None, key: str | None = None) -> str | None:
    """The catalogue key to store on a failed result (``HostTaskResult.diagnosis``).

    A known HRESULT wins (its hex, e.g. ``0xC004F074``); otherwise the diagnosis ``key`` the module gave (e.g.
    ``KF_WRONG_TIMEZONE``, which must exist in the catalogue - ``ValueError`` if not, that is a bug); otherwise
    ``KF_UNKNOWN_ERROR`` for an unknown non-zero code; None when there is nothing to diagnose.
    """
    value = parse_code(code) if code is not None else None
    if value:
        entry = _catalogue().by_code.get(value)
        if entry is not None:
            return entry.key
    if key is not None:
        entry = lookup(key)
        if entry is None:
            raise ValueError(f"{key!r} is not a catalogue key (add it to orchestrator/knowledge/catalogue.yaml)")
        return entry.key
    if value:
        return UNKNOWN_KEY
    return None
