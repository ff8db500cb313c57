"""``hostvars['pc02'].x`` renders pc02's variable in pc02's own context, as Ansible's ``HostVars`` does (each host's
view is templated with that host's variables only): its magic variables, a variable referring to another of its
variables, a PC that finished an earlier play (compacted), a PC not in the play, ``-e`` winning, and a missing
variable failing with Ansible's "'... object' has no attribute" shape."""

from __future__ import annotations

from typing import Any

from test_executor import Recorder, task

from orchestrator.executor.plan import Plan, PlaySpec, TaskSpec
from orchestrator.executor.runner import InventoryView, Runner, new_run_info
from orchestrator.executor.state import RunOptions
from orchestrator.results.models import HostStatus, RunResult

HOSTS = ["pc01", "pc02", "pc03"]
ROOMS = {"pc01": ("all", "room101"), "pc02": ("all", "room102", "lab"), "pc03": ("all", "room102")}
GREETING = "hi {{ inventory_hostname }} in {{ group_names | join(',') }}"


def _inventory() -> InventoryView:
    def host_vars(host: str) -> dict[str, Any]:
        number = int(host[2:])
        groups = sorted(g for g in ROOMS[host] if g != "all")
        return {
            "inventory_hostname": host,
            "group_names": groups,
            "ansible_host": f"127.0.0.{number}",
            "my_ip": f"127.0.0.{number}",
            "endpoint": "http://{{ my_ip }}:5985/wsman",
            "greeting": GREETING,
            "nested": {"addr": "{{ endpoint }}", "items": ["{{ inventory_hostname }}"]},
        }

    return InventoryView(
        hosts=HOSTS,
        host_vars=host_vars,
        groups_of=lambda h: ROOMS[h],
        select=lambda pattern: [h for h in HOSTS if pattern == "all" or h == pattern],
        groups={"all": HOSTS, "room101": ["pc01"], "room102": ["pc02", "pc03"], "lab": ["pc02"]},
    )


def _play(hosts: str, *tasks: TaskSpec) -> PlaySpec:
    return PlaySpec(name=f"on {hosts}", hosts=hosts, tasks=tasks, gather_facts=False)


def _runner(*plays: PlaySpec, extra: dict[str, Any] | None = None) -> Runner:
    options = RunOptions(forks=2, extra_vars=extra or {})
    info = new_run_info("test", "<t>", ["<inv>"], options, None)
    return Runner(Plan("<t>", plays), _inventory(), info, options, Recorder())


def _run(*plays: PlaySpec, extra: dict[str, Any] | None = None) -> RunResult:
    return _runner(*plays, extra=extra).run()


def _msgs(result: RunResult, host: str) -> list[str]:
    found = result.host(host)
    assert found is not None
    return [t.msg for t in found.tasks]


def _show(name: str, template: str) -> TaskSpec:
    return task(name, args={"msg": template})


def test_another_pcs_templated_variables_render_in_that_pcs_context() -> None:
    result = _run(
        _play(
            "pc01",
            _show("greeting", "{{ hostvars['pc02'].greeting }}"),
            _show("chain", "{{ hostvars['pc02'].endpoint }}"),
            _show("nested", "{{ hostvars.pc02.nested.addr }} {{ hostvars.pc02.nested['items'][0] }}"),
            _show("magic", "{{ hostvars['pc02'].inventory_hostname }} {{ hostvars['pc02'].group_names }}"),
            _show("own", "{{ greeting }}"),
            _show("self", "{{ hostvars[inventory_hostname].endpoint }}"),
            _show("not in the play", "{{ hostvars['pc03'].greeting }} {{ hostvars['pc03'].endpoint }}"),
        )
    )
    assert _msgs(result, "pc01") == [
        "hi pc02 in lab,room102",
        "http://127.0.0.2:5985/wsman",
        "http://127.0.0.2:5985/wsman pc02",
        "pc02 ['lab', 'room102']",
        "hi pc01 in room101",
        "http://127.0.0.1:5985/wsman",
        "hi pc03 in room102 http://127.0.0.3:5985/wsman",
    ]


def test_a_running_pc_in_the_same_play_renders_in_its_own_context() -> None:
    """Both PCs in one linear play: pc01 reads pc02's live variables (a set_fact of pc02's included) mid-play."""
    result = _run(
        PlaySpec(
            name="both",
            hosts="all",
            gather_facts=False,
            strategy="linear",
            tasks=(
                task("fact", "set_fact", args={"mine": "{{ inventory_hostname }}-fact"}),
                _show("read", "{{ hostvars[(ansible_play_hosts | difference([inventory_hostname]))[0]].greeting }}"),
                _show("fact", "{{ hostvars['pc02'].mine }}"),
            ),
        )
    )
    assert _msgs(result, "pc01")[1:] == ["hi pc02 in lab,room102", "pc02-fact"]
    assert _msgs(result, "pc02")[1:] == ["hi pc01 in room101", "pc02-fact"]


def test_a_finished_compacted_pc_renders_in_its_own_context() -> None:
    runner = _runner(
        _play("pc02", task("fact", "set_fact", args={"room_note": "{{ my_ip }} says {{ greeting }}"})),
        _play(
            "pc01",
            _show("greeting", "{{ hostvars['pc02'].greeting }}"),
            _show("chain", "{{ hostvars['pc02'].endpoint }}"),
            _show("fact", "{{ hostvars['pc02'].room_note }}"),
        ),
    )
    result = runner.run()
    assert runner.states["pc02"].frozen is not None, "pc02 finished after the first play: compacted"
    assert _msgs(result, "pc01") == [
        "hi pc02 in lab,room102",
        "http://127.0.0.2:5985/wsman",
        "127.0.0.2 says hi pc02 in lab,room102",
    ]


def test_extra_vars_win_inside_the_other_pcs_context() -> None:
    result = _run(
        _play("pc02", task("fact", "set_fact", args={"shade": "fact"})),
        _play(
            "pc01",
            _show("chain", "{{ hostvars['pc02'].endpoint }}"),
            _show("direct", "{{ hostvars['pc02'].shade }} {{ hostvars['pc03'].my_ip }}"),
        ),
        extra={"my_ip": "127.0.0.9", "shade": "extra"},
    )
    assert _msgs(result, "pc01") == ["http://127.0.0.9:5985/wsman", "extra 127.0.0.9"]


def test_a_missing_variable_fails_with_ansibles_message_shape() -> None:
    result = _run(_play("pc01", _show("typo", "{{ hostvars['pc02'].greetin }}")))
    host = result.host("pc01")
    assert host is not None and host.status is HostStatus.FAILED
    msg = host.tasks[0].msg
    assert "HostVarsVars object' has no attribute 'greetin'" in msg and "did you mean 'greeting'" in msg, msg


def test_a_missing_variable_can_be_defaulted() -> None:
    result = _run(_play("pc01", _show("defaulted", "{{ hostvars['pc02'].nope | default('none') }}")))
    assert _msgs(result, "pc01") == ["none"]
