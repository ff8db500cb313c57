"""Fixtures for the lab's wire tests: start a real lab (real sockets, the real simulated PC) on this test's own
claimed loopback block and always stop it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from wirekit import StartLab, make_spec

from orchestrator.lab.addresses import Claim
from orchestrator.lab.runner import LabThread


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
