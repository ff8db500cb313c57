"""How to reach one host: the Ansible connection variables, validated before anything is contacted.

Supported variables (Ansible names): ``ansible_host``, ``ansible_port``, ``ansible_user``, ``ansible_password``,
``ansible_winrm_transport`` (ntlm | negotiate | basic | kerberos | certificate | credssp),
``ansible_winrm_scheme`` (http | https), ``ansible_winrm_server_cert_validation`` (validate | ignore | a CA
file), ``ansible_winrm_operation_timeout_sec``, ``ansible_winrm_read_timeout_sec``,
``ansible_winrm_connection_timeout_sec``, ``ansible_winrm_message_encryption`` (auto | always | never),
``ansible_winrm_cert_pem`` / ``ansible_winrm_cert_key_pem`` (certificate auth), ``ansible_winrm_proxy``;
kmsfleet's own ``kmsfleet_allow_insecure_basic`` (Basic over plain HTTP sends the password readable on the
wire: refused unless this is true), ``kmsfleet_host_budget_sec`` (the whole-host time budget) and
``kmsfleet_max_output_bytes`` (stdout + stderr kept per command; docs/hardening.md) and ``kmsfleet_http``
(lean | requests: kmsfleet's own HTTP sender under pypsrp, or pypsrp's requests-based one; docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from orchestrator.errors import InputError
from orchestrator.redact import register_secret
from orchestrator.transport.guard import MAX_OUTPUT_BYTES

Transport = Literal["ntlm", "negotiate", "basic", "kerberos", "certificate", "credssp"]
TRANSPORTS: tuple[str, ...] = ("ntlm", "negotiate", "basic", "kerberos", "certificate", "credssp")
_ALIASES = {"plaintext": "basic", "ssl": "basic"}


@dataclass(frozen=True)
class ConnectionSpec:
    host: str  # the inventory name (for messages)
    address: str  # what we connect to
    port: int
    scheme: Literal["http", "https"]
    transport: Transport
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    cert_validation: bool | str = True
    operation_timeout: int = 20
    read_timeout: int = 30
    connect_timeout: int = 10
    message_encryption: Literal["auto", "always", "never"] = "auto"
    cert_pem: str | None = None
    cert_key_pem: str | None = field(default=None, repr=False)
    proxy: str | None = None
    budget: float = 600.0
    max_output_bytes: int = MAX_OUTPUT_BYTES
    http: Literal["lean", "requests"] = "lean"  # kmsfleet_http: the HTTP layer under pypsrp (transport.http_sender)

    @property
    def endpoint(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{host}:{self.port}/wsman"


def _as_bool(value: Any, name: str, host: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on", "y"):
        return True
    if text in ("0", "false", "no", "off", "n", ""):
        return False
    raise InputError(f"host {host}: {name} must be true or false, not {value!r}")


def _as_int(value: Any, name: str, host: str, low: int, high: int) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise InputError(f"host {host}: {name} must be a whole number, not {value!r}") from None
    if not low <= number <= high:
        raise InputError(f"host {host}: {name} must be between {low} and {high}, not {number}")
    return number


def connection_spec(host: str, hostvars: Mapping[str, Any]) -> ConnectionSpec:
    """Build and validate the connection settings of one host from its (templated) variables."""
    address = str(hostvars.get("ansible_host") or host)
    raw_transport = str(hostvars.get("ansible_winrm_transport", "ntlm")).strip().lower()
    if "," in raw_transport:  # Ansible allows a list; the first one we support wins
        raw_transport = raw_transport.split(",")[0].strip()
    transport = _ALIASES.get(raw_transport, raw_transport)
    if transport not in TRANSPORTS:
        raise InputError(
            f"host {host}: ansible_winrm_transport {raw_transport!r} is not supported; "
            f"use one of {', '.join(TRANSPORTS)}"
        )
    port = _as_int(hostvars.get("ansible_port", 5986), "ansible_port", host, 1, 65535)
    scheme = str(hostvars.get("ansible_winrm_scheme") or ("http" if port == 5985 else "https")).lower()
    if scheme not in ("http", "https"):
        raise InputError(f"host {host}: ansible_winrm_scheme must be http or https, not {scheme!r}")

    validation_raw = hostvars.get("ansible_winrm_server_cert_validation", "validate")
    cert_validation: bool | str
    if isinstance(validation_raw, bool):
        cert_validation = validation_raw
    elif str(validation_raw).lower() in ("validate", "true", "yes"):
        cert_validation = True
    elif str(validation_raw).lower() in ("ignore", "false", "no"):
        cert_validation = False
    else:
        cert_validation = str(validation_raw)  # a CA bundle path

    op_timeout = _as_int(
        hostvars.get("ansible_winrm_operation_timeout_sec", 20),
        "ansible_winrm_operation_timeout_sec",
        host,
        1,
        3600,
    )
    read_timeout = _as_int(
        hostvars.get("ansible_winrm_read_timeout_sec", max(30, op_timeout + 10)),
        "ansible_winrm_read_timeout_sec",
        host,
        1,
        3600,
    )
    if read_timeout <= op_timeout:
        raise InputError(
            f"host {host}: ansible_winrm_read_timeout_sec ({read_timeout}) must be greater than "
            f"ansible_winrm_operation_timeout_sec ({op_timeout})"
        )
    connect_timeout = _as_int(
        hostvars.get("ansible_winrm_connection_timeout_sec", 10),
        "ansible_winrm_connection_timeout_sec",
        host,
        1,
        600,
    )
    encryption = str(hostvars.get("ansible_winrm_message_encryption", "auto")).lower()
    if encryption not in ("auto", "always", "never"):
        raise InputError(f"host {host}: ansible_winrm_message_encryption must be auto, always or never")

    user = hostvars.get("ansible_user")
    password = hostvars.get("ansible_password", hostvars.get("ansible_winrm_password"))
    if password is not None:
        password = str(password)
        register_secret(password)
    if transport in ("ntlm", "negotiate", "basic", "credssp") and not user:
        raise InputError(f"host {host}: ansible_user is required for {transport} authentication")
    # An empty password counts as none: Windows refuses blank passwords over the network, so trying it would
    # only add a failed sign-in to the account's lockout count (typically KMSFLEET_PASSWORD not exported).
    if transport in ("ntlm", "negotiate", "basic", "credssp") and not password:
        raise InputError(
            f"host {host}: no password for {user}" + (" (the password is empty)" if password == "" else ""),
            hint="use --ask-pass, set KMSFLEET_PASSWORD, or ansible_password: \"{{ lookup('env', 'NAME') }}\"",
        )
    if transport == "basic" and scheme == "http":
        if not _as_bool(hostvars.get("kmsfleet_allow_insecure_basic", False), "kmsfleet_allow_insecure_basic", host):
            raise InputError(
                f"host {host}: Basic authentication over plain HTTP would send the password readable on the network",
                hint="use ansible_winrm_transport: ntlm (encrypted), or https, or set "
                "kmsfleet_allow_insecure_basic: true if you really mean it",
            )
        encryption = "never"
    if transport == "certificate":
        if scheme != "https":
            raise InputError(f"host {host}: certificate authentication needs ansible_winrm_scheme: https")
        if not hostvars.get("ansible_winrm_cert_pem") or not hostvars.get("ansible_winrm_cert_key_pem"):
            raise InputError(
                f"host {host}: certificate authentication needs ansible_winrm_cert_pem and ansible_winrm_cert_key_pem"
            )
    budget_raw = hostvars.get("kmsfleet_host_budget_sec", 600)
    try:
        budget = float(budget_raw)
    except (TypeError, ValueError):
        raise InputError(f"host {host}: kmsfleet_host_budget_sec must be a number of seconds") from None
    if budget <= 0:
        raise InputError(f"host {host}: kmsfleet_host_budget_sec must be positive")
    max_output = _as_int(
        hostvars.get("kmsfleet_max_output_bytes", MAX_OUTPUT_BYTES), "kmsfleet_max_output_bytes", host, 1024, 1 << 30
    )
    http = str(hostvars.get("kmsfleet_http", "lean")).strip().lower()
    if http not in ("lean", "requests"):
        raise InputError(f"host {host}: kmsfleet_http must be lean or requests, not {http!r}")
    return ConnectionSpec(
        host=host,
        address=address,
        port=port,
        scheme=scheme,  # type: ignore[arg-type]
        transport=transport,  # type: ignore[arg-type]
        user=str(user) if user is not None else None,
        password=password,
        cert_validation=cert_validation,
        operation_timeout=op_timeout,
        read_timeout=read_timeout,
        connect_timeout=connect_timeout,
        message_encryption=encryption,  # type: ignore[arg-type]
        cert_pem=hostvars.get("ansible_winrm_cert_pem"),
        cert_key_pem=hostvars.get("ansible_winrm_cert_key_pem"),
        proxy=hostvars.get("ansible_winrm_proxy"),
        budget=budget,
        max_output_bytes=max_output,
        http=http,  # type: ignore[arg-type]
    )
