"""How to reach one host: the Ansible connection variables, validated before anything is contacted.

``HostConnectionVars`` (pydantic) is the one parser of these variables; ``connection_spec`` turns a host's
(templated) variables into the frozen ``ConnectionSpec`` the transport uses, and ``host_budget`` is the one reader
of the whole-host time budget (the executor asks it for the deadline). A bad value is an ``InputError`` that names
the host, the variable and the value — never the value of a password or key.

Supported variables (Ansible names): ``ansible_host``, ``ansible_port``, ``ansible_user``, ``ansible_password``
(or ``ansible_winrm_password``), ``ansible_winrm_transport`` (ntlm | negotiate | basic | kerberos | certificate |
credssp; a comma list: the first wins; pywinrm's ``plaintext``/``ssl`` mean basic), ``ansible_winrm_scheme``
(http | https; default https, http on port 5985), ``ansible_winrm_server_cert_validation`` (validate | ignore |
a CA file), ``ansible_winrm_operation_timeout_sec``, ``ansible_winrm_read_timeout_sec`` (greater than the
operation timeout), ``ansible_winrm_connection_timeout_sec``, ``ansible_winrm_message_encryption`` (auto |
always | never), ``ansible_winrm_cert_pem`` / ``ansible_winrm_cert_key_pem`` (certificate auth),
``ansible_winrm_proxy``; kmsfleet's own ``kmsfleet_allow_insecure_basic`` (Basic over plain HTTP sends the password
readable on the wire: refused unless this is true; Ansible's boolean words, ``orchestrator.booleans``),
``kmsfleet_host_budget_sec`` (the whole-host time budget: a number of seconds greater than 0) and
``kmsfleet_max_output_bytes`` (stdout + stderr kept per command; docs/hardening.md) and ``kmsfleet_http``
(lean | requests: kmsfleet's own HTTP sender under pypsrp, the default, or pypsrp's requests-based one;
``transport.http_sender``, docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, TypeAdapter, ValidationError, model_validator

from orchestrator.booleans import parse_boolean
from orchestrator.errors import InputError
from orchestrator.redact import register_secret
from orchestrator.transport.guard import MAX_OUTPUT_BYTES

Transport = Literal["ntlm", "negotiate", "basic", "kerberos", "certificate", "credssp"]
HttpSender = Literal["lean", "requests"]
TRANSPORTS: tuple[str, ...] = ("ntlm", "negotiate", "basic", "kerberos", "certificate", "credssp")
_ALIASES = {"plaintext": "basic", "ssl": "basic"}
_PASSWORD_AUTH = ("ntlm", "negotiate", "basic", "credssp")
_SECRET_VARS = frozenset({"ansible_password", "ansible_winrm_password", "ansible_winrm_cert_key_pem"})
DEFAULT_BUDGET = 600.0
BUDGET_VAR = "kmsfleet_host_budget_sec"


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
    budget: float = DEFAULT_BUDGET
    max_output_bytes: int = MAX_OUTPUT_BYTES
    http: HttpSender = "lean"  # kmsfleet_http: the HTTP layer under pypsrp (transport.http_sender)

    @property
    def endpoint(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{host}:{self.port}/wsman"


class _Refused(ValueError):
    """A variable's value is refused: ``text`` names the variable (and the value, unless it is a secret)."""

    def __init__(self, text: str, hint: str | None = None) -> None:
        self.text = text
        self.hint = hint
        super().__init__(text)


# ---------------------------------------------------------------------------- one value each


def _whole_number(name: str, low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        try:
            number = int(str(value).strip())
        except ValueError:
            raise _Refused(f"{name} must be a whole number, not {value!r}") from None
        if not low <= number <= high:
            raise _Refused(f"{name} must be between {low} and {high}, not {number}")
        return number

    return parse


def _seconds(value: Any) -> float:
    """The host budget: a number of seconds greater than 0 (a word, a bool, 0 or less are refused)."""
    if isinstance(value, bool):
        raise _Refused(f"{BUDGET_VAR} must be a number of seconds, not {value!r}")
    try:
        seconds = float(str(value).strip())
    except ValueError:
        raise _Refused(f"{BUDGET_VAR} must be a number of seconds, not {value!r}") from None
    if not seconds > 0:  # also NaN
        raise _Refused(f"{BUDGET_VAR} must be positive, not {value!r}")
    return seconds


def _choice(name: str, choices: tuple[str, ...], said: str) -> Callable[[Any], str | None]:
    def parse(value: Any) -> str | None:
        if value is None:
            return None
        text = str(value).strip().lower()
        if text not in choices:
            raise _Refused(f"{name} must be {said}, not {text!r}")
        return text

    return parse


def _transport(value: Any) -> str:
    raw = str(value).strip().lower()
    if "," in raw:  # Ansible allows a list; the first one we support wins
        raw = raw.split(",")[0].strip()
    transport = _ALIASES.get(raw, raw)
    if transport not in TRANSPORTS:
        raise _Refused(f"ansible_winrm_transport {raw!r} is not supported; use one of {', '.join(TRANSPORTS)}")
    return transport


def _cert_validation(value: Any) -> bool | str:
    """validate/ignore (pywinrm's words), Ansible's boolean words, or the path of a CA bundle."""
    if isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.lower() in ("validate", "ignore"):
        return text.lower() == "validate"
    flag = parse_boolean(text)
    return flag if flag is not None and text.lower() in ("true", "false", "yes", "no") else text


def _flag(name: str) -> Callable[[Any], bool]:
    def parse(value: Any) -> bool:
        if value is None or value == "":
            return False  # unset, or set to nothing
        flag = parse_boolean(value)
        if flag is None:
            raise _Refused(f"{name} must be true or false, not {value!r}")
        return flag

    return parse


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _given(value: Any) -> Any:
    """``None`` for a value left empty (an unset variable renders as ``""``), so the field's default applies."""
    return None if value is None or value == "" else value


Budget = Annotated[float, BeforeValidator(_seconds)]
_BUDGET = TypeAdapter(Budget)
Text = Annotated[str | None, BeforeValidator(_text)]


def _number(name: str, low: int, high: int) -> BeforeValidator:
    return BeforeValidator(_whole_number(name, low, high))


class HostConnectionVars(BaseModel):
    """A host's connection variables, each checked on its own; the rules between them in ``_consistent``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    ansible_host: Annotated[str | None, BeforeValidator(lambda v: _text(_given(v)))] = None
    ansible_port: Annotated[int, _number("ansible_port", 1, 65535)] = 5986
    ansible_user: Text = None
    ansible_password: Text = None
    ansible_winrm_password: Text = None
    ansible_winrm_transport: Annotated[Transport, BeforeValidator(_transport)] = "ntlm"
    ansible_winrm_scheme: Annotated[
        Literal["http", "https"] | None,
        BeforeValidator(lambda v: _choice("ansible_winrm_scheme", ("http", "https"), "http or https")(_given(v))),
    ] = None
    ansible_winrm_server_cert_validation: Annotated[bool | str, BeforeValidator(_cert_validation)] = True
    ansible_winrm_operation_timeout_sec: Annotated[int, _number("ansible_winrm_operation_timeout_sec", 1, 3600)] = 20
    ansible_winrm_read_timeout_sec: Annotated[int | None, _number("ansible_winrm_read_timeout_sec", 1, 3600)] = None
    ansible_winrm_connection_timeout_sec: Annotated[int, _number("ansible_winrm_connection_timeout_sec", 1, 600)] = 10
    ansible_winrm_message_encryption: Annotated[
        Literal["auto", "always", "never"],
        BeforeValidator(
            _choice("ansible_winrm_message_encryption", ("auto", "always", "never"), "auto, always or never")
        ),
    ] = "auto"
    ansible_winrm_cert_pem: Text = None
    ansible_winrm_cert_key_pem: Text = None
    ansible_winrm_proxy: Text = None
    kmsfleet_allow_insecure_basic: Annotated[bool, BeforeValidator(_flag("kmsfleet_allow_insecure_basic"))] = False
    kmsfleet_host_budget_sec: Budget = DEFAULT_BUDGET
    kmsfleet_max_output_bytes: Annotated[int, _number("kmsfleet_max_output_bytes", 1024, 1 << 30)] = MAX_OUTPUT_BYTES
    kmsfleet_http: Annotated[
        HttpSender,
        BeforeValidator(
            lambda v: _choice("kmsfleet_http", ("lean", "requests"), "lean or requests")(_given(v)) or "lean"
        ),
    ] = "lean"

    @property
    def password(self) -> str | None:
        return self.ansible_password if self.ansible_password is not None else self.ansible_winrm_password

    @property
    def scheme(self) -> Literal["http", "https"]:
        return self.ansible_winrm_scheme or ("http" if self.ansible_port == 5985 else "https")

    @property
    def read_timeout(self) -> int:
        given = self.ansible_winrm_read_timeout_sec
        return given if given is not None else max(30, self.ansible_winrm_operation_timeout_sec + 10)

    @model_validator(mode="after")
    def _consistent(self) -> HostConnectionVars:
        op, read = self.ansible_winrm_operation_timeout_sec, self.read_timeout
        if read <= op:
            raise _Refused(
                f"ansible_winrm_read_timeout_sec ({read}) must be greater than "
                f"ansible_winrm_operation_timeout_sec ({op})"
            )
        _check_credentials(self)
        _check_certificate(self)
        return self


def _check_credentials(v: HostConnectionVars) -> None:
    transport = v.ansible_winrm_transport
    if transport not in _PASSWORD_AUTH:
        return
    if not v.ansible_user:
        raise _Refused(f"ansible_user is required for {transport} authentication")
    # An empty password counts as none: Windows refuses blank passwords over the network, so trying it would
    # only add a failed sign-in to the account's lockout count (typically KMSFLEET_PASSWORD not exported).
    if not v.password:
        raise _Refused(
            f"no password for {v.ansible_user}" + (" (the password is empty)" if v.password == "" else ""),
            hint="use --ask-pass, set KMSFLEET_PASSWORD, or ansible_password: \"{{ lookup('env', 'NAME') }}\"",
        )
    if transport == "basic" and v.scheme == "http" and not v.kmsfleet_allow_insecure_basic:
        raise _Refused(
            "Basic authentication over plain HTTP would send the password readable on the network",
            hint="use ansible_winrm_transport: ntlm (encrypted), or https, or set "
            "kmsfleet_allow_insecure_basic: true if you really mean it",
        )


def _check_certificate(v: HostConnectionVars) -> None:
    if v.ansible_winrm_transport != "certificate":
        return
    if v.scheme != "https":
        raise _Refused("certificate authentication needs ansible_winrm_scheme: https")
    if not v.ansible_winrm_cert_pem or not v.ansible_winrm_cert_key_pem:
        raise _Refused("certificate authentication needs ansible_winrm_cert_pem and ansible_winrm_cert_key_pem")


def _input_error(host: str, error: ValidationError) -> InputError:
    """The first problem of ``error`` as the user reads it: the host, the variable, the value (not a secret's)."""
    first = error.errors()[0]
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, _Refused):
        return InputError(f"host {host}: {cause.text}", hint=cause.hint)
    name = ".".join(str(part) for part in first["loc"]) or "the connection variables"
    shown = "" if name in _SECRET_VARS else f", not {first.get('input')!r}"
    return InputError(f"host {host}: {name} is not valid ({first['msg']}){shown}")


def connection_vars(host: str, hostvars: Mapping[str, Any]) -> HostConnectionVars:
    """The host's connection variables, validated (``InputError`` naming the variable when one is wrong)."""
    try:
        return HostConnectionVars.model_validate(dict(hostvars))
    except ValidationError as exc:
        raise _input_error(host, exc) from None


def connection_spec(host: str, hostvars: Mapping[str, Any]) -> ConnectionSpec:
    """Build and validate the connection settings of one host from its (templated) variables."""
    v = connection_vars(host, hostvars)
    password = v.password
    if password is not None:
        register_secret(password)
    basic_http = v.ansible_winrm_transport == "basic" and v.scheme == "http"
    return ConnectionSpec(
        host=host,
        address=v.ansible_host or host,
        port=v.ansible_port,
        scheme=v.scheme,
        transport=v.ansible_winrm_transport,
        user=v.ansible_user,
        password=password,
        cert_validation=v.ansible_winrm_server_cert_validation,
        operation_timeout=v.ansible_winrm_operation_timeout_sec,
        read_timeout=v.read_timeout,
        connect_timeout=v.ansible_winrm_connection_timeout_sec,
        message_encryption="never" if basic_http else v.ansible_winrm_message_encryption,
        cert_pem=v.ansible_winrm_cert_pem,
        cert_key_pem=v.ansible_winrm_cert_key_pem,
        proxy=v.ansible_winrm_proxy,
        budget=v.kmsfleet_host_budget_sec,
        max_output_bytes=v.kmsfleet_max_output_bytes,
        http=v.kmsfleet_http,
    )


def host_budget(host: str, value: Any) -> float:
    """The value of ``kmsfleet_host_budget_sec`` in seconds, by the same rule as ``connection_spec``
    (``InputError`` naming the variable when it is not a number greater than 0)."""
    try:
        return _BUDGET.validate_python(value)
    except ValidationError as exc:
        raise _input_error(host, exc) from None
