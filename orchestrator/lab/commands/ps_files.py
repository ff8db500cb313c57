"""The .NET file calls kmsfleet's file modules send to PowerShell (all valid on PowerShell 2.0 / .NET 2.0+),
acting on the PC's written files (``lab.files``)::

    [void][IO.Directory]::CreateDirectory('C:\\School\\conf')
    $f = [IO.File]::Open('C:\\School\\conf\\a.txt', 'Create', 'Write')       # or 'Append', 'OpenOrCreate'
    $b = [Convert]::FromBase64String('aGVsbG8=')
    $f.Write($b, 0, $b.Length)
    $f.Close()
    [IO.File]::SetLastWriteTime('C:\\School\\conf\\a.txt', [DateTime]::Now)
    Remove-Item -LiteralPath 'C:\\School\\conf' -Recurse -Force
    [BitConverter]::ToString($h.ComputeHash(($s = [IO.File]::OpenRead('C:\\…')))).Replace('-', '').ToLower()

.NET semantics (docs of Directory.CreateDirectory, File.Open with FileMode Create/Append/OpenOrCreate,
FileStream.Write, File.SetLastWriteTime, SHA1CryptoServiceProvider.ComputeHash, BitConverter.ToString): a
missing parent folder fails File.Open with "Could not find a part of the path"; CreateDirectory creates every
missing level; ComputeHash of a stream hashes its whole contents. Errors are written as PowerShell writes a
.NET method exception (``Exception calling "Open" with "3" argument(s): "…"``) and make the script fail.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import TYPE_CHECKING

from orchestrator.lab import files
from orchestrator.lab.commands.base import CRLF

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from orchestrator.lab.commands.powershell import PsState

    # A handler answers True (done), False (not a file call after all) or None (not this call: try the next one).
    _Handler = Callable[[PsState, re.Match[str], datetime], bool | None]

_Q = r"'((?:[^']|'')*)'"
_MKDIR = re.compile(
    rf"(?i)^(?:\[void\])?\s*\[(?:System\.)?IO\.Directory\]::CreateDirectory\(\s*{_Q}\s*\)\s*(?:\|\s*Out-Null)?$"
)
_OPEN = re.compile(
    rf"(?i)^\$(\w+)\s*=\s*\[(?:System\.)?IO\.File\]::Open\(\s*{_Q}\s*,\s*'(Create|Append|OpenOrCreate)'\s*,\s*'Write'\s*\)$"
)
_B64 = re.compile(r"(?i)^\$(\w+)\s*=\s*\[(?:System\.)?Convert\]::FromBase64String\(\s*'([A-Za-z0-9+/=\s]*)'\s*\)$")
_WRITE = re.compile(r"(?i)^\$(\w+)\.Write\(\s*\$(\w+)\s*,\s*0\s*,\s*\$(\w+)\.Length\s*\)$")
_CLOSE = re.compile(r"(?i)^\$(\w+)\.(?:Close|Dispose)\(\s*\)$")
_TOUCH = re.compile(rf"(?i)^\[(?:System\.)?IO\.File\]::SetLastWriteTime\(\s*{_Q}\s*,\s*\[DateTime\]::Now\s*\)$")
_REMOVE = re.compile(rf"(?i)^Remove-Item\s+-LiteralPath\s+{_Q}\s+-Recurse\s+-Force$")
_HASHER = re.compile(r"(?i)^\$(\w+)\s*=\s*New-Object\s+(?:System\.)?Security\.Cryptography\.SHA1CryptoServiceProvider$")
_SHA1 = re.compile(
    rf"(?i)^\[BitConverter\]::ToString\(\s*\$(\w+)\.ComputeHash\(\s*\(\s*\$(\w+)\s*=\s*\[(?:System\.)?IO\.File\]::"
    rf"OpenRead\(\s*{_Q}\s*\)\s*\)\s*\)\s*\)\.Replace\(\s*'-'\s*,\s*''\s*\)\.ToLower\(\)$"
)


def _unquote(text: str) -> str:
    return text.replace("''", "'")


def _fail(state: PsState, method: str, args: int, message: str) -> None:
    state.err += (
        f'Exception calling "{method}" with "{args}" argument(s): "{message}"{CRLF}'
        f"    + CategoryInfo          : NotSpecified: (:) [], MethodInvocationException{CRLF}"
        f"    + FullyQualifiedErrorId : DotNetMethodException{CRLF}"
    )
    state.ok = False


async def run_statement(state: PsState, stmt: str) -> bool:
    """Run ``stmt`` when it is one of the file calls above; False when it is something else."""
    text = stmt.strip()
    now = state.ctx.machine.world.clock.now()
    for pattern, handler in _CALLS:
        match = pattern.match(text)
        if match is None:
            continue
        done = handler(state, match, now)
        if done is not None:
            return done
    return False


def _mkdir(state: PsState, match: re.Match[str], now: datetime) -> bool | None:
    error = files.make_dirs(state.ctx.machine, _unquote(match.group(1)), now)
    if error:
        _fail(state, "CreateDirectory", 1, error)
    return True


def _open(state: PsState, match: re.Match[str], now: datetime) -> bool | None:
    m = state.ctx.machine
    var, path, mode = match.group(1), _unquote(match.group(2)), match.group(3).lower()
    if mode == "openorcreate" and files.lookup(m, path) == "file":
        state.objects[var] = ("file", path)
        return True
    error = files.write(m, path, b"", append=mode == "append", now=now)
    if error:
        _fail(state, "Open", 3, error)
    else:
        state.objects[var] = ("file", path)
    return True


def _from_base64(state: PsState, match: re.Match[str], now: datetime) -> bool | None:
    try:
        state.objects[match.group(1)] = ("bytes", base64.b64decode("".join(match.group(2).split()), validate=True))
    except (binascii.Error, ValueError):
        _fail(state, "FromBase64String", 1, "Invalid length for a Base-64 char array.")
    return True


def _write(state: PsState, match: re.Match[str], now: datetime) -> bool | None:
    handle, data = state.objects.get(match.group(1)), state.objects.get(match.group(2))
    if not (isinstance(handle, tuple) and handle[0] == "file" and isinstance(data, tuple) and data[0] == "bytes"):
        return False
    error = files.write(state.ctx.machine, str(handle[1]), bytes(data[1]), append=True, now=now)
    if error:
        _fail(state, "Write", 3, error)
    return True


def _close(state: PsState, match: re.Match[str], now: datetime) -> bool | None:
    return True if isinstance(state.objects.get(match.group(1)), tuple) else None


def _touch(state: PsState, match: re.Match[str], now: datetime) -> bool | None:
    path = _unquote(match.group(1))
    if files.lookup(state.ctx.machine, path) != "file":
        _fail(state, "SetLastWriteTime", 2, f"Could not find file '{path}'.")
    else:
        files.touch(state.ctx.machine, path, now)
    return True


def _remove(state: PsState, match: re.Match[str], now: datetime) -> bool | None:
    path = _unquote(match.group(1))
    if files.lookup(state.ctx.machine, path) is None:
        state.err += f"Remove-Item : Cannot find path '{path}' because it does not exist.{CRLF}"
        state.ok = False
    else:
        files.remove(state.ctx.machine, path)
    return True


def _hasher(state: PsState, match: re.Match[str], now: datetime) -> bool | None:
    state.objects[match.group(1)] = ("sha1", b"")
    return True


def _sha1(state: PsState, match: re.Match[str], now: datetime) -> bool | None:
    path = _unquote(match.group(3))
    data = files.read(state.ctx.machine, path)
    if data is None:
        _fail(state, "OpenRead", 1, f"Could not find file '{path}'.")
    else:
        state.objects[match.group(2)] = ("file", path)
        state.out += hashlib.sha1(data, usedforsecurity=False).hexdigest() + CRLF
    return True


_CALLS: tuple[tuple[re.Pattern[str], _Handler], ...] = (
    (_MKDIR, _mkdir),
    (_OPEN, _open),
    (_B64, _from_base64),
    (_WRITE, _write),
    (_CLOSE, _close),
    (_TOUCH, _touch),
    (_REMOVE, _remove),
    (_HASHER, _hasher),
    (_SHA1, _sha1),
)
