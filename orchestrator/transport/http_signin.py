"""The HTTP sign-in of the lean sender (``transport.http_sender``): which scheme a 401 offers, the Negotiate
tokens of one round, the TLS channel binding, the Basic header — pure functions over headers
and bytes, no I/O. They follow pypsrp 0.9 (``pypsrp/negotiate.py`` ``HTTPNegotiateAuth``) token for token, so
a host sees the same sign-in whichever sender kmsfleet uses:

- the scheme is the first of Negotiate, Kerberos, NTLM named in ``WWW-Authenticate`` (pypsrp's order); with
  ``ntlm`` configured the pypsrp rule applies: NTLM runs inside Negotiate or its own scheme, another scheme is
  refused;
- each round's token is ``Authorization: <scheme> <base64>`` and the host's answer token is read from
  ``WWW-Authenticate`` the same way (RFC 4559 §4);
- the NTLM password hashes (LMOWFv1, NTOWFv1: MS-NLMP §3.3.1) are computed once per credentials and process and
  handed to spnego as an ``NTLMHash`` credential before the password: spnego would otherwise compute them again
  for every PC, and its LM hash is a pure-Python DES costing ~3 ms each time. The same hashes, the same tokens;
  Kerberos (if spnego has it) still gets the password;
- over HTTPS the sign-in is bound to the server's certificate (``tls-server-end-point``, RFC 5929 §4.1: SHA-256
  of the DER certificate unless its signature uses a stronger hash), as Windows' Extended Protection expects.
"""

from __future__ import annotations

import base64
import functools
import re
import socket
import ssl

import spnego
import spnego.channel_bindings
from pypsrp.exceptions import AuthenticationError
from pypsrp.negotiate import HTTPNegotiateAuth
from spnego._ntlm_raw.crypto import is_ntlm_hash, lmowfv1, ntowfv1  # pyspnego pinned <1 (pyproject)

from orchestrator.redact import register_digests

NEGOTIATE_SCHEMES = ("Negotiate", "Kerberos", "NTLM")
_TOKEN = re.compile(r"(Kerberos|Negotiate|NTLM)\s*([^,]*),?", re.IGNORECASE)


def offered_scheme(www_authenticate: str | None) -> str:
    """The Negotiate-family scheme a 401 offers (pypsrp's order), or ``AuthenticationError`` when none is."""
    offered = (www_authenticate or "").upper()
    for scheme in NEGOTIATE_SCHEMES:
        if scheme.upper() in offered:
            return scheme
    raise AuthenticationError(
        f"The server did not response with one of the following authentication methods "
        f"{', '.join(NEGOTIATE_SCHEMES)} - actual: '{(www_authenticate or '')[:80]}'"
    )


def protocol_for(configured: str, scheme: str) -> str:
    """The spnego protocol to run: ``negotiate`` follows the host's scheme; ``ntlm``/``kerberos`` run inside
    Negotiate or their own scheme, never inside the other one (pypsrp's ``handle_401``)."""
    offered = scheme.lower()
    if offered == configured:
        return configured
    if configured == "negotiate":
        return offered
    if offered != "negotiate":
        raise AuthenticationError(
            f"Server responded with the auth protocol '{scheme}' which is incompatible with the specified "
            f"auth_provider '{configured}'"
        )
    return configured


def answer_token(www_authenticate: str | None) -> bytes | None:
    """The host's token of this round; None (or empty) when it sent none."""
    match = _TOKEN.search(www_authenticate or "")
    if match is None:
        return None
    try:
        return base64.b64decode(match.group(2))
    except ValueError:
        raise AuthenticationError("the host's sign-in token is not base64") from None


def token_header(scheme: str, token: bytes) -> str:
    return f"{scheme} {base64.b64encode(token).decode('ascii')}"


def basic_header(user: str, password: str) -> str:
    """``Authorization: Basic`` as requests builds it (RFC 7617: latin-1 unless a character needs UTF-8)."""
    raw = f"{user}:{password}"
    try:
        data = raw.encode("latin-1")
    except UnicodeEncodeError:
        data = raw.encode("utf-8")
    return "Basic " + base64.b64encode(data).decode("ascii")


def channel_bindings(sock: socket.socket | None) -> spnego.channel_bindings.GssChannelBindings | None:
    """The TLS channel binding of an HTTPS connection's socket; None on plain HTTP."""
    if not isinstance(sock, ssl.SSLSocket):
        return None
    der = sock.getpeercert(binary_form=True)
    if not der:
        return None
    digest: bytes = HTTPNegotiateAuth._get_certificate_hash(der)  # type: ignore[no-untyped-call]  # pypsrp's
    return spnego.channel_bindings.GssChannelBindings(application_data=b"tls-server-end-point:" + digest)


def new_context(
    user: str | None,
    password: str | None,
    *,
    hostname: str,
    protocol: str,
    bindings: spnego.channel_bindings.GssChannelBindings | None,
    wrap: bool,
) -> spnego.ContextProxy:
    """A fresh client context for one sign-in (service ``host``, as pypsrp asks for)."""
    username, secret = credentials(user, password)
    return spnego.client(
        username,
        secret,
        hostname=hostname,
        service="host",
        channel_bindings=bindings,
        context_req=spnego.ContextReq.default,
        protocol=protocol,
        options=spnego.NegotiateOptions.wrapping_winrm if wrap else spnego.NegotiateOptions.none,
    )


def credentials(user: str | None, password: str | None) -> tuple[str | list[spnego.Credential] | None, str | None]:
    """spnego's (username, password) arguments: the NTLM hashes (computed once) ahead of the password; the two
    strings as given where spnego would not take a password (no user, no password, or a password that is itself
    an ``LM:NT`` hash pair)."""
    if not user or password is None or is_ntlm_hash(password):
        return user, password
    lm_hash, nt_hash = _ntlm_hashes(password)
    hashed = spnego.NTLMHash(username=user, lm_hash=lm_hash, nt_hash=nt_hash)
    return [hashed, spnego.Password(username=user, password=password)], None


@functools.lru_cache(maxsize=8)
def _ntlm_hashes(password: str) -> tuple[str, str]:
    """LMOWFv1 and NTOWFv1 of a password, as hex (kept in this process's memory only, like the password). Each
    hash signs in as well as the password does, so both are registered as secrets: masked wherever text leaves."""
    lm_hash, nt_hash = lmowfv1(password).hex(), ntowfv1(password).hex()
    register_digests((lm_hash, nt_hash))  # masked as hex in either letter case
    return lm_hash, nt_hash
