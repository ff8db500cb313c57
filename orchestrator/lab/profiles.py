"""Ready-made classroom specs for ``kmsfleet lab serve --hosts N --profile NAME`` and ``kmsfleet demo``.

- ``classroom(n, octet)``: n healthy school PCs: Windows 10 Education with its GVLK (volume channel) and
  Office 2016 ProPlus volume (32-bit), both never activated yet (OOB grace), time zone Taipei, no KMS host set
  (the playbook sets it, exactly as the bureau's batch file does).
- ``mixed(n, octet, seed)``: the same rooms, but every block of 40 PCs carries the problems the bureau's Q&A
  describes (positions shuffled by ``seed``): three PCs on a wrong time zone whose wall clock was hand-set to
  Taipei time (so their UTC clock is off by the zone difference, e.g. +960 min for Pacific in winter), two with
  a plain clock skew (+5 h 10 min, -1 day), a Windows 7 PC on a BIOS whose SLIC table has no Windows marker
  (0xC004F035), two where the WinRM account is not an administrator (0x80070005), a blocked MAK (0xC004C003),
  two Windows 10 Pro retail PCs (one activated, one not: 0xC004F057) and a Windows 10 Home
  (0xC004F057), two OEM Office (0xC004F017), a Microsoft 365
  subscription Office, a corrupt Office (0xC004F056), two powered off, one slow (1.5 s per request), a
  teacher's PC with SQL Server 2019 Express, and two healthy PCs with 64-bit Office 2019 (Click-to-Run); the
  other 18 are healthy.
- ``server_room(n, octet, seed)``: Windows Server 2016/2019 Standard/Datacenter machines, some with SQL Server.

``classroom`` and ``mixed`` are Taiwanese school rooms: their PCs are zh-TW Windows (Chinese captions, time
zone names and tool texts, OEM code page 950) except every tenth PC (pc010, pc020, …), an en-US install, as a
school's donated or teacher-installed machines are.

Rooms hold up to 250 PCs: room101 on 127.<octet>.1, room102 on 127.<octet>.2, …; PCs are numbered across rooms
(pc001, pc002, …). Every function returns a validated ``LabSpec`` (built with ``parse_spec``).

Deviations/choices:
- The UTC skew of a wrong-zone PC is computed from the zone's offset at the time the spec is generated (DST
  included), so a Pacific PC gets +900 in summer and +960 in winter.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from orchestrator.lab.spec import LabSpec, parse_spec
from orchestrator.lab.timezones import time_zone, utc_offset_minutes

ROOM_SIZE = 250
BLOCK = 40
TAIPEI_OFFSET = 480


def _check(n: int, octet: int) -> None:
    if n < 1:
        raise ValueError("a lab needs at least one PC")
    if not 0 <= octet <= 255:
        raise ValueError("octet must be 0..255")
    if (n + ROOM_SIZE - 1) // ROOM_SIZE > 255:
        raise ValueError(f"{n} PCs do not fit in 255 rooms of {ROOM_SIZE}")


def _names(n: int, prefix: str = "pc") -> list[str]:
    width = max(3, len(str(n)))
    return [f"{prefix}{i:0{width}d}" for i in range(1, n + 1)]


def _rooms(
    hosts: list[dict[str, Any]], octet: int, defaults: dict[str, Any], room_base: int = 101
) -> list[dict[str, Any]]:
    rooms = []
    for r in range(0, len(hosts), ROOM_SIZE):
        number = r // ROOM_SIZE
        rooms.append(
            {
                "room": f"room{room_base + number}",
                "subnet": f"127.{octet}.{number + 1}",
                "defaults": defaults,
                "hosts": hosts[r : r + ROOM_SIZE],
            }
        )
    return rooms


_CLASSROOM_DEFAULTS: dict[str, Any] = {
    "os": "Windows 10 Education",
    "windows_channel": "volume",
    "windows_state": "unlicensed",
    "office": {"version": 2016, "bitness": "x86", "channel": "volume", "state": "unlicensed"},
    "timezone": "Taipei Standard Time",
    "locale": "zh-TW",
}
EN_US_EVERY = 10  # every tenth PC of a classroom/mixed profile is an en-US install


def _locale_overrides(hosts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every ``EN_US_EVERY``-th PC speaks en-US; the others keep the room's zh-TW."""
    return [
        {**host, "locale": "en-US"} if (i + 1) % EN_US_EVERY == 0 and "locale" not in host else host
        for i, host in enumerate(hosts)
    ]


def _classroom_hosts(first: int, last: int, width: int) -> list[dict[str, Any]]:
    """pc<first>..pc<last> as ranges of zh-TW PCs with every ``EN_US_EVERY``-th PC an en-US one."""
    hosts: list[dict[str, Any]] = []
    start = first
    for number in range(first, last + 1):
        if number % EN_US_EVERY == 0:
            if start < number:
                hosts.append({"name": f"pc[{start:0{width}d}:{number - 1:0{width}d}]"})
            hosts.append({"name": f"pc{number:0{width}d}", "locale": "en-US"})
            start = number + 1
    if start <= last:
        hosts.append({"name": f"pc[{start:0{width}d}:{last:0{width}d}]"})
    return hosts


def classroom(n: int, octet: int) -> LabSpec:
    """n healthy, not yet activated Windows 10 Education + Office 2016 volume PCs."""
    _check(n, octet)
    rooms = []
    width = max(3, len(str(n)))
    for r in range(0, n, ROOM_SIZE):
        number = r // ROOM_SIZE
        last = min(n, r + ROOM_SIZE)
        rooms.append(
            {
                "room": f"room{101 + number}",
                "subnet": f"127.{octet}.{number + 1}",
                "defaults": _CLASSROOM_DEFAULTS,
                "hosts": _classroom_hosts(r + 1, last, width),
            }
        )
    return parse_spec({"rooms": rooms, "seed": 0}, f"<profile classroom n={n}>")


def _wrong_zone(zone: str) -> dict[str, Any]:
    offset = utc_offset_minutes(time_zone(zone), datetime.now(UTC))
    return {"timezone": zone, "clock_skew_minutes": TAIPEI_OFFSET - offset}


def _problems() -> list[tuple[str, dict[str, Any]]]:
    return [
        ("wrong-timezone-pacific", _wrong_zone("Pacific Standard Time")),
        ("wrong-timezone-eastern", _wrong_zone("Eastern Standard Time")),
        ("wrong-timezone-utc", _wrong_zone("UTC")),
        ("clock-skew-ahead", {"clock_skew_minutes": 310}),
        ("clock-skew-behind", {"clock_skew_minutes": -1440}),
        ("slic-bios-windows7", {"os": "Windows 7 Professional", "windows_channel": "oem_slic"}),
        ("not-admin", {"admin": False}),
        ("not-admin", {"admin": False}),
        ("blocked-mak", {"windows_channel": "mak", "blocked_key": True}),
        ("pro-retail", {"os": "Windows 10 Pro", "windows_channel": "retail", "windows_state": "licensed"}),
        ("pro-retail", {"os": "Windows 10 Pro", "windows_channel": "retail", "windows_state": "unlicensed"}),
        ("home-edition", {"os": "Windows 10 Home", "windows_channel": "retail", "windows_state": "unlicensed"}),
        ("oem-office", {"office": {"version": 2016, "bitness": "x64", "channel": "oem", "state": "licensed"}}),
        ("oem-office", {"office": {"version": 2016, "bitness": "x64", "channel": "oem", "state": "licensed"}}),
        (
            "subscription-office",
            {"office": {"version": 2016, "bitness": "x64", "channel": "subscription", "state": "licensed"}},
        ),
        ("corrupt-office", {"office": {"version": 2016, "bitness": "x86", "channel": "volume", "state": "corrupt"}}),
        ("powered-off", {"power": "off"}),
        ("powered-off", {"power": "off"}),
        ("slow", {"latency_ms": 1500.0}),
        ("sql-server", {"sql": "2019 Express"}),
        ("office2019-x64", {"office": {"version": 2019, "bitness": "x64", "channel": "volume", "state": "unlicensed"}}),
        ("office2019-x64", {"office": {"version": 2019, "bitness": "x64", "channel": "volume", "state": "unlicensed"}}),
    ]


def mixed_layout(n: int, seed: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, problem label, host fields) for each PC of a ``mixed`` lab; label "healthy" for the rest."""
    rng = random.Random(seed)
    names = _names(n)
    out: list[tuple[str, str, dict[str, Any]]] = []
    for start in range(0, n, BLOCK):
        slots: list[tuple[str, dict[str, Any]]] = list(_problems())
        slots += [("healthy", {})] * (BLOCK - len(slots))
        rng.shuffle(slots)
        for offset, (label, fields) in enumerate(slots):
            index = start + offset
            if index >= n:
                break
            out.append((names[index], label, fields))
    return out


def mixed(n: int, octet: int, seed: int = 0) -> LabSpec:
    """n PCs with the bureau's typical problems (a 40-PC mix repeated per block of 40)."""
    _check(n, octet)
    hosts = _locale_overrides([{"name": name, **fields} for name, _label, fields in mixed_layout(n, seed)])
    rooms = _rooms(hosts, octet, _CLASSROOM_DEFAULTS)
    return parse_spec({"rooms": rooms, "seed": seed}, f"<profile mixed n={n} seed={seed}>")


_SERVERS = (
    ("Windows Server 2019 Standard", "2019 Standard"),
    ("Windows Server 2019 Datacenter", None),
    ("Windows Server 2016 Standard", "2016 Enterprise"),
    ("Windows Server 2016 Datacenter", None),
)


def server_room(n: int = 6, octet: int = 0, seed: int = 0) -> LabSpec:
    """Windows Server 2016/2019 KMS clients (threshold 5), a few running SQL Server (never KMS-activated)."""
    _check(n, octet)
    rng = random.Random(seed)
    hosts: list[dict[str, Any]] = []
    for i, name in enumerate(_names(n, "srv"), start=0):
        os_name, sql = _SERVERS[i % len(_SERVERS)]
        host: dict[str, Any] = {"name": name, "os": os_name}
        if sql and rng.random() < 0.9:
            host["sql"] = sql
        hosts.append(host)
    defaults = {"windows_channel": "volume", "windows_state": "unlicensed", "timezone": "Taipei Standard Time"}
    rooms = _rooms(hosts, octet, defaults, room_base=1)
    for room in rooms:
        room["room"] = room["room"].replace("room", "serverroom")
    return parse_spec(
        {"rooms": rooms, "seed": seed, "kms": {"products": ["windows", "server", "office"]}},
        f"<profile server_room n={n}>",
    )


PROFILES = {"classroom": classroom, "mixed": mixed, "server_room": server_room}
