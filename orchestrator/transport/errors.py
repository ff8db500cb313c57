"""The errors the transport raises. pypsrp/requests exceptions are mapped into these in one place
(``orchestrator.transport.winrm``) and nowhere else. Messages never contain credentials."""

from __future__ import annotations

from typing import Literal, get_args

#: Why a transport call failed, set where the error is raised; retry decisions and callers test this field, never
#: the wording of the message.
Cause = Literal[
    "refused",  # connection refused / no route: the PC is off or WinRM is not listening
    "tls",  # the TLS handshake failed (certificate not trusted …)
    "timeout",  # no answer in time: connect timeout, read timeout, a command past its own timeout
    "dropped",  # the connection broke before the host answered (reset, network error)
    "budget",  # the host's whole time budget ran out: nothing more is sent
    "cancelled",  # the run is stopping (Ctrl-C)
    "auth",  # the host refused the credentials
    "fault",  # a WS-Management SOAP fault (``WSManFault.kind`` classifies it further)
    "protocol",  # an answer that is not acceptable WS-Management (malformed, of an unexpected shape)
    "too_large",  # an answer or an enumeration past its size limit
    "encoded",  # a compressed answer (Content-Encoding), refused unread
    "redirect",  # an HTTP redirect, never followed
    "signin_loop",  # endless sign-in rounds
    "slow",  # an answer trickling in past its exchange's wall time
]
CAUSES: tuple[Cause, ...] = get_args(Cause)


class TransportError(Exception):
    """Base: something went wrong talking to a host. ``cause`` says why (``Cause``); each subclass has a default."""

    default_cause: Cause = "protocol"

    def __init__(self, host: str, message: str, *, cause: Cause | None = None) -> None:
        self.host = host
        self.message = message
        self.cause: Cause = cause if cause is not None else self.default_cause
        super().__init__(f"{host}: {message}")

    def again(self, message: str) -> TransportError:
        """The same error (type and cause) with another message."""
        return type(self)(self.host, message, cause=self.cause)


class Unreachable(TransportError):
    """Connection refused, name not resolved, connect timeout, TLS failure, or the connection dropped mid-request."""

    default_cause: Cause = "dropped"


class AuthFailed(TransportError):
    """The host rejected the credentials (HTTP 401 after authentication). Never retried."""

    default_cause: Cause = "auth"


class OperationTimeout(TransportError):
    """No answer within the read timeout or the host's time budget."""

    default_cause: Cause = "timeout"


class ProtocolError(TransportError):
    """The host answered with something that is not acceptable WS-Management (malformed, hostile, too big)."""

    default_cause: Cause = "protocol"


# WinRM's own HRESULTs (facility 0x33, ``wsmerror.h``). A fault is classified by these numbers wherever the answer
# carries them - ``f:WSManFault@Code`` or ``MSFT_WmiError/error_Code`` - never by which element carries them.
FACILITY_WINRM_MASK, FACILITY_WINRM = 0xFFFF0000, 0x80330000
# HRESULT facilities of a WMI provider's own errors: 0xC004xxxx (software licensing), 0x8007xxxx (Win32, e.g.
# 0x80070005 access denied), 0x8004xxxx (WMI's WBEM_E_*).
PROVIDER_FACILITIES = (0xC0040000, 0x80070000, 0x80040000)
ERROR_WSMAN_OPERATION_TIMEDOUT = 0x80338029  # 2150858793, subcode w:TimedOut: no answer within OperationTimeout
# The quota family (names from wsmerror.h as PowerShell's CimChildJobBase.cs lists them, plus QUOTA_LIMIT, the code
# of the w:QuotaLimit subcode). Recorded: 0x803381A5 in MSFT_WmiError (WinRb/WinRM's wmi_error_v2 stub) and
# 0x803381A6 in WSManFault@Code under a w:InternalError subcode (Zenoss txwinrm's max_concurrent.xml).
WSMAN_QUOTA_CODES: dict[int, str] = {
    0x8033803F: "ERROR_WSMAN_QUOTA_LIMIT",
    0x803381A5: "ERROR_WSMAN_QUOTA_MAX_SHELLS",
    0x803381A6: "ERROR_WSMAN_QUOTA_MAX_OPERATIONS",
    0x803381A7: "ERROR_WSMAN_QUOTA_USER",
    0x803381A8: "ERROR_WSMAN_QUOTA_SYSTEM",
    0x803381AB: "ERROR_WSMAN_QUOTA_MAX_SHELLUSERS",
    0x803381E4: "ERROR_WSMAN_QUOTA_MAX_SHELLS_PPQ",
    0x803381E5: "ERROR_WSMAN_QUOTA_MAX_USERS_PPQ",
    0x803381E6: "ERROR_WSMAN_QUOTA_MAX_PLUGINSHELLS_PPQ",
    0x803381E7: "ERROR_WSMAN_QUOTA_MAX_PLUGINOPERATIONS_PPQ",
    0x803381E8: "ERROR_WSMAN_QUOTA_MAX_OPERATIONS_USER_PPQ",
    0x803381E9: "ERROR_WSMAN_QUOTA_MAX_COMMANDS_PER_SHELL_PPQ",
    0x803381EA: "ERROR_WSMAN_QUOTA_MIN_REQUIREMENT_NOT_AVAILABLE_PPQ",
}


class WSManFault(TransportError):
    """A WS-Management SOAP fault. ``code`` is the unsigned ``WSManFault@Code`` (an HRESULT) when present,
    ``wmi_code`` the ``MSFT_WmiError/error_Code``.

    ``kind`` classifies it by its numbers: ``quota`` (a WinRM quota), ``timed_out`` (w:TimedOut), ``provider``
    (the WMI provider's own HRESULT: any non-WinRM code in MSFT_WmiError, or a licensing/Win32/WMI code in
    WSManFault@Code, e.g. 0xC004F074) or ``wsman`` (any other fault: a 0x8033xxxx code, a generic one such as
    E_FAIL, or none). All but ``provider`` are infrastructure."""

    def __init__(
        self,
        host: str,
        code: int | None,
        reason: str,
        *,
        subcode: str | None = None,
        wmi_code: int | None = None,
    ) -> None:
        self.code = code
        self.reason = reason
        self.subcode = subcode
        self.wmi_code = wmi_code
        shown = f"0x{code:08X}" if code is not None else (subcode or "fault")
        super().__init__(host, f"WS-Management fault {shown}: {reason}", cause="fault")

    def again(self, message: str) -> TransportError:
        return type(self)(self.host, self.code, message, subcode=self.subcode, wmi_code=self.wmi_code)

    @property
    def codes(self) -> tuple[int, ...]:
        return tuple(c for c in (self.wmi_code, self.code) if c is not None)

    @property
    def kind(self) -> str:
        codes = self.codes
        sub = (self.subcode or "").rsplit(":", 1)[-1]
        if any(c in WSMAN_QUOTA_CODES for c in codes) or (not codes and sub == "QuotaLimit"):
            return "quota"
        if ERROR_WSMAN_OPERATION_TIMEDOUT in codes or (not codes and sub == "TimedOut"):
            return "timed_out"
        if self.wmi_code is not None and self.wmi_code & FACILITY_WINRM_MASK != FACILITY_WINRM:
            return "provider"  # MSFT_WmiError carries the provider's own error
        if self.code is not None and self.code & FACILITY_WINRM_MASK in PROVIDER_FACILITIES:
            return "provider"
        return "wsman"  # a WinRM code, a generic one (E_FAIL of an internal error), or none

    @property
    def infrastructure(self) -> bool:
        """WinRM itself failed (quota, time-out, internal error …), not the WMI provider behind it."""
        return self.kind != "provider"

    @property
    def transient(self) -> bool:
        """May go away when asked again (on a fresh connection): a quota, a time-out, an internal error, 503/429."""
        kind = self.kind
        if kind == "quota":
            # another try opens another shell: with MaxShellsPerUser used up (by other sessions, or shells a
            # broken connection left behind until their idle timeout) that only fails again
            return ERROR_WSMAN_QUOTA_MAX_SHELLS not in self.codes
        if kind == "timed_out":
            return True
        sub = self.subcode or ""
        return kind == "wsman" and (sub.endswith("InternalError") or sub in ("http503", "http429"))

    @property
    def hresult(self) -> int | None:
        """The most specific error number: the WMI error code when the provider gave one."""
        return self.wmi_code if self.wmi_code is not None else self.code


ERROR_WSMAN_QUOTA_MAX_SHELLS = 0x803381A5


class WSManQuotaExceeded(WSManFault):
    """A WinRM quota fault (``kind == "quota"``): infrastructure, worth another try later; never a licensing
    error."""


class WSManTimedOut(WSManFault):
    """w:TimedOut (0x80338029): no answer within OperationTimeout. Infrastructure; answering ``Activate`` it means
    the KMS host did not answer."""


def wsman_fault(
    host: str, code: int | None, reason: str, *, subcode: str | None = None, wmi_code: int | None = None
) -> WSManFault:
    """The fault, typed by its codes (``WSManFault.kind``)."""
    fault = WSManFault(host, code, reason, subcode=subcode, wmi_code=wmi_code)
    kind = fault.kind
    if kind == "quota":
        return WSManQuotaExceeded(host, code, reason, subcode=subcode, wmi_code=wmi_code)
    if kind == "timed_out":
        return WSManTimedOut(host, code, reason, subcode=subcode, wmi_code=wmi_code)
    return fault
