"""zh-TW school PCs in the lab: the spec's ``locale`` field, the WMI language facts, the tools' Chinese texts and
the console encoding (cscript writes cp950 whatever WINRS_CODEPAGE says; other programs honour it)."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from typing import Any

import pytest

from orchestrator.errors import InputError
from orchestrator.lab.addresses import Claim
from orchestrator.lab.commands.base import as_code_page, encode_output
from orchestrator.lab.locales import all_locales, locale_for
from orchestrator.lab.machine import Machine, build_machine
from orchestrator.lab.profiles import classroom, mixed
from orchestrator.lab.provider import CommandOutcome, ShellContext
from orchestrator.lab.runner import LabThread
from orchestrator.lab.spec import load_spec_text, parse_spec, resolve
from orchestrator.lab.world import LabWorld
from orchestrator.transport.connection import ConnectionSpec
from orchestrator.transport.winrm import WinRMConnection

SLMGR = "cscript //nologo C:\\Windows\\System32\\slmgr.vbs"
PASSWORD = "Lab-Passw0rd!"


def machines(block: Claim, **defaults: Any) -> dict[str, Machine]:
    data = {
        "room": "r",
        "subnet": f"{block.prefix}.1",
        "hosts": [{"name": "tw", "locale": "zh-TW"}, {"name": "en"}],
        "defaults": defaults,
    }
    world = LabWorld(resolve(parse_spec(data)))
    return {cfg.name: build_machine(cfg, world) for cfg in world.resolved.hosts}


def raw(m: Machine, line: str, codepage: int = 65001) -> CommandOutcome:
    async def go() -> CommandOutcome:
        shell = ShellContext(user=m.config.user, codepage=codepage)
        return await m.run(m.prepare(line, [], shell), b"", shell)

    return asyncio.run(go())


# ---------------------------------------------------------------------------------------------------- spec


def test_the_spec_takes_a_locale_per_host_and_names_a_bad_one_with_its_line() -> None:
    spec = load_spec_text(
        "room: r\nsubnet: 127.0.1\ndefaults: {locale: zh_tw}\nhosts:\n  - name: a\n  - name: b\n    locale: en-US\n"
    )
    got = {h.name: h.locale for h in resolve(spec).hosts}
    assert got == {"a": "zh-TW", "b": "en-US"}
    assert resolve(load_spec_text("room: r\nsubnet: 127.0.1\nhosts: [{name: a}]\n")).hosts[0].locale == "en-US"
    with pytest.raises(InputError) as err:
        load_spec_text("room: r\nsubnet: 127.0.1\nhosts:\n  - name: a\n    locale: fr-FR\n", "spec.yml")
    text = str(err.value)
    assert "spec.yml:5" in text and "hosts[0].locale" in text and "zh-TW" in text


def test_every_locale_text_keeps_the_english_placeholders() -> None:
    for loc in all_locales().values():
        for english, own in loc.texts.items():
            assert own.count("{") == english.count("{"), (loc.name, english)
    assert locale_for("en-US").texts == {}  # English is the key itself


def test_vbscript_dates_follow_the_locale() -> None:
    moment = datetime(2025, 5, 24, 15, 14, 7)
    assert locale_for("en-US").vb_date(moment) == "5/24/2025 3:14:07 PM"
    assert locale_for("zh-TW").vb_date(moment) == "2025/5/24 下午 03:14:07"
    assert locale_for("zh-TW").vb_date(moment.replace(hour=9)) == "2025/5/24 上午 09:14:07"


def test_the_school_profiles_are_mostly_zh_tw_with_a_few_en_us() -> None:
    for spec in (classroom(40, 0), mixed(40, 0, seed=3)):
        locales = [h.locale for h in resolve(spec).hosts]
        assert locales.count("en-US") == 4 and locales.count("zh-TW") == 36


# ----------------------------------------------------------------------------------------------------- WMI


def test_wmi_shows_the_zh_tw_language_facts(lab_block: Claim) -> None:
    pcs = machines(lab_block)
    os_tw = pcs["tw"].wql("SELECT * FROM Win32_OperatingSystem")[0]
    values = {p.name: p.value for p in os_tw.properties}
    assert values["Caption"] == "Microsoft Windows 10 教育版"
    assert (values["Locale"], values["CodeSet"], values["OSLanguage"], values["CountryCode"]) == (
        "0404",
        "950",
        1028,
        "886",
    )
    assert values["MUILanguages"] == ("zh-TW",)
    tz = {p.name: p.value for p in pcs["tw"].wql("SELECT * FROM Win32_TimeZone")[0].properties}
    assert (tz["Caption"], tz["StandardName"], tz["Bias"]) == ("(UTC+08:00) 台北", "台北標準時間", 480)
    en = {p.name: p.value for p in pcs["en"].wql("SELECT * FROM Win32_OperatingSystem")[0].properties}
    assert (en["Caption"], en["Locale"], en["CodeSet"], en["OSLanguage"]) == (
        "Microsoft Windows 10 Education",
        "0409",
        "1252",
        1033,
    )
    # licensing values are the same words on every language (Name, Description, channel): only texts move
    names = {
        pc: sorted(p.value for r in pcs[pc].wql("SELECT Name FROM SoftwareLicensingProduct") for p in r.properties)
        for pc in ("tw", "en")
    }
    assert names["tw"] == names["en"]


# ------------------------------------------------------------------------------------------- texts, encoding


def _without_clock(text: str) -> str:
    """The text with clock times and dates masked."""
    return re.sub(r"\d{1,4}[:/]\d{1,2}(?:[:/]\d{1,4})?", "<clock>", text)


def test_cscript_writes_cp950_whatever_winrs_codepage_says(lab_block: Claim) -> None:
    pcs = machines(lab_block)
    out = raw(pcs["tw"], f"{SLMGR} /dlv", codepage=65001)
    with pytest.raises(UnicodeDecodeError):
        out.stdout.decode("utf-8")
    text = out.stdout.decode("cp950")
    assert "授權狀態: 初始寬限期" in text and "軟體授權服務版本: " in text
    assert "描述: Windows(R) Operating System, VOLUME_KMSCLIENT channel" in text  # the licence's words stay
    assert "-03-1028-" in text  # the extended PID carries the zh-TW LANGID
    # under the console's own cp950 the bytes are the same (the clock times and dates /dlv prints aside: the two
    # runs may fall in different seconds)
    again = raw(pcs["tw"], f"{SLMGR} /dlv", codepage=950).stdout
    assert _without_clock(again.decode("cp950")) == _without_clock(text)
    # an en-US PC's cscript writes its OEM cp437: plain ASCII here, readable as UTF-8 too
    assert "License Status: Initial grace period" in raw(pcs["en"], f"{SLMGR} /dlv").stdout.decode("utf-8")


def test_other_programs_honour_winrs_codepage_and_speak_chinese_only_where_it_can_show_it(lab_block: Claim) -> None:
    pcs = machines(lab_block)
    big5 = raw(pcs["tw"], "whoami /groups", codepage=950).stdout.decode("cp950")
    assert "群組資訊" in big5 and "知名群組" in big5 and "S-1-16-12288" in big5  # names and SIDs stay
    # under UTF-8 (kmsfleet's WINRS_CODEPAGE) a zh-TW PC's console tools fall back to English, in UTF-8
    utf8 = raw(pcs["tw"], "whoami /groups", codepage=65001).stdout.decode("utf-8")
    assert "GROUP INFORMATION" in utf8 and "S-1-16-12288" in utf8
    missing = raw(pcs["tw"], "kmsfleet-nothing", codepage=950)
    assert missing.stderr.decode("cp950") == "'kmsfleet-nothing' 不是內部或外部命令、可執行的程式或批次檔。\r\n"
    assert missing.exit_code == 1
    english = raw(pcs["tw"], "kmsfleet-nothing", codepage=65001).stderr.decode("utf-8")
    assert english.startswith("'kmsfleet-nothing' is not recognized as an internal or external command")
    ipconfig = raw(pcs["tw"], "ipconfig", codepage=950).stdout.decode("cp950").splitlines()
    assert ipconfig[1] == "Windows IP 設定" and "   子網路遮罩 . . . . . . . . . . . .: 255.255.255.0" in ipconfig
    # one command line, two encodings, as on Windows: ipconfig in UTF-8 (English), cscript in cp950 (Chinese)
    line = raw(pcs["tw"], f"ipconfig & {SLMGR} /skms 127.0.0.2:1688", codepage=65001).stdout
    assert line.split(b"\r\n")[1] == b"Windows IP Configuration"
    assert "金鑰管理服務電腦名稱已成功設定為 127.0.0.2:1688。".encode("cp950") in line
    with pytest.raises(UnicodeDecodeError):
        line.decode("utf-8")


def test_zh_tw_tool_texts(lab_block: Claim) -> None:
    pcs = machines(lab_block, admin=False)
    tw = pcs["tw"]
    resync = raw(tw, "w32tm /resync", codepage=950)
    assert resync.stdout.decode("cp950").splitlines() == [
        "正在傳送重新同步命令到本機電腦",
        "發生下列錯誤: 存取被拒。 (0x80070005)",
    ]
    assert resync.exit_code == 0x80070005
    assert "Access is denied. (0x80070005)" in raw(tw, "w32tm /resync", codepage=65001).stdout.decode("utf-8")
    ato = raw(tw, f"{SLMGR} /ato")  # slmgr.vbs speaks the PC's language whatever the console's code page
    lines = ato.stdout.decode("cp950").splitlines()
    assert lines[0].startswith("正在啟用 Windows(R), Education edition (")
    assert lines[1] == "錯誤: 0x80070005 存取被拒: 要求的動作需要提高權限"  # the code stays hex
    assert ato.exit_code == 0x80070005
    assert raw(tw, "tzutil /g").stdout == b"Taipei Standard Time"  # the ID is language-neutral
    assert raw(tw, "chcp", codepage=950).stdout.decode("cp950") == "使用中的字碼頁: 950\r\n"
    assert raw(tw, "chcp", codepage=65001).stdout == b"Active code page: 65001\r\n"
    assert raw(tw, "chcp 65001", codepage=950).stdout == b"Active code page: 65001\r\n"
    assert raw(tw, "ver", codepage=950).stdout.decode("cp950") == "\r\nMicrosoft Windows [版本 10.0.19042.1052]\r\n"
    assert raw(tw, "ver", codepage=65001).stdout == b"\r\nMicrosoft Windows [Version 10.0.19042.1052]\r\n"
    banner = raw(tw, "cscript C:\\Windows\\System32\\slmgr.vbs /xpr", codepage=950).stdout.decode("cp950")
    assert "著作權所有" in banner and "初始寬限期將於 " in banner and " 結束" in banner
    en = raw(pcs["en"], "w32tm /resync", codepage=437).stdout.decode("cp437")
    assert "The following error occurred: Access is denied. (0x80070005)" in en


def test_ospp_stays_english_on_a_zh_tw_pc(lab_block: Claim) -> None:
    pcs = machines(lab_block, office={"version": 2016})
    path = '"C:\\Program Files (x86)\\Microsoft Office\\Office16\\OSPP.VBS"'
    out = raw(pcs["tw"], f"cscript {path} /dstatus", codepage=950).stdout.decode("cp950")
    assert "著作權所有" in out  # cscript's own banner is Chinese …
    assert "LICENSE NAME: Office 16, Office16ProPlusVL_KMS_Client edition" in out  # … ospp.vbs' texts are not


def test_console_bytes_round_trip() -> None:
    marked = as_code_page("授權狀態: 已取得授權\r\n", 950)
    assert encode_output(marked, 65001) == "授權狀態: 已取得授權\r\n".encode("cp950")
    assert encode_output(marked, 437) == "授權狀態: 已取得授權\r\n".encode("cp950")
    assert encode_output("中文 ok", 437) == b"?? ok"  # characters the console's code page lacks: '?'
    assert encode_output("中文", 65001) == "中文".encode()


# --------------------------------------------------------------------------------------- over the real wire


def test_the_client_reads_a_zh_tw_pc_over_winrm(lab_block: Claim) -> None:
    spec = parse_spec(
        {
            "room": "r",
            "subnet": f"{lab_block.prefix}.1",
            "credentials": {"user": "administrator", "password": PASSWORD},
            "hosts": [{"name": "tw", "locale": "zh-TW"}],
        }
    )
    lab = LabThread(spec)
    lab.start(timeout=60)
    conn = WinRMConnection(
        ConnectionSpec(
            host="tw",
            address=f"{lab_block.prefix}.1.1",
            port=5985,
            scheme="http",
            transport="ntlm",
            user="administrator",
            password=PASSWORD,
        )
    )
    try:
        dlv = conn.run_command(f"{SLMGR} /dlv")
        assert "授權狀態: 初始寬限期" in dlv.stdout  # cp950 from cscript, decoded by the PC's OEM code page
        assert conn.oem_code_page() == 950
        both = conn.run_command(f"hostname & {SLMGR} /skms {lab_block.prefix}.0.2")
        assert both.stdout.splitlines()[:2] == ["TW", f"金鑰管理服務電腦名稱已成功設定為 {lab_block.prefix}.0.2。"]
        nope = conn.run_command("nothing-here")  # cmd in a UTF-8 console: English on a zh-TW PC too
        assert nope.stderr.startswith("'nothing-here' is not recognized as an internal or external command")
    finally:
        conn.close()
        lab.stop()


def test_a_shell_opened_without_winrs_codepage_uses_the_pcs_oem_code_page(lab_block: Claim) -> None:
    """Windows gives a shell without WINRS_CODEPAGE the PC's OEM code page: 950 on zh-TW, 437 on en-US."""
    from pypsrp.shell import Process, WinRS
    from pypsrp.wsman import WSMan

    spec = parse_spec(
        {
            "room": "r",
            "subnet": f"{lab_block.prefix}.1",
            "credentials": {"user": "administrator", "password": PASSWORD},
            "hosts": [{"name": "tw", "locale": "zh-TW"}, {"name": "en"}],
        }
    )
    lab = LabThread(spec)
    lab.start(timeout=60)
    try:
        seen = {}
        for n, name in ((1, "tw"), (2, "en")):
            wsman = WSMan(
                f"{lab_block.prefix}.1.{n}",
                port=5985,
                ssl=False,
                auth="ntlm",
                username="administrator",
                password=PASSWORD,
                cert_validation=False,
            )
            with wsman, WinRS(wsman) as shell:  # codepage None: no WINRS_CODEPAGE option is sent
                proc = Process(shell, "chcp")
                proc.invoke()
                seen[name] = proc.stdout
        assert seen["tw"].decode("cp950").strip() == "使用中的字碼頁: 950"
        assert seen["en"].decode("ascii").strip() == "Active code page: 437"
    finally:
        lab.stop()
