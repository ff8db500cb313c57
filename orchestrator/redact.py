"""Keeping secrets out of everything kmsfleet writes: logs, reports, the history database, exceptions.

Secrets are marked where they enter (inventory variables by name, ``-e``, ``--ask-pass``, ``KMSFLEET_PASSWORD``,
``lookup``s rendered into a secret variable, facts set from a secret). ``register_secret`` remembers each one in
every form a formatter can give it — Python ``repr``/``ascii`` escapes, JSON escapes (``\\"``, ``\\\\``,
``\\uXXXX``), YAML/CSV/HTML quoting, URL-encoding, UTF-16-LE/BE, hex and base64 at each of the three byte
alignments, and the text escapes of those escapes (a ``repr`` inside a JSON column) — so that ``redact_text``
replaces whichever form appears with ``********``. ``redact`` on structured data also masks whole values whose
key names a secret (``ansible_password``, ``api_token``, and names marked with ``register_secret_name``), before
anything formats them. A leaf module.

Many secrets (a password per PC): the forms are compiled in chunks, a full one once; a prefix index picks the
chunks a text can match and the union of their spans is masked. Hex digests (NTLM hashes, ``register_digests``)
are matched as hex runs, compiling nothing. docs/security.md, "Many secrets".
"""

from __future__ import annotations

import base64
import dataclasses
import html
import itertools
import json
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

MASK = "********"
SECRET_KEYS = re.compile(r"(pass(word|wd)?|secret|token|credential|api[_-]?key)", re.IGNORECASE)

#: Shortest secret worth hiding (hiding every "a" would make output unreadable without protecting anything).
MIN_SECRET = 4
#: Shortest encoded form (base64 core, hex) worth hiding: shorter ones would match unrelated text.
MIN_ENCODED = 6

#: Texts up to this long have their scrubbed form remembered (field names, statuses, product names: the same few
#: hundred strings in every PC's results); longer ones are always scanned.
CACHE_TEXT_LEN = 256
#: Remembered texts at most; the memo starts afresh when full (bounded memory whatever PCs answer).
CACHE_ENTRIES = 8192


#: Forms per compiled chunk. Compiling is the dominant cost of a secret (``re`` compiles in Python: ~0.1 ms and
#: ~3 KB transient a form), so forms are compiled in chunks: a full chunk once, kept; the open chunk again only at
#: the next scrub after a registration. 2,048 forms (~100 random passwords) keep one compile near 7 MB and 0.13 s;
#: docs/security.md ("Many secrets") has the measurements behind the choice.
CHUNK_FORMS = 2048
#: Characters of a form's start that index it: a text is scanned by a chunk only when one of its substrings of
#: this length starts a form of that chunk (forms shorter than this are indexed by their whole text).
PREFIX_LEN = 8
#: Hex digests (NTLM hashes) at least this long are matched as hex runs; shorter ones are registered as secrets.
MIN_DIGEST = 16
_HEX_RUN = re.compile(rf"[0-9A-Fa-f]{{{MIN_DIGEST},}}")


#: Substrings looked up per block of a text when several chunks are compiled: memory stays ~6 MB per scrub
#: whatever the text's size (a PC may answer 16 MiB).
GRAM_BLOCK = 65536


@dataclass(frozen=True)
class _Chunk:
    """One compiled chunk: its pattern and the starts (``PREFIX_LEN`` characters, or a whole shorter form) of
    its forms."""

    pattern: re.Pattern[str]
    prefixes: frozenset[str]


def _chunk(forms: Iterable[str]) -> _Chunk:
    words = list(forms)
    pattern = re.compile(_trie_regex(words))
    # ``re`` keeps its last 512 patterns alive: every open chunk a registration replaced would stay there (up to
    # ~0.5 MB each; 300 registrations during a run held 550 MB). Patterns other code compiled are made again.
    re.purge()
    return _Chunk(pattern, frozenset(w[:PREFIX_LEN] for w in words))


@dataclass(frozen=True)
class _Matcher:
    """Every compiled chunk and every hex digest: the spans of a text to mask are the union of what each finds."""

    chunks: tuple[_Chunk, ...]  # the full ones first, then the open one
    digests: frozenset[str]  # lower-case hex
    lengths: tuple[int, ...]  # their lengths
    short: frozenset[int] = frozenset()  # the lengths of the forms shorter than PREFIX_LEN
    full: int = 0  # how many chunks are full
    prefixes: frozenset[str] = frozenset()  # of every full chunk's forms

    def scrub(self, text: str) -> str:
        chunks = self._candidates(text)
        if len(chunks) == 1 and not self.digests:
            return chunks[0].pattern.sub(MASK, text)  # one pattern: its own non-overlapping matches
        spans = [m.span() for chunk in chunks for m in chunk.pattern.finditer(text)]
        if self.digests:
            spans += _digest_spans(text, self.digests, self.lengths)
        return _mask_spans(text, spans)

    def found(self, text: str) -> bool:
        """True when ``text`` holds any form of a registered secret or digest."""
        if any(chunk.pattern.search(text) for chunk in self._candidates(text)):
            return True
        return bool(self.digests) and bool(_digest_spans(text, self.digests, self.lengths))

    def _candidates(self, text: str) -> list[_Chunk]:
        """The chunks with a form starting like some part of ``text`` (every other chunk cannot match)."""
        if len(self.chunks) <= 1:
            return list(self.chunks)
        hits = self._hits(text)  # one pass over the text (usually empty), whatever the number of chunks
        if not hits:
            return []
        return [chunk for chunk in self.chunks if not chunk.prefixes.isdisjoint(hits)]

    def _hits(self, text: str) -> set[str]:
        """The starts of forms that occur in ``text``. Only hits are kept, never every substring: a PC's 16 MiB
        output must not cost a set of 16 million strings."""
        # the open chunk's starts (at most one chunk is open), read as they are: no copy per scrub
        rest = self.chunks[self.full].prefixes if len(self.chunks) > self.full else frozenset()
        hits: set[str] = set()
        for n in (PREFIX_LEN, *self.short):  # a form shorter than PREFIX_LEN is indexed whole
            last = len(text) - n + 1
            for start in range(0, max(last, 0), GRAM_BLOCK):  # the substrings of one block at a time
                stop = min(start + GRAM_BLOCK, last)
                grams = set(map(text.__getitem__, map(slice, range(start, stop), range(start + n, stop + n))))
                hits |= grams & self.prefixes
                hits |= grams & rest
        return hits


def _digest_spans(text: str, digests: frozenset[str], lengths: Iterable[int]) -> list[tuple[int, int]]:
    spans = []
    for run in _HEX_RUN.finditer(text):
        hexes, start = run.group().lower(), run.start()
        for n in lengths:
            spans += [(start + i, start + i + n) for i in range(len(hexes) - n + 1) if hexes[i : i + n] in digests]
    return spans


def _mask_spans(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each span replaced by MASK; overlapping spans are merged first, so no part of a longer
    secret stays visible beside a shorter one found by another chunk."""
    merged: list[list[int]] = []
    for start, stop in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    out: list[str] = []
    done = 0
    for start, stop in merged:
        out += (text[done:start], MASK)
        done = stop
    out.append(text[done:])
    return "".join(out)


@dataclass(frozen=True)
class _Scrubber:
    """The matcher of the secrets registered so far, with memos of its answers. A new one replaces it whenever a
    secret or a secret name is registered, so a memo never outlives the secrets it was made for (a thread still
    holding the old one fills only the old memos)."""

    matcher: _Matcher | None
    texts: dict[str, str] = field(default_factory=dict)  # text -> text scrubbed
    keys: dict[str, tuple[str, bool]] = field(default_factory=dict)  # key -> (key scrubbed, names a secret)

    def text(self, text: str) -> str:
        if self.matcher is None or not text:
            return text
        if len(text) > CACHE_TEXT_LEN:
            return self.matcher.scrub(text)
        done = self.texts.get(text)
        if done is None:
            done = self.matcher.scrub(text)
            if len(self.texts) >= CACHE_ENTRIES:
                self.texts.clear()
            self.texts[text] = done
        return done

    def key(self, key: str) -> tuple[str, bool]:
        known = self.keys.get(key)
        if known is None:
            known = (self.text(key), is_secret_name(key))
            if len(self.keys) >= CACHE_ENTRIES:
                self.keys.clear()
            self.keys[key] = known
        return known


@dataclass
class _Registry:
    """Everything registered: the secrets, the full chunks (compiled once), the open chunk's forms (compiled at
    the next scrub), the hex digests and the secret names."""

    secrets: set[str] = field(default_factory=set)
    sealed: list[_Chunk] = field(default_factory=list)
    sealed_prefixes: frozenset[str] = frozenset()  # of every sealed chunk (made anew at each seal)
    open_forms: set[str] = field(default_factory=set)
    open_chunk: _Chunk | None = None  # open_forms compiled, None until the next scrub needs it
    digests: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    short: frozenset[int] = frozenset()  # the lengths of the forms shorter than PREFIX_LEN
    known: frozenset[str] | None = None  # every form, made when asked (known_secrets)

    def add(self, secret: str) -> None:
        self.secrets.add(secret)
        forms = renderings(secret)
        self.short |= {len(f) for f in forms if len(f) < PREFIX_LEN}
        self.open_forms |= forms
        self.open_chunk = self.known = None
        if len(self.open_forms) >= CHUNK_FORMS:
            chunk = _chunk(self.open_forms)
            self.sealed.append(chunk)
            self.sealed_prefixes |= chunk.prefixes
            self.open_forms = set()

    def matcher(self) -> _Matcher | None:
        if self.open_forms and self.open_chunk is None:
            self.open_chunk = _chunk(self.open_forms)
        chunks = (*self.sealed, *([self.open_chunk] if self.open_chunk else []))
        if not chunks and not self.digests:
            return None
        lengths = tuple(sorted({len(d) for d in self.digests}))
        return _Matcher(chunks, frozenset(self.digests), lengths, self.short, len(self.sealed), self.sealed_prefixes)

    def copy(self) -> _Registry:
        return dataclasses.replace(
            self,
            secrets=set(self.secrets),
            sealed=list(self.sealed),
            open_forms=set(self.open_forms),
            digests=set(self.digests),
            names=set(self.names),
        )


_lock = threading.Lock()
_registry = _Registry()
_scrubber: _Scrubber | None = _Scrubber(None)  # None: registrations since, made again at the next scrub


def _current() -> _Scrubber:
    """The scrubber of everything registered so far (compiling the open chunk if a registration came since)."""
    global _scrubber
    scrubber = _scrubber
    if scrubber is not None:
        return scrubber
    with _lock:
        if _scrubber is None:
            _scrubber = _Scrubber(_registry.matcher())
        return _scrubber


def _py_repr(s: str) -> str:
    return repr(s)[1:-1]


def _py_repr_quoted(s: str) -> str:
    # repr() picks its quote: with both kinds present it uses ' and escapes every ' (strip the 3 added chars)
    return repr(s + "'\"")[1:-4]


def _py_ascii(s: str) -> str:
    return ascii(s + "'\"")[1:-4]


def _json(s: str) -> str:
    return json.dumps(s)[1:-1]


def _json_utf8(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)[1:-1]


def _json_upper(s: str) -> str:
    return re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(), json.dumps(s)[1:-1])


def _doubled_single(s: str) -> str:  # YAML single-quoted, SQL
    return s.replace("'", "''")


def _doubled_double(s: str) -> str:  # CSV
    return s.replace('"', '""')


def _html(s: str) -> str:
    return html.escape(s, quote=True)


def _url(s: str) -> str:
    return urllib.parse.quote(s, safe="")


def _url_plus(s: str) -> str:
    return urllib.parse.quote_plus(s)


def _url_lower(s: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), urllib.parse.quote(s, safe=""))


def _url_path(s: str) -> str:
    return urllib.parse.quote(s)


#: Text escapes a formatter may apply; applied once, and twice (an escape of an escape: repr inside JSON).
_TEXT_ESCAPES: tuple[Callable[[str], str], ...] = (
    _py_repr,
    _py_repr_quoted,
    _py_ascii,
    _json,
    _json_utf8,
    _json_upper,
    _doubled_single,
    _doubled_double,
    _html,
    _url,
    _url_plus,
    _url_lower,
    _url_path,
)


def b64_cores(data: bytes) -> list[bytes]:
    """The base64 text of ``data`` at each of the 3 byte alignments it can have inside a longer encoded string
    (a password inside a PowerShell ``-EncodedCommand`` or a Basic header): the characters that do not depend on
    the neighbouring bytes."""
    cores = []
    for k in range(3):
        encoded = base64.b64encode(b"\0" * k + data)
        start = (k * 4 + 2) // 3  # characters touched by the k leading bytes
        end = len(encoded) - (4 if (k + len(data)) % 3 else 0)  # the last group mixes with what follows
        cores.append(encoded[start:end])
    return cores


def _byte_forms(secret: str) -> Iterable[str]:
    for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
        raw = secret.encode(encoding, "surrogatepass")
        if encoding != "utf-8":
            yield raw.decode("latin-1")  # UTF-16 bytes read as 8-bit text
        yield raw.hex()
        yield raw.hex().upper()
        whole = base64.b64encode(raw).decode("ascii")  # the value encoded on its own, padding and all
        yield whole
        yield whole.replace("+", "-").replace("/", "_")
        for core in b64_cores(raw):
            text = core.decode("ascii")
            yield text
            yield text.replace("+", "-").replace("/", "_")  # urlsafe alphabet


def _line_end_variants(secret: str) -> set[str]:
    """A secret with a line break also as a PC echoes it back: Windows writes ``\r\n``, a Unix tool ``\n``."""
    if "\n" not in secret and "\r" not in secret:
        return {secret}
    unix = secret.replace("\r\n", "\n")
    return {secret, unix, unix.replace("\n", "\r\n")}


def renderings(secret: str) -> set[str]:
    """Every form of ``secret`` that ``redact_text`` hides."""
    first: set[str] = set()
    for variant in _line_end_variants(secret):
        first |= {escape(variant) for escape in _TEXT_ESCAPES} | {variant}
    text_forms = set(first)
    for form in first:
        text_forms.update(escape(form) for escape in _TEXT_ESCAPES)
    out = {f for f in text_forms if len(f) >= MIN_SECRET}
    out.update(f for f in _byte_forms(secret) if len(f) >= MIN_ENCODED)
    return out


def _trie_regex(words: Iterable[str]) -> str:
    """One regular expression matching any of ``words``, longest first, as a prefix tree: a text is scanned
    once whatever the number of forms (a flat alternation tries each form at every position)."""
    distinct = sorted(set(words))
    return _trie(distinct, 0) if distinct else ""


def _trie(words: list[str], depth: int) -> str:
    """The tree below ``words[0][:depth]`` (``words`` sorted, distinct, all sharing it). A branch holding one word
    is that word's tail, escaped whole (the same text as one node per character, without building the nodes:
    most of the tree, for random passwords)."""
    end = len(words[0]) == depth  # the word that ends here sorts first
    branches = []
    for ch, group in itertools.groupby(words[1:] if end else words, key=lambda w: w[depth]):
        members = list(group)
        tail = re.escape(members[0][depth:]) if len(members) == 1 else re.escape(ch) + _trie(members, depth + 1)
        branches.append(tail)
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    return f"(?:{body})?" if end else body


def register_secret(secret: str | None) -> None:
    """Remember a secret so that every later ``redact_*`` call hides it in any rendering."""
    register_secrets((secret,))


def register_secrets(secrets: Iterable[str | None]) -> None:
    """``register_secret`` of many at once (an inventory's per-PC passwords): one lock, one new scrubber."""
    global _scrubber
    new = [s for s in secrets if s and len(s) >= MIN_SECRET]
    if not new:
        return
    with _lock:
        fresh = [s for s in dict.fromkeys(new) if s not in _registry.secrets]
        for secret in fresh:
            _registry.add(secret)
        if fresh:
            _scrubber = None


def register_digests(digests: Iterable[str]) -> None:
    """Remember hex digests that are secrets (the NTLM hashes of a password: each signs in as the password does).
    They are matched as hex text in any letter case, not in the escapes, UTF-16 and base64 forms of a password:
    a hash is handed to the NTLM library in memory and never put into a command, a header or an encoded script,
    so only its printed hex (an exception, a debug line) can leak. Registering one compiles nothing."""
    global _scrubber
    given = list(digests)
    texts = [d.lower() for d in given]
    if not texts:
        return
    if any(len(d) < MIN_DIGEST or not _HEX_RUN.fullmatch(d) for d in texts):
        register_secrets(given)  # not hex after all: kept as given, in every rendering of a secret
        return
    with _lock:
        if not _registry.digests.issuperset(texts):
            _registry.digests.update(texts)
            _registry.known = None
            _scrubber = None


def register_secret_values(value: Any, depth: int = 0) -> None:
    """Register every string inside ``value`` (a fact set from a secret). Numbers are left alone: a port or a
    count next to a password in one fact is no secret, and masking "1688" everywhere would hide the KMS port."""
    if depth > 50 or value is None:
        return
    if isinstance(value, str):
        register_secret(value)
    elif isinstance(value, Mapping):
        for item in value.values():
            register_secret_values(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            register_secret_values(item, depth + 1)


def register_secret_name(name: str) -> None:
    """Mark a variable name as secret (a fact set from a secret): ``redact`` masks its value whole."""
    global _scrubber
    with _lock:
        if name not in _registry.names:
            _registry.names.add(name)
            _scrubber = None  # the key memo knew it as no secret


def is_secret_name(name: str) -> bool:
    return bool(SECRET_KEYS.search(name)) or name in _registry.names


def is_secret_value(value: Any) -> bool:
    """True for a registered secret itself (not for a text that merely contains one)."""
    return isinstance(value, str) and (value in _registry.secrets or value.lower() in _registry.digests)


def redact_text(text: str) -> str:
    return _current().text(text)


def contains_secret(text: str) -> bool:
    """True when ``text`` holds a registered secret in any of its renderings (what ``redact_text`` would mask):
    one pass over the text, whatever the number of secrets."""
    matcher = _current().matcher
    return matcher is not None and bool(text) and matcher.found(text)


def redact(value: Any, extra_names: frozenset[str] = frozenset()) -> Any:
    """Redact a JSON-like value: secret-named keys (and ``extra_names``) are masked whole, every string is
    scrubbed. Mappings come back as dicts, tuples as lists."""
    return _walk(_current(), value, extra_names, dates=False)


def redact_plain(value: Any) -> Any:
    """``redact`` of a frozen result value made plain for ``json.dumps`` in the same pass: mappings as dicts,
    tuples as lists and datetimes as ISO text (what ``results.models.thaw`` gives), then scrubbed."""
    return _walk(_current(), value, frozenset(), dates=True)


def _walk(scrub: _Scrubber, value: Any, extra: frozenset[str], *, dates: bool) -> Any:
    kind = type(value)
    if kind is str or isinstance(value, str):
        return scrub.text(value)
    if kind is dict or isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            if isinstance(k, str):
                shown, secret = scrub.key(k)
                masked = (secret or k in extra) and v not in (None, "")
                out[shown] = MASK if masked else _walk(scrub, v, extra, dates=dates)
            else:
                out[k] = _walk(scrub, v, extra, dates=dates)
        return out
    if kind is list or kind is tuple or isinstance(value, list | tuple):
        return [_walk(scrub, v, extra, dates=dates) for v in value]
    if dates and isinstance(value, datetime):
        return scrub.text(value.isoformat())
    return value


def mask_url(url: str) -> str:
    """A URL with its password (``scheme://user:PASSWORD@host``) registered as a secret and shown as MASK."""
    try:
        parts = urllib.parse.urlsplit(url)
        password = parts.password
    except ValueError:
        return redact_text(url)
    if not password:
        return redact_text(url)
    register_secret(urllib.parse.unquote(password))
    register_secret(password)
    userinfo, _, hostpart = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{hostpart}"))


def url_has_password(url: str) -> bool:
    try:
        return bool(urllib.parse.urlsplit(url).password)
    except ValueError:
        return False


def known_secrets() -> frozenset[str]:
    """Every rendering of every registered secret (made when first asked after a registration)."""
    with _lock:
        if _registry.known is None:
            digests = {form for d in _registry.digests for form in (d, d.upper())}
            _registry.known = frozenset().union(digests, *(renderings(s) for s in _registry.secrets))
        return _registry.known


def registered_secrets() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The registered secrets and secret names, to register them again in a worker process (``--processes``)."""
    with _lock:
        return tuple(sorted(_registry.secrets)), tuple(sorted(_registry.names))


def registered_digests() -> tuple[str, ...]:
    """The registered hex digests, to register them again in a worker process."""
    with _lock:
        return tuple(sorted(_registry.digests))


def snapshot() -> object:
    """Everything registered, for ``restore`` (tests keep one test's secrets out of the next)."""
    with _lock:
        return _registry.copy()


def restore(saved: object) -> None:
    global _registry, _scrubber
    if not isinstance(saved, _Registry):
        raise TypeError("restore() takes what snapshot() returned")
    with _lock:
        _registry = saved.copy()
        _scrubber = None
