"""Signed messages between controller and workers: Ed25519 over a canonical JSON encoding.

Everything that crosses the broker and can make something happen is signed by whoever sent it and checked by
the receiver against a key it *pinned* beforehand (copied by an administrator, never learnt from the broker):
batches are signed by the controller and verified by workers; result events and presence announcements are
signed by a site's worker and verified by the controller with that site's key. The scheme is the one peers
use (Celery's ``auth`` serializer, Salt's signed publications, Receptor's signed work units): a detached
signature over the exact bytes that were sent.

Canonical encoding (the only format kmsfleet defines itself): ``json.dumps(value, sort_keys=True,
separators=(",", ":"), ensure_ascii=False, allow_nan=False)`` encoded as UTF-8. The signed *text* travels as a
string next to its signature, so the receiver verifies the bytes it got and parses them only afterwards; the
encoding matters only to the signer (stable, so the same value always gives the same text).

A signed envelope is the JSON object ``{"v": 1, "kid": KEY_ID, "body": TEXT, "sig": BASE64}``, where ``KEY_ID``
is the first 16 hex digits of SHA-256 over the raw 32-byte public key (to name the key in messages and logs)
and ``sig`` is the standard base64 of the 64-byte Ed25519 signature of ``DOMAIN + "\\n" + TEXT``. The domain
("kmsfleet batch v1", "kmsfleet event v1" …) keeps a signature made for one purpose from being accepted for
another. The crypto itself is the ``cryptography`` package's Ed25519.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from orchestrator.errors import InputError

DOMAIN_BATCH = "kmsfleet batch v1"
DOMAIN_EVENT = "kmsfleet event v1"
DOMAIN_PRESENCE = "kmsfleet presence v1"
DOMAIN_OPEN = "kmsfleet run-open v1"
MAX_BODY = 8 * 1024 * 1024  # a batch carries at most 4 MiB of playbook files plus its hosts


class SignatureError(Exception):
    """A message whose signature, key or envelope is not acceptable (the text says why; never a secret)."""


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class Signer:
    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.kid = key_id(private.public_key())

    def sign(self, domain: str, value: Any) -> dict[str, Any]:
        """The envelope of ``value`` (any JSON value)."""
        text = canonical(value)
        signature = self._private.sign(f"{domain}\n{text}".encode())
        return {"v": 1, "kid": self.kid, "body": text, "sig": base64.b64encode(signature).decode("ascii")}


class Verifier:
    """Checks envelopes against one or more pinned public keys."""

    def __init__(self, keys: list[Ed25519PublicKey]) -> None:
        self._keys = {key_id(k): k for k in keys}

    @property
    def kids(self) -> list[str]:
        return sorted(self._keys)

    def open(self, domain: str, envelope: Any) -> Any:
        """The value inside ``envelope`` if a pinned key signed it for ``domain``; else SignatureError."""
        if not isinstance(envelope, dict) or set(envelope) != {"v", "kid", "body", "sig"} or envelope["v"] != 1:
            raise SignatureError("not a signed kmsfleet envelope")
        kid, body, sig = envelope["kid"], envelope["body"], envelope["sig"]
        if not isinstance(kid, str) or not isinstance(body, str) or not isinstance(sig, str):
            raise SignatureError("not a signed kmsfleet envelope")
        if len(body) > MAX_BODY:
            raise SignatureError("the signed body is too large")
        public = self._keys.get(kid)
        if public is None:
            raise SignatureError(f"signed by key {kid[:16]!r}, which is not pinned here")
        try:
            signature = base64.b64decode(sig, validate=True)
            public.verify(signature, f"{domain}\n{body}".encode())
        except (InvalidSignature, binascii.Error, ValueError):
            raise SignatureError(f"bad signature (key {kid})") from None
        return parse_body(body)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text[:20]} is out of range")
    return value


def parse_body(body: str) -> Any:
    """The value of a signed body, which must be in the canonical form a ``Signer`` writes: no NaN/Infinity,
    no number that overflows to infinity (``1e309``), no duplicate key or other spelling of the same value
    (anything else was not made by a kmsfleet signer, even if its key signed it), nested no deeper than the
    parser's recursion allows (``SignatureError``, never ``RecursionError``)."""
    try:
        value = json.loads(body, parse_constant=_no_constant, parse_float=_finite)
        same = canonical(value) == body
    except (ValueError, RecursionError):
        raise SignatureError("the signed body is not JSON in canonical form") from None
    if not same:
        raise SignatureError("the signed body is not JSON in canonical form")
    return value


# ------------------------------------------------------------------------------------------------ key files


def generate(private_path: Path, public_path: Path, *, force: bool = False) -> str:
    """Write a new Ed25519 keypair (private key PKCS#8 PEM, mode 0600; public key PEM); its key id."""
    for path in (private_path, public_path):
        if path.exists() and not force:
            raise InputError(f"{path} already exists", hint="keep it, or give --force to replace the keypair")
    private_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = private_path.with_name(private_path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.replace(tmp, private_path)
    public_path.write_bytes(public_pem(private.public_key()))
    return key_id(private.public_key())


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private(path: Path, what: str) -> Signer:
    if not path.is_file():
        raise InputError(f"{what}: no private key at {path}", hint="create one with: kmsfleet keys init")
    mode = path.stat().st_mode & 0o077
    if mode:
        raise InputError(
            f"{what}: {path} can be read by other users (mode {path.stat().st_mode & 0o777:o})",
            hint=f"chmod 600 {path}",
        )
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, OSError) as exc:
        raise InputError(f"{what}: {path} is not a readable private key ({type(exc).__name__})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"{what}: {path} is not an Ed25519 key")
    return Signer(key)


def load_public(path: Path, what: str) -> Ed25519PublicKey:
    if not path.is_file():
        raise InputError(f"{what}: no public key at {path}", hint="copy it there, or use: kmsfleet keys trust")
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (ValueError, TypeError, OSError) as exc:
        raise InputError(f"{what}: {path} is not a readable public key ({type(exc).__name__})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InputError(f"{what}: {path} is not an Ed25519 public key")
    return key
