"""``--processes``: a worker process (started with ``spawn``, as the engine starts it) masks what the parent
registered — a per-PC password loaded from the inventory, an NTLM hash registered as a digest at sign-in, and a
secret name — from the job the engine builds for it."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from orchestrator import redact
from orchestrator.api import ad_hoc_plan, inventory_view
from orchestrator.executor import multiproc
from orchestrator.executor.runner import new_run_info
from orchestrator.executor.state import RunOptions
from orchestrator.inventory.loader import load_inventory

PASSWORD = "Laps-Pc07-9xQ!m"
NT_HASH = "0123456789abcdef" * 2
INVENTORY = f"""\
all:
  hosts:
    pc07: {{ansible_password: "{PASSWORD}"}}
    pc08: {{ansible_password: "Laps-Pc08-Zz4$k"}}
"""


def _scrub_in_worker(job: multiproc._Job, text: str) -> tuple[str, bool, bool]:
    before = redact.redact_text(text)
    multiproc._adopt_secrets(job)
    return redact.redact_text(text), before == text, redact.is_secret_name("kmsfleet_door_code")


def test_a_worker_masks_the_parents_secrets_digests_and_names(tmp_path: Path) -> None:
    path = tmp_path / "inv.yml"
    path.write_text(INVENTORY, encoding="utf-8")
    view = inventory_view(load_inventory([str(path)]))  # registers the per-PC passwords
    redact.register_digests((NT_HASH,))
    redact.register_secret_name("kmsfleet_door_code")
    options = RunOptions()
    info = new_run_info("r1", "pb.yml", (), options, None)
    jobs = multiproc.ProcessEngine(2, options)._jobs(ad_hoc_plan("p", "win_ping", {}), view, info, [["pc07"]])
    assert NT_HASH in jobs[0].digests and PASSWORD in jobs[0].secrets
    text = f"logon pc07 {PASSWORD} nt={NT_HASH.upper()} pc08 Laps-Pc08-Zz4$k"
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        masked, clean_before, named = pool.apply(_scrub_in_worker, (jobs[0], text))
    assert clean_before  # the fresh process knew nothing before adopting the job's secrets
    assert masked == f"logon pc07 {redact.MASK} nt={redact.MASK} pc08 {redact.MASK}"
    assert named
