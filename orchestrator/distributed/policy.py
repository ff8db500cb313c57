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
  plays' folders and ``role_path`` point at the batch's empty private folder (``worker.worker_plan``). Modules
  that read a file where they run (Ansible reads it on the controller: ``win_copy`` with ``src``,
  ``win_template``, ``script``, ``include_vars``) would read the *worker's* files — an absolute path, ``../``
  out of that folder, a ``role_path`` the plan sets itself — so a plan using them is refused
  (``check_plan``), and in the worker process they refuse to run at all (``guard_modules``). What a worker
  sends to a PC must travel inside the signed plan (``win_copy`` with ``content:``).

Checked twice: once on the whole batch before anything runs (host variables and extra vars, so a batch that
asks for any of this is refused as a whole and the controller is told why), and again on each PC's final
connection settings just before the worker connects (``guard_connections``), which also covers settings a
play or ``set_fact`` makes at run time. Lookups are restricted in the worker process (``guard_lookups``).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator import templating
from orchestrator.booleans import boolean
from orchestrator.errors import InputError
from orchestrator.executor import state
from orchestrator.executor.plan import BlockSpec, Node, Plan, TaskSpec
from orchestrator.modules.base import REGISTRY, Module, ModuleContext, ModuleOutcome, TaskFailed
from orchestrator.redact import SECRET_KEYS
from orchestrator.transport.connection import _ALIASES as _TRANSPORT_ALIASES
from orchestrator.varsfile import SECRET_NAME

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
PASSWORD_ENV = "KMSFLEET_PASSWORD"  # noqa: S105 - the name of a variable
_CONNECTION_KEYS = (
    "ansible_host",
    "ansible_port",
    "ansible_winrm_transport",
    "ansible_winrm_scheme",
    "ansible_winrm_server_cert_validation",
    "ansible_winrm_message_encryption",
    "ansible_winrm_proxy",
    "ansible_winrm_cert_pem",
    "ansible_winrm_cert_key_pem",
    "kmsfleet_allow_insecure_basic",
)


#: Modules that read a file where they run (in Ansible: on the controller), by name: on a worker the file
#: would be the worker's own. ``win_copy`` only with ``src`` (its ``content:`` travels inside the plan).
FILE_READING_MODULES = frozenset({"win_copy", "win_template", "script", "include_vars"})


class PolicyError(Exception):
    """A batch (or one PC's settings) outside the worker's policy; the text says which rule."""


def reads_local_files(task: TaskSpec) -> bool:
    """True when ``task`` would read a file on the machine that runs it (the only ``win_copy`` that does not
    is one with ``content`` and no ``src``)."""
    if task.module not in FILE_READING_MODULES:
        return False
    if task.module != "win_copy":
        return True
    return "src" in task.args or "content" not in task.args


def plan_tasks(plan: Plan) -> Iterable[TaskSpec]:
    """Every task of ``plan``: each play's sections, nested blocks (block, rescue, always) and handlers."""

    def walk(nodes: Iterable[Node]) -> Iterable[TaskSpec]:
        for node in nodes:
            if isinstance(node, BlockSpec):
                yield from walk((*node.block, *node.rescue, *node.always))
            else:
                yield node

    for play in plan.plays:
        yield from walk((*play.pre_tasks, *play.tasks, *play.post_tasks, *play.handlers))


def check_plan(plan: Plan) -> None:
    """A batch's plan reads no file of the worker's: no play lists ``vars_files`` or ``vars_prompt`` (the
    controller reads and answers them before it sends), no task uses a module that reads a local file."""
    for play in plan.plays:
        if play.vars_files or play.vars_prompt:
            raise PolicyError(f"play {play.name!r} lists vars_files or vars_prompt, which the controller resolves")
    for task in plan_tasks(plan):
        if reads_local_files(task):
            raise PolicyError(
                f"task {task.name!r} ({task.module}, {task.location}) reads files on the worker; "
                "what a batch sends to a PC must travel inside the signed plan (win_copy with content:)"
            )


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
        _check_worker_files(host, variables)
        transport = _first_transport(variables.get("ansible_winrm_transport"))
        if transport == "credssp":
            raise PolicyError(f"host {host}: {_CREDSSP}")
        port = str(variables.get("ansible_port", 5986)).strip()
        scheme = str(variables.get("ansible_winrm_scheme") or ("http" if port == "5985" else "https")).lower()
        if transport == "basic" and scheme != "https":
            raise PolicyError(f"host {host}: Basic authentication over plain HTTP is refused by this worker")
        self.check_address(host, str(variables.get("ansible_host") or host))

    def check_address(self, host: str, address: str) -> list[IpAddress]:
        """Every address ``address`` stands for (a name resolved now), each inside ``--allow-hosts``."""
        found = _addresses(address)
        for ip in found:
            if not any(ip in net for net in self.networks):
                raise PolicyError(f"host {host}: address {ip} is outside this worker's --allow-hosts")
        return found

    # ------------------------------------------------------------------ one connection

    def check_spec(self, spec: Any) -> Any:
        """The final connection settings of one PC (a ``transport.connection.ConnectionSpec``), returned with a
        host name over HTTP replaced by the IPv4 address just checked (``pinned``)."""
        if spec.proxy:
            raise PolicyError(f"host {spec.host}: a proxy is refused by this worker")
        if spec.cert_validation is False:
            raise PolicyError(f"host {spec.host}: certificate validation 'ignore' is refused by this worker")
        if spec.scheme != "https" and (spec.transport == "basic" or spec.message_encryption == "never"):
            raise PolicyError(f"host {spec.host}: unencrypted sign-in over plain HTTP is refused by this worker")
        if spec.transport == "credssp":
            raise PolicyError(f"host {spec.host}: {_CREDSSP}")
        if spec.cert_pem or spec.cert_key_pem or isinstance(spec.cert_validation, str):
            raise PolicyError(f"host {spec.host}: {_CERT_FILES}")
        return pinned(spec, self.check_address(spec.host, spec.address))


def pinned(spec: Any, checked: list[IpAddress]) -> Any:
    """``spec`` connecting to the address the policy checked rather than to a name resolved once more when the
    transport connects: a name whose DNS answer changes in between (DNS rebinding) cannot lead the worker out
    of its ranges. Only over HTTP (NTLM needs no name; over HTTPS the certificate is checked against the name)
    and only to an IPv4 answer (an IPv6 literal in a URL needs brackets the transport does not add)."""
    if spec.scheme != "http" or spec.address.strip("[] ") in {str(ip) for ip in checked}:
        return spec
    ipv4 = [ip for ip in checked if ip.version == 4]
    return dataclasses.replace(spec, address=str(ipv4[0])) if ipv4 else spec


# CredSSP hands the user's password itself to the server it signs in to (that is what it is for: MS-CSSP
# 3.1.5, "TSPasswordCreds"), so an address inside --allow-hosts that answers would receive it.
_CREDSSP = "CredSSP delegates the password itself to the PC and is refused by this worker"
_CERT_FILES = (
    "ansible_winrm_cert_pem, ansible_winrm_cert_key_pem and a CA bundle path in ansible_winrm_server_cert_validation "
    "name files on the worker, which a batch may not make it read (the worker validates against its system "
    "trust store)"
)


def _first_transport(value: Any) -> str:
    """The transport a value means, as the transport reads it: a comma list's first, pywinrm's "plaintext" and
    "ssl" for Basic."""
    first = str(value or "ntlm").split(",", 1)[0].strip().lower()
    return _TRANSPORT_ALIASES.get(first, first)


def _check_worker_files(host: str, variables: Mapping[str, Any]) -> None:
    validation = variables.get("ansible_winrm_server_cert_validation", "validate")
    words = ("validate", "ignore", "true", "false", "yes", "no")
    path_like = isinstance(validation, str) and validation.strip().lower() not in words
    if variables.get("ansible_winrm_cert_pem") or variables.get("ansible_winrm_cert_key_pem") or path_like:
        raise PolicyError(f"host {host}: {_CERT_FILES}")


def _addresses(address: str) -> list[IpAddress]:
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
        spec = original(host, _revealed(hostvars))
        try:
            return _installed["policy"].check_spec(spec)
        except PolicyError as exc:
            raise InputError(f"refused by the worker's policy: {exc}") from None

    checked._kmsfleet_policy = True  # type: ignore[attr-defined]
    setattr(state, "connection_spec", checked)  # noqa: B010


def guard_modules() -> None:
    """In the worker process, the modules that read a local file refuse to run (a second line behind
    ``check_plan``, whatever shape a task's arguments take once rendered)."""
    modules: dict[str, type[Module[Any]]] = REGISTRY._modules
    REGISTRY.names()  # the built-in modules are registered
    for name in FILE_READING_MODULES:
        cls = modules.get(name)
        if cls is None or getattr(cls, "_kmsfleet_policy", False):
            continue
        modules[name] = _refusing(cls)


def _refusing(cls: type[Module[Any]]) -> type[Module[Any]]:
    def run(self: Module[Any], ctx: ModuleContext, args: Any) -> ModuleOutcome:
        if cls.name == "win_copy" and getattr(args, "src", None) is None:
            return cls.run(self, ctx, args)  # content: travels inside the plan
        raise TaskFailed(f"refused by the worker's policy: {cls.name} reads files on the worker")

    return type(cls.__name__, (cls,), {"run": run, "_kmsfleet_policy": True})


# A template that can read the password can also reverse it, split it one character per line or hash it, and the
# mask (which knows the password and its encodings) sees none of those. So on a worker, ``lookup('env', NAME)``
# of a secret-named variable (KMSFLEET_PASSWORD, an --allow-env SCHOOL_A_PASSWORD) gives templates only this
# placeholder, and the placeholder becomes the value only as a PC's password, when its connection is made.
_PASSWORD_VARS = ("ansible_password", "ansible_winrm_password")


def secret_placeholder(name: str) -> str:
    return f"(the worker's {name}: usable only as ansible_password)"


def _secret_env(name: str) -> bool:
    return bool(SECRET_NAME.search(name) or SECRET_KEYS.search(name))


def _revealed(hostvars: Mapping[str, Any]) -> Mapping[str, Any]:
    """``hostvars`` with a password variable that is exactly a placeholder replaced by the worker's value."""
    names = _installed["policy"].env_names if "policy" in _installed else frozenset({PASSWORD_ENV})
    out = dict(hostvars)
    for key in _PASSWORD_VARS:
        for name in names:
            if out.get(key) == secret_placeholder(name) and _secret_env(name):
                out[key] = os.environ.get(name, "")
    return out


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
        values = original_env(templar, terms, kwargs)
        return [
            secret_placeholder(str(t)) if _secret_env(str(t)) and str(t) in os.environ else v
            for t, v in zip(terms, values, strict=True)
        ]

    def file(templar: Any, terms: list[Any], kwargs: dict[str, Any]) -> list[Any]:
        raise InputError("refused by the worker's policy: lookup('file', …) reads the worker's own files")

    env._kmsfleet_policy = True  # type: ignore[attr-defined]
    lookups["env"] = env
    lookups["file"] = file
