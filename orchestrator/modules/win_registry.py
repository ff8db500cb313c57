"""``win_reg_stat`` and ``win_regedit`` (ansible.windows) over WMI's registry provider ``StdRegProv``
(EnumKey, EnumValues, Get…/Set…Value, CreateKey, DeleteKey, DeleteValue): no PowerShell runs on the PC.

Arguments, aliases, defaults and return values follow the ansible.windows documentation. Differences: a
REG_EXPAND_SZ value's ``raw_value`` is the expanded text (StdRegProv's GetExpandedStringValue expands it), and
``hive`` (loading a hive file) is not supported.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, Field, model_validator

from orchestrator.modules import winwmi
from orchestrator.modules.base import ModuleArgs, ModuleContext, ModuleOutcome, TaskFailed, register


class RegStatArgs(ModuleArgs):
    path: str = Field(min_length=1, validation_alias=AliasChoices("path", "key"))
    name: str | None = Field(None, validation_alias=AliasChoices("name", "entry", "value"))


def _entry(reg_type: str, value: Any) -> dict[str, Any]:
    """A value as win_reg_stat reports it: type REG_*, ``value`` and ``raw_value`` (binary: hex strings)."""
    raw = value
    if reg_type == "binary":
        raw = [f"0x{b:02x}" for b in value or []]
    return {"type": winwmi.REG_NAMES[reg_type], "value": value, "raw_value": raw}


@register
class WinRegStat(winwmi.AliasedModule[RegStatArgs]):
    name = "win_reg_stat"
    args_model = RegStatArgs
    supports_check = True
    description = "Read a registry key (its values and sub keys) or one value, through WMI StdRegProv."

    def run(self, ctx: ModuleContext, args: RegStatArgs) -> ModuleOutcome:
        hive, _, key = winwmi.split_registry_path(args.path)
        reg = winwmi.Registry(ctx)
        subkeys = reg.subkeys(hive, key)
        if subkeys is None:
            return ModuleOutcome(data={"exists": False})
        types = reg.values(hive, key)
        if args.name is not None:
            match = next((n for n in types if n.lower() == args.name.lower()), None)
            if match is None:
                return ModuleOutcome(data={"exists": False})
            reg_type = types[match]
            return ModuleOutcome(data={"exists": True, **_entry(reg_type, reg.get(hive, key, match, reg_type))})
        properties = {n: _entry(t, reg.get(hive, key, n, t)) for n, t in types.items()}
        return ModuleOutcome(data={"exists": True, "properties": properties, "sub_keys": subkeys})


RegType = Literal["binary", "dword", "expandstring", "multistring", "string", "qword", "none"]


class RegEditArgs(ModuleArgs):
    path: str = Field(min_length=1, validation_alias=AliasChoices("path", "key"))
    name: str | None = Field(None, validation_alias=AliasChoices("name", "entry", "value"))
    data: Any = None
    type: RegType = Field("string", validation_alias=AliasChoices("type", "datatype"))
    state: Literal["present", "absent"] = "present"
    delete_key: bool = True
    hive: str | None = None

    @model_validator(mode="after")
    def _supported(self) -> RegEditArgs:
        if self.hive is not None:
            raise ValueError("'hive' (loading a hive file) is not supported by kmsfleet")
        if self.type == "none":
            raise ValueError("type 'none' is not supported by kmsfleet (StdRegProv cannot write it)")
        return self


def normalise_data(reg_type: str, data: Any) -> Any:
    """The playbook's ``data`` as the value to compare and write (Ansible's conversions: hex strings for
    dword/qword, 'hex:be,ef' or a list for binary, a list for multistring)."""
    if reg_type in ("dword", "qword"):
        if data is None or data == "":
            return 0
        text = str(data).strip()
        try:
            number = int(text, 16) if text.lower().startswith("0x") else int(text)
        except ValueError:
            raise TaskFailed(f"data {data!r} is not a valid {reg_type} (an integer or a 0x hex string)") from None
        limit = 0xFFFFFFFF if reg_type == "dword" else 0xFFFFFFFFFFFFFFFF
        if not 0 <= number <= limit:
            raise TaskFailed(f"data {data!r} is out of range for a {reg_type}")
        return number
    if reg_type == "multistring":
        if data is None:
            return []
        return [str(v) for v in data] if isinstance(data, list) else [str(data)]
    if reg_type == "binary":
        if data is None:
            return []
        if isinstance(data, list):
            return [int(str(b), 16) if str(b).lower().startswith("0x") else int(b) for b in data]
        text = str(data).lower().removeprefix("hex:").replace("0x", "").replace(",", "").replace(" ", "")
        try:
            return list(bytes.fromhex(text))
        except ValueError:
            raise TaskFailed(f"data {data!r} is not valid binary data (e.g. 'hex:be,ef' or a list)") from None
    return "" if data is None else str(data)


@register
class WinRegEdit(winwmi.AliasedModule[RegEditArgs]):
    name = "win_regedit"
    args_model = RegEditArgs
    supports_check = True
    description = "Create, change or remove a registry key or value, through WMI StdRegProv."

    def run(self, ctx: ModuleContext, args: RegEditArgs) -> ModuleOutcome:
        hive, hive_name, key = winwmi.split_registry_path(args.path)
        reg = winwmi.Registry(ctx)
        exists = reg.key_exists(hive, key)
        data: dict[str, Any] = {"data_changed": False, "data_type_changed": False}
        where = f"{hive_name}\\{key}"
        if args.name is None:
            if args.state == "present":
                if exists:
                    return ModuleOutcome(data=data)
                return self._change(
                    ctx,
                    data,
                    {"key": where, "exists": False},
                    {"key": where, "exists": True},
                    f"create key {where}",
                    lambda: reg.create_key(hive, key),
                )
            if not exists:
                return ModuleOutcome(data=data)
            return self._change(
                ctx,
                data,
                {"key": where, "exists": True},
                {"key": where, "exists": False},
                f"remove key {where}",
                lambda: reg.delete_key(hive, key),
            )
        types = reg.values(hive, key) if exists else {}
        current = next((n for n in types if n.lower() == args.name.lower()), None)
        before: dict[str, Any] = {"key": where, "name": args.name, "exists": current is not None}
        if current is not None:
            before.update(type=types[current], data=reg.get(hive, key, current, types[current]))
        if args.state == "absent":
            if current is None:
                return ModuleOutcome(data=data)
            return self._change(
                ctx,
                data,
                before,
                {"key": where, "name": args.name, "exists": False},
                f"remove value {where}\\{args.name}",
                lambda: reg.delete_value(hive, key, current),
            )
        wanted = normalise_data(args.type, args.data)
        if current is not None and before["type"] == args.type and before["data"] == wanted:
            return ModuleOutcome(data=data)
        data = {
            "data_changed": current is None or before.get("data") != wanted,
            "data_type_changed": current is not None and before["type"] != args.type,
        }
        after = {"key": where, "name": args.name, "exists": True, "type": args.type, "data": wanted}
        name = current or args.name

        def write() -> None:
            if not exists:
                reg.create_key(hive, key)
            if current is not None and before["type"] != args.type:
                reg.delete_value(hive, key, current)
            reg.set(hive, key, name, args.type, wanted)

        return self._change(ctx, data, before, after, f"set {where}\\{args.name}", write)

    @staticmethod
    def _change(
        ctx: ModuleContext,
        data: dict[str, Any],
        before: dict[str, Any],
        after: dict[str, Any],
        what: str,
        apply: Any,
    ) -> ModuleOutcome:
        diff = {"before": before, "after": after} if ctx.diff else None
        if ctx.check_mode:
            return ModuleOutcome(changed=True, msg=f"would {what}", data=data, diff=diff)
        apply()
        return ModuleOutcome(changed=True, msg=what, data=data, diff=diff)
