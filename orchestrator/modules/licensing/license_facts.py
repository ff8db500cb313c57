"""license_facts: every licence on the PC, read-only - the audit record.

Windows (or Windows Server), Office through SPP or (Windows 7) OSPP, and SQL Server instances (audit only: SQL
Server is not a KMS product; docs/reference.md §5). Each becomes a ``LicenceRecord``
(``ModuleOutcome.licences``: the run's licence table, history and reports) and host facts for later tasks' ``when:``:

    kmsfleet_licences            list of the records (as JSON)
    kmsfleet_cmid                KMS client machine ID (SoftwareLicensingService.ClientMachineID)
    kmsfleet_office_cmid         the OSPP CMID on Windows 7 with Office, else the SPP one
    kmsfleet_kms_host            "host:port" set on the licensing service, or None (auto-discovery)
    kmsfleet_is_server, kmsfleet_is_win7, kmsfleet_edition_id, kmsfleet_os_version, kmsfleet_os_caption
    kmsfleet_windows             {name, channel, status, days_left, kms_host, kms_client}
    kmsfleet_has_office, kmsfleet_office_versions (every keyed Office: [2016, …]),
    kmsfleet_office_volume_versions (volume ones), kmsfleet_office (one entry per licence), kmsfleet_office_service
    kmsfleet_ospp_paths          ospp.vbs paths that exist (only with office_paths: true), kmsfleet_ospp_path
    kmsfleet_has_sql, kmsfleet_sql_instances
    kmsfleet_expiring            licences with days_left <= renew_below_days (KF_EXPIRING)
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from orchestrator.modules.base import Module, ModuleArgs, ModuleContext, ModuleOutcome, register
from orchestrator.modules.licensing import gather
from orchestrator.modules.licensing.model import NOT_APPLICABLE, LicensingFacts, Sku, licence_record
from orchestrator.modules.licensing.ospp_paths import ospp_facts
from orchestrator.modules.licensing.windows_kms import DEFAULT_RENEW_BELOW_DAYS
from orchestrator.results.models import LicenceRecord


class LicenseFactsArgs(ModuleArgs):
    office_paths: bool = Field(False, description="find ospp.vbs (one cmd.exe `if exist` line when Office is there)")
    sql: bool = Field(True, description="inventory SQL Server instances (services; registry for version/edition)")
    renew_below_days: int = Field(
        DEFAULT_RENEW_BELOW_DAYS, ge=0, le=180, description="flag licences this close to expiry"
    )


def sql_record(inst: gather.SqlInstance) -> LicenceRecord:
    return LicenceRecord(
        product="sql",
        name=inst.display,
        channel="n/a",
        status=NOT_APPLICABLE,
        version=inst.version,
        edition=inst.edition,
        activation_id=inst.instance_id,
    )


def _office_fact(facts: LicensingFacts, sku: Sku) -> dict[str, Any]:
    """One Office licence in ``kmsfleet_office``."""
    return {
        "name": sku.name,
        "version": sku.office_version,
        "kind": sku.office_kind,
        "channel": sku.channel,
        "status": sku.status_name,
        "days_left": sku.days_left,
        "kms_host": facts.effective_kms_text(sku),
        "service": sku.service,
    }


def _windows_fact(facts: LicensingFacts, win: Sku) -> dict[str, Any]:
    """``kmsfleet_windows``: the PC's Windows licence."""
    return {
        "name": win.name,
        "channel": win.channel,
        "status": win.status_name,
        "days_left": win.days_left,
        "kms_host": facts.effective_kms_text(win),
        "kms_client": win.kms_client,
    }


def summarise_facts(
    facts: LicensingFacts,
    records: list[LicenceRecord],
    sql: list[gather.SqlInstance],
    ospp_paths: list[str] | None,
    renew_below_days: int,
) -> dict[str, Any]:
    """Host facts from the licensing state (pure)."""
    win = facts.primary_windows
    office = [_office_fact(facts, s) for s in facts.office_skus]
    versions = sorted({s.office_version for s in facts.office_skus if s.office_version})
    volume = sorted({s.office_version for s in facts.office_skus if s.office_version and s.office_kind == "volume"})
    expiring = [
        r.name
        for r in records
        if r.status == "Licensed" and r.days_left is not None and r.days_left <= renew_below_days
    ]
    out: dict[str, Any] = {
        "kmsfleet_licences": [r.to_json() for r in records],
        "kmsfleet_cmid": facts.spp.cmid,
        "kmsfleet_office_cmid": (facts.ospp or facts.spp).cmid,
        "kmsfleet_kms_host": facts.spp.kms_text,
        "kmsfleet_is_server": facts.os.is_server,
        "kmsfleet_is_win7": facts.os.is_win7,
        "kmsfleet_edition_id": facts.edition_id,
        "kmsfleet_os_version": facts.os.version,
        "kmsfleet_os_caption": facts.os.caption,
        "kmsfleet_windows": _windows_fact(facts, win) if win else None,
        "kmsfleet_has_office": bool(office),
        "kmsfleet_office": office,
        "kmsfleet_office_versions": versions,
        "kmsfleet_office_volume_versions": volume,
        "kmsfleet_office_service": facts.office_skus[0].service if facts.office_skus else None,
        "kmsfleet_has_sql": bool(sql),
        "kmsfleet_sql_instances": [i.to_json() for i in sql],
        "kmsfleet_expiring": expiring,
    }
    if ospp_paths is not None:
        out.update(ospp_facts(ospp_paths))
    return out


def _line(record: LicenceRecord) -> str:
    if record.status == NOT_APPLICABLE:
        return f"{record.name}: no activation needed"
    days = "permanent" if record.days_left is None else f"{record.days_left} days"
    return f"{record.name}: {record.status} ({days}, {record.channel}, KMS {record.kms_host or 'not set'})"


@register
class LicenseFacts(Module[LicenseFactsArgs]):
    name = "license_facts"
    args_model = LicenseFactsArgs
    supports_check = True
    description = "Read every licence on the PC (Windows, Office via SPP/OSPP, SQL Server) without changing anything."

    def run(self, ctx: ModuleContext, args: LicenseFactsArgs) -> ModuleOutcome:
        facts = gather.read_licensing(ctx)
        now = ctx.controller_now()
        records = [licence_record(facts, s, now) for s in facts.windows_skus + facts.office_skus]
        sql = gather.read_sql_instances(ctx) if args.sql else []
        records += [sql_record(i) for i in sql]
        ospp_paths = (
            gather.office_ospp_paths(ctx)
            if args.office_paths and facts.office_skus
            else ([] if args.office_paths else None)
        )
        host_facts = summarise_facts(facts, records, sql, ospp_paths, args.renew_below_days)
        msg = "; ".join(_line(r) for r in records) or "no licences with a product key found"
        return ModuleOutcome(
            msg=msg,
            data={"licences": host_facts["kmsfleet_licences"], "ansible_facts": host_facts},
            facts=host_facts,
            licences=tuple(records),
        )
