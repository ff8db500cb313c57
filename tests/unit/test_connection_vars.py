"""The one parser of a host's connection variables (``transport.connection.HostConnectionVars``): a bad value is an
``InputError`` naming the host, the variable and the value — never a secret — and the host budget has one rule,
shared by the connection and the executor's deadline."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.errors import InputError
from orchestrator.transport.connection import connection_spec, connection_vars, host_budget

BASE = {"ansible_host": "127.0.1.5", "ansible_user": "administrator", "ansible_password": "S3cret-pw!"}


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("ansible_port", "abc", "ansible_port must be a whole number, not 'abc'"),
        ("ansible_port", 70000, "ansible_port must be between 1 and 65535, not 70000"),
        ("ansible_winrm_operation_timeout_sec", "0", "ansible_winrm_operation_timeout_sec must be between 1 and 3600"),
        ("ansible_winrm_connection_timeout_sec", "ten", "ansible_winrm_connection_timeout_sec must be a whole number"),
        ("ansible_winrm_message_encryption", "sometimes", "must be auto, always or never, not 'sometimes'"),
        ("ansible_winrm_scheme", "ftp", "ansible_winrm_scheme must be http or https, not 'ftp'"),
        ("ansible_winrm_transport", "telnet", "ansible_winrm_transport 'telnet' is not supported"),
        ("kmsfleet_allow_insecure_basic", "maybe", "kmsfleet_allow_insecure_basic must be true or false, not 'maybe'"),
        ("kmsfleet_host_budget_sec", "soon", "kmsfleet_host_budget_sec must be a number of seconds, not 'soon'"),
        ("kmsfleet_host_budget_sec", 0, "kmsfleet_host_budget_sec must be positive, not 0"),
        ("kmsfleet_host_budget_sec", "-5", "kmsfleet_host_budget_sec must be positive, not '-5'"),
        ("kmsfleet_host_budget_sec", True, "kmsfleet_host_budget_sec must be a number of seconds, not True"),
        ("kmsfleet_max_output_bytes", 10, "kmsfleet_max_output_bytes must be between 1024 and 1073741824, not 10"),
        ("kmsfleet_http", "curl", "kmsfleet_http must be lean or requests, not 'curl'"),
    ],
)
def test_a_bad_value_names_host_variable_and_value(name: str, value: Any, expected: str) -> None:
    with pytest.raises(InputError) as info:
        connection_spec("pc05", {**BASE, name: value})
    assert info.value.message.startswith("host pc05: ")
    assert expected in info.value.message


def test_a_password_is_never_echoed() -> None:
    with pytest.raises(InputError) as info:
        connection_spec("pc05", {**BASE, "ansible_port": "x", "ansible_password": "Hunter-2-secret"})
    assert "Hunter-2-secret" not in str(info.value)
    with pytest.raises(InputError) as info:
        connection_spec("pc05", {**BASE, "ansible_winrm_transport": "basic", "ansible_port": 5985})
    assert "S3cret-pw!" not in str(info.value) and info.value.hint


@pytest.mark.parametrize(
    ("word", "allowed"),
    [
        *[("yes", True), ("Y", True), ("on", True), ("t", True), (1, True), (True, True)],
        *[("no", False), ("off", False), ("0", False), ("f", False), (False, False), ("", False)],
    ],
)
def test_insecure_basic_reads_ansibles_boolean_words(word: Any, allowed: bool) -> None:
    values = {**BASE, "ansible_port": 5985, "ansible_winrm_transport": "basic", "kmsfleet_allow_insecure_basic": word}
    if allowed:
        assert connection_spec("pc05", values).message_encryption == "never"
    else:
        with pytest.raises(InputError, match="readable on the network"):
            connection_spec("pc05", values)


def test_defaults_and_derived_values() -> None:
    spec = connection_spec("pc05", {**BASE, "ansible_host": "", "ansible_winrm_operation_timeout_sec": "40"})
    assert spec.address == "pc05"  # an empty ansible_host falls back to the inventory name
    assert (spec.operation_timeout, spec.read_timeout) == (40, 50)
    assert spec.budget == 600.0
    spec = connection_spec("pc05", {**BASE, "ansible_winrm_transport": "ssl, ntlm", "kmsfleet_host_budget_sec": "90"})
    assert (spec.transport, spec.budget) == ("basic", 90.0)
    assert connection_vars("pc05", {**BASE, "ansible_port": "5985"}).scheme == "http"


@pytest.mark.parametrize(
    ("value", "expected"), [("validate", True), ("ignore", False), ("no", False), ("/etc/ca.pem", "/etc/ca.pem")]
)
def test_cert_validation(value: str, expected: object) -> None:
    spec = connection_spec("pc05", {**BASE, "ansible_winrm_server_cert_validation": value})
    assert spec.cert_validation == expected


def test_the_budget_has_one_rule() -> None:
    assert host_budget("pc05", "90") == 90.0
    assert host_budget("pc05", 0.5) == 0.5
    for bad in ("soon", 0, -1, True, None):
        with pytest.raises(InputError, match="host pc05: kmsfleet_host_budget_sec"):
            host_budget("pc05", bad)
        with pytest.raises(InputError, match="host pc05: kmsfleet_host_budget_sec"):
            connection_spec("pc05", {**BASE, "kmsfleet_host_budget_sec": bad})
