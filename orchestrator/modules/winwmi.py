"""Small WMI helpers shared by the Ansible-compatible Windows modules: read a class's rows, invoke a method and
read its ``ReturnValue``, and read/write the registry through ``StdRegProv``."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices

from orchestrator.modules.base import A, Module, ModuleArgs, ModuleContext, TaskFailed
from orchestrator.results.models import thaw
from orchestrator.transport.errors import WSManFault

HIVES = {
    "HKCR": 2147483648,
    "HKEY_CLASSES_ROOT": 2147483648,
    "HKCU": 2147483649,
    "HKEY_CURRENT_USER": 2147483649,
    "HKLM": 2147483650,
    "HKEY_LOCAL_MACHINE": 2147483650,
    "HKU": 2147483651,
    "HKEY_USERS": 2147483651,
    "HKCC": 2147483653,
    "HKEY_CURRENT_CONFIG": 2147483653,
}
# registry value types as StdRegProv.EnumValues numbers them (Winnt.h) and as Ansible names them
TYPE_BY_CODE = {1: "string", 2: "expandstring", 3: "binary", 4: "dword", 7: "multistring", 11: "qword"}
REG_NAMES = {
    "string": "REG_SZ",
    "expandstring": "REG_EXPAND_SZ",
    "binary": "REG_BINARY",
    "dword": "REG_DWORD",
    "multistring": "REG_MULTI_SZ",
    "qword": "REG_QWORD",
}
GETTERS = {
    "string": ("GetStringValue", "sValue"),
    "expandstring": ("GetExpandedStringValue", "sValue"),
    "binary": ("GetBinaryValue", "uValue"),
    "dword": ("GetDWORDValue", "uValue"),
    "multistring": ("GetMultiStringValue", "sValue"),
    "qword": ("GetQWORDValue", "uValue"),
}
SETTERS = {
    "string": ("SetStringValue", "sValue"),
    "expandstring": ("SetExpandedStringValue", "sValue"),
    "binary": ("SetBinaryValue", "uValue"),
    "dword": ("SetDWORDValue", "uValue"),
    "multistring": ("SetMultiStringValue", "sValue"),
    "qword": ("SetQWORDValue", "uValue"),
}
ERROR_FILE_NOT_FOUND = 2
ERROR_ACCESS_DENIED = 5


def wql_quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def rows(ctx: ModuleContext, query: str) -> list[dict[str, Any]]:
    try:
        return [{k: thaw(v) for k, v in r.items()} for r in ctx.conn.wql(query)]
    except WSManFault as fault:
        raise TaskFailed(f"WMI query failed: {fault.reason}", error_code=fault.hresult) from None


def call(
    ctx: ModuleContext,
    class_name: str,
    method: str,
    selectors: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
) -> tuple[int, dict[str, Any]]:
    """Invoke a WMI method; returns (ReturnValue, outputs). A WS-Man fault fails the task."""
    try:
        out = ctx.conn.invoke(class_name, method, selectors, params)
    except WSManFault as fault:
        raise TaskFailed(f"{class_name}.{method} failed: {fault.reason}", error_code=fault.hresult) from None
    try:
        code = int(str(out.get("ReturnValue", 0)))
    except ValueError:
        code = -1
    return code, {k: thaw(v) for k, v in out.items() if k not in ("ReturnValue", "__CLASS")}


def as_list(value: Any) -> list[Any]:
    """A WMI array as a list (one element arrives as a scalar, none as None)."""
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def split_registry_path(path: str) -> tuple[int, str, str]:
    """'HKLM:\\SOFTWARE\\x' or 'HKEY_LOCAL_MACHINE\\SOFTWARE\\x' → (hive number, hive name, sub key)."""
    text = path.strip().replace("/", "\\")
    head, _, rest = text.partition("\\")
    hive_name = head.rstrip(":").upper()
    hive = HIVES.get(hive_name)
    if hive is None:
        raise TaskFailed(
            f"path {path!r}: the registry hive must be one of HKLM, HKCU, HKCR, HKU, HKCC (as HKLM:\\… or "
            "HKEY_LOCAL_MACHINE\\…)"
        )
    return hive, hive_name, rest.strip("\\")


class Registry:
    """The registry of one PC through StdRegProv (each call is one WS-Man Invoke)."""

    def __init__(self, ctx: ModuleContext) -> None:
        self.ctx = ctx

    def _call(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return call(self.ctx, "StdRegProv", method, None, params)

    def key_exists(self, hive: int, key: str) -> bool:
        code, _ = self._call("EnumKey", {"hDefKey": hive, "sSubKeyName": key})
        return code == 0

    def subkeys(self, hive: int, key: str) -> list[str] | None:
        code, out = self._call("EnumKey", {"hDefKey": hive, "sSubKeyName": key})
        return [str(n) for n in as_list(out.get("sNames"))] if code == 0 else None

    def values(self, hive: int, key: str) -> dict[str, str]:
        """value name → Ansible type name (string, dword, …)."""
        code, out = self._call("EnumValues", {"hDefKey": hive, "sSubKeyName": key})
        if code != 0:
            return {}
        names = [str(n) for n in as_list(out.get("sNames"))]
        types = [int(str(t)) for t in as_list(out.get("Types"))]
        return {n: TYPE_BY_CODE.get(t, "string") for n, t in zip(names, types, strict=False)}

    def get(self, hive: int, key: str, name: str, reg_type: str) -> Any:
        method, out_name = GETTERS[reg_type]
        code, out = self._call(method, {"hDefKey": hive, "sSubKeyName": key, "sValueName": name})
        if code != 0:
            return None
        value = out.get(out_name)
        if reg_type in ("dword", "qword"):
            return int(str(value)) if value is not None else 0
        if reg_type == "multistring":
            return [str(v) for v in as_list(value)]
        if reg_type == "binary":
            return [int(str(v)) for v in as_list(value)]
        return "" if value is None else str(value)

    def create_key(self, hive: int, key: str) -> None:
        self._check("CreateKey", self._call("CreateKey", {"hDefKey": hive, "sSubKeyName": key})[0], key)

    def delete_key(self, hive: int, key: str) -> None:
        for sub in self.subkeys(hive, key) or []:  # DeleteKey refuses a key with subkeys: children first
            self.delete_key(hive, f"{key}\\{sub}")
        self._check("DeleteKey", self._call("DeleteKey", {"hDefKey": hive, "sSubKeyName": key})[0], key)

    def set(self, hive: int, key: str, name: str, reg_type: str, value: Any) -> None:
        method, arg = SETTERS[reg_type]
        params = {"hDefKey": hive, "sSubKeyName": key, "sValueName": name, arg: value}
        self._check(method, self._call(method, params)[0], f"{key}\\{name}")

    def delete_value(self, hive: int, key: str, name: str) -> None:
        params = {"hDefKey": hive, "sSubKeyName": key, "sValueName": name}
        self._check("DeleteValue", self._call("DeleteValue", params)[0], f"{key}\\{name}")

    @staticmethod
    def _check(method: str, code: int, what: str) -> None:
        if code == 0:
            return
        reason = {
            ERROR_FILE_NOT_FOUND: "not found",
            ERROR_ACCESS_DENIED: "access denied (run as an administrator)",
            87: "invalid parameter",
        }.get(code, f"Win32 error {code}")
        raise TaskFailed(f"StdRegProv.{method} on {what} failed: {reason}", data={"return_value": code})


def canonical_names(model: type[ModuleArgs], args: Any) -> dict[str, Any]:
    """Arguments with Ansible's aliases (the fields' ``AliasChoices``) renamed to the field names, so that the
    static argument check knows them."""
    aliases: dict[str, str] = {}
    for name, info in model.model_fields.items():
        choices = info.validation_alias
        if isinstance(choices, AliasChoices):
            aliases.update({str(c): name for c in choices.choices if isinstance(c, str)})
    return {aliases.get(str(k), str(k)): v for k, v in dict(args).items()}


class AliasedModule(Module[A]):
    """A module whose arguments have Ansible's aliases (``AliasChoices``): the static check knows them."""

    @classmethod
    def check_args(cls, args: Any) -> list[str]:
        return super().check_args(canonical_names(cls.args_model, args))
