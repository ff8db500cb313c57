"""Finished PCs' results kept packed until the run ends: what ``RunResult.hosts`` holds for a local run.

A run keeps every PC's ``HostResult`` for its end (recap, classroom summary, history's ``finish_run``, reports).
As Python objects an audit PC's result (six task results, four licence records, facts, datetimes, strings) costs
kilobytes, and CPython's allocator never gives the arenas back (docs/performance.md, "Memory"), so thousands of
them set the run's peak RSS. ``KeptHosts`` packs each finished PC's result on arrival (``pickle`` + ``zlib``
with the preset dictionary of ``results.packed``: the task names, products and licence strings every PC shares
are stored once); ``PackedHosts`` is the finished run's ``hosts``: a read-only sequence that decodes one
``HostResult`` at a time when it is read, with the PCs' names and statuses kept apart, so counts, the exit code
and the history's bookkeeping read no result at all.

A task's ``data`` is packed already (``models.PackedData``): its compressed bytes go into the PC's pickle as they
are, with the name of their packer, not decoded and packed again. A result that cannot be pickled (a test's
odd value) is kept as it is. Each read returns a new ``HostResult`` equal to the one kept.
"""

from __future__ import annotations

import io
import pickle
import threading
from collections.abc import Iterable, Iterator, Sequence
from types import MappingProxyType
from typing import Any, overload

from orchestrator.results.models import HostResult, HostStatus, PackedData
from orchestrator.results.packed import Packed, Packer

_Kept = Packed | HostResult


def _read_only(values: dict[str, Any]) -> MappingProxyType[str, Any]:
    return MappingProxyType(values)


class _HostPickler(pickle.Pickler):
    """Pickles a ``HostResult``: its tasks' packed data kept packed (``PackedData.kept_reduce``), its frozen
    mappings (``models.freeze``: read-only proxies, which ``pickle`` refuses) as what they wrap."""

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is PackedData:
            return obj.kept_reduce()
        if type(obj) is MappingProxyType:
            return _read_only, (dict(obj),)
        return NotImplemented


def _pickled(result: HostResult) -> bytes | None:
    buffer = io.BytesIO()
    try:
        _HostPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(result)
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError):
        return None
    return buffer.getvalue()


def _unpacked(kept: _Kept) -> HostResult:
    if isinstance(kept, HostResult):
        return kept
    result: HostResult = pickle.loads(kept.raw())  # noqa: S301 - bytes a Packer of this process wrote
    return result


class PackedHosts(Sequence[HostResult]):
    """A run's hosts, in order, each decoded when read (see the module docstring). Equal to a tuple or list of
    equal ``HostResult``s."""

    __slots__ = ("_kept", "names", "statuses")

    def __init__(self, kept: Sequence[_Kept], names: Sequence[str], statuses: Sequence[HostStatus]) -> None:
        self._kept = tuple(kept)
        self.names: tuple[str, ...] = tuple(names)
        self.statuses: tuple[HostStatus, ...] = tuple(statuses)

    @overload
    def __getitem__(self, index: int) -> HostResult: ...

    @overload
    def __getitem__(self, index: slice) -> PackedHosts: ...

    def __getitem__(self, index: int | slice) -> HostResult | PackedHosts:
        if isinstance(index, slice):
            return PackedHosts(self._kept[index], self.names[index], self.statuses[index])
        return _unpacked(self._kept[index])

    def __len__(self) -> int:
        return len(self._kept)

    def __iter__(self) -> Iterator[HostResult]:
        return (_unpacked(kept) for kept in self._kept)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PackedHosts | tuple | list):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # a sequence compared by value, like a list

    def __repr__(self) -> str:
        return f"PackedHosts({list(self.names)!r})"


class KeptHosts:
    """The finished PCs of a running run, packed as they arrive (one preset dictionary per run). Thread-safe:
    PCs finish on their own threads."""

    def __init__(self) -> None:
        self._packer = Packer()
        self._kept: dict[str, tuple[_Kept, HostStatus]] = {}
        self._lock = threading.Lock()

    def __setitem__(self, host: str, result: HostResult) -> None:
        raw = _pickled(result)
        kept: _Kept = result if raw is None else self._packer.pack_raw(raw)
        with self._lock:
            self._kept[host] = (kept, result.status)

    def __getitem__(self, host: str) -> HostResult:
        return _unpacked(self._kept[host][0])

    def __contains__(self, host: object) -> bool:
        return host in self._kept

    def __len__(self) -> int:
        return len(self._kept)

    def ordered(self, hosts: Iterable[str]) -> PackedHosts:
        """The kept results of ``hosts`` (those that have one), in that order."""
        with self._lock:
            found = [(h, *self._kept[h]) for h in hosts if h in self._kept]
        return PackedHosts([k for _, k, _ in found], [h for h, _, _ in found], [s for _, _, s in found])


def host_names(hosts: Sequence[HostResult]) -> Sequence[str]:
    """The PCs' names of a run's hosts, without decoding packed ones."""
    if isinstance(hosts, PackedHosts):
        return hosts.names
    return tuple(h.host for h in hosts)
