"""The client's decoding rule for console output: UTF-8 per line, else the PC's OEM code page."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.transport.codepages import DEFAULT_OEM, decode_console, oem_for_codeset


class Asked:
    def __init__(self, answer: int) -> None:
        self.answer = answer
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return self.answer


def test_utf8_output_never_asks_for_the_code_page() -> None:
    oem = Asked(950)
    assert decode_console("授權狀態: 已取得授權\r\n".encode(), oem) == "授權狀態: 已取得授權\r\n"
    assert oem.calls == 0


def test_cp950_lines_are_read_in_the_pcs_oem_code_page_once() -> None:
    oem = Asked(950)
    data = b"TW1\r\n" + "金鑰管理服務電腦名稱已成功設定為 127.0.0.2:1688。\r\n產品已成功啟用。\r\n".encode("cp950")
    assert (
        decode_console(data, oem) == "TW1\r\n金鑰管理服務電腦名稱已成功設定為 127.0.0.2:1688。\r\n產品已成功啟用。\r\n"
    )
    assert oem.calls == 1


def test_utf8_and_cp950_lines_mixed_in_one_output() -> None:
    data = "Windows IP 設定\r\n".encode() + "授權狀態: 未授權\r\n".encode("cp950")
    assert decode_console(data, Asked(950)) == "Windows IP 設定\r\n授權狀態: 未授權\r\n"


def test_a_code_page_python_lacks_or_bytes_it_cannot_read_do_not_lose_the_line() -> None:
    assert decode_console(b"caf\x82 ok", Asked(12345)) == "caf\u00e9 ok"  # unknown code page: cp437
    assert decode_console(b"ok \xff\xfe", Asked(950)).startswith("ok ")


def test_oem_code_page_from_win32_operatingsystem_codeset() -> None:
    assert oem_for_codeset("950") == 950
    assert oem_for_codeset("1252") == 437
    assert oem_for_codeset(1251) == 866
    assert oem_for_codeset(None) == DEFAULT_OEM
    assert oem_for_codeset("junk") == DEFAULT_OEM


@given(
    st.lists(
        st.text(alphabet="授權狀態已取得產品啟用成功錯誤台北標準時間 0123456789abcXYZ:。", max_size=30), max_size=6
    )
)
def test_any_cp950_text_reads_back_exactly(lines: list[str]) -> None:
    text = "\r\n".join(lines)
    assert decode_console(text.encode("cp950"), Asked(950)) == text
    assert decode_console(text.encode("utf-8"), Asked(950)) == text
