"""w32tm's texts are localized; a failed resync is recognised by the HRESULT it prints, in any language."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from orchestrator.modules.licensing.model import Change
from orchestrator.modules.licensing.time_sync import _run_fix
from orchestrator.transport.winrm import CommandResult


class Conn:
    def __init__(self, stdout: str, rc: int = 0) -> None:
        self.result = CommandResult(rc, stdout, "", 1)

    def run_command(self, command: str, arguments: list[str] | None = None, **_: Any) -> CommandResult:
        return self.result


@pytest.mark.parametrize(
    ("stdout", "ok", "code"),
    [
        ("Sending resync command to local computer\r\nThe command completed successfully.\r\n", True, None),
        ("正在傳送重新同步命令到本機電腦\r\n命令已經成功完成。\r\n", True, None),
        (
            "Sending resync command to local computer\r\n"
            "The following error occurred: The computer did not resync because no time data was available. "
            "(0x800705B4)\r\n",
            False,
            0x800705B4,
        ),
        (
            "正在傳送重新同步命令到本機電腦\r\n發生下列錯誤: 因為沒有可用的時間資料，電腦未重新同步。 (0x800705B4)\r\n",
            False,
            0x800705B4,
        ),
    ],
)
def test_a_resync_failure_is_found_by_its_code_in_any_language(stdout: str, ok: bool, code: int | None) -> None:
    ctx: Any = SimpleNamespace(conn=Conn(stdout))
    done, got, last = _run_fix(ctx, Change("resync_clock", "time", "clock"))
    assert (done, got) == (ok, code)
    assert last == stdout.strip().splitlines()[-1]
