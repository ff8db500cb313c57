"""Distributed runs without a broker: what a batch message holds (and never holds), the compiled plan it
carries, the wire format of results, the Celery settings. The end-to-end proof with a real Redis is in
tests/e2e/test_distributed.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from results_factory import make_host

from orchestrator.api import load_plan
from orchestrator.distributed.celery_app import make_app, queue_name
from orchestrator.distributed.message import (
    BatchMessage,
    BatchOptions,
    HostEntry,
    decode_value,
    encode_value,
    plan_for_workers,
    sanitise_vars,
)
from orchestrator.distributed.worker import batch_view, worker_plan
from orchestrator.errors import InputError
from orchestrator.executor.loading import play_vars_loader
from orchestrator.executor.plan import BlockSpec, Plan, PlaySpec, TaskSpec
from orchestrator.executor.plan_codec import decode_plan
from orchestrator.redact import register_secret
from orchestrator.results.codec import host_result_from_json, host_result_to_json
from orchestrator.yamlsource import UnsafeText


def test_literal_secrets_are_withheld_and_worker_templates_kept() -> None:
    register_secret("Registered-Secret-42")
    variables = {
        "ansible_host": "10.1.2.3",
        "ansible_user": "administrator",
        "ansible_password": "Hunter2-literal",
        "ansible_become_pass": "also-literal",
        "kms_api_token": 12345678,
        "site": "school_a",
        "note": "prefix Registered-Secret-42 suffix",
        "nested": {"db": {"password": "deep-literal"}},
        "empty_password": "",
        "no_password": None,
        "use_password": True,
    }
    safe, withheld = sanitise_vars(variables)
    assert withheld == {"ansible_password", "ansible_become_pass", "kms_api_token", "note", "nested"}
    assert safe == {
        "ansible_host": "10.1.2.3",
        "ansible_user": "administrator",
        "site": "school_a",
        "empty_password": "",
        "no_password": None,
        "use_password": True,
    }


def test_a_secret_template_stays_but_what_it_reads_is_withheld() -> None:
    variables = {
        "ansible_user": "administrator",
        "ansible_password": "{{ vault_school_a }}",
        "vault_school_a": "{{ hidden_source }}",
        "hidden_source": "plain-but-secret",
        "kms_password": "{{ lookup('env', 'SCHOOL_A_KMS') }}",
        "user_password": "{{ passwords_by_user[ansible_user] }}",
        "colour": "blue",
    }
    safe, withheld = sanitise_vars(variables)
    assert "ansible_password" in safe and "kms_password" in safe  # rendered on the worker
    assert {"vault_school_a", "hidden_source"} <= withheld  # followed through the chain
    assert safe["ansible_user"] == "administrator"  # a connection identity, not a secret
    assert safe["colour"] == "blue"


def test_unsafe_strings_survive_the_wire() -> None:
    value = {"a": UnsafeText("{{ not a template }}"), "b": ["x", UnsafeText("{% raw %}")]}
    back = decode_value(json.loads(json.dumps(encode_value(value))))
    assert isinstance(back["a"], UnsafeText) and back["a"] == "{{ not a template }}"
    assert isinstance(back["b"][1], UnsafeText)


def _write_playbook(root: Path) -> Path:
    (root / "plays").mkdir(parents=True)
    (root / "tasks").mkdir()
    (root / "vars").mkdir()
    (root / "tasks" / "check.yml").write_text("- name: Imported task\n  debug: msg=imported\n")
    (root / "vars" / "common.yml").write_text("colour: blue\n")
    main = root / "plays" / "main.yml"
    main.write_text(
        "- hosts: all\n"
        "  gather_facts: false\n"
        "  vars_files: [../vars/common.yml]\n"
        "  tasks:\n"
        "    - name: First\n"
        "      debug: msg={{ colour }}\n"
        "    - import_tasks: ../tasks/check.yml\n"
    )
    return main


def test_the_wire_plan_is_the_compiled_plan_with_its_vars_files_read_in(tmp_path: Path) -> None:
    main = _write_playbook(tmp_path / "src")
    plan = load_plan(main)
    data = plan_for_workers(plan, {}, play_vars_loader)
    assert "common.yml" not in json.dumps(data)  # the worker is sent values, never a file name to read
    again = decode_plan(json.loads(json.dumps(data)))
    assert [t.name for p in again.plays for t in p.tasks] == [t.name for p in plan.plays for t in p.tasks]
    assert again.plays[0].vars == {"colour": "blue"} and again.plays[0].vars_files == ()
    assert again.plays[0].tasks[1].location == plan.plays[0].tasks[1].location  # messages name the real file
    rebased = worker_plan(again, tmp_path / "private")
    assert rebased.plays[0].base_dir == str(tmp_path / "private")


def test_a_worker_plan_reads_no_controller_folder(tmp_path: Path) -> None:
    role_task = TaskSpec(name="t", module="win_template", args={}, vars={"role_path": "/srv/roles/kms", "x": 1})
    block = BlockSpec(name="b", block=(role_task,), vars={"role_path": "/srv/roles/kms"})
    play = PlaySpec(name="p", hosts="all", tasks=(block,), handlers=(role_task,), base_dir="/srv/playbooks")
    rebased = worker_plan(Plan(path="pb.yml", plays=(play,)), tmp_path)
    got = rebased.plays[0]
    inner = got.tasks[0]
    assert isinstance(inner, BlockSpec) and inner.vars["role_path"] == str(tmp_path)
    assert inner.block[0].vars == {"role_path": str(tmp_path), "x": 1}
    assert got.handlers[0].vars["role_path"] == str(tmp_path) and got.base_dir == str(tmp_path)


def test_the_wire_plan_refuses_playbooks_holding_secrets(tmp_path: Path) -> None:
    pb = tmp_path / "pb.yml"
    pb.write_text("- hosts: all\n  vars:\n    ansible_password: Literal-Pass-1\n  tasks:\n    - debug: msg=hi\n")
    with pytest.raises(InputError, match=r"password|secret"):
        plan_for_workers(load_plan(pb), {}, play_vars_loader)
    register_secret("Known-Secret-777")
    pb2 = tmp_path / "pb2.yml"
    pb2.write_text("- hosts: all\n  tasks:\n    - debug: msg='Known-Secret-777'\n")
    with pytest.raises(InputError, match="password"):
        plan_for_workers(load_plan(pb2), {}, play_vars_loader)
    (tmp_path / "secrets.yml").write_text("db_password: From-A-Vars-File-9\n")
    pb3 = tmp_path / "pb3.yml"
    pb3.write_text("- hosts: all\n  vars_files: [secrets.yml]\n  tasks:\n    - debug: msg=hi\n")
    with pytest.raises(InputError, match=r"password|secret"):
        plan_for_workers(load_plan(pb3), {}, play_vars_loader)


def test_worker_inventory_uses_the_controllers_selections() -> None:
    msg = BatchMessage(
        run_id="r1",
        nonce="0" * 32,
        batch_id="s-0001",
        site="s",
        issued=0.0,
        expires=0.0,
        playbook="pb.yml",
        plan={},
        options=BatchOptions(),
        hosts=[
            HostEntry(name="pc01", groups=["room101", "school"], vars={"x": 1}, inventory_file="/inv/school.yml"),
            HostEntry(name="pc02", groups=["room102", "school"], vars={"x": 2}),
        ],
        selections={"all[0]": ["pc01"], "school": ["pc01", "pc02"]},
    )
    view = batch_view(msg)
    assert view.select("all[0]") == ["pc01"]
    assert view.select("unknown") == []
    hv = view.host_vars("pc01")
    assert hv["x"] == 1 and hv["group_names"] == ["room101", "school"] and hv["inventory_dir"] == "/inv"
    assert view.groups["school"] == ["pc01", "pc02"] and view.groups_of("pc02") == ("all", "room102", "school")


def test_results_cross_the_wire_unchanged() -> None:
    for i in range(1, 41):
        host = make_host(i)
        assert host_result_from_json(json.loads(json.dumps(host_result_to_json(host)))) == host


def test_celery_app_is_json_only_with_late_acknowledgement() -> None:
    app = make_app("redis://127.0.0.1:1/0", task=lambda message: {})
    conf = app.conf
    assert conf.task_serializer == "json" and conf.result_serializer == "json"
    assert list(conf.accept_content) == ["json"] and list(conf.result_accept_content) == ["json"]
    assert conf.task_acks_late and conf.task_reject_on_worker_lost and conf.worker_prefetch_multiplier == 1
    assert conf.broker_url == "redis://127.0.0.1:1/0" and conf.result_backend is None and conf.task_ignore_result
    assert conf.worker_enable_remote_control is False
    assert conf.broker_transport_options["visibility_timeout"] >= 600
    assert queue_name("school_a") == "kmsfleet.site.school_a"
    assert "kmsfleet.run_batch" in app.tasks


def test_the_city_example_sends_its_password_template_not_a_password() -> None:
    from orchestrator.inventory.loader import load_inventory

    root = Path(__file__).resolve().parents[2]
    inv = load_inventory([str(root / "inventories" / "city")])
    sites = {inv.inventory_vars(h)["site"] for h in inv.hosts}
    assert sites == {"school_a", "school_b"}
    safe, withheld = sanitise_vars(inv.inventory_vars("b-room201-pc01"))
    assert safe["ansible_password"] == "{{ lookup('env', 'KMSFLEET_PASSWORD') }}"  # rendered on the worker
    assert safe["site"] == "school_b" and not withheld


def test_folders_of_killed_workers_are_swept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys
    import tempfile

    from orchestrator.distributed.worker import BATCH_DIR_PREFIX, sweep_batch_dirs

    argv = [sys.executable, "-c", "import os; print(os.getpid())"]
    dead = subprocess.run(argv, check=True, capture_output=True, text=True)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = tmp_path / f"{BATCH_DIR_PREFIX}{int(dead.stdout)}-abc"
    alive = tmp_path / f"{BATCH_DIR_PREFIX}{os.getpid()}-def"
    for folder in (gone, alive):
        folder.mkdir()
        (folder / "pb.yml").write_text("- hosts: all\n")
    assert sweep_batch_dirs() == 1
    assert not gone.exists() and alive.exists()


def test_with_loops_travel_as_plan_data_and_decode_equal(tmp_path: Path) -> None:
    pb = tmp_path / "pb.yml"
    pb.write_text(
        "- hosts: all\n  tasks:\n    - debug: msg={{ item }}\n      with_items: [[1, 2], 3]\n"
        "    - debug: msg={{ item.key }}\n      with_dict: {a: 1}\n      loop_control: {label: '{{ item.key }}'}\n"
    )
    plan = load_plan(pb)
    tasks = decode_plan(plan_for_workers(plan, {}, play_vars_loader)).plays[0].tasks
    assert [t.loop for t in tasks] == [t.loop for t in plan.plays[0].tasks]
    assert tasks[0].loop is not None and tasks[0].loop.keyword == "with_items"
    assert tasks[1].loop is not None and tasks[1].loop.keyword == "with_dict"
