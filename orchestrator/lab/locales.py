"""The display language of a simulated PC: ``locale_for("zh-TW").text("License Status: Licensed")``.

Data: ``locales.yaml`` beside this file (validated here, loaded once). A locale holds the PC's WMI language facts
(LCID, OSLanguage, CountryCode, ANSI/OEM code pages, MUI languages), its localized OS captions and time zone
names, the way VBScript prints a date, and the texts its command-line programs print, keyed by the English text
(so a program asks for the English template and gets its own language's, or the English one where the locale
has none). Sources: docs/lab-zh-tw.md.
"""

from __future__ import annotations

import string
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from orchestrator.knowledge._yaml import load_text
from orchestrator.lab.spec import KNOWN_TIMEZONES, LOCALES, WINDOWS_EDITIONS

DEFAULT_LOCALE: Final = "en-US"


def _fields(text: str) -> frozenset[str]:
    return frozenset(f for _, f, _, _ in string.Formatter().parse(text) if f is not None)


class ZoneNames(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    caption: str
    standard: str
    daylight: str


class Locale(BaseModel):
    """One display language (an entry of ``locales.yaml``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    lcid: str
    os_language: int
    country_code: str
    ansi_codepage: int
    oem_codepage: int
    mui_languages: tuple[str, ...]
    date: str
    am: str
    pm: str
    captions: dict[str, str]
    time_zones: dict[str, ZoneNames]
    texts: dict[str, str]

    @field_validator("captions")
    @classmethod
    def _known_os(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - set(WINDOWS_EDITIONS))
        if unknown:
            raise ValueError(f"captions for unknown os {unknown}")
        return v

    @field_validator("time_zones")
    @classmethod
    def _known_zones(cls, v: dict[str, ZoneNames]) -> dict[str, ZoneNames]:
        unknown = sorted(set(v) - set(KNOWN_TIMEZONES))
        if unknown:
            raise ValueError(f"names for unknown time zones {unknown}")
        return v

    @model_validator(mode="after")
    def _same_placeholders(self) -> Locale:
        for english, own in self.texts.items():
            if _fields(english) != _fields(own):
                raise ValueError(f"{self.name}: {own!r} must use the placeholders of {english!r}")
        return self

    # -- lookups -----------------------------------------------------------------------------------------
    def text(self, english: str, **values: Any) -> str:
        """This locale's text for an English template, with ``values`` filled in."""
        template = self.texts.get(english, english)
        return template.format(**values) if values else template

    def caption(self, os_name: str, english_caption: str) -> str:
        return self.captions.get(os_name, english_caption)

    def zone(self, zone_id: str) -> ZoneNames | None:
        return self.time_zones.get(zone_id)

    def vb_date(self, moment: datetime) -> str:
        """A date as VBScript's ``CStr(Date)`` prints it in this locale (slmgr /xpr, w32tm)."""
        hour12 = moment.hour % 12 or 12
        return self.date.format(
            y=moment.year,
            m=moment.month,
            d=moment.day,
            H=moment.hour,
            h=hour12,
            hh=hour12,
            M=moment.minute,
            S=moment.second,
            ampm=self.am if moment.hour < 12 else self.pm,
        )


@cache
def _all() -> dict[str, Locale]:
    raw = load_text(resources.files("orchestrator.lab").joinpath("locales.yaml").read_text("utf-8"), "locales.yaml")
    if not isinstance(raw, dict) or set(raw) != set(LOCALES):
        raise ValueError(f"locales.yaml must define exactly {list(LOCALES)}")
    try:
        return {name: Locale(name=name, **body) for name, body in raw.items()}
    except ValidationError as exc:
        raise ValueError(f"locales.yaml: {exc}") from None


def locale_for(name: str) -> Locale:
    """The locale called ``name`` (one of ``spec.LOCALES``)."""
    return _all()[name]


def all_locales() -> dict[str, Locale]:
    return dict(_all())
