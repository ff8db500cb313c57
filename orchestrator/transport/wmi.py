"""WMI over WS-Management: the XML bodies for WQL Enumerate/Pull and method Invoke (as ``envelope.Body``: a fixed
shape and its values, rendered from a cached template), and the parsing of WMI instances into plain
dictionaries. Pure functions over ``xml.etree`` elements; no I/O here."""

from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from orchestrator.transport import cim_types
from orchestrator.transport.envelope import Body

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "wsman": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "wsen": "http://schemas.xmlsoap.org/ws/2004/09/enumeration",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
    "cim": "http://schemas.dmtf.org/wbem/wscim/1/common",
    "wsmanfault": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
}
WQL_DIALECT = "http://schemas.microsoft.com/wbem/wsman/1/WQL"
WMI_BASE = "http://schemas.microsoft.com/wbem/wsman/1/wmi"
NIL = f"{{{NS['xsi']}}}nil"

WmiObject = dict[str, Any]


def wql_quote(value: str) -> str:
    """A WQL string literal: single-quoted, with backslashes and quotes escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def class_uri(class_name: str, namespace: str = "root/cimv2") -> str:
    return f"{WMI_BASE}/{namespace.strip('/').replace(chr(92), '/')}/{class_name}"


def enumerate_uri(namespace: str = "root/cimv2") -> str:
    return f"{WMI_BASE}/{namespace.strip('/').replace(chr(92), '/')}/*"


def _enumerate_element(max_elements: int, values: Sequence[str]) -> ET.Element:
    enum = ET.Element(f"{{{NS['wsen']}}}Enumerate")
    ET.SubElement(enum, f"{{{NS['wsman']}}}OptimizeEnumeration")
    ET.SubElement(enum, f"{{{NS['wsman']}}}MaxElements").text = str(max_elements)
    ET.SubElement(enum, f"{{{NS['wsman']}}}Filter", Dialect=WQL_DIALECT).text = values[0]
    return enum


def enumerate_body(query: str, max_elements: int = 32000) -> Body:
    """An optimized WQL Enumerate (MS-WSMV 3.1.4.8): the query is its one value."""
    return Body(("enumerate", max_elements), functools.partial(_enumerate_element, max_elements), (query,))


def _pull_element(max_elements: int, values: Sequence[str]) -> ET.Element:
    pull = ET.Element(f"{{{NS['wsen']}}}Pull")
    ET.SubElement(pull, f"{{{NS['wsen']}}}EnumerationContext").text = values[0]
    ET.SubElement(pull, f"{{{NS['wsen']}}}MaxElements").text = str(max_elements)
    return pull


def pull_body(context: str, max_elements: int = 32000) -> Body:
    """A Pull of an enumeration: the context is its one value."""
    return Body(("pull", max_elements), functools.partial(_pull_element, max_elements), (context,))


#: How one parameter value of a method call is written: its text (a slot), true/false, or xsi:nil.
_TEXT, _TRUE, _FALSE, _NIL = "text", "true", "false", "nil"
InvokeLayout = tuple[tuple[str, tuple[str, ...]], ...]  # per parameter: its name and how each value is written


def _invoke_element(uri: str, method: str, layout: InvokeLayout, values: Sequence[str]) -> ET.Element:
    inp = ET.Element(f"{{{uri}}}{method}_INPUT")
    texts = iter(values)
    for name, kinds in layout:
        for kind in kinds:
            child = ET.SubElement(inp, f"{{{uri}}}{name}")
            if kind == _NIL:
                child.set(NIL, "true")
            else:
                child.text = next(texts) if kind == _TEXT else kind
    return inp


def _value_kind(value: Any) -> str:
    if value is None:
        return _NIL
    if isinstance(value, bool):
        return _TRUE if value else _FALSE
    return _TEXT


def invoke_body(class_name: str, method: str, params: dict[str, Any], namespace: str = "root/cimv2") -> Body:
    """A method's ``<Method>_INPUT`` (MS-WSMV 3.1.4.17): an array parameter is one element per value, NULL is
    ``xsi:nil``, booleans are true/false; every other value is text (a slot of the template)."""
    uri = class_uri(class_name, namespace)
    layout: list[tuple[str, tuple[str, ...]]] = []
    texts: list[str] = []
    for name, value in params.items():
        values = value if isinstance(value, list | tuple) else [value]
        kinds = tuple(_value_kind(v) for v in values)
        layout.append((name, kinds))
        texts.extend(str(v) for v, kind in zip(values, kinds, strict=True) if kind == _TEXT)
    frozen = tuple(layout)
    return Body(("invoke", uri, method, frozen), functools.partial(_invoke_element, uri, method, frozen), tuple(texts))


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


_XML_FRAGMENT = f"{{{NS['wsman']}}}XmlFragment"
_FROM = re.compile(r"\bFROM\s+([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE)


@functools.lru_cache(maxsize=256)  # the same few queries on every PC
def query_class(query: str) -> str | None:
    """The class a WQL ``SELECT … FROM <Class> …`` reads (None when the text names none)."""
    m = _FROM.search(query)
    return m.group(1) if m else None


#: Deepest nesting of a property (an embedded object inside an embedded object …); Windows' own answers nest a few
#: levels. A hostile answer may nest thousands deep, which would otherwise end in a RecursionError.
MAX_PROPERTY_DEPTH = 32


def _raw(elem: ET.Element, depth: int = 0) -> Any:
    """One property element as sent: None (xsi:nil), text, a datetime (``cim:Datetime`` in a typed instance,
    an unqualified ``Datetime`` in an XmlFragment), or a nested mapping for an embedded object."""
    if elem.get(NIL) in ("true", "1"):
        return None
    children = list(elem)
    if children:
        if len(children) == 1 and _local(children[0].tag) == "Datetime":
            return cim_types.parse_datetime(children[0].text or "")
        if depth >= MAX_PROPERTY_DEPTH:
            raise ValueError(f"a WMI property is nested more than {MAX_PROPERTY_DEPTH} elements deep; refused")
        return {_local(c.tag): _raw(c, depth + 1) for c in children}
    return elem.text if elem.text is not None else ""


def parse_instance(elem: ET.Element, class_name: str | None = None) -> WmiObject:
    """One WMI instance → ``{"__CLASS": name, Prop: value | [values] | None}`` with typed values.

    Reads both shapes Windows sends: the typed ``<p:Class>`` element (``SELECT *``, Get, method output) and the
    ``<w:XmlFragment>`` of a query that names its properties, whose children carry no class namespace.
    ``class_name`` names the class where the element does not (the XmlFragment; the class of a method's
    ``_OUTPUT``). Values are converted once, here, by ``cim_types`` - callers see the same values from either
    shape."""
    fragment = elem.tag == _XML_FRAGMENT
    local = _local(elem.tag)
    shown = class_name if fragment and class_name else local
    type_class = local if local.endswith("_OUTPUT") else (class_name or (None if fragment else local))
    raw: dict[str, Any] = {}
    for child in elem:
        name = _local(child.tag)
        value = _raw(child)
        if name in raw:
            existing = raw[name]
            if isinstance(existing, list):
                existing.append(value)
            else:
                raw[name] = [existing, value]
        else:
            raw[name] = value
    out: WmiObject = {"__CLASS": shown}
    for name, value in raw.items():
        if name == "__CLASS":
            continue
        prop_type = cim_types.property_type(type_class, name)
        out[name] = cim_types.convert(value, prop_type) if prop_type is not None else value
    return out


def _q(prefix: str, local: str) -> str:
    """``{namespace}local``: ``find`` with such a plain tag and no prefix map is a direct scan of the children (no
    path compilation and no prefix-map key per call, as ``find("wsen:…", NS)`` costs)."""
    return f"{{{NS[prefix]}}}{local}"


BODY = _q("s", "Body")
_RESPONSES = (_q("wsen", "EnumerateResponse"), _q("wsen", "PullResponse"))
_ITEMS = (_q("wsman", "Items"), _q("wsen", "Items"))
_END = (_q("wsman", "EndOfSequence"), _q("wsen", "EndOfSequence"))
_CONTEXT = _q("wsen", "EnumerationContext")


def _first(parent: ET.Element, tags: tuple[str, ...]) -> ET.Element | None:
    for tag in tags:
        found = parent.find(tag)
        if found is not None:
            return found
    return None


def parse_enumeration(body: ET.Element, class_name: str | None = None) -> tuple[list[WmiObject], str | None, bool]:
    """(items, context, end_of_sequence) from an EnumerateResponse or PullResponse ``s:Body``. ``class_name``:
    the class the query reads (for XmlFragment items, which do not name it)."""
    resp = _first(body, _RESPONSES)
    if resp is None:
        raise ValueError("neither EnumerateResponse nor PullResponse in the body")
    items_elem = _first(resp, _ITEMS)
    items = [parse_instance(child, class_name) for child in items_elem] if items_elem is not None else []
    context = resp.findtext(_CONTEXT)
    return items, (context or None), _first(resp, _END) is not None


def parse_method_output(envelope: ET.Element, class_name: str, method: str) -> WmiObject:
    body = envelope.find(BODY)
    if body is None:
        raise ValueError("response has no s:Body")
    for child in body:
        if _local(child.tag) == f"{method}_OUTPUT":
            return parse_instance(child, class_name)
    raise ValueError(f"response has no {method}_OUTPUT element")


def parse_cim_datetime(text: str) -> datetime | str:
    """ISO 8601 or DMTF datetime text → aware datetime; anything else is returned unchanged."""
    return cim_types.parse_datetime(text)
