"""YAML that remembers where everything came from.

A leaf used by inventories, playbooks, vars files and lab specs so every error can say ``file:line:column``.
Mappings load as ``LocatedDict`` and sequences as ``LocatedList``: ordinary ``dict``/``list`` subclasses that
also carry the location of themselves, their keys and their items. Duplicate keys are an error (YAML allows
the last to win silently, which hides typos). ``!unsafe`` marks a string that must never be templated;
``!vault`` is refused with a hint.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from orchestrator.errors import InputError, Location

MAX_YAML_BYTES = 16 * 1024 * 1024
#: Aliases (``*name``) in one document, and the nodes they may add once expanded: a "billion laughs" document
#: (each level aliasing the one before nine times) is 600 bytes of text and 10**9 values once walked.
MAX_ALIASES = 10_000
MAX_ALIAS_EXPANSION = 1_000_000


class UnsafeText(str):
    """A string marked ``!unsafe``: templating leaves it exactly as written."""

    __slots__ = ()


class LocatedDict(dict[str, Any]):
    location: Location
    key_locations: dict[str, Location]


class LocatedList(list[Any]):
    location: Location
    item_locations: list[Location]


def _loc(filename: str, node: Node) -> Location:
    mark = node.start_mark
    return Location(filename, mark.line + 1, mark.column + 1)


class _Loader(yaml.SafeLoader):
    """PyYAML's pure-Python parser: reads what libyaml refused, to say what is wrong in the words it always used
    (``_LibyamlLoader`` below reads every valid document)."""

    filename = "<string>"


def _construct_mapping(loader: _Loader, node: MappingNode) -> LocatedDict:
    loader.flatten_mapping(node)
    out = LocatedDict()
    out.location = _loc(loader.filename, node)
    out.key_locations = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, list | dict):
            hint = None
            if isinstance(key_node, MappingNode) and key_node.flow_style and node.flow_style:
                # ``msg: {{ x }}`` parses as a mapping inside a mapping; Ansible's own hint for it
                hint = (
                    "this looks like an issue with missing quotes (as Ansible says): always quote template "
                    'expression brackets when they start a value, e.g. msg: "{{ x }}" rather than msg: {{ x }}'
                )
            raise InputError("a mapping key must be a plain value", _loc(loader.filename, key_node), hint)
        skey = "" if key is None else str(key) if not isinstance(key, bool) else str(key).lower()
        if skey in out:
            raise InputError(
                f"duplicate key '{skey}' (first defined at line {out.key_locations[skey].line})",
                _loc(loader.filename, key_node),
            )
        out[skey] = loader.construct_object(value_node, deep=True)
        out.key_locations[skey] = _loc(loader.filename, key_node)
    return out


def _construct_sequence(loader: _Loader, node: SequenceNode) -> LocatedList:
    out = LocatedList(loader.construct_object(child, deep=True) for child in node.value)
    out.location = _loc(loader.filename, node)
    out.item_locations = [_loc(loader.filename, child) for child in node.value]
    return out


def _construct_unsafe(loader: _Loader, node: Node) -> UnsafeText:
    if not isinstance(node, ScalarNode):
        raise InputError("!unsafe applies to a single string", _loc(loader.filename, node))
    return UnsafeText(loader.construct_scalar(node))


def _construct_vault(loader: _Loader, node: Node) -> Any:
    """``!vault |`` inline values: decrypted with the process's vault passwords and marked secret."""
    from orchestrator import vault
    from orchestrator.redact import register_secret

    where = _loc(loader.filename, node)
    if not isinstance(node, ScalarNode):
        raise InputError("!vault applies to a single encrypted text", where)
    plain = vault.decrypt_text(str(loader.construct_scalar(node)), where, "this !vault value")
    register_secret(plain)
    return plain


def _construct_str(loader: _Loader, node: ScalarNode) -> str:
    """A string scalar (keys too) as a new object. The parser's own string was made among the whole node tree's
    objects, freed once the document is built: kept by the data (an inventory of thousands of PCs is kept for the
    run), it would keep that memory from ever going back (CPython returns only an arena left entirely empty;
    docs/performance.md, "Memory"). A 5,000-PC inventory: 22 MB less RSS after loading."""
    text: str = loader.construct_scalar(node)
    return (text + "\0")[:-1]


_Loader.add_constructor("tag:yaml.org,2002:str", _construct_str)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
_Loader.add_constructor("!unsafe", _construct_unsafe)
_Loader.add_constructor("!vault", _construct_vault)
_Loader.add_constructor("!vault-encrypted", _construct_vault)


def check_alias_budget(root: Node, filename: str) -> None:
    """Refuse a composed document whose aliases make it much larger than its text: more than ``MAX_ALIASES``
    aliases, more than ``MAX_ALIAS_EXPANSION`` nodes added by expanding them, or an alias inside itself. Linear
    in the number of distinct nodes (each node's expanded size is computed once), iterative (no recursion)."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    distinct = 0
    references = 0
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = list(node.value)
        elif isinstance(node, MappingNode):
            children = [n for pair in node.value for n in pair]
        if done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            continue
        if key in sizes:
            references += 1  # the same node reached again: an alias
            if references > MAX_ALIASES:
                raise InputError(f"YAML uses more than {MAX_ALIASES} aliases", _loc(filename, node))
            continue
        if key in on_path:
            raise InputError("YAML alias refers to a node that contains it (a recursive alias)", _loc(filename, node))
        distinct += 1
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children)
    expanded = sizes[id(root)]
    if expanded - distinct > MAX_ALIAS_EXPANSION:
        raise InputError(
            f"YAML aliases expand this document to {expanded:,} values (at most {MAX_ALIAS_EXPANSION:,} "
            "may come from aliases): refusing an alias bomb",
            _loc(filename, root),
            hint="write the repeated values out, or use fewer nested aliases",
        )


class _BudgetLoader(_Loader):
    #: False when the text has no ``*`` at all: YAML writes every alias as ``*name`` (YAML 1.1 §7.1), so such a
    #: document has none and the walk over its nodes (a fifth of a 5,000-PC inventory's parse) can be skipped.
    may_alias = True

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        if self.may_alias:
            check_alias_budget(node, self.filename)
        return self.construct_document(node)


class _LibyamlLoader(yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader):  # type: ignore[misc]
    """The same loader on libyaml's parser (C), as Ansible's own loader takes it when PyYAML has it
    (``ansible.parsing.yaml.loader``, ``HAS_LIBYAML``): the same node tree, composed without the pure-Python
    scanner's tokens and marks. A 5,000-PC inventory held about 50 MB of them at once with the pure-Python parser
    (35 MB with libyaml's), memory the allocator then keeps for the whole run (docs/performance.md, "Memory").
    Only for documents it reads: on any error the pure-Python parser reads the text again and says what is
    wrong, in the words it always used (they name the character: a tab, a stray quote)."""

    filename = "<string>"
    may_alias = True  # as _BudgetLoader's, whose get_single_data this is
    yaml_constructors = _Loader.yaml_constructors
    get_single_data = _BudgetLoader.get_single_data


def _read_with_libyaml(text: str, filename: str) -> Any:
    loader = _LibyamlLoader(text)
    loader.filename = filename
    loader.may_alias = "*" in text
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _bad_character(exc: yaml.reader.ReaderError) -> str:
    return f"not valid YAML text: character {exc.character!r} is not allowed"


def _too_large(filename: str) -> InputError:
    return InputError(f"file is larger than {MAX_YAML_BYTES // (1024 * 1024)} MiB", Location(filename))


def load_yaml_text(text: str, filename: str = "<string>") -> Any:
    """Parse one YAML document; syntax errors become ``InputError`` with file:line:column."""
    if len(text) > MAX_YAML_BYTES:
        raise _too_large(filename)
    if yaml.__with_libyaml__:
        with contextlib.suppress(yaml.YAMLError, UnicodeError, RecursionError):  # told below, in Python's words
            return _read_with_libyaml(text, filename)
    try:
        loader = _BudgetLoader(text)
    except yaml.reader.ReaderError as exc:
        raise InputError(_bad_character(exc), Location(filename)) from None
    loader.filename = filename
    loader.may_alias = "*" in text
    try:
        return loader.get_single_data()
    except InputError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Location(filename, mark.line + 1, mark.column + 1) if mark else Location(filename)
        problem = exc.problem or exc.context or "invalid YAML"
        context = f" ({exc.context})" if exc.context and exc.problem else ""
        raise InputError(f"YAML syntax error: {problem}{context}", where, _quote_hint(text, mark)) from None
    except yaml.reader.ReaderError as exc:
        raise InputError(_bad_character(exc), Location(filename)) from None
    except yaml.YAMLError as exc:
        raise InputError(f"YAML error: {exc}", Location(filename)) from None
    except RecursionError:
        raise InputError("YAML nesting is too deep", Location(filename)) from None
    finally:
        loader.dispose()


def _quote_hint(text: str, mark: Any) -> str | None:
    """Ansible's hint when a value starts with an unquoted ``{{`` (YAML reads ``{`` as a mapping)."""
    if mark is None:
        return None
    lines = text.splitlines()
    near = lines[max(0, mark.line - 1) : mark.line + 1]
    if any(re.search(r"(^|:|-)\s*\{\{", line) for line in near):
        return (
            "this looks like an issue with missing quotes (as Ansible says): always quote template expression "
            'brackets when they start a value, e.g. msg: "{{ x }} there" rather than msg: {{ x }} there'
        )
    return None


def load_yaml_file(path: str | Path) -> Any:
    """A YAML file; an Ansible Vault encrypted file is decrypted first and all its values are marked secret."""
    text = read_text_file(path)
    from orchestrator import vault

    if not vault.is_encrypted(text):
        return load_yaml_text(text, str(path))
    from orchestrator.redact import register_secret_values

    data = load_yaml_text(vault.decrypt_text(text, Location(str(path)), "this file"), str(path))
    register_secret_values(data)
    return data


def read_text_file(path: str | Path) -> str:
    """A UTF-8 file's text, read with a bound; every problem is an ``InputError`` naming the file."""
    p = Path(path)
    try:
        # Read at most one byte more than the limit: a 300 MB file (or /dev/zero) must not be loaded whole
        # into memory just to be refused.
        with p.open("rb") as fh:
            raw = fh.read(MAX_YAML_BYTES + 1)
    except FileNotFoundError:
        raise InputError("file not found", Location(str(p))) from None
    except IsADirectoryError:
        raise InputError("is a directory, expected a YAML file", Location(str(p))) from None
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror}", Location(str(p))) from None
    if len(raw) > MAX_YAML_BYTES:
        raise _too_large(str(p))
    return decode_utf8(raw, str(p))


def decode_utf8(raw: bytes, filename: str) -> str:
    """A file's text (UTF-8, with or without a BOM); anything else is an ``InputError`` naming the line and
    how to fix it (Windows editors often save "Unicode" (UTF-16) or Big5)."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        utf16 = raw.startswith((b"\xff\xfe", b"\xfe\xff"))
        what = "this is UTF-16 text" if utf16 else "not UTF-8 text"
        where = Location(filename) if utf16 else Location(filename, line, column)
        hint = "save it as UTF-8 (Notepad: Save As, Encoding: UTF-8)"
        raise InputError(f"{what}: kmsfleet reads UTF-8 files", where, hint=hint) from None


def location_of(data: Any, path: Iterable[str | int]) -> Location | None:
    """The most precise location known for ``data[path[0]][path[1]]…`` (a pydantic ``loc``)."""
    best: Location | None = getattr(data, "location", None)
    node = data
    for part in path:
        if isinstance(node, LocatedDict) and isinstance(part, str) and part in node:
            best = node.key_locations.get(part, best)
            node = node[part]
        elif isinstance(node, LocatedList) and isinstance(part, int) and 0 <= part < len(node):
            best = node.item_locations[part]
            node = node[part]
        elif isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            break
    return best
