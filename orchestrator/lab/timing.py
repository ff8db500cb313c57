"""How long things take on a simulated PC: ``instant`` (every figure zero, for tests) or ``windows`` (what real
Windows PCs are reported to take, docs/lab-timing.md).

Every figure is a range of seconds with its public source, or ``[unconfirmed]`` when the lab found none and the
range is a labelled guess. Each PC draws one value per figure from that range, once, with a generator seeded from
the lab seed and the PC's name, so a lab is reproducible and a room has fast and slow PCs (as a real room does).
``scale`` multiplies every windows figure (tests use small scales so nothing sleeps for minutes).

Where the figures are spent (one mechanism each, no second clock):
- program start (powershell.exe, cscript.exe, cmd.exe, w32tm /resync, the licensing queries a script makes) is
  added to the command's simulated run time (``duration_s``), which WinRS Receive already long-polls on;
- WMI Enumerate/Invoke and WinRS shell Create wait in the WS-Management service, bounded by the request's
  ``OperationTimeout`` (past it the real ``w:TimedOut`` fault);
- NTLM sign-in waits in the front end when the handshake completes;
- Activate waits one KMS round trip after the lab KMS host answered; when the host drops packets the PC's own
  KMS client waits ``kms_timeout_s`` (the TCP connect timeout) and fails 0xC004F074.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field
from typing import Literal

TimingMode = Literal["windows", "instant"]
TIMING_MODES: tuple[TimingMode, ...] = ("windows", "instant")

# What the lab's own KMS client waited for an unreachable host before timing was modelled; kept for ``instant``
# so existing behaviour (and tests) do not change.
INSTANT_KMS_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class Figure:
    low_s: float
    high_s: float
    source: str


# The windows model. Keys are the figure names used below and in docs/lab-timing.md.
WINDOWS: dict[str, Figure] = {
    # NTLM: three HTTP legs (negotiate / challenge / authenticate) on one connection; the network part is the PC's
    # ``latency_ms``, this is the logon on the PC (LSA checks the password, builds a token).
    "signin": Figure(0.02, 0.08, "[unconfirmed]"),
    # WinRS shell Create starts the shell host process for the user (winrshost.exe).
    "shell_create": Figure(0.05, 0.25, "[unconfirmed]"),
    # cmd.exe /c, through which WinRS runs every command line.
    "cmd_start": Figure(0.01, 0.05, "[unconfirmed]"),
    # powershell.exe, later starts: "low hundreds of milliseconds" once .NET images are precompiled
    # (ansible/ansible#58259); `powershell -command ls` over pypsrp took 1.59 s in all (jborean93/pypsrp#199).
    "powershell_start": Figure(0.3, 0.9, "ansible/ansible#58259; jborean93/pypsrp#199"),
    # powershell.exe, first start on a PC: JIT-compiling .NET made Ansible's Windows tasks take ~6 s
    # (ansible/ansible#58259); first start of PowerShell in a fresh profile is reported far slower still
    # (20-30 s for pwsh 7, ansible-collections/ansible.windows#644), not modelled.
    "powershell_cold_start": Figure(2.0, 6.0, "ansible/ansible#58259"),
    # cscript.exe loading a script (slmgr.vbs / ospp.vbs) before it asks WMI anything.
    "cscript_start": Figure(0.05, 0.2, "[unconfirmed]"),
    # A plain WQL query of a cheap class: Win32_OperatingSystem averaged 26.6 ms over 100 runs
    # (deploywindows.com, 2016-02-15, "Using Group Policy WMI filters…"); 15-118 ms for other classes
    # (evilgpo.blogspot.com, 2014-11, "WMI filter queries and thoughts on performance").
    "wql_query": Figure(0.015, 0.12, "deploywindows.com, 2016-02-15; evilgpo.blogspot.com, 2014-11"),
    # SoftwareLicensingProduct: the provider builds every SKU row the license store knows (dozens to hundreds),
    # each asking sppsvc; no public measurement found.
    "slp_query": Figure(1.0, 3.0, "[unconfirmed]"),
    # OfficeSoftwareProtectionProduct (osppsvc on Windows 7): the same walk over Office SKUs.
    "ospp_query": Figure(0.5, 2.0, "[unconfirmed]"),
    # One KMS activation round trip (RPC bind + request + response) on a LAN, on top of the network latency.
    "kms_round_trip": Figure(0.2, 1.0, "[unconfirmed]"),
    # w32tm /resync waits for the time service to poll its source.
    "w32tm_resync": Figure(0.5, 2.0, "[unconfirmed]"),
    # A firewall that drops packets: the KMS client's TCP connect gives up after the SYN retransmissions,
    # 3 s + 6 s + 12 s = 21 s (Microsoft KB 2786464: Windows 7 / 2008 R2, MaxSynRetransmissions 2, InitialRto 3 s).
    "kms_timeout": Figure(21.0, 21.0, "Microsoft KB 2786464"),
}

_SCRIPT_PROGRAMS = ("cscript", "wscript", "slmgr.vbs", "ospp.vbs")
# slmgr.vbs options that, without an Activation ID, read and change only the SoftwareLicensingService object
# (slmgr.vbs ``GetKmsClientObjectByActivationID``: ``GetServiceObject`` when no ID is given, the product walk
# only with one). Every other slmgr option walks SoftwareLicensingProduct (``GetProductCollection``). ospp.vbs
# has no such option: /sethst and /setprt loop over the product instances it queried first. Public copies of
# both scripts: github.com/jasonadsit/powershell-scripts, PsTokenBasedActivation/1.6/{slmgr,ospp}.vbs.
_SLMGR_SERVICE_ONLY = re.compile(r"/(?:skms|ckms|skms-domain|ckms-domain)(?:\s|$)")
_ACTIVATION_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass
class PcTiming:
    """One PC's drawn figures (seconds). All zero in ``instant`` mode."""

    mode: TimingMode
    figures: dict[str, float]
    kms_timeout_s: float
    _powershell_started: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # What this PC spent: figure name -> [times, seconds] (benchmarks read it through ``LabTiming.describe``).
    charged: dict[str, list[float]] = field(default_factory=dict, repr=False)

    @property
    def instant(self) -> bool:
        return self.mode == "instant"

    def get(self, name: str) -> float:
        """The figure the PC spends now (every caller waits this long), counted in ``charged``."""
        value = self.figures.get(name, 0.0)
        if value > 0:
            with self._lock:
                entry = self.charged.setdefault(name, [0.0, 0.0])
                entry[0] += 1
                entry[1] += value
        return value

    def program_start(self, prog_id: str, args_text: str = "") -> float:
        """Simulated seconds a program run costs before its own work: its start, plus the slow licensing class
        the script or command walks (``slmgr``/``ospp.vbs`` always query their class; a PowerShell command only
        when it names the class)."""
        if self.instant:
            return 0.0
        args = args_text.lower()
        if prog_id == "powershell":
            with self._lock:
                cold = not self._powershell_started
                self._powershell_started = True
            cost = self.get("powershell_cold_start" if cold else "powershell_start")
            return cost + self._licensing_queries(args)
        if prog_id in _SCRIPT_PROGRAMS:
            return self.get("cscript_start") + self._script_queries(prog_id, args)
        if prog_id == "w32tm":
            return self.get("w32tm_resync") if "/resync" in args else 0.0
        if prog_id == "cmd":
            return self.get("cmd_start")
        return 0.0

    def _script_queries(self, prog_id: str, args: str) -> float:
        """The licensing class a script walks: OSPP.VBS its product class, slmgr.vbs SoftwareLicensingProduct,
        except the KMS-host options without an Activation ID, which query only SoftwareLicensingService."""
        if "ospp.vbs" in args or prog_id == "ospp.vbs":
            return self.get("ospp_query")
        if "slmgr" in args or prog_id == "slmgr.vbs":
            if _SLMGR_SERVICE_ONLY.search(args) and not _ACTIVATION_ID.search(args):
                return self.get("wql_query")
            return self.get("slp_query")
        return 0.0

    def _licensing_queries(self, args: str) -> float:
        cost = 0.0
        if "softwarelicensingproduct" in args:
            cost += self.get("slp_query")
        if "officesoftwareprotectionproduct" in args:
            cost += self.get("ospp_query")
        return cost

    def query(self, class_name: str) -> float:
        """Seconds a WQL Enumerate of ``class_name`` takes on this PC."""
        name = class_name.lower()
        if name == "softwarelicensingproduct":
            return self.get("slp_query")
        if name == "officesoftwareprotectionproduct":
            return self.get("ospp_query")
        return self.get("wql_query")

    def invoke(self, method: str) -> float:
        """Seconds a WMI method takes besides the work the lab really does (Activate: its KMS round trip is
        spent by the licensing model itself, only when a host answered)."""
        return 0.0 if method.lower() == "activate" else self.get("wql_query")


class LabTiming:
    """Every PC's timing for one lab: ``pc(name)`` draws once per PC, reproducibly from ``seed``."""

    def __init__(self, mode: TimingMode = "instant", seed: int = 0, scale: float = 1.0) -> None:
        if mode not in TIMING_MODES:
            raise ValueError(f"timing must be one of {', '.join(TIMING_MODES)}, not {mode!r}")
        if not 0 < scale <= 10:
            raise ValueError("timing scale must be in (0, 10]")
        self.mode: TimingMode = mode
        self.seed = seed
        self.scale = scale
        self._pcs: dict[str, PcTiming] = {}
        self._lock = threading.Lock()

    def pc(self, name: str) -> PcTiming:
        key = name.lower()
        with self._lock:
            found = self._pcs.get(key)
            if found is None:
                found = self._draw(key)
                self._pcs[key] = found
            return found

    def _draw(self, key: str) -> PcTiming:
        if self.mode == "instant":
            return instant_pc()
        rng = random.Random(f"kmsfleet-lab-timing:{self.seed}:{key}")
        figures = {name: rng.uniform(f.low_s, f.high_s) * self.scale for name, f in WINDOWS.items()}
        return PcTiming("windows", figures, figures["kms_timeout"])

    def describe(self) -> dict[str, object]:
        """Mode, scale, what every PC spent so far (``charged``: figure -> count, seconds) and the slowest PC's
        total."""
        return {
            "mode": self.mode,
            "scale": self.scale,
            "charged": self.charged(),
            "slowest_pc_s": self.slowest_pc_s(),
        }

    def slowest_pc_s(self) -> float:
        """The most seconds charged to one PC so far: with one command at a time per PC, a floor under the run."""
        with self._lock:
            pcs = list(self._pcs.values())
        totals = []
        for pc in pcs:
            with pc._lock:
                totals.append(sum(seconds for _count, seconds in pc.charged.values()))
        return round(max(totals, default=0.0), 3)

    def charged(self) -> dict[str, dict[str, float]]:
        with self._lock:
            pcs = list(self._pcs.values())
        total: dict[str, list[float]] = {}
        for pc in pcs:
            with pc._lock:
                for name, (count, seconds) in pc.charged.items():
                    entry = total.setdefault(name, [0.0, 0.0])
                    entry[0] += count
                    entry[1] += seconds
        return {name: {"count": int(c), "seconds": round(s, 3)} for name, (c, s) in sorted(total.items())}


def instant_pc() -> PcTiming:
    """A PC on which nothing takes time (the default wherever no lab timing was chosen)."""
    return PcTiming("instant", {}, INSTANT_KMS_TIMEOUT_S)
