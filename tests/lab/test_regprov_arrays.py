"""StdRegProv's array setters over real WinRM on loopback: ``SetMultiStringValue(sValue[])`` and
``SetBinaryValue(uValue[])`` as kmsfleet's transport sends them (the element repeated in the _INPUT body), read
back through the getters and ``reg query``."""

from __future__ import annotations

from typing import Any

from wirekit import PASSWORD, USER, StartLab

from orchestrator.transport.connection import ConnectionSpec
from orchestrator.transport.winrm import WinRMConnection

HKLM = 2147483650
KEY = "SOFTWARE\\Kmsfleet"


def _conn(address: str) -> WinRMConnection:
    spec = ConnectionSpec(
        host=address, address=address, port=5985, scheme="http", transport="ntlm", user=USER, password=PASSWORD
    )
    return WinRMConnection(spec)


def _reg(conn: WinRMConnection, method: str, **params: Any) -> dict[str, Any]:
    return dict(conn.invoke("StdRegProv", method, None, {"hDefKey": HKLM, "sSubKeyName": KEY, **params}))


def test_multi_string_and_binary_values_round_trip(start_lab: StartLab) -> None:
    lab = start_lab(hosts=[{"name": "pc"}])
    conn = _conn(lab.hosts[0].address)
    try:
        assert str(_reg(conn, "CreateKey")["ReturnValue"]) == "0"
        rooms = ["Room 101", "Room 102", "實驗室"]
        assert str(_reg(conn, "SetMultiStringValue", sValueName="Rooms", sValue=rooms)["ReturnValue"]) == "0"
        assert str(_reg(conn, "SetMultiStringValue", sValueName="One", sValue=["only"])["ReturnValue"]) == "0"
        assert str(_reg(conn, "SetBinaryValue", sValueName="Blob", uValue=[0, 1, 171, 255])["ReturnValue"]) == "0"
        too_big = _reg(conn, "SetBinaryValue", sValueName="Bad", uValue=[1, 256])
        multi = _reg(conn, "GetMultiStringValue", sValueName="Rooms")
        one = _reg(conn, "GetMultiStringValue", sValueName="One")
        blob = _reg(conn, "GetBinaryValue", sValueName="Blob")
        shown = conn.run_command(f'reg query "HKLM\\{KEY}"').stdout
    finally:
        conn.close()
    assert str(too_big["ReturnValue"]) == "87"
    assert multi["sValue"] == rooms
    assert one["sValue"] in (["only"], "only")  # a one-element array reads like a scalar on the wire
    assert [int(b) for b in blob["uValue"]] == [0, 1, 171, 255]
    assert "Room 101\\0Room 102\\0實驗室" in shown and "0001ABFF" in shown
