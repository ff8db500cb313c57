"""The retry policy: which transport errors may go away when asked again, and the bounded retry loop (tenacity).

Decisions test the error's ``cause`` (and a fault's codes), never its message. Only read-only calls are retried,
each time on a fresh connection; state-changing calls (method invokes, commands not marked read-only) never are.
Authentication failures are never retried: retries lock domain accounts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from orchestrator.transport.errors import Cause, TransportError, WSManFault

T = TypeVar("T")

#: Causes worth another try on a fresh connection: a time-out (connect or read) and a dropped connection. Refused
#: (the PC is off), TLS, the budget, a stop, refused credentials and hostile or malformed answers are not.
TRANSIENT_CAUSES: frozenset[Cause] = frozenset({"timeout", "dropped"})


def is_transient(err: TransportError) -> bool:
    """May ``err`` go away when the call is made again on a fresh connection?"""
    if isinstance(err, WSManFault):
        return err.transient  # classified by its codes (transport.errors)
    return err.cause in TRANSIENT_CAUSES


class _Transient(Exception):
    """Marker wrapper so tenacity knows an error may go away on a fresh connection."""

    def __init__(self, error: TransportError) -> None:
        self.error = error
        super().__init__(str(error))


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``attempts`` tries, stopped early once ``give_up()`` (the host's deadline is near, the run stops);
    exponential waits of 0.2 s up to 2 s between them."""

    attempts: int
    give_up: Callable[[], bool]

    def run(self, op: Callable[[], T], *, read_only: bool, on_transient: Callable[[], None]) -> T:
        """``op()`` (which raises only ``TransportError`` for the host's failures); a read-only ``op`` is tried
        again on a transient error, after ``on_transient()`` (drop the connection)."""

        def attempt() -> T:
            try:
                return op()
            except TransportError as err:
                if read_only and is_transient(err):
                    on_transient()
                    raise _Transient(err) from None
                raise

        if not read_only:
            return attempt()

        def stop(retry_state: Any) -> bool:
            return bool(retry_state.attempt_number >= self.attempts or self.give_up())

        try:
            for try_ in Retrying(
                stop=stop_after_attempt(self.attempts) | stop,  # type: ignore[operator]
                wait=wait_exponential(multiplier=0.2, max=2.0),
                retry=retry_if_exception(lambda e: isinstance(e, _Transient)),
                reraise=True,
            ):
                with try_:
                    return attempt()
        except _Transient as t:
            raise t.error from None
        raise AssertionError("unreachable")  # pragma: no cover
