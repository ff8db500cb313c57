"""What the lab's wire tests share (names imported by the test modules; the fixtures are in conftest.py).
A module of its own name: ``from conftest import …`` is ambiguous when several test folders have a conftest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
