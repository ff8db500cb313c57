"""Keeping secrets out of everything kmsfleet writes: logs, reports, the history database, exceptions.

Passwords are registered here as soon as they are known (inventory vars, --ask-pass, environment lookups);
``redact_text`` replaces them, and their base64 and UTF-16 forms, with ``********``. A leaf module.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "********"
SECRET_KEYS = re.compile(r"(pass(word|wd)?|secret|token|credential|api[_-]?key)", re.IGNORECASE)

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None


def _forms(secret: str) -> Iterable[str]:
    yield secret
    raw = secret.encode("utf-8")
    yield base64.b64encode(raw).decode()
    yield base64.b64encode(secret.encode("utf-16-le")).decode()
    yield secret.encode("utf-16-le").decode("latin-1")


def register_secret(secret: str | None) -> None:
    """Remember a secret so that every later ``redact_*`` call hides it. Very short strings are ignored
    (hiding every "a" would make output unreadable without protecting anything)."""
    global _pattern
    if not secret or len(secret) < 4:
        return
    with _lock:
        before = len(_secrets)
        _secrets.update(f for f in _forms(secret) if len(f) >= 4)
        if len(_secrets) != before:
            ordered = sorted(_secrets, key=len, reverse=True)
            _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def redact_text(text: str) -> str:
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def redact(value: Any) -> Any:
    """Redact a JSON-like value: secret-looking keys are masked whole, every string is scrubbed."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            k: (MASK if isinstance(k, str) and SECRET_KEYS.search(k) and v not in (None, "") else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def known_secrets() -> frozenset[str]:
    with _lock:
        return frozenset(_secrets)
