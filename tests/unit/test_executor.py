"""The runner and host pipeline on controller-only modules (no network): strategies, serial, tags, handlers,
block/rescue/always, ignore_errors, loops, retries/until, any_errors_fatal, Ctrl-C and reporters."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from orchestrator.executor.plan import BlockSpec, LoopSpec, Plan, PlaySpec, TaskSpec
from orchestrator.executor.reporter import NullReporter
from orchestrator.executor.runner import InventoryView, Runner, new_run_info
from orchestrator.executor.state import RunOptions
from orchestrator.exitcodes import ExitCode
from orchestrator.results.models import HostResult, HostStatus, HostTaskResult, RunResult, TaskStatus


def inventory(n: int, **vars_: Any) -> InventoryView:
    hosts = [f"pc{i:02d}" for i in range(1, n + 1)]
    return InventoryView(
        hosts=hosts,
        host_vars=lambda h: {"inventory_hostname": h, "ansible_host": "127.0.0.1", **vars_},
        groups_of=lambda h: ("all", "room"),
        select=lambda pattern: [h for h in hosts if pattern in ("all", "room") or h == pattern],
        groups={"all": hosts, "room": hosts},
    )


def task(name: str, module: str = "debug", **kw: Any) -> TaskSpec:
    args = kw.pop("args", {"msg": name})
    return TaskSpec(name=name, module=module, args=args, **kw)


class Recorder(NullReporter):
    def __init__(self) -> None:
        self.tasks: list[HostTaskResult] = []
        self.hosts: list[HostResult] = []
        self.lock = threading.Lock()
        self.done: RunResult | None = None

    def task_done(self, result: HostTaskResult) -> None:
        with self.lock:
            self.tasks.append(result)

    def host_done(self, result: HostResult) -> None:
        with self.lock:
            self.hosts.append(result)

    def run_done(self, result: RunResult) -> None:
        self.done = result


def run(
    plays: Sequence[PlaySpec], n: int = 3, options: RunOptions | None = None, **kw: Any
) -> tuple[RunResult, Recorder]:
    options = options or RunOptions(forks=4)
    rec = Recorder()
    info = new_run_info("test", "<t>", ["<inv>"], options, None)
    runner = Runner(Plan("<t>", tuple(plays)), inventory(n), info, options, rec, **kw)
    return runner.run(), rec


def play(*tasks: TaskSpec | BlockSpec, **kw: Any) -> PlaySpec:
    return PlaySpec(name=kw.pop("name", "p"), hosts="all", tasks=tuple(tasks), gather_facts=False, **kw)


def statuses(result: RunResult, host: str) -> list[tuple[str, str]]:
    h = result.host(host)
    assert h is not None
    return [(t.task, t.status.value) for t in h.tasks]


def test_set_fact_register_when_and_assert() -> None:
    result, rec = run(
        [
            play(
                task("n", "set_fact", args={"n": "{{ 40 + 2 }}"}),
                task("echo", args={"msg": "n is {{ n }}"}, register="out"),
                task("only pc02", args={"msg": "x"}, when=("inventory_hostname == 'pc02'",)),
                task("check", "assert", args={"that": ["out.msg == 'n is 42'", "n | int == 42"]}),
            )
        ]
    )
    assert result.exit_code == ExitCode.OK
    assert statuses(result, "pc01")[2] == ("only pc02", "skipped")
    assert statuses(result, "pc02")[2] == ("only pc02", "ok")
    assert {h.status for h in result.hosts} == {HostStatus.OK}
    assert len(rec.hosts) == 3 and rec.done is result


def test_set_fact_in_a_loop_sees_the_previous_items_facts_and_extended_loop_info() -> None:
    """As Ansible: ``set_fact: acc="{{ acc | default([]) + [item] }}"`` in a loop accumulates, and
    ``loop_control: {extended: true}`` gives ``ansible_loop``."""
    result, _ = run(
        [
            play(
                task(
                    "acc", "set_fact", args={"acc": "{{ (acc | default([])) + [item * 2] }}"}, loop=LoopSpec([3, 1, 2])
                ),
                task(
                    "ext",
                    args={"msg": "{{ ansible_loop.index }}/{{ ansible_loop.length }} {{ ansible_loop.last }}"},
                    loop=LoopSpec(["a", "b"], extended=True),
                ),
                task("check", "assert", args={"that": ["acc == [6, 2, 4]"]}),
            )
        ],
        n=1,
    )
    h = result.host("pc01")
    assert h is not None and h.status is HostStatus.OK, [t.msg for t in h.tasks] if h else None
    assert [r["msg"] for r in h.tasks[1].data["results"]] == ["1/2 False", "2/2 True"]


def test_block_rescue_always_and_ignore_errors() -> None:
    result, _ = run(
        [
            play(
                BlockSpec(
                    name="b",
                    block=(task("boom", "fail", args={"msg": "boom"}), task("skipped after boom")),
                    rescue=(task("fix", "set_fact", args={"rescued": True}),),
                    always=(task("always", "set_fact", args={"always": True}),),
                ),
                task("ignored failure", "fail", args={"msg": "meh"}, ignore_errors=True),
                task("after", "assert", args={"that": ["rescued", "always"]}),
            )
        ],
        n=1,
    )
    h = result.host("pc01")
    assert h is not None
    names = [(t.task, t.status.value, t.rescued, t.ignored) for t in h.tasks]
    assert names == [
        ("boom", "failed", True, False),
        ("fix", "ok", False, False),
        ("always", "ok", False, False),
        ("ignored failure", "failed", False, True),
        ("after", "ok", False, False),
    ]
    assert h.status is HostStatus.OK
    assert h.stats.rescued == 1 and h.stats.ignored == 1 and h.stats.failed == 0
    assert h.stats.ok == 4  # Ansible's recap counts an ignored failure as ok too (a rescued one only as rescued)


def test_unrescued_failure_runs_always_then_stops_the_host() -> None:
    result, _ = run(
        [
            play(
                BlockSpec(name="b", block=(task("boom", "fail"),), always=(task("cleanup"),)),
                task("never"),
            )
        ],
        n=2,
    )
    assert statuses(result, "pc01") == [("boom", "failed"), ("cleanup", "ok")]
    assert result.exit_code == ExitCode.TASK_FAILED
    assert all(h.status is HostStatus.FAILED for h in result.hosts)


def test_loop_and_until() -> None:
    result, _ = run(
        [
            play(
                task("loop", args={"msg": "{{ item * 2 }}"}, loop=LoopSpec([1, 2, 3]), register="doubled"),
                task(
                    "poll",
                    args={"msg": "x"},
                    register="p",
                    until=("p.attempts >= 4",),
                    retries=10,
                    delay=0,
                ),
                task("give up", args={"msg": "y"}, register="q", until=("false",), retries=2, delay=0),
            )
        ],
        n=1,
    )
    h = result.host("pc01")
    assert h is not None
    loop, poll, give_up = h.tasks
    assert [r["msg"] for r in loop.data["results"]] == [2, 4, 6]
    assert poll.data["attempts"] == 4 and poll.status is TaskStatus.OK
    assert give_up.status is TaskStatus.FAILED and give_up.data["attempts"] == 3


def test_changed_when_failed_when_and_handlers() -> None:
    result, _ = run(
        [
            play(
                task("touch", args={"msg": "x"}, changed_when=("true",), notify=("restart",)),
                task("quiet", args={"msg": "x"}, changed_when=("false",), notify=("never",)),
                task("not really failed", "fail", failed_when=("false",)),
                handlers=(task("restart", args={"msg": "handler ran"}), task("never", args={"msg": "no"})),
            )
        ],
        n=1,
    )
    assert statuses(result, "pc01") == [
        ("touch", "changed"),
        ("quiet", "ok"),
        ("not really failed", "ok"),
        ("restart", "ok"),
    ]


@pytest.mark.parametrize("strategy", ["free", "linear"])
def test_meta_flush_handlers_and_end_host(strategy: str) -> None:
    """As Ansible: ``meta: flush_handlers`` runs notified handlers at once; ``meta: end_host`` ends the play for
    the hosts whose ``when`` holds (their pending handlers are dropped) and they go on with the next play; meta
    tasks leave no result in the recap."""
    notify = {"changed_when": ("true",), "notify": ("h",)}
    result, _ = run(
        [
            play(
                task("a", **notify),
                task("flush", "meta", args={"action": "flush_handlers"}),
                task("b", **notify),
                task("end", "meta", args={"action": "end_host"}, when=("inventory_hostname == 'pc01'",)),
                task("noop", "meta", args={"action": "noop"}),
                task("after"),
                handlers=(task("h"),),
            ),
            play(task("next"), name="second"),
        ],
        n=2,
        options=RunOptions(forks=4, strategy=strategy),
    )
    assert statuses(result, "pc01") == [("a", "changed"), ("h", "ok"), ("b", "changed"), ("next", "ok")]
    assert statuses(result, "pc02") == [
        ("a", "changed"),
        ("h", "ok"),
        ("b", "changed"),
        ("after", "ok"),
        ("h", "ok"),
        ("next", "ok"),
    ]
    h1 = result.host("pc01")
    assert h1 is not None and h1.status is HostStatus.CHANGED and h1.stats.ok == 4


@pytest.mark.parametrize(
    ("tags", "skip", "expected"),
    [
        (set(), set(), ["plain", "tagged a", "always"]),
        ({"a"}, set(), ["tagged a", "always"]),
        (set(), {"a"}, ["plain", "always"]),
        ({"untagged"}, set(), ["plain", "always"]),
        ({"never"}, set(), ["always", "secret"]),
    ],
)
def test_tags(tags: set[str], skip: set[str], expected: list[str]) -> None:
    result, _ = run(
        [
            play(
                task("plain"),
                task("tagged a", tags=frozenset({"a"})),
                task("always", tags=frozenset({"always"})),
                task("secret", tags=frozenset({"never"})),
            )
        ],
        n=1,
        options=RunOptions(tags=frozenset(tags), skip_tags=frozenset(skip)),
    )
    assert [t for t, _ in statuses(result, "pc01")] == expected


def test_linear_is_lock_step_and_free_is_not() -> None:
    slow = task("slow on pc01", "pause", args={"seconds": 0.4}, when=("inventory_hostname == 'pc01'",))
    fast = task("second")
    for strategy, lockstep in (("linear", True), ("free", False)):
        _, rec = run([play(slow, fast)], n=3, options=RunOptions(strategy=strategy, forks=3))
        second = {t.host: t.started for t in rec.tasks if t.task == "second"}
        slow_end = next(t for t in rec.tasks if t.task == "slow on pc01" and t.host == "pc01")
        slow_done = slow_end.started.timestamp() + slow_end.duration_ms / 1000
        others_waited = all(second[h].timestamp() >= slow_done - 0.01 for h in ("pc02", "pc03"))
        assert others_waited is lockstep, strategy


def test_serial_batches_and_any_errors_fatal() -> None:
    result, rec = run(
        [play(task("a", "pause", args={"seconds": 0.05}), serial=(2,), name="batched")],
        n=5,
        options=RunOptions(forks=5),
    )
    assert result.exit_code == ExitCode.OK and len(result.hosts) == 5
    by_host = {t.host: t for t in rec.tasks}
    batches = [["pc01", "pc02"], ["pc03", "pc04"], ["pc05"]]
    for earlier, later in itertools.pairwise(batches):
        end = max(by_host[h].started.timestamp() + by_host[h].duration_ms / 1000 for h in earlier)
        assert all(by_host[h].started.timestamp() >= end - 0.01 for h in later)
    fatal, _ = run(
        [
            play(task("boom", "fail", when=("inventory_hostname == 'pc01'",)), serial=(1,), any_errors_fatal=True),
        ],
        n=3,
    )
    ran = [h.host for h in fatal.hosts if h.tasks]
    assert ran == ["pc01"], "later batches must not run after a fatal error"


@pytest.mark.parametrize("strategy", ["free", "linear"])
def test_any_errors_fatal_stops_the_other_hosts_at_the_next_task(strategy: str) -> None:
    """As Ansible: when a host fails in an any_errors_fatal play, no host starts another task of the play."""
    fatal, _ = run(
        [
            play(
                task("wait", "pause", args={"seconds": 0.2}, when=("inventory_hostname != 'pc01'",)),
                task("boom", "fail", when=("inventory_hostname == 'pc01'",)),
                task("after"),
                any_errors_fatal=True,
            )
        ],
        n=3,
        options=RunOptions(forks=4, strategy=strategy),
    )
    assert all("after" not in [t.task for t in h.tasks] for h in fatal.hosts)


def test_linear_max_fail_percentage_is_checked_after_each_task() -> None:
    result, _ = run(
        [play(task("boom", "fail", when=("inventory_hostname == 'pc01'",)), task("after"), max_fail_percentage=10)],
        n=3,
        options=RunOptions(forks=4, strategy="linear"),
    )
    assert all("after" not in [t.task for t in h.tasks] for h in result.hosts)


def test_play_host_variables_with_serial() -> None:
    """ansible_play_hosts_all: every host of the play; ansible_play_batch: this batch; ansible_play_hosts: the
    play's hosts without those that failed in earlier batches."""
    msg = "{{ ansible_play_hosts_all | length }} {{ ansible_play_batch | join(',') }} {{ ansible_play_hosts | length }}"
    result, _ = run(
        [
            play(
                task("boom", "fail", when=("inventory_hostname == 'pc01'",)),
                task("show", args={"msg": msg}),
                serial=(2,),
            )
        ],
        n=5,
        options=RunOptions(forks=4, strategy="linear"),
    )
    shown = {h.host: h.tasks[-1].data.get("msg") for h in result.hosts if h.tasks[-1].task == "show"}
    assert shown == {"pc02": "5 pc01,pc02 5", "pc03": "5 pc03,pc04 4", "pc04": "5 pc03,pc04 4", "pc05": "5 pc05 4"}


@pytest.mark.parametrize("strategy", ["free", "linear"])
def test_handlers_run_after_pre_tasks_tasks_and_post_tasks(strategy: str) -> None:
    notify = {"changed_when": ("true",), "notify": ("h",)}
    result, _ = run(
        [
            PlaySpec(
                name="p",
                hosts="all",
                gather_facts=False,
                pre_tasks=(task("pre", **notify),),
                tasks=(task("main", **notify),),
                post_tasks=(task("post", **notify),),
                handlers=(task("h"),),
            )
        ],
        n=1,
        options=RunOptions(forks=4, strategy=strategy),
    )
    assert [t for t, _ in statuses(result, "pc01")] == ["pre", "h", "main", "h", "post", "h"]


def test_templated_play_hosts_use_play_vars_and_extra_vars() -> None:
    from orchestrator.executor.compile import render_play_hosts

    plan = Plan(
        "<t>",
        (
            PlaySpec(name="a", hosts="{{ target | default('all') }}"),
            PlaySpec(name="b", hosts="{{ rooms }}", vars={"rooms": ["room101", "room102"]}),
            PlaySpec(name="c", hosts="room101"),
        ),
    )
    assert [p.hosts for p in render_play_hosts(plan, {}).plays] == ["all", "room101,room102", "room101"]
    assert render_play_hosts(plan, {"target": "pc02"}).plays[0].hosts == "pc02"


def test_unknown_module_at_run_time_fails_the_task_not_the_run() -> None:
    result, _ = run([play(task("bad", "no_such_module", args={}))], n=1)
    h = result.host("pc01")
    assert h is not None and h.status is HostStatus.FAILED
    assert "unknown module" in h.tasks[0].msg


def test_undefined_variable_message_names_variable_task_and_host() -> None:
    result, _ = run([play(task("Use a typo", args={"msg": "{{ kms_hots }}"}))], n=1)
    msg = result.hosts[0].tasks[0].msg
    assert "kms_hots" in msg and "Use a typo" in msg and "pc01" in msg


def test_ctrl_c_keeps_results_and_marks_the_rest() -> None:
    cancel = threading.Event()
    gate = threading.Event()

    class Stopper(Recorder):
        def task_done(self, result: HostTaskResult) -> None:
            super().task_done(result)
            if result.task == "first" and len(self.tasks) >= 2:
                gate.set()

    options = RunOptions(forks=2, grace=2.0)
    rec = Stopper()
    info = new_run_info("t", "<t>", ["<inv>"], options, None)
    plan = Plan("<t>", (play(task("first"), task("wait", "pause", args={"seconds": 30}), task("never")),))
    runner = Runner(plan, inventory(6), info, options, rec, cancel=cancel)

    def interrupt() -> None:
        gate.wait(10)
        cancel.set()

    threading.Thread(target=interrupt, daemon=True).start()
    started = time.monotonic()
    result = runner.run()
    assert time.monotonic() - started < 10
    assert result.interrupted and result.exit_code == ExitCode.INTERRUPTED
    counts = result.counts()
    assert counts["interrupted"] >= 1 and counts["interrupted"] + counts["not_run"] == 6
    assert all(h.status in (HostStatus.INTERRUPTED, HostStatus.NOT_RUN) for h in result.hosts)
    kept = [t for h in result.hosts for t in h.tasks if t.task == "first"]
    assert len(kept) >= 2, "results gathered before Ctrl-C are kept"
    assert not any(t.task == "never" for h in result.hosts for t in h.tasks)


def test_extra_vars_win_in_hostvars_too() -> None:
    """``-e pv=extra`` beats set_fact everywhere, ``hostvars[inventory_hostname]`` included (as Ansible)."""
    result, _ = run(
        [
            play(
                task("fact", "set_fact", args={"pv": "fact"}),
                task("check", "assert", args={"that": ["pv == 'extra'", "hostvars[inventory_hostname].pv == 'extra'"]}),
            )
        ],
        n=1,
        options=RunOptions(forks=4, extra_vars={"pv": "extra"}),
    )
    h = result.host("pc01")
    assert h is not None and h.status is HostStatus.OK, [t.msg for t in h.tasks] if h else None


def test_debug_var_of_an_undefined_variable_is_ok() -> None:
    """As Ansible: ``debug: var=x`` with x undefined shows that it is not defined and does not fail."""
    result, _ = run([play(task("show", args={"var": "nope"}), task("show attr", args={"var": "groups.nope"}))], n=1)
    assert statuses(result, "pc01") == [("show", "ok"), ("show attr", "ok")]
    h = result.host("pc01")
    assert h is not None and h.tasks[0].data["nope"] == "VARIABLE IS NOT DEFINED!"


def test_a_new_windows_key_replaces_the_old_licence_record() -> None:
    """install_gvlk: the re-read after a GVLK over a MAK has a new ActivationID; the PC keeps one Windows licence
    (was: the stale MAK record in grace stayed beside the licensed one, in the summary, reports and `due`)."""
    from orchestrator.executor.state import HostState
    from orchestrator.results.models import LicenceRecord

    st = HostState("pc01", {}, ("all",))
    mak = LicenceRecord(
        "windows", "Windows(R), Professional edition", "Volume:MAK", "OOBGrace", 2, 30, activation_id="A"
    )
    office = LicenceRecord("office", "Office 16, Office16ProPlusVL_KMS_Client edition", "Volume:GVLK", "Licensed", 1)
    gvlk = LicenceRecord(
        "windows", "Windows(R), Professional edition", "Volume:GVLK", "Licensed", 1, 180, activation_id="B"
    )
    for lics in ((mak, office), (gvlk,)):
        st.add(HostTaskResult(host="pc01", play="p", task="t", module="m", status=TaskStatus.OK, licences=lics))
    assert sorted((lic.product, lic.status) for lic in st.licences.values()) == [
        ("office", "Licensed"),
        ("windows", "Licensed"),
    ]


def test_skipped_result_skips_changed_when_and_failed_when() -> None:
    """Ansible evaluates changed_when/failed_when only when the result is not skipped (TaskExecutor: ``if
    'skipped' not in result``; checked with ansible-core 2.19: a debug below its verbosity, a raw task in check
    mode). So ``failed_when: out.rc != 0`` on a win_command skipped by --check does not fail on the missing rc."""
    result, _ = run(
        [
            play(
                task(
                    "quiet",
                    args={"msg": "x", "verbosity": 3},
                    register="out",
                    changed_when=("out.nosuch == 1",),
                    failed_when=("out.rc != 0",),
                ),
                task("after", args={"msg": "{{ out.skipped }}"}),
            )
        ],
        n=1,
    )
    assert statuses(result, "pc01") == [("quiet", "skipped"), ("after", "ok")]
    host = result.host("pc01")
    assert host is not None and host.tasks[1].msg == "True"


def test_hostvars_of_a_host_has_its_ansible_facts_namespace() -> None:
    """``hostvars[inventory_hostname]['ansible_facts']['distribution']`` (a pattern of public roles) works as the
    host's own ``ansible_facts`` does: facts without their ``ansible_`` prefix."""
    from orchestrator.executor.state import HostState

    state = HostState("pc01", {"ansible_host": "127.0.0.1"}, ("all",))
    state.set_facts({"ansible_distribution": "Microsoft Windows 10 Education", "ansible_os_family": "Windows"})
    view = state.vars_snapshot()
    assert view["ansible_facts"] == {"distribution": "Microsoft Windows 10 Education", "os_family": "Windows"}
    assert view["ansible_distribution"] == "Microsoft Windows 10 Education"
    assert "ansible_facts" not in HostState("pc02", {}, ("all",)).vars_snapshot()  # no facts gathered: none


def test_hosts_past_their_budget_are_abandoned_also_those_that_waited_for_a_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The supervisor's budget check (the backstop behind the transport's own deadline): a task that ignores its
    deadline is abandoned at budget + grace, for the PCs that started first and for those that started only when
    a thread came free (they join the watched set when their job begins)."""
    from orchestrator.executor import runner as runner_module

    monkeypatch.setattr(runner_module, "WATCHDOG_GRACE", 0.1)
    started = time.monotonic()
    result, _rec = run(
        [play(task("wait", "pause", args={"seconds": 1.5}))], n=4, options=RunOptions(forks=2, host_budget=0.3)
    )
    for name in ("pc01", "pc02", "pc03", "pc04"):
        host = result.host(name)
        assert host is not None
        assert host.status is HostStatus.UNREACHABLE, (name, host.status, host.msg)
        assert "time budget" in host.msg
    # the first two were abandoned long before their pause ended; the last two waited for their threads
    assert time.monotonic() - started < 10
