"""Reading a Windows PC's console output in the code page it was written in.

kmsfleet opens its WinRS shell with ``WINRS_CODEPAGE=65001``, so most programs write UTF-8. ``cscript.exe``
(slmgr.vbs, ospp.vbs) does not: Windows Script Host converts its text with the PC's OEM code page whatever the
console's code page is (Eric Lippert, "Unicode output and the Windows Script Host", 2004; saltstack/salt#64948;
ansible/ansible#54896 shows cp950 bytes from a zh-TW PC). On a Taiwanese PC that is cp950 (Big5), on an en-US
PC cp437. One command line can even mix the two (``hostname & cscript …``).

The rule (``decode_console``): each line is read as UTF-8 when it is valid UTF-8 (strict), otherwise in the PC's
OEM code page, otherwise (a code page Python does not know) as cp437 with replacement characters, so a line is
never lost. Splitting at ``\\n`` is safe in every Windows code page: no multi-byte character of cp932/936/949/950
has 0x0A as a trail byte. A non-ASCII cp950 line is practically never valid UTF-8 (Big5 trail bytes 0x40-0x7E
cannot follow a UTF-8 lead byte), so the two cannot be confused in practice.

The OEM code page comes from ``Win32_OperatingSystem.CodeSet`` (the ANSI code page) through the table below
(Windows pairs every ANSI code page with one OEM code page; for the CJK code pages both are the same).
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from typing import Final

DEFAULT_OEM: Final = 437

# ANSI code page (Win32_OperatingSystem.CodeSet) -> the OEM code page Windows pairs with it.
# Microsoft's "Code Page Identifiers" and the NLS locale tables (LOCALE_IDEFAULTCODEPAGE / LOCALE_IDEFAULTANSICODEPAGE).
_OEM_FOR_ANSI: Final = {
    874: 874,  # Thai
    932: 932,  # Japanese (Shift-JIS)
    936: 936,  # Simplified Chinese (GBK)
    949: 949,  # Korean
    950: 950,  # Traditional Chinese (Big5): Taiwan, Hong Kong
    1250: 852,  # Central European
    1251: 866,  # Cyrillic
    1252: 437,  # Western (en-US; other Western European locales use 850)
    1253: 737,  # Greek
    1254: 857,  # Turkish
    1255: 862,  # Hebrew
    1256: 720,  # Arabic
    1257: 775,  # Baltic
    1258: 1258,  # Vietnamese
}


def oem_for_codeset(codeset: object) -> int:
    """The OEM code page of a PC whose ``Win32_OperatingSystem.CodeSet`` is ``codeset`` (437 when unknown)."""
    try:
        ansi = int(str(codeset).strip())
    except ValueError:
        return DEFAULT_OEM
    return _OEM_FOR_ANSI.get(ansi, DEFAULT_OEM)


def _codec(codepage: int) -> str | None:
    try:
        return codecs.lookup(f"cp{codepage}").name
    except LookupError:
        return None


def decode_console(data: bytes, oem: Callable[[], int]) -> str:
    """Console bytes as text: UTF-8 line by line, else the PC's OEM code page (``oem()`` is asked only when a
    line is not UTF-8, so an all-UTF-8 answer costs nothing)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    codec: str | None = None
    asked = False
    out: list[str] = []
    for line in data.split(b"\n"):
        try:
            out.append(line.decode("utf-8"))
            continue
        except UnicodeDecodeError:
            pass
        if not asked:
            codec, asked = _codec(oem()), True
        try:
            out.append(line.decode(codec or "cp437"))
        except UnicodeDecodeError:
            out.append(line.decode(codec or "cp437", "replace"))
    return "\n".join(out)
