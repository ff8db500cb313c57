"""Run output in English and Traditional Chinese (Taiwan): ``t(key, lang, **kwargs)``.

The strings live in ``messages.yaml`` next to this file (how to add one is explained at its top). At run time a
missing translation falls back to English and an unknown key prints the key itself, so output never crashes;
the unit tests make sure neither happens (every key has both languages with the same ``{placeholders}``, and
every call of ``t`` with a literal key in the source names a key that exists). Set ``KMSFLEET_I18N_STRICT=1`` to turn
an unknown key into a ``KeyError`` instead.
"""

from __future__ import annotations

import os
import string
from collections.abc import Mapping
from functools import cache
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from orchestrator.knowledge._yaml import load_resource

LANGS: Final = ("en", "zh-TW")
DEFAULT_LANG: Final = "en"

_LANG_ALIASES: Final = {
    "en": "en",
    "zh-tw": "zh-TW",
    "zh": "zh-TW",
    "zh-hant": "zh-TW",
    "zh-hant-tw": "zh-TW",
    "tw": "zh-TW",
}


def normalise_lang(lang: str) -> str:
    """``"en"`` or ``"zh-TW"`` from the spellings people use (``zh_TW``, ``zh-tw``, ``zh``, ``en_US`` …).

    Raises ``ValueError`` for a language kmsfleet does not speak.
    """
    raw = str(lang).strip().replace("_", "-").lower()
    if raw.startswith("en-"):
        return "en"
    if raw.endswith(".utf-8") or raw.endswith(".utf8"):  # LANG=zh_TW.UTF-8
        return normalise_lang(raw.rsplit(".", 1)[0])
    try:
        return _LANG_ALIASES[raw]
    except KeyError:
        raise ValueError(f"unsupported language {lang!r}: use 'en' or 'zh-TW'") from None


class PluralText(BaseModel):
    """A counted string: ``one`` when the count is 1, ``other`` otherwise."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    one: str
    other: str

    def forms(self) -> tuple[str, ...]:
        return (self.one, self.other)


Text = str | PluralText


def _forms(text: Text) -> tuple[str, ...]:
    return text.forms() if isinstance(text, PluralText) else (text,)


def placeholders(text: str) -> frozenset[str]:
    """The ``{names}`` a format string uses (``{n:,}`` counts as ``n``)."""
    names: set[str] = set()
    for _, field, _, _ in string.Formatter().parse(text):
        if field is not None:
            names.add(field.split(".", 1)[0].split("[", 1)[0])
    return frozenset(names)


class Message(BaseModel):
    """One entry of ``messages.yaml``."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    en: Text
    zh_tw: Text | None = Field(default=None, alias="zh-TW")
    plural: str | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _plural_declared(self) -> Message:
        counted = any(isinstance(x, PluralText) for x in (self.en, self.zh_tw))
        if counted and not self.plural:
            raise ValueError("plural forms {one, other} need `plural: <placeholder>` naming the count")
        if self.plural and self.plural not in self.placeholders():
            raise ValueError(f"plural: {self.plural} is not one of the message's placeholders")
        return self

    def text(self, lang: str) -> Text | None:
        return self.en if lang == "en" else self.zh_tw

    def placeholders(self) -> frozenset[str]:
        names: set[str] = set()
        for text in (self.en, self.zh_tw):
            if text is not None:
                for form in _forms(text):
                    names |= placeholders(form)
        return frozenset(names)


class _Keep(dict[str, Any]):
    """Format arguments that leave an unknown ``{name}`` as it is instead of raising."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@cache
def messages() -> Mapping[str, Message]:
    """Every message, by key (loaded once)."""
    raw = load_resource("messages.yaml")
    if not isinstance(raw, dict):
        raise ValueError("messages.yaml: expected a mapping of key -> {en, zh-TW}")
    out: dict[str, Message] = {}
    for key, value in raw.items():
        try:
            out[str(key)] = Message.model_validate(value)
        except ValidationError as exc:
            raise ValueError(f"messages.yaml: {key}: {exc}") from None
    return out


def has(key: str) -> bool:
    return key in messages()


def _choose(text: Text, count: Any) -> str:
    if isinstance(text, str):
        return text
    return text.one if count == 1 else text.other


def t(key: str, lang: str, **kwargs: Any) -> str:
    """The message ``key`` in ``lang`` ("en" or "zh-TW", any usual spelling), formatted with ``kwargs``.

    Falls back to English when the language or the translation is missing; an unknown key returns the key
    itself (or raises ``KeyError`` when ``KMSFLEET_I18N_STRICT=1``). Missing arguments stay as ``{name}``.
    """
    message = messages().get(key)
    if message is None:
        if os.environ.get("KMSFLEET_I18N_STRICT") == "1":
            raise KeyError(f"no message {key!r} in messages.yaml")
        return key
    try:
        code = normalise_lang(lang)
    except ValueError:
        code = DEFAULT_LANG
    text = message.text(code) or message.en
    chosen = _choose(text, kwargs.get(message.plural) if message.plural else None)
    try:
        return string.Formatter().vformat(chosen, (), _Keep(kwargs))
    except (ValueError, IndexError, KeyError, AttributeError):
        return chosen
