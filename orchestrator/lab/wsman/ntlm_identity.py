"""The NTLM CHALLENGE names the simulated PC, as Windows names itself, not the machine the lab runs on.

What Windows sends (MS-NLMP 2.2.1.2 CHALLENGE_MESSAGE, 2.2.2.1 AV_PAIR; 3.2.5.1.1 for the server): TargetName is
the server's NetBIOS domain name — for a workgroup PC that is its own SAM domain, i.e. its computer name — and
TargetInfo carries ``MsvAvNbDomainName``, ``MsvAvNbComputerName``, ``MsvAvDnsDomainName``,
``MsvAvDnsComputerName`` and ``MsvAvTimestamp``. Public ``nmap --script rdp-ntlm-info`` scans of workgroup
Windows hosts (Windows 7 6.1.7600, Server 2019 10.0.17763, Windows 10 10.0.18362) show exactly that: Target_Name,
NetBIOS_Domain_Name and NetBIOS_Computer_Name are all the computer name, DNS_Domain_Name and DNS_Computer_Name its
host name, and no DNS_Tree_Name.

Why it matters: an NTLM client that signs in with a bare user name takes the domain from the CHALLENGE's
TargetName (Azure/go-ntlmssp ``ProcessChallenge``, used by the Go WinRM client masterzen/winrm behind Packer and
Terraform). Windows accepts ``PC01\\user`` for its local account; the lab must too, so the domain it announces
must be the PC's.

pyspnego's acceptor (``spnego._ntlm.NTLMProxy._step_accept_negotiate``) always names the process's host
(``socket.gethostname()``, domain ``WORKSTATION``) and has no option for it. ``install()`` wraps that one method:
after pyspnego built its CHALLENGE, and only while ``announce(...)`` is active (the lab's acceptor calls, see
``wsman.auth``), the CHALLENGE is rebuilt with the same flags, server challenge, timestamp and version but the
PC's names, and stored back as the context's challenge so the AUTHENTICATE's MIC is checked against the bytes
actually sent. Outside ``announce`` (every initiator, any other acceptor) pyspnego's behaviour is unchanged.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from spnego._ntlm import NTLMProxy
from spnego._ntlm_raw.messages import AvId, Challenge, FileTime, NegotiateFlags, TargetInfo

NETBIOS_MAX = 15  # NetBIOS names: 15 significant characters (the 16th is the service suffix)


@dataclass(frozen=True, slots=True)
class NtlmIdentity:
    """How a workgroup PC names itself in its CHALLENGE."""

    netbios_name: str  # NetBIOS computer name, upper case; also the workgroup PC's NetBIOS domain
    dns_name: str  # host name; also the workgroup PC's DNS domain name

    @classmethod
    def workgroup(cls, computer_name: str) -> NtlmIdentity:
        return cls(netbios_name=computer_name.upper()[:NETBIOS_MAX], dns_name=computer_name)

    def target_info(self, timestamp: FileTime) -> TargetInfo:
        info = TargetInfo()
        # Windows' order: NbDomainName, NbComputerName, DnsDomainName, DnsComputerName, Timestamp (MsvAvEOL is
        # added by pack()).
        info[AvId.nb_domain_name] = self.netbios_name
        info[AvId.nb_computer_name] = self.netbios_name
        info[AvId.dns_domain_name] = self.dns_name
        info[AvId.dns_computer_name] = self.dns_name
        info[AvId.timestamp] = timestamp
        return info


_CURRENT: contextvars.ContextVar[NtlmIdentity | None] = contextvars.ContextVar("kmsfleet_ntlm_identity", default=None)
_INSTALLED_MARK = "_kmsfleet_ntlm_identity"


@contextlib.contextmanager
def announce(identity: NtlmIdentity | None) -> Iterator[None]:
    """NTLM acceptor steps inside this block name ``identity`` in their CHALLENGE."""
    token = _CURRENT.set(identity)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def rebuild_challenge(original: Challenge, identity: NtlmIdentity) -> Challenge:
    """The same CHALLENGE (flags, nonce, timestamp, version) naming ``identity``."""
    info = original.target_info
    stamp = info.get(AvId.timestamp) if info is not None else None
    return Challenge(
        original.flags,
        original.server_challenge,
        target_name=identity.netbios_name,
        target_info=identity.target_info(stamp if isinstance(stamp, FileTime) else FileTime.now()),
        version=original.version,
    )


def install() -> None:
    """Wrap pyspnego's CHALLENGE builder once per process (idempotent)."""
    current = NTLMProxy._step_accept_negotiate
    if getattr(current, _INSTALLED_MARK, False):
        return
    original: Callable[[Any, bytes], bytes] = current

    def step_accept_negotiate(self: Any, token: bytes) -> bytes:
        out = original(self, token)
        identity = _CURRENT.get()
        challenge = getattr(self, "_temp_challenge", None)
        if identity is None or not isinstance(challenge, Challenge):
            return out
        if not challenge.flags & NegotiateFlags.unicode:
            return out  # OEM-only clients (none in practice) keep pyspnego's CHALLENGE
        rebuilt = rebuild_challenge(challenge, identity)
        self._temp_challenge = rebuilt
        return rebuilt.pack()

    setattr(step_accept_negotiate, _INSTALLED_MARK, True)
    NTLMProxy._step_accept_negotiate = step_accept_negotiate  # type: ignore[method-assign]
