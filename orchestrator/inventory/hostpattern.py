"""Parsing host entries and host patterns: ``name:port`` and splitting ``a,b`` / ``a:&b:!c``."""

from __future__ import annotations

import ipaddress
import re

_BRACKETS = re.compile(r"\[[^\]]*\]")
_PORT = re.compile(r"^(.*[^:]):(\d{1,5})$")


def split_port(entry: str) -> tuple[str, int | None]:
    """``pc01:5986`` → (``pc01``, 5986); ranges (``pc[01:10]:5986``) keep their colons; IPv6 has no port."""
    flat = _BRACKETS.sub("", entry)
    if flat.count(":") != 1:
        return entry, None
    match = _PORT.match(entry)
    if match is None or ":" in _BRACKETS.sub("", match.group(1)):
        return entry, None
    port = int(match.group(2))
    if not 0 < port < 65536:
        return entry, None
    return match.group(1), port


def split_pattern(pattern: str) -> list[str]:
    """Split a host pattern into terms the way Ansible does: on commas when there are any, otherwise on colons
    outside brackets (``room101:&win10:!pc05``); a bare IPv6 address stays whole."""
    if "," in pattern:
        terms = pattern.split(",")
    elif _is_ipv6(pattern.strip()):
        terms = [pattern]
    else:
        terms = []
        current: list[str] = []
        depth = 0
        for ch in pattern:
            if ch == "[":
                depth += 1
            elif ch == "]" and depth:
                depth -= 1
            if depth == 0 and (ch == ":" or ch.isspace()):
                terms.append("".join(current))
                current = []
            else:
                current.append(ch)
        terms.append("".join(current))
    return [t.strip() for t in terms if t.strip()]


def _is_ipv6(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv6Address)
    except ValueError:
        return False
