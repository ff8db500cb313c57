"""vars_prompt and --ask-vault-pass on a real terminal (a pseudo-terminal the CLI subprocess owns)."""

from __future__ import annotations

import fcntl
import os
import select
import subprocess
import termios
import time
from pathlib import Path

import pytest
from labkit import KMSFLEET

VAULT = Path(__file__).resolve().parents[1] / "data" / "vault"


def run_on_tty(args: list[str], cwd: Path, answers: dict[str, str], timeout: float = 60) -> tuple[int, str]:
    """Run the CLI on a new pseudo-terminal; answer each prompt (a text in ``answers``) once it appears."""
    master, slave = os.openpty()

    def own_terminal() -> None:
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "160"}
    # preexec_fn gives the child the pseudo-terminal as its controlling terminal (getpass reads /dev/tty);
    # the test process starts no threads before it
    proc = subprocess.Popen(
        [KMSFLEET, *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=cwd,
        env=env,
        preexec_fn=own_terminal,  # noqa: PLW1509
    )
    os.close(slave)
    seen = ""
    pending = dict(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096).decode("utf-8", "replace")
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
                for prompt in list(pending):
                    if prompt in seen:
                        os.write(master, (pending.pop(prompt) + "\n").encode())
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, seen


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a POSIX pseudo-terminal")
def test_vars_prompt_and_ask_vault_pass_on_a_terminal(tmp_path: Path) -> None:
    (tmp_path / "secrets.yml").write_text((VAULT / "secrets-1.1.yml").read_text())
    (tmp_path / "p.yml").write_text(
        "- hosts: all\n  gather_facts: false\n  vars_files: [secrets.yml]\n  vars_prompt:\n"
        "    - name: room\n      prompt: Which room\n      private: no\n"
        "    - name: token\n      prompt: Token\n  tasks:\n"
        "    - assert:\n        that: [room == 'r204', token == 'tok-123', kms_port == 1688]\n"
    )
    answers = {"Vault password": "kmsfleet-test-vault", "Which room": "r204", "Token": "tok-123"}
    code, seen = run_on_tty(["run", "p.yml", "-i", "127.0.0.1,", "--no-history", "--ask-vault-pass"], tmp_path, answers)
    assert code == 0, seen[-3000:]
    assert "tok-123" not in seen.split("Token", 1)[-1]  # a private answer is neither echoed nor printed
