"""What a distinct password per PC (Windows LAPS) costs the redactor: registering N random passwords and their two
NTLM hashes, then scrubbing a 2 KB and a 64 KB text, each size in a fresh process (its own peak RSS).

    .venv/bin/python benchmarks/redact_scale.py [--sizes 40 300 5000] [--rounds 20]

Per size: ``register_s`` (the passwords in one batch, as an inventory loads them, then the hashes one sign-in at
a time, as the transport registers them), ``first_scrub_s`` (the open chunk compiled), ``chunks``, ``forms``,
``rss_base_mb`` / ``rss_peak_mb`` (``ru_maxrss`` after the imports / at the end), and the milliseconds per scrub
of texts without a secret (``scrub_2k_ms``, ``scrub_64k_ms``: PowerShell-like output with GUIDs and a base64
block) and with one (``scrub_2k_hit_ms``). No network; each child is bounded by ``--timeout``.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LINES = (
    "Name: Windows(R), Professional edition",
    "Description: Windows(R) Operating System, VOLUME_KMSCLIENT channel",
    "Activation ID: {guid}",
    "Partial Product Key: 3V66T",
    "License Status: Licensed",
    "Volume activation expiration: 259200 minute(s) (180 day(s))",
    "Key Management Service client information",
    "    KMS machine name from DNS: kms01.school.example:1688",
    "    Activation interval: 120 minutes",
)


def _text(size: int, rng: random.Random) -> str:
    """Command output of ``size`` characters: slmgr-like lines with GUIDs, and a base64 block (a CLIXML blob)."""
    parts: list[str] = []
    while sum(map(len, parts)) < size:
        for line in LINES:
            guid = "-".join(rng.randbytes(n).hex() for n in (4, 2, 2, 2, 6))
            parts.append(line.format(guid=guid) + "\r\n")
        parts.append(base64.b64encode(rng.randbytes(120)).decode() + "\r\n")
    return "".join(parts)[:size]


def _per_call_ms(call: Any, text: str, rounds: int) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        call(text)
    return (time.perf_counter() - start) / rounds * 1000


def _one(n: int, rounds: int) -> dict[str, Any]:
    from spnego._ntlm_raw.crypto import lmowfv1, ntowfv1

    from orchestrator import redact

    rng = random.Random(n)
    passwords = [base64.urlsafe_b64encode(rng.randbytes(12)).decode() for _ in range(n)]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.process_time()
    redact.register_secrets(passwords)
    for password in passwords:  # one sign-in each, during the run
        redact.register_digests((lmowfv1(password).hex(), ntowfv1(password).hex()))
    register_s = time.process_time() - start
    start = time.process_time()
    redact.redact_text("first scrub")
    first_s = time.process_time() - start
    scrub = redact._current().matcher
    assert scrub is not None
    small, large = _text(2048, rng), _text(65536, rng)
    hit = small[:1000] + passwords[n // 2] + small[1000 + len(passwords[n // 2]) :]
    assert passwords[n // 2] not in redact.redact_text(hit)
    return {
        "passwords": n,
        "register_s": round(register_s, 2),
        "first_scrub_s": round(first_s, 3),
        "chunks": len(scrub.chunks),
        "forms": sum(len(redact.renderings(p)) for p in passwords),
        "rss_base_mb": round(base, 1),
        "rss_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "scrub_2k_ms": round(_per_call_ms(scrub.scrub, small, rounds), 3),
        "scrub_64k_ms": round(_per_call_ms(scrub.scrub, large, max(1, rounds // 4)), 2),
        "scrub_2k_hit_ms": round(_per_call_ms(scrub.scrub, hit, rounds), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[40, 300, 5000])
    parser.add_argument("--rounds", type=int, default=20, help="scrubs timed per text (64 KB: a quarter)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per size")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(_one(args.one, args.rounds)))
        return
    rows = []
    for n in args.sizes:
        child = [sys.executable, __file__, "--one", str(n), "--rounds", str(args.rounds)]
        done = subprocess.run(child, capture_output=True, text=True, timeout=args.timeout, check=True)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print("  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    print(json.dumps({"benchmark": "redact_scale", "sizes": rows}))


if __name__ == "__main__":
    main()
