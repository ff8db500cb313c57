"""A non-Python WinRM client against the lab: the Go client masterzen/winrm (behind Packer's and Terraform's WinRM
communicators), built offline from Debian's golang-github-masterzen-winrm-dev, runs commands on
``kmsfleet lab serve --allow-unencrypted`` started as a real subprocess, with NTLM (``ClientNTLM``, Azure/go-ntlmssp)
and with Basic.

go-ntlmssp signs a bare user name in with the domain named by the server's CHALLENGE (TargetName). The NTLM tests
therefore prove the lab names the simulated PC there, as Windows does: when the CHALLENGE named the machine
running the lab, this client was refused with 401.

Needs ``go`` and /usr/share/gocode/src/github.com/masterzen/winrm (``python3 dev.py test`` installs both with
apt-get when root). Without them the tests are skipped, and fail when ``CI`` is set.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

KMSFLEET = str(Path(sys.executable).parent / "kmsfleet")
READY_TIMEOUT = 120.0
RUN_TIMEOUT = 120.0
# one worker builds the Go program once and runs every test of this module (dev.py test runs --dist loadgroup)
pytestmark = [pytest.mark.xdist_group("go_client"), pytest.mark.timeout(600)]


@dataclass(frozen=True)
class ServedLab:
    address: str
    port: int
    user: str
    password: str
    computer_name: str
    kms_host: str


@pytest.fixture(scope="module")
def served_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedLab]:
    """``kmsfleet lab serve`` as a subprocess, until its one ``lab ready`` line; stopped with SIGINT."""
    work = tmp_path_factory.mktemp("lab")
    inventory = work / "lab.yml"
    proc = subprocess.Popen(
        [KMSFLEET, "lab", "serve", "--hosts", "2", "--allow-unencrypted", "--no-https", "-o", str(inventory)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT
        line = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line or line.startswith("lab ready:"):
                break
        assert line.startswith("lab ready:"), f"lab did not start: {line!r} (exit {proc.poll()})"
        data = yaml.safe_load(inventory.read_text(encoding="utf-8"))
        room = data["all"]["children"]["room101"]
        name, host = next(iter(room["hosts"].items()))
        yield ServedLab(
            address=host["ansible_host"],
            port=int(host["ansible_port"]),
            user=host["ansible_user"],
            password=host["ansible_password"],
            computer_name=name.upper(),
            kms_host=room["vars"]["kms_host"],
        )
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def go_run(
    binary: Path, lab: ServedLab, auth: str, *commands: str, user: str | None = None, password: str | None = None
) -> list[dict[str, Any]]:
    argv = [str(binary), "-host", lab.address, "-port", str(lab.port), "-user", user or lab.user, "-auth", auth]
    proc = subprocess.run(
        [*argv, "--", *commands],
        env={"PATH": os.environ.get("PATH", ""), "WINRMRUN_PASSWORD": lab.password if password is None else password},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [r["command"] for r in results] == list(commands)
    return results


@pytest.mark.parametrize("auth", ["ntlm", "basic"])
def test_go_client_runs_commands(winrmrun: Path, served_lab: ServedLab, auth: str) -> None:
    lab = served_lab
    hostname, whoami, dlv, skms, exit3, unknown = go_run(
        winrmrun,
        lab,
        auth,
        "hostname",
        "whoami",
        "cd /d %windir%\\system32 && cscript //nologo slmgr.vbs /dlv",
        f'cd /d "C:\\Windows\\system32" && cscript //nologo slmgr.vbs /skms {lab.kms_host}',
        "cmd /c exit 3",
        "no-such-program",
    )
    assert all(r["error"] == "" for r in (hostname, whoami, dlv, skms, exit3, unknown))
    assert (hostname["stdout"], hostname["exit_code"]) == (lab.computer_name + "\r\n", 0)
    assert whoami["stdout"] == f"{lab.computer_name.lower()}\\{lab.user.lower()}\r\n"
    assert dlv["exit_code"] == 0 and "VOLUME_KMSCLIENT channel" in dlv["stdout"]
    # `lab serve` rooms are zh-TW school PCs: slmgr answers in Chinese, in the OEM code page (cp950) whatever
    # WINRS_CODEPAGE says, so only the ASCII parts are compared here (tests/lab/test_locale_zh_tw.py reads the text)
    assert skms["exit_code"] == 0 and f"{lab.kms_host}" in skms["stdout"]
    assert (exit3["stdout"], exit3["stderr"], exit3["exit_code"]) == ("", "", 3)
    assert unknown["exit_code"] == 1
    assert unknown["stderr"].startswith("'no-such-program' is not recognized as an internal or external command")


@pytest.mark.parametrize("form", ["{pc}\\{user}", ".\\{user}"])
def test_go_ntlm_with_an_explicit_local_domain(winrmrun: Path, served_lab: ServedLab, form: str) -> None:
    user = form.format(pc=served_lab.computer_name, user=served_lab.user)
    (result,) = go_run(winrmrun, served_lab, "ntlm", "hostname", user=user)
    assert (result["error"], result["stdout"]) == ("", served_lab.computer_name + "\r\n")


@pytest.mark.parametrize("auth", ["ntlm", "basic"])
def test_go_client_with_a_wrong_password_gets_401(winrmrun: Path, served_lab: ServedLab, auth: str) -> None:
    (result,) = go_run(winrmrun, served_lab, auth, "hostname", password="not-the-password")
    assert "401" in result["error"] and result["stdout"] == ""
