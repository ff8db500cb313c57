"""Win32_Service methods, StdRegProv and Win32_OperatingSystem.Win32Shutdown on a simulated PC (in process,
no sockets; the wire path is covered by tests/e2e/test_ansible_modules_e2e.py): the documented return codes,
and that `reg query`, WQL and the methods share one state."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from test_wmi_classes import machines

from orchestrator.lab import files
from orchestrator.lab.addresses import Claim
from orchestrator.lab.commands import run as run_command
from orchestrator.lab.machine import Machine
from orchestrator.lab.provider import PreparedCommand, ShellContext

HKLM = "2147483650"


@pytest.fixture
def pcs(lab_block: Claim) -> dict[str, Machine]:
    return machines(
        lab_block,
        [
            {"name": "w10", "sql": "2019 Standard"},
            {"name": "std", "admin": False},
            {"name": "srv", "os": "Windows Server 2016 Standard"},
        ],
    )


def _call(pc: Machine, cls: str, method: str, selectors: dict[str, str] | None = None, **params: str) -> dict[str, Any]:
    out = asyncio.run(pc.invoke(cls, method, selectors or {}, params, "administrator"))
    return {p.name: p.value for p in out}


def _svc(pc: Machine, name: str) -> dict[str, Any]:
    row = pc.wql(f"SELECT State, StartMode FROM Win32_Service WHERE Name = '{name}'")[0]
    return {p.name: p.value for p in row.properties}


def test_service_methods_return_documented_codes(pcs: dict[str, Machine]) -> None:
    pc = pcs["w10"]
    sel = {"Name": "Spooler"}
    assert _call(pc, "Win32_Service", "StartService", sel)["ReturnValue"] == 10  # already running
    assert _call(pc, "Win32_Service", "StopService", sel)["ReturnValue"] == 0
    assert _call(pc, "Win32_Service", "StopService", sel)["ReturnValue"] == 5  # cannot accept control
    assert _call(pc, "Win32_Service", "ChangeStartMode", sel, StartMode="Sometimes")["ReturnValue"] == 21
    assert _call(pc, "Win32_Service", "ChangeStartMode", sel, StartMode="Disabled")["ReturnValue"] == 0
    assert _call(pc, "Win32_Service", "StartService", sel)["ReturnValue"] == 14  # disabled
    assert _svc(pc, "Spooler") == {"Name": "Spooler", "State": "Stopped", "StartMode": "Disabled"}
    assert _call(pcs["std"], "Win32_Service", "StopService", sel)["ReturnValue"] == 2  # access denied
    assert _call(pc, "Win32_Service", "Delete", {"Name": "MSSQLSERVER"})["ReturnValue"] == 0  # running: marked
    assert _call(pc, "Win32_Service", "Delete", {"Name": "MSSQLSERVER"})["ReturnValue"] == 16
    assert pc.wql("SELECT Name FROM Win32_Service WHERE Name = 'MSSQLSERVER'")
    _call(pc, "Win32_Service", "StopService", {"Name": "MSSQLSERVER"})
    assert not pc.wql("SELECT Name FROM Win32_Service WHERE Name = 'MSSQLSERVER'")


def _cmd(pc: Machine, line: str) -> str:
    shell = ShellContext(user="administrator")
    outcome = asyncio.run(run_command(pc, PreparedCommand(command_line=line, needs_stdin=False), b"", shell))
    return outcome.stdout.decode("cp437")


def test_stdregprov_and_reg_query_share_the_tree(pcs: dict[str, Machine]) -> None:
    pc = pcs["w10"]
    key = "SOFTWARE\\School"
    assert (
        _call(pc, "StdRegProv", "SetStringValue", hDefKey=HKLM, sSubKeyName=key, sValueName="a", sValue="x")[
            "ReturnValue"
        ]
        == 2
    )  # the key must exist first
    assert _call(pc, "StdRegProv", "CreateKey", hDefKey=HKLM, sSubKeyName=key + "\\Room\\101")["ReturnValue"] == 0
    assert (
        _call(pc, "StdRegProv", "SetDWORDValue", hDefKey=HKLM, sSubKeyName=key, sValueName="Seats", uValue="30")[
            "ReturnValue"
        ]
        == 0
    )
    assert (
        _call(pc, "StdRegProv", "GetStringValue", hDefKey=HKLM, sSubKeyName=key, sValueName="Seats")["ReturnValue"]
        == 0x80041005  # wrong type: WBEM_E_TYPE_MISMATCH
    )
    assert _call(pc, "StdRegProv", "GetDWORDValue", sSubKeyName=key, sValueName="Seats")["uValue"] == 30
    assert "Seats    REG_DWORD    0x1e" in _cmd(pc, "reg query HKLM\\SOFTWARE\\School")
    assert _call(pc, "StdRegProv", "DeleteKey", hDefKey=HKLM, sSubKeyName=key + "\\Room")["ReturnValue"] == 5
    assert _call(pcs["std"], "StdRegProv", "CreateKey", hDefKey=HKLM, sSubKeyName=key)["ReturnValue"] == 5
    sql = _call(pc, "StdRegProv", "EnumKey", hDefKey=HKLM, sSubKeyName="SOFTWARE\\Microsoft\\Microsoft SQL Server")
    assert "MSSQL15.MSSQLSERVER" in sql["sNames"]
    assert _call(pc, "StdRegProv", "EnumKey", hDefKey="2147483652", sSubKeyName="x")["ReturnValue"] == 87


def test_server_features_only_on_servers(pcs: dict[str, Machine]) -> None:
    assert {p.value for r in pcs["srv"].wql("SELECT Name FROM Win32_ServerFeature") for p in r.properties} >= {
        "File Server"
    }
    with pytest.raises(Exception, match="Invalid class"):
        pcs["w10"].wql("SELECT Name FROM Win32_ServerFeature")


def test_shutdown_needs_the_privilege_and_changes_the_boot_time(pcs: dict[str, Machine]) -> None:
    assert _call(pcs["std"], "Win32_OperatingSystem", "Win32Shutdown", Flags="6")["ReturnValue"] == 1314
    pc = pcs["w10"]
    before = pc.boot_time
    pc.world.clock.advance(0.001)
    assert _call(pc, "Win32_OperatingSystem", "Win32Shutdown", Flags="6")["ReturnValue"] == 0
    assert pc.boot_time > before  # no power hook outside a running lab: the restart is immediate


def test_written_files_show_in_wmi_and_test_path(pcs: dict[str, Machine]) -> None:
    pc = pcs["w10"]
    now = pc.world.clock.now()
    assert files.write(pc, "C:\\School\\a.txt", b"x", append=False, now=now) is not None  # no such folder
    assert files.make_dirs(pc, "C:\\School", now) is None
    assert files.write(pc, "C:\\School\\a.txt", b"hello", append=False, now=now) is None
    row = pc.wql("SELECT Name, FileSize, Extension FROM CIM_DataFile WHERE Name = 'c:\\\\school\\\\a.txt'")[0]
    assert {p.name: p.value for p in row.properties}["FileSize"] == 5
    assert pc.wql("SELECT Name FROM Win32_Directory WHERE Name = 'C:\\\\School'")
    assert "True" in _cmd(pc, "powershell -Command Test-Path -LiteralPath 'C:\\School\\a.txt' -PathType Leaf")
