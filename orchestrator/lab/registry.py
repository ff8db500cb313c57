"""The registry of a simulated PC, and ``StdRegProv`` (WMI's registry provider) over it.

The base tree is built from the PC's state by ``registry_base.base_registry`` (Windows version keys, the
SoftwareProtectionPlatform KMS values, time zone, Office and SQL Server keys), so it always agrees with what
WMI and the licensing commands show. Writes made through ``StdRegProv`` are kept per PC as a list of operations
replayed over that base tree; ``reg query`` reads the same merged tree. Registry writes do not feed back into the
licensing state (a KMS host written to the registry is not what ``SoftwareLicensingService`` reports).

``StdRegProv`` (https://learn.microsoft.com/previous-versions/windows/desktop/regprov/stdregprov) is a static
class in ``root\\default`` and also in ``root\\cimv2`` since Windows Vista; the lab serves it in root/cimv2.
Every method takes ``hDefKey`` (default HKEY_LOCAL_MACHINE = 2147483650) and ``sSubKeyName`` and returns a
uint32 Win32 error code (WinError.h): 0 success, 2 ERROR_FILE_NOT_FOUND (a missing key or value), 5
ERROR_ACCESS_DENIED (a standard user writing under HKLM), 87 ERROR_INVALID_PARAMETER (an unknown hive).
- ``EnumKey`` → ``sNames[]``; ``EnumValues`` → ``sNames[]`` and ``Types[]`` (REG_SZ 1, REG_EXPAND_SZ 2,
  REG_BINARY 3, REG_DWORD 4, REG_MULTI_SZ 7, REG_QWORD 11). On a key without values both are null.
- ``GetStringValue``/``GetExpandedStringValue`` → ``sValue``; ``GetDWORDValue``/``GetQWORDValue`` → ``uValue``;
  ``GetMultiStringValue`` → ``sValue[]``; ``GetBinaryValue`` → ``uValue[]`` (uint8). Reading a value of another
  type answers 2147749893 (WBEM_E_TYPE_MISMATCH of WbemErrorEnum): Microsoft documents only "a nonzero error
  code" (WinError.h or WbemErrorEnum); the exact value follows administrators' reports and is unconfirmed.
- ``SetStringValue``, ``SetExpandedStringValue``, ``SetDWORDValue``, ``SetQWORDValue``: the key must exist
  ("If the key does not exist, then the call … fails": 2). ``SetMultiStringValue(sValue[])`` and
  ``SetBinaryValue(uValue[])`` take an array argument, on the wire its element repeated (WS-Man's CIM binding,
  as in the runner-mei/wsman fixtures); a byte outside 0-255 answers 87.
- ``CreateKey`` creates every missing key on the path; ``DeleteKey`` fails with 5 on a key that has subkeys
  (RegDeleteKey: "the subkey to be deleted must not have subkeys"); ``DeleteValue`` 2 when absent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestrator.lab import services
from orchestrator.lab.provider import ARRAY_JOIN, CimProperty, CimType, WmiError
from orchestrator.lab.registry_base import RegKey, base_registry
from orchestrator.lab.registry_writes import Op, _ops, typed_value

if TYPE_CHECKING:  # pragma: no cover
    from orchestrator.lab.machine import Machine

HIVES = {
    2147483648: "HKEY_CLASSES_ROOT",
    2147483649: "HKEY_CURRENT_USER",
    2147483650: "HKEY_LOCAL_MACHINE",
    2147483651: "HKEY_USERS",
    2147483653: "HKEY_CURRENT_CONFIG",
}
HKLM = 2147483650
TYPE_CODES = {"REG_SZ": 1, "REG_EXPAND_SZ": 2, "REG_BINARY": 3, "REG_DWORD": 4, "REG_MULTI_SZ": 7, "REG_QWORD": 11}
TYPE_NAMES = {v: k for k, v in TYPE_CODES.items()}

SUCCESS = 0
TYPE_MISMATCH = 0x80041005  # WBEM_E_TYPE_MISMATCH
FILE_NOT_FOUND = 2
ACCESS_DENIED = 5
INVALID_PARAMETER = 87

REG_METHODS = (
    "CreateKey",
    "DeleteKey",
    "DeleteValue",
    "EnumKey",
    "EnumValues",
    "GetBinaryValue",
    "GetDWORDValue",
    "GetExpandedStringValue",
    "GetMultiStringValue",
    "GetQWORDValue",
    "GetStringValue",
    "SetBinaryValue",
    "SetDWORDValue",
    "SetExpandedStringValue",
    "SetMultiStringValue",
    "SetQWORDValue",
    "SetStringValue",
)
_GETTERS = {
    "GetStringValue": ("REG_SZ", "sValue"),
    "GetExpandedStringValue": ("REG_EXPAND_SZ", "sValue"),
    "GetDWORDValue": ("REG_DWORD", "uValue"),
    "GetQWORDValue": ("REG_QWORD", "uValue"),
    "GetMultiStringValue": ("REG_MULTI_SZ", "sValue"),
    "GetBinaryValue": ("REG_BINARY", "uValue"),
}
_SETTERS = {
    "SetStringValue": ("REG_SZ", "svalue"),
    "SetExpandedStringValue": ("REG_EXPAND_SZ", "svalue"),
    "SetDWORDValue": ("REG_DWORD", "uvalue"),
    "SetQWORDValue": ("REG_QWORD", "uvalue"),
}


def tree(m: Machine) -> RegKey:
    """The PC's registry: the base tree from its state with every write replayed."""
    root = base_registry(m)
    _service_keys(m, root)
    for op in list(_ops(m)):
        _apply(root, op)
    return root


_START_VALUES = {"Boot": 0, "System": 1, "Auto": 2, "Manual": 3, "Disabled": 4}


def _service_keys(m: Machine, root: RegKey) -> None:
    """``HKLM\\SYSTEM\\CurrentControlSet\\Services\\<name>`` of every service, with the values Microsoft's
    "HKLM\\SYSTEM\\CurrentControlSet\\Services Registry Tree" page documents (Start 2 automatic, 3 manual,
    4 disabled; ImagePath; DisplayName; ObjectName) and DelayedAutostart for delayed automatic services."""
    base = root.child("HKEY_LOCAL_MACHINE").path("SYSTEM\\CurrentControlSet\\Services")
    for row in services._services(m):
        key = base.child(str(row["Name"]))
        key.values += [
            ("DisplayName", "REG_SZ", str(row["DisplayName"])),
            ("ImagePath", "REG_EXPAND_SZ", str(row["PathName"])),
            ("ObjectName", "REG_SZ", str(row["StartName"])),
            ("Start", "REG_DWORD", f"0x{_START_VALUES.get(str(row['StartMode']), 3):x}"),
        ]
        if row.get("DelayedAutoStart"):
            key.values.append(("DelayedAutostart", "REG_DWORD", "0x1"))


def _find(root: RegKey, hive: str, path: tuple[str, ...]) -> RegKey | None:
    key = root.subkeys.get(hive.lower())
    for part in path:
        if key is None:
            return None
        key = key.subkeys.get(part.lower())
    return key


def _apply(root: RegKey, op: Op) -> None:
    if op.kind == "create_key":
        key = root.child(op.hive)
        for part in op.path:
            key = key.child(part)
        return
    if op.kind == "delete_key":
        parent = _find(root, op.hive, op.path[:-1])
        if parent is not None:
            low = op.path[-1].lower()
            parent.subkeys.pop(low, None)
            parent.names.pop(low, None)
        return
    target = _find(root, op.hive, op.path)
    if target is None:
        return
    target.values[:] = [v for v in target.values if v[0].lower() != op.name.lower()]
    if op.kind == "set_value":
        target.values.append((op.name, op.reg_type, op.display))


def _split(path: str) -> tuple[str, ...]:
    return tuple(p for p in path.replace("/", "\\").split("\\") if p)


@dataclass(frozen=True)
class _Call:
    """One StdRegProv call on an existing key (``key``) or a key to create (``key`` None)."""

    m: Machine
    hive: str
    path: tuple[str, ...]
    key: RegKey | None
    name: str  # sValueName
    args: dict[str, str]

    def found(self) -> tuple[str, str, str] | None:
        """The named value of the key (name, type, display data), matched case-insensitively."""
        if self.key is None:
            return None
        return next((v for v in self.key.values if v[0].lower() == self.name.lower()), None)


def invoke(m: Machine, method: str, args: dict[str, str], admin: bool) -> list[CimProperty]:
    """One StdRegProv method; returns its output parameters (ReturnValue first)."""
    try:
        hive = HIVES.get(int(args.get("hdefkey", str(HKLM))))
    except ValueError:
        hive = None
    if hive is None:
        return _rv(INVALID_PARAMETER)
    path = _split(args.get("ssubkeyname", ""))
    writes = method.startswith(("Set", "Create", "Delete"))
    if writes and hive != "HKEY_CURRENT_USER" and not admin:
        return _rv(ACCESS_DENIED)
    call = _Call(m, hive, path, _find(tree(m), hive, path), args.get("svaluename", ""), args)
    if method == "CreateKey":
        if call.key is None:
            _ops(m).append(Op("create_key", hive, path))
        return _rv(SUCCESS)
    if call.key is None:
        return _rv(FILE_NOT_FOUND)
    handler = _KEY_METHODS.get(method)
    if handler is not None:
        return handler(call)
    if method in _GETTERS:
        return _get_value(call, *_GETTERS[method])
    if method in _SETTERS:
        return _set_value(call, *_SETTERS[method])
    if method in _ARRAY_SETTERS:
        return _set_array(call, *_ARRAY_SETTERS[method])
    raise WmiError(0x80041055, "Invalid method", kind="invalid_parameter")


def _enum_key(call: _Call) -> list[CimProperty]:
    assert call.key is not None
    names = tuple(call.key.names[low] for low in sorted(call.key.subkeys))
    return [*_rv(SUCCESS), CimProperty("sNames", "string", names or None)]


def _enum_values(call: _Call) -> list[CimProperty]:
    assert call.key is not None
    values = call.key.values
    if not values:
        return [*_rv(SUCCESS), CimProperty("sNames", "string", None), CimProperty("Types", "sint32", None)]
    return [
        *_rv(SUCCESS),
        CimProperty("sNames", "string", tuple(v[0] for v in values)),
        CimProperty("Types", "sint32", tuple(TYPE_CODES.get(v[1], 1) for v in values)),
    ]


def _delete_key(call: _Call) -> list[CimProperty]:
    assert call.key is not None
    if not call.path:
        return _rv(INVALID_PARAMETER)
    if call.key.subkeys:
        return _rv(ACCESS_DENIED)
    _ops(call.m).append(Op("delete_key", call.hive, call.path))
    return _rv(SUCCESS)


def _delete_value(call: _Call) -> list[CimProperty]:
    found = call.found()
    if found is None:
        return _rv(FILE_NOT_FOUND)
    _ops(call.m).append(Op("delete_value", call.hive, call.path, found[0]))
    return _rv(SUCCESS)


_KEY_METHODS: dict[str, Callable[[_Call], list[CimProperty]]] = {
    "EnumKey": _enum_key,
    "EnumValues": _enum_values,
    "DeleteKey": _delete_key,
    "DeleteValue": _delete_value,
}
_OUT_TYPES: dict[str, CimType] = {"REG_DWORD": "uint32", "REG_QWORD": "uint64", "REG_BINARY": "uint8"}


def _get_value(call: _Call, reg_type: str, out_name: str) -> list[CimProperty]:
    found = call.found()
    if found is None:
        return _rv(FILE_NOT_FOUND)
    if found[1] != reg_type:
        return _rv(TYPE_MISMATCH)
    out_type = _OUT_TYPES.get(reg_type, "string")
    return [*_rv(SUCCESS), CimProperty(out_name, out_type, typed_value(reg_type, found[2]))]


def _set_value(call: _Call, reg_type: str, arg: str) -> list[CimProperty]:
    raw = call.args.get(arg, "")
    display = raw
    if reg_type in ("REG_DWORD", "REG_QWORD"):
        try:
            number = int(raw)
        except ValueError:
            return _rv(INVALID_PARAMETER)
        limit = 0xFFFFFFFF if reg_type == "REG_DWORD" else 0xFFFFFFFFFFFFFFFF
        if not 0 <= number <= limit:
            return _rv(INVALID_PARAMETER)
        display = f"0x{number:x}"
    return _store(call, reg_type, display)


# The array setters: the array argument arrives as its elements joined with provider.ARRAY_JOIN.
_ARRAY_SETTERS = {"SetMultiStringValue": ("REG_MULTI_SZ", "svalue"), "SetBinaryValue": ("REG_BINARY", "uvalue")}


def _set_array(call: _Call, reg_type: str, arg: str) -> list[CimProperty]:
    """``SetMultiStringValue(sValue[])`` / ``SetBinaryValue(uValue[])`` (uint8 elements, 0-255; anything else is
    87). Stored in reg.exe's display form: strings joined with ``\\0``, bytes as hex digits (typed_value)."""
    raw = call.args.get(arg)
    items = raw.split(ARRAY_JOIN) if raw else []
    if reg_type == "REG_BINARY":
        if not all(item.strip().isdigit() and int(item) <= 255 for item in items):
            return _rv(INVALID_PARAMETER)
        display = bytes(int(item) for item in items).hex().upper()
    else:
        display = "\\0".join(items)
    return _store(call, reg_type, display)


def _store(call: _Call, reg_type: str, display: str) -> list[CimProperty]:
    """Write the value (an existing value keeps the spelling of its name)."""
    found = call.found()
    stored = found[0] if found is not None else call.name
    _ops(call.m).append(Op("set_value", call.hive, call.path, stored, reg_type, display))
    return _rv(SUCCESS)


def _rv(code: int) -> list[CimProperty]:
    return [CimProperty("ReturnValue", "uint32", code)]
