"""Ansible's --tags / --skip-tags rules, including always, never, tagged, untagged and all."""

from __future__ import annotations

import pytest

from orchestrator.errors import Location
from orchestrator.playbook import Block, Task, should_run

HERE = Location("site.yml", 1, 1)


def task(*tags: str) -> Task:
    return Task(
        location=HERE, file="site.yml", module="debug", module_as_written="debug", args={}, tags=frozenset(tags)
    )


@pytest.mark.parametrize(
    ("task_tags", "only", "skip", "runs"),
    [
        ((), (), (), True),
        (("kms",), (), (), True),
        (("never",), (), (), False),
        (("never", "debug"), (), (), False),
        (("always",), (), (), True),
        (("kms",), ("kms",), (), True),
        (("office",), ("kms",), (), False),
        ((), ("kms",), (), False),
        (("always",), ("kms",), (), True),
        (("never", "debug"), ("debug",), (), True),
        (("never",), ("never",), (), True),
        (("never",), ("all",), (), False),
        ((), ("untagged",), (), True),
        (("kms",), ("untagged",), (), False),
        (("kms",), ("tagged",), (), True),
        ((), ("tagged",), (), False),
        (("never", "x"), ("tagged",), (), False),
        (("kms",), ("all",), (), True),
        (("kms",), (), ("kms",), False),
        (("kms", "office"), ("office",), ("kms",), False),
        (("always",), (), ("always",), False),
        (("always",), (), ("all",), True),
        (("always",), (), ("all", "always"), False),
        (("kms",), (), ("all",), False),
        ((), (), ("untagged",), False),
        (("kms",), (), ("tagged",), False),
        ((), (), ("tagged",), True),
        (("always", "kms"), (), ("kms",), False),
    ],
)
def test_rules(task_tags: tuple[str, ...], only: tuple[str, ...], skip: tuple[str, ...], runs: bool) -> None:
    assert should_run(task(*task_tags), set(only), set(skip)) is runs


def test_none_means_no_option() -> None:
    assert should_run(task("kms"), None, None) is True
    assert should_run(task("never"), None, None) is False


def test_blocks_use_their_own_effective_tags() -> None:
    block = Block(location=HERE, file="site.yml", block=(task("kms"),), tags=frozenset({"kms"}))
    assert should_run(block, {"kms"}, set()) is True
    assert should_run(block, {"office"}, set()) is False
