"""Where the keys of a distributed run live, and loading them with clear errors.

One folder per machine (``--keys DIR``, else ``$KMSFLEET_KEYS``, else ``~/.config/kmsfleet/keys``):

- on the controller: ``controller.key`` (its private key, mode 0600), ``controller.pub``, and
  ``workers/<SITE>.pub``: each site's pinned worker public key (workers of one site may share a keypair);
- on a worker: ``worker.key`` (mode 0600), ``worker.pub``, and ``controller.pub``: the pinned controller key.

``kmsfleet keys init --role controller|worker`` writes a keypair; ``kmsfleet keys trust`` pins a public key
copied from the other side (by any channel an administrator trusts: not the broker).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from orchestrator.distributed.signing import Signer, Verifier, key_id, load_private, load_public
from orchestrator.errors import InputError

KEYS_ENV = "KMSFLEET_KEYS"
ROLES = ("controller", "worker")


def keys_dir(option: str | Path | None = None) -> Path:
    if option:
        return Path(option).expanduser()
    env = os.environ.get(KEYS_ENV)
    if env:
        return Path(env).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "kmsfleet" / "keys"


def private_path(folder: Path, role: str) -> Path:
    return folder / f"{role}.key"


def public_path(folder: Path, role: str) -> Path:
    return folder / f"{role}.pub"


def site_key_path(folder: Path, site: str) -> Path:
    return folder / "workers" / f"{site}.pub"


@dataclass(frozen=True)
class ControllerKeys:
    signer: Signer
    sites: dict[str, Ed25519PublicKey]  # site -> its pinned worker key

    def verifier(self, site: str) -> Verifier:
        return Verifier([self.sites[site]])

    def sites_of_kid(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for site, key in self.sites.items():
            out.setdefault(key_id(key), set()).add(site)
        return out


@dataclass(frozen=True)
class WorkerKeys:
    signer: Signer
    controller: Verifier


def load_controller_keys(folder: Path, sites: Iterable[str]) -> ControllerKeys:
    signer = load_private(private_path(folder, "controller"), "the controller's signing key")
    pinned: dict[str, Ed25519PublicKey] = {}
    missing: list[str] = []
    for site in sorted(set(sites)):
        path = site_key_path(folder, site)
        if path.is_file():
            pinned[site] = load_public(path, f"site {site}'s worker key")
        else:
            missing.append(site)
    if missing:
        raise InputError(
            f"--distributed: no pinned worker key for site(s) {', '.join(missing)} (looked in {folder / 'workers'})",
            hint="on each site's worker: kmsfleet keys init --role worker; then here: "
            "kmsfleet keys trust --site SITE path/to/worker.pub",
        )
    return ControllerKeys(signer, pinned)


def load_worker_keys(folder: Path) -> WorkerKeys:
    signer = load_private(private_path(folder, "worker"), "this worker's signing key")
    controller = load_public(public_path(folder, "controller"), "the pinned controller key")
    return WorkerKeys(signer, Verifier([controller]))


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InputError(f"--role must be controller or worker, not {role!r}")
    return role
