"""PowerShell's ``Set-Location`` (aliases ``cd``, ``chdir``, ``sl``) for the simulated ``powershell.exe``.

Windows PowerShell 5.1 (Microsoft Learn, "Set-Location"): parameters ``-Path`` (position 0), ``-LiteralPath``
(aliases ``-PSPath``, ``-LP``), ``-PassThru`` and ``-StackName``; a parameter name may be shortened to any
unambiguous prefix (about_Parameters), and the common parameter ``-ErrorAction``/``-EA`` applies. A relative
path is resolved against the current location. A folder that does not exist is a non-terminating error
(``ItemNotFoundException``, FullyQualifiedErrorId ``PathNotFound,Microsoft.PowerShell.Commands.SetLocationCommand``)
that leaves the location unchanged and ``$?`` false; with ``-ErrorAction Stop`` it ends the script. Native programs
PowerShell starts afterwards run in the new location.

Deviation: ``-Path`` wildcards (``*``, ``?``, ``[...]``) are not expanded; the text is taken literally.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.lab.commands.base import CRLF, Ctx, norm_path
from orchestrator.lab.commands.cmd import full_folder, known_dirs

ALIASES = ("set-location", "cd", "chdir", "sl")
_PARAMETERS = {  # canonical name of each parameter name or alias
    "path": "path",
    "literalpath": "literalpath",
    "pspath": "literalpath",
    "lp": "literalpath",
    "passthru": "passthru",
    "stackname": "stackname",
    "erroraction": "erroraction",
    "ea": "erroraction",
}
_SWITCHES = {"passthru"}
_NOT_FOUND = (
    "Set-Location : Cannot find path '{path}' because it does not exist.{crlf}"
    "At line:1 char:1{crlf}+ {stmt}{crlf}+ {marks}{crlf}"
    "    + CategoryInfo          : ObjectNotFound: ({path}:String) [Set-Location], ItemNotFoundException{crlf}"
    "    + FullyQualifiedErrorId : PathNotFound,Microsoft.PowerShell.Commands.SetLocationCommand{crlf} {crlf}"
)


@dataclass(frozen=True, slots=True)
class LocationResult:
    stdout: str = ""
    stderr: str = ""
    ok: bool = True
    stop: bool = False  # a terminating error: the script ends here


def _parameter(word: str) -> str | None:
    """Canonical parameter for ``-Name`` (exact, alias, or unambiguous prefix); None if unknown/ambiguous."""
    name = word[1:].rstrip(":").lower()
    if name in _PARAMETERS:
        return _PARAMETERS[name]
    found = {canon for full, canon in _PARAMETERS.items() if full.startswith(name)} if name else set()
    return found.pop() if len(found) == 1 else None


def _error(stmt: str, message: str) -> LocationResult:
    marks = "~" * max(1, len(stmt))
    text = f"Set-Location : {message}{CRLF}At line:1 char:1{CRLF}+ {stmt}{CRLF}+ {marks}{CRLF}"
    return LocationResult(stderr=text, ok=False)


def set_location(
    ctx: Ctx, words: list[tuple[str, bool]], stmt: str, error_action_preference: str = ""
) -> LocationResult:
    """Run ``Set-Location`` with its argument words (text, quoted) and change ``ctx.cwd``.
    ``error_action_preference`` is the script's ``$ErrorActionPreference`` (``Stop`` makes the error terminate)."""
    values: dict[str, str] = {}
    positional: list[str] = []
    i = 0
    while i < len(words):
        text, quoted = words[i]
        if text.startswith("-") and not quoted and len(text) > 1:
            canon = _parameter(text)
            if canon is None:
                return _error(stmt, f"A parameter cannot be found that matches parameter name '{text[1:]}'.")
            if canon in _SWITCHES:
                values[canon] = "true"
                i += 1
                continue
            if i + 1 >= len(words):
                return _error(stmt, f"Missing an argument for parameter '{text[1:]}'.")
            values[canon] = words[i + 1][0]
            i += 2
            continue
        positional.append(text)
        i += 1
    if positional and "path" not in values and "literalpath" not in values:
        values["path"] = positional.pop(0)
    if positional:
        return _error(stmt, f"A positional parameter cannot be found that accepts argument '{positional[0]}'.")
    if "path" in values and "literalpath" in values:
        return _error(stmt, "Parameter set cannot be resolved using the specified named parameters.")
    target = values.get("literalpath", values.get("path"))
    if target is None:  # Windows PowerShell 5.1: no path keeps the location (7.x goes home)
        target = ctx.cwd
    full = full_folder(ctx.cwd, target.strip())
    if norm_path(full) not in known_dirs(ctx):
        text = _NOT_FOUND.format(path=full, stmt=stmt, marks="~" * max(1, len(stmt)), crlf=CRLF)
        stop = values.get("erroraction", error_action_preference).lower() == "stop"
        return LocationResult(stderr=text, ok=False, stop=stop)
    ctx.cwd = full
    out = f"{CRLF}Path{CRLF}----{CRLF}{full}{CRLF}{CRLF}{CRLF}" if "passthru" in values else ""
    return LocationResult(stdout=out)
