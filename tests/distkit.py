"""Helpers for the distributed tests: a real ``redis-server`` on a free loopback port (no persistence), real
``kmsfleet worker`` subprocesses, their signing keys, and a ``redis-cli monitor`` recording of everything sent
to Redis."""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import os
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

import pytest
from labkit import KMSFLEET, PASSWORD

from orchestrator.distributed.keys import private_path, public_path, site_key_path
from orchestrator.distributed.signing import generate

READY_PREFIX = "worker ready:"
LOOPBACK = "127.0.0.0/8"


class Keyring:
    """A controller key folder, and one worker key folder per site, each side pinning the other's public key
    (what ``kmsfleet keys init`` / ``keys trust`` set up on real machines)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.controller = root / "controller"
        generate(private_path(self.controller, "controller"), public_path(self.controller, "controller"))

    def worker(self, site: str) -> Path:
        """The key folder of ``site``'s worker (created, and pinned on the controller, on first use)."""
        folder = self.root / f"worker-{site}"
        if not private_path(folder, "worker").exists():
            generate(private_path(folder, "worker"), public_path(folder, "worker"))
            shutil.copyfile(public_path(self.controller, "controller"), public_path(folder, "controller"))
            pinned = site_key_path(self.controller, site)
            pinned.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(public_path(folder, "worker"), pinned)
        return folder

    def pin_sites(self, *sites: str) -> None:
        for site in sites:
            self.worker(site)


def require_redis() -> str:
    found = shutil.which("redis-server")
    if found and shutil.which("redis-cli"):
        return found
    if os.environ.get("CI"):
        pytest.fail("CI is set but redis-server/redis-cli are not installed (dev.py test installs them with apt-get)")
    pytest.skip("redis-server (and redis-cli) are not installed")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children_of(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc: no procps needed)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


class TlsFiles(NamedTuple):
    ca: Path
    cert: Path
    key: Path


def make_tls(folder: Path) -> TlsFiles:
    """A throw-away CA and a server certificate for 127.0.0.1 (what an administrator would get from their CA)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kmsfleet test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    files = TlsFiles(folder / "ca.pem", folder / "redis.pem", folder / "redis.key")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    files.key.write_bytes(pem)
    files.key.chmod(0o600)
    return files


class RedisServer:
    """``redis-server`` bound to 127.0.0.1 on a free port, nothing saved to disk. Stopped by ``stop()``."""

    def __init__(self, workdir: Path, *, tls: bool = False, acl: list[str] | None = None) -> None:
        """``tls``: listen with TLS only (a throw-away CA in ``workdir``); ``acl``: ACL file lines (users)."""
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.tls = make_tls(workdir) if tls else None
        self.acl = acl
        self.admin = ("admin", secrets.token_hex(16)) if acl is not None else None

    @property
    def url(self) -> str:
        return self.url_for()

    def url_for(self, user: str | None = None, password: str | None = None) -> str:
        auth = f"{user}:{password}@" if user and password else ""
        if self.tls is None:
            return f"redis://{auth}127.0.0.1:{self.port}/0"
        return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_cert_reqs=required&ssl_ca_certs={self.tls.ca}"

    def _args(self) -> list[str]:
        args = ["--port", str(self.port)]
        if self.tls is not None:
            args = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(self.tls.cert)]
            args += ["--tls-key-file", str(self.tls.key), "--tls-ca-cert-file", str(self.tls.ca)]
            args += ["--tls-auth-clients", "no"]
        if self.acl is not None and self.admin is not None:
            aclfile = self.workdir / "users.acl"
            lines = [*self.acl, f"user {self.admin[0]} on >{self.admin[1]} ~* &* +@all", "user default off"]
            aclfile.write_text("\n".join(lines) + "\n")
            args += ["--aclfile", str(aclfile)]
        return args

    def start(self, timeout: float = 20.0) -> RedisServer:
        binary = require_redis()
        for _attempt in range(5):  # another process may take the free port between probe and bind
            self.port = free_port()
            log = open(self.workdir / f"redis-{self.port}.log", "wb")  # noqa: SIM115 - closed with the process
            self.proc = subprocess.Popen(
                [
                    binary,
                    *self._args(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--protected-mode",
                    "yes",
                    "--dir",
                    str(self.workdir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            log.close()
            if self._wait_ready(timeout):
                return self
            self.stop()
        raise RuntimeError("redis-server did not start")

    def _wait_ready(self, timeout: float) -> bool:
        import redis

        deadline = time.monotonic() + timeout
        client = self.client(timeout=1)
        try:
            while time.monotonic() < deadline:
                if self.proc is None or self.proc.poll() is not None:
                    return False
                with contextlib.suppress(redis.RedisError):
                    if client.ping():
                        return True
                time.sleep(0.05)
        finally:
            client.close()
        return False

    def client(self, timeout: float = 10) -> Any:
        """A client with every right (the ACL's admin user when there is an ACL)."""
        import redis

        user, password = self.admin if self.admin is not None else (None, None)
        return redis.Redis.from_url(self.url_for(user, password), socket_connect_timeout=2, socket_timeout=timeout)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


class WorkerProcess:
    """``kmsfleet worker`` as a subprocess in its own process group (so a SIGKILL can take its pool too)."""

    def __init__(
        self,
        site: str,
        broker: str,
        log: Path,
        keys: Path,
        *,
        forks: int | None = None,
        concurrency: int = 1,
        allow: str = LOOPBACK,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.site = site
        self.broker = broker
        self.log = log
        self.keys = keys
        self.forks = forks
        self.concurrency = concurrency
        self.allow = allow
        self.extra = extra
        self.proc: subprocess.Popen[str] | None = None
        self.ready_line = ""
        self._terminated = False

    def start(self, timeout: float = 60.0, env: dict[str, str] | None = None) -> WorkerProcess:
        argv = [
            KMSFLEET,
            "worker",
            "--site",
            self.site,
            "--allow-hosts",
            self.allow,
            "--keys",
            str(self.keys),
            "--concurrency",
            str(self.concurrency),
            *self.extra,
        ]
        if self.forks:
            argv += ["--forks", str(self.forks)]
        # The broker URL from the environment (as the docs say: never on the command line). TMPDIR beside the
        # log: what a SIGKILLed worker leaves behind stays in the test's own folder.
        full_env = {
            **os.environ,
            "KMSFLEET_PASSWORD": PASSWORD,
            "KMSFLEET_BROKER_URL": self.broker,
            "TMPDIR": str(self.log.parent),
            "XDG_STATE_HOME": str(self.log.parent / f"state-{self.site}"),  # its record of finished batches
            **(env or {}),
        }
        full_env.pop("KMSFLEET_KEYS", None)
        with open(self.log, "a", encoding="utf-8") as err:
            self.proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=err, text=True, env=full_env, start_new_session=True
            )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline()
                if line.startswith(READY_PREFIX):
                    self.ready_line = line.strip()
                    return self
                if not line:
                    break
            if self.proc.poll() is not None:
                break
        self.kill()
        raise RuntimeError(f"worker for {self.site} did not start: {self.log.read_text(errors='replace')[-2000:]}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool): a machine that vanished."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(15)

    def terminate(self) -> None:
        """SIGTERM: Celery's warm shutdown (running batches finish, then the worker exits 0)."""
        if self.proc is not None and self.proc.poll() is None and not self._terminated:
            self._terminated = True  # once: a second SIGTERM would be Celery's cold shutdown
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 40.0) -> int | None:
        """SIGTERM; SIGKILL the group if it does not exit in time. Its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


class Monitor:
    """``redis-cli monitor``: every command any client sends to the server, recorded to a file."""

    def __init__(self, port: int, path: Path) -> None:
        self.path = path
        self._out: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(port), "monitor"], stdout=self._out, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and path.stat().st_size == 0:  # "OK" once monitoring
            time.sleep(0.05)

    def stop(self) -> str:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._out.close()
        return self.path.read_text(encoding="utf-8", errors="replace")


def kombu_bodies(monitor_log: str) -> list[str]:
    """The decoded bodies of every task message seen by MONITOR (kombu base64-encodes them)."""
    bodies = []
    for match in re.finditer(r'\\"body\\": \\"([A-Za-z0-9+/=]+)\\"', monitor_log):
        bodies.append(base64.b64decode(match.group(1)).decode("utf-8", "replace"))
    return bodies


def serve_redis(workdir: Path) -> Iterator[RedisServer]:
    """The body of a module's ``redis_server`` fixture: a plain server for the module, stopped afterwards."""
    require_redis()
    server = RedisServer(workdir).start()
    try:
        yield server
    finally:
        server.stop()
