"""Controller-side inputs an attacker (or an accident) can make huge: a vault password file or program, and
secrets of awkward shapes (newline inside, regex metacharacters, digits only) echoed back by a PC."""

from __future__ import annotations

import base64
import stat
import time
import tracemalloc
from pathlib import Path

import pytest

from orchestrator import redact, vault
from orchestrator.errors import InputError

MiB = 1024 * 1024


def _peak_while(call: object) -> int:
    tracemalloc.start()
    try:
        assert callable(call)
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_huge_vault_password_file_is_not_read_whole(tmp_path: Path) -> None:
    big = tmp_path / "pw.txt"
    with big.open("wb") as fh:
        fh.write(b"first-line-password\n")
        fh.truncate(64 * MiB)  # sparse: no disk used
    peak = _peak_while(lambda: vault.secret_from_source(str(big)))
    assert peak < 4 * MiB, peak
    assert vault.secret_from_source(str(big)).password == b"first-line-password"


def test_a_vault_password_program_that_never_stops_printing_is_cut(tmp_path: Path) -> None:
    script = tmp_path / "pw.sh"
    script.write_text("#!/bin/sh\necho program-password\nexec cat /dev/zero\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    started = time.monotonic()
    holder: list[vault.VaultSecret] = []
    peak = _peak_while(lambda: holder.append(vault.secret_from_source(str(script))))
    assert time.monotonic() - started < 10
    assert peak < 4 * MiB, peak
    assert holder[0].password == b"program-password"


def test_a_vault_password_program_that_hangs_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vault, "PASSWORD_PROGRAM_SECONDS", 1.0)
    script = tmp_path / "pw.sh"
    script.write_text("#!/bin/sh\nexec sleep 30\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    started = time.monotonic()
    with pytest.raises(InputError, match="did not finish"):
        vault.secret_from_source(str(script))
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("password", ["P(a)+ss.*?[x]|^$", "12345678", "Zq7\\d{3}\\"])
def test_awkward_passwords_are_masked_in_every_echo(password: str) -> None:
    redact.register_secret(password)
    command = "$p = '" + password + "'; net use \\\\srv /user:x $p"
    echoes = [
        "x" + password + "y",
        repr(password),
        base64.b64encode(command.encode("utf-16-le")).decode(),  # a PowerShell -EncodedCommand
        base64.b64encode(("ab" + password).encode("utf-16-be")).decode(),
        ("z" + password).encode("utf-16-be").decode("latin-1"),
    ]
    for echo in echoes:
        assert redact.redact_text(echo) != echo, echo


def test_a_password_with_a_newline_is_masked_when_a_pc_echoes_it_with_crlf() -> None:
    password = "Line-One\nLine-Two"
    redact.register_secret(password)
    for echo in ("Line-One\r\nLine-Two", "Line-One\nLine-Two", "Line-One\\r\\nLine-Two"):
        assert "Line-One" not in redact.redact_text("said: " + echo + " ok"), echo


def test_a_clixml_stderr_of_a_million_empty_elements_is_kept_as_text_unparsed() -> None:
    """A hostile PC's stderr (up to the 16 MiB output cap) shaped as CLIXML: parsing a million ``<a/>`` would cost
    about 100 MiB; it is shown as received instead."""
    from orchestrator.transport import clixml

    text = "#< CLIXML\r\n<Objs>" + "<a/>" * 1_000_000 + "</Objs>"
    holder: list[str] = []
    peak = _peak_while(lambda: holder.append(clixml.decode(text)))
    assert holder[0] == text
    assert peak < 16 * MiB, peak
    error = (
        '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
        '<S S="Error">boom_x000D__x000A_</S></Objs>'
    )
    assert clixml.decode(error) == "boom\n"


@pytest.mark.parametrize("codeset", ["9" * 10_000, "\x00\xff garbage", "-1", "65001", "99999", "1e400", None, 2**80])
def test_a_hostile_codeset_falls_back_to_cp437_and_never_loses_a_line(codeset: object) -> None:
    """Win32_OperatingSystem.CodeSet from a hostile PC: huge, garbage, or a code page Python lacks."""
    from orchestrator.transport.codepages import DEFAULT_OEM, decode_console, oem_for_codeset

    started = time.monotonic()
    oem = oem_for_codeset(codeset)
    assert oem == DEFAULT_OEM
    text = decode_console(b"ok\n\xa4\xa4\xa4\xe5 line\n", lambda: oem)
    assert text.startswith("ok\n") and text.endswith(" line\n")
    assert time.monotonic() - started < 1
