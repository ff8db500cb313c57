"""One assembly of a run for every engine: the API's inventory view and a distributed worker's batch view are
built by the same function and give each PC the same variables; the API picks the engine."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from orchestrator.api import RunRequest, ad_hoc_plan, inventory_view, local_engine
from orchestrator.distributed.controller import DistributedEngine, DistributedOptions
from orchestrator.distributed.message import BatchMessage, BatchOptions, HostEntry, encode_value
from orchestrator.distributed.worker import batch_view
from orchestrator.errors import InputError
from orchestrator.executor.engine import Engine, ThreadEngine
from orchestrator.executor.multiproc import ProcessEngine
from orchestrator.executor.state import RunOptions
from orchestrator.inventory.loader import load_inventory

INVENTORY = """\
all:
  vars: {kms_host: kms.school.example}
  children:
    school_a:
      vars: {site: a}
      children:
        room101:
          hosts:
            pc01.school.example: {seat: 1}
            pc02.school.example: {seat: 2, nested: {list: [1, 2]}}
        room102:
          hosts:
            pc03.school.example:
"""


def test_the_worker_sees_each_pc_as_a_local_run_does(tmp_path: Path) -> None:
    path = tmp_path / "inv.yml"
    path.write_text(INVENTORY, encoding="utf-8")
    inv = load_inventory([str(path)])
    local = inventory_view(inv)
    hosts = [
        HostEntry(
            name=h,
            groups=list(local.group_names(h)),
            vars=encode_value(local.variables(h)),
            inventory_file=local.inventory_file(h),
        )
        for h in local.hosts
    ]
    msg = BatchMessage(
        run_id="r1",
        nonce="0" * 32,
        batch_id="a-0001",
        site="a",
        issued=0.0,
        expires=0.0,
        playbook="pb.yml",
        plan={},
        options=BatchOptions(),
        hosts=hosts,
        selections={"room101": ["pc01.school.example", "pc02.school.example"]},
    )
    remote = batch_view(msg)
    for h in local.hosts:
        mine, theirs = dict(local.host_vars(h)), dict(remote.host_vars(h))
        assert mine.pop("groups") == theirs.pop("groups") | {"ungrouped": []}
        assert mine == theirs
        assert mine["inventory_hostname_short"] == h.split(".")[0] and mine["inventory_dir"] == str(tmp_path)
        assert local.groups_of(h) == remote.groups_of(h)
    first, second = remote.host_vars("pc01.school.example"), remote.host_vars("pc03.school.example")
    assert first["groups"] is second["groups"]  # one shared mapping, in the worker too
    assert remote.select("room101") == local.select("room101")


def test_the_api_picks_the_engine() -> None:
    plan = ad_hoc_plan("ping", "win_ping", {})
    assert isinstance(local_engine(plan, RunRequest(playbook="x", inventory=[])), ThreadEngine)
    assert isinstance(local_engine(plan, RunRequest(playbook="x", inventory=[], processes=3)), ProcessEngine)
    serial = dataclasses.replace(plan, plays=(dataclasses.replace(plan.plays[0], serial=(1,)),))
    with pytest.raises(InputError, match="serial"):
        local_engine(serial, RunRequest(playbook="x", inventory=[], processes=2))
    engines: list[Engine] = [  # each is an Engine (mypy checks the protocol here)
        ThreadEngine(RunOptions()),
        ProcessEngine(2, RunOptions()),
        DistributedEngine(RunOptions(), DistributedOptions(broker="redis://127.0.0.1:1/0")),
    ]
    assert all(callable(e.run) for e in engines)
