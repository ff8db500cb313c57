"""ospp_paths: which of the usual ospp.vbs paths exist on the PC - read-only, no licence read.

One cmd.exe line of ``if exist`` tests (``gather.office_ospp_paths``): the cost of a ``cmd.exe`` start, not of a
``powershell.exe`` start nor of a licensing class walk (both seconds: docs/lab-timing.md). The bureau's procedure
runs ospp.vbs where Office installed it, so this is all ``seed-procedure.yml`` needs before its commands; the
licences are read once, afterwards, as the record. Facts:

    kmsfleet_ospp_paths   the ospp.vbs paths that exist (Office16 before Office15, Program Files before (x86))
    kmsfleet_ospp_path    the first of them, or None
"""

from __future__ import annotations

from typing import Any

from orchestrator.modules.base import Module, ModuleArgs, ModuleContext, ModuleOutcome, register
from orchestrator.modules.licensing import gather


class OsppPathsArgs(ModuleArgs):
    pass


def ospp_facts(paths: list[str]) -> dict[str, Any]:
    """The host facts for the ospp.vbs paths found (also set by ``license_facts`` with ``office_paths: true``)."""
    return {"kmsfleet_ospp_paths": paths, "kmsfleet_ospp_path": paths[0] if paths else None}


@register
class OsppPaths(Module[OsppPathsArgs]):
    name = "ospp_paths"
    args_model = OsppPathsArgs
    supports_check = True
    description = "Find ospp.vbs in the usual Office 2013-2024 folders (one cmd.exe line; reads no licence)."

    def run(self, ctx: ModuleContext, args: OsppPathsArgs) -> ModuleOutcome:
        del args  # no options
        paths = gather.office_ospp_paths(ctx)
        facts = ospp_facts(paths)
        msg = ", ".join(paths) if paths else "no ospp.vbs in the usual Office folders"
        return ModuleOutcome(msg=msg, data={"paths": paths, "ansible_facts": facts}, facts=facts)
