"""The client's CPU to seal one WinRM request and open one answer on an NTLM session: pyspnego's ``wrap_winrm`` /
``unwrap_winrm`` against orchestrator/ntlm_session.py on the same completed context (the lean sender's one
request and one answer per WS-Man exchange).

    .venv/bin/python benchmarks/seal_cost.py            # 3 KB requests, 4 KB answers, 20,000 rounds

A pyspnego client signs in to a pyspnego acceptor in this process (an NTLM user file in a temporary directory,
loopback-free: no socket at all). Each round the client seals a request, the acceptor opens it and seals an answer,
the client opens that; only the client's two calls are timed (``time.perf_counter`` around them), best of three
passes. Keys: ``pyspnego_us`` and ``session_us`` (µs per round), ``ratio`` = session / pyspnego.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import spnego  # noqa: E402

from benchmarks._common import emit_json  # noqa: E402
from orchestrator.ntlm_session import NtlmSession, session_security  # noqa: E402


def _pair(workdir: Path) -> tuple[Any, Any]:
    users = workdir / "ntlm-users"
    users.write_text("BENCH:bench:Bench-Passw0rd!\n", encoding="utf-8")
    os.environ["NTLM_USER_FILE"] = str(users)
    client = spnego.client("BENCH\\bench", "Bench-Passw0rd!", protocol="ntlm")
    acceptor = spnego.server(protocol="ntlm")
    token = client.step()
    while not acceptor.complete:
        answer = acceptor.step(token)
        if answer is not None and not client.complete:
            token = client.step(answer)
    return client, acceptor


def _rounds(side: Any, acceptor: Any, rounds: int, request: bytes, answer: bytes) -> float:
    spent = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        sealed = side.wrap_winrm(request)
        spent += time.perf_counter() - started
        acceptor.unwrap_winrm(sealed.header, sealed.data)
        theirs = acceptor.wrap_winrm(answer)
        started = time.perf_counter()
        side.unwrap_winrm(theirs.header, theirs.data)
        spent += time.perf_counter() - started
    return spent * 1e6 / rounds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20_000)
    opts = parser.parse_args(argv)
    request, answer = b"r" * 3000, b"a" * 4000
    with tempfile.TemporaryDirectory(prefix="kmsfleet-seal-") as tmp:
        best: dict[str, float] = {}
        for _ in range(3):
            client, acceptor = _pair(Path(tmp))
            mine = _rounds(client, acceptor, opts.rounds, request, answer)
            best["pyspnego_us"] = min(best.get("pyspnego_us", mine), mine)
            client, acceptor = _pair(Path(tmp))
            session = session_security(client)
            if not isinstance(session, NtlmSession):  # pyspnego's layout changed: this would time pyspnego twice
                raise SystemExit("ntlm_session did not take over this pyspnego context; nothing to compare")
            mine = _rounds(session, acceptor, opts.rounds, request, answer)
            best["session_us"] = min(best.get("session_us", mine), mine)
    best["ratio"] = best["session_us"] / best["pyspnego_us"]
    print(f"pyspnego wrap_winrm + unwrap_winrm   {best['pyspnego_us']:7.1f} µs per round")
    print(f"ntlm_session                         {best['session_us']:7.1f} µs per round")
    emit_json({k: round(v, 3) for k, v in best.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
