"""Direct WMI access for playbooks: wmi_query (WQL → list of dicts) and wmi_method (invoke a method)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from orchestrator.modules.base import Module, ModuleArgs, ModuleContext, ModuleOutcome, TaskFailed, register
from orchestrator.results.models import thaw
from orchestrator.transport.errors import WSManFault

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: thaw(v) for k, v in row.items()}


class QueryArgs(ModuleArgs):
    query: str = Field(min_length=1)
    namespace: str = "root/cimv2"

    @field_validator("query")
    @classmethod
    def _select(cls, v: str) -> str:
        if not v.strip().lower().startswith("select "):
            raise ValueError("query must be a WQL SELECT statement")
        return v


@register
class WmiQuery(Module[QueryArgs]):
    name = "wmi_query"
    args_model = QueryArgs
    free_form = "query"
    supports_check = True
    description = "Run a WQL SELECT over WS-Management; returns `instances` (a list of dicts) and `count`."

    def run(self, ctx: ModuleContext, args: QueryArgs) -> ModuleOutcome:
        try:
            rows = ctx.conn.wql(args.query, args.namespace)
        except WSManFault as fault:
            raise TaskFailed(f"WQL query failed: {fault.reason}", error_code=fault.hresult) from None
        instances = [_jsonable(r) for r in rows]
        return ModuleOutcome(data={"instances": instances, "count": len(instances)})


class MethodArgs(ModuleArgs):
    class_name: str = Field(alias="class")
    method: str
    selectors: dict[str, str] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    namespace: str = "root/cimv2"
    expect_return: list[int] = Field(default_factory=lambda: [0])

    @field_validator("class_name", "method")
    @classmethod
    def _ident(cls, v: str) -> str:
        if not _IDENT.match(v):
            raise ValueError(f"{v!r} is not a WMI class or method name")
        return v


@register
class WmiMethod(Module[MethodArgs]):
    name = "wmi_method"
    args_model = MethodArgs
    supports_check = False
    description = "Invoke a WMI method (class, method, selectors, params); fails unless ReturnValue is expected."

    def run(self, ctx: ModuleContext, args: MethodArgs) -> ModuleOutcome:
        try:
            out = ctx.conn.invoke(args.class_name, args.method, args.selectors, args.params, args.namespace)
        except WSManFault as fault:
            code = fault.hresult
            raise TaskFailed(
                f"{args.class_name}.{args.method} failed: {fault.reason}", error_code=code, data={"return_value": None}
            ) from None
        rv = out.get("ReturnValue")
        try:
            return_value = int(str(rv)) if rv is not None else None
        except ValueError:
            return_value = None
        outputs = {k: thaw(v) for k, v in out.items() if k not in ("ReturnValue", "__CLASS")}
        data = {"return_value": return_value, "outputs": outputs}
        if return_value is not None and return_value not in args.expect_return:
            raise TaskFailed(
                f"{args.class_name}.{args.method} returned {return_value} (0x{return_value & 0xFFFFFFFF:08X})",
                error_code=return_value & 0xFFFFFFFF if return_value else None,
                data=data,
            )
        return ModuleOutcome(changed=True, data=data)
