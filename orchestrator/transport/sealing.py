"""WinRM message encryption (MS-WSMV §2.2.9.1, "Encrypted Message Types") for the lean sender, byte for byte what
pypsrp 0.9's ``WinRMEncryption`` produces and accepts, with fewer copies: a sealed message is one ``join`` of its
MIME parts, and an answer is cut at its known boundary with ``bytes.split`` instead of a regular expression built
from the boundary and a ``re.sub`` over each part (docs/performance.md, "HTTP layer").

The framing (MS-WSMV §2.2.9.1.1, as Windows sends it)::

    --Encrypted Boundary\\r\\n
    \\tContent-Type: application/HTTP-SPNEGO-session-encrypted\\r\\n
    \\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=<plain length>\\r\\n
    --Encrypted Boundary\\r\\n
    \\tContent-Type: application/octet-stream\\r\\n
    <signature length, 4 bytes little-endian><signature><sealed message>--Encrypted Boundary--\\r\\n

pypsrp also accepts a space between ``--`` and the boundary (Exchange's endpoints send it): an answer with one is
handed to pypsrp's own ``unwrap_message``, so both give the same result on every input. CredSSP's 16 KiB
chunking (``multipart/x-multi-encrypted``) is not here: the lean sender never signs in with CredSSP.
"""

from __future__ import annotations

import struct

from pypsrp.encryption import WinRMEncryption
from pypsrp.exceptions import WinRMError

CONTENT_TYPE = "multipart/encrypted"
_BOUNDARY = b"--Encrypted Boundary"
_OCTETS = b"\tContent-Type: application/octet-stream\r\n"
_LENGTH = struct.Struct("<i")


def seal(encryption: WinRMEncryption, message: bytes) -> bytes:
    """The ``multipart/encrypted`` body of ``message`` (pypsrp's ``wrap_message`` for NTLM/Kerberos/SPNEGO)."""
    header, sealed, padding = encryption.context.wrap_winrm(message)
    head = (
        f"--Encrypted Boundary\r\n\tContent-Type: {encryption.protocol}\r\n"
        f"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length={len(message) + padding}\r\n"
        "--Encrypted Boundary\r\n\tContent-Type: application/octet-stream\r\n"
    )
    return b"".join((head.encode("ascii"), _LENGTH.pack(len(header)), header, sealed, _BOUNDARY, b"--\r\n"))


def unseal(encryption: WinRMEncryption, body: bytes, boundary: str) -> bytes:
    """The plain message of a ``multipart/encrypted`` answer (pypsrp's ``unwrap_message``); its errors:
    ``WinRMError`` (length mismatch), ``ValueError``/``IndexError``/``struct.error`` (broken framing), spnego's."""
    mark = boundary.encode("utf-8")
    separator = b"--" + mark + b"\r\n"
    end = b"--" + mark + b"--\r\n"
    if not (body.endswith(end) and body.count(mark + b"\r\n") == body.count(separator) and body.count(end) == 1):
        data: bytes = encryption.unwrap_message(body, boundary)  # a spaced boundary or an odd end: pypsrp's way
        return data
    parts = [part for part in body.split(separator) if part]
    parts[-1] = parts[-1][: -len(end)]  # the end mark, at the end of the last part only (counted above)
    plain: list[bytes] = []
    for i in range(0, len(parts), 2):
        expected = int(parts[i].strip().split(b"Length=")[1])
        payload = parts[i + 1].replace(_OCTETS, b"")
        (size,) = _LENGTH.unpack(payload[:4])
        data = encryption.context.unwrap_winrm(payload[4 : 4 + size], payload[4 + size :])
        if len(data) != expected:
            raise WinRMError(
                "The encrypted length from the server does not match the expected length, decryption failed, "
                f"actual: {len(data)} != expected: {expected}"
            )
        plain.append(data)
    return b"".join(plain)
