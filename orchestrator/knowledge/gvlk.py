"""Microsoft's published KMS client setup keys (GVLKs), from ``gvlk.yaml`` beside this file.

``windows_gvlk("Education")`` gives the key to install (``InstallProductKey``) on a Windows Education PC that
carries a retail/OEM/MAK key; ``office_gvlk(2016)`` the Office 2016 Professional Plus key. A GVLK never activates
anything by itself: it makes the install a KMS client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from orchestrator.knowledge._yaml import load_resource

_KEY = r"[0-9A-Z]{5}(-[0-9A-Z]{5}){4}"
_GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_VERSION_HINT = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?(?:\.\d+)*")

OFFICE_VERSIONS: Final = (2013, 2016, 2019, 2021, 2024)

# Spellings of Office editions people and tools use -> the ``edition`` field of gvlk.yaml.
_OFFICE_ALIASES: Final = {
    "proplus": "ProPlus",
    "professionalplus": "ProPlus",
    "standard": "Standard",
    "std": "Standard",
    "projectpro": "ProjectPro",
    "projectprofessional": "ProjectPro",
    "projectstd": "ProjectStd",
    "projectstandard": "ProjectStd",
    "visiopro": "VisioPro",
    "visioprofessional": "VisioPro",
    "visiostd": "VisioStd",
    "visiostandard": "VisioStd",
    "access": "Access",
    "excel": "Excel",
    "onenote": "OneNote",
    "outlook": "Outlook",
    "powerpoint": "PowerPoint",
    "publisher": "Publisher",
    "skypeforbusiness": "SkypeForBusiness",
    "word": "Word",
}


class GvlkEntry(BaseModel):
    """One published key. Windows entries carry ``edition_id``/``family``; Office entries ``version``/``edition``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["windows", "office"]
    product: str
    key: str = Field(pattern=_KEY)
    sku_id: str | None = Field(default=None, pattern=_GUID)
    # windows
    edition_id: str | None = None
    family: Literal["client", "server"] | None = None
    os_version: str | None = Field(default=None, pattern=r"\d+\.\d+")
    builds: tuple[int, ...] | None = None
    # office
    version: int | None = None
    edition: str | None = None
    suite: bool = False

    @model_validator(mode="after")
    def _fields_for_kind(self) -> GvlkEntry:
        if self.kind == "windows":
            if not (self.edition_id and self.family and self.os_version):
                raise ValueError(f"{self.product}: windows entries need edition_id, family and os_version")
            if self.version is not None or self.edition is not None:
                raise ValueError(f"{self.product}: version/edition are for office entries")
        else:
            if self.version not in OFFICE_VERSIONS or not self.edition:
                raise ValueError(f"{self.product}: office entries need version (one of {OFFICE_VERSIONS}) and edition")
            if self.edition_id is not None or self.family is not None:
                raise ValueError(f"{self.product}: edition_id/family are for windows entries")
        return self


@dataclass(frozen=True)
class _Table:
    windows: tuple[GvlkEntry, ...]
    office: tuple[GvlkEntry, ...]


@cache
def _table() -> _Table:
    raw = load_resource("gvlk.yaml")
    if not isinstance(raw, dict) or set(raw) != {"windows", "office"}:
        raise ValueError("gvlk.yaml: expected the two lists `windows` and `office`")
    parts: dict[str, tuple[GvlkEntry, ...]] = {}
    for kind in ("windows", "office"):
        items: list[GvlkEntry] = []
        for item in raw[kind]:
            try:
                items.append(GvlkEntry.model_validate({"kind": kind, **item}))
            except (ValidationError, TypeError) as exc:
                raise ValueError(f"gvlk.yaml {kind}: {item!r}: {exc}") from None
        parts[kind] = tuple(items)
    seen: set[tuple[str, str]] = set()
    for entry in parts["windows"] + parts["office"]:
        if (entry.product, entry.key) in seen:
            raise ValueError(f"gvlk.yaml: {entry.product} listed twice")
        seen.add((entry.product, entry.key))
    return _Table(parts["windows"], parts["office"])


def all_windows() -> tuple[GvlkEntry, ...]:
    return _table().windows


def all_office() -> tuple[GvlkEntry, ...]:
    return _table().office


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9.]+", text.lower())


def _match_hint(candidates: list[GvlkEntry], hint: str) -> list[GvlkEntry]:
    m = _VERSION_HINT.fullmatch(hint.strip())
    if m:  # "10.0.19045", "6.1.7601", "6.3"
        os_version = f"{int(m.group(1))}.{int(m.group(2))}"
        build = int(m.group(3)) if m.group(3) else None
        same = [c for c in candidates if c.os_version == os_version]
        if build is None:
            return same
        exact = [c for c in same if c.builds is not None and build in c.builds]
        return exact or [c for c in same if c.builds is None]
    # words: "Windows 7", "2019", "LTSC 2021", "Server 2012 R2": every word must appear in the product name;
    # the closest name (fewest extra words) wins, so "2012" picks 2012 rather than 2012 R2.
    wanted = _tokens(hint)
    if not wanted:
        return []
    scored = []
    for c in candidates:
        words = _tokens(c.product.replace("/", " "))
        if all(w in words for w in wanted):
            scored.append((len(words) - len(wanted), c))
    if not scored:
        return []
    best = min(score for score, _ in scored)
    return [c for score, c in scored if score == best]


def windows_gvlk(edition_id: str, family: str | None = None, version_hint: str | None = None) -> GvlkEntry | None:
    """The GVLK for a Windows ``EditionID`` (``Education``, ``ProfessionalN``, ``ServerStandard`` …).

    ``family`` ("client"/"server") narrows the search. ``version_hint`` picks a release when an EditionID has
    several: a ``Win32_OperatingSystem.Version`` such as ``10.0.17763`` / ``6.1.7601`` (LTSC/LTSB and Server
    releases are matched by build), or words from the product name (``"Windows 7"``, ``"2019"``,
    ``"LTSC 2021"``). Without a hint the newest release listed wins. None when no key fits (e.g. ``Core`` -
    Home has no GVLK - or an EnterpriseS build that is not an LTSC release).
    """
    wanted = edition_id.strip().lower()
    candidates = [e for e in _table().windows if (e.edition_id or "").lower() == wanted]
    if family is not None:
        fam = family.strip().lower()
        candidates = [e for e in candidates if e.family == fam]
    if version_hint is not None and version_hint.strip():
        candidates = _match_hint(candidates, version_hint)
    return candidates[0] if candidates else None


def _office_edition(edition: str) -> str | None:
    key = re.sub(r"[^a-z0-9]", "", edition.lower())
    key = re.sub(r"(\d{4})?volume$", "", key)  # ProPlus2019Volume
    key = re.sub(r"(ltsc)?\d{4}$", "", key)  # ProPlus2021, "Professional Plus 2016"
    key = key.replace("office", "").replace("ltsc", "")
    return _OFFICE_ALIASES.get(key)


def office_gvlk(version: int, edition: str = "ProPlus") -> GvlkEntry | None:
    """The GVLK for Office ``version`` (2013, 2016, 2019, 2021, 2024) and ``edition``.

    ``edition``: ProPlus (default), Standard, ProjectPro, ProjectStd, VisioPro, VisioStd, Access, Excel,
    OneNote, Outlook, PowerPoint, Publisher, SkypeForBusiness, Word; also spelled "Professional Plus" or as an
    Office Deployment Tool product ID ("ProPlus2019Volume"). None when Microsoft publishes no such key.
    """
    name = _office_edition(edition)
    if name is None:
        return None
    for entry in _table().office:
        if entry.version == version and entry.edition == name:
            return entry
    return None
