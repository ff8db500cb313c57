"""The words of `kmsfleet audit` and `kmsfleet demo` in English and 繁體中文 (Taiwan).

Run-output words shared by every command (statuses, columns, licence states) come from
``orchestrator.knowledge.i18n``; these are the story and table texts only these two commands use.
"""

from __future__ import annotations

from typing import Any

TEXTS: dict[str, dict[str, str]] = {
    # ---- audit table
    "audit.title": {"en": "Licences (read-only audit)", "zh-TW": "授權狀態（唯讀稽核）"},
    "audit.would": {"en": "An activation run would", "zh-TW": "啟用時將會"},
    "audit.nothing": {"en": "nothing to change", "zh-TW": "不需變更"},
    "audit.problem": {"en": "problem", "zh-TW": "問題"},
    "audit.unreachable": {"en": "not reached", "zh-TW": "無法連線"},
    "audit.no_licences": {"en": "no licence read", "zh-TW": "未讀到授權"},
    "audit.expiring": {
        "en": "{n} licences run out within {days} days: {hosts}",
        "zh-TW": "{n} 個授權將在 {days} 天內到期：{hosts}",
    },
    "audit.cloned": {
        "en": "PCs sharing one CMID (cloned without sysprep, KF_CLONED_CMID): {groups}",
        "zh-TW": "共用同一個 CMID 的電腦（未經 sysprep 複製，KF_CLONED_CMID）：{groups}",
    },
    "audit.install_key": {"en": "install GVLK {value}", "zh-TW": "安裝 GVLK {value}"},
    "audit.set_kms_host": {"en": "set KMS host {value}", "zh-TW": "設定 KMS 主機 {value}"},
    "audit.set_kms_port": {"en": "set KMS port {value}", "zh-TW": "設定 KMS 連接埠 {value}"},
    "audit.activate": {"en": "activate", "zh-TW": "啟用"},
    "audit.readonly": {
        "en": "Nothing was changed: the audit runs in check mode.",
        "zh-TW": "稽核以檢查模式執行，未做任何變更。",
    },
    # ---- demo story
    "demo.title": {
        "en": "kmsfleet demo — a simulated classroom; no real PC is touched",
        "zh-TW": "kmsfleet 示範 — 模擬電腦教室，不會碰到任何真實電腦",
    },
    "demo.lab": {
        "en": "{n} simulated Windows PCs answer WinRM on {first} … {last}, and a lab KMS host listens on {kms} — "
        "all on this computer's loopback addresses.",
        "zh-TW": "{n} 台模擬 Windows 電腦在 {first} … {last} 回應 WinRM，實驗用 KMS 主機在 {kms} — "
        "全都在本機的 loopback 位址上。",
    },
    "demo.mix": {
        "en": "The room has the problems the education bureau's Q&A describes: wrong time zones and clocks, a "
        "Windows 7 PC with a locked BIOS, accounts without admin rights, retail and Home Windows, preinstalled "
        "and Microsoft 365 Office, a damaged Office, PCs switched off, a slow PC.",
        "zh-TW": "教室裡有教育局 Q&A 描述的各種問題：時區與時間錯誤、BIOS 鎖定的 Windows 7、"
        "沒有系統管理員權限的帳號、零售版與家用版 Windows、隨機版與 Microsoft 365 的 Office、"
        "損毀的 Office、關機的電腦、很慢的電腦。",
    },
    "demo.slow": {
        "en": "(The slow PC answers in {ms} ms per request here, so the whole story fits in about a minute.)",
        "zh-TW": "（為了讓整個示範約一分鐘內跑完，這裡把慢速電腦設為每個請求 {ms} 毫秒。）",
    },
    "demo.step": {"en": "Step {i}/{n}  {title}", "zh-TW": "步驟 {i}/{n}  {title}"},
    "demo.step1": {
        "en": "Audit: what state is the room in? (read-only)",
        "zh-TW": "稽核：教室目前的狀態？（唯讀）",
    },
    "demo.step2": {
        "en": "Activate everything each PC has (site.yml)",
        "zh-TW": "啟用每台電腦上的所有產品（site.yml）",
    },
    "demo.step3": {
        "en": "Classroom summary: what went wrong, grouped by cause, with the fix",
        "zh-TW": "教室摘要：依原因分組的問題與處理方式",
    },
    "demo.step4": {
        "en": "Fix what kmsfleet can fix: time zones and clocks (only the PCs that failed)",
        "zh-TW": "修正 kmsfleet 能處理的問題：時區與時間（只針對失敗的電腦）",
    },
    "demo.step5": {
        "en": "Run again: is anything left to change?",
        "zh-TW": "再執行一次：還有需要變更的嗎？",
    },
    "demo.cmd": {"en": "  $ {cmd}", "zh-TW": "  $ {cmd}"},
    "demo.licences": {"en": "  {product}: {spread}", "zh-TW": "  {product}：{spread}"},
    "demo.audit_result": {
        "en": "  An activation run would change {would} PCs; {bad} PCs have problems; {off} PCs did not answer.",
        "zh-TW": "  啟用時將變更 {would} 台電腦；{bad} 台有問題；{off} 台沒有回應。",
    },
    "demo.run_result": {
        "en": "  {changed} changed, {ok} ok, {failed} failed, {unreachable} unreachable  ({seconds:.1f} s)",
        "zh-TW": "  {changed} 台已變更、{ok} 台正常、{failed} 台失敗、{unreachable} 台無法連線（{seconds:.1f} 秒）",
    },
    "demo.group": {"en": "  {n} × {title}{code}: {hosts}", "zh-TW": "  {n} 台 {title}{code}：{hosts}"},
    "demo.fix": {"en": "      fix: {step}", "zh-TW": "      處理：{step}"},
    "demo.fixed": {
        "en": "  Fixed and activated: {hosts}",
        "zh-TW": "  已修正並啟用：{hosts}",
    },
    "demo.not_fixed": {
        "en": "  Still failing (needs a person at the PC): {hosts}",
        "zh-TW": "  仍然失敗（需要有人到電腦前處理）：{hosts}",
    },
    "demo.second_run": {
        "en": "  Second run: 0 changed — every activated PC is licensed through the KMS host with {days} days left, "
        "so kmsfleet leaves it alone.",
        "zh-TW": "  第二次執行：0 台變更 — 已啟用的電腦都已透過 KMS 主機取得授權、尚有 {days} 天，"
        "kmsfleet 不會再動它們。",
    },
    "demo.second_run_changed": {
        "en": "  Second run: {n} changed (unexpected: {hosts})",
        "zh-TW": "  第二次執行：{n} 台變更（不應發生：{hosts}）",
    },
    "demo.left": {
        "en": "What is left needs a person: {n} PCs",
        "zh-TW": "剩下需要人工處理的：{n} 台電腦",
    },
    "demo.done": {
        "en": "Done in {seconds:.0f} s. Try it on the lab yourself: kmsfleet lab serve --hosts 40 --profile mixed, "
        "then kmsfleet audit -i lab-inventory.yml and kmsfleet run site.yml -i lab-inventory.yml.",
        "zh-TW": "完成，共 {seconds:.0f} 秒。自己試試看：kmsfleet lab serve --hosts 40 --profile mixed，再執行 "
        "kmsfleet audit -i lab-inventory.yml 與 kmsfleet run site.yml -i lab-inventory.yml。",
    },
    "demo.keep": {
        "en": "The lab keeps running (Ctrl-C stops it). Inventory: {inventory}\nControl API: {control}",
        "zh-TW": "實驗環境持續執行中（按 Ctrl-C 停止）。Inventory：{inventory}\n控制 API：{control}",
    },
    "demo.stopped": {"en": "Lab stopped.", "zh-TW": "實驗環境已停止。"},
    "demo.serve": {
        "en": "Every run is in the history {db}: see the classroom in a browser with kmsfleet serve --db {db_arg} "
        "(then open http://127.0.0.1:8470/).",
        "zh-TW": "每次執行都記錄在 {db}：執行 kmsfleet serve --db {db_arg}（再開啟 http://127.0.0.1:8470/）"
        "即可在瀏覽器中查看教室狀況。",
    },
}


def tr(key: str, lang: str, **kwargs: Any) -> str:
    """The text for ``key`` in ``lang`` ("en" or "zh-TW"), with ``{placeholders}`` filled."""
    entry = TEXTS[key]
    text = entry.get(lang) or entry["en"]
    return text.format(**kwargs) if kwargs else text
