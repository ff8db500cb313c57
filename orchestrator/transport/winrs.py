"""The WinRS command loop of one host: one reused cmd shell (Create), and per command Command → Send (stdin) →
Receive until ``CommandState/Done`` → Signal terminate; Delete of the shell when it is done or used up.

The message shapes follow MS-WSMV 3.1.4.11–3.1.4.16 (the Windows Remote Shell operations) as pypsrp's ``WinRS``
and pywinrm send them; output is kept up to the host's ``kmsfleet_max_output_bytes`` (``guard.OutputBuffer``).
Errors are raised as they come (``transport.winrm`` maps them and applies the retry policy).
"""

from __future__ import annotations

import base64
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence

import requests
from pypsrp.exceptions import WinRMError
from pypsrp.shell import WinRS
from pypsrp.wsman import NAMESPACES, OptionSet, WSManAction

from orchestrator.transport import guard, wmi
from orchestrator.transport.envelope import Body
from orchestrator.transport.errors import OperationTimeout, ProtocolError, TransportError, WSManFault
from orchestrator.transport.pypsrp_adapter import WSManClient, shell_selectors

RECEIVE_TIMED_OUT = 2150858793  # 0x80338029: no output within OperationTimeout, poll again
INVALID_SELECTORS = 2150858843  # 0x8033805B: unknown shell / command id (stale shell)
# 0x803381A6 ERROR_WSMAN_QUOTA_MAX_OPERATIONS: the shell has used up MaxConcurrentOperationsPerUser (15 on Windows 7,
# 1500 later); WinRS gives a command's operation back only when the shell is deleted (MS-WSMV Appendix B <118>)
QUOTA_MAX_OPERATIONS = 2150859174
MAX_RECEIVES = 100_000  # Receive answers of one command without its end: the host is never going to finish it
_RSP = NAMESPACES["rsp"]
_DONE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"
_TERMINATE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate"
# What the answers are searched for, in {namespace}name form (no prefix map to key on each call)
_COMMAND_ID = f"{{{_RSP}}}CommandResponse/{{{_RSP}}}CommandId"
_STREAMS = f"{{{_RSP}}}ReceiveResponse/{{{_RSP}}}Stream"
_STATE = f"{{{_RSP}}}ReceiveResponse/{{{_RSP}}}CommandState"
_EXIT_CODE = f"{{{_RSP}}}ExitCode"


def _options(name: str, value: str) -> OptionSet:
    options = OptionSet()
    options.add_option(name, value)
    return options


# Shared by every request (never changed after this): the options of Command and Receive, as pypsrp's WinRS sends them.
_COMMAND_OPTIONS = _options("WINRS_SKIP_CMD_SHELL", "False")
_KEEPALIVE = _options("WSMAN_CMDSHELL_OPTION_KEEPALIVE", "True")


# The bodies (MS-WSMV 3.1.4.11–3.1.4.16), each built from its values (``envelope.Body``: built once per shape with
# markers, then rendered from the cached template).
def _command_element(values: Sequence[str]) -> ET.Element:
    cmd = ET.Element(f"{{{_RSP}}}CommandLine")
    ET.SubElement(cmd, f"{{{_RSP}}}Command").text = values[0]
    for arg in values[1:]:
        ET.SubElement(cmd, f"{{{_RSP}}}Arguments").text = arg
    return cmd


def _send_element(values: Sequence[str]) -> ET.Element:
    send = ET.Element(f"{{{_RSP}}}Send")
    stream = ET.SubElement(send, f"{{{_RSP}}}Stream", Name="stdin", CommandId=values[0], End="True")
    stream.text = values[1]
    return send


def _receive_element(values: Sequence[str]) -> ET.Element:
    receive = ET.Element(f"{{{_RSP}}}Receive")
    ET.SubElement(receive, f"{{{_RSP}}}DesiredStream", CommandId=values[0]).text = "stdout stderr"
    return receive


def _signal_element(values: Sequence[str]) -> ET.Element:
    sig = ET.Element(f"{{{_RSP}}}Signal", CommandId=values[0])
    ET.SubElement(sig, f"{{{_RSP}}}Code").text = _TERMINATE
    return sig


class CommandShell:
    """The cmd shell of one host, opened on first use. ``client()`` gives the host's WSMan client, ``timeout()``
    the OperationTimeout of the next call (it raises once the host's budget is spent or the run stops)."""

    def __init__(
        self, host: str, client: Callable[[], WSManClient], timeout: Callable[[], int], max_output_bytes: int
    ) -> None:
        self.host = host
        self._client = client
        self._timeout = timeout
        self._max_output = max_output_bytes
        self.shell: WinRS | None = None

    def run(
        self, command: str, arguments: list[str], stdin: bytes | None, limit: float | None
    ) -> tuple[int, guard.OutputBuffer]:
        """Run one command (until the monotonic time ``limit``); a stale or used-up shell is replaced once.
        Safe for any command: Windows refused the Command, so it never started."""
        try:
            return self._run_once(command, arguments, stdin, limit)
        except WSManFault as fault:
            if fault.code != INVALID_SELECTORS and fault.hresult != QUOTA_MAX_OPERATIONS:
                raise
            if fault.hresult == QUOTA_MAX_OPERATIONS:
                self.delete()  # give the shell's operations back (what Ansible's winrm plugin does)
        # The shell went stale (idle timeout, host restarted WinRM) or ran out of operations: reopen once.
        self.shell = None
        return self._run_once(command, arguments, stdin, limit)

    def forget(self) -> None:
        """Drop the shell without deleting it (the connection is being reset): the host reaps it at its idle
        timeout."""
        self.shell = None

    def delete(self) -> None:
        """Best effort: delete the shell on the host (its operations and its shell count are freed)."""
        shell, self.shell = self.shell, None
        if shell is None:
            return
        try:
            self._timeout()
            shell.close()
        except Exception:
            pass

    # ------------------------------------------------------------------ one command

    def _run_once(
        self, command: str, arguments: list[str], stdin: bytes | None, limit: float | None
    ) -> tuple[int, guard.OutputBuffer]:
        command_id = self._start(command, arguments)
        if stdin is not None:
            self._call(WSManAction.SEND, Body(("send",), _send_element, (command_id, base64.b64encode(stdin).decode())))
        output = guard.OutputBuffer(self._max_output)
        for _ in range(MAX_RECEIVES):
            if limit is not None and time.monotonic() > limit:
                self._terminate(command_id)
                raise OperationTimeout(self.host, f"command {command!r} did not finish in time")
            rc = self._receive(command_id, output)
            if rc is not None:
                self._terminate(command_id)
                return rc, output
        raise ProtocolError(self.host, "command output never ended")

    def _start(self, command: str, arguments: list[str]) -> str:
        command_line = Body(("command", len(arguments)), _command_element, (command, *arguments))
        body = self._call(WSManAction.COMMAND, command_line, _COMMAND_OPTIONS)
        command_id = body.findtext(_COMMAND_ID)
        if not command_id:
            raise ProtocolError(self.host, "CommandResponse without a CommandId")
        return command_id

    def _receive(self, command_id: str, output: guard.OutputBuffer) -> int | None:
        """One Receive: its output into ``output``; the exit code once the command is done (-1 when we stopped
        it at the output cap), else None."""
        try:
            body = self._call(WSManAction.RECEIVE, Body(("receive",), _receive_element, (command_id,)), _KEEPALIVE)
        except WSManFault as fault:
            if fault.code == RECEIVE_TIMED_OUT:
                return None  # no output yet: poll again
            raise
        for s in body.iterfind(_STREAMS):
            if s.text:
                output.add(s.attrib.get("Name", ""), base64.b64decode(s.text))
        if output.truncated:
            return -1  # stopped by us: it never finished
        state = body.find(_STATE)
        if state is None or state.attrib.get("State") != _DONE:
            return None
        code = state.findtext(_EXIT_CODE)
        return int(code) if code not in (None, "") else 0

    def _terminate(self, command_id: str) -> None:
        try:
            self._call(WSManAction.SIGNAL, Body(("signal",), _signal_element, (command_id,)))
        except (TransportError, WinRMError, requests.exceptions.RequestException):
            pass

    # ------------------------------------------------------------------ the shell

    def _open(self) -> WinRS:
        if self.shell is None:
            shell = WinRS(self._client(), codepage=65001, no_profile=None)
            self._timeout()
            shell.open()
            self.shell = shell
        return self.shell

    def _call(self, action: str, body: Body, option_set: OptionSet | None = None) -> ET.Element:
        shell = self._open()
        envelope = self._client().invoke(
            action,
            shell.resource_uri,
            body,
            option_set=option_set,
            selector_set=shell_selectors(shell),
            timeout=self._timeout(),
        )
        found = envelope.find(wmi.BODY)
        return found if found is not None else ET.Element("Body")
