"""Small, fast helpers for writing XML as text. Responses are built as strings (ElementTree serialisation
would dominate the cost of a Receive at lab scale); every value that came from outside goes through
``esc``/``attr``."""

from __future__ import annotations

import os
import threading

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
    return "uuid:" + new_id()


def new_id() -> str:
    """A fresh upper-case random (version 4, RFC 4122 variant) GUID: ShellId, CommandId, enumeration contexts,
    MessageIDs. What ``str(uuid.uuid4()).upper()`` gives, from random bytes read 4 KB at a time (one
    ``getrandom`` call per 256 GUIDs instead of one per GUID, the largest part of a request's ID cost)."""
    h = _POOL.take16().hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}".upper()


# RFC 4122 4.4: the variant's two top bits are 10, so its hex digit is one of 8, 9, a, b
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


class _RandomPool:
    """16-byte blocks of ``os.urandom`` output, read 4 KB at a time; safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buf = b""
        self._at = 0

    def take16(self) -> bytes:
        with self._lock:
            at = self._at
            if at >= len(self._buf):
                self._buf, at = os.urandom(4096), 0
            self._at = at + 16
            return self._buf[at : at + 16]

    def forget(self) -> None:
        """Drop the unread blocks (a forked child must not hand out its parent's GUIDs)."""
        self._lock = threading.Lock()
        self._buf, self._at = b"", 0


_POOL = _RandomPool()
os.register_at_fork(after_in_child=_POOL.forget)
