"""A small WQL (WMI Query Language) engine: the subset real clients send to ``root\\cimv2``.

Grammar (keywords, class and property names are case-insensitive)::

    query      := SELECT ( "*" | prop ("," prop)* ) FROM class [ WHERE expr ]
    expr       := term ( OR term )*
    term       := factor ( AND factor )*
    factor     := NOT factor | "(" expr ")" | comparison
    comparison := operand op operand | operand IS [NOT] NULL | operand [NOT] LIKE string
    op         := "=" | "<>" | "!=" | "<" | ">" | "<=" | ">="
    operand    := property | 'string' | "string" | number | TRUE | FALSE | NULL

Semantics follow WMI: string comparisons ignore case; ``= NULL`` / ``<> NULL`` behave like ``IS [NOT] NULL``;
any other comparison with a NULL value is false; LIKE supports ``%``, ``_``, ``[abc]``, ``[a-z]``, ``[^a]``;
backslash escapes ``\\\\``, ``\\'`` and ``\\"`` inside string literals.

Errors: syntax errors, unknown properties (in SELECT or WHERE) and array properties used in WHERE raise
``WmiError(0x80041017, "Invalid query", kind="invalid_query")``; an unknown class raises
``WmiError(0x80041010, "Invalid class", kind="invalid_class")`` (raised by the caller that knows the classes).

Deviations/choices:
- Unknown properties are reported as 0x80041017 (WBEM_E_INVALID_QUERY) like a syntax error; Windows reports
  some of them as 0x80041017 too, others only when the provider evaluates them.
- Parsing is cached per query text (all PCs of a lab receive the same queries), binding to a class schema is
  a cheap per-call step.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from orchestrator.lab.provider import CimType, CimValue, WmiError

WBEM_E_INVALID_QUERY = 0x80041017
WBEM_E_INVALID_CLASS = 0x80041010


def invalid_query(detail: str = "") -> WmiError:
    """WBEM_E_INVALID_QUERY. ``detail`` is for debugging only; Windows' message is just "Invalid query"."""
    del detail
    return WmiError(WBEM_E_INVALID_QUERY, "Invalid query", kind="invalid_query")


# -- AST ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prop:
    name: str


@dataclass(frozen=True, slots=True)
class Literal:
    value: str | int | float | bool | None
    quoted: bool = False


Operand = Prop | Literal


@dataclass(frozen=True, slots=True)
class Compare:
    left: Operand
    op: str
    right: Operand


@dataclass(frozen=True, slots=True)
class IsNull:
    operand: Operand
    negated: bool


@dataclass(frozen=True, slots=True)
class Like:
    operand: Operand
    pattern: str
    negated: bool


@dataclass(frozen=True, slots=True)
class Not:
    inner: Node


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # AND | OR
    parts: tuple[Node, ...]


Node = Compare | IsNull | Like | Not | BoolOp


@dataclass(frozen=True, slots=True)
class Query:
    class_name: str
    properties: tuple[str, ...] | None  # None = "*"
    where: Node | None


# -- tokenizer --------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<num>[+-]?(?:0[xX][0-9A-Fa-f]+|\d+\.\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|\d+(?:[eE][+-]?\d+)?))
  | (?P<op><>|!=|<=|>=|=|<|>)
  | (?P<punct>[(),*])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class Tok:
    kind: str
    text: str
    value: object = None


def _unescape(body: str) -> str:
    out = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body) and body[i + 1] in "\\'\"":
            out.append(body[i + 1])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def tokenize(text: str) -> list[Tok]:
    toks: list[Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise invalid_query(f"unexpected character {text[pos]!r} at {pos}")
        pos = m.end()
        kind = m.lastgroup or ""
        raw = m.group()
        if kind == "ws":
            continue
        if kind == "str":
            toks.append(Tok("str", raw, _unescape(raw[1:-1])))
        elif kind == "num":
            low = raw.lower()
            if "0x" in low:
                value: object = int(raw, 16)
            elif any(c in low for c in ".e"):
                value = float(raw)
            else:
                value = int(raw)
            toks.append(Tok("num", raw, value))
        elif kind == "ident":
            toks.append(Tok("ident", raw, raw.upper()))
        else:
            toks.append(Tok(kind, raw, raw))
    toks.append(Tok("eof", ""))
    return toks


_KEYWORDS = {"SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IS", "NULL", "LIKE", "TRUE", "FALSE"}


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = tokenize(text)
        self.i = 0

    def peek(self) -> Tok:
        return self.toks[self.i]

    def take(self) -> Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok.kind == "ident" and tok.value == word:
            self.i += 1
            return True
        return False

    def expect_keyword(self, word: str) -> None:
        if not self.keyword(word):
            raise invalid_query(f"expected {word} near {self.peek().text!r}")

    def identifier(self) -> str:
        tok = self.take()
        if tok.kind != "ident" or tok.value in _KEYWORDS:
            raise invalid_query(f"expected a name near {tok.text!r}")
        return tok.text

    def query(self) -> Query:
        self.expect_keyword("SELECT")
        props: tuple[str, ...] | None
        if self.peek().kind == "punct" and self.peek().text == "*":
            self.take()
            props = None
        else:
            names = [self.identifier()]
            while self.peek().kind == "punct" and self.peek().text == ",":
                self.take()
                names.append(self.identifier())
            props = tuple(names)
        self.expect_keyword("FROM")
        class_name = self.identifier()
        where = None
        if self.keyword("WHERE"):
            where = self.expr()
        if self.peek().kind != "eof":
            raise invalid_query(f"unexpected {self.peek().text!r}")
        return Query(class_name, props, where)

    def expr(self) -> Node:
        parts = [self.term()]
        while self.keyword("OR"):
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else BoolOp("OR", tuple(parts))

    def term(self) -> Node:
        parts = [self.factor()]
        while self.keyword("AND"):
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else BoolOp("AND", tuple(parts))

    def factor(self) -> Node:
        if self.keyword("NOT"):
            return Not(self.factor())
        tok = self.peek()
        if tok.kind == "punct" and tok.text == "(":
            self.take()
            inner = self.expr()
            close = self.take()
            if close.kind != "punct" or close.text != ")":
                raise invalid_query("missing ')'")
            return inner
        return self.comparison()

    def operand(self) -> Operand:
        tok = self.take()
        if tok.kind == "str":
            return Literal(str(tok.value), quoted=True)
        if tok.kind == "num":
            assert isinstance(tok.value, int | float)
            return Literal(tok.value)
        if tok.kind == "ident":
            if tok.value == "TRUE":
                return Literal(True)
            if tok.value == "FALSE":
                return Literal(False)
            if tok.value == "NULL":
                return Literal(None)
            if tok.value in _KEYWORDS:
                raise invalid_query(f"unexpected keyword {tok.text}")
            return Prop(tok.text)
        raise invalid_query(f"unexpected {tok.text!r}")

    def comparison(self) -> Node:
        left = self.operand()
        if self.keyword("IS"):
            negated = self.keyword("NOT")
            self.expect_keyword("NULL")
            return IsNull(left, negated)
        negated = self.keyword("NOT")
        if self.keyword("LIKE"):
            pat = self.take()
            if pat.kind != "str":
                raise invalid_query("LIKE needs a quoted pattern")
            return Like(left, str(pat.value), negated)
        if negated:
            raise invalid_query("NOT must be followed by LIKE here")
        op = self.take()
        if op.kind != "op":
            raise invalid_query(f"expected a comparison operator near {op.text!r}")
        right = self.operand()
        if (
            isinstance(left, Literal)
            and isinstance(right, Literal)
            and left.value is not None
            and right.value is not None
        ):
            raise invalid_query("a comparison needs a property")
        return Compare(left, "<>" if op.text == "!=" else op.text, right)


@lru_cache(maxsize=1024)
def parse(text: str) -> Query:
    """Parse a WQL SELECT. Raises ``WmiError`` (invalid_query) on syntax errors."""
    if not text or not text.strip():
        raise invalid_query("empty query")
    return _Parser(text).query()


# -- binding and evaluation ----------------------------------------------------------------------------------

Schema = Mapping[str, tuple[str, CimType, bool]]  # lower name -> (canonical name, cim type, is_array)


def _props_in(node: Node | None) -> list[str]:
    out: list[str] = []

    def walk(n: Node) -> None:
        if isinstance(n, Compare):
            for side in (n.left, n.right):
                if isinstance(side, Prop):
                    out.append(side.name)
        elif isinstance(n, IsNull | Like):
            if isinstance(n.operand, Prop):
                out.append(n.operand.name)
        elif isinstance(n, Not):
            walk(n.inner)
        elif isinstance(n, BoolOp):
            for p in n.parts:
                walk(p)

    if node is not None:
        walk(node)
    return out


def bind(query: Query, schema: Schema) -> tuple[str, ...] | None:
    """Check every property the query names exists (and is not an array in WHERE); return the canonical
    SELECT list (None for ``*``)."""
    for name in _props_in(query.where):
        entry = schema.get(name.lower())
        if entry is None:
            raise invalid_query(f"unknown property {name}")
        if entry[2]:
            raise invalid_query(f"array property {name} cannot be used in WHERE")
    if query.properties is None:
        return None
    out = []
    for name in query.properties:
        entry = schema.get(name.lower())
        if entry is None:
            raise invalid_query(f"unknown property {name}")
        if entry[0] not in out:
            out.append(entry[0])
    return tuple(out)


_DMTF = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})\.(\d{6})([+-])(\d{3})$")


def parse_cim_datetime(text: str) -> datetime | None:
    m = _DMTF.match(text.strip())
    if m:
        y, mo, d, h, mi, s, us, sign, off = m.groups()
        tz = timezone(timedelta(minutes=int(off) * (1 if sign == "+" else -1)))
        return datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), int(us), tzinfo=tz)
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _coerce(value: object, cim_type: CimType) -> object:
    """Convert a literal to the property's type for comparison; None when impossible."""
    if value is None:
        return None
    convert = _COERCIONS.get(cim_type, _to_number)
    return convert(value)


def _to_boolean(value: object) -> object:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    text = str(value).strip().lower()
    return {"true": True, "false": False, "1": True, "0": False}.get(text)


def _to_string(value: object) -> object:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return str(value).lower()


def _to_datetime(value: object) -> object:
    return value if isinstance(value, datetime) else parse_cim_datetime(str(value))


def _to_real(value: object) -> object:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _to_number(value: object) -> object:
    """The integer types: an int (``0x`` hexadecimal allowed), else a float, else None."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    try:
        text = str(value).strip()
        return int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        try:
            return float(str(value))
        except ValueError:
            return None


_COERCIONS: dict[str, Callable[[object], object]] = {
    "boolean": _to_boolean,
    "string": _to_string,
    "datetime": _to_datetime,
    "real64": _to_real,
}


def _like_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1 : end]
                negate = body.startswith("^")
                if negate:
                    body = body[1:]
                cls = "".join(c if c == "-" else re.escape(c) for c in body)
                out.append(f"[{'^' if negate else ''}{cls}]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


_like_cache: dict[str, re.Pattern[str]] = {}


_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "<>": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
}


def _compare(a: object, op: str, b: object) -> bool:
    try:
        return bool(_OPS[op](a, b))
    except (TypeError, KeyError):
        return False


_FLIP = {"=": "=", "<>": "<>", "<": ">", ">": "<", "<=": ">=", ">=": "<="}

Getter = Callable[[str], CimValue]


def evaluate(node: Node | None, schema: Schema, get: Getter) -> bool:
    """Evaluate a bound WHERE tree against one instance (``get(canonical_name)`` returns its value)."""
    if node is None:
        return True
    if isinstance(node, BoolOp):
        if node.op == "AND":
            return all(evaluate(p, schema, get) for p in node.parts)
        return any(evaluate(p, schema, get) for p in node.parts)
    if isinstance(node, Not):
        return not evaluate(node.inner, schema, get)
    if isinstance(node, IsNull):
        is_null = _value_of(node.operand, schema, get)[0] is None
        return not is_null if node.negated else is_null
    if isinstance(node, Like):
        return _like(node, schema, get)
    return _compare_node(node, schema, get)


def _like(node: Like, schema: Schema, get: Getter) -> bool:
    value, _ = _value_of(node.operand, schema, get)
    if value is None:
        return False
    rx = _like_cache.get(node.pattern)
    if rx is None:
        rx = _like_regex(node.pattern)
        if len(_like_cache) < 512:
            _like_cache[node.pattern] = rx
    text = value if isinstance(value, str) else _as_text(value)
    matched = rx.fullmatch(text) is not None
    return not matched if node.negated else matched


def _compare_node(node: Compare, schema: Schema, get: Getter) -> bool:
    left, right, op = node.left, node.right, node.op
    if isinstance(left, Literal) and isinstance(right, Prop):
        left, right, op = right, left, _FLIP[op]
    if isinstance(right, Literal) and right.value is None:
        # "= NULL" / "<> NULL": WMI treats them as IS NULL / IS NOT NULL
        value, _ = _value_of(left, schema, get)
        if op in ("=", "<>"):
            return (value is None) == (op == "=")
        return False
    lval, ltype = _value_of(left, schema, get)
    if lval is None:
        return False
    if isinstance(right, Prop):
        rval, _ = _value_of(right, schema, get)
        rconv = None if rval is None else _coerce(rval, ltype)
    else:
        rconv = _coerce(right.value, ltype)
    if rconv is None:
        return False
    return _compare(_coerce(lval, ltype), op, rconv)


def _as_text(value: object) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _value_of(operand: Operand, schema: Schema, get: Getter) -> tuple[object, CimType]:
    if isinstance(operand, Prop):
        name, cim_type, _ = schema[operand.name.lower()]
        return get(name), cim_type
    value = operand.value
    if isinstance(value, bool):
        return value, "boolean"
    if isinstance(value, int):
        return value, "sint64"
    if isinstance(value, float):
        return value, "real64"
    return value, "string"
