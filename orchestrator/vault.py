"""Ansible Vault: decrypt ``$ANSIBLE_VAULT;1.1;AES256`` / ``1.2`` files and ``!vault`` values. A leaf module.

The payload format is Ansible's documented one (docs.ansible.com, "Ansible Vault" → "Format of files encrypted
with Ansible Vault"): a header line ``$ANSIBLE_VAULT;1.1;AES256`` (1.2 adds ``;<vault id label>``), then the
hex encoding of ``hex(salt) \\n hex(hmac) \\n hex(ciphertext)``. Keys come from PBKDF2-HMAC-SHA256 over the
password with the 32-byte salt, 10000 iterations, 80 bytes: the AES-256 key, the HMAC-SHA256 key and the
16-byte CTR counter block. The HMAC covers the ciphertext; the plaintext is PKCS#7 padded to 16 bytes.
No maintained PyPI package decrypts this without pulling in ansible-core, so it is implemented here with
``cryptography`` (already a dependency through pyspnego).

Passwords are given once per process (``set_secrets``) by the CLI (``--vault-password-file``, ``--vault-id``,
``--ask-vault-pass``, ansible.cfg ``vault_password_file``); every decrypted text and every password is
registered with ``orchestrator.redact`` so it never reaches a log, report or the database.
"""

from __future__ import annotations

import binascii
import hmac
import os
import stat
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import InputError, Location

HEADER = "$ANSIBLE_VAULT"
_ITERATIONS = 10000
_HINT = (
    "give the vault password with --vault-password-file FILE, --vault-id [label@]FILE, --ask-vault-pass, "
    "or vault_password_file in ansible.cfg"
)


@dataclass(frozen=True)
class VaultSecret:
    """One vault password and its vault id label (``default`` when none was given)."""

    label: str
    password: bytes = b""

    def __repr__(self) -> str:  # never show the password
        return f"VaultSecret(label={self.label!r})"


_secrets: list[VaultSecret] = []


def set_secrets(secrets: Sequence[VaultSecret]) -> None:
    """The vault passwords of this process (the CLI calls this once, before loading any file)."""
    from orchestrator.redact import register_secret

    for secret in secrets:
        register_secret(secret.password.decode("utf-8", "replace"))
    _secrets[:] = list(secrets)


@contextmanager
def using_secrets(secrets: Sequence[VaultSecret]) -> Iterator[None]:
    """``set_secrets`` for a block (tests, API callers), restoring the previous passwords afterwards."""
    saved = list(_secrets)
    set_secrets(secrets)
    try:
        yield
    finally:
        _secrets[:] = saved


def is_encrypted(text: str) -> bool:
    return text.lstrip().startswith(HEADER + ";")


def decrypt_text(text: str, where: Location, what: str = "this file") -> str:
    """The plaintext of a vault payload (a whole file or a ``!vault`` value); errors name ``where``."""
    lines = text.strip().splitlines()
    header = lines[0].strip().split(";") if lines else []
    if len(header) < 3 or header[0] != HEADER:
        raise InputError(f"{what} is not a valid Ansible Vault payload (bad header)", where)
    version, cipher = header[1].strip(), header[2].strip()
    if version not in ("1.1", "1.2") or cipher != "AES256":
        raise InputError(f"{what} uses vault format {version};{cipher}; kmsfleet reads 1.1 and 1.2 with AES256", where)
    label = header[3].strip() if len(header) > 3 and version == "1.2" else None
    if not _secrets:
        # Ansible: "Attempting to decrypt but no vault secrets found"
        raise InputError(f"{what} is encrypted with Ansible Vault and no vault password was given", where, _HINT)
    try:
        inner = binascii.unhexlify("".join(line.strip() for line in lines[1:])).decode("ascii")
        salt_hex, mac_hex, data_hex = inner.split("\n", 2)
        salt, mac, data = (binascii.unhexlify(part.strip()) for part in (salt_hex, mac_hex, data_hex))
    except (ValueError, UnicodeDecodeError):
        raise InputError(f"{what} is not a valid Ansible Vault payload (damaged or truncated)", where) from None
    ordered = sorted(_secrets, key=lambda s: s.label != label) if label else list(_secrets)
    for secret in ordered:
        plain = _decrypt(secret.password, salt, mac, data)
        if plain is not None:
            try:
                result = plain.decode("utf-8")
            except UnicodeDecodeError:
                raise InputError(f"{what} decrypts to bytes that are not UTF-8 text", where) from None
            return result
    named = f" (vault id {label!r})" if label else ""
    raise InputError(f"cannot decrypt {what}{named}: no vault password given matches", where, _HINT)


def _decrypt(password: bytes, salt: bytes, mac: bytes, data: bytes) -> bytes | None:
    from cryptography.hazmat.primitives import hashes, padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    derived = PBKDF2HMAC(algorithm=hashes.SHA256(), length=80, salt=salt, iterations=_ITERATIONS).derive(password)
    key, hmac_key, counter = derived[:32], derived[32:64], derived[64:]
    if not hmac.compare_digest(hmac.new(hmac_key, data, "sha256").digest(), mac):
        return None
    decryptor = Cipher(algorithms.AES(key), modes.CTR(counter)).decryptor()
    padded = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        return None


# ------------------------------------------------------------------------------------------- password sources


def secret_from_source(source: str, label: str = "default", *, prompt: bool = False) -> VaultSecret:
    """A vault password from a file (its first line; an executable file is run and its output used, as Ansible
    does) or, for ``prompt``, asked on the terminal."""
    if prompt or source == "prompt":
        import getpass

        if not os.isatty(0):
            raise InputError(
                "--ask-vault-pass needs a terminal", hint="use --vault-password-file FILE when not interactive"
            )
        text = getpass.getpass(f"Vault password ({label}): " if label != "default" else "Vault password: ")
        return VaultSecret(label, text.encode("utf-8"))
    path = Path(source).expanduser()
    where = Location(str(path))
    if not path.is_file():
        raise InputError("vault password file not found", where)
    if path.stat().st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH):
        raw = _run_password_program(path, where)
    else:
        try:
            with path.open("rb") as fh:
                raw = fh.read(PASSWORD_READ_BYTES)  # the first line is the password: never read a huge file whole
        except OSError as exc:
            raise InputError(f"cannot read the vault password file: {exc.strerror or exc}", where) from None
    password = raw.decode("utf-8", "replace").splitlines()[0].strip() if raw.strip() else ""
    if not password:
        raise InputError("the vault password file is empty", where)
    return VaultSecret(label, password.encode("utf-8"))


#: What is read of a vault password file or a password program's output (the password is its first line).
PASSWORD_READ_BYTES = 65536
#: How long a vault password program may take.
PASSWORD_PROGRAM_SECONDS = 60.0


def _run_password_program(path: Path, where: Location) -> bytes:
    """Run an executable vault password file, as Ansible does, keeping at most ``PASSWORD_READ_BYTES`` of its
    output and at most ``PASSWORD_PROGRAM_SECONDS`` of its time (a program that prints forever is stopped, not
    buffered until memory runs out)."""
    import selectors
    import time

    try:
        proc = subprocess.Popen(
            [str(path)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
    except OSError as exc:
        raise InputError(f"vault password script failed: {exc.strerror or exc}", where) from None
    assert proc.stdout is not None
    deadline = time.monotonic() + PASSWORD_PROGRAM_SECONDS
    too_slow = f"vault password script did not finish in {PASSWORD_PROGRAM_SECONDS:.0f}s"
    out = bytearray()
    with proc, selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while len(out) < PASSWORD_READ_BYTES:
            left = deadline - time.monotonic()
            if left <= 0:
                proc.kill()
                raise InputError(too_slow, where)
            if not selector.select(left):
                continue
            chunk = os.read(proc.stdout.fileno(), PASSWORD_READ_BYTES)
            if not chunk:
                break
            out += chunk
        if len(out) >= PASSWORD_READ_BYTES:  # enough for a first line: the rest is not wanted
            proc.kill()
            return bytes(out[:PASSWORD_READ_BYTES])
        try:
            code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            raise InputError(too_slow, where) from None
    if code != 0:
        raise InputError(f"vault password script exited with {code}", where)
    return bytes(out)


def parse_vault_id(value: str) -> VaultSecret:
    """``--vault-id [label@]source`` (source: a file, an executable, or ``prompt``)."""
    label, sep, source = value.partition("@")
    if not sep:
        label, source = "default", value
    if not source or not label:
        raise InputError(f"--vault-id {value!r}: expected [label@]FILE or [label@]prompt")
    return secret_from_source(source, label)


__all__ = [
    "HEADER",
    "VaultSecret",
    "decrypt_text",
    "is_encrypted",
    "parse_vault_id",
    "secret_from_source",
    "set_secrets",
    "using_secrets",
]
