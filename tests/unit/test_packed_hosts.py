"""A local run keeps its finished PCs' results packed (``results.hostpack``): what users get from the run must be
exactly what they got from the plain tuple of ``HostResult``s — every report format byte for byte, the recap and
classroom summary, the history rows, the exit code and counts."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import pytest
from results_factory import make_host, make_run
from rich.console import Console

from orchestrator.cli.output import TerminalReporter
from orchestrator.redact import MASK, register_secret
from orchestrator.results.hostpack import KeptHosts, PackedHosts, host_names
from orchestrator.results.models import HostResult, HostStatus, PackedData, RunResult
from orchestrator.results.reports import render_report, write_report
from orchestrator.results.reports.json_report import build_report
from orchestrator.results.store import HistoryStore
from orchestrator.results.summary import summarise


def _packed(run: RunResult) -> RunResult:
    kept = KeptHosts()
    for h in reversed(run.hosts):  # arrival order differs from the run's order, as when PCs finish
        kept[h.host] = h
    hosts = kept.ordered(h.host for h in run.hosts)
    assert isinstance(hosts, PackedHosts)
    return dataclasses.replace(run, hosts=hosts)


@pytest.fixture(scope="module")
def runs() -> tuple[RunResult, RunResult]:
    plain = make_run(60, secret="S3cr3t-pw")
    return plain, _packed(plain)


def test_packed_hosts_read_back_equal(runs: tuple[RunResult, RunResult]) -> None:
    plain, packed = runs
    assert packed.hosts == plain.hosts and plain.hosts == tuple(packed.hosts)
    assert packed == plain
    assert len(packed.hosts) == 60 and packed.hosts[-1] == plain.hosts[-1]
    assert packed.hosts[2:5] == plain.hosts[2:5]
    assert host_names(packed.hosts) == tuple(h.host for h in plain.hosts) == host_names(plain.hosts)
    assert packed.statuses() == plain.statuses()
    assert packed.counts() == plain.counts() and packed.exit_code == plain.exit_code
    first = packed.hosts[0]
    assert first is not packed.hosts[0]  # decoded on each read, kept packed
    assert any(isinstance(t.data, PackedData) for h in packed.hosts for t in h.tasks)
    assert "PackedHosts" in repr(packed.hosts) and plain.hosts[0].host in repr(packed.hosts)


@pytest.mark.parametrize("fmt", ["json", "csv", "junit", "html"])
@pytest.mark.parametrize("lang", ["en", "zh-TW"])
def test_every_report_is_byte_for_byte_the_same(runs: tuple[RunResult, RunResult], fmt: str, lang: str) -> None:
    plain, packed = runs
    got = render_report(packed, fmt, lang)
    assert got == render_report(plain, fmt, lang)
    assert len(got) > 1000


def test_recap_and_summary_the_same(runs: tuple[RunResult, RunResult]) -> None:
    plain, packed = runs
    assert summarise(packed, "zh-TW") == summarise(plain, "zh-TW")
    texts = []
    for run in (plain, packed):
        console = Console(record=True, width=140, force_terminal=False)
        TerminalReporter(console, lang="en").print_recap(run)
        texts.append(console.export_text())
    assert texts[0] == texts[1] and "pc" in texts[0]


def test_history_rows_the_same(runs: tuple[RunResult, RunResult], tmp_path: Path) -> None:
    loaded = []
    for name, run in zip(("plain", "packed"), runs, strict=True):
        with HistoryStore(str(tmp_path / f"{name}.db")) as store:
            store.finish_run(run.info.id, run)  # a run never begun: every host saved from the result
            loaded.append(store.load_run(run.info.id))
    assert loaded[0] == loaded[1]
    assert [h.host for h in loaded[1].hosts] == list(host_names(runs[1].hosts))


def test_a_result_that_cannot_be_pickled_is_kept_as_it_is() -> None:
    odd = dataclasses.replace(make_host(1), facts={"lock": threading.Lock()})
    fine = make_host(2)
    kept = KeptHosts()
    kept[odd.host] = odd
    kept[fine.host] = fine
    assert odd.host in kept and len(kept) == 2
    hosts = kept.ordered([fine.host, "not-a-pc", odd.host])
    assert hosts.names == (fine.host, odd.host)
    assert hosts[1] is odd and hosts[0] == fine and hosts[0] is not fine
    assert kept[fine.host] == fine


def test_statuses_kept_apart_match_the_results() -> None:
    kept = KeptHosts()
    results = [dataclasses.replace(make_host(i), status=s) for i, s in enumerate(HostStatus, 1)]
    for r in results:
        kept[r.host] = r
    hosts = kept.ordered(r.host for r in results)
    assert hosts.statuses == tuple(HostStatus)
    run = RunResult(info=make_run(1).info, hosts=hosts)
    assert run.counts() == {s.value: 1 for s in HostStatus}
    assert run.exit_code == RunResult(info=run.info, hosts=tuple(results)).exit_code
    assert all(isinstance(h, HostResult) for h in hosts)


@pytest.mark.parametrize("n", [0, 1, 25])
def test_json_report_written_a_pc_at_a_time_is_the_whole_document(n: int, tmp_path: Path) -> None:
    """The JSON report is written in pieces (``json_chunks``); its bytes are ``json.dumps`` of the whole
    document (``build_report``), secrets masked the same way, for an empty run too."""
    register_secret("J50n-S3cr3t")
    plain = make_run(max(n, 1), secret="J50n-S3cr3t")
    plain = plain if n else dataclasses.replace(plain, hosts=())
    for run in (plain, _packed(plain)):
        whole = json.dumps(build_report(run, "zh-TW"), ensure_ascii=False, indent=2, default=str) + "\n"
        written = write_report(run, tmp_path / "r.json", lang="zh-TW").read_text(encoding="utf-8")
        assert written == whole == render_report(run, "json", "zh-TW")
        assert "J50n-S3cr3t" not in written and (not n or MASK in written)
        assert json.loads(written)["run"]["counts"] == run.counts()
