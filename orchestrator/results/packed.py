"""Read-only mappings kept as compressed bytes, decoded on access: what a run must keep per PC until it ends but
reads rarely (a finished PC's variables for ``hostvars``).

Python objects cost 3-4 times their serialised size, and a run of thousands of PCs keeps such a mapping per PC.
``Packer.pack`` stores ``zlib(pickle(dict))``; the first mapping it packs (of a useful size) becomes the zlib
preset dictionary of every later one, so the keys, types and recurring values the PCs share are stored once, not
per PC: a PC's ~4.8 KB pickle of audit variables packs to ~0.2 KB (~1.9 KB with plain zlib).

Values come back equal to what was packed, with their types (``str`` subclasses, tuples, sets, dataclasses), as
new objects. The pickle is only ever loaded from bytes a ``Packer`` of this process wrote. A packed mapping
remembers the few keys read from it (a scan of many PCs for one key decodes each PC once). Reads and packs from
several threads are safe (the key cache is a dict filled under the GIL; a lost race decodes twice).
"""

from __future__ import annotations

import pickle
import threading
import zlib
from collections.abc import ItemsView, KeysView, Mapping, ValuesView
from typing import Any

#: Keys whose decoded value (or absence) a packed mapping remembers.
READ_CACHE = 4
#: zlib level: with a preset dictionary, 6 is about 30 % smaller than 1 on this data and still fast.
ZLIB_LEVEL = 6
#: A pickle shorter than this does not become the preset dictionary (a PC that stopped early says little).
MIN_ZDICT = 512

ABSENT: Any = object()


class Packed:
    """One packed mapping: its bytes, the preset dictionary they need, and the keys read so far."""

    __slots__ = ("_data", "_read", "_zdict")

    def __init__(self, data: bytes, zdict: bytes | None) -> None:
        self._data = data
        self._zdict = zdict
        self._read: dict[str, Any] = {}

    @property
    def size(self) -> int:
        return len(self._data)

    @property
    def data(self) -> bytes:
        """The packed bytes."""
        return self._data

    @property
    def with_zdict(self) -> bool:
        """Whether the bytes need their packer's preset dictionary."""
        return self._zdict is not None

    def raw(self) -> bytes:
        """The bytes that were packed."""
        if self._zdict is None:
            return zlib.decompress(self._data)
        inflater = zlib.decompressobj(zdict=self._zdict)
        return inflater.decompress(self._data) + inflater.flush()

    def decode(self) -> dict[str, Any]:
        """Every value (a new dict)."""
        values: dict[str, Any] = pickle.loads(self.raw())  # noqa: S301 - bytes a Packer of this process wrote
        return values

    def lookup(self, key: str) -> Any:
        """The value of ``key`` or ``ABSENT``, from the cache when read before."""
        found = self._read.get(key, self._read)  # the cache itself as "not cached" (no value can be it)
        if found is not self._read:
            return found
        found = self.decode().get(key, ABSENT)
        if len(self._read) < READ_CACHE:
            self._read[key] = found
        return found


class Packer:
    """Packs mappings of one kind (one run's PC variables) with a shared preset dictionary."""

    def __init__(self) -> None:
        self._zdict: bytes | None = None
        self._lock = threading.Lock()

    def packed(self, data: bytes, with_zdict: bool) -> Packed:
        """Bytes this packer packed (``Packed.data``, ``Packed.with_zdict``) as a ``Packed`` again."""
        return Packed(data, self._zdict if with_zdict else None)

    def pack(self, values: Mapping[str, Any]) -> Packed | None:
        """``values`` packed; None when some value cannot be pickled (the caller keeps the mapping as it is)."""
        try:
            raw = pickle.dumps(dict(values), protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError, RecursionError):
            return None
        return self.pack_raw(raw)

    def pack_raw(self, raw: bytes) -> Packed:
        """Bytes (a pickle) packed; the first of a useful size becomes the preset dictionary of the later ones."""
        zdict = self._zdict
        if zdict is None and len(raw) >= MIN_ZDICT:
            with self._lock:
                if self._zdict is None:
                    self._zdict = raw
                zdict = self._zdict
        if zdict is None:
            return Packed(zlib.compress(raw, ZLIB_LEVEL), None)
        deflater = zlib.compressobj(ZLIB_LEVEL, zdict=zdict)
        return Packed(deflater.compress(raw) + deflater.flush(), zdict)


class DecodedWalk(Mapping[str, Any]):
    """Base of the mappings over a ``Packed``: a walk (``keys``, ``items``, ``values``: rendering, ``thaw``,
    ``to_json``) reads one decoded copy (``_whole``), not one decode per key."""

    __slots__ = ()

    def _whole(self) -> Mapping[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def keys(self) -> KeysView[str]:
        return self._whole().keys()

    def items(self) -> ItemsView[str, Any]:
        return self._whole().items()

    def values(self) -> ValuesView[Any]:
        return self._whole().values()
