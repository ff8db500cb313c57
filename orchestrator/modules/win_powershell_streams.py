"""win_powershell's return values from what ``powershell.exe -EncodedCommand`` writes, without Ansible's wrapper
(ansible.windows' module runs the script in a runspace of its own and reads each stream; kmsfleet sends the
script as Ansible's ``raw`` does and reads stdout and stderr).

What separates the streams, and the evidence for it:

* **host output vs the output stream.** Under WinRS, ``Write-Host`` ends its line with LF alone
  (``Write-Host "output 1"`` → ``output 1\\n``), while what the output stream formats ends with CRLF
  (``(pwd).Path`` → ``C:\\Windows\\r\\n``): pypsrp's recordings of real Windows
  (``tests/data/shared/wsman/recorded-winrs/test_winrs_send.yml``, ``test_winrs_no_cmd_shell.yml``,
  ``test_winrs_extra_opts.yml``). Lines ending in LF alone (and a last line without an ending, as
  ``Write-Host -NoNewline`` leaves it) are ``host_out``; CRLF lines are ``output``, one string per non-blank line.
* **warning, verbose, debug.** The console host prefixes them ``WARNING: ``, ``VERBOSE: ``, ``DEBUG: `` (the
  English texts; a localized PowerShell's are not recognised); Windows PowerShell 5.1 under ``-EncodedCommand``
  puts them in the CLIXML of stderr instead (pywinrm issue #169), which kmsfleet's transport turns into
  ``WARNING: …`` lines. Lines with these prefixes, on either stream, go to those lists.
* **error records.** PowerShell's error view writes each record as its message, the position (``At line:1
  char:1`` and ``+ …`` lines) and ``+ CategoryInfo`` / ``+ FullyQualifiedErrorId`` lines; ``CategoryInfo`` is
  ``ErrorCategoryInfo.GetMessage``'s ``Category: (TargetName:TargetType) [Activity], Reason`` (Microsoft:
  "ErrorCategoryInfo Class"). Each record becomes one ``error`` entry with Ansible's keys; what the text does
  not carry (exception type, script stack trace, target object) is null.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

#: Microsoft: "ErrorCategory Enum" (System.Management.Automation)
ERROR_CATEGORIES = (
    "NotSpecified",
    "OpenError",
    "CloseError",
    "DeviceError",
    "DeadlockDetected",
    "InvalidArgument",
    "InvalidData",
    "InvalidOperation",
    "InvalidResult",
    "InvalidType",
    "MetadataError",
    "NotImplemented",
    "NotInstalled",
    "ObjectNotFound",
    "OperationStopped",
    "OperationTimeout",
    "SyntaxError",
    "ParserError",
    "PermissionDenied",
    "ResourceBusy",
    "ResourceExists",
    "ResourceUnavailable",
    "ReadError",
    "WriteError",
    "FromStdErr",
    "SecurityError",
    "ProtocolError",
    "ConnectionError",
    "AuthenticationError",
    "LimitsExceeded",
    "QuotaExceeded",
    "NotEnabled",
)
PREFIXES = {"WARNING: ": "warning", "VERBOSE: ": "verbose", "DEBUG: ": "debug"}
_CATEGORY = re.compile(
    r"^\s*\+ CategoryInfo\s*: (?P<category>\w+): \((?P<target_name>.*):(?P<target_type>[^:)]*)\) "
    r"\[(?P<activity>[^\]]*)\], (?P<reason>.*)$"
)
_ERROR_ID = re.compile(r"^\s*\+ FullyQualifiedErrorId\s*: (?P<id>.*)$")
_POSITION = re.compile(r"^(At line:\d+ char:\d+|At .+:\d+ char:\d+|\+ )")


@dataclass
class Streams:
    output: list[str] = field(default_factory=list)
    host_out: str = ""
    host_err: str = ""
    warning: list[str] = field(default_factory=list)
    verbose: list[str] = field(default_factory=list)
    debug: list[str] = field(default_factory=list)
    error: list[dict[str, Any]] = field(default_factory=list)

    def as_data(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "host_out": self.host_out,
            "host_err": self.host_err,
            "error": self.error,
            "warning": self.warning,
            "verbose": self.verbose,
            "debug": self.debug,
            "information": [],
        }


def _prefixed(line: str, streams: Streams) -> bool:
    for prefix, name in PREFIXES.items():
        if line.startswith(prefix):
            getattr(streams, name).append(line[len(prefix) :])
            return True
    return False


def split_stdout(stdout: str, streams: Streams) -> None:
    """CRLF lines → ``output``; LF-only lines and an unterminated tail → ``host_out``; prefixed lines → lists."""
    host: list[str] = []
    for line in stdout.splitlines(keepends=True):
        text = line.rstrip("\r\n")
        if _prefixed(text, streams):
            continue
        if line.endswith("\r\n"):
            if text.strip():
                streams.output.append(text)
        else:
            host.append(line)
    streams.host_out = "".join(host)


def _record(lines: list[str]) -> dict[str, Any]:
    text = "\n".join(lines)
    message = "\n".join(ln for ln in lines if not _POSITION.match(ln) and not ln.startswith("    + ")).strip()
    category: dict[str, Any] = {"category": "NotSpecified", "category_id": 0, "activity": "", "reason": ""}
    category |= {"target_name": "", "target_type": ""}
    error_id = None
    for line in lines:
        if found := _CATEGORY.match(line):
            category |= found.groupdict()
            name = category["category"]
            category["category_id"] = ERROR_CATEGORIES.index(name) if name in ERROR_CATEGORIES else None
        elif found := _ERROR_ID.match(line):
            error_id = found.group("id").strip()
    return {
        "output": text,
        "message": message,
        "error_details": None,
        "exception": {"message": message, "type": None, "help_link": None, "source": None, "hresult": None},
        "target_object": None,
        "category_info": category,
        "fully_qualified_error_id": error_id,
        "script_stack_trace": None,
        "pipeline_iteration_info": [],
    }


def split_stderr(stderr: str, streams: Streams) -> None:
    """Error records (message, position, ``+ Key : value`` lines) → ``error``; prefixed lines → their lists."""
    streams.host_err = stderr
    current: list[str] = []
    details = False  # the current record has reached its position or "+ Key" lines
    for raw in stderr.splitlines():
        line = raw.rstrip()
        if _prefixed(line, streams):
            continue
        if not line.strip():
            if current:
                streams.error.append(_record(current))
            current, details = [], False
            continue
        is_detail = bool(_POSITION.match(line)) or line.startswith("    + ")
        if current and details and not is_detail:  # a new message after a complete record
            streams.error.append(_record(current))
            current, details = [], False
        current.append(line)
        details = details or is_detail
    if current:
        streams.error.append(_record(current))


def parse_streams(stdout: str, stderr: str) -> Streams:
    streams = Streams()
    split_stdout(stdout, streams)
    split_stderr(stderr, streams)
    return streams


__all__ = ["ERROR_CATEGORIES", "Streams", "parse_streams", "split_stderr", "split_stdout"]
