"""PowerShell objects made with ``New-Object PSObject -Property @{…}``, their properties, and the small
expressions that read them, as kmsfleet's win_powershell sends them for ``$Ansible``::

    $Ansible = New-Object PSObject -Property @{Changed = $true; Failed = $false; Result = @{}; …}
    $Ansible.Changed = $false
    Write-Host ('kmsfleet-ansible-state changed=' + [bool]$Ansible.Changed + ' failed=' + [bool]$Ansible.Failed)

Semantics (Microsoft Learn: New-Object, "-Property … a hash table … for a PSObject, properties are added";
about_Properties; about_Operators "+" joins strings; about_Booleans: how values convert to [bool]):
- ``-Property @{K = V; …}`` gives the object one property per key (names case-insensitive).
- ``$o.P = v`` sets an existing property; a property the object lacks fails with "The property 'P' cannot be found
  on this object. Verify that the property exists and can be set." (PropertyNotFound) and the statement fails.
- ``$o.P`` reads it; ``[bool]`` converts: ``$null``, ``0``, ``''`` are False, other strings, numbers and
  hashtables True; ``[string]`` and string joining write booleans as ``True``/``False``, a hashtable as
  ``System.Collections.Hashtable``, ``$null`` as nothing.
- ``Write-Host ( … + … )`` / ``Write-Output ( … )`` print the joined string.

Deviations: hashtable values are only literals (``$true``/``$false``/``$null``, numbers, quoted strings, ``@{}``,
``$env:NAME``, ``$name``); the property values of ``Result``/``Diff`` hashtables are not modelled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.lab.commands.powershell import PsState

Value = bool | int | str | dict[str, object] | None


@dataclass
class PsObject:
    properties: dict[str, tuple[str, Value]] = field(default_factory=dict)  # lower name -> (name, value)


_NEW = re.compile(
    r"(?is)^\$(\w+)\s*=\s*New-Object\s+(?:-TypeName\s+)?['\"]?(?:System\.Management\.Automation\.)?"
    r"PS(?:Custom)?Object['\"]?\s+-Property\s+@\{(.*)\}\s*$"
)
_SET = re.compile(r"(?s)^\$(\w+)\.(\w+)\s*=\s*(.+?)\s*$")
_WRITE = re.compile(r"(?is)^(Write-Host|Write-Output)\s+\((.*)\)\s*$")
_NOT_FOUND = (
    "The property '{name}' cannot be found on this object. Verify that the property exists and can be set.\r\n"
    "At line:1 char:1\r\n+ {stmt}\r\n+ {marks}\r\n"
    "    + CategoryInfo          : InvalidOperation: (:) [], RuntimeException\r\n"
    "    + FullyQualifiedErrorId : PropertyNotFound\r\n \r\n"
)


async def run_statement(state: PsState, stmt: str) -> bool:
    """Run ``stmt`` when it makes, changes or prints one of these objects; False when it is something else."""
    m = _NEW.match(stmt)
    if m:
        state.objects[m.group(1).lower()] = PsObject(_hashtable(state, m.group(2)))
        state.ok = True
        return True
    m = _SET.match(stmt)
    if m and isinstance(state.objects.get(m.group(1).lower()), PsObject):
        _set_property(state, stmt, m)
        return True
    m = _WRITE.match(stmt)
    if m and _reads_objects(state, m.group(2)):
        text = as_text(expression(state, m.group(2)))
        state.out += text + ("\n" if m.group(1).lower() == "write-host" else "\r\n")
        state.ok = True
        return True
    return False


def _set_property(state: PsState, stmt: str, m: re.Match[str]) -> None:
    obj = state.objects[m.group(1).lower()]
    assert isinstance(obj, PsObject)
    key = m.group(2).lower()
    if key not in obj.properties:
        state.err += _NOT_FOUND.format(name=m.group(2), stmt=stmt, marks="~" * len(stmt))
        state.ok = False
        return
    obj.properties[key] = (obj.properties[key][0], expression(state, m.group(3)))
    state.ok = True


def _reads_objects(state: PsState, text: str) -> bool:
    return any(name.lower() in state.objects for name in re.findall(r"\$(\w+)\.", text))


def split_outside(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` outside quotes and brackets."""
    parts: list[str] = []
    buf: list[str] = []
    quote: str | None = None
    depth = 0
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append("".join(buf))
            buf = []
            continue
        buf.append(ch)
    parts.append("".join(buf))
    return parts


def _hashtable(state: PsState, body: str) -> dict[str, tuple[str, Value]]:
    """``K = V; …`` (entries also on separate lines) → lower name -> (name, value)."""
    props: dict[str, tuple[str, Value]] = {}
    for entry in split_outside(body.replace("\n", ";"), ";"):
        key, sep, value = entry.partition("=")
        name = key.strip().strip("'\"")
        if sep and name:
            props[name.lower()] = (name, expression(state, value))
    return props


def expression(state: PsState, text: str) -> Value:
    """A value: terms joined with ``+`` (strings join; numbers add), each a literal, a variable, ``$o.P`` or a
    ``[bool]``/``[string]``/``[int]`` cast of one."""
    terms = [t.strip() for t in split_outside(text.strip(), "+")]
    values = [_term(state, t) for t in terms if t]
    if not values:
        return None
    result = values[0]
    for value in values[1:]:
        if isinstance(result, int) and not isinstance(result, bool) and isinstance(value, int):
            result = result + int(value)
        else:
            result = as_text(result) + as_text(value)
    return result


_CAST = re.compile(r"(?i)^\[(bool|boolean|string|int)\]\s*(.+)$")


def _term(state: PsState, text: str) -> Value:
    m = _CAST.match(text)
    if m:
        value = _term(state, m.group(2))
        kind = m.group(1).lower()
        if kind.startswith("bool"):
            return as_bool(value)
        return as_text(value) if kind == "string" else int(as_text(value) or 0)
    if text.startswith("(") and text.endswith(")"):
        return expression(state, text[1:-1])
    if text.startswith("'") and text.endswith("'") and len(text) > 1:
        return text[1:-1].replace("''", "'")
    if text.startswith('"') and text.endswith('"') and len(text) > 1:
        return state.expand(text[1:-1])
    if text.startswith("@{"):
        return {k: v for k, (_, v) in _hashtable(state, text[2:-1]).items()}
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return _variable(state, text)


def _variable(state: PsState, text: str) -> Value:
    low = text.lower()
    constants: dict[str, Value] = {"$true": True, "$false": False, "$null": None}
    if low in constants:
        return constants[low]
    m = re.fullmatch(r"\$(\w+)\.(\w+)", text)
    if m:
        obj = state.objects.get(m.group(1).lower())
        if isinstance(obj, PsObject):
            return obj.properties.get(m.group(2).lower(), ("", None))[1]
        return None
    if low.startswith("$"):
        return state.value_text(text)
    return text


def as_bool(value: Value) -> bool:
    """PowerShell's conversion to [bool] (about_Booleans)."""
    if value is None:
        return False
    if isinstance(value, bool | int):
        return value != 0
    if isinstance(value, str):
        return value != ""
    return True


def as_text(value: Value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, dict):
        return "System.Collections.Hashtable"
    return str(value)


def property_value(state: PsState, token: str) -> tuple[bool, Value]:
    """(found, value) for a ``$o.P`` token naming one of these objects (an ``if`` condition reads it)."""
    m = re.fullmatch(r"(?:\[(?:bool|boolean)\])?\$(\w+)\.(\w+)", token, re.IGNORECASE)
    if m is None or not isinstance(state.objects.get(m.group(1).lower()), PsObject):
        return False, None
    return True, _term(state, token)
