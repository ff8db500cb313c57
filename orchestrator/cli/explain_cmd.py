"""`kmsfleet explain CODE`: what an activation error means and what to do, in English or 繁體中文.

Exit codes: 0 when the code was explained - including a well-formed code kmsfleet does not know, which gets the
generic advice (slui.exe 0x2a <code>) because the user asked a fair question and got an answer; 4 when the
input is not an error code at all, or an unknown KF_ key, or a bad --lang.
"""

from __future__ import annotations

import json
import re
from typing import Any

import typer
from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

from orchestrator.cli.common import console, err_console, escape, examples, handle_errors
from orchestrator.exitcodes import ExitCode
from orchestrator.knowledge.catalogue import (
    KF_PREFIX,
    UNKNOWN_KEY,
    Entry,
    all_entries,
    format_code,
    lookup,
    parse_code,
    signed_code,
)
from orchestrator.knowledge.i18n import normalise_lang, t

HELP = (
    "Explain a Windows/Office activation error code: meaning, likely cause and the steps to fix it.\n\n"
    "CODE may be hex (0xC004F074, c004f074), decimal (3221549172, -1073418124), a symbolic name "
    "(SL_E_VL_INVALID_TIMESTAMP) or a kmsfleet diagnosis key (KF_WRONG_TIMEZONE). A line pasted from slmgr or "
    "ospp.vbs output works too when it holds one 0x code.\n\n"
    "Exit code 0 when explained (an unknown but well-formed code gets general advice), 4 when CODE is not an "
    "error code."
)

_PASTED_CODE = re.compile(r"(?<![0-9a-z])0x[0-9a-f]{8}(?![0-9a-z])", re.IGNORECASE)


class _BadInput(Exception):
    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def _reject(message: str, hint: str | None = None) -> typer.Exit:
    text = escape(message)
    if hint:
        text += "\n  hint: " + escape(hint)
    err_console.print(f"[bold red]error:[/] {text}")
    return typer.Exit(int(ExitCode.INVALID_INPUT))


def _resolve(text: str, lang: str) -> tuple[Entry | None, int | None, bool]:
    """(entry, code, read_as_hex): the entry (None = unknown code), the HRESULT if the input is one."""
    raw = text.strip()
    if raw.upper().startswith(KF_PREFIX):
        entry = lookup(raw)
        if entry is None:
            raise _BadInput(t("explain.unknown_key", lang, text=raw), t("explain.bad_code_hint", lang))
        return entry, None, False
    try:
        code = parse_code(raw)
    except ValueError:
        entry = lookup(raw)  # a symbolic name such as SL_E_VL_INVALID_TIMESTAMP
        if entry is not None:
            return entry, entry.code, False
        found = {m.upper() for m in _PASTED_CODE.findall(raw)}
        if len(found) == 1:
            code = parse_code(found.pop())
        else:
            raise _BadInput(t("explain.bad_code", lang, text=raw), t("explain.bad_code_hint", lang)) from None
    read_as_hex = raw.isdigit() and len(raw) == 8
    return lookup(code), code, read_as_hex


def _products(entry: Entry, lang: str) -> str:
    if not entry.products:
        return t("explain.any_product", lang)
    return ", ".join(t(f"product.{p}", lang) for p in entry.products)


def _as_json(entry: Entry, code: int | None, lang: str, given: str) -> dict[str, Any]:
    text = entry.text(lang, code=code)
    return {
        "input": given,
        "known": entry.key != UNKNOWN_KEY,
        "key": entry.key,
        "code": format_code(code) if code is not None else entry.hex,
        "unsigned": code & 0xFFFFFFFF if code is not None else entry.code,
        "signed": signed_code(code) if code is not None else entry.signed,
        "name": entry.name,
        "products": list(entry.products),
        "seed": entry.seed,
        "lang": lang,
        "title": text.title,
        "meaning": text.meaning,
        "cause": text.cause,
        "fix": list(text.fix),
        "see_also": list(entry.see_also),
    }


_OPENING = "（「『《〈([{"
_CLOSING = "）」』》〉，。、：；！？)]},.:;!?"
_WIDE = "\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f"
_TOKEN = re.compile(
    rf"\s+|[{re.escape(_OPENING)}]*(?:[{_WIDE}]|[^\s{_WIDE}]+)[{re.escape(_CLOSING)}]*|.",
)


def _wrap(text: str, width: int) -> list[str]:
    """Greedy line breaking that works for Chinese too: a break may fall between any two CJK characters (never
    before closing punctuation such as ，。）), between English words only at spaces."""
    lines: list[str] = []
    line, used = "", 0
    for token in _TOKEN.findall(text):
        if token.isspace():
            if line:
                line, used = line + " ", used + 1
            continue
        piece, size = token, cell_len(token)
        if used + size > width and line.strip():
            lines.append(line.rstrip())
            line, used = "", 0
        while size > width:  # a path or URL longer than a line: cut it
            head, rest = piece, ""
            while cell_len(head) > width - used and len(head) > 1:
                head, rest = head[:-1], head[-1] + rest
            lines.append((line + head).rstrip())
            line, used, piece, size = "", 0, rest, cell_len(rest)
        line, used = line + piece, used + size
    if line.strip():
        lines.append(line.rstrip())
    return lines


def _width() -> int:
    return max(40, min(console.width, 100))


def _block(heading: str, body: str) -> None:
    console.print(Text(heading, style="bold"))
    for line in _wrap(body, _width() - 2):
        console.print(Text("  " + line))


def _show(entry: Entry, code: int | None, lang: str, read_as_hex: str | None) -> None:
    known = entry.key != UNKNOWN_KEY
    text = entry.text(lang, code=code)
    shown_code = format_code(code) if code is not None else entry.key

    head = Text()
    head.append(shown_code, style="bold cyan")
    if entry.name and entry.name != shown_code:
        head.append("  ")
        head.append(entry.name, style="cyan")
    console.print(head)
    console.print(Text(text.title, style="bold"))

    facts: list[str] = []
    if read_as_hex:
        facts.append(t("explain.read_as_hex", lang, text=read_as_hex, code=shown_code))
    if code is not None:
        facts.append(t("explain.numbers", lang, unsigned=code & 0xFFFFFFFF, signed=signed_code(code)))
    if not known and code is not None:
        facts.append(t("explain.unknown", lang, code=shown_code))
        if code >> 16 == 0x8007:
            facts.append(t("explain.win32", lang, number=code & 0xFFFF))
    elif entry.is_diagnosis:
        facts.append(t("explain.diagnosis", lang))
    if known:
        facts.append(t("explain.products_line", lang, products=_products(entry, lang)))
    if entry.seed:
        facts.append(t("explain.seed", lang))
    for fact in facts:
        for line in _wrap(fact, _width()):
            console.print(Text(line, style="dim"))
    console.print()

    _block(t("explain.meaning", lang), text.meaning)
    _block(t("explain.cause", lang), text.cause)
    console.print(Text(t("explain.fix", lang), style="bold"))
    for i, step in enumerate(text.fix, 1):
        number = f"{i}. "
        for j, line in enumerate(_wrap(step, _width() - 2 - len(number))):
            console.print(Text("  " + (number if j == 0 else " " * len(number)) + line))

    if entry.see_also:
        console.print(Text(t("explain.see_also", lang), style="bold"))
        pad = max(len(ref) for ref in entry.see_also)
        for ref in entry.see_also:
            other = lookup(ref)
            row = Text("  ")
            row.append(ref.ljust(pad), style="cyan")
            row.append("  " + (other.text(lang).title if other else ""))
            console.print(row)


def _list(lang: str, seed_only: bool, as_json: bool) -> None:
    entries = [e for e in all_entries() if e.seed or not seed_only]
    if as_json:
        rows = [
            {
                "key": e.key,
                "code": e.hex,
                "name": e.name,
                "seed": e.seed,
                "products": list(e.products),
                "title": e.text(lang).title,
            }
            for e in entries
        ]
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    groups = [
        (t("explain.list_seed" if seed_only else "explain.list_codes", lang), [e for e in entries if e.code]),
        (t("explain.list_diagnoses", lang), [e for e in entries if e.is_diagnosis]),
    ]
    for heading, members in groups:
        if not members:
            continue
        table = Table(title=heading, title_justify="left", title_style="bold", show_edge=False)
        table.add_column(t("explain.column.code", lang), style="cyan", no_wrap=True)
        if not members[0].is_diagnosis:
            table.add_column(t("explain.column.name", lang), max_width=28, overflow="fold")
        table.add_column(t("explain.column.title", lang), min_width=22, overflow="fold")
        if not seed_only and not members[0].is_diagnosis:
            table.add_column(t("explain.column.seed", lang), justify="center")
        for e in members:
            cells: list[Text | str] = [e.key]
            if not e.is_diagnosis:
                cells.append(Text(e.name or "-"))
            cells.append(Text(e.text(lang).title))
            if not seed_only and not e.is_diagnosis:
                cells.append("*" if e.seed else "")
            table.add_row(*cells)
        console.print(table)
        console.print(Text(t("explain.count", lang, n=len(members)), style="dim"))
        console.print()


@handle_errors
def explain(
    code: str | None = typer.Argument(
        None,
        metavar="CODE",
        help="Error code (hex, decimal, signed decimal), symbolic name or KF_ key.",
        show_default=False,
    ),
    lang: str = typer.Option("en", "--lang", envvar="KMSFLEET_LANG", help="Language: en or zh-TW."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
    list_all: bool = typer.Option(False, "--list", help="List every code and diagnosis kmsfleet knows."),
    seed_only: bool = typer.Option(
        False, "--seed-only", help="With --list: only the codes the education bureau's Q&A lists."
    ),
) -> None:
    try:
        language = normalise_lang(lang)
    except ValueError:
        raise _reject(t("explain.bad_lang", "en", given=lang)) from None
    if list_all or seed_only:
        if code is not None:
            raise _reject(t("explain.need_code", language))
        _list(language, seed_only, as_json)
        return
    if code is None or not code.strip():  # also `kmsfleet explain "$CODE"` with CODE unset
        raise _reject(t("explain.need_code", language))
    try:
        entry, value, read_as_hex = _resolve(code, language)
    except _BadInput as exc:
        raise _reject(exc.message, exc.hint) from None
    if entry is None:
        entry = lookup(UNKNOWN_KEY)
        assert entry is not None
    if as_json:
        typer.echo(json.dumps(_as_json(entry, value, language, code), ensure_ascii=False, indent=2))
        return
    _show(entry, value, language, code.strip() if read_as_hex else None)


def register(app: typer.Typer) -> None:
    app.command(
        "explain",
        help=HELP,
        epilog=examples(
            "kmsfleet explain 0xC004F074",
            "kmsfleet explain c004f06c --lang zh-TW",
            "kmsfleet explain -- -1073418124",
            "kmsfleet explain KF_WRONG_TIMEZONE --json",
            "kmsfleet explain --list --seed-only",
        ),
        context_settings={"ignore_unknown_options": True},
    )(explain)
