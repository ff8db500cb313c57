"""HTTP authentication for the simulated PCs: NTLM and Negotiate (SPNEGO-wrapped NTLM) through pyspnego's
acceptor, Basic, and clear refusals for Kerberos and certificate auth.

pyspnego's NTLM acceptor takes the credentials it validates from the file named by the environment variable
``NTLM_USER_FILE`` (read when the acceptor is created and again when the AUTHENTICATE message arrives). PCs in
a lab can have different passwords, so ``CredentialStore`` writes one file per distinct (user, password) into a
private temporary directory (mode 0700, files 0600, removed at stop), and ``NtlmAcceptor`` points
``NTLM_USER_FILE`` at the right file immediately before each synchronous ``spnego.server()`` / ``ctx.step()``
call. That is safe because the whole front end runs in one event-loop thread and those calls never yield: no
other handshake can run between setting the variable and using it. (Nothing else in the lab process may create
NTLM acceptors from another thread at the same time.)

The variable is only ever *replaced*, never removed: other threads of the same process (kmsfleet's own workers
when the lab runs in-process, as in ``kmsfleet demo``) iterate ``os.environ`` inside requests' proxy lookup, and
a key that disappears mid-iteration raises KeyError there. ``ensure_user_file_variable()`` creates it once, at
lab start, before any client thread exists.

Each file has the lines ``:user:pw`` and ``.:user:pw`` (plain and ``.\\user`` logons) and ``COMPUTER:user:pw``
for every PC name that uses this pair, so ``PC01\\administrator`` works too. The front end additionally checks
that the domain a client names is empty, ``.`` or the PC's own computer name.

The CHALLENGE names the simulated PC (its computer name as TargetName and NetBIOS domain), as a workgroup Windows
PC does, so clients that take the domain from the CHALLENGE sign in as ``PC01\\user``: see ``ntlm_identity``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import spnego

from orchestrator.lab.wsman.ntlm_identity import NtlmIdentity, announce, install

install()
CERTIFICATE_AUTH = "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual"
_KRB5_OID = bytes.fromhex("06092a864886f712010202")  # 1.2.840.113554.1.2.2
_KRB5_OID_MS = bytes.fromhex("06092a864882f712010202")  # 1.2.840.48018.1.2.2
_NTLMSSP = b"NTLMSSP\x00"


class CredentialStore:
    """NTLM credential files, one per distinct (user, password)."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="kmsfleet-lab-ntlm-")
        os.chmod(self._dir, 0o700)
        self._files: dict[tuple[str, str], tuple[str, set[str]]] = {}

    @property
    def directory(self) -> str:
        return self._dir

    def path_for(self, user: str, password: str, computer_name: str) -> str:
        key = (user.lower(), password)
        entry = self._files.get(key)
        if entry is None:
            path = os.path.join(self._dir, f"cred{len(self._files)}")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(f":{user}:{password}\n.:{user}:{password}\n")
            entry = (path, set())
            self._files[key] = entry
        path, names = entry
        cname = computer_name.upper()
        if cname not in names:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(f"{cname}:{user}:{password}\n")
            names.add(cname)
        return path

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)
        self._files.clear()


class NtlmAcceptor:
    """Creates and steps pyspnego acceptors with ``NTLM_USER_FILE`` pointed at the right credential file.
    The previous value of the variable is restored right after each call, so it never leaks elsewhere.
    ``computer_name`` (the simulated PC's) is the name its CHALLENGE announces."""

    @staticmethod
    def new_context(cred_path: str) -> Any:
        with _user_file(cred_path):
            return spnego.server(protocol="negotiate")

    @staticmethod
    def step(ctx: Any, token: bytes, cred_path: str, computer_name: str | None = None) -> bytes | None:
        identity = NtlmIdentity.workgroup(computer_name) if computer_name else None
        with _user_file(cred_path), announce(identity):
            out: bytes | None = ctx.step(token)
        return out


def ensure_user_file_variable(path: str) -> None:
    """Create ``NTLM_USER_FILE`` once (at lab start) so later switches only replace its value."""
    os.environ.setdefault("NTLM_USER_FILE", path)


@contextlib.contextmanager
def _user_file(path: str) -> Iterator[None]:
    previous = os.environ.get("NTLM_USER_FILE")
    if previous != path:
        os.environ["NTLM_USER_FILE"] = path
    try:
        yield
    finally:
        if previous is not None and previous != path:
            os.environ["NTLM_USER_FILE"] = previous


@dataclass(frozen=True, slots=True)
class Authorization:
    scheme: str  # lower-case: basic, negotiate, ntlm, kerberos, certificate, other
    raw_scheme: str
    token: bytes


def parse_authorization(value: str) -> Authorization:
    value = value.strip()
    if value.lower() == CERTIFICATE_AUTH:
        return Authorization("certificate", value, b"")
    raw, _, param = value.partition(" ")
    scheme = raw.lower()
    try:
        token = base64.b64decode(param.strip(), validate=True) if param.strip() else b""
    except (binascii.Error, ValueError):
        return Authorization("invalid", raw, b"")
    if scheme not in ("basic", "negotiate", "ntlm", "kerberos"):
        scheme = "other"
    return Authorization(scheme, raw, token)


def is_kerberos_token(token: bytes) -> bool:
    """A Kerberos AP-REQ (raw or GSS/SPNEGO-wrapped) rather than NTLM."""
    if _NTLMSSP in token:
        return False
    if token[:1] == b"\x6e":  # raw AP-REQ
        return True
    return _KRB5_OID in token or _KRB5_OID_MS in token


def decode_basic(token: bytes) -> tuple[str, str] | None:
    try:
        text = token.decode("utf-8")
    except UnicodeDecodeError:
        text = token.decode("latin-1")
    user, sep, password = text.partition(":")
    if not sep:
        return None
    return user, password


def split_domain(user: str) -> tuple[str, str]:
    """``PC01\\administrator`` → ("PC01", "administrator"); ``administrator`` → ("", "administrator")."""
    if "\\" in user:
        domain, _, name = user.partition("\\")
        return domain, name
    return "", user


def domain_is_local(domain: str, computer_name: str) -> bool:
    return domain in ("", ".") or domain.upper() == computer_name.upper()
