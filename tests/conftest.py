"""Shared fixtures. Every lab a test starts gets its own loopback block (127.<A>.x.y), claimed through
``orchestrator.lab.addresses`` so parallel workers and concurrent runs never collide."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
from pgkit import pg_cluster, pg_url

from orchestrator.lab.addresses import Claim, claim_prefix

# A suite started in the background by a non-interactive shell (`cmd &`, nohup) inherits SIGINT *ignored*, and an
# ignored signal survives exec: every kmsfleet the tests start would ignore Ctrl-C and the interrupt tests could
# not interrupt anything. Give the suite (and so its children) the normal Ctrl-C handling back.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

__all__ = ["pg_cluster", "pg_url"]  # PostgreSQL fixtures (tests/pgkit.py), for any test module


@pytest.fixture
def lab_block() -> Iterator[Claim]:
    """A claimed 127.<A> block; use f"{lab_block.prefix}.1" as a room subnet."""
    claim = claim_prefix()
    try:
        yield claim
    finally:
        claim.release()


@pytest.fixture(autouse=True)
def _secrets_registered_by_a_test_stay_in_that_test() -> Iterator[None]:
    """The redactor's registry is process-wide (a run registers its secrets once); tests that run in one
    pytest worker must not see each other's secrets, or a value one test made secret is masked in the next."""
    from orchestrator import redact

    saved = redact.snapshot()
    try:
        yield
    finally:
        redact.restore(saved)
