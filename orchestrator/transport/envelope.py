"""WS-Man request envelopes as cached byte templates: one ElementTree build per *shape*, a byte join per request.

pypsrp 0.9's ``WSMan.invoke`` builds every request from scratch: ``_create_header`` makes a dozen elements, the body
is appended and ``ET.tostring`` serialises the whole tree (together ~10 % of the controller's CPU in a fleet
audit, docs/performance.md "Envelopes"). Yet most of an envelope is the same for every request of one kind; only
the MessageID, the OperationTimeout, the session id, the address (``wsa:To``), the selector values and a few body
texts change. So:

- a **shape** is everything that fixes the bytes around those values: action, resource URI, the option set
  (names, values, attributes), the selector names, locale, data locale, MaxEnvelopeSize and the body's shape;
- its **template** is made once, by pypsrp's own code (``WSMan._create_header`` on a stand-in whose per-request
  values are markers, the body built with markers, ``ET.tostring`` exactly as ``invoke`` calls it), then cut at
  the markers into literal byte chunks and slots. The bytes are therefore pypsrp's, prefixes and namespace
  declarations included (tests/unit/test_envelope.py compares every shape the product sends);
- a request is ``b"".join`` of the chunks and its values, each escaped as ElementTree escapes text or an
  attribute value (``&``, ``<``, ``>``; in attributes also ``"``, CR, LF, TAB as character references).

What is not a fixed shape (a body handed in as an ``ET.Element``, e.g. pypsrp's own WinRS Create) goes through
pypsrp unchanged; so does a request with an empty text value (ElementTree writes ``<a />`` for it, the template
``<a></a>``: the same XML, but not the same bytes).

Upstream (pypsrp): ``WSMan`` would keep such a template cache keyed like ``Shape`` below in ``invoke`` (and
``_create_header`` would take the MessageID instead of drawing it), with bodies given as a template plus values;
callers that pass an ``ET.Element`` keep today's path.
"""

from __future__ import annotations

import re
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import cast

from pypsrp.wsman import NAMESPACES, OptionSet, SelectorSet, WSMan

_MARK = "@KMSFLEET-SLOT-{}@"  # '@', '-' and digits: ElementTree escapes none of them, in text or attributes
_MARK_RE = re.compile(rb"@KMSFLEET-SLOT-(\d+)@")
#: Slots every envelope has, in this order; selector values and body texts follow.
_MESSAGE, _TIMEOUT, _SESSION, _TO = range(4)
_HEADER_SLOTS = 4
#: Shapes kept per process (the product sends a few dozen; bounded against a caller inventing shapes).
MAX_SHAPES = 1024


@dataclass(frozen=True, slots=True)
class Body:
    """A request body of a fixed shape. ``shape`` (hashable, naming the builder first) fixes every byte but the
    ``values``; ``build(values)`` makes the body element as pypsrp would be given it."""

    shape: Hashable
    build: Callable[[Sequence[str]], ET.Element]
    values: tuple[str, ...] = ()

    def element(self) -> ET.Element:
        return self.build(self.values)


@dataclass(frozen=True, slots=True)
class Template:
    """Literal chunks around slots: ``chunks[0] + value(slots[0]) + chunks[1] + … + chunks[-1]``."""

    chunks: tuple[bytes, ...]
    slots: tuple[int, ...]  # index into the request's values, per gap between chunks
    attribute: tuple[bool, ...]  # per gap: an attribute value (else element text)

    def render(self, values: Sequence[str]) -> bytes:
        parts: list[bytes] = [self.chunks[0]]
        for chunk, slot, attribute in zip(self.chunks[1:], self.slots, self.attribute, strict=True):
            text = values[slot]
            parts.append(
                (escape_attribute(text) if attribute else escape_text(text)).encode("utf-8", "xmlcharrefreplace")
            )
            parts.append(chunk)
        return b"".join(parts)


def escape_text(text: str) -> str:
    """Element text as ElementTree writes it (``xml.etree.ElementTree._escape_cdata``)."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


_ATTRIBUTE_ONLY = (('"', "&quot;"), ("\r", "&#13;"), ("\n", "&#10;"), ("\t", "&#09;"))


def escape_attribute(text: str) -> str:
    """An attribute value as ElementTree writes it (``_escape_attrib``): text escaping plus the quote, CR, LF and
    TAB as references (an unescaped line end in an attribute would be normalised to a space by the reader)."""
    text = escape_text(text)
    for char, reference in _ATTRIBUTE_ONLY:
        if char in text:
            text = text.replace(char, reference)
    return text


def _set_key(wsman_set: OptionSet | SelectorSet | None, *, with_values: bool) -> Hashable:
    if wsman_set is None:
        return None
    return tuple(
        (name, value if with_values else None, tuple(attributes.items()))  # in order: ElementTree keeps it
        for name, value, attributes in wsman_set.values
    )


@dataclass(frozen=True, slots=True)
class Shape:
    """What fixes an envelope's bytes apart from its slots (the key of the template cache)."""

    action: str
    resource_uri: str
    options: Hashable
    selectors: Hashable
    locale: str
    data_locale: str
    max_envelope_size: int
    body: Hashable


def _marked_set(kind: type[SelectorSet], selectors: SelectorSet, first: int) -> SelectorSet:
    marked = kind()
    for offset, (name, _value, attributes) in enumerate(selectors.values):
        marked.add_option(name, _MARK.format(first + offset), dict(attributes))
    return marked


def build_template(
    client: WSMan,
    action: str,
    resource_uri: str,
    body: Body | None,
    option_set: OptionSet | None,
    selector_set: SelectorSet | None,
) -> Template:
    """The template of one shape, serialised by pypsrp's own header code and ``ET.tostring`` as ``invoke`` does."""
    stand_in = SimpleNamespace(
        locale=client.locale,
        data_locale=client.data_locale,
        max_envelope_size=client.max_envelope_size,
        operation_timeout=0,
        session_id=_MARK.format(_SESSION),
        transport=SimpleNamespace(endpoint=_MARK.format(_TO)),
    )
    selectors = selector_set.values if selector_set is not None else []
    marked = _marked_set(SelectorSet, selector_set, _HEADER_SLOTS) if selector_set is not None else None
    message_id, header = WSMan._create_header(
        cast(WSMan, stand_in), action, resource_uri, option_set, marked, cast(int, _MARK.format(_TIMEOUT))
    )
    s = NAMESPACES["s"]
    envelope = ET.Element(f"{{{s}}}Envelope")
    envelope.append(header)
    body_element = ET.SubElement(envelope, f"{{{s}}}Body")
    first_body = _HEADER_SLOTS + len(selectors)
    if body is not None:
        marks = tuple(_MARK.format(first_body + i) for i in range(len(body.values)))
        body_element.append(body.build(marks))
    xml = ET.tostring(envelope, encoding="utf-8", method="xml")
    xml = xml.replace(f"uuid:{message_id}".encode(), _MARK.format(_MESSAGE).encode())
    return _cut(xml, first_body + (len(body.values) if body is not None else 0))


def _cut(xml: bytes, slot_count: int) -> Template:
    """``xml`` cut at its markers; each of the ``slot_count`` markers must appear exactly once."""
    pieces = _MARK_RE.split(xml)
    chunks = tuple(pieces[0::2])
    slots = tuple(int(p) for p in pieces[1::2])
    if sorted(slots) != list(range(slot_count)):
        raise ValueError(f"envelope template has slots {slots}, expected each of 0..{slot_count - 1} once")
    attribute = tuple(chunk.endswith(b'="') for chunk in chunks[:-1])
    return Template(chunks, slots, attribute)


class TemplateCache:
    """Templates by shape, bounded (``MAX_SHAPES``; emptied when full). Safe across threads: at worst two threads
    build the same template once each."""

    def __init__(self, limit: int = MAX_SHAPES) -> None:
        self._limit = limit
        self._templates: dict[Shape, Template] = {}
        self._lock = threading.Lock()

    def get(self, shape: Shape, build: Callable[[], Template]) -> Template:
        template = self._templates.get(shape)
        if template is None:
            template = build()
            with self._lock:
                if len(self._templates) >= self._limit:
                    self._templates.clear()
                self._templates[shape] = template
        return template

    def __len__(self) -> int:
        return len(self._templates)


TEMPLATES = TemplateCache()


def render(
    client: WSMan,
    action: str,
    resource_uri: str,
    body: Body | None,
    option_set: OptionSet | None = None,
    selector_set: SelectorSet | None = None,
    timeout: int | None = None,
    message_id: str | None = None,
) -> tuple[str, bytes] | None:
    """(MessageID, envelope bytes) of one request as pypsrp's ``invoke`` would send it; None when the request
    is not templated (an empty text value)."""
    selector_values = tuple(str(v) for _n, v, _a in selector_set.values) if selector_set is not None else ()
    body_values = body.values if body is not None else ()
    if "" in body_values or "" in selector_values:
        return None  # ElementTree writes an empty element short (<a />); leave it to pypsrp
    shape = Shape(
        action,
        resource_uri,
        _set_key(option_set, with_values=True),
        _set_key(selector_set, with_values=False),
        client.locale,
        client.data_locale,
        client.max_envelope_size,
        body.shape if body is not None else None,
    )
    template = TEMPLATES.get(
        shape, lambda: build_template(client, action, resource_uri, body, option_set, selector_set)
    )
    message = f"uuid:{message_id or str(uuid.uuid4()).upper()}"
    header = (
        message,
        str(timeout or client.operation_timeout),
        str(client.session_id).upper(),
        client.transport.endpoint,
    )
    return message, template.render(header + selector_values + body_values)
