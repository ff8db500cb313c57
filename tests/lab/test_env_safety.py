"""The lab switches NTLM_USER_FILE per handshake; it must never remove the variable while clients in the same
process (kmsfleet demo runs the lab in-process) iterate os.environ — that raised KeyError inside requests."""

from __future__ import annotations

import os
import threading

from pypsrp.client import Client
from wirekit import StartLab

from orchestrator.lab.wsman.auth import _user_file, ensure_user_file_variable


def test_switching_never_removes_the_variable(tmp_path: object) -> None:
    ensure_user_file_variable("/nonexistent/first")
    for path in ("/a", "/b", "/c"):
        with _user_file(path):
            assert os.environ["NTLM_USER_FILE"] == path
        assert "NTLM_USER_FILE" in os.environ


def test_environment_iteration_survives_concurrent_handshakes(start_lab: StartLab) -> None:
    lab = start_lab(hosts=[{"name": "pc[01:06]"}])
    errors: list[BaseException] = []
    stop = threading.Event()

    def iterate() -> None:
        while not stop.is_set():
            try:
                dict(os.environ.items())
            except BaseException as exc:
                errors.append(exc)
                return

    watcher = threading.Thread(target=iterate, daemon=True)
    watcher.start()
    try:
        for host in lab.hosts:
            for _ in range(3):
                client = Client(host.address, username=host.user, password=host.password, ssl=False, auth="ntlm")
                assert client.execute_cmd("hostname")[0].strip()
    finally:
        stop.set()
        watcher.join(5)
    assert errors == []
