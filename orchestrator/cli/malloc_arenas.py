"""Fewer glibc malloc arenas for a ``kmsfleet run`` process: its peak memory at thousands of PCs.

glibc gives threads that contend for malloc arenas of their own, up to eight per core (``M_ARENA_MAX``,
mallopt(3): "the default value ... is 8 * number of cores" on 64-bit systems). A run has ``--forks`` worker
threads (50 by default); the memory CPython asks of malloc (buffers, large dicts and strings, anything over 512
bytes) is then spread over up to 16 arenas on a 2-core machine, each keeping its own freed space, and a few
long-lived blocks (a finished PC's packed results) keep their arena's heap from shrinking. Python threads
allocate while holding the GIL, so more arenas buy a run almost no parallelism. Measured at 5,000 PCs through the
CLI (docs/performance.md, "Memory"): 241.9 MB peak RSS with glibc's default, 220.1 MB with ``MALLOC_ARENA_MAX=2``.

``limit_malloc_arenas`` calls ``mallopt(M_ARENA_MAX, n)`` once, early, before the worker threads exist (arenas
made before stay). It does nothing where there is no glibc (macOS, musl, Windows) and when the user set
``MALLOC_ARENA_MAX`` themselves (glibc's own tunable wins: theirs is kept).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: mallopt(3)'s parameter number for the largest number of arenas (glibc's malloc.h: ``#define M_ARENA_MAX -8``).
M_ARENA_MAX = -8
#: Arenas for a run: the main one and one more for the threads (measured, see the module docstring).
RUN_ARENAS = 2


def limit_malloc_arenas(arenas: int = RUN_ARENAS) -> bool:
    """Ask glibc for at most ``arenas`` malloc arenas; True when it agreed."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # no C library by that name, or one without mallopt (musl)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, arenas))  # mallopt returns 1 on success, 0 on error
