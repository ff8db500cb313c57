"""A finished PC's variables kept compact for ``hostvars``: packed bytes (``results.packed``), decoded when read.

A PC's live variables (inventory variables, facts, set_fact and registered results, every string an
``UnsafeText``) cost tens of kilobytes as Python objects, and a run keeps them for every PC until it ends, because
another PC may still read them through ``hostvars`` (as in Ansible). ``FrozenVars`` holds them packed instead:
the same values, read-only, decoded on access (``UnsafeText`` stays unsafe). The few keys other PCs actually read
(the audit reads each PC's ``kmsfleet_cmid``) are remembered after their first decode.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from orchestrator.results.packed import ABSENT, DecodedWalk, Packed, Packer


class FrozenVars(DecodedWalk):
    """Read-only variables of a finished PC: ``base`` (its inventory variables, kept as they are: their values
    are shared between PCs, ``groups`` names every PC, and a copy per PC would grow with the square of the
    fleet), under the packed ones (facts, set_fact and registered results). ``-e`` variables are laid over them
    by ``templating.HostVars``, which also renders them in this PC's own context."""

    __slots__ = ("_base", "_blob")

    def __init__(self, base: Mapping[str, Any], blob: Packed) -> None:
        self._base = base
        self._blob = blob

    @classmethod
    def encode(cls, base: Mapping[str, Any], own: Mapping[str, Any], packer: Packer) -> FrozenVars | None:
        """``own`` packed over ``base``; None when some value cannot be pickled (the caller keeps it live)."""
        blob = packer.pack(own)
        return None if blob is None else cls(base, blob)

    def _whole(self) -> Mapping[str, Any]:
        return self.thaw()

    def thaw(self) -> dict[str, Any]:
        """Every value, decoded (a new dict)."""
        values = dict(self._base)
        values.update(self._blob.decode())
        return values

    @property
    def encoded_size(self) -> int:
        return self._blob.size

    def __getitem__(self, key: str) -> Any:
        found = self._blob.lookup(key)
        if found is not ABSENT:
            return found
        return self._base[key]

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        return key in self._base or self._blob.lookup(key) is not ABSENT

    def __iter__(self) -> Iterator[str]:
        return iter(self.thaw())

    def __len__(self) -> int:
        return len(self.thaw())
