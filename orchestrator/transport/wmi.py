"""WMI over WS-Management: the XML bodies for WQL Enumerate/Pull and method Invoke, and the parsing of WMI
instances into plain dictionaries. Pure functions over ``xml.etree`` elements; no I/O here."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Any

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


def enumerate_body(query: str, max_elements: int = 32000) -> ET.Element:
    enum = ET.Element(f"{{{NS['wsen']}}}Enumerate")
    ET.SubElement(enum, f"{{{NS['wsman']}}}OptimizeEnumeration")
    ET.SubElement(enum, f"{{{NS['wsman']}}}MaxElements").text = str(max_elements)
    ET.SubElement(enum, f"{{{NS['wsman']}}}Filter", Dialect=WQL_DIALECT).text = query
    return enum


def pull_body(context: str, max_elements: int = 32000) -> ET.Element:
    pull = ET.Element(f"{{{NS['wsen']}}}Pull")
    ET.SubElement(pull, f"{{{NS['wsen']}}}EnumerationContext").text = context
    ET.SubElement(pull, f"{{{NS['wsen']}}}MaxElements").text = str(max_elements)
    return pull


def invoke_body(class_name: str, method: str, params: dict[str, Any], namespace: str = "root/cimv2") -> ET.Element:
    uri = class_uri(class_name, namespace)
    inp = ET.Element(f"{{{uri}}}{method}_INPUT")
    for name, value in params.items():
        values = value if isinstance(value, list | tuple) else [value]
        for v in values:
            child = ET.SubElement(inp, f"{{{uri}}}{name}")
            if v is None:
                child.set(NIL, "true")
            elif isinstance(v, bool):
                child.text = "true" if v else "false"
            else:
                child.text = str(v)
    return inp


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _value(elem: ET.Element) -> Any:
    if elem.get(NIL) in ("true", "1"):
        return None
    children = list(elem)
    if children:
        dt = elem.find("cim:Datetime", NS)
        if dt is not None and dt.text:
            return parse_cim_datetime(dt.text)
        # an embedded object: a nested mapping
        return {_local(c.tag): _value(c) for c in children}
    return elem.text if elem.text is not None else ""


def parse_instance(elem: ET.Element) -> WmiObject:
    """One WMI instance element → ``{"__CLASS": name, Prop: value | [values] | None}``."""
    out: WmiObject = {"__CLASS": _local(elem.tag)}
    for child in elem:
        name = _local(child.tag)
        value = _value(child)
        if name in out and name != "__CLASS":
            existing = out[name]
            if isinstance(existing, list):
                existing.append(value)
            else:
                out[name] = [existing, value]
        else:
            out[name] = value
    return out


def parse_enumeration(body: ET.Element) -> tuple[list[WmiObject], str | None, bool]:
    """(items, context, end_of_sequence) from an EnumerateResponse or PullResponse ``s:Body``."""
    resp = body.find("wsen:EnumerateResponse", NS)
    if resp is None:
        resp = body.find("wsen:PullResponse", NS)
    if resp is None:
        raise ValueError("neither EnumerateResponse nor PullResponse in the body")
    items_elem = resp.find("wsman:Items", NS)
    if items_elem is None:
        items_elem = resp.find("wsen:Items", NS)
    items = [parse_instance(child) for child in items_elem] if items_elem is not None else []
    context = resp.findtext("wsen:EnumerationContext", default=None, namespaces=NS)
    end = resp.find("wsman:EndOfSequence", NS) is not None or resp.find("wsen:EndOfSequence", NS) is not None
    return items, (context or None), end


def parse_method_output(envelope: ET.Element, class_name: str, method: str) -> WmiObject:
    body = envelope.find("s:Body", NS)
    if body is None:
        raise ValueError("response has no s:Body")
    for child in body:
        if _local(child.tag) == f"{method}_OUTPUT":
            return parse_instance(child)
    raise ValueError(f"response has no {method}_OUTPUT element")


def parse_cim_datetime(text: str) -> datetime | str:
    """``2026-11-26T11:15:00.5+08:00`` or ``…Z`` → aware datetime; anything else is returned unchanged."""
    t = text.strip()
    try:
        return datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        return t
