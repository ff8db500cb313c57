"""What the user asked for, run-wide. A leaf of the executor: importing it costs nothing (the CLI does at start)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: ``--forks`` unless given (or set in ansible.cfg): at most this many PCs at once. The runner's pool starts a thread
#: only when a PC is waiting for one, so a run on fewer PCs starts one thread per PC and works on the whole room or
#: school at once. Under Windows' own timing a PC's thread waits almost all the time (powershell.exe starts and
#: licensing class walks take seconds), so PCs left for a later wave only lengthen the run (docs/lab-timing.md,
#: "kmsfleet against Ansible"). The cap keeps threads, sockets and memory bounded on a city-size inventory.
DEFAULT_FORKS = 250


@dataclass(frozen=True)
class RunOptions:
    check: bool = False
    diff: bool = False
    forks: int = DEFAULT_FORKS
    strategy: str = "free"  # free | linear (a play's `strategy:` wins)
    tags: frozenset[str] = frozenset()
    skip_tags: frozenset[str] = frozenset()
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    verbosity: int = 0
    host_budget: float | None = None  # seconds per host for the whole run (kmsfleet_host_budget_sec wins)
    grace: float = 5.0  # after Ctrl-C: how long in-flight requests may take before hosts are abandoned
    password: str | None = field(default=None, repr=False)  # --ask-pass / KMSFLEET_PASSWORD
    lang: str = "en"
    #: connection variables used where a host sets none (ansible.cfg remote_user → ansible_user, timeout →
    #: ansible_winrm_connection_timeout_sec); a play's remote_user comes between these and the host's own
    connection_defaults: Mapping[str, Any] = field(default_factory=dict)
