"""The classroom summary: failed PCs grouped by cause, in natural order, with catalogue text in en / zh-TW."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from results_factory import BASE, OUTCOMES, make_host, make_info, make_run

from orchestrator.errors import InputError
from orchestrator.knowledge import catalogue, i18n
from orchestrator.redact import register_secret
from orchestrator.results.models import FailureKind, HostResult, HostStatus, HostTaskResult, RunResult, TaskStatus
from orchestrator.results.summary import CauseGroup, ClassroomSummary, headline, render_summary_text, summarise


def _hosts_with(outcome: str) -> tuple[str, ...]:
    return tuple(f"pc{i}" for i in sorted(i for i, o in OUTCOMES.items() if o == outcome))


def _failing(name: str, **task: object) -> HostResult:
    fields: dict[str, object] = {"status": TaskStatus.FAILED, "failure": FailureKind.TASK, "msg": f"{name} broke"}
    fields.update(task)
    t = HostTaskResult(host=name, play="p", task="Activate", module="win_licensing", started=BASE, **fields)  # type: ignore[arg-type]
    status = HostStatus.UNREACHABLE if fields["status"] is TaskStatus.UNREACHABLE else HostStatus.FAILED
    if fields.get("failure") is FailureKind.AUTH:
        status = HostStatus.AUTH_REFUSED
    return HostResult(host=name, status=status, tasks=(t,), started=BASE, finished=BASE + timedelta(seconds=5))


def _run(*hosts: HostResult, interrupted: bool = False) -> RunResult:
    return RunResult(make_info("summary00001"), hosts, finished=BASE + timedelta(minutes=1), interrupted=interrupted)


@pytest.mark.parametrize("lang", ["en", "zh-TW"])
def test_classroom_groups_by_cause_with_catalogue_text(lang: str) -> None:
    result = make_run()
    summary = summarise(result, lang)
    got = [(g.key, g.basis, g.hosts) for g in summary.groups]
    assert got == [
        ("0xC004F06C", "diagnosis", _hosts_with("clock")),  # diagnosis wins over the outer 0xC004F074
        ("0xC004F035", "diagnosis", _hosts_with("slic")),
        ("KF_UNREACHABLE", "failure", _hosts_with("unreachable")),  # no code: the failure kind
        ("0xC004F017", "error_code", _hosts_with("retail")),  # no diagnosis: the error code
        ("KF_AUTH_REFUSED", "failure", _hosts_with("auth")),
    ]
    for group in summary.groups:
        entry = catalogue.lookup(group.key)
        assert entry is not None
        text = entry.text(lang)
        assert group.title == text.title
        assert group.fix == text.fix
        assert group.count == len(group.hosts)
    assert summary.failed == len(OUTCOMES) == sum(g.count for g in summary.groups)
    assert summary.total == 40
    assert dict(summary.status_counts) == result.counts()
    assert summary.exit_code == result.exit_code
    assert summary.group_for("pc11") is summary.groups[0]
    assert summary.group_for("pc5") is None  # its failure was ignored: the PC is fine
    assert summary.lang == lang


def test_pcs_are_listed_in_natural_order() -> None:
    hosts = [_failing(n, diagnosis="0xC004F074", error_code=0xC004F074) for n in ("pc10", "pc2", "PC1", "pc1b")]
    (group,) = summarise(_run(*hosts)).groups
    assert group.hosts == ("PC1", "pc1b", "pc2", "pc10")


def test_fallback_chain_diagnosis_then_code_then_failure_kind_then_status() -> None:
    unknown = 0x8007FFF0
    hosts = (
        _failing("a1", diagnosis="KF_WRONG_TIMEZONE", error_code=0xC004F074),
        _failing("b1", error_code=0xC004F074),
        _failing("c1", error_code=unknown, diagnosis="KF_UNKNOWN_ERROR"),  # unknown codes stay apart by code
        _failing("c2", error_code=unknown + 1),
        _failing("d1", status=TaskStatus.UNREACHABLE, failure=FailureKind.TIMEOUT),
        _failing("e1", failure=FailureKind.INPUT),
        HostResult(host="f1", status=HostStatus.UNREACHABLE, msg="no route", started=BASE, finished=BASE),
        HostResult(host="g1", status=HostStatus.NOT_RUN, started=BASE, finished=BASE),
    )
    summary = summarise(_run(*hosts), "en")
    by_host = {h: (g.key, g.basis) for g in summary.groups for h in g.hosts}
    assert by_host == {
        "a1": ("KF_WRONG_TIMEZONE", "diagnosis"),
        "b1": ("0xC004F074", "error_code"),
        "c1": ("0x8007FFF0", "error_code"),
        "c2": ("0x8007FFF1", "error_code"),
        "d1": ("KF_TIMEOUT", "failure"),
        "e1": ("failure:input", "failure"),
        "f1": ("KF_UNREACHABLE", "status"),
    }
    assert "g1" not in summary.causes  # not run is not a failure
    assert summary.not_finished == 1
    groups = {g.key: g for g in summary.groups}
    unknown_entry = catalogue.lookup("KF_UNKNOWN_ERROR")
    assert unknown_entry is not None
    assert groups["0x8007FFF0"].title == unknown_entry.text("en", code=unknown).title
    assert groups["0x8007FFF0"].fix == unknown_entry.text("en", code=unknown).fix
    assert not groups["0x8007FFF0"].catalogued
    assert groups["0x8007FFF1"].code == "0x8007FFF1"
    assert groups["0x8007FFF1"].fix == unknown_entry.text("en", code=unknown + 1).fix
    assert groups["failure:input"].title == i18n.t("failure.input", "en")
    assert groups["0xC004F074"].title == catalogue.lookup(0xC004F074).text("en").title  # type: ignore[union-attr]


def test_licence_counts_and_days_left_buckets() -> None:
    result = make_run()
    summary = summarise(result)
    licences = [lic for h in result.hosts for lic in h.licences]
    expected_counts: dict[str, Counter[str]] = {}
    for lic in licences:
        expected_counts.setdefault(lic.product, Counter())[lic.status] += 1
    assert {p: dict(c) for p, c in summary.licence_counts.items()} == {p: dict(c) for p, c in expected_counts.items()}

    def bucket(days: int | None) -> str:
        if days is None:
            return "permanent"
        if days <= 0:
            return "expired"
        for low, high in ((1, 7), (8, 30), (31, 90), (91, 180)):
            if low <= days <= high:
                return f"{low}-{high}"
        return "181+"

    expected_days = Counter(bucket(lic.days_left) for lic in licences)
    assert {k: v for k, v in summary.days_left.items() if v} == dict(expected_days)
    assert list(summary.days_left) == ["expired", "1-7", "8-30", "31-90", "91-180", "181+", "permanent"]
    issues = {(g.product, g.licence_status): g.hosts for g in summary.licence_issues}
    assert issues[("windows", "Notification")] == _hosts_with("clock")
    assert issues[("windows", "OOBGrace")] == _hosts_with("slic")
    assert issues[("office", "Notification")] == _hosts_with("retail")


def test_text_in_both_languages() -> None:
    result = make_run()
    zh = summarise(result, "zh-TW")
    text = render_summary_text(zh)
    failed = len(OUTCOMES)
    assert i18n.t("recap.failed_of_total", "zh-TW", failed=failed, total=40) in text
    clock = catalogue.lookup("0xC004F06C")
    assert clock is not None
    assert clock.text("zh-TW").title in text
    assert f"1. {clock.text('zh-TW').fix[0]}" in text
    assert ", ".join(_hosts_with("clock")) in text
    assert "--limit @failed" in text and "--limit @unreachable" in text
    english = render_summary_text(zh, "en")  # the same summary told in English: texts looked up again
    assert clock.text("en").title in english and clock.text("zh-TW").title not in english
    assert i18n.t("recap.failed_of_total", "en", failed=failed, total=40) in english
    line = headline(zh, "en")
    assert line.startswith(i18n.t("recap.failed_of_total", "en", failed=failed, total=40) + " — ")
    assert clock.text("en").title in line and "pc3, pc11, pc12" in line


def test_an_all_good_run_says_so() -> None:
    result = make_run(2)  # pc1 ok, pc2 changed
    summary = summarise(result)
    assert summary.failed == 0 and not summary.groups
    assert render_summary_text(summary).startswith(i18n.t("recap.all_ok", "en", total=2))
    assert headline(summary) == i18n.t("recap.all_ok", "en", total=2)


@pytest.mark.parametrize("lang", ["en", "zh-TW"])
def test_a_run_on_no_pc_does_not_say_all_zero_pcs_are_fine(lang: str) -> None:
    summary = summarise(_run(), lang)  # e.g. --limit @failed after a clean run
    line = i18n.t("recap.no_hosts", lang)
    assert line != "recap.no_hosts" and "0" not in line
    assert headline(summary) == line and render_summary_text(summary).startswith(line)


def test_interrupted_run_counts_unfinished_pcs() -> None:
    hosts = (
        make_host(1),
        dataclasses.replace(make_host(2), status=HostStatus.INTERRUPTED, tasks=make_host(2).tasks[:1]),
        HostResult(host="pc3", status=HostStatus.NOT_RUN, started=BASE, finished=BASE),
    )
    summary = summarise(_run(*hosts, interrupted=True))
    assert summary.interrupted and summary.not_finished == 2 and summary.exit_code == 99
    assert i18n.t("summary.not_finished", "en", n=2) in render_summary_text(summary)


def test_summary_is_frozen_and_json_ready() -> None:
    summary = summarise(make_run(), "zh-TW")
    with pytest.raises(dataclasses.FrozenInstanceError):
        summary.total = 3  # type: ignore[misc]
    data = json.loads(json.dumps(summary.to_json(), ensure_ascii=False))
    assert data["status_counts"] == make_run().counts()
    assert data["groups"][0]["hosts"] == list(_hosts_with("clock"))
    assert data["lang"] == "zh-TW"
    assert isinstance(summary, ClassroomSummary)


def test_unknown_language_is_a_user_error() -> None:
    with pytest.raises(InputError):
        summarise(make_run(2), "fr")
    assert summarise(make_run(2), "zh_TW").lang == "zh-TW"


def test_secrets_are_masked_in_the_text() -> None:
    secret = f"S3cret-{uuid.uuid4().hex[:8]}"
    register_secret(secret)
    host = _failing("pc1", msg=f"net use failed for password {secret}", error_code=0x80070005)
    text = render_summary_text(summarise(_run(host)))
    assert secret not in text


@pytest.mark.parametrize("lang", ["en", "zh-TW"])
def test_an_audit_with_unlicensed_pcs_does_not_say_they_are_fine(lang: str) -> None:
    """No PC failed (an audit reads, changes nothing), but licences are not activated: the headline says so
    instead of "All N PCs are fine" above the list of licence problems."""
    summary = summarise(make_run(2), lang)  # pc1 ok, pc2 changed: nothing failed
    issue = CauseGroup(
        key="windows:notification",
        basis="licence",
        hosts=("pc1", "pc2"),
        title="Not activated",
        fix=(),
        product="Windows",
        licence_status="Notification",
    )
    twice = dataclasses.replace(issue, key="office:notification", hosts=("pc2",), product="Office")
    summary = dataclasses.replace(summary, licence_issues=(issue, twice))
    line = i18n.t("recap.ran_with_licence_issues", lang, total=2, n=2)  # pc2 counted once
    assert line != "recap.ran_with_licence_issues"
    assert headline(summary) == line and render_summary_text(summary).startswith(line)
    assert i18n.t("recap.all_ok", lang, total=2) not in render_summary_text(summary)
