"""cmd.exe's ``if [not] exist`` and ``( … )`` groups on a lab PC, and kmsfleet's ospp.vbs probe built on them,
over real WinRM on loopback: which ospp.vbs paths exist for Office 2013/2016/2019 in either bitness, or none."""

from __future__ import annotations

import threading
from typing import Any

from wirekit import PASSWORD, USER, StartLab

from orchestrator.lab.control_client import LabControl
from orchestrator.modules.base import ModuleContext
from orchestrator.modules.licensing import gather
from orchestrator.transport.connection import ConnectionSpec
from orchestrator.transport.winrm import WinRMConnection

X64 = "C:\\Program Files\\Microsoft Office\\{folder}\\OSPP.VBS"
X86 = "C:\\Program Files (x86)\\Microsoft Office\\{folder}\\OSPP.VBS"
OFFICES: list[tuple[str, Any, list[str]]] = [
    ("o13x86", {"version": 2013, "bitness": "x86"}, [X86.format(folder="Office15")]),
    ("o13x64", {"version": 2013, "bitness": "x64"}, [X64.format(folder="Office15")]),
    ("o16x86", {"version": 2016, "bitness": "x86"}, [X86.format(folder="Office16")]),
    ("o16x64", {"version": 2016, "bitness": "x64"}, [X64.format(folder="Office16")]),
    ("o19x86", {"version": 2019, "bitness": "x86"}, [X86.format(folder="Office16")]),
    ("o19x64", {"version": 2019, "bitness": "x64"}, [X64.format(folder="Office16")]),
    ("none", "none", []),
]


def _conn(address: str) -> WinRMConnection:
    spec = ConnectionSpec(
        host=address, address=address, port=5985, scheme="http", transport="ntlm", user=USER, password=PASSWORD
    )
    return WinRMConnection(spec)


def _ctx(conn: WinRMConnection) -> ModuleContext:
    return ModuleContext(
        host="pc",
        hostvars={},
        check_mode=False,
        diff=False,
        connect=lambda: conn,
        cancel=threading.Event(),
    )


def _office(spec: Any) -> Any:
    if spec == "none":
        return "none"
    return {**spec, "channel": "volume", "state": "unlicensed"}


def test_ospp_probe_finds_each_office_version_and_bitness(start_lab: StartLab) -> None:
    lab = start_lab(hosts=[{"name": name, "office": _office(office)} for name, office, _ in OFFICES])
    for host, (name, _, expected) in zip(lab.hosts, OFFICES, strict=True):
        conn = _conn(host.address)
        try:
            assert gather.office_ospp_paths(_ctx(conn)) == expected, name
        finally:
            conn.close()


CASES = [
    # the if's command runs to the end of the line: nothing is printed when the file is missing ...
    ('if exist "C:\\nope.txt" echo a & echo b', ""),
    # ... and both when it exists; a group ends the if's command
    ("if exist C:\\Windows\\System32\\cmd.exe echo a& echo b", "a\r\nb\r\n"),
    ('(if exist "C:\\nope.txt" echo a) & echo b', "b\r\n"),
    # a ")" inside quotes does not close the group; one outside does
    ('(if exist "C:\\Program Files (x86)" echo x86) & (if not exist "C:\\nope (1)" echo none)', "x86\r\nnone\r\n"),
    ("if exist C:\\nope.txt (echo a) else (echo b)", "b\r\n"),
    ("if exist C:\\Windows (echo a) else echo b", "a\r\n"),
    ("if /i abc==ABC echo same", "same\r\n"),
    ("if abc==ABC (echo same) else echo differ", "differ\r\n"),
    ("(echo a & echo b) & echo c", "a \r\nb\r\nc\r\n"),
    ("if defined WINDIR echo set", "set\r\n"),
]


def test_cmd_if_and_groups(start_lab: StartLab) -> None:
    lab = start_lab(hosts=[{"name": "pc"}])
    conn = _conn(lab.hosts[0].address)
    try:
        answers = [conn.run_command(line) for line, _ in CASES]
    finally:
        conn.close()
    for (line, stdout), res in zip(CASES, answers, strict=True):
        assert (res.stdout, res.stderr) == (stdout, ""), line


def test_errorlevel_condition_and_syntax_error(start_lab: StartLab) -> None:
    lab = start_lab(hosts=[{"name": "pc"}])
    conn = _conn(lab.hosts[0].address)
    try:
        level = conn.run_command("nosuchprogram 2>nul & if errorlevel 1 echo failed")
        bad = conn.run_command("if exist")
    finally:
        conn.close()
    assert level.stdout == "failed\r\n"
    assert bad.stderr == "The syntax of the command is incorrect.\r\n"


def test_ospp_probe_costs_a_cmd_start_not_a_powershell_start(start_lab: StartLab) -> None:
    """With Windows timing, the probe is charged one cmd.exe start and no powershell.exe start."""
    lab = start_lab(hosts=[{"name": "pc", "office": _office({"version": 2016, "bitness": "x86"})}], timing="windows")
    conn = _conn(lab.hosts[0].address)
    try:
        assert gather.office_ospp_paths(_ctx(conn)) == [X86.format(folder="Office16")]
    finally:
        conn.close()
    charged = LabControl(lab.control_url).stats()["timing"]["charged"]
    assert charged["cmd_start"]["count"] == 1
    assert "powershell_cold_start" not in charged and "powershell_start" not in charged
