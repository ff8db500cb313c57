"""``ansible.cfg``: read where Ansible reads it, with ``configparser`` as Ansible does. A leaf module.

Ansible's search order (docs.ansible.com, "Configuring Ansible" → "The configuration file"), first found wins:
``ANSIBLE_CONFIG`` (a file, or a directory holding ansible.cfg), ``ansible.cfg`` in the current directory,
``~/.ansible.cfg``, ``/etc/ansible/ansible.cfg``. kmsfleet uses these ``[defaults]`` keys: ``inventory``,
``forks``, ``roles_path``, ``remote_user``, ``timeout``, ``vault_password_file`` (and ``vault_identity_list``),
``ansible_managed`` (win_template's text; no environment variable, as in Ansible);
``host_key_checking`` and other SSH-only keys are accepted silently; any other key is reported once as a note
(it is not silently dropped, and it is not an error). ``ANSIBLE_ROLES_PATH``, ``ANSIBLE_INVENTORY``,
``ANSIBLE_FORKS``, ``ANSIBLE_REMOTE_USER``, ``ANSIBLE_TIMEOUT`` and ``ANSIBLE_VAULT_PASSWORD_FILE`` override
the file, as in Ansible.
"""

from __future__ import annotations

import configparser
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.errors import InputError, Location

USED = (
    "inventory",
    "forks",
    "roles_path",
    "remote_user",
    "timeout",
    "vault_password_file",
    "vault_identity_list",
    "ansible_managed",
)
#: ansible-core's default ``ansible_managed`` (``DEFAULT_MANAGED_STR`` in ``lib/ansible/config/base.yml``)
DEFAULT_MANAGED = "Ansible managed"
#: keys that mean nothing for WinRM and need no note
SILENT = frozenset(
    {
        "host_key_checking",
        "retry_files_enabled",
        "nocows",
        "interpreter_python",
        "deprecation_warnings",
        "command_warnings",
        "private_key_file",
        "pipelining",
    }
)
_ENV = {
    "inventory": "ANSIBLE_INVENTORY",
    "forks": "ANSIBLE_FORKS",
    "roles_path": "ANSIBLE_ROLES_PATH",
    "remote_user": "ANSIBLE_REMOTE_USER",
    "timeout": "ANSIBLE_TIMEOUT",
    "vault_password_file": "ANSIBLE_VAULT_PASSWORD_FILE",
    "vault_identity_list": "ANSIBLE_VAULT_IDENTITY_LIST",
}


@dataclass(frozen=True)
class AnsibleConfig:
    path: Path | None = None  # the file read (None: none found)
    inventory: tuple[str, ...] = ()
    forks: int | None = None
    roles_path: tuple[Path, ...] = ()
    remote_user: str | None = None
    timeout: float | None = None
    vault_password_file: Path | None = None
    vault_identity_list: tuple[str, ...] = ()
    ansible_managed: str = DEFAULT_MANAGED
    notes: tuple[str, ...] = field(default=())  # keys read but not used by kmsfleet


def config_candidates(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> list[Path]:
    """The places Ansible looks, in order."""
    env = os.environ if environ is None else environ
    out: list[Path] = []
    given = env.get("ANSIBLE_CONFIG")
    if given:
        path = Path(given).expanduser()
        out.append(path / "ansible.cfg" if path.is_dir() else path)
    here = cwd or Path.cwd()
    if not world_writable(here):
        out.append(here / "ansible.cfg")
    out.append(Path("~/.ansible.cfg").expanduser())
    out.append(Path("/etc/ansible/ansible.cfg"))
    return out


def world_writable(directory: Path) -> bool:
    """Ansible ignores ``ansible.cfg`` in a world-writable current directory (docs.ansible.com, "Avoiding
    security risks with ansible.cfg in the current directory"): anyone on the machine could have put it there,
    and its ``vault_password_file`` may be a program that would be run."""
    try:
        return bool(directory.stat().st_mode & stat.S_IWOTH)
    except OSError:
        return False


def find_config(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path | None:
    return next((p for p in config_candidates(environ, cwd) if p.is_file()), None)


def _paths(text: str, base: Path) -> tuple[Path, ...]:
    parts = [p.strip() for p in text.split(os.pathsep) if p.strip()]
    out = []
    for part in parts:
        path = Path(os.path.expandvars(part)).expanduser()
        out.append(path if path.is_absolute() else base / path)
    return tuple(out)


def read_defaults(path: Path, notes: list[str]) -> dict[str, str]:
    """The ``[defaults]`` keys kmsfleet uses from one ansible.cfg; the others are added to ``notes``."""
    # As ansible-core's ConfigManager (config/manager.py): only ';' starts an inline comment (after a space),
    # and values are read raw, so '%' needs no escaping (ansible_managed's strftime codes)
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))
    try:
        with path.open(encoding="utf-8") as fh:
            parser.read_file(fh)
    except (configparser.Error, UnicodeDecodeError, OSError) as exc:
        raise InputError(f"cannot read ansible.cfg: {exc}".splitlines()[0], Location(str(path))) from None
    values: dict[str, str] = {}
    if parser.has_section("defaults"):
        for key, value in parser.items("defaults"):
            if key in USED:
                values[key] = value
            elif key not in SILENT:
                notes.append(f"{path}: [defaults] {key} is not used by kmsfleet")
    for section in parser.sections():
        if section not in ("defaults", "ssh_connection", "paramiko_connection", "persistent_connection"):
            notes.append(f"{path}: section [{section}] is not used by kmsfleet")
    return values


def load_config(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> AnsibleConfig:
    """The effective settings (file, then environment variables on top)."""
    env = os.environ if environ is None else environ
    path = find_config(env, cwd)
    values: dict[str, str] = {}
    notes: list[str] = []
    here = cwd or Path.cwd()
    if world_writable(here) and (here / "ansible.cfg").is_file() and path != here / "ansible.cfg":
        notes.append(
            f"kmsfleet is being run in a world writable directory ({here}), ignoring it as an ansible.cfg source"
        )
    base = (cwd or Path.cwd()) if path is None else path.parent
    if path is not None:
        values.update(read_defaults(path, notes))
    for key, var in _ENV.items():
        if env.get(var):
            values[key] = env[var]
    where = Location(str(path)) if path else Location(_ENV.get("forks", "environment"))
    forks = None
    if "forks" in values:
        if not values["forks"].strip().isdigit() or int(values["forks"]) < 1:
            raise InputError(f"forks must be a whole number ≥ 1, not {values['forks']!r}", where)
        forks = int(values["forks"])
    timeout = None
    if "timeout" in values:
        try:
            timeout = float(values["timeout"])
        except ValueError:
            raise InputError(f"timeout must be a number of seconds, not {values['timeout']!r}", where) from None
    inventory = (
        tuple(str(p) for p in _paths(values["inventory"].replace(",", os.pathsep), base))
        if values.get("inventory")
        else ()
    )
    vault_file = _paths(values["vault_password_file"], base)[0] if values.get("vault_password_file") else None
    identities = tuple(i.strip() for i in values.get("vault_identity_list", "").split(",") if i.strip())
    return AnsibleConfig(
        path=path,
        inventory=inventory,
        forks=forks,
        roles_path=_paths(values.get("roles_path", ""), base),
        remote_user=values.get("remote_user") or None,
        timeout=timeout,
        vault_password_file=vault_file,
        vault_identity_list=identities,
        ansible_managed=values.get("ansible_managed", DEFAULT_MANAGED),
        notes=tuple(notes),
    )


__all__ = ["DEFAULT_MANAGED", "AnsibleConfig", "config_candidates", "find_config", "load_config"]
