"""The contract between the lab's WS-Management front end (``lab.wsman``) and the simulated Windows PC
behind it (``lab.machine``). The front end speaks HTTP, auth, SOAP and WinRS; the machine owns all state:
WMI classes, licensing, the clock, commands. Neither knows how the other works.

Values are plain Python data; the front end serialises them the way Windows does (see ``CimValue``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Literal, NamedTuple, Protocol

CimType = Literal[
    "string", "boolean", "uint8", "uint16", "uint32", "uint64", "sint16", "sint32", "sint64", "real64", "datetime"
]
CimScalar = str | bool | int | float | datetime | None
CimValue = CimScalar | tuple[CimScalar, ...]  # a tuple is a CIM array: the element is repeated on the wire
# A method's input parameters reach the simulated host as text; an array parameter (its element repeated in the
# _INPUT body) as its elements joined with NUL, which XML 1.0 text cannot contain, so the joining is lossless.
ARRAY_JOIN = "\x00"


class CimProperty(NamedTuple):
    """One property of an instance. A named tuple rather than a dataclass: a licensing query builds a few hundred
    per request, and a tuple is built (and hashed, cim.py memoises rendered properties) several times faster."""

    name: str
    type: CimType
    value: CimValue  # None is sent as xsi:nil="true"; datetime as <cim:Datetime>ISO-8601</cim:Datetime>


# (plan id, slot positions, the values outside the slots, their Python types): see lab/wsman/cim.py
RowKey = tuple[int, tuple[int, ...], tuple[CimValue, ...], tuple[type, ...]]


# CimProperty from a (name, type, value) tuple without a Python-level call: a licensing row has ~60 properties
_new_property: Callable[[tuple[str, CimType, CimValue]], CimProperty] = partial(tuple.__new__, CimProperty)


class CimInstance:
    """One WMI instance: its class, its properties in class order, its namespace.

    An instance a class builder makes from its property plan (``CimInstance.planned``, lab/wmi_classes.py) keeps
    the plan's names and types and the row's values, and builds its ``CimProperty`` tuples only when something
    asks for ``properties``: a row rendered from its template (lab/wsman/cim.py) needs only its slots. Instances
    are not changed after they are made; equality and hashing are by class, properties and namespace."""

    __slots__ = ("_planned", "_properties", "class_name", "namespace", "row_key")

    def __init__(
        self,
        class_name: str,
        properties: tuple[CimProperty, ...],
        namespace: str = "root/cimv2",
        row_key: RowKey | None = None,
    ) -> None:
        self.class_name = class_name  # e.g. "SoftwareLicensingProduct"
        self.namespace = namespace
        # What the row's text depends on apart from its slots (lab/wsman/cim.py, "Row templates"): set only by a
        # builder that knows its property plan; None renders property by property.
        self.row_key = row_key
        self._properties: tuple[CimProperty, ...] | None = properties
        self._planned: tuple[tuple[str, ...], tuple[CimType, ...], tuple[CimValue, ...]] | None = None

    @classmethod
    def planned(
        cls,
        class_name: str,
        plan: tuple[tuple[str, ...], tuple[CimType, ...], tuple[CimValue, ...]],
        namespace: str,
        row_key: RowKey,
    ) -> CimInstance:
        """An instance from (names, types, values) in class order, its properties built on first use."""
        inst = cls(class_name, (), namespace, row_key)
        inst._properties, inst._planned = None, plan
        return inst

    @property
    def properties(self) -> tuple[CimProperty, ...]:
        props = self._properties
        if props is None:
            assert self._planned is not None
            props = self._properties = tuple(map(_new_property, zip(*self._planned, strict=True)))
        return props

    def property_at(self, position: int) -> CimProperty:
        """The property at ``position`` in class order, without building the others."""
        if self._properties is None and self._planned is not None:
            names, types, values = self._planned
            return CimProperty(names[position], types[position], values[position])
        return self.properties[position]

    def without_template(self) -> CimInstance:
        return CimInstance(self.class_name, self.properties, self.namespace)

    def get(self, name: str) -> CimValue:
        for p in self.properties:
            if p.name.lower() == name.lower():
                return p.value
        raise KeyError(name)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CimInstance):
            return NotImplemented
        return (self.class_name, self.properties, self.namespace) == (
            other.class_name,
            other.properties,
            other.namespace,
        )

    def __hash__(self) -> int:
        return hash((self.class_name, self.properties, self.namespace))

    def __repr__(self) -> str:
        return f"CimInstance({self.class_name!r}, {self.properties!r}, {self.namespace!r})"


class WmiError(Exception):
    """A WMI failure. The front end turns it into the fault Windows sends (HTTP 500, SOAP fault with
    ``WSManFault@Code`` and, for provider errors, an ``MSFT_WmiError`` carrying ``error_Code``)."""

    def __init__(self, hresult: int, message: str, *, kind: str = "provider") -> None:
        self.hresult = hresult & 0xFFFFFFFF
        self.message = message
        # kind: "provider" (method/licensing failure), "invalid_class" (unknown WQL class / resource),
        # "invalid_query" (WQL syntax), "not_found" (no instance for the selectors),
        # "invalid_parameter", "access_denied"
        self.kind = kind
        super().__init__(f"0x{self.hresult:08X} {message}")


@dataclass(frozen=True)
class CommandOutcome:
    stdout: bytes
    stderr: bytes = b""
    exit_code: int = 0
    duration_s: float = 0.0  # simulated run time; Receive long-polls until it has passed


@dataclass(frozen=True)
class PreparedCommand:
    """A command line the machine has parsed. When ``needs_stdin`` the front end collects ``Send`` data
    until ``End="true"`` before calling ``run``; when ``interactive`` as well, the command reads its stdin line
    by line as it arrives (an interactive ``cmd``): the front end starts it at once with a ``CommandPipe``, feeds
    it each ``Send`` and releases what it writes to Receive as it is written."""

    command_line: str
    needs_stdin: bool = False
    interactive: bool = False


class CommandPipe:
    """The live stdin and output of an interactive command (see ``PreparedCommand.interactive``).

    The front end ``feed``s the bytes of each Send and ``close``s at ``End="true"``; the command awaits
    ``read_line`` (``None`` at the end of stdin) and ``write``s its output, which goes to ``on_output`` at once.
    """

    def __init__(self, on_output: Callable[[bytes, bytes], None]) -> None:
        self._on_output = on_output
        self._buffer = bytearray()
        self._closed = False
        self._arrived = asyncio.Event()
        self.waiting = False  # the command is blocked on stdin (an idle shell may then expire)

    def feed(self, data: bytes) -> None:
        self._buffer.extend(data)
        self._arrived.set()

    def close(self) -> None:
        self._closed = True
        self._arrived.set()

    async def read_line(self) -> bytes | None:
        """The next line with its end of line, the unterminated rest at the end of stdin, or ``None`` after."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[: end + 1])
                del self._buffer[: end + 1]
                return line
            if self._closed:
                rest = bytes(self._buffer)
                self._buffer.clear()
                return rest or None
            self._arrived.clear()
            self.waiting = True
            try:
                await self._arrived.wait()
            finally:
                self.waiting = False

    def write(self, stdout: bytes = b"", stderr: bytes = b"") -> None:
        if stdout or stderr:
            self._on_output(stdout, stderr)


@dataclass
class ShellContext:
    """What a WinRS shell was created with."""

    user: str
    environment: dict[str, str] = field(default_factory=dict)
    working_directory: str | None = None
    codepage: int = 437
    no_profile: bool = False


class SimulatedHost(Protocol):
    """One simulated Windows PC as the WS-Management front end sees it."""

    name: str
    address: str

    def check_credentials(self, user: str, password: str) -> bool:
        """Basic auth check. (NTLM uses ``ntlm_credentials``.)"""
        ...

    def ntlm_credentials(self) -> tuple[str, str]:
        """(user, password) the NTLM acceptor validates against."""
        ...

    def wql(self, query: str, namespace: str = "root/cimv2") -> list[CimInstance]:
        """Run a WQL SELECT. Raises ``WmiError`` (kind invalid_query / invalid_class)."""
        ...

    def get_instance(self, class_name: str, selectors: dict[str, str], namespace: str = "root/cimv2") -> CimInstance:
        """WS-Transfer Get of one instance (or the singleton when ``selectors`` is empty)."""
        ...

    def class_names(self, namespace: str = "root/cimv2") -> frozenset[str]: ...

    async def invoke(
        self,
        class_name: str,
        method: str,
        selectors: dict[str, str],
        params: dict[str, str],
        user: str,
        namespace: str = "root/cimv2",
    ) -> list[CimProperty]:
        """Invoke a WMI method; returns the _OUTPUT properties, ``ReturnValue`` first.
        Raises ``WmiError`` for failures Windows reports as faults (e.g. Activate → 0xC004F074)."""
        ...

    def prepare(self, command: str, arguments: list[str], shell: ShellContext) -> PreparedCommand: ...

    async def run(
        self, prepared: PreparedCommand, stdin: bytes, shell: ShellContext, pipe: CommandPipe | None = None
    ) -> CommandOutcome:
        """Execute a command line (state changes happen here) and return what it printed. An interactive
        command gets ``pipe`` (and no ``stdin``): what it wrote there is not repeated in the outcome."""
        ...
