"""Small, fast helpers for writing XML as text. Responses are built as strings (ElementTree serialisation
would dominate the cost of a Receive at lab scale); every value that came from outside goes through
``esc``/``attr``."""

from __future__ import annotations

import uuid

_TEXT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ATTR = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
)


def esc(text: str) -> str:
    """Escape character data. Characters XML 1.0 cannot carry at all are replaced with U+FFFD."""
    if text.isascii() and text.isprintable() and "&" not in text and "<" not in text and ">" not in text:
        return text  # the common case: nothing to do
    return _strip_invalid(text).translate(_TEXT)


def attr(text: str) -> str:
    """Escape an attribute value (to be placed between double quotes)."""
    return _strip_invalid(text).translate(_ATTR)


def _xml_char(c: str) -> bool:
    return c in "\t\n\r" or " " <= c < "\ud800" or "\ue000" <= c <= "\ufffd" or c >= "\U00010000"


def _strip_invalid(text: str) -> str:
    if (text.isprintable() and text.isascii()) or all(_xml_char(c) for c in text):
        return text
    return "".join(c if _xml_char(c) else "\ufffd" for c in text)


def new_message_id() -> str:
    """A fresh ``uuid:UPPER-CASE`` MessageID, as Windows writes them."""
    return "uuid:" + str(uuid.uuid4()).upper()


def new_id() -> str:
    """A fresh upper-case GUID (ShellId, CommandId, enumeration contexts)."""
    return str(uuid.uuid4()).upper()
