"""Lab-wide shared state: the lab clock, the seeded random generator, the KMS endpoint and the machine registry.

One ``LabWorld`` exists per running lab. Every simulated PC reads time from ``world.clock`` (lab time = real UTC
now + an offset that the control API can advance, e.g. by 181 days), draws randomness from ``world.rng`` (seeded
from the spec so a lab is reproducible), and finds the lab KMS host through ``world.kms_endpoint()``.

Deviations/choices:
- Lab time moves with the real clock; ``advance(days)`` only adds to the offset (it never goes backwards unless
  given a negative number). Nothing happens "in the background" when time advances: every timer (grace periods,
  KMS validity, the KMS host's 30-day CMID window) is evaluated lazily from the clock when it is read.
- CMIDs and other identifiers are drawn from ``world.rng`` in host order, so the same spec and seed give the
  same CMIDs, keys' PIDs and serial numbers on every run.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from orchestrator.lab.spec import ResolvedLab
from orchestrator.lab.timing import LabTiming

if TYPE_CHECKING:  # pragma: no cover - typing only
    from orchestrator.lab.machine import Machine


class LabClock:
    """Lab time: real UTC now plus an offset. Thread-safe."""

    def __init__(self, offset: timedelta | None = None) -> None:
        self._lock = threading.Lock()
        self._offset = offset or timedelta(0)

    def now(self) -> datetime:
        """Current lab time, timezone-aware UTC."""
        with self._lock:
            offset = self._offset
        return datetime.now(UTC) + offset

    def advance(self, days: float) -> None:
        """Move lab time forward by ``days`` (fractions allowed; negative moves it back)."""
        with self._lock:
            self._offset += timedelta(days=days)

    @property
    def offset(self) -> timedelta:
        with self._lock:
            return self._offset

    def set_offset(self, offset: timedelta) -> None:
        with self._lock:
            self._offset = offset


class LabWorld:
    """Everything the simulated PCs of one lab share."""

    def __init__(self, resolved: ResolvedLab, seed: int | None = None) -> None:
        self.resolved = resolved
        self.seed = resolved.seed if seed is None else seed
        self.clock = LabClock()
        self.rng = random.Random(self.seed)
        self.kms_address = resolved.kms_address
        self.kms_port = resolved.kms.port
        # How long things take on the PCs (lab/timing.py); the runner replaces it with the lab's chosen mode.
        self.timing = LabTiming("instant", self.seed)
        self._lock = threading.RLock()
        self._machines: dict[str, Machine] = {}
        # PCs imaged without `sysprep /generalize` (spec: cloned_cmid) all share this one CMID.
        self.cloned_cmid = self.new_guid()
        self.cloned_office_cmid = self.new_guid()
        # Extended PID of the lab KMS host (a Windows Server 2016 host, en-US), shown by slmgr /dlv on clients.
        self.kms_host_epid = (
            f"03612-00206-{self.randint(100, 999):03d}-{self.randint(0, 999_999):06d}"
            f"-03-1033-14393.0000-{self.randint(1, 365):03d}2021"
        )

    # -- identifiers -------------------------------------------------------------------------------------
    def new_guid(self) -> str:
        """A lowercase GUID drawn from the lab's seeded generator (reproducible per seed)."""
        with self._lock:
            return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def randint(self, low: int, high: int) -> int:
        with self._lock:
            return self.rng.randint(low, high)

    # -- KMS ---------------------------------------------------------------------------------------------
    def kms_endpoint(self) -> tuple[str, int]:
        """(address, port) where the lab KMS host listens."""
        return self.kms_address, self.kms_port

    # -- machine registry ---------------------------------------------------------------------------------
    def register(self, machine: Machine) -> None:
        with self._lock:
            self._machines[machine.name.lower()] = machine

    def unregister(self, name: str) -> None:
        with self._lock:
            self._machines.pop(name.lower(), None)

    def machine(self, name: str) -> Machine | None:
        with self._lock:
            return self._machines.get(name.lower())

    def machines(self) -> list[Machine]:
        with self._lock:
            return list(self._machines.values())

    def __iter__(self) -> Iterator[Machine]:
        return iter(self.machines())

    def cmids(self) -> dict[str, str]:
        """Machine name -> Windows CMID, for audits of duplicate CMIDs (cloned images)."""
        return {m.name: m.cmid for m in self.machines()}
