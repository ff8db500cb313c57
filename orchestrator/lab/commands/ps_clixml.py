"""Windows PowerShell's error stream as CLIXML, as it writes it under ``-EncodedCommand``.

PowerShell's console host writes its error stream as serialized objects when it is not interactive, its stderr is
redirected (always so under WinRS) and the command line was given with ``-EncodedCommand`` (``ErrorFormat`` in
``CommandLineParameterParser.cs`` of the PowerShell repository, the "minishell interop mode"). pywinrm's
recording of ``Write-Error "Error"`` run by ``run_ps`` on Windows (tests/data/recordings/pywinrm/
get_ps_output_response.xml) shows the shape: ``#< CLIXML`` and a line break, then one ``<Objs>`` document with
one ``<S S="Error">`` string per line of the error text, each ending in ``_x000D__x000A_`` (CR LF escaped).

Deviation: Windows also cuts lines longer than the host's width (80 columns: a ``+ CategoryInfo`` line is split
after 78 characters with a blank and continued on a line indented by three blanks); the lab keeps each line whole.
"""

from __future__ import annotations

import re

MARKER = "#< CLIXML\r\n"
_OBJS = '<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
# PowerShell's XmlConvert-style escapes: control characters and a literal "_x" that would read as an escape
_NEEDS_ESCAPE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]|_(?=x[0-9A-Fa-f]{4}_)")


def _escape(text: str) -> str:
    text = _NEEDS_ESCAPE.sub(lambda m: f"_x{ord(m.group(0)):04X}_", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def errors_as_clixml(text: str) -> str:
    """The error text ``text`` (CRLF-separated lines) as PowerShell serializes it to stderr."""
    if not text:
        return ""
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    body = "".join(f'<S S="Error">{_escape(line)}_x000D__x000A_</S>' for line in lines)
    return f"{MARKER}{_OBJS}{body}</Objs>"
