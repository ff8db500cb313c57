"""The closed plan: plain frozen data that pickles as it is, and one path for compiled and hand-built plans
(loops of tasks and looped includes, vars_files); one constructor of task results."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from test_executor import Recorder, inventory, play, run, statuses, task

from orchestrator.errors import Location
from orchestrator.executor.loading import load_plan, play_vars_loader
from orchestrator.executor.pipeline import HostPipeline
from orchestrator.executor.plan import BlockSpec, LoopSpec, Plan, PlaySpec, TaskSpec, VarsFileSpec
from orchestrator.executor.runner import Runner, new_run_info
from orchestrator.executor.state import RunOptions
from orchestrator.executor.taskresult import NO_LOG_MSG, Clock, TaskEnd, TaskRef, task_result
from orchestrator.redact import MASK, register_secret
from orchestrator.results.models import FailureKind, HostStatus, TaskStatus

PLAYBOOKS = sorted((Path(__file__).resolve().parents[2] / "playbooks").glob("*.yml"))
PLAIN = (str, int, float, bool, type(None))


def _walk(value: Any, path: str) -> None:
    """Fail on anything in a plan that is not plain data: a loader (pydantic) object, a function …"""
    assert not isinstance(value, BaseModel), f"{path}: a loader object ({type(value).__name__})"
    if isinstance(value, PLAIN):
        return
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        assert dataclasses.fields(value) and value.__dataclass_params__.frozen, f"{path}: not a frozen dataclass"  # type: ignore[attr-defined]
        for f in dataclasses.fields(value):
            _walk(getattr(value, f.name), f"{path}.{f.name}")
    elif isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str), f"{path}: key {key!r}"
            _walk(item, f"{path}[{key!r}]")
    elif isinstance(value, list | tuple | frozenset):
        for index, item in enumerate(value):
            _walk(item, f"{path}[{index}]")
    else:
        pytest.fail(f"{path}: {type(value).__name__} is not plain data")


def test_there_are_playbooks_to_check() -> None:
    assert len(PLAYBOOKS) >= 5


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=lambda p: p.name)
def test_the_compiled_plan_of_every_playbook_pickles_and_compares_equal(playbook: Path) -> None:
    plan = load_plan(playbook, roles_path=[])
    assert plan.plays
    _walk(plan, playbook.name)
    copy = pickle.loads(pickle.dumps(plan))
    assert copy == plan and copy is not plan


def test_a_compiled_plan_carries_its_loops_and_vars_files_as_data(tmp_path: Path) -> None:
    (tmp_path / "vars").mkdir()
    (tmp_path / "vars" / "room101.yml").write_text("kms_host: kms.example\n")
    book = tmp_path / "p.yml"
    book.write_text(
        "- hosts: all\n"
        "  gather_facts: false\n"
        "  vars_files: [['vars/{{ room }}.yml', vars/none.yml]]\n"
        "  tasks:\n"
        "    - include_tasks: t.yml\n"
        "      with_dict: {a: 1}\n"
        "      loop_control: {loop_var: pair, extended: true}\n"
        "    - debug: var=item\n"
        "      with_sequence: count=2\n"
        "      loop_control: {label: '{{ item }}', index_var: i}\n"
    )
    (tmp_path / "t.yml").write_text("- debug: msg={{ pair.key }}\n")
    plan = load_plan(book, roles_path=[])
    included, seq = plan.plays[0].tasks
    assert isinstance(included, BlockSpec) and isinstance(seq, TaskSpec)
    assert included.loop == LoopSpec({"a": 1}, "with_dict", Location(str(book), 6, 7), var="pair", extended=True)
    assert seq.loop == LoopSpec(
        "count=2", "with_sequence", Location(str(book), 9, 7), index_var="i", label="{{ item }}"
    )
    assert plan.plays[0].vars_files == (
        VarsFileSpec(("vars/{{ room }}.yml", "vars/none.yml"), str(tmp_path), Location(str(book), 3, 16)),
    )
    assert play_vars_loader(plan.plays[0], {"room": "room101"}) == {"kms_host": "kms.example"}


def test_a_hand_built_loop_takes_the_compiled_path() -> None:
    """``with_items`` flattens one level and ``with_dict`` gives key/value items, for a hand-built task and a
    hand-built looped include alike (one loop implementation)."""
    include = BlockSpec(
        name="per room",
        block=(task("room {{ room.key }}", args={"msg": "{{ room.key }}={{ room.value }} #{{ n }}"}),),
        loop=LoopSpec({"r1": 10, "r2": 20}, "with_dict", var="room", index_var="n"),
    )
    flat = task("flat", args={"msg": "{{ item }}"}, loop=LoopSpec([[1, 2], 3], "with_items"), register="out")
    result, _ = run([play(include, flat)], n=1)
    h = result.host("pc01")
    assert h is not None and h.status is HostStatus.OK
    assert [t.msg for t in h.tasks[:2]] == ["r1=10 #0", "r2=20 #1"]
    assert [r["msg"] for r in h.tasks[2].data["results"]] == [1, 2, 3]


def test_a_hand_built_loop_over_text_fails_like_a_compiled_one() -> None:
    result, _ = run([play(task("bad", loop=LoopSpec("{{ 'a,b' }}")), task("after"))], n=1)
    h = result.host("pc01")
    assert h is not None and h.status is HostStatus.FAILED
    assert statuses(result, "pc01") == [("bad", "failed")]
    assert "loop needs a list" in h.tasks[0].msg and h.tasks[0].failure is FailureKind.INPUT


def test_hand_built_vars_files_are_loaded(tmp_path: Path) -> None:
    (tmp_path / "common.yml").write_text("site: north\n")
    p = dataclasses.replace(
        play(task("show", args={"msg": "{{ site }}"})), vars_files=(VarsFileSpec(("common.yml",), str(tmp_path)),)
    )
    result, _ = run([p], n=1, play_vars=play_vars_loader)
    h = result.host("pc01")
    assert h is not None and [t.msg for t in h.tasks] == ["north"]


def test_task_result_is_the_one_constructor_masking_what_shows() -> None:
    register_secret("s3cr3t-plan-test")
    ref = TaskRef("pc01", "p", "t", "debug")
    end = TaskEnd(TaskStatus.FAILED, "key s3cr3t-plan-test refused", {"stdout": "s3cr3t-plan-test"}, error_code=-1)
    shown = task_result(ref, end, Clock.start())
    assert shown.msg == f"key {MASK} refused" and shown.data["stdout"] == MASK
    assert shown.error_code == 0xFFFFFFFF and not shown.no_log
    hidden = task_result(ref._replace(no_log=True), end)
    assert hidden.msg == NO_LOG_MSG and dict(hidden.data) == {} and hidden.no_log and hidden.duration_ms == 0


def test_a_host_whose_job_crashes_is_finished_failed_with_the_error_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def crash(self: HostPipeline, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(HostPipeline, "run_play", crash)
    options = RunOptions(forks=2)
    rec = Recorder()
    runner = Runner(
        Plan("<t>", (play(task("x")),)), inventory(2), new_run_info("t", "<t>", [], options, None), options, rec
    )
    result = runner.run()
    for h in result.hosts:
        assert h.status is HostStatus.FAILED and h.msg == "internal error: RuntimeError: boom"
        assert [(t.task, t.status, t.failure) for t in h.tasks] == [
            ("(internal error)", TaskStatus.FAILED, FailureKind.TASK)
        ]
    assert len(rec.tasks) == 2


def test_a_plan_spec_has_no_source_field() -> None:
    for spec in (TaskSpec, BlockSpec, PlaySpec, Plan):
        assert "source" not in {f.name for f in dataclasses.fields(spec)}


def test_judge_failed_when_sees_changed_when_and_until_sees_both() -> None:
    """As Ansible's TaskExecutor: changed_when, then failed_when (seeing the new ``changed``), after every
    attempt; ``until`` sees the judged result and its ``attempts`` (set after the conditions, as in Ansible)."""
    judged = task("judged", register="r", changed_when=("true",), failed_when=("r.changed",), ignore_errors=True)
    polled = task(
        "polled", register="p", changed_when=("true",), until=("p.changed and p.attempts >= 2",), retries=5, delay=0
    )
    result, _ = run([play(judged, polled)], n=1)
    h = result.host("pc01")
    assert h is not None
    first, second = h.tasks
    assert (
        first.status is TaskStatus.FAILED
        and first.ignored
        and first.msg == "judged"
        and first.data["failed_when_result"] is True
    )
    assert second.status is TaskStatus.CHANGED and second.data["attempts"] == 2
