"""A finished PC's variables kept compact for ``hostvars``: packed bytes (``results.packed``), decoded when read.

A PC's live variables (inventory variables, facts, set_fact and registered results, every string an
``UnsafeText``) cost tens of kilobytes as Python objects, and a run keeps them for every PC until it ends, because
another PC may still read them through ``hostvars`` (as in Ansible). ``FrozenVars`` holds them packed instead:
the same values, read-only, decoded on access (``UnsafeText`` stays unsafe). The few keys other PCs actually read
(the audit reads each PC's ``kmsfleet_cmid``) are remembered after their first decode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

from orchestrator.results.packed import ABSENT, DecodedWalk, Packed, Packer

_NO_OVERLAY: Mapping[str, Any] = MappingProxyType({})


class FrozenVars(DecodedWalk):
    """Read-only variables of a finished PC: ``base`` (its inventory variables, kept as they are: their values
    are shared between PCs, ``groups`` names every PC, and a copy per PC would grow with the square of the
    fleet), under the packed ones (facts, set_fact and registered results), under ``over`` (``-e``)."""

    __slots__ = ("_base", "_blob", "_over", "_over_templated", "_templated")

    def __init__(
        self,
        base: Mapping[str, Any],
        blob: Packed,
        over: Mapping[str, Any] = _NO_OVERLAY,
        over_templated: bool = False,
        templated: list[bool | None] | None = None,
    ) -> None:
        self._base = base
        self._blob = blob
        self._over = over
        self._over_templated = over_templated
        shared: list[bool | None] = [None] if templated is None else templated  # shared with over()'s views
        self._templated = shared

    @classmethod
    def encode(cls, base: Mapping[str, Any], own: Mapping[str, Any], packer: Packer) -> FrozenVars | None:
        """``own`` packed over ``base``; None when some value cannot be pickled (the caller keeps it live)."""
        blob = packer.pack(own)
        return None if blob is None else cls(base, blob)

    def over(self, extra: Mapping[str, Any], extra_templated: bool) -> FrozenVars:
        """A view of the same values with ``extra`` (``-e`` variables) winning over them."""
        merged = {**self._over, **extra}
        return FrozenVars(self._base, self._blob, merged, self._over_templated or extra_templated, self._templated)

    def templated(self, has_template: Callable[[Any], bool]) -> bool:
        """Whether any value is a template, found out once per PC (``groups`` makes it O(PCs)) and only when
        asked: when a template names ``hostvars`` and its values might need rendering."""
        if self._templated[0] is None:
            self._templated[0] = has_template(self._base) or has_template(self._blob.decode())
        return bool(self._templated[0]) or self._over_templated

    def _whole(self) -> Mapping[str, Any]:
        return self.thaw()

    def thaw(self) -> dict[str, Any]:
        """Every value, decoded (a new dict), the overlay applied."""
        values = dict(self._base)
        values.update(self._blob.decode())
        values.update(self._over)
        return values

    @property
    def encoded_size(self) -> int:
        return self._blob.size

    def __getitem__(self, key: str) -> Any:
        if key in self._over:
            return self._over[key]
        found = self._blob.lookup(key)
        if found is not ABSENT:
            return found
        return self._base[key]

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        return key in self._over or key in self._base or self._blob.lookup(key) is not ABSENT

    def __iter__(self) -> Iterator[str]:
        return iter(self.thaw())

    def __len__(self) -> int:
        return len(self.thaw())
