"""A worker's own policy: what it will do whatever a batch message asks.

Set when the worker starts (``kmsfleet worker --site S --allow-hosts CIDR … [--allow-env NAME]``) and never
read from the broker, so even a message signed with a stolen controller key cannot make the worker:

- run a batch of another site, or sign in to an address outside ``--allow-hosts``;
- send its password where it can be read: Basic authentication over plain HTTP (``kmsfleet_allow_insecure_basic``),
  unencrypted messages over HTTP (``ansible_winrm_message_encryption: never``), HTTPS with certificate checks
  off (``ansible_winrm_server_cert_validation: ignore``), or through a proxy (``ansible_winrm_proxy``);
- read its own files or environment: ``lookup('file', …)`` is refused, ``lookup('env', NAME)`` answers only
  for the password variable (``KMSFLEET_PASSWORD``) and names given with ``--allow-env``; the batch carries
  the compiled plan (its ``vars_files`` read on the controller), so the worker reads no playbook file, and the
  plays' folders and ``role_path`` point at the batch's empty private folder (``worker.worker_plan``).

Checked twice: once on the whole batch before anything runs (host variables and extra vars, so a batch that
asks for any of this is refused as a whole and the controller is told why), and again on each PC's final
connection settings just before the worker connects (``guard_connections``), which also covers settings a
play or ``set_fact`` makes at run time. Lookups are restricted in the worker process (``guard_lookups``).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator import templating
from orchestrator.booleans import boolean
from orchestrator.errors import InputError
from orchestrator.executor import state

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
PASSWORD_ENV = "KMSFLEET_PASSWORD"  # noqa: S105 - the name of a variable
_CONNECTION_KEYS = (
    "ansible_host",
    "ansible_port",
    "ansible_winrm_transport",
    "ansible_winrm_scheme",
    "ansible_winrm_server_cert_validation",
    "ansible_winrm_message_encryption",
    "ansible_winrm_proxy",
    "kmsfleet_allow_insecure_basic",
)


class PolicyError(Exception):
    """A batch (or one PC's settings) outside the worker's policy; the text says which rule."""


def parse_networks(values: Iterable[str]) -> list[IpNetwork]:
    nets: list[IpNetwork] = []
    for value in values:
        for part in str(value).split(","):
            text = part.strip()
            if not text:
                continue
            try:
                nets.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                raise InputError(
                    f"--allow-hosts: {text!r} is not an address range", hint="e.g. 10.12.0.0/16 or 192.0.2.17"
                ) from None
    return nets


@dataclass(frozen=True)
class WorkerPolicy:
    site: str
    networks: tuple[IpNetwork, ...]
    env_names: frozenset[str] = field(default_factory=lambda: frozenset({PASSWORD_ENV}))

    # ------------------------------------------------------------------ whole batch

    def check_site(self, site: str) -> None:
        if site != self.site:
            raise PolicyError(f"the batch is for site {site!r}; this worker serves only {self.site!r}")

    def check_vars(self, host: str, variables: Mapping[str, Any]) -> None:
        """Static check of one PC's variables (host vars with extra vars over them)."""
        for key in _CONNECTION_KEYS:
            value = variables.get(key)
            if isinstance(value, str) and ("{{" in value or "{%" in value):
                raise PolicyError(f"host {host}: {key} is a template; this worker accepts only plain values")
        if boolean(variables.get("kmsfleet_allow_insecure_basic")):  # the transport's truth table (Ansible's)
            raise PolicyError(f"host {host}: kmsfleet_allow_insecure_basic is refused by this worker")
        if variables.get("ansible_winrm_proxy"):
            raise PolicyError(f"host {host}: ansible_winrm_proxy is refused by this worker")
        validation = variables.get("ansible_winrm_server_cert_validation", "validate")
        if validation is False or str(validation).lower() in ("ignore", "false", "no"):
            raise PolicyError(f"host {host}: ansible_winrm_server_cert_validation {validation!r} is refused")
        if str(variables.get("ansible_winrm_message_encryption", "auto")).lower() == "never":
            raise PolicyError(f"host {host}: ansible_winrm_message_encryption never is refused by this worker")
        transport = str(variables.get("ansible_winrm_transport", "ntlm")).lower()
        port = str(variables.get("ansible_port", 5986)).strip()
        scheme = str(variables.get("ansible_winrm_scheme") or ("http" if port == "5985" else "https")).lower()
        if "basic" in transport and scheme != "https":
            raise PolicyError(f"host {host}: Basic authentication over plain HTTP is refused by this worker")
        self.check_address(host, str(variables.get("ansible_host") or host))

    def check_address(self, host: str, address: str) -> None:
        for ip in _addresses(address):
            if not any(ip in net for net in self.networks):
                raise PolicyError(f"host {host}: address {ip} is outside this worker's --allow-hosts")

    # ------------------------------------------------------------------ one connection

    def check_spec(self, spec: Any) -> None:
        """The final connection settings of one PC (a ``transport.connection.ConnectionSpec``)."""
        if spec.proxy:
            raise PolicyError(f"host {spec.host}: a proxy is refused by this worker")
        if spec.cert_validation is False:
            raise PolicyError(f"host {spec.host}: certificate validation 'ignore' is refused by this worker")
        if spec.scheme != "https" and (spec.transport == "basic" or spec.message_encryption == "never"):
            raise PolicyError(f"host {spec.host}: unencrypted sign-in over plain HTTP is refused by this worker")
        self.check_address(spec.host, spec.address)


def _addresses(address: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    text = address.strip().strip("[]")
    try:
        return [ipaddress.ip_address(text)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(text, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise PolicyError(f"address {address!r} does not resolve") from None
    found = {ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos}
    if not found:
        raise PolicyError(f"address {address!r} does not resolve")
    return sorted(found, key=str)


# ------------------------------------------------------------------------------------------------ in-process guards

# The worker process runs only batches, so it installs these once at start (before the pool forks): the engine
# builds each PC's connection through ``executor.state.connection_spec`` and resolves lookups through
# ``templating._LOOKUPS``; both are wrapped here rather than given hooks in shared code.
_installed: dict[str, WorkerPolicy] = {}


def guard_connections(policy: WorkerPolicy) -> None:
    _installed["policy"] = policy
    original: Callable[[str, Mapping[str, Any]], Any] = getattr(state, "connection_spec")  # noqa: B009
    if getattr(original, "_kmsfleet_policy", False):
        return

    def checked(host: str, hostvars: Mapping[str, Any]) -> Any:
        spec = original(host, hostvars)
        try:
            _installed["policy"].check_spec(spec)
        except PolicyError as exc:
            raise InputError(f"refused by the worker's policy: {exc}") from None
        return spec

    checked._kmsfleet_policy = True  # type: ignore[attr-defined]
    setattr(state, "connection_spec", checked)  # noqa: B010


def guard_lookups(policy: WorkerPolicy) -> None:
    allowed = policy.env_names
    lookups: dict[str, Callable[..., list[Any]]] = templating._LOOKUPS
    original_env = lookups["env"]
    if getattr(original_env, "_kmsfleet_policy", False):
        return

    def env(templar: Any, terms: list[Any], kwargs: dict[str, Any]) -> list[Any]:
        for term in terms:
            if str(term) not in allowed:
                raise InputError(
                    f"refused by the worker's policy: lookup('env', {str(term)!r}) "
                    f"(this worker reads only {', '.join(sorted(allowed))})"
                )
        return original_env(templar, terms, kwargs)

    def file(templar: Any, terms: list[Any], kwargs: dict[str, Any]) -> list[Any]:
        raise InputError("refused by the worker's policy: lookup('file', …) reads the worker's own files")

    env._kmsfleet_policy = True  # type: ignore[attr-defined]
    lookups["env"] = env
    lookups["file"] = file
