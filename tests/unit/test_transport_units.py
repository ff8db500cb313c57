"""Pure parts of the transport: connection variables and fault parsing (the wire tests run against the lab)."""

from __future__ import annotations

import pytest

from orchestrator.errors import InputError
from orchestrator.redact import redact_text
from orchestrator.transport.connection import connection_spec
from orchestrator.transport.errors import ProtocolError, WSManFault
from orchestrator.transport.winrm import WinRMConnection, parse_fault

BASE = {"ansible_host": "127.0.1.5", "ansible_user": "administrator", "ansible_password": "S3cret-pw!"}


def test_defaults_follow_ansible() -> None:
    spec = connection_spec("pc05", BASE)
    assert (spec.port, spec.scheme, spec.transport) == (5986, "https", "ntlm")
    assert spec.endpoint == "https://127.0.1.5:5986/wsman"
    http = connection_spec("pc05", {**BASE, "ansible_port": 5985})
    assert http.scheme == "http"


def test_password_never_in_repr_and_is_registered() -> None:
    spec = connection_spec("pc05", {**BASE, "ansible_password": "Very-Secret-9"})
    assert "Very-Secret-9" not in repr(spec)
    assert redact_text("x Very-Secret-9 y") == "x ******** y"


def test_basic_over_http_is_refused_unless_allowed() -> None:
    with pytest.raises(InputError, match="readable on the network"):
        connection_spec("pc05", {**BASE, "ansible_port": 5985, "ansible_winrm_transport": "basic"})
    spec = connection_spec(
        "pc05",
        {**BASE, "ansible_port": 5985, "ansible_winrm_transport": "basic", "kmsfleet_allow_insecure_basic": "yes"},
    )
    assert spec.message_encryption == "never"


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"ansible_winrm_transport": "telnet"}, "not supported"),
        ({"ansible_port": "abc"}, "whole number"),
        ({"ansible_winrm_operation_timeout_sec": 40, "ansible_winrm_read_timeout_sec": 30}, "greater than"),
        ({"ansible_password": None, "ansible_user": "x"}, None),
        ({"ansible_winrm_scheme": "ftp"}, "http or https"),
        ({"ansible_password": ""}, r"no password for .* \(the password is empty\)"),  # an unset env lookup
    ],
)
def test_bad_connection_vars(extra: dict[str, object], needle: str | None) -> None:
    values = {**BASE, **extra}
    if values.get("ansible_password") is None:
        values.pop("ansible_password")
        needle = "no password"
    with pytest.raises(InputError, match=needle):
        connection_spec("pc05", values)


FAULT = """<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><s:Fault>
<s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>w:InternalError</s:Value></s:Subcode></s:Code>
<s:Reason><s:Text xml:lang="en-US">outer reason</s:Text></s:Reason>
<s:Detail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="3221549172">
<f:Message>No KMS could be contacted</f:Message></f:WSManFault>
<p:MSFT_WmiError xmlns:p="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/MSFT_WmiError">
<p:error_Code>3221549164</p:error_Code></p:MSFT_WmiError></s:Detail></s:Fault></s:Body></s:Envelope>"""


def test_fault_codes_are_parsed() -> None:
    err = parse_fault("pc01", 500, FAULT)
    assert isinstance(err, WSManFault)
    assert err.code == 0xC004F074
    assert err.wmi_code == 0xC004F06C
    assert err.hresult == 0xC004F06C
    assert err.subcode == "w:InternalError"
    assert "No KMS" in err.reason


@pytest.mark.parametrize(
    "body",
    [
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><x>&b;</x>',
        "this is not xml",
        "<s:Envelope",
    ],
)
def test_hostile_or_malformed_faults_are_protocol_errors(body: str) -> None:
    assert isinstance(parse_fault("pc01", 500, body), ProtocolError)


def test_empty_fault_body() -> None:
    err = parse_fault("pc01", 503, "")
    assert isinstance(err, WSManFault)
    assert err.subcode == "http503"
    assert WinRMConnection._transient(err)


def test_auth_and_refused_are_never_transient() -> None:
    from orchestrator.transport.errors import AuthFailed, Unreachable

    assert not WinRMConnection._transient(AuthFailed("pc", "no"))
    assert not WinRMConnection._transient(Unreachable("pc", "connection refused on x", cause="refused"))
    assert WinRMConnection._transient(Unreachable("pc", "the connection dropped before the host answered"))
