"""The licensing modules: gather → plan → apply → verify.

- ``license_facts``: every licence on the PC (read-only; the audit record).
- ``windows_kms``: Windows 10/11, 7 and Server 2016/2019 as KMS clients of the configured host.
- ``office_kms``: volume Office 2013/2016/2019 (SPP, or OSPP on Windows 7).
- ``time_sync``: time zone / clock / admin / KMS-port preflight, with optional fixes.
- ``sql_audit``: SQL Server inventory (no activation needed).
- ``ospp_paths``: where ospp.vbs is (one cmd.exe line; reads no licence).
- ``license_verdict``: the PC's verdict from the product tasks' registered results.

Shared pieces: ``model`` (pure state and plan types), ``gather`` (read-only WMI/commands), ``apply`` (WMI method
calls and the module outcome), ``diagnose`` (why an activation failed).
"""

from orchestrator.modules.licensing import (  # noqa: F401 - importing registers the modules
    license_facts,
    office_kms,
    ospp_paths,
    sql_audit,
    time_sync,
    verdict,
    windows_kms,
)
