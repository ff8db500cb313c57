"""PowerShell's CLIXML error stream, as plain text.

Under ``powershell -EncodedCommand`` (no console attached), Windows PowerShell writes its error, warning and
progress records to stderr as serialized objects::

    #< CLIXML
    <Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">
      <S S="Error">Write-Error : boom_x000D__x000A_</S><Obj S="progress" RefId="0">…</Obj></Objs>

People want the error text, not the XML: ``decode`` keeps the ``<S S="Error">`` strings (and warnings, marked
as such), unescapes PowerShell's ``_xHHHH_`` character escapes, and drops progress records. Anything that does
not parse is returned as it came, so no output is ever lost. XML from hosts is parsed with defusedxml.
"""

from __future__ import annotations

import re

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

MARKER = "#< CLIXML"
_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_STREAMS = {"Error": "", "Warning": "WARNING: "}


#: Tags in one CLIXML document worth parsing: PowerShell writes a few dozen per error record, so this is thousands
#: of records; a stderr of a million empty elements (4 MiB, under the output cap) would take ~100 MiB parsed.
MAX_TAGS = 200_000


def _unescape(text: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def decode(text: str) -> str:
    """``text`` with every CLIXML document replaced by the error and warning lines it carries."""
    if MARKER not in text:
        return text
    head, *documents = text.split(MARKER)
    parts = [head] if head.strip() else []
    for document in documents:
        if document.count("<") > MAX_TAGS:
            return text  # parsing would cost ~100 bytes a tag: a hostile PC's stderr is shown as it came
        try:
            root = SafeET.fromstring(document.strip())
        except (SafeET.ParseError, DefusedXmlException, ValueError):
            return text  # not what PowerShell writes: keep everything as received
        lines = [
            _STREAMS[node.get("S", "")] + _unescape(node.text or "")
            for node in root.iter()
            if node.tag.rpartition("}")[2] == "S" and node.get("S") in _STREAMS
        ]
        parts.append("".join(lines))
    result = "".join(parts)
    return result.rstrip("\r\n") + "\n" if result.strip() else ""
