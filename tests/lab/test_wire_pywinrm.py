"""Unmodified pywinrm 0.5.0 against the lab: NTLM with message encryption (requests_ntlm, raw NTLM tokens under
the Negotiate scheme, a new TCP connection and handshake per ``run_cmd``), plaintext Basic when the lab allows
unencrypted traffic, and HTTPS."""

from __future__ import annotations

import winrm
from winrm.protocol import Protocol
from wirekit import PASSWORD, USER, StartLab

from orchestrator.lab.control_client import LabControl


def test_run_cmd_hostname_and_slmgr_dlv_over_ntlm(start_lab: StartLab) -> None:
    lab = start_lab()
    host = lab.hosts[0]
    session = winrm.Session(f"http://{host.address}:5985/wsman", auth=(USER, PASSWORD), transport="ntlm")
    result = session.run_cmd("hostname")
    assert result.status_code == 0
    assert result.std_out.strip().decode().upper() == host.computer_name.upper()
    result = session.run_cmd("cscript", ["//nologo", r"C:\Windows\System32\slmgr.vbs", "/dlv"])
    assert result.status_code == 0, result.std_err
    text = result.std_out.decode("utf-8", "replace")
    assert "Activation ID" in text or "License Status" in text
    counters = LabControl(lab.control_url).host(host.name)["requests"]
    assert counters["http:encrypted"] >= 10
    assert counters["Signal"] == 2  # pywinrm's lowercase .../signal/terminate is accepted


def test_plaintext_basic_when_unencrypted_is_allowed(start_lab: StartLab) -> None:
    lab = start_lab(allow_unencrypted=True)
    host = lab.hosts[0]
    session = winrm.Session(f"http://{host.address}:5985/wsman", auth=(USER, PASSWORD), transport="plaintext")
    result = session.run_cmd("hostname")
    assert result.status_code == 0
    assert result.std_out.strip().decode().upper() == host.computer_name.upper()


def test_ssl_transport(start_lab: StartLab) -> None:
    lab = start_lab()
    host = lab.hosts[1]
    session = winrm.Session(
        f"https://{host.address}:5986/wsman",
        auth=(USER, PASSWORD),
        transport="ssl",
        server_cert_validation="ignore",
    )
    result = session.run_cmd("hostname")
    assert result.status_code == 0
    assert result.std_out.strip().decode().upper() == host.computer_name.upper()


def test_run_ps_error_and_version_like_windows(start_lab: StartLab) -> None:
    """pywinrm's ``run_ps`` (``powershell -encodedcommand``): Windows PowerShell 5.1 writes the error stream as
    CLIXML, which pywinrm turns back into text (its recording of ``Write-Error "Error"``: exit code 1, the first
    line naming the statement); ``$PSVersionTable`` answers 5.1 on Windows 10 and 2.0 on Windows 7, whose error
    text stays plain."""
    lab = start_lab([{"name": "w10"}, {"name": "w7", "os": "Windows 7 Professional"}])
    w10, w7 = (
        winrm.Session(f"http://{h.address}:5985/wsman", auth=(USER, PASSWORD), transport="ntlm") for h in lab.hosts
    )
    result = w10.run_ps('Write-Error "Error"')
    assert result.status_code == 1
    assert result.std_err.startswith(b'Write-Error "Error" : Error\n    + CategoryInfo          : NotSpecified:')
    assert w10.run_ps("$PSVersionTable.PSVersion.Major").std_out == b"5\r\n"
    assert w7.run_ps("$PSVersionTable.PSVersion.Major").std_out == b"2\r\n"
    old = w7.run_ps("Get-Nothing")
    assert old.status_code == 1 and old.std_err.startswith(b"The term 'Get-Nothing' is not recognized")


def _protocol(address: str, operation_timeout: int) -> Protocol:
    """pywinrm's Protocol API over NTLM, its Receive long-polls bounded by ``operation_timeout`` seconds."""
    return Protocol(
        f"http://{address}:5985/wsman",
        transport="ntlm",
        username=USER,
        password=PASSWORD,
        read_timeout_sec=operation_timeout + 10,
        operation_timeout_sec=operation_timeout,
    )


def test_protocol_api_shell_options_and_stdin_filters(start_lab: StartLab) -> None:
    """pywinrm's Protocol API by hand: a shell with environment, working directory and codepage 65001;
    ``findstr``/``more`` without a file read the stdin the client sends and run only once it is closed."""
    lab = start_lab()
    proto = _protocol(lab.hosts[0].address, 20)
    shell_id = proto.open_shell(env_vars={"FOO": "bar"}, working_directory="C:\\Windows\\Temp", codepage=65001)
    try:

        def run(command: str, args: list[str], stdin: bytes | None = None) -> tuple[bytes, bytes, int]:
            command_id = proto.run_command(shell_id, command, args)
            if stdin is not None:
                proto.send_command_input(shell_id, command_id, stdin[:4], end=False)
                proto.send_command_input(shell_id, command_id, stdin[4:], end=True)
            out, err, rc = proto.get_command_output(shell_id, command_id)
            proto.cleanup_command(shell_id, command_id)
            return out, err, rc

        assert run("echo", ["%FOO%"]) == (b"bar\r\n", b"", 0)
        assert run("cd", []) == (b"C:\\Windows\\Temp\r\n", b"", 0)
        assert run("chcp", []) == (b"Active code page: 65001\r\n", b"", 0)
        assert run("findstr", ["/i", "KMS"], b"line one\r\nkms host\r\nother\r\n") == (b"kms host\r\n", b"", 0)
        assert run("findstr", ["nothing"], b"line one\r\n") == (b"", b"", 1)
        assert run("more", [], b"a\nb\n") == (b"a\r\nb\r\n", b"", 0)
    finally:
        proto.close_shell(shell_id)


def test_interactive_cmd_runs_each_line_as_it_arrives(start_lab: StartLab) -> None:
    """An interactive ``cmd`` (no /c) runs each line it is sent at once, before the end of stdin: a Receive
    returns its banner and the line's output with the command still running, ``exit 3`` ends it (Done, exit code
    3) though stdin was never closed — as Windows' cmd.exe in pywinrm's stdin recording. A second cmd ended by
    ``End="true"`` prints its last prompt and exits with the last line's code."""
    lab = start_lab()
    proto = _protocol(lab.hosts[0].address, 5)
    shell_id = proto.open_shell(working_directory="C:\\Windows\\Temp")
    try:

        def until(command_id: str, wanted: bytes) -> tuple[bytes, int, bool]:
            seen = b""
            for _ in range(5):
                out, _err, code, done = proto.get_command_output_raw(shell_id, command_id)
                seen += out
                if wanted in seen or done:
                    return seen, code, done
            raise AssertionError(seen)

        command_id = proto.run_command(shell_id, "cmd")
        proto.send_command_input(shell_id, command_id, b"echo first line\r\n", end=False)
        seen, _, done = until(command_id, b"first line\r\n\r\n")
        assert not done
        assert seen.startswith(b"Microsoft Windows [Version ")
        assert b"C:\\Windows\\Temp>echo first line\r\nfirst line\r\n" in seen
        proto.send_command_input(shell_id, command_id, b"exit 3\r\n", end=False)
        seen, code, done = until(command_id, b"\x00")
        assert (seen, code, done) == (b"C:\\Windows\\Temp>exit 3\r\n", 3, True)
        proto.cleanup_command(shell_id, command_id)

        command_id = proto.run_command(shell_id, "cmd")
        proto.send_command_input(shell_id, command_id, b"nosuchprogram\r\n", end=True)
        out, err, code = proto.get_command_output(shell_id, command_id)
        assert out.endswith(b"C:\\Windows\\Temp>nosuchprogram\r\n\r\nC:\\Windows\\Temp>")
        assert b"is not recognized" in err
        assert code == 1
        proto.cleanup_command(shell_id, command_id)
    finally:
        proto.close_shell(shell_id)


IDENTIFY = (
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:wsmid="http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd">'
    "<s:Header/><s:Body><wsmid:Identify/></s:Body></s:Envelope>"
)


def test_identify_anonymous_and_after_logon(start_lab: StartLab) -> None:
    """Test-WSMan's probe: anonymous with ``WSMANIDENTIFY: unauthenticated`` (OS version hidden), and through
    pywinrm's NTLM-sealed transport after a logon (the real OS version)."""
    import requests

    lab = start_lab()
    host = lab.hosts[0]
    url = f"http://{host.address}:5985/wsman"
    headers = {"Content-Type": "application/soap+xml;charset=UTF-8", "WSMANIDENTIFY": "unauthenticated"}
    anonymous = requests.post(url, data=IDENTIFY.encode(), headers=headers, timeout=10)
    assert anonymous.status_code == 200
    assert b"<wsmid:ProductVendor>Microsoft Corporation</wsmid:ProductVendor>" in anonymous.content
    assert b"OS: 0.0.0 SP: 0.0 Stack: 3.0" in anonymous.content
    # without the header an Identify needs a logon like any other request
    plain = {"Content-Type": "application/soap+xml;charset=UTF-8"}
    assert requests.post(url, data=IDENTIFY.encode(), headers=plain, timeout=10).status_code == 401
    proto = Protocol(url, transport="ntlm", username=USER, password=PASSWORD, read_timeout_sec=30)
    answer = proto.transport.send_message(IDENTIFY)
    assert b"IdentifyResponse" in answer and b"OS: 10.0." in answer and b"spnego-kerberos" in answer
