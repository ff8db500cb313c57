"""pypsrp/requests exception → one transport error with its ``cause``: the one place this mapping happens.

Anything that is not about the host's answer (a bug, an interrupt) is re-raised unchanged, never disguised.
"""

from __future__ import annotations

import errno
import xml.etree.ElementTree as ET

import requests
from defusedxml import DefusedXmlException
from pypsrp.exceptions import AuthenticationError, WinRMError, WSManFaultError

from orchestrator.redact import redact_text
from orchestrator.transport.connection import ConnectionSpec
from orchestrator.transport.errors import (
    AuthFailed,
    OperationTimeout,
    ProtocolError,
    TransportError,
    Unreachable,
    wsman_fault,
)

_REFUSED_ERRNOS = (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH)
#: Exceptions of pypsrp (or our parsing) tripping over an answer of an unexpected shape, e.g. a 200 where an
#: authentication challenge was due (pypsrp: KeyError) or XML nested thousands deep (RecursionError).
_MISSHAPEN = (KeyError, IndexError, AttributeError, TypeError, ArithmeticError, RecursionError)


def map_exception(spec: ConnectionSpec, exc: BaseException) -> TransportError:
    """The transport error for ``exc`` (raised by pypsrp, requests or a parser while talking to ``spec``'s host)."""
    host = spec.host
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, AuthenticationError):
        return AuthFailed(host, refused_credentials_message(spec))
    if isinstance(exc, requests.exceptions.RequestException) and (mapped := _http_error(spec, exc)) is not None:
        return mapped
    if isinstance(exc, WSManFaultError):
        code = exc.code if isinstance(exc.code, int) else None
        return wsman_fault(host, code, str(exc.reason or exc.message), subcode=None if code else str(exc.code))
    if isinstance(exc, WinRMError | ValueError):
        return ProtocolError(host, redact_text(str(exc))[:300])
    if isinstance(exc, ET.ParseError | DefusedXmlException):
        return ProtocolError(host, f"malformed XML from the host: {exc}")
    if isinstance(exc, OSError):
        return Unreachable(host, f"network error: {exc.strerror or exc}", cause="dropped")
    if isinstance(exc, _MISSHAPEN):
        return ProtocolError(host, f"the host's answer could not be understood ({type(exc).__name__})")
    raise exc


def _http_error(spec: ConnectionSpec, exc: requests.exceptions.RequestException) -> TransportError | None:
    """TLS, time-outs and connection errors; None for the rest (requests' errors are OSErrors: see below)."""
    host = spec.host
    if isinstance(exc, requests.exceptions.SSLError):
        text = "TLS handshake failed (certificate not trusted? see ansible_winrm_server_cert_validation)"
        return Unreachable(host, text, cause="tls")
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return Unreachable(host, f"no answer to the connection attempt within {spec.connect_timeout}s", cause="timeout")
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return OperationTimeout(host, "the host stopped answering (read timeout)", cause="timeout")
    if isinstance(exc, requests.exceptions.ConnectionError):
        if is_refused(exc):
            text = f"connection refused on {spec.address}:{spec.port} (PC off or WinRM not listening)"
            return Unreachable(host, text, cause="refused")
        return Unreachable(host, "the connection dropped before the host answered", cause="dropped")
    return None


def is_refused(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it wraps) is a refused connection or an unreachable host/network."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ConnectionRefusedError) or (isinstance(cur, OSError) and cur.errno in _REFUSED_ERRNOS):
            return True
        if "Connection refused" in str(cur) or "Errno 111" in str(cur):
            return True  # urllib3 flattens the OSError into the text of its NewConnectionError
        wrapped = cur.args[0] if cur.args and isinstance(cur.args[0], BaseException) else None
        cur = cur.__cause__ or cur.__context__ or wrapped
    return False


def refused_credentials_message(spec: ConnectionSpec) -> str:
    """What a 401 after sign-in most likely means for this connection's settings."""
    if (
        spec.message_encryption == "never"
        and spec.scheme == "http"
        and spec.transport in ("ntlm", "negotiate", "kerberos")
    ):
        # A PC that requires encryption (AllowUnencrypted=false, Windows' default) answers an unencrypted
        # message with 401, as it does a wrong password: name the likelier cause first.
        return (
            "the PC refused the unencrypted request: it requires message encryption (AllowUnencrypted=false, "
            "the Windows default) and ansible_winrm_message_encryption is 'never' — set it to auto, or use "
            f"HTTPS (if this PC does allow unencrypted traffic, the credentials of {spec.user!r} were refused)"
        )
    return f"the host refused the credentials of {spec.user!r} ({spec.transport})"
