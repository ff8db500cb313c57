"""WinRM service limits as Windows enforces them, per OS generation (docs/lab-winrm-limits.md), over real
sockets: unmodified pypsrp / pywinrm and kmsfleet's own transport against a Windows 7 (WinRM 2.0) and a
Windows 10 (WinRM 3.0) PC of the lab."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

import pytest
import winrm
from pypsrp.exceptions import WinRMTransportError, WSManFaultError
from pypsrp.shell import Process, WinRS
from pypsrp.wsman import NAMESPACES, WSMan
from wirekit import PASSWORD, USER, StartLab

from orchestrator.lab.control_client import LabControl
from orchestrator.transport.connection import ConnectionSpec
from orchestrator.transport.errors import WSManFault
from orchestrator.transport.winrm import WinRMConnection

WIN7 = "Windows 7 Professional"
WIN10 = "Windows 10 Education"
QUOTA_MAX_SHELLS = 2150859173
QUOTA_MAX_OPERATIONS = 2150859174
INVALID_SELECTORS = 2150858843
DONE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"


def _wsman(address: str, **kwargs: object) -> WSMan:
    options: dict[str, object] = {"ssl": False, "auth": "ntlm", "read_timeout": 30, "reconnection_backoff": 0.1}
    options.update(kwargs)
    return WSMan(address, username=USER, password=PASSWORD, **options)  # type: ignore[arg-type]


def _conn(address: str) -> WinRMConnection:
    spec = ConnectionSpec(
        host=address, address=address, port=5985, scheme="http", transport="ntlm", user=USER, password=PASSWORD
    )
    return WinRMConnection(spec)


def _config(wsman: WSMan) -> dict[str, str]:
    body = wsman.get_server_config()
    cfg = body.find("cfg:Config", {"cfg": "http://schemas.microsoft.com/wbem/wsman/1/config"})
    assert cfg is not None
    return {el.tag.rsplit("}", 1)[-1]: (el.text or "") for el in cfg.iter()}


def _run(shell: WinRS, command: str, *args: str) -> Process:
    proc = Process(shell, command, list(args))
    proc.invoke()
    return proc


def test_winrm_config_reports_each_generations_defaults(start_lab: StartLab) -> None:
    lab = start_lab(hosts=[{"name": "w7", "os": WIN7}, {"name": "w10", "os": WIN10}])
    w7, w10 = (_config(_wsman(h.address)) for h in lab.hosts)
    assert (w7["MaxEnvelopeSizekb"], w7["MaxShellsPerUser"], w7["MaxConcurrentOperationsPerUser"]) == ("150", "5", "15")
    assert (w7["IdleTimeout"], w7["MaxConnections"], w7["MaxMemoryPerShellMB"]) == ("180000", "25", "150")
    assert (w10["MaxEnvelopeSizekb"], w10["MaxShellsPerUser"], w10["MaxConcurrentOperationsPerUser"]) == (
        "500",
        "30",
        "1500",
    )
    assert w10["IdleTimeout"] == "7200000"
    wsman = _wsman(lab.hosts[0].address)
    wsman.update_max_payload_size()  # pypsrp sizes its messages from MaxEnvelopeSizekb
    assert wsman.max_envelope_size == 150 * 1024


def test_sixth_shell_on_windows7_is_refused_with_the_winrm2_quota_fault(start_lab: StartLab) -> None:
    lab = start_lab(hosts=[{"name": "w7", "os": WIN7}])
    wsman = _wsman(lab.hosts[0].address)
    shells = [WinRS(wsman) for _ in range(5)]
    for shell in shells:
        shell.open()
    with pytest.raises(WSManFaultError) as info:
        WinRS(wsman).open()
    assert info.value.code == QUOTA_MAX_SHELLS
    assert "maximum number of 5 concurrent shells" in str(info.value.reason)
    shells[0].close()
    extra = WinRS(wsman)
    extra.open()  # a closed shell gives its place back
    extra.close()


def test_thirty_first_shell_on_windows10_carries_the_code_in_msft_wmierror(start_lab: StartLab) -> None:
    lab = start_lab(hosts=[{"name": "w10", "os": WIN10}])
    session = winrm.Protocol(
        f"http://{lab.hosts[0].address}:5985/wsman", transport="ntlm", username=USER, password=PASSWORD
    )
    for _ in range(30):
        session.open_shell()
    with pytest.raises(winrm.exceptions.WSManFaultError) as info:
        session.open_shell()
    assert info.value.wmierror_code == QUOTA_MAX_SHELLS
    assert info.value.fault_subcode == "w:QuotaLimit"


def test_fifteen_operations_per_user_on_windows7(start_lab: StartLab) -> None:
    lab = start_lab(hosts=[{"name": "w7", "os": WIN7}])
    wsman = _wsman(lab.hosts[0].address)
    with WinRS(wsman) as shell:
        done = 0
        with pytest.raises(WSManFaultError) as info:
            for _ in range(20):
                proc = _run(shell, "hostname")
                assert proc.rc == 0
                proc.signal("http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate")
                done += 1
    # the shell holds one operation and each command one more, terminated or not (MS-WSMV <118>)
    assert done == 14
    assert info.value.code == QUOTA_MAX_OPERATIONS
    assert "maximum number of 15 concurrent operations" in str(info.value.reason)


def test_pywinrm_sees_the_winrm2_operations_fault_code(start_lab: StartLab) -> None:
    lab = start_lab(hosts=[{"name": "w7", "os": WIN7}])
    proto = winrm.Protocol(
        f"http://{lab.hosts[0].address}:5985/wsman", transport="ntlm", username=USER, password=PASSWORD
    )
    shell_id = proto.open_shell()
    for _ in range(14):
        command_id = proto.run_command(shell_id, "hostname")
        assert proto.get_command_output(shell_id, command_id)[2] == 0
        proto.cleanup_command(shell_id, command_id)  # Signal terminate gives nothing back (MS-WSMV <118>)
    with pytest.raises(winrm.exceptions.WSManFaultError) as info:
        proto.run_command(shell_id, "hostname")
    assert info.value.wsman_fault_code == QUOTA_MAX_OPERATIONS
    assert info.value.fault_subcode == "w:InternalError"
    proto.close_shell(shell_id)
    shell_id = proto.open_shell()  # a new shell starts from zero
    assert proto.get_command_output(shell_id, proto.run_command(shell_id, "hostname"))[2] == 0


def test_kmsfleet_transport_recreates_the_shell_when_operations_run_out(start_lab: StartLab) -> None:
    lab = start_lab(hosts=[{"name": "w7", "os": WIN7}])
    conn = _conn(lab.hosts[0].address)
    try:
        outputs = [conn.run_command("hostname").stdout.strip() for _ in range(40)]
        assert set(outputs) == {"W7"}
        status = LabControl(lab.control_url).host("w7")
        assert status["shells"] <= 1  # the used-up shells were deleted, not leaked
    finally:
        conn.close()


def test_request_over_150_kb_on_windows7_gets_http_413(start_lab: StartLab) -> None:
    lab = start_lab(hosts=[{"name": "w7", "os": WIN7}, {"name": "w10", "os": WIN10}])
    big = "x" * (200 * 1024)
    w7, w10 = (h.address for h in lab.hosts)
    with WinRS(_wsman(w7, max_envelope_size=1024 * 1024)) as shell, pytest.raises(WinRMTransportError) as info:
        _run(shell, "echo", big)
    assert info.value.code == 413
    with WinRS(_wsman(w10, max_envelope_size=1024 * 1024)) as shell:
        assert _run(shell, "echo", "small").rc == 0  # 500 KB there: a 200 KB request would pass
        assert _run(shell, "echo", big[: 100 * 1024]).rc == 0
    conn = _conn(w7)
    try:
        with pytest.raises(WSManFault) as fault:
            conn.run_command("echo", [big])
        assert fault.value.subcode == "http413"
    finally:
        conn.close()


def test_idle_timeout_is_capped_and_an_expired_shell_is_gone(start_lab: StartLab) -> None:
    lab = start_lab(hosts=[{"name": "w7", "os": WIN7}])
    wsman = _wsman(lab.hosts[0].address)
    capped = WinRS(wsman, idle_time_out=3600)
    capped.open()
    assert capped.idle_time_out == "PT180.000S"  # the service's IdleTimeout (180 s on WinRM 2.0) is the maximum
    capped.close()
    shell = WinRS(wsman, idle_time_out=1)
    shell.open()
    time.sleep(1.6)
    with pytest.raises(WSManFaultError) as info:
        _run(shell, "hostname")
    assert info.value.code == INVALID_SELECTORS
    assert info.value.provider == "Shell provider"


def test_kmsfleet_transport_reopens_a_shell_that_is_gone(start_lab: StartLab) -> None:
    lab = start_lab(hosts=[{"name": "w7", "os": WIN7}])
    address = lab.hosts[0].address
    conn = _conn(address)
    try:
        assert conn.run_command("hostname").rc == 0
        shell = conn._shell
        assert shell is not None
        shell_id = shell.id
        other = WinRS(_wsman(address))
        other.id = shell_id
        other._selector_set = shell._selector_set
        other.close()  # the shell disappears under the connection (as after its IdleTimeout)
        assert conn.run_command("hostname").stdout.strip() == "W7"
    finally:
        conn.close()


# ---- PowerShell 2.0 on Windows 7 -------------------------------------------------------------------------------


def _run_ps(address: str, script: str) -> winrm.Response:
    session = winrm.Session(f"http://{address}:5985/wsman", auth=(USER, PASSWORD), transport="ntlm")
    return session.run_ps(script)


def test_powershell_version_per_os(start_lab: StartLab) -> None:
    lab = start_lab(hosts=[{"name": "w7", "os": WIN7}, {"name": "w10", "os": WIN10}])
    w7, w10 = (h.address for h in lab.hosts)
    assert _run_ps(w7, "$PSVersionTable.PSVersion.Major").std_out.strip() == b"2"
    assert _run_ps(w10, "$PSVersionTable.PSVersion.Major").std_out.strip() == b"5"
    table = _run_ps(w7, "$PSVersionTable").std_out.decode()
    assert "PSVersion                      2.0" in table
    assert "CLRVersion                     2.0.50727" in table


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("Test-NetConnection 127.0.0.1 -Port 1688 -InformationLevel Quiet", "'Test-NetConnection' is not recognized"),
        ("Get-CimInstance Win32_OperatingSystem", "'Get-CimInstance' is not recognized"),
        ("'a' | ConvertTo-Json", "'ConvertTo-Json' is not recognized"),
        ("Invoke-WebRequest http://127.0.0.1/", "'Invoke-WebRequest' is not recognized"),
        ("$o = [ordered]@{a=1}", "Unable to find type [ordered]"),
        ("$x = (1,2).ForEach({$_})", "doesn't contain a method named 'ForEach'"),
        ("if (1 -in 1,2) { 'yes' }", "Unexpected token '-in'"),
    ],
)
def test_powershell3_constructs_fail_on_windows7_as_powershell2_says(
    start_lab: StartLab, script: str, expected: str
) -> None:
    lab = start_lab(hosts=[{"name": "w7", "os": WIN7}])
    res = _run_ps(lab.hosts[0].address, script)
    err = res.std_err.decode("utf-8", "replace")
    assert expected in err
    assert "<<<<" in err  # PowerShell 2.0's position marker (3.0+ underlines with ~)
    assert res.status_code == 1


def test_powershell2_not_recognized_text_has_the_2_0_shape(start_lab: StartLab) -> None:
    lab = start_lab(hosts=[{"name": "w7", "os": WIN7}])
    err = _run_ps(lab.hosts[0].address, "Test-NetConnection 127.0.0.1").std_err.decode()
    lines = err.splitlines()
    assert lines[0].startswith("The term 'Test-NetConnection' is not recognized as the name of a cmdlet")
    assert lines[1] == "At line:1 char:19"
    assert lines[2] == "+ Test-NetConnection <<<<  127.0.0.1"
    assert (
        lines[3]
        == "    + CategoryInfo          : ObjectNotFound: (Test-NetConnection:String) [], CommandNotFoundException"
    )
    assert lines[4] == "    + FullyQualifiedErrorId : CommandNotFoundException"


TCP_TEST = """$tcp = New-Object System.Net.Sockets.TcpClient
$wait = $tcp.BeginConnect('{host}', {port}, $null, $null)
$open = $wait.AsyncWaitHandle.WaitOne(2000, $false) -and $tcp.Connected
$tcp.Close()
$open"""


def test_tcpclient_port_check_runs_on_powershell_2_and_5(start_lab: StartLab) -> None:
    lab = start_lab(hosts=[{"name": "w7", "os": WIN7}, {"name": "w10", "os": WIN10}])
    kms = lab.lab.resolved.kms_address
    for h in lab.hosts:
        assert _run_ps(h.address, TCP_TEST.format(host=kms, port=1688)).std_out.strip() == b"True"
        closed = _run_ps(h.address, TCP_TEST.format(host=kms, port=1689))
        assert closed.std_out.strip() == b"False"
        assert closed.std_err == b""
    started = time.monotonic()
    far = _run_ps(lab.hosts[0].address, TCP_TEST.format(host="10.0.0.1", port=1688))
    assert far.std_out.strip() == b"False"  # never answers: WaitOne waits its 2 s, with no traffic
    assert time.monotonic() - started >= 1.9


def test_encoding_limit_fault_text() -> None:
    from orchestrator.lab.wsman import faults

    xml = faults.encoding_limit(8192, 9000).render("127.0.0.9", "uuid:X").decode()
    root = ET.fromstring(xml)
    ns = {**NAMESPACES, "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault"}
    assert root.find(".//f:WSManFault", ns).get("Code") == "2150858824"  # type: ignore[union-attr]
    assert "computed response packet size (9000) exceeds the maximum envelope size that is allowed (8192)" in xml


def test_winrm3_operations_fault_carries_the_code_in_msft_wmierror() -> None:
    """The 1500-operation quota of WinRM 3.0, scaled down to 3 to reach it: the code travels in an MSFT_WmiError
    (what Ansible's winrm plugin reads as ``wmierror_code``); kmsfleet's fault parser sees it as infrastructure."""
    import asyncio
    from dataclasses import replace

    from fake_host import FakeUnitTestHost
    from wsman_requests import RSP, SHELL_CMD, create_shell, envelope

    from orchestrator.lab.spec import parse_spec, resolve
    from orchestrator.lab.wsman.config import WINRM3
    from orchestrator.lab.wsman.service import WSManService
    from orchestrator.lab.wsman.shell import CallerInfo
    from orchestrator.modules.licensing.diagnose import is_licensing_fault
    from orchestrator.transport.winrm import parse_fault

    room = {"room": "r", "subnet": "127.250.1", "credentials": {"password": "pw-123456"}, "hosts": [{"name": "pc"}]}
    spec = parse_spec(room)
    host = FakeUnitTestHost(resolve(spec).hosts[0])
    service = WSManService(host, host.address, replace(WINRM3, max_concurrent_operations_per_user=3))
    caller = CallerInfo(user="administrator", client_ip="127.0.0.1", endpoint="http://127.250.1.1:5985/wsman")
    command = "<rsp:CommandLine><rsp:Command>hostname</rsp:Command></rsp:CommandLine>"

    async def scenario() -> list[tuple[int, bytes]]:
        created = await service.handle(create_shell().encode(), caller)
        shell_id = ET.fromstring(created.body).findtext(".//rsp:ShellId", namespaces={"rsp": RSP})
        assert shell_id
        out = []
        for _ in range(3):
            req = envelope(f"{RSP}/Command", SHELL_CMD, command, selectors={"ShellId": shell_id})
            outcome = await service.handle(req.encode(), caller)
            out.append((outcome.status, outcome.body))
        return out

    (s1, _), (s2, _), (s3, body) = asyncio.run(scenario())
    assert (s1, s2, s3) == (200, 200, 500)  # the shell holds one operation, each command one more
    fault = parse_fault("pc", 500, body.decode())
    assert isinstance(fault, WSManFault)
    assert fault.wmi_code == QUOTA_MAX_OPERATIONS and fault.code is None
    assert fault.subcode == "w:InternalError"
    assert "maximum number of 3 concurrent operations" in body.decode()
    assert not is_licensing_fault(fault)


def test_kmsfleet_transport_reports_the_shell_quota_without_retrying(start_lab: StartLab) -> None:
    """Five shells held by another session of the same account: kmsfleet's Create is refused with the quota
    fault, reported as a WinRM fault (not a licensing result) and not retried (the shells are not its own)."""
    from orchestrator.modules.licensing.diagnose import is_licensing_fault

    lab = start_lab(hosts=[{"name": "w7", "os": WIN7}])
    address = lab.hosts[0].address
    wsman = _wsman(address)
    held = [WinRS(wsman) for _ in range(5)]
    for shell in held:
        shell.open()
    conn = _conn(address)
    try:
        before = conn.requests_sent
        with pytest.raises(WSManFault) as info:
            conn.run_command("hostname", read_only=True)
        assert info.value.code == QUOTA_MAX_SHELLS
        assert not is_licensing_fault(info.value)
        assert conn.requests_sent - before == 1  # one Create, no retry
    finally:
        conn.close()
        for shell in held:
            shell.close()
