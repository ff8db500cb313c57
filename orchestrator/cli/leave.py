"""Leaving the process once a command is done, without tearing its heap down object by object.

At the end of a run of thousands of PCs the interpreter's own shutdown collects and frees every object the run
made (results, connections, per-PC state, caches): measured on a 500-PC audit, 1.7 s between the last line
written and the process's end, growing with the fleet, while nothing is left to write (docs/performance.md,
"Start and exit"). ``leave`` does the parts of a normal exit that matter, in the order Python does them
(``Py_FinalizeEx``: threading's exit hooks and a join of the non-daemon threads, the ``atexit`` callbacks —
logging's flush, ``weakref`` finalizers such as temporary directories, multiprocessing's children — and a flush
of the standard streams), then ends the process with ``os._exit``, which skips only the freeing. The exit status
follows ``sys.exit``: ``None`` is 0, an int is itself, anything else is printed to stderr and gives 1.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn


def exit_status(code: object) -> int:
    """The process status ``sys.exit(code)`` would give (printing a non-int code to stderr, as it does)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code % 256
    sys.stderr.write(f"{code}\n")
    return 1


def _flush() -> bool:
    """Flush stdout and stderr; False when a reader went away (a closed pipe), which Python reports with 120."""
    whole = True
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # BrokenPipeError is an OSError; ValueError: the stream was closed
            whole = False
    return whole


def _join_threads() -> None:
    """What a normal exit does first: threading's own exit hooks (``concurrent.futures`` wakes the idle workers of
    a pool nobody shut down), then wait for every non-daemon thread. ``threading._shutdown`` is the function
    CPython's finalization calls for this (3.9 to 3.13); without it, join the threads directly."""
    shutdown = getattr(threading, "_shutdown", None)
    if callable(shutdown):
        shutdown()
        return
    main = threading.main_thread()
    for thread in threading.enumerate():
        if thread is not main and not thread.daemon:
            thread.join()


def leave(code: object) -> NoReturn:
    """End the process with ``code`` (as ``sys.exit``) after the clean-up a normal exit does, without freeing."""
    status = exit_status(code)
    _join_threads()
    atexit._run_exitfuncs()
    if not _flush() and status == 0:
        status = 120  # what CPython exits with when flushing stdout fails at shutdown
    os._exit(status)
