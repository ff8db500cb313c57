"""The errors the transport raises. pypsrp/requests exceptions are mapped into these in one place
(``orchestrator.transport.winrm``) and nowhere else. Messages never contain credentials."""

from __future__ import annotations


class TransportError(Exception):
    """Base: something went wrong talking to a host."""

    def __init__(self, host: str, message: str) -> None:
        self.host = host
        self.message = message
        super().__init__(f"{host}: {message}")


class Unreachable(TransportError):
    """Connection refused, name not resolved, connect timeout, or the connection dropped mid-request."""


class AuthFailed(TransportError):
    """The host rejected the credentials (HTTP 401 after authentication). Never retried."""


class OperationTimeout(TransportError):
    """No answer within the read timeout or the host's time budget."""


class ProtocolError(TransportError):
    """The host answered with something that is not acceptable WS-Management (malformed, hostile, too big)."""


class WSManFault(TransportError):
    """A WS-Management SOAP fault. ``code`` is the unsigned ``WSManFault@Code`` (an HRESULT) when present."""

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
        super().__init__(host, f"WS-Management fault {shown}: {reason}")

    @property
    def hresult(self) -> int | None:
        """The most specific error number: the WMI error code when the provider gave one."""
        return self.wmi_code if self.wmi_code is not None else self.code
