"""WinRS (``.../windows/shell/cmd``) as Windows runs it (the recorded exchanges of docs/evidence.md):

- Create → ``x:ResourceCreated`` with the ShellId selector, plus ``rsp:Shell`` (Owner, ClientIP, Environment,
  WorkingDirectory, IdleTimeOut …). Quotas from the PC's ``ServiceConfig`` (docs/lab-winrm-limits.md):
  MaxShellsPerUser (30 on WinRM 3.0, 5 on WinRM 2.0) → the QuotaLimit fault on Create; the shell's IdleTimeOut
  (the client's value, at most the service's IdleTimeout: 7200 s on 3.0, 180 s on 2.0; Microsoft "Quotas") →
  afterwards the shell is gone and any request naming it gets the unknown-ShellId fault;
  MaxConcurrentOperationsPerUser (1500 on 3.0, 15 on 2.0) → the operations fault on Command. WinRS keeps a
  command's operation until its shell is deleted, also after Signal terminate (MS-WSMV Appendix B <118>;
  diyan/pywinrm#124, ansible/ansible#83656), so a reused shell runs out: the open shell counts as one operation
  and each Command as one more [whether the shell itself counts is unconfirmed].
- Command → ``rsp:CommandId`` (the client's CommandId when it sent one). Arguments are passed to the machine
  as sent (pypsrp: one element per argument; pywinrm: one space-joined element).
- Receive long-polls until output is ready or OperationTimeout passes (→ fault 2150858793). Output is split over
  Stream elements and, when it does not fit the client's MaxEnvelopeSize, over several Receives (State Running
  until the last one). ``CommandState/Done`` always carries ``rsp:ExitCode``.
- Send (stdin, ``End``), Signal (ctrl_c / ctrl_break / terminate, case-insensitive), Delete. A command that
  reads stdin whole (``powershell -``, ``findstr`` without a file) starts at ``End="true"``; an interactive
  ``cmd`` starts at once and gets each Send as it arrives, and a Receive returns what it has written so far with
  State Running (pywinrm's recording: Windows' interactive cmd runs ``echo … && exit`` sent with
  ``End="false"`` and answers Done, exit code 0).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from dataclasses import dataclass, field

from orchestrator.lab.provider import (
    CommandOutcome,
    CommandPipe,
    PreparedCommand,
    ShellContext,
    SimulatedHost,
    WmiError,
)
from orchestrator.lab.wsman import faults, ns
from orchestrator.lab.wsman.config import WINRM3, ServiceConfig
from orchestrator.lab.wsman.ns import q
from orchestrator.lab.wsman.request import WSManRequest, parse_duration
from orchestrator.lab.wsman.xmltext import attr, esc, new_id

MIN_IDLE_TIMEOUT_S = 1.0  # Microsoft "Quotas": IdleTimeout minimum 1000 ms
MAX_COMMANDS_PER_SHELL = 1000
MAX_STDIN_BYTES = 16 * 1024 * 1024
CTRL_C_EXIT = -1073741510  # STATUS_CONTROL_C_EXIT as cmd.exe reports it
_CHUNK = 16384  # raw bytes per rsp:Stream element at most
_STREAM_OVERHEAD = 160  # bytes of markup around one rsp:Stream element
_RECEIVE_OVERHEAD = 1400  # envelope, header and CommandState

_SHELL = q(ns.RSP, "Shell")
_INPUT_STREAMS = q(ns.RSP, "InputStreams")
_OUTPUT_STREAMS = q(ns.RSP, "OutputStreams")
_ENVIRONMENT = q(ns.RSP, "Environment")
_VARIABLE = q(ns.RSP, "Variable")
_WORKING_DIR = q(ns.RSP, "WorkingDirectory")
_IDLE = q(ns.RSP, "IdleTimeOut")
_COMMAND_LINE = q(ns.RSP, "CommandLine")
_COMMAND = q(ns.RSP, "Command")
_ARGUMENTS = q(ns.RSP, "Arguments")
_RECEIVE = q(ns.RSP, "Receive")
_DESIRED = q(ns.RSP, "DesiredStream")
_SEND = q(ns.RSP, "Send")
_STREAM = q(ns.RSP, "Stream")
_SIGNAL = q(ns.RSP, "Signal")
_CODE = q(ns.RSP, "Code")


@dataclass(eq=False)
class Command:
    id: str
    prepared: PreparedCommand
    stdin: bytearray = field(default_factory=bytearray)
    stdin_done: bool = False
    task: asyncio.Task[None] | None = None
    outcome: CommandOutcome | None = None
    fault: faults.WSManFault | None = None
    out_pos: int = 0
    err_pos: int = 0
    delivered: bool = False  # Done has been sent
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    pipe: CommandPipe | None = None  # an interactive command's live stdin (PreparedCommand.interactive)
    stdin_total: int = 0  # bytes sent to the pipe
    live_out: bytearray = field(default_factory=bytearray)  # what an interactive command has written so far
    live_err: bytearray = field(default_factory=bytearray)

    def written(self, stdout: bytes, stderr: bytes) -> None:
        self.live_out.extend(stdout)
        self.live_err.extend(stderr)
        self.changed.set()

    def unread_output(self, streams: list[str]) -> bool:
        return ("stdout" in streams and len(self.live_out) > self.out_pos) or (
            "stderr" in streams and len(self.live_err) > self.err_pos
        )


@dataclass(eq=False)
class Shell:
    id: str
    owner: str
    client_ip: str
    context: ShellContext
    idle_timeout: float
    input_streams: str
    output_streams: str
    created: float
    last_activity: float
    commands: dict[str, Command] = field(default_factory=dict)
    operations: int = 1  # the shell, plus one per Command ever started in it (never given back)


@dataclass(frozen=True, slots=True)
class CallerInfo:
    user: str  # as authenticated, e.g. "administrator" or "PC01\\administrator"
    client_ip: str
    endpoint: str  # e.g. http://127.0.1.5:5985/wsman


class ShellService:
    """The WinRS shells of one simulated PC."""

    def __init__(self, host: SimulatedHost, machine_name: str, config: ServiceConfig = WINRM3) -> None:
        self.host = host
        self.machine_name = machine_name
        self.config = config
        self.shells: dict[str, Shell] = {}

    # ---- lifecycle ----------------------------------------------------------------------------------
    def reset(self) -> None:
        """Power off: every shell and running command disappears."""
        for shell in list(self.shells.values()):
            self._drop_shell(shell)
        self.shells.clear()

    def expire_idle(self, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        expired = [s for s in self.shells.values() if now - s.last_activity > s.idle_timeout and not _busy(s)]
        for shell in expired:
            self._drop_shell(shell)
            del self.shells[shell.id]
        return len(expired)

    def _operations(self, owner: str) -> int:
        """The user's operations in progress: every open shell with the commands it has started."""
        return sum(s.operations for s in self.shells.values() if s.owner.lower() == owner.lower())

    def _drop_shell(self, shell: Shell) -> None:
        for cmd in shell.commands.values():
            _cancel(cmd)
        shell.commands.clear()

    def _shell(self, req: WSManRequest) -> Shell:
        shell_id = req.selector("ShellId") or ""
        shell = self.shells.get(shell_id.upper())
        if shell is None:
            raise faults.invalid_shell_id(shell_id)
        now = time.monotonic()
        if now - shell.last_activity > shell.idle_timeout and not _busy(shell):
            self._drop_shell(shell)
            del self.shells[shell.id]
            raise faults.invalid_shell_id(shell_id)
        shell.last_activity = now
        return shell

    # ---- Create ---------------------------------------------------------------------------------------
    def create(self, req: WSManRequest, caller: CallerInfo) -> str:
        body = req.body
        if body is None or body.tag != _SHELL:
            raise faults.schema_validation("The Create request for a shell needs an rsp:Shell body. ")
        self.expire_idle()
        owner = caller.user
        mine = sum(1 for s in self.shells.values() if s.owner.lower() == owner.lower())
        cfg = self.config
        if mine >= cfg.max_shells_per_user:
            raise faults.shell_quota(cfg.max_shells_per_user, cfg.winrm_version)
        if self._operations(owner) + 1 > cfg.max_concurrent_operations_per_user:
            raise faults.operations_quota(cfg.max_concurrent_operations_per_user, cfg.winrm_version)
        env: dict[str, str] = {}
        env_elem = body.find(_ENVIRONMENT)
        if env_elem is not None:
            for var in env_elem.iter(_VARIABLE):
                name = var.get("Name")
                if name is not None:
                    env[name] = var.text or ""
        workdir = (body.findtext(_WORKING_DIR) or "").strip() or None
        idle = cfg.idle_timeout_s
        idle_text = body.findtext(_IDLE)
        if idle_text:
            try:
                idle = min(max(parse_duration(idle_text), MIN_IDLE_TIMEOUT_S), cfg.idle_timeout_s)
            except ValueError:
                raise faults.invalid_header(f"The IdleTimeOut value is not valid: {idle_text}.") from None
        # Without WINRS_CODEPAGE a shell uses the PC's OEM code page (437 on en-US, 950 on zh-TW Windows), as a
        # console does (docs/lab-zh-tw.md); a host model without a locale answers 437.
        codepage = int(getattr(self.host, "oem_codepage", 437))
        codepage_text = req.option("WINRS_CODEPAGE")
        if codepage_text:
            try:
                codepage = int(codepage_text)
            except ValueError:
                raise faults.invalid_header(f"WINRS_CODEPAGE is not a number: {codepage_text}.") from None
        context = ShellContext(
            user=_bare_user(owner),
            environment=env,
            working_directory=workdir,
            codepage=codepage,
            no_profile=req.option_bool("WINRS_NOPROFILE"),
        )
        shell_id = (body.get("ShellId") or new_id()).upper()
        if shell_id in self.shells:
            raise faults.schema_validation(f"A shell with ShellId {shell_id} already exists. ")
        now = time.monotonic()
        inputs = (body.findtext(_INPUT_STREAMS) or "stdin").strip()
        outputs = (body.findtext(_OUTPUT_STREAMS) or "stdout stderr").strip()
        shell = Shell(shell_id, owner, caller.client_ip, context, idle, inputs, outputs, now, now)
        self.shells[shell_id] = shell
        created = (
            f"<x:ResourceCreated><a:Address>{esc(caller.endpoint)}</a:Address><a:ReferenceParameters>"
            f"<w:ResourceURI>{esc(req.resource_uri)}</w:ResourceURI><w:SelectorSet>"
            f'<w:Selector Name="ShellId">{shell_id}</w:Selector></w:SelectorSet></a:ReferenceParameters>'
            "</x:ResourceCreated>"
        )
        return created + self.shell_xml(shell, req.resource_uri)

    def shell_xml(self, shell: Shell, resource_uri: str = ns.URI_SHELL_CMD) -> str:
        now = time.monotonic()
        env = ""
        if shell.context.environment:
            env = (
                "<rsp:Environment>"
                + "".join(
                    f'<rsp:Variable Name="{attr(k)}">{esc(v)}</rsp:Variable>'
                    for k, v in shell.context.environment.items()
                )
                + "</rsp:Environment>"
            )
        workdir = (
            f"<rsp:WorkingDirectory>{esc(shell.context.working_directory)}</rsp:WorkingDirectory>"
            if shell.context.working_directory
            else ""
        )
        return (
            f'<rsp:Shell xmlns:rsp="{ns.RSP}"><rsp:ShellId>{shell.id}</rsp:ShellId>'
            f"<rsp:ResourceUri>{esc(resource_uri)}</rsp:ResourceUri><rsp:Owner>{esc(shell.owner)}</rsp:Owner>"
            f"<rsp:ClientIP>{esc(shell.client_ip)}</rsp:ClientIP>{env}{workdir}"
            f"<rsp:IdleTimeOut>PT{shell.idle_timeout:.3f}S</rsp:IdleTimeOut>"
            f"<rsp:InputStreams>{esc(shell.input_streams)}</rsp:InputStreams>"
            f"<rsp:OutputStreams>{esc(shell.output_streams)}</rsp:OutputStreams>"
            f"<rsp:ShellRunTime>{_xs_duration(now - shell.created)}</rsp:ShellRunTime>"
            f"<rsp:ShellInactivity>{_xs_duration(now - shell.last_activity)}</rsp:ShellInactivity></rsp:Shell>"
        )

    def get(self, req: WSManRequest) -> str:
        """WS-Transfer Get on ``.../windows/shell`` with a ShellId selector (pypsrp ``is_alive``)."""
        shell = self._shell(req)
        return self.shell_xml(shell)

    def enumerate_xml(self) -> list[str]:
        self.expire_idle()
        return [self.shell_xml(s) for s in self.shells.values()]

    def delete(self, req: WSManRequest) -> str:
        shell = self._shell(req)
        self._drop_shell(shell)
        del self.shells[shell.id]
        return ""

    # ---- Command ----------------------------------------------------------------------------------------
    def command(self, req: WSManRequest) -> str:
        shell = self._shell(req)
        body = req.body
        if body is None or body.tag != _COMMAND_LINE:
            raise faults.schema_validation("The Command request needs an rsp:CommandLine body. ")
        program = (body.findtext(_COMMAND) or "").strip()
        arguments = [a.text or "" for a in body.iter(_ARGUMENTS)]
        if req.option_bool("WINRS_SKIP_CMD_SHELL") and program and not any(c in program for c in "\\/:"):
            # CreateProcess without cmd.exe does not search PATH (test_winrs_no_cmd_shell).
            raise faults.file_not_found()
        limit = self.config.max_concurrent_operations_per_user
        if self._operations(shell.owner) + 1 > limit:
            raise faults.operations_quota(limit, self.config.winrm_version)
        if len(shell.commands) >= MAX_COMMANDS_PER_SHELL:
            self._forget_finished(shell)
        command_id = (body.get("CommandId") or new_id()).upper()
        if command_id in shell.commands:
            raise faults.schema_validation(f"A command with CommandId {command_id} already exists. ")
        try:
            prepared = self.host.prepare(program, arguments, shell.context)
        except WmiError as err:
            raise faults.shell_error(err.hresult, err.message) from None
        cmd = Command(command_id, prepared)
        shell.commands[command_id] = cmd
        shell.operations += 1
        if prepared.interactive:
            cmd.pipe = CommandPipe(cmd.written)
            cmd.task = asyncio.get_running_loop().create_task(self._run(shell, cmd))
        elif not prepared.needs_stdin:
            self._start(shell, cmd)
        return f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId></rsp:CommandResponse>"

    def _start(self, shell: Shell, cmd: Command) -> None:
        cmd.stdin_done = True
        cmd.task = asyncio.get_running_loop().create_task(self._run(shell, cmd))

    async def _run(self, shell: Shell, cmd: Command) -> None:
        started = time.monotonic()
        try:
            outcome = await self.host.run(cmd.prepared, bytes(cmd.stdin), shell.context, cmd.pipe)
            remaining = outcome.duration_s - (time.monotonic() - started)
            if remaining > 0:
                await asyncio.sleep(remaining)
            if cmd.pipe is not None:  # what it wrote live comes first
                outcome = CommandOutcome(
                    bytes(cmd.live_out) + outcome.stdout,
                    bytes(cmd.live_err) + outcome.stderr,
                    outcome.exit_code,
                    outcome.duration_s,
                )
            cmd.outcome = outcome
        except asyncio.CancelledError:
            raise
        except WmiError as err:
            cmd.fault = faults.shell_error(err.hresult, err.message)
        except Exception:  # a bug in the machine must not take the lab down: report it like Windows would
            cmd.fault = faults.shell_error(faults.E_FAIL, "The shell plugin failed to run the command. ")
        finally:
            cmd.stdin = bytearray()
            cmd.changed.set()

    def _forget_finished(self, shell: Shell) -> None:
        for cid in [c.id for c in shell.commands.values() if c.delivered]:
            del shell.commands[cid]

    # ---- Send -------------------------------------------------------------------------------------------
    def send(self, req: WSManRequest) -> str:
        shell = self._shell(req)
        body = req.body
        if body is None or body.tag != _SEND:
            raise faults.schema_validation("The Send request needs an rsp:Send body. ")
        for stream in body.iter(_STREAM):
            cmd = shell.commands.get((stream.get("CommandId") or "").upper())
            if cmd is None:
                raise faults.invalid_command_id()
            if cmd.stdin_done:
                continue
            try:
                data = base64.b64decode(stream.text or "", validate=False)
            except ValueError:
                raise faults.schema_validation("The stdin stream is not valid base64. ") from None
            if len(cmd.stdin) + cmd.stdin_total + len(data) > MAX_STDIN_BYTES:
                raise faults.schema_validation("Too much stdin for one command. ")
            end = (stream.get("End") or "").strip().lower() == "true"
            if cmd.pipe is not None:
                cmd.stdin_total += len(data)
                cmd.pipe.feed(data)
                if end:
                    cmd.stdin_done = True
                    cmd.pipe.close()
                continue
            cmd.stdin.extend(data)
            if end:
                self._start(shell, cmd)
        return "<rsp:SendResponse/>"

    # ---- Signal -----------------------------------------------------------------------------------------
    def signal(self, req: WSManRequest) -> str:
        shell = self._shell(req)
        body = req.body
        if body is None or body.tag != _SIGNAL:
            raise faults.schema_validation("The Signal request needs an rsp:Signal body. ")
        command_id = (body.get("CommandId") or "").upper()
        code = (body.findtext(_CODE) or "").strip().lower()
        if not command_id:
            return "<rsp:SignalResponse/>"
        cmd = shell.commands.get(command_id)
        if cmd is None:
            raise faults.invalid_command_id()
        finished = cmd.outcome is not None or cmd.fault is not None
        if code.endswith("/terminate") or finished:
            _cancel(cmd)
            del shell.commands[command_id]
        elif code.endswith("/ctrl_c") or code.endswith("/ctrl_break"):
            _cancel(cmd)
            cmd.outcome = CommandOutcome(stdout=b"", stderr=b"", exit_code=CTRL_C_EXIT)
            cmd.changed.set()
        else:
            raise faults.schema_validation(f"The signal code {code} is not supported. ")
        return "<rsp:SignalResponse/>"

    # ---- Receive ----------------------------------------------------------------------------------------
    async def receive(self, req: WSManRequest, timeout: float, budget: int) -> str:
        shell = self._shell(req)
        body = req.body
        if body is None or body.tag != _RECEIVE:
            raise faults.schema_validation("The Receive request needs an rsp:Receive body. ")
        desired = body.find(_DESIRED)
        command_id = (desired.get("CommandId") or "").upper() if desired is not None else ""
        if not command_id:
            raise faults.missing_command_id()
        streams = (desired.text or "stdout stderr").split() if desired is not None else ["stdout", "stderr"]
        cmd = shell.commands.get(command_id)
        if cmd is None or cmd.delivered:
            raise faults.invalid_command_id()
        deadline = time.monotonic() + timeout
        while cmd.outcome is None and cmd.fault is None and not cmd.unread_output(streams):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise faults.timed_out()
            cmd.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(cmd.changed.wait(), remaining)
            if shell.commands.get(command_id) is not cmd:
                raise faults.invalid_command_id()  # terminated or the shell was deleted meanwhile
        shell.last_activity = time.monotonic()
        if cmd.fault is not None:
            fault = cmd.fault
            shell.commands.pop(command_id, None)
            raise fault
        if cmd.outcome is None:  # an interactive command still running: what it has written so far
            partial = CommandOutcome(bytes(cmd.live_out), bytes(cmd.live_err))
            return _receive_xml(cmd, partial, streams, budget, running=True)
        return _receive_xml(cmd, cmd.outcome, streams, budget)


def _receive_xml(cmd: Command, outcome: CommandOutcome, streams: list[str], budget: int, running: bool = False) -> str:
    room = budget - _RECEIVE_OVERHEAD
    cid = cmd.id
    parts: list[str] = []
    complete = True
    for name in streams:
        if name == "stdout":
            data, pos = outcome.stdout, cmd.out_pos
        elif name == "stderr":
            data, pos = outcome.stderr, cmd.err_pos
        else:
            continue
        while pos < len(data):
            fit = ((room - _STREAM_OVERHEAD) // 4) * 3
            if fit < 3:
                complete = False
                break
            take = min(len(data) - pos, _CHUNK, fit)
            chunk = base64.b64encode(data[pos : pos + take]).decode("ascii")
            parts.append(f'<rsp:Stream Name="{name}" CommandId="{cid}">{chunk}</rsp:Stream>')
            room -= len(chunk) + _STREAM_OVERHEAD
            pos += take
        if name == "stdout":
            cmd.out_pos = pos
        else:
            cmd.err_pos = pos
        if pos < len(data):
            complete = False
    if not complete or running:
        if not parts:
            raise faults.encoding_limit(budget)
        state = f'<rsp:CommandState CommandId="{cid}" State="{ns.COMMAND_STATE_RUNNING}"/>'
        return f"<rsp:ReceiveResponse>{''.join(parts)}{state}</rsp:ReceiveResponse>"
    for name in streams:
        if name in ("stdout", "stderr"):
            parts.append(f'<rsp:Stream Name="{name}" CommandId="{cid}" End="true"></rsp:Stream>')
    cmd.delivered = True
    state = (
        f'<rsp:CommandState CommandId="{cid}" State="{ns.COMMAND_STATE_DONE}">'
        f"<rsp:ExitCode>{outcome.exit_code}</rsp:ExitCode></rsp:CommandState>"
    )
    return f"<rsp:ReceiveResponse>{''.join(parts)}{state}</rsp:ReceiveResponse>"


def _cancel(cmd: Command) -> None:
    if cmd.task is not None and not cmd.task.done():
        cmd.task.cancel()
    cmd.changed.set()


def _busy(shell: Shell) -> bool:
    """A command is at work (one blocked on stdin is not: its shell can still go idle)."""
    return any(
        c.task is not None and not c.task.done() and not (c.pipe is not None and c.pipe.waiting)
        for c in shell.commands.values()
    )


def _bare_user(user: str) -> str:
    return user.rsplit("\\", 1)[-1]


def _xs_duration(seconds: float) -> str:
    total = max(0, int(seconds))
    days, rem = divmod(total, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    return f"P{days}DT{hours}H{minutes}M{secs}S"
