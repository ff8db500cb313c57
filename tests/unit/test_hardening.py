"""Issue 13 hardening, unit level: every rendering of a secret is masked, facts and variables derived from a
secret are secret, schedules refuse secrets, a history starts with every PC pending, the YAML alias budget, time-
bounded template regexes, the linear licence-channel scan, and the message-encryption hint."""

from __future__ import annotations

import base64
import itertools
import json
import re
import time
import urllib.parse
from pathlib import Path

import pytest

from orchestrator import redact
from orchestrator.errors import InputError, TemplateError
from orchestrator.inventory.output import secret_names
from orchestrator.modules.licensing.model import channel_in_description, channel_of
from orchestrator.results.models import HostResult, HostStatus, RunInfo, RunResult
from orchestrator.results.reports import refuse_database
from orchestrator.results.store import PENDING_MSG, HistoryStore
from orchestrator.schedule import Schedule, refuse_secret_vars
from orchestrator.templating import Templar, regexes
from orchestrator.yamlsource import load_yaml_text

SECRET = "Un'it\"Pw\\ö-密-42"


def test_every_rendering_of_a_secret_is_masked() -> None:
    redact.register_secret(SECRET)
    raw = SECRET.encode()
    shown = [
        repr({"p": SECRET}),
        ascii({"p": SECRET}),
        json.dumps({"p": SECRET}),
        json.dumps({"p": SECRET}, ensure_ascii=False),
        json.dumps(repr(SECRET)),
        urllib.parse.quote(SECRET, safe=""),
        urllib.parse.quote_plus(SECRET),
        raw.hex(),
        raw.hex().upper(),
        SECRET.encode("utf-16-le").decode("latin-1"),
        base64.b64encode(raw).decode(),
        *(base64.b64encode(prefix + raw + b"tail").decode() for prefix in (b"", b"a", b"ab")),
        *(base64.b64encode(prefix + SECRET.encode("utf-16-le")).decode() for prefix in (b"", b"a", b"ab")),
    ]
    for text in shown:
        masked = redact.redact_text(text)
        assert redact.MASK in masked, text
        assert SECRET not in masked and raw.hex() not in masked.lower()


def test_redact_masks_secret_names_and_marked_names() -> None:
    redact.register_secret_name("derived_fact_xyz")
    data = {"ansible_password": "x", "derived_fact_xyz": "y", "other": "z", "k": {"winrm_pw": "w"}}
    out = redact.redact(data, frozenset({"winrm_pw"}))
    assert out == {
        "ansible_password": redact.MASK,
        "derived_fact_xyz": redact.MASK,
        "other": "z",
        "k": {"winrm_pw": redact.MASK},
    }


def test_a_template_reading_a_secret_is_tracked() -> None:
    templar = Templar({"ansible_password": "S3cret-Value", "plain": "hello", "x": "{{ ansible_password | upper }}"})
    value, derived = templar.render_tracked("{{ x }}")
    assert value == "S3CRET-VALUE" and derived
    value, derived = templar.render_tracked("{{ plain | upper }}")
    assert value == "HELLO" and not derived


def test_indirect_secret_names() -> None:
    sets = [
        {"ansible_password": "{{ winrm_pw }}", "winrm_pw": "{{ base_pw ~ 'x' }}", "base_pw": "p", "kms_host": "h"},
        {"api_token": "t", "unrelated": "{{ kms_host }}"},
    ]
    assert secret_names(sets) == {"ansible_password", "winrm_pw", "base_pw", "api_token"}


def test_schedules_refuse_secrets_and_mask_database_passwords() -> None:
    with pytest.raises(InputError) as err:
        refuse_secret_vars({"ansible_password": "hunter2!"}, "ansible_password=hunter2!")
    assert "KMSFLEET_PASSWORD" in (err.value.hint or "")
    refuse_secret_vars({"ansible_password": "{{ lookup('file', '/etc/kmsfleet/pw') }}", "kms_host": "x"}, "")
    schedule = Schedule(
        name="n", playbook="site.yml", inventory=("i.yml",), cron="@daily",
        db="postgresql://kms:Db-Pa55word@db.example/kms", extra_vars=("ansible_password=old-stored",),
    )  # fmt: skip
    shown = " ".join(schedule.shown_args())
    assert "Db-Pa55word" not in shown and "old-stored" not in shown and "kms:********@db.example" in shown


def test_a_run_starts_with_every_pc_pending(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.db")
    try:
        info = RunInfo(id="abc123", playbook="p.yml", inventory=("i.yml",))
        store.begin_run(info, ["pc01", "pc02", "pc03"])
        store.record_host(info.id, HostResult(host="pc02", status=HostStatus.OK))
        assert store.hosts_with_status(info.id, [HostStatus.NOT_RUN]) == ["pc01", "pc03"]
        loaded = store.load_run(info.id)
        assert loaded.interrupted and {h.host: h.msg for h in loaded.hosts}["pc01"] == PENDING_MSG
        hosts = tuple(HostResult(host=h, status=HostStatus.OK) for h in ("pc01", "pc02", "pc03"))
        store.finish_run(info.id, RunResult(info, hosts))
        assert store.hosts_with_status(info.id, [HostStatus.OK]) == ["pc01", "pc02", "pc03"]
    finally:
        store.close()
    assert (tmp_path / "h.db").stat().st_mode & 0o777 == 0o600
    with pytest.raises(InputError, match="is a database"):
        refuse_database(tmp_path / "h.db")
    with pytest.raises(InputError, match="is a database"):
        refuse_database(tmp_path / "h.db-wal")


def _bomb(levels: int) -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    names = "abcdefghijklmnop"[:levels]
    for prev, name in itertools.pairwise(names):
        text += f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]\n"
    return text


def test_a_yaml_alias_bomb_is_refused_quickly() -> None:
    started = time.monotonic()
    with pytest.raises(InputError, match="alias bomb"):
        load_yaml_text(_bomb(9), "bomb.yml")
    assert time.monotonic() - started < 2
    assert load_yaml_text(_bomb(3), "ok.yml")["c"][0][0] == ["lol"] * 9  # modest reuse still loads
    with pytest.raises(InputError, match="aliases"):
        load_yaml_text("x: &x [1]\ny: [" + ",".join(["*x"] * 10_001) + "]\n")


@pytest.mark.parametrize(
    "expr",
    [
        "{{ s | regex_search('^(a|aa)+$') }}",
        "{{ s | regex_replace('(a|aa)+$', 'x') }}",
        "{{ s | regex_findall('(a|aa)+$') }}",
        "{{ s is match('(a|aa)+$') }}",
        "{{ s is search('(a|aa)+$') }}",
        "{{ s is regex('(a|aa)+$', match_type='fullmatch') }}",
    ],
)
def test_template_regexes_are_time_bounded(expr: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(regexes, "REGEX_SECONDS", 0.3)
    started = time.monotonic()
    with pytest.raises(TemplateError, match="took longer than"):
        Templar({"s": "a" * 60 + "!"}).render(expr)
    assert time.monotonic() - started < 10


def test_template_regexes_keep_python_semantics() -> None:
    """Back-references, named groups and look-behind (which RE2 lacks) work as with Python's re."""
    t = Templar(
        {
            "s": "pc01-room101",
            "swap": r"^(?P<pc>pc\d+)-(room\d+)$",
            "to": r"\2/\g<pc>",
            "behind": r"(?<=-)room(\d+)",
            "group": r"\1",
            "digits": r"\d+",
        }
    )
    assert t.render("{{ s | regex_replace(swap, to) }}") == "room101/pc01"
    assert t.render("{{ s | regex_search(behind, group) }}") == ["101"]
    assert t.render("{{ s | regex_findall(digits) }}") == ["01", "101"]


def test_licence_channel_scan_is_linear_and_agrees_with_the_regex() -> None:
    reference = re.compile(r"([A-Z0-9_()]+)\s+channel", re.IGNORECASE)
    for text in [
        "Windows(R) Operating System, VOLUME_KMSCLIENT channel",
        "Office 15, RETAIL(Grace) channel",
        "no channel here",
        "channel",
        "A  \t channel B channel",
        "",
    ]:
        found = reference.search(text)
        assert channel_in_description(text) == (found.group(1) if found else None), text
    assert channel_of("Windows(R) Operating System, VOLUME_KMSCLIENT channel", None) == "Volume:GVLK"
    started = time.monotonic()
    channel_in_description("A" * 2_000_000)
    channel_in_description(" channel" * 200_000)
    assert time.monotonic() - started < 1  # the regex takes minutes on the first one
