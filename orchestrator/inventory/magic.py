"""The per-host magic variables an inventory gives every PC, built in one place for every caller.

Ansible's ``VariableManager`` adds them to each host's variables: ``inventory_hostname`` (the name as the
inventory gives it), ``inventory_hostname_short`` (up to the first dot), ``group_names`` (the host's groups
except ``all``), ``groups`` (every group and its hosts), ``inventory_file`` and ``inventory_dir`` (the source
the host came from). ``groups`` is passed in and not copied: callers share one mapping between all hosts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def magic_host_vars(
    name: str, group_names: Sequence[str], groups: Mapping[str, Sequence[str]], inventory_file: str | None
) -> dict[str, Any]:
    return {
        "inventory_hostname": name,
        "inventory_hostname_short": name.split(".", 1)[0],
        "group_names": list(group_names),
        "groups": groups,
        "inventory_file": inventory_file,
        "inventory_dir": str(Path(inventory_file).parent) if inventory_file else None,
    }
