"""Small Windows tools: w32tm, tzutil, reg query, hostname, whoami, ipconfig, findstr, more, net session.

Deviations/choices:
- ``w32tm /resync`` needs an administrator (it sets the system clock) and sets the PC's clock skew to 0; the
  lab ignores Windows' 15-hour MaxPos/NegPhaseCorrection limit for workgroup PCs and the W32Time start state.
  A failure prints "The following error occurred: …" and exits with the HRESULT.
- ``tzutil /s`` accepts the time zone IDs the lab models (spec.KNOWN_TIMEZONES); other IDs are reported as
  invalid. Standard users may change the time zone, as on Windows.
- ``whoami /groups`` prints the token of a network logon: elevated (High Mandatory Level, S-1-16-12288, with
  BUILTIN\\Administrators) for an administrator, Medium (S-1-16-8192) without Administrators otherwise.
- ``reg`` supports ``query`` (with /v, /ve, /s) over a small registry built from the PC's state: Windows
  version keys, SPP/OSPP KMS values, time zone, computer name, Office install root / Click-to-Run
  configuration, and SQL Server instance keys. Other subcommands answer "ERROR: Invalid syntax.".
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING

from orchestrator.lab.commands.base import CRLF, HANG_SECONDS, Ctx, ProgResult, tr, vb_date
from orchestrator.lab.kms import is_loopback
from orchestrator.lab.registry_base import RegKey
from orchestrator.lab.spec import KNOWN_TIMEZONES
from orchestrator.lab.timezones import time_zone

if TYPE_CHECKING:  # pragma: no cover
    pass

# -- w32tm ------------------------------------------------------------------------------------------------


async def prog_w32tm(ctx: Ctx, args_text: str, argv: list[str]) -> ProgResult:
    del args_text
    m = ctx.machine
    opts = [a.lower().lstrip("/-") for a in argv]
    if opts[:1] == ["resync"]:
        out = tr(ctx, "Sending resync command to local computer") + CRLF
        if not ctx.admin:
            return ProgResult(
                out + tr(ctx, "The following error occurred: Access is denied. (0x80070005)") + CRLF,
                code=0x80070005,
            )
        m.set_clock_skew(0)
        with m.lock:
            m.last_sync = m.world.clock.now()
            m.time_source = "time.windows.com,0x9"
        return ProgResult(out + tr(ctx, "The command completed successfully.") + CRLF)
    if opts[:1] == ["query"] and len(opts) > 1:
        what = opts[1]
        if what == "status":
            return ProgResult(_w32tm_status(ctx))
        if what == "source":
            return ProgResult(m.time_source + CRLF)
    if opts[:1] == ["tz"]:
        tz = m.tz
        bias = -tz.bias
        return ProgResult(
            f"Time zone: Current:TIME_ZONE_ID_UNKNOWN Bias: {bias}min (UTC=LocalTime+Bias){CRLF}"
            f'  [Standard Name:"{tz.standard_name}" Bias:0min Date:(unspecified)]{CRLF}'
            f'  [Daylight Name:"{tz.daylight_name}" Bias:-60min Date:(unspecified)]{CRLF}'
        )
    return ProgResult(
        tr(ctx, "The following error occurred: The parameter is incorrect. (0x80070057)") + CRLF, code=0x80070057
    )


def _w32tm_status(ctx: Ctx) -> str:
    m = ctx.machine
    if m.last_sync is None:
        lines = [
            "Leap Indicator: 3(not synchronized)",
            "Stratum: 0 (unspecified)",
            "Precision: -23 (119.209ns per tick)",
            "Root Delay: 0.0000000s",
            "Root Dispersion: 0.0000000s",
            "ReferenceId: 0x00000000 (unspecified)",
            "Last Successful Sync Time: unspecified",
            "Source: Local CMOS Clock",
            "Poll Interval: 10 (1024s)",
        ]
    else:
        synced = m.to_local(m.last_sync)
        lines = [
            "Leap Indicator: 0(no warning)",
            "Stratum: 4 (secondary reference - syncd by (S)NTP)",
            "Precision: -23 (119.209ns per tick)",
            "Root Delay: 0.0312500s",
            "Root Dispersion: 7.7756429s",
            "ReferenceId: 0x14654F1C (source IP:  20.101.57.9)",
            "Last Successful Sync Time: " + vb_date(ctx, synced),
            "Source: " + m.time_source,
            "Poll Interval: 10 (1024s)",
        ]
    return CRLF.join(lines) + CRLF + CRLF


# -- tzutil -----------------------------------------------------------------------------------------------


async def prog_tzutil(ctx: Ctx, args_text: str, argv: list[str]) -> ProgResult:
    del args_text
    m = ctx.machine
    opt = argv[0].lower() if argv else ""
    if opt == "/g":
        return ProgResult(m.timezone)  # tzutil prints the ID without a line break
    if opt == "/s" and len(argv) > 1:
        wanted = argv[1]
        base = wanted.removesuffix("_dstoff")
        match = next((z for z in KNOWN_TIMEZONES if z.lower() == base.lower()), None)
        if match is None:
            return ProgResult(stderr=f"Invalid time zone ID: '{wanted}'.{CRLF}", code=0x80070057)
        m.set_timezone(match)
        return ProgResult()
    if opt == "/l":
        blocks = [f"{time_zone(z).caption}{CRLF}{z}{CRLF}" for z in KNOWN_TIMEZONES]
        return ProgResult(CRLF.join(blocks))
    return ProgResult(
        "Windows Time Zone Utility"
        + CRLF
        + CRLF
        + "Usage:"
        + CRLF
        + "TZUTIL </? | /g | /s TimeZoneID[_dstoff] | /l>"
        + CRLF
        + CRLF
        + "Parameters:"
        + CRLF
        + "    /?  Displays usage information."
        + CRLF
        + CRLF
        + "    /g  Displays the current time zone ID."
        + CRLF
        + CRLF
        + "    /s TimeZoneID[_dstoff]"
        + CRLF
        + "        Sets the current time zone using the specified time zone ID."
        + CRLF
        + "        The _dstoff suffix disables Daylight Saving Time adjustments"
        + CRLF
        + "        for the time zone (where applicable)."
        + CRLF
        + CRLF
        + "    /l  Lists all valid time zone IDs and display names. The output will"
        + CRLF
        + "        be:"
        + CRLF
        + "            <display name>"
        + CRLF
        + "            <time zone ID>"
        + CRLF,
        code=0 if opt in ("/?", "-?") else 1,
    )


# -- registry ---------------------------------------------------------------------------------------------


_HIVES = {
    "hklm": "HKEY_LOCAL_MACHINE",
    "hkey_local_machine": "HKEY_LOCAL_MACHINE",
    "hkcu": "HKEY_CURRENT_USER",
    "hkey_current_user": "HKEY_CURRENT_USER",
    "hkcr": "HKEY_CLASSES_ROOT",
    "hkey_classes_root": "HKEY_CLASSES_ROOT",
    "hku": "HKEY_USERS",
    "hkey_users": "HKEY_USERS",
    "hkcc": "HKEY_CURRENT_CONFIG",
    "hkey_current_config": "HKEY_CURRENT_CONFIG",
}


def build_registry(ctx: Ctx) -> RegKey:
    """The registry ``reg query`` reads: the base tree with the writes made through StdRegProv (lab.registry)."""
    from orchestrator.lab import registry

    return registry.tree(ctx.machine)


REG_NOT_FOUND = "ERROR: The system was unable to find the specified registry key or value." + CRLF
REG_SYNTAX = 'ERROR: Invalid syntax.\r\nType "REG QUERY /?" for usage.\r\n'


def _lookup(root: RegKey, path: str) -> tuple[RegKey, str] | None:
    parts = [p for p in path.strip().strip('"').replace("/", "\\").split("\\") if p]
    if not parts:
        return None
    hive = _HIVES.get(parts[0].lower())
    if hive is None:
        return None
    key = root.subkeys[hive.lower()]
    shown = [hive]
    for part in parts[1:]:
        low = part.lower()
        if low not in key.subkeys:
            return None
        shown.append(key.names[low])
        key = key.subkeys[low]
    return key, "\\".join(shown)


def _value_lines(values: list[tuple[str, str, str]]) -> str:
    return "".join(f"    {name}    {typ}    {data}{CRLF}" for name, typ, data in values)


async def prog_reg(ctx: Ctx, args_text: str, argv: list[str]) -> ProgResult:
    del args_text
    if not argv or argv[0].lower() != "query" or len(argv) < 2:
        return ProgResult(stderr=REG_SYNTAX, code=1)
    found = _lookup(build_registry(ctx), argv[1])
    if found is None:
        return ProgResult(stderr=REG_NOT_FOUND, code=1)
    key, shown = found
    flags = [a.lower() for a in argv[2:]]
    if "/v" in flags:
        idx = flags.index("/v")
        if idx + 1 >= len(flags):
            return ProgResult(stderr=REG_SYNTAX, code=1)
        name = argv[2 + idx + 1]
        matches = [v for v in key.values if v[0].lower() == name.lower()]
        if not matches:
            return ProgResult(stderr=REG_NOT_FOUND, code=1)
        return ProgResult(f"{CRLF}{shown}{CRLF}{_value_lines(matches)}{CRLF}")
    if "/ve" in flags:
        return ProgResult(f"{CRLF}{shown}{CRLF}    (Default)    REG_SZ    (value not set){CRLF}{CRLF}")
    if "/s" in flags:
        out: list[str] = []

        def walk(k: RegKey, path: str) -> None:
            if k.values:
                out.append(f"{CRLF}{path}{CRLF}{_value_lines(k.values)}")
            for low in sorted(k.subkeys):
                walk(k.subkeys[low], f"{path}\\{k.names[low]}")

        walk(key, shown)
        return ProgResult("".join(out) + CRLF)
    text = ""
    if key.values:
        text += f"{CRLF}{shown}{CRLF}{_value_lines(key.values)}"
    if key.subkeys:
        text += CRLF + "".join(f"{shown}\\{key.names[low]}{CRLF}" for low in sorted(key.subkeys))
    return ProgResult(text or CRLF)


# -- identity and network -----------------------------------------------------------------------------------


async def prog_hostname(ctx: Ctx, args_text: str, argv: list[str]) -> ProgResult:
    del args_text, argv
    return ProgResult(ctx.machine.computer_name + CRLF)


async def prog_chcp(ctx: Ctx, args_text: str, argv: list[str]) -> ProgResult:
    """``chcp [n]``: each WinRS command is a new console, so a change lasts only for that command line."""
    del args_text
    if not argv:
        return ProgResult(tr(ctx, "Active code page: {cp}", cp=ctx.shell.codepage) + CRLF)
    if len(argv) == 1 and argv[0].isdigit() and int(argv[0]) in _CODEPAGES:
        page = int(argv[0])  # chcp reports in the language of the code page it just set
        return ProgResult(tr(ctx, "Active code page: {cp}", codepage=page, cp=page) + CRLF)
    return ProgResult(stderr=f"Invalid code page{CRLF}", code=1)


_CODEPAGES = frozenset({437, 850, 852, 866, 932, 936, 949, 950, 1250, 1251, 1252, 1253, 1254, 65000, 65001})


async def prog_timeout(ctx: Ctx, args_text: str, argv: list[str]) -> ProgResult:
    """timeout.exe needs a console for its input; under WinRS stdin is a pipe, so it quits at once."""
    del ctx, args_text, argv
    return ProgResult(
        stderr=f"ERROR: Input redirection is not supported, exiting the process immediately.{CRLF}", code=1
    )


_PING_MAX = 4_294_967_295


def _ping_options(argv: list[str]) -> tuple[int, int, bool, str] | ProgResult:
    """ping's (count, wait ms, -t, target) from its arguments, or its usage error."""
    count, wait_ms, forever, target = 4, 4000, False, None
    i = 0
    while i < len(argv):
        low = argv[i].lower()
        if low in ("-n", "/n", "-w", "/w", "-l", "/l", "-i", "/i"):
            value = argv[i + 1] if i + 1 < len(argv) else ""
            if not value.isdigit() or not 0 < int(value) <= _PING_MAX:
                return ProgResult(
                    f"Bad value for option {argv[i]}, valid range is from 1 to {_PING_MAX}.{CRLF}", code=1
                )
            count = int(value) if low[1] == "n" else count
            wait_ms = int(value) if low[1] == "w" else wait_ms
            i += 2
            continue
        if low in ("-t", "/t"):
            forever = True
        elif low.startswith(("-", "/")) and low not in ("-4", "/4", "-a", "/a"):
            return ProgResult(f"Bad option {argv[i]}.{CRLF}", code=1)
        elif not low.startswith(("-", "/")):
            target = argv[i]
        i += 1
    if target is None:
        return ProgResult(f"IP address must be specified.{CRLF}", code=1)
    return count, wait_ms, forever, target


async def prog_ping(ctx: Ctx, args_text: str, argv: list[str]) -> ProgResult:
    """``ping [-n count] [-w ms] [-t] target``, simulated without any ICMP traffic: loopback addresses (the
    classroom) answer, one echo per second; any other address times out after ``-w`` ms per echo."""
    del args_text
    options = _ping_options(argv)
    if isinstance(options, ProgResult):
        return options
    count, wait_ms, forever, target = options
    low_target = target.lower()
    if low_target in ("localhost", ctx.machine.computer_name.lower()):
        shown, address, loop = f"{ctx.machine.computer_name} [::1]", "::1", True
    elif all(p.isdigit() for p in target.split(".")) and len(target.split(".")) == 4:
        shown, address, loop = target, target, is_loopback(target)
    else:
        text = f"Ping request could not find host {target}. Please check the name and try again.{CRLF}"
        return ProgResult(text, code=1)
    if loop:
        reply = (
            f"Reply from {address}: time<1ms"
            if address == "::1"
            else f"Reply from {address}: bytes=32 time<1ms TTL=128"
        )
    else:
        reply = "Request timed out."
    lines = ["", f"Pinging {shown} with 32 bytes of data:"]
    if forever:
        return ProgResult(CRLF.join([*lines, reply]) + CRLF, hang=True, duration=HANG_SECONDS)
    lines += [reply] * min(count, 100)
    received = count if loop else 0
    lost = count - received
    lines += [
        "",
        f"Ping statistics for {address}:",
        f"    Packets: Sent = {count}, Received = {received}, Lost = {lost} ({lost * 100 // count}% loss),",
    ]
    if loop:
        lines += ["Approximate round trip times in milli-seconds:", "    Minimum = 0ms, Maximum = 0ms, Average = 0ms"]
    duration = (count - 1) * 1.0 if loop else count * wait_ms / 1000
    return ProgResult(CRLF.join(lines) + CRLF, code=0 if loop else 1, duration=min(duration, HANG_SECONDS))


async def prog_whoami(ctx: Ctx, args_text: str, argv: list[str]) -> ProgResult:
    del args_text
    user = ctx.getenv("USERNAME") or ctx.machine.config.user
    if any(a.lower() in ("/groups", "-groups") for a in argv):
        return ProgResult(_whoami_groups(ctx))
    return ProgResult(f"{ctx.machine.computer_name.lower()}\\{user.lower()}{CRLF}")


def _whoami_groups(ctx: Ctx) -> str:
    """``whoami /groups`` of a network logon: an administrator's token is elevated (High Mandatory Level,
    BUILTIN\\Administrators enabled); a standard user's is Medium without the Administrators group. Headings,
    types and attributes are in the PC's display language; names and SIDs are not (on zh-TW Windows too)."""
    admin = ctx.admin
    enabled = "Mandatory group, Enabled by default, Enabled group"
    rows = [("Everyone", "Well-known group", "S-1-1-0", enabled)]
    if admin:
        rows += [
            (
                "NT AUTHORITY\\Local account and member of Administrators group",
                "Well-known group",
                "S-1-5-114",
                enabled,
            ),
            ("BUILTIN\\Administrators", "Alias", "S-1-5-32-544", enabled + ", Group owner"),
        ]
    rows += [
        ("BUILTIN\\Users", "Alias", "S-1-5-32-545", enabled),
        ("NT AUTHORITY\\NETWORK", "Well-known group", "S-1-5-2", enabled),
        ("NT AUTHORITY\\Authenticated Users", "Well-known group", "S-1-5-11", enabled),
        ("NT AUTHORITY\\This Organization", "Well-known group", "S-1-5-15", enabled),
        ("NT AUTHORITY\\Local account", "Well-known group", "S-1-5-113", enabled),
        ("NT AUTHORITY\\NTLM Authentication", "Well-known group", "S-1-5-64-10", enabled),
    ]
    if admin:
        rows.append(("Mandatory Label\\High Mandatory Level", "Label", "S-1-16-12288", ""))
    else:
        rows.append(("Mandatory Label\\Medium Mandatory Level", "Label", "S-1-16-8192", ""))
    rows = [(name, tr(ctx, kind), sid, _attributes(ctx, attrs)) for name, kind, sid, attrs in rows]
    headings = (tr(ctx, "Group Name"), tr(ctx, "Type"), "SID", tr(ctx, "Attributes"))
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headings)]

    def line(cells: tuple[str, ...]) -> str:
        return " ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    title = tr(ctx, "GROUP INFORMATION")
    width = sum(2 if ord(ch) >= 0x2E80 else 1 for ch in title)  # console columns: a CJK character takes two
    out = ["", title, "-" * width, ""]
    out.append(line(headings))
    out.append(" ".join("=" * w for w in widths))
    out += [line(r) for r in rows]
    return CRLF.join(out) + CRLF


def _attributes(ctx: Ctx, attrs: str) -> str:
    base, owner, _ = attrs.partition(", Group owner")
    text = tr(ctx, base) if base else ""
    return text + (tr(ctx, ", Group owner") if owner or attrs.endswith(", Group owner") else "")


async def prog_ipconfig(ctx: Ctx, args_text: str, argv: list[str]) -> ProgResult:
    del args_text
    m = ctx.machine
    full = any(a.lower() == "/all" for a in argv)
    lines = ["", tr(ctx, "Windows IP Configuration"), ""]
    if full:
        lines += [
            f"   Host Name . . . . . . . . . . . . : {m.computer_name}",
            "   Primary Dns Suffix  . . . . . . . : ",
            "   Node Type . . . . . . . . . . . . : Hybrid",
            "   IP Routing Enabled. . . . . . . . : No",
            "   WINS Proxy Enabled. . . . . . . . : No",
            "",
        ]
    lines += ["", tr(ctx, "Ethernet adapter Ethernet:"), ""]
    lines.append(tr(ctx, "   Connection-specific DNS Suffix  . : "))
    if full:
        lines += [
            f"   Description . . . . . . . . . . . : {m.hardware.nic}",
            f"   Physical Address. . . . . . . . . : {m.config.mac.replace(':', '-')}",
            "   DHCP Enabled. . . . . . . . . . . : No",
            "   Autoconfiguration Enabled . . . . : Yes",
        ]
    suffix = tr(ctx, "(Preferred) ") if full else ""
    lines += [
        tr(ctx, "   IPv4 Address. . . . . . . . . . . : {address}", address=m.address + suffix),
        tr(ctx, "   Subnet Mask . . . . . . . . . . . : {mask}", mask="255.255.255.0"),
        tr(ctx, "   Default Gateway . . . . . . . . . : {gateway}", gateway=m.gateway),
    ]
    if full:
        lines += [
            f"   DNS Servers . . . . . . . . . . . : {m.gateway}",
            "   NetBIOS over Tcpip. . . . . . . . : Enabled",
        ]
    return ProgResult(CRLF.join(lines) + CRLF)


async def prog_findstr(ctx: Ctx, args_text: str, argv: list[str]) -> ProgResult:
    del args_text
    ignore = False
    needles: list[str] = []
    literal = False
    for arg in argv:
        low = arg.lower()
        if low.startswith("/c:"):
            needles.append(arg[3:])
            literal = True
        elif low in ("/i",):
            ignore = True
        elif low.startswith("/"):
            continue
        elif not literal:
            needles.extend(arg.split())
    lines = ctx.stdin.splitlines(keepends=True)

    def hit(line: str) -> bool:
        hay = line.lower() if ignore else line
        return any((n.lower() if ignore else n) in hay for n in needles)

    out = [ln if ln.endswith("\n") else ln + CRLF for ln in lines if hit(ln)]
    return ProgResult("".join(out), code=0 if out else 1)


async def prog_more(ctx: Ctx, args_text: str, argv: list[str]) -> ProgResult:
    del args_text, argv
    text = ctx.stdin.replace("\r\n", "\n").replace("\n", CRLF)
    return ProgResult(text)


async def prog_net(ctx: Ctx, args_text: str, argv: list[str]) -> ProgResult:
    del args_text
    if argv and argv[0].lower() == "session":
        if not ctx.admin:
            denied = f"{tr(ctx, 'System error 5 has occurred.')}{CRLF}{CRLF}{tr(ctx, 'Access is denied.')}{CRLF}{CRLF}"
            return ProgResult(stderr=denied, code=2)
        return ProgResult(f"{tr(ctx, 'There are no entries in the list.')}{CRLF}{CRLF}")
    return ProgResult(stderr=f"The syntax of this command is:{CRLF}{CRLF}NET{CRLF}", code=1)


# -- Test-NetConnection (used by the PowerShell layer) ----------------------------------------------------------


async def tcp_test(host: str, port: int, timeout: float = 1.0) -> bool:
    """A real TCP connect to a loopback address (anything else is reported unreachable with no traffic).

    Judged by the kernel's state when the wait ends, not by whether this process got round to running the
    connect's completion in time: a PC reaches a listening host on its own network in a millisecond or two, and a
    lab process starved of CPU (a 20,000-PC run on two cores) must not report such a port closed because
    its own event loop was late (benchmarks/city.py saw 226 of 20,000 PCs fail that way)."""
    if not is_loopback(host) or not 0 < port < 65536:
        return False
    address = host.strip("[]")
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (address, port)), timeout)
        except TimeoutError:
            return _established(sock)
        except OSError:
            return False
        return True


def _established(sock: socket.socket) -> bool:
    """True when the kernel finished the handshake of ``sock`` (a peer, no pending error)."""
    try:
        sock.getpeername()
    except OSError:
        return False
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
