"""Units of the lab's Windows-generation knowledge without sockets: the WinRM defaults per OS and their
``winrm/config`` rendering, PowerShell 2.0's error texts and ``$PSVersionTable`` (a stand-in machine that has
only what ``ps_versions`` reads), and the engine's KMS port test script (what PowerShell 2.0 must parse)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any, cast

import pytest

from orchestrator.lab.commands import ps_versions
from orchestrator.lab.wsman.config import WINRM2, WINRM3, config_xml, service_config_for, winrm_version_for
from orchestrator.modules.licensing import gather

CFG = {"cfg": "http://schemas.microsoft.com/wbem/wsman/1/config"}


@dataclass
class _Os:
    is_win7: bool
    build: str


@dataclass
class _Machine:
    os: _Os


WIN7 = cast(Any, _Machine(_Os(True, "7601")))
WIN10 = cast(Any, _Machine(_Os(False, "19045")))


@pytest.mark.parametrize(
    ("os_name", "version"),
    [
        ("Windows 7 Professional", 2),
        ("Windows 7 Enterprise", 2),
        ("Windows 10 Education", 3),
        ("Windows 11 Pro", 3),
        ("Windows Server 2016 Standard", 3),
    ],
)
def test_winrm_generation_per_os(os_name: str, version: int) -> None:
    assert winrm_version_for(os_name) == version
    assert service_config_for(os_name).winrm_version == version


def test_config_xml_renders_the_generation() -> None:
    for cfg, expected in ((WINRM2, ("150", "15", "5", "180000")), (WINRM3, ("500", "1500", "30", "7200000"))):
        root = ET.fromstring(config_xml(cfg))
        got = tuple(
            root.findtext(f".//cfg:{name}", namespaces=CFG)
            for name in ("MaxEnvelopeSizekb", "MaxConcurrentOperationsPerUser", "MaxShellsPerUser", "IdleTimeout")
        )
        assert got == expected
    assert service_config_for("Windows 7 Professional", max_envelope_kb=512).max_envelope_kb == 512
    assert service_config_for("Windows 10 Pro", allow_unencrypted=True).allow_unencrypted is True


def test_not_recognized_v2_marks_the_position_after_the_name() -> None:
    text = ps_versions.not_recognized_v2("Get-CimInstance", "$os = Get-CimInstance Win32_OperatingSystem")
    lines = text.split("\r\n")
    assert lines[1] == "At line:1 char:22"
    assert lines[2] == "+ $os = Get-CimInstance <<<<  Win32_OperatingSystem"
    assert "(Get-CimInstance:String) [], CommandNotFoundException" in lines[3]


def test_v2_syntax_errors() -> None:
    assert ps_versions.parse_error_v2("if ($a -notin $b) { 1 }") is not None
    assert ps_versions.parse_error_v2("Test-NetConnection x -InformationLevel Quiet") is None  # -In… is a parameter
    ordered = ps_versions.runtime_error_v2("$h = [ordered]@{}")
    assert ordered is not None and "TypeNotFound" in ordered
    where = ps_versions.runtime_error_v2("$x = $list.Where({ $_ })")
    assert where is not None and "named 'Where'" in where
    assert ps_versions.runtime_error_v2("$list | Where-Object { $_ }") is None


def test_psversiontable_per_version() -> None:
    assert ps_versions.psversiontable(WIN7, "$PSVersionTable.PSVersion.Major") == "2\r\n"
    assert ps_versions.psversiontable(WIN10, "$PSVersionTable.PSVersion.Major") == "5\r\n"
    assert ps_versions.psversiontable(WIN7, "$PSVersionTable.PSVersion.ToString()") == "2.0\r\n"
    assert ps_versions.psversiontable(WIN10, "$PSVersionTable.PSVersion.ToString()") == "5.1.19045.1\r\n"
    assert ps_versions.psversion_value(WIN7, "$psversiontable.psversion.major") == 2
    assert ps_versions.psversiontable(WIN7, "$Other") is None
    table = ps_versions.psversiontable(WIN10, "$PSVersionTable")
    assert table is not None and "PSEdition                      Desktop" in table


def test_engine_port_test_uses_only_powershell2_constructs() -> None:
    script = gather._PORT_TEST.format(host="127.0.0.2", port=1688, timeout_ms=3000)
    assert ps_versions.parse_error_v2(script) is None
    for stmt in script.splitlines():
        assert ps_versions.runtime_error_v2(stmt) is None
        words = stmt.replace("(", " ").split()
        assert not any(w.lower() in ps_versions.NEWER_CMDLETS for w in words)
