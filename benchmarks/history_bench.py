"""CPU the history recorder costs per finished PC: ``StoreReporter`` fed by worker threads as in a run.

Builds ``--hosts`` realistic finished PCs (``tests/results_factory.py``: licences, task data, nested facts), registers
an inventory password as a run does, then hands the PCs to one ``StoreReporter`` on a fresh SQLite file from
``--threads`` threads over ``--seconds`` (finishing times spread as in a run, so time-based batching shows) and
prints JSON: ``cpu_ms_per_host`` (the process's CPU for ``host_done`` … ``run_done``, divided by the hosts),
``transactions`` (``record_prepared`` calls). Compare two versions in one session on one machine load.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from results_factory import make_run

from orchestrator.redact import register_secret
from orchestrator.results.recorder import StoreReporter
from orchestrator.results.store import HistoryStore


def _feed(recorder: StoreReporter, hosts: list[Any], gap: float) -> None:
    for h in hosts:
        recorder.host_done(h)
        time.sleep(gap)


def measure(hosts: int, threads: int, seconds: float) -> dict[str, Any]:
    register_secret("Kms-Lab-Password-2026")  # the inventory's ansible_password: every text is scanned for it
    result = make_run(hosts, secret="Kms-Lab-Password-2026")
    with tempfile.TemporaryDirectory(prefix="kmsfleet-history-bench-") as tmp:
        store = HistoryStore(Path(tmp) / "history.db")
        calls = [0]
        real = store.record_prepared

        def counted(run_id: str, prepared: Any) -> None:
            calls[0] += 1
            real(run_id, prepared)

        store.record_prepared = counted  # type: ignore[method-assign]
        recorder = StoreReporter(store)
        recorder.run_started(result.info, [h.host for h in result.hosts])
        parts = [list(result.hosts[i::threads]) for i in range(threads)]
        gap = seconds / max(1, len(parts[0]))
        cpu, wall = time.process_time(), time.monotonic()
        workers = [threading.Thread(target=_feed, args=(recorder, part, gap)) for part in parts]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        recorder.run_done(result)
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        store.close()
    return {
        "hosts": hosts,
        "threads": threads,
        "cpu_ms_per_host": round(cpu * 1000 / hosts, 3),
        "wall_s": round(wall, 2),
        "transactions": calls[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the PCs take to finish, in all")
    opts = parser.parse_args()
    print(json.dumps(measure(opts.hosts, opts.threads, opts.seconds)))


if __name__ == "__main__":
    main()
