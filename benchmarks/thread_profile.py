"""Profile a ``kmsfleet`` command in this process, every thread, with cProfile on each thread's CPU clock.

    kmsfleet lab serve --hosts 300 --no-https --timing instant --inventory-out lab.yml &
    .venv/bin/python benchmarks/thread_profile.py -- run playbooks/audit.yml -i lab.yml --forks 50 --db audit.db

cProfile watches only the thread it was enabled in; here each thread the run starts gets its own profiler (timer:
``time.thread_time``, so time a thread spends waiting for the GIL or the network is not counted) and the profiles
are merged at the end. Printed: the total profiled CPU and the inclusive share of each ``--focus`` function
(``path-suffix:function``; defaults: the lean HTTP sender's parts). Profiling adds its own cost to every Python
call, so compare shares between runs of this script, not with ``audit_scale.py``'s CPU figures.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import runpy
import sys
import threading
import time
from types import FrameType
from typing import Any

FOCUS = (
    "transport/http_sender.py:send",
    "transport/http_sender.py:_exchange",
    "transport/http_sender.py:_sign_in_for_encryption",
    "transport/sealing.py:seal",
    "transport/http_sender.py:_unwrap",
    "transport/http_wire.py:read_head",
    "http/client.py:getresponse",
    "pypsrp/encryption.py:wrap_message",
)


class ThreadProfiles:
    """One cProfile per thread, started from ``threading.setprofile`` at the thread's first call."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def start_thread(self, frame: FrameType, event: str, arg: Any) -> None:
        del frame, event, arg
        sys.setprofile(None)
        self.add().enable()

    def add(self) -> cProfile.Profile:
        profile = cProfile.Profile(time.thread_time)
        with self._lock:
            self.profiles.append(profile)
        return profile

    def merged(self) -> pstats.Stats:
        for profile in self.profiles:
            profile.disable()
        stats = pstats.Stats(self.profiles[0])
        for profile in self.profiles[1:]:
            try:
                stats.add(profile)
            except TypeError:  # a thread that never made a profiled call
                continue
        return stats


def shares(stats: pstats.Stats, focus: list[str]) -> list[tuple[str, float]]:
    """(focus, inclusive seconds) for each ``path-suffix:function``; the total tottime comes first."""
    table: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    rows = [("total", sum(float(v[2]) for v in table.values()))]
    for item in focus:
        suffix, _, name = item.rpartition(":")
        rows.append((item, sum(float(v[3]) for k, v in table.items() if k[0].endswith(suffix) and k[2] == name)))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--focus", action="append", help="path-suffix:function (repeatable)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the kmsfleet arguments, after --")
    opts = parser.parse_args()
    command = opts.command[1:] if opts.command[:1] == ["--"] else opts.command
    profiles = ThreadProfiles()
    threading.setprofile(profiles.start_thread)
    sys.argv = ["kmsfleet", *command]
    main_thread = profiles.add()
    main_thread.enable()
    try:
        runpy.run_module("orchestrator", run_name="__main__")
    except SystemExit:
        pass
    finally:
        main_thread.disable()
        threading.setprofile(None)
    rows = shares(profiles.merged(), opts.focus or list(FOCUS))
    total = rows[0][1]
    print(f"profiled CPU {total:.2f} s in {len(profiles.profiles)} threads")
    for name, seconds in rows[1:]:
        print(f"{name:55s} {seconds:7.2f} s {100 * seconds / total:5.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
