"""MS-WSMV 2.2.9.1 message encryption over HTTP, byte for byte:

    --Encrypted Boundary\\r\\n
    \\tContent-Type: application/HTTP-SPNEGO-session-encrypted\\r\\n
    \\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=<n>\\r\\n
    --Encrypted Boundary\\r\\n
    \\tContent-Type: application/octet-stream\\r\\n
    <uint32 LE signature length><signature><sealed SOAP>--Encrypted Boundary--\\r\\n

The NTLM seal is an RC4 stream with per-direction sequence numbers: every request and response on a
connection must be unwrapped/wrapped exactly once, in order. The caller guarantees that (one request at a time
per connection, as HTTP/1.1 without pipelining gives us).
"""

from __future__ import annotations

import re
import struct
from typing import Any

PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
BOUNDARY = "Encrypted Boundary"
CONTENT_TYPE = f'multipart/encrypted;protocol="{PROTOCOL}";boundary="{BOUNDARY}"'

_BOUNDARY_RE = re.compile(r'boundary=["]?([^";]+)["]?', re.IGNORECASE)
_LENGTH_RE = re.compile(rb"OriginalContent:\s*type=[^\r\n]*?Length=(\d+)", re.IGNORECASE)
_OCTET = b"Content-Type: application/octet-stream\r\n"


class EncryptionError(Exception):
    """The body is not a well-formed encrypted message or does not verify."""


def is_encrypted(content_type: str) -> bool:
    ct = content_type.lower()
    return ct.startswith("multipart/encrypted") and PROTOCOL.lower() in ct


def unwrap(ctx: Any, body: bytes, content_type: str) -> bytes:
    """Decrypt one request with the connection's security context."""
    m = _BOUNDARY_RE.search(content_type)
    boundary = (m.group(1) if m else BOUNDARY).encode("ascii", "replace")
    marker = b"--" + boundary
    length_match = _LENGTH_RE.search(body)
    start = body.find(_OCTET)
    end = body.rfind(marker + b"--")
    if length_match is None or start < 0 or end < 0:
        raise EncryptionError("not a multipart/encrypted WinRM message")
    payload = body[start + len(_OCTET) : end]
    if len(payload) < 4:
        raise EncryptionError("the encrypted part is empty")
    (sig_len,) = struct.unpack("<I", payload[:4])
    if sig_len > len(payload) - 4 or sig_len > 1024:
        raise EncryptionError("bad signature length")
    header = payload[4 : 4 + sig_len]
    data = payload[4 + sig_len :]
    try:
        plain: bytes = ctx.unwrap_winrm(header, data)
    except Exception as exc:  # pyspnego raises its own error types; all mean "does not verify"
        raise EncryptionError(f"the message does not decrypt: {type(exc).__name__}") from None
    expected = int(length_match.group(1))
    # pypsrp declares len+padding, pywinrm len; NTLM has no padding, so both equal len(plain).
    if expected < len(plain) or expected > len(plain) + 64:
        raise EncryptionError("Length= does not match the decrypted message")
    return plain


def wrap(ctx: Any, plain: bytes) -> bytes:
    """Encrypt one response with the connection's security context."""
    res = ctx.wrap_winrm(plain)
    header: bytes = res.header
    data: bytes = res.data
    length = len(plain) + int(res.padding_length)
    return b"".join(
        (
            b"--Encrypted Boundary\r\n\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n",
            b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=%d\r\n" % length,
            b"--Encrypted Boundary\r\n\tContent-Type: application/octet-stream\r\n",
            struct.pack("<I", len(header)),
            header,
            data,
            b"--Encrypted Boundary--\r\n",
        )
    )
