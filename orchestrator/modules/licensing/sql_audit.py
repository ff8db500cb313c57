"""sql_audit: SQL Server instances, version and edition - audit only.

The bureau's Q&A: SQL Server 2016/2019 need no activation ("此項產品不需認證"; setup pre-fills the key). SQL
Server is not a KMS product (docs/reference.md §5), so this module only inventories it: services from
Win32_Service, version and edition from
``HKLM\\SOFTWARE\\[WOW6432Node\\]Microsoft\\Microsoft SQL Server\\…\\Setup`` (``reg query``).
It is always ``ok``, with the KF_SQL_AUDIT_ONLY diagnosis as information, and never changes anything.
"""

from __future__ import annotations

from pydantic import Field

from orchestrator.modules.base import Module, ModuleArgs, ModuleContext, ModuleOutcome, register
from orchestrator.modules.licensing import gather
from orchestrator.modules.licensing.license_facts import sql_record


class SqlAuditArgs(ModuleArgs):
    registry: bool = Field(True, description="read version/edition from the registry (reg query)")


@register
class SqlAudit(Module[SqlAuditArgs]):
    name = "sql_audit"
    args_model = SqlAuditArgs
    supports_check = True
    description = "Inventory SQL Server instances (version, edition); SQL Server needs no KMS activation."

    def run(self, ctx: ModuleContext, args: SqlAuditArgs) -> ModuleOutcome:
        instances = gather.read_sql_instances(ctx, registry=args.registry)
        records = tuple(sql_record(i) for i in instances)
        if instances:
            msg = "; ".join(r.name for r in records) + " — no activation needed (audit only)"
        else:
            msg = "no SQL Server instance found"
        facts = {"kmsfleet_has_sql": bool(instances), "kmsfleet_sql_instances": [i.to_json() for i in instances]}
        return ModuleOutcome(
            msg=msg,
            diagnosis="KF_SQL_AUDIT_ONLY" if instances else None,
            data={"instances": facts["kmsfleet_sql_instances"], "diagnosis": "KF_SQL_AUDIT_ONLY"},
            facts=facts,
            licences=records,
        )
