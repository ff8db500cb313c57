"""PowerShell CLIXML on stderr becomes the error text people expect (as Windows PowerShell 5.1 writes it)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.transport import clixml
from orchestrator.transport.winrm import _decode

# What Windows PowerShell 5.1 writes to stderr for `Write-Error boom; Write-Warning careful` under -EncodedCommand,
# with a progress record first (module loading), as seen from WinRM clients.
REAL = (
    "#< CLIXML\r\n"
    '<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
    '<Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject</T>'
    '<T>System.Object</T></TN><MS><I64 N="SourceId">1</I64><PR N="Record"><AV>Preparing modules for first use.'
    "</AV><AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC><T>Completed</T><SR>-1</SR><SD> </SD></PR></MS></Obj>"
    '<S S="Error">Write-Error : boom_x000D__x000A_</S>'
    '<S S="Error">    + CategoryInfo          : NotSpecified: (:) [Write-Error], WriteErrorException_x000D__x000A_</S>'
    '<S S="Warning">careful_x000D__x000A_</S>'
    "</Objs>"
)


def test_errors_and_warnings_are_kept_progress_is_dropped() -> None:
    text = clixml.decode(REAL)
    assert text == (
        "Write-Error : boom\r\n"
        "    + CategoryInfo          : NotSpecified: (:) [Write-Error], WriteErrorException\r\n"
        "WARNING: careful\n"
    )
    assert "<Objs" not in text and "Preparing modules" not in text


def test_the_transport_decodes_stderr_bytes_and_leaves_plain_output_alone() -> None:
    assert _decode(REAL.encode()).startswith("Write-Error : boom")
    assert _decode(b"Name : pc01\r\n") == "Name : pc01\r\n"
    assert _decode("中文".encode()) == "中文"


def test_progress_only_means_no_error_text() -> None:
    only_progress = REAL.split('<S S="Error">', maxsplit=1)[0] + "</Objs>"
    assert clixml.decode(only_progress) == ""


def test_several_documents_and_text_before_them() -> None:
    doc = '<Objs xmlns="http://schemas.microsoft.com/powershell/2004/04"><S S="Error">{}_x000A_</S></Objs>'
    assert clixml.decode("first\n#< CLIXML\n" + doc.format("a") + "#< CLIXML\n" + doc.format("b")) == "first\na\nb\n"


def test_what_does_not_parse_is_returned_as_received() -> None:
    broken = '#< CLIXML\r\n<Objs><S S="Error">half'
    assert clixml.decode(broken) == broken
    bomb = '#< CLIXML\n<!DOCTYPE x [<!ENTITY a "aaaa">]><Objs><S S="Error">&a;</S></Objs>'
    assert clixml.decode(bomb) == bomb  # entities refused by defusedxml: nothing expanded, nothing lost


@given(st.text())
def test_never_raises_and_never_loses_text_without_the_marker(text: str) -> None:
    out = clixml.decode(text)
    if clixml.MARKER not in text:
        assert out == text
