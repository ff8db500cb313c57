"""Shared fixtures. Every lab a test starts gets its own loopback block (127.<A>.x.y), claimed through
``orchestrator.lab.addresses`` so parallel workers and concurrent runs never collide."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchestrator.lab.addresses import Claim, claim_prefix


@pytest.fixture
def lab_block() -> Iterator[Claim]:
    """A claimed 127.<A> block; use f"{lab_block.prefix}.1" as a room subnet."""
    claim = claim_prefix()
    try:
        yield claim
    finally:
        claim.release()
