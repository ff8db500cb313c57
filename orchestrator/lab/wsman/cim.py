"""WMI instances on the wire, the way WinRM's WMI plugin writes them (docs/reference.md §9, docs/evidence.md):

    <p:Class xmlns:p=".../wmi/root/cimv2/Class" xmlns:cim="..." xmlns:xsi="..." xsi:type="p:Class_Type">
      <p:Prop>value</p:Prop>                      scalar
      <p:Prop xsi:nil="true"/>                    NULL
      <p:Arr>1</p:Arr><p:Arr>2</p:Arr>            array: the element repeated
      <p:When><cim:Datetime>2014-04-03T14:45:50.46875+08:00</cim:Datetime></p:When>

An empty array is sent as NULL (WMI itself does not distinguish them for these classes).

A WQL query that *names* its properties is answered differently: each instance is a ``w:XmlFragment`` whose
children are unqualified, untyped property elements, a datetime being an unqualified ``<Datetime>`` child
(recorded from Windows Server 2003, 2008 R2 and 2012 by Zenoss txwinrm, ``txwinrm/test/data/server_*/
*_all_000.xml`` against ``*_star_000.xml`` of the same class)::

    <w:XmlFragment xmlns:xsi="..." xmlns:w=".../wsman.xsd">
      <Caption>Microsoft Windows Server 2012 Standard</Caption>
      <CSDVersion xsi:nil="true"/>                NULL
      <Roles>LM_Workstation</Roles><Roles>NT</Roles>   array: the element repeated
      <LocalDateTime><Datetime>2013-04-15T20:28:21.085Z</Datetime></LocalDateTime>
    </w:XmlFragment>

Property order is the class's (case-insensitive alphabetical), not the query's, in both shapes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator.lab.provider import CimInstance, CimProperty, CimScalar, RowKey
from orchestrator.lab.wsman import ns
from orchestrator.lab.wsman.xmltext import esc


def class_uri(class_name: str, namespace: str = "root/cimv2") -> str:
    return f"{ns.URI_WMI}{namespace.strip('/').replace(chr(92), '/')}/{class_name}"


def split_class_uri(resource_uri: str) -> tuple[str, str] | None:
    """``.../wmi/root/cimv2/Win32_Process`` → ("root/cimv2", "Win32_Process"); ``.../cimv2/*`` → (ns, "*")."""
    if not resource_uri.lower().startswith(ns.URI_WMI.lower()):
        return None
    rest = resource_uri[len(ns.URI_WMI) :].strip("/")
    if "/" not in rest:
        return None
    namespace, _, name = rest.rpartition("/")
    if not namespace or not name:
        return None
    return namespace, name


def format_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    text = value.isoformat()
    if value.utcoffset() == timedelta(0):
        text = text.removesuffix("+00:00") + "Z"
    return text


def scalar_text(value: CimScalar, cim_type: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, float):
        return repr(value) if cim_type == "real64" else str(value)
    return str(value)


# Rendered scalar properties, keyed by (prefix, property, Python type of the value): the licensing rows of every
# PC repeat the same names and values request after request, and a hit costs one hash. Only str/int/bool/None
# values are kept (a datetime's hash ignores its UTC offset, and 1 == True needs the type in the key); the table is
# emptied when full, so distinct values (product key IDs of 5,000 PCs) cannot grow it without bound.
_RENDERED: dict[tuple[str, CimProperty, type], str] = {}
_RENDERED_MAX = 32_768
_MEMO_KINDS = frozenset({str, int, bool, type(None)})


def _property(prop: CimProperty, prefix: str = "p:", datetime_tag: str = "cim:Datetime") -> str:
    """A typed instance's property (``p:`` elements, ``cim:Datetime``) or, with ``prefix=""`` and ``Datetime``,
    an XmlFragment's."""
    kind = type(prop.value)
    if kind is datetime:
        return _datetime_property(prop, prefix, datetime_tag)
    if kind not in _MEMO_KINDS or prop.type == "datetime":
        return _elements(prop, prefix + prop.name, datetime_tag)
    key = (prefix, prop, kind)
    text = _RENDERED.get(key)
    if text is None:
        text = _scalar_element(prop, prefix + prop.name)
        if len(_RENDERED) >= _RENDERED_MAX:
            _RENDERED.clear()
        _RENDERED[key] = text
    return text


# Rendered datetime properties, keyed by (prefix, name, value, UTC offset): the offset in the key because an aware
# datetime's equality and hash ignore it. Most datetimes of a row are fixed (EvaluationEndDate, InstallDate); the
# ones that move (TrustedTime, LocalDateTime) make an entry per query, so this table is small and emptied when full.
_DATETIMES: dict[tuple[str, str, str, str, datetime, timedelta | None], str] = {}
_DATETIMES_MAX = 1024


def _datetime_property(prop: CimProperty, prefix: str, datetime_tag: str) -> str:
    value = prop.value
    assert isinstance(value, datetime)
    key = (prefix, datetime_tag, prop.name, prop.type, value, value.utcoffset())  # all that shapes the text
    text = _DATETIMES.get(key)
    if text is None:
        text = _elements(prop, prefix + prop.name, datetime_tag)
        if len(_DATETIMES) >= _DATETIMES_MAX:
            _DATETIMES.clear()
        _DATETIMES[key] = text
    return text


def _scalar_element(prop: CimProperty, tag: str) -> str:
    value = prop.value
    if value is None:
        return f'<{tag} xsi:nil="true"/>'
    if isinstance(value, bool):
        return f"<{tag}>{'true' if value else 'false'}</{tag}>"
    if isinstance(value, int):
        return f"<{tag}>{value}</{tag}>"
    return f"<{tag}>{esc(str(value))}</{tag}>"


def _elements(prop: CimProperty, tag: str, datetime_tag: str) -> str:
    """A property as its element(s) ``tag``: NULL as xsi:nil, an array repeated, a datetime inside
    ``datetime_tag``."""
    value = prop.value
    if value is None or (isinstance(value, tuple) and not value):
        return f'<{tag} xsi:nil="true"/>'
    values = value if isinstance(value, tuple) else (value,)
    out: list[str] = []
    for v in values:
        if v is None:
            out.append(f'<{tag} xsi:nil="true"/>')
        elif prop.type == "datetime":
            out.append(f"<{tag}><{datetime_tag}>{esc(scalar_text(v, prop.type))}</{datetime_tag}></{tag}>")
        else:
            out.append(f"<{tag}>{esc(scalar_text(v, prop.type))}</{tag}>")
    return "".join(out)


def instance_xml(inst: CimInstance) -> str:
    if inst.row_key is not None:
        return _from_template(inst, _TYPED)
    return _typed_head(inst) + _typed_props(inst.properties) + f"</p:{inst.class_name}>"


def _typed_head(inst: CimInstance) -> str:
    uri = class_uri(inst.class_name, inst.namespace)
    return (
        f'<p:{inst.class_name} xmlns:p="{uri}" xmlns:cim="{ns.CIM}" xmlns:xsi="{ns.XSI}" '
        f'xsi:type="p:{inst.class_name}_Type">'
    )


def _typed_props(props: tuple[CimProperty, ...]) -> str:
    hit = _RENDERED.get  # inlined memo look-up first: most properties of a licensing row are hits
    return "".join([hit(("p:", p, type(p.value))) or _property(p) for p in props])


def method_output_xml(class_name: str, method: str, properties: list[CimProperty], namespace: str) -> str:
    uri = class_uri(class_name, namespace)
    props = "".join(_property(p) for p in properties)
    return f'<p:{method}_OUTPUT xmlns:p="{uri}" xmlns:cim="{ns.CIM}" xmlns:xsi="{ns.XSI}">{props}</p:{method}_OUTPUT>'


def fragment_xml(inst: CimInstance) -> str:
    """The instance as Windows answers a WQL query that names its properties (see the module docstring)."""
    if inst.row_key is not None:
        return _from_template(inst, _FRAGMENT)
    return _FRAGMENT_HEAD + _fragment_props(inst.properties) + "</w:XmlFragment>"


_FRAGMENT_HEAD = f'<w:XmlFragment xmlns:xsi="{ns.XSI}" xmlns:w="{ns.WSMAN}">'


def _fragment_props(props: tuple[CimProperty, ...]) -> str:
    hit = _RENDERED.get
    return "".join([hit(("", p, type(p.value))) or _property(p, "", "Datetime") for p in props])


# ---- Row templates ---------------------------------------------------------------------------------------------
# A row built from a class's property plan (lab/wmi_classes.py) carries a key: its plan, the positions left as
# slots (datetimes such as TrustedTime, arrays, counters that move with the clock such as GracePeriodRemaining)
# and every other value with its Python type. Its text is rendered once per key as the pieces between the slots;
# each later row with the same key renders only its slots, from its own values. The key holds the values
# themselves, so nothing has to be invalidated: a licence change gives a new key (a new template) at the next
# query, and a slot always shows the row's current value. Bounded: the table is emptied when it holds
# _TEMPLATES_MAX templates (about 5 KB each for a licensing row).
_TYPED, _FRAGMENT = 0, 1
_TEMPLATES: dict[tuple[int, RowKey], tuple[str, ...]] = {}
_TEMPLATES_MAX = 2048
# Values that can be equal and still render differently: datetimes (UTC offsets), floats (-0.0 and 0.0), arrays
# (their elements' types are not in the key)
_UNKEYABLE = (datetime, float, tuple)


def _from_template(inst: CimInstance, shape: int) -> str:
    key = inst.row_key
    assert key is not None
    pieces = _TEMPLATES.get((shape, key))
    if pieces is None:
        if any(issubclass(t, _UNKEYABLE) for t in key[3]):
            return _render(inst, shape)
        pieces = _template(inst, shape, key[1])
        if len(_TEMPLATES) >= _TEMPLATES_MAX:
            _TEMPLATES.clear()
        _TEMPLATES[(shape, key)] = pieces
    out = [pieces[0]]
    at = inst.property_at
    for i, pos in enumerate(key[1], 1):
        out.append(_slot(at(pos), shape))
        out.append(pieces[i])
    return "".join(out)


def _render(inst: CimInstance, shape: int) -> str:
    plain = inst.without_template()
    return instance_xml(plain) if shape == _TYPED else fragment_xml(plain)


def _slot(prop: CimProperty, shape: int) -> str:
    return _property(prop) if shape == _TYPED else _property(prop, "", "Datetime")


def _template(inst: CimInstance, shape: int, slots: tuple[int, ...]) -> tuple[str, ...]:
    """The row's text cut at its slots: len(slots) + 1 pieces, the first starting with the row's opening tag."""
    props = inst.properties
    render = _typed_props if shape == _TYPED else _fragment_props
    pieces: list[str] = []
    start = 0
    for pos in (*slots, len(props)):
        pieces.append(render(props[start:pos]))
        start = pos + 1
    head = _typed_head(inst) if shape == _TYPED else _FRAGMENT_HEAD
    tail = f"</p:{inst.class_name}>" if shape == _TYPED else "</w:XmlFragment>"
    pieces[0] = head + pieces[0]
    pieces[-1] += tail
    return tuple(pieces)
