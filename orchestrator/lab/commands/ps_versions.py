"""Which Windows PowerShell a simulated PC has, and how PowerShell 2.0 answers what only 3.0+ understands.

Windows 7 ships Windows PowerShell 2.0 (Windows Management Framework 2.0 is part of the OS); Windows 10/11 and
Server 2016/2019 ship 5.1 (Microsoft, "Windows PowerShell System Requirements"). On a Windows 7 PC:

- cmdlets added later are unknown: ``Get-CimInstance``, ``ConvertTo-Json``/``ConvertFrom-Json``,
  ``Invoke-WebRequest``/``Invoke-RestMethod`` (3.0), ``Test-NetConnection``, ``Get-NetAdapter``,
  ``Resolve-DnsName`` (4.0 / Windows 8.1 modules) … (Microsoft's "What's New" pages per version; issues such as
  dotnet-script#175 "Invoke-WebRequest is not recognized" on Windows 7). PowerShell 2.0 prints the error with the
  ``<<<<`` position marker and without the "Name : " prefix of 3.0+, as in Icinga/icinga2-powershell-module#56
  (Server 2008 R2, PowerShell 2.0)::

      The term 'X' is not recognized as the name of a cmdlet, function, script file, or operable program. …
      At line:1 char:<column after the name>
      + X <<<< <rest of the line>
          + CategoryInfo          : ObjectNotFound: (X:String) [], CommandNotFoundException
          + FullyQualifiedErrorId : CommandNotFoundException

- 3.0 syntax fails: ``[ordered]`` → TypeNotFound ("Unable to find type [ordered]: make sure that the assembly
  containing this type is loaded."), ``.ForEach(…)``/``.Where(…)`` → MethodNotFound, ``-in``/``-notin`` → a
  parser error (UnexpectedToken) that stops the whole script; ``$PSItem`` is simply an unset variable ($null).
  The exact wording of the last three is [unconfirmed].
- ``$PSVersionTable`` reports 2.0 (CLR 2.0.50727, WSManStackVersion 2.0) or 5.1 (CLR 4.0.30319, WSMan 3.0).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from orchestrator.lab.commands.base import CRLF

if TYPE_CHECKING:
    from orchestrator.lab.machine import Machine

# cmdlets a PowerShell 2.0 host does not have (lower case); the version that brought each
NEWER_CMDLETS: dict[str, str] = {
    "get-ciminstance": "3.0",
    "invoke-cimmethod": "3.0",
    "new-cimsession": "3.0",
    "get-cimclass": "3.0",
    "convertto-json": "3.0",
    "convertfrom-json": "3.0",
    "invoke-webrequest": "3.0",
    "invoke-restmethod": "3.0",
    "iwr": "3.0",
    "irm": "3.0",
    "get-scheduledtask": "3.0",
    "test-netconnection": "4.0",
    "tnc": "4.0",
    "get-netadapter": "3.0",
    "get-netipaddress": "3.0",
    "get-netipconfiguration": "3.0",
    "resolve-dnsname": "3.0",
    "get-filehash": "4.0",
    "expand-archive": "5.0",
    "compress-archive": "5.0",
    "get-computerinfo": "5.1",
}


def ps_major(machine: Machine) -> int:
    return 2 if machine.os.is_win7 else 5


def is_ps2(machine: Machine) -> bool:
    return ps_major(machine) == 2


def not_recognized_v2(name: str, stmt: str) -> str:
    """PowerShell 2.0's CommandNotFoundException text for a command at the start of ``stmt``."""
    start = stmt.find(name)
    start = max(start, 0)
    end = start + len(name)
    return (
        f"The term '{name}' is not recognized as the name of a cmdlet, function, script file, or operable program. "
        f"Check the spelling of the name, or if a path was included, verify that the path is correct and try again."
        f"{CRLF}At line:1 char:{end + 1}{CRLF}+ {stmt[:end]} <<<< {stmt[end:]}{CRLF}"
        f"    + CategoryInfo          : ObjectNotFound: ({name}:String) [], CommandNotFoundException{CRLF}"
        f"    + FullyQualifiedErrorId : CommandNotFoundException{CRLF} {CRLF}"
    )


def _error_v2(message: str, stmt: str, end: int, category: str, target: str, error_id: str) -> str:
    return (
        f"{message}{CRLF}At line:1 char:{end + 1}{CRLF}+ {stmt[:end]} <<<< {stmt[end:]}{CRLF}"
        f"    + CategoryInfo          : {category}: ({target}:String) [], {_exception(category)}{CRLF}"
        f"    + FullyQualifiedErrorId : {error_id}{CRLF} {CRLF}"
    )


def _exception(category: str) -> str:
    return "ParentContainsErrorRecordException" if category == "ParserError" else "RuntimeException"


_ORDERED = re.compile(r"(?i)\[ordered\]")
_METHOD = re.compile(r"(?i)\.(ForEach|Where)\s*\(")
_IN_OP = re.compile(r"(?i)(?<![\w-])-(notin|in)\b")


def parse_error_v2(script: str) -> str | None:
    """A PowerShell 2.0 parser error for 3.0-only syntax anywhere in the script (the script does not run)."""
    for line in script.splitlines():
        m = _IN_OP.search(line)
        if m:
            token = m.group(0)
            return _error_v2(
                f"Unexpected token '{token}' in expression or statement.",
                line.strip(),
                line.strip().find(token) + len(token),
                "ParserError",
                token,
                "UnexpectedToken",
            )
    return None


def runtime_error_v2(stmt: str) -> str | None:
    """PowerShell 2.0's runtime error for a statement using 3.0-only syntax, or None."""
    m = _ORDERED.search(stmt)
    if m:
        return _error_v2(
            "Unable to find type [ordered]: make sure that the assembly containing this type is loaded.",
            stmt,
            m.end(),
            "InvalidOperation",
            "ordered",
            "TypeNotFound",
        )
    m = _METHOD.search(stmt)
    if m:
        method = m.group(1)  # echoed as the script spells it
        return _error_v2(
            f"Method invocation failed because [System.Object[]] doesn't contain a method named '{method}'.",
            stmt,
            m.end() - 1,
            "InvalidOperation",
            method,
            "MethodNotFound",
        )
    return None


# ---- $PSVersionTable ---------------------------------------------------------------------------------------


def _table_v2(machine: Machine) -> list[tuple[str, str]]:
    return [
        ("CLRVersion", "2.0.50727.5485"),
        ("BuildVersion", "6.1.7601.17514"),
        ("PSVersion", "2.0"),
        ("WSManStackVersion", "2.0"),
        ("PSCompatibleVersions", "{1.0, 2.0}"),
        ("SerializationVersion", "1.1.0.1"),
        ("PSRemotingProtocolVersion", "2.1"),
    ]


def _table_v5(machine: Machine) -> list[tuple[str, str]]:
    build = machine.os.build
    return [
        ("PSVersion", f"5.1.{build}.1"),
        ("PSEdition", "Desktop"),
        ("PSCompatibleVersions", "{1.0, 2.0, 3.0, 4.0...}"),
        ("BuildVersion", f"10.0.{build}.1"),
        ("CLRVersion", "4.0.30319.42000"),
        ("WSManStackVersion", "3.0"),
        ("PSRemotingProtocolVersion", "2.3"),
        ("SerializationVersion", "1.1.0.1"),
    ]


def _version_parts(machine: Machine) -> tuple[int, int, int, int]:
    if is_ps2(machine):
        return 2, 0, -1, -1
    return 5, 1, int(machine.os.build), 1


def psversiontable(machine: Machine, expression: str) -> str | None:
    """The console output of ``$PSVersionTable[.PSVersion[.Major|.Minor|.Build|.ToString()]]``, or None when
    the expression is something else."""
    low = expression.strip().lower()
    if not low.startswith("$psversiontable"):
        return None
    rest = low[len("$psversiontable") :]
    table = _table_v2(machine) if is_ps2(machine) else _table_v5(machine)
    if rest == "":
        lines = ["", f"{'Name':<30} Value", f"{'----':<30} -----"]
        lines += [f"{name:<30} {value}" for name, value in table]
        return CRLF.join(lines) + CRLF + CRLF + CRLF
    parts = _version_parts(machine)
    if rest == ".psversion":
        header = "Major  Minor  Build  Revision"
        rule = "-----  -----  -----  --------"
        row = f"{parts[0]:<6} {parts[1]:<6} {parts[2]:<6} {parts[3]}"
        return CRLF.join(["", header, rule, row]) + CRLF + CRLF + CRLF
    fields = {".psversion.major": 0, ".psversion.minor": 1, ".psversion.build": 2, ".psversion.revision": 3}
    if rest in fields:
        return f"{parts[fields[rest]]}{CRLF}"
    if rest in (".psversion.tostring()", ".psversion.tostring( )"):
        return f"{_version_text(parts)}{CRLF}"
    return None


def psversion_value(machine: Machine, expression: str) -> int | str | None:
    """The value of a ``$PSVersionTable.PSVersion.Major``-like expression inside a condition."""
    text = psversiontable(machine, expression)
    if text is None:
        return None
    value = text.strip()
    return int(value) if re.fullmatch(r"-?\d+", value) else value


def _version_text(parts: tuple[int, int, int, int]) -> str:
    return ".".join(str(p) for p in parts if p >= 0)
