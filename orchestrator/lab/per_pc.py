"""State a lab module keeps per simulated PC without adding fields to ``Machine`` (services, registry writes,
files): created on first use, dropped with the machine."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar
from weakref import WeakKeyDictionary

if TYPE_CHECKING:  # pragma: no cover
    from orchestrator.lab.machine import Machine

T = TypeVar("T")


class PerPc(Generic[T]):
    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._values: WeakKeyDictionary[Machine, T] = WeakKeyDictionary()
        self._lock = threading.Lock()

    def of(self, machine: Machine) -> T:
        with self._lock:
            found = self._values.get(machine)
            if found is None:
                found = self._values[machine] = self._factory()
            return found
