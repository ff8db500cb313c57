"""The ``kmsfleet`` process ends through ``cli.leave`` (``os._exit`` after a normal exit's clean-up): real
subprocesses check that nothing a normal exit does is lost — exit statuses, whole output through a pipe, atexit
callbacks and weakref finalizers (temporary directories), non-daemon threads finishing their work."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrator.cli.leave import exit_status


def _kmsfleet_with(prelude: str, *args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``kmsfleet ARGS`` in a fresh interpreter, after ``prelude`` ran in it (main() is the console script)."""
    script = textwrap.dedent(prelude) + textwrap.dedent(
        f"""
        import sys
        from orchestrator.cli.app import main
        sys.argv = ["kmsfleet", *{list(args)!r}]
        main()
        """
    )
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False
    )


def test_exit_statuses_follow_sys_exit(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_status(None) == 0
    assert exit_status(4) == 4
    assert exit_status(256 + 3) == 3
    assert exit_status(-1) == 255
    assert exit_status("no inventory") == 1
    assert "no inventory" in capsys.readouterr().err


def test_help_and_usage_errors_keep_their_statuses(tmp_path: Path) -> None:
    ok = _kmsfleet_with("", "--help", tmp_path=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "Usage" in ok.stdout and ok.stdout.rstrip().endswith("99 interrupted.")  # the whole help, to its last line
    bad = _kmsfleet_with("", "run", "--no-such-option", tmp_path=tmp_path)
    assert bad.returncode == 4, bad.stderr


def test_atexit_finalizers_and_threads_still_run(tmp_path: Path) -> None:
    marker = tmp_path / "thread-finished"
    prelude = f"""
        import atexit, tempfile, threading, time
        from pathlib import Path
        kept = tempfile.TemporaryDirectory(dir={str(tmp_path)!r})  # removed by its weakref finalizer at exit
        Path({str(tmp_path / "tmpdir-name")!r}).write_text(kept.name)
        atexit.register(lambda: Path({str(tmp_path / "atexit-ran")!r}).write_text("yes"))
        def work():
            time.sleep(0.3)
            Path({str(marker)!r}).write_text("done")
        threading.Thread(target=work).start()  # not a daemon: a normal exit waits for it
    """
    done = _kmsfleet_with(prelude, "--version", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert marker.read_text() == "done"
    assert (tmp_path / "atexit-ran").read_text() == "yes"
    assert not Path((tmp_path / "tmpdir-name").read_text()).exists()


def test_large_output_through_a_pipe_is_whole(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[room]\n" + "".join(f"pc{i:05d}\n" for i in range(3000)), encoding="utf-8")
    listed = _kmsfleet_with("", "inventory", "-i", str(inventory), "--list", tmp_path=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "pc00000" in listed.stdout and "pc02999" in listed.stdout


def test_a_thread_pool_nobody_shut_down_does_not_hang_the_exit(tmp_path: Path) -> None:
    """A normal exit wakes the idle workers of a ThreadPoolExecutor left open (concurrent.futures' threading exit
    hook) before joining them; ``leave`` runs the same hooks, so the process ends."""
    prelude = """
        from concurrent.futures import ThreadPoolExecutor
        pool = ThreadPoolExecutor(2)
        pool.submit(print, "work done")
    """
    done = _kmsfleet_with(prelude, "--version", tmp_path=tmp_path)  # subprocess timeout: 120 s
    assert done.returncode == 0, done.stderr
    assert "work done" in done.stdout
