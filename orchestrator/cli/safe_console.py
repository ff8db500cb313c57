"""Terminal output that a PC cannot take over: every character a PC sent (stdout, fault text, names) reaches the
operator's terminal without its control sequences.

``strip_controls`` removes ANSI/VT escape sequences (CSI ``ESC [``, OSC ``ESC ]`` … ``BEL``/``ST``, DCS/APC/PM/SOS
strings, two-byte ``ESC x``), the 8-bit C1 controls (U+0080–U+009F: C1 ``CSI`` U+009B acts like ``ESC [`` on some
terminals) and the C0 controls but tab and newline (BEL, backspace, carriage return, form feed …), plus DEL. A
sequence's payload goes with it (an OSC window title is dropped, not shown). Reports keep the data as it came
(HTML-escaped there); this is for terminals only.

``SafeConsole`` is a rich ``Console`` that applies it to the text of every segment it writes — whatever command,
table or progress line printed it — while rich's own styling (added from styles, not from text) is unaffected.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rich.console import Console
from rich.segment import Segment

# ESC [ params intermediates final | ESC ] … (BEL | ESC \ | end) | ESC P/X/^/_ … ST | ESC + one char
# | C1 CSI/OSC/DCS… 8-bit forms | any other C0 (not \t \n), DEL, C1.
_SEQUENCE = re.compile(
    r"""
    \x1b\[[0-?]*[ -/]*[@-~]?
  | \x1b\][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?
  | \x1b[PX^_][^\x1b\x9c]*(?:\x1b\\|\x9c)?
  | \x1b[\x20-\x7e]?
  | \x9b[0-?]*[ -/]*[@-~]?
  | [\x9d\x90\x98\x9e\x9f][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?
  | [\x00-\x08\x0b-\x1f\x7f-\x9f]
    """,
    re.VERBOSE,
)


def strip_controls(text: str) -> str:
    """``text`` without terminal control sequences and control characters (tab and newline stay)."""
    return _SEQUENCE.sub("", text) if _SEQUENCE.search(text) else text


class SafeConsole(Console):
    """A rich console whose written text never carries a control sequence from the data it prints."""

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        clean = (seg if seg.control else Segment(strip_controls(seg.text), seg.style) for seg in buffer)
        return super()._render_buffer(clean)
