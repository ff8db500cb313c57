"""``api.inventory_view`` gives every host the magic ``groups`` variable as ONE shared mapping: a copy per host
is O(hosts²) memory (210 MB of a 5,000-PC audit's 672 MB peak in benchmarks/audit_scale.py)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.api import inventory_view
from orchestrator.inventory.loader import load_inventory


def test_groups_magic_variable_is_shared_and_complete(tmp_path: Path) -> None:
    inv_file = tmp_path / "inv.yml"
    inv_file.write_text(
        "all:\n  children:\n    room101:\n      hosts:\n        pc[01:30]:\n    room102:\n      hosts:\n"
        "        pc[31:40]:\n",
        encoding="utf-8",
    )
    inv = load_inventory([str(inv_file)])
    view = inventory_view(inv)
    first, other = view.host_vars("pc01"), view.host_vars("pc35")
    assert first["groups"] is other["groups"]
    assert first["groups"] == inv.groups_dict()
    assert len(first["groups"]["all"]) == 40 and first["groups"]["room102"][0] == "pc31"
    # everything else is still the host's own fresh copy
    assert first["inventory_hostname"] == "pc01" and other["inventory_hostname"] == "pc35"
    first["x"] = 1
    assert "x" not in view.host_vars("pc01")
