"""The one truth table for booleans written in YAML or by a user: Ansible's.

Ansible reads ``yes``/``no`` style values with ``boolean()`` in ``module_utils/parsing/convert_bool.py``:
``BOOLEANS_TRUE = ('y', 'yes', 'on', '1', 'true', 't', 1, 1.0, True)`` and
``BOOLEANS_FALSE = ('n', 'no', 'off', '0', 'false', 'f', 0, 0.0, False)``, text compared in lower case.
kmsfleet also ignores blanks around the word (``" yes "``), as its readers always have.

Places that read something else (WMI/CIM text ``"true"``/``"false"``, the ``bool`` Jinja filter, which is
narrower in Ansible too) keep their own rule and say why where they do.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BOOLEANS_FALSE", "BOOLEANS_TRUE", "boolean", "parse_boolean"]

BOOLEANS_TRUE = frozenset({"y", "yes", "on", "1", "true", "t"})
BOOLEANS_FALSE = frozenset({"n", "no", "off", "0", "false", "f"})


def parse_boolean(value: Any) -> bool | None:
    """``True``/``False`` for a value Ansible reads as a boolean (``True``/``False``, the numbers 1 and 0, the
    words above in any case); ``None`` for anything else, so the caller can report it."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return True if value == 1 else False if value == 0 else None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in BOOLEANS_TRUE:
            return True
        if text in BOOLEANS_FALSE:
            return False
    return None


def boolean(value: Any) -> bool:
    """Ansible's lenient ``boolean(value, strict=False)``: true only for the true values, everything else
    (``None``, other words, other numbers, lists …) is false."""
    return parse_boolean(value) is True
