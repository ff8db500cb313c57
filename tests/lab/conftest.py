"""Fixtures for the lab's wire tests: start a real lab (real sockets, the real simulated PC) on this test's own
claimed loopback block and always stop it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from orchestrator.lab.addresses import Claim
from orchestrator.lab.runner import LabThread
from orchestrator.lab.spec import LabSpec, parse_spec

USER = "administrator"
PASSWORD = "Lab-Passw0rd!"


def make_spec(
    block: Claim,
    hosts: list[dict[str, Any]] | None = None,
    *,
    defaults: dict[str, Any] | None = None,
    kms: dict[str, Any] | None = None,
    seed: int = 0,
    password: str = PASSWORD,
) -> LabSpec:
    room: dict[str, Any] = {
        "room": "lab1",
        "subnet": f"{block.prefix}.1",
        "credentials": {"user": USER, "password": password},
        "hosts": hosts or [{"name": "pc[01:02]"}],
        "seed": seed,
    }
    if defaults:
        room["defaults"] = defaults
    if kms:
        room["kms"] = kms
    return parse_spec(room)


StartLab = Callable[..., LabThread]


@pytest.fixture
def start_lab(lab_block: Claim) -> Iterator[StartLab]:
    """``start_lab(hosts=[...], defaults={...}, allow_unencrypted=True, ...)`` → a started ``LabThread``."""
    labs: list[LabThread] = []

    def _start(
        hosts: list[dict[str, Any]] | None = None,
        *,
        defaults: dict[str, Any] | None = None,
        kms: dict[str, Any] | None = None,
        seed: int = 0,
        **lab_kwargs: Any,
    ) -> LabThread:
        spec = make_spec(lab_block, hosts, defaults=defaults, kms=kms, seed=seed)
        lab = LabThread(spec, **lab_kwargs)
        labs.append(lab)
        lab.start(timeout=60)
        return lab

    try:
        yield _start
    finally:
        for lab in labs:
            lab.stop()
