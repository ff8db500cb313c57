"""The facts ``ansible.windows.setup`` returns that kmsfleet's own gathering did not: ``ansible_date_time``,
``ansible_ip_addresses`` (and ``ansible_all_ipv4_addresses``/``_ipv6_``), ``ansible_env``, ``ansible_fqdn``,
``ansible_windows_domain*``, ``ansible_interfaces`` in Ansible's shape.

Key names and value formats follow ansible.windows' setup.ps1 (github.com/ansible-collections/ansible.windows,
plugins/modules/setup.ps1): date_time uses .NET format strings (``yyyy-MM-dd``, ``zzzz`` → ``+08:00``, the
weekday in English, ``%w``/``%W`` week numbers); ``ansible_env`` is the process environment with a trailing
backslash trimmed from each value; ``ansible_domain`` is empty for a workgroup PC while ``ansible_windows_domain``
names the workgroup. The data comes from WMI (Win32_OperatingSystem.LocalDateTime, Win32_ComputerSystem,
Win32_NetworkAdapterConfiguration) and ``set`` in the WinRS cmd shell (the same environment Ansible's PowerShell
sees for a network logon).
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from typing import Any

from orchestrator.modules.base import ModuleContext

#: Win32_ComputerSystem.DomainRole → ansible_windows_domain_role (setup.ps1's texts)
DOMAIN_ROLES = {
    0: "Stand-alone workstation",
    1: "Member workstation",
    2: "Stand-alone server",
    3: "Member server",
    4: "Backup domain controller",
    5: "Primary domain controller",
}
#: the largest ``set`` output read (a PC's environment is a few KiB)
MAX_ENV_BYTES = 256 * 1024


def date_time_facts(local: datetime, tz_id: str | None) -> dict[str, Any]:
    """``ansible_date_time`` for the PC's local time ``local`` (aware, in the PC's UTC offset)."""
    utc = local.astimezone(UTC)
    offset = local.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "+" if minutes >= 0 else "-"
    tz_offset = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    epoch = utc.timestamp()
    naive_local = local.replace(tzinfo=None)
    return {
        "date": local.strftime("%Y-%m-%d"),
        "day": local.strftime("%d"),
        "epoch": str(int(epoch)),
        "epoch_int": int(epoch),
        "epoch_local": str(int(naive_local.replace(tzinfo=UTC).timestamp())),
        "hour": local.strftime("%H"),
        "iso8601": utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "iso8601_basic": local.strftime("%Y%m%dT%H%M%S%f"),
        "iso8601_basic_short": local.strftime("%Y%m%dT%H%M%S"),
        "iso8601_micro": utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "minute": local.strftime("%M"),
        "month": local.strftime("%m"),
        "second": local.strftime("%S"),
        "time": local.strftime("%H:%M:%S"),
        "tz": tz_id or "",
        "tz_offset": tz_offset,
        "weekday": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")[local.weekday()],
        "weekday_number": local.strftime("%w"),
        "weeknumber": local.strftime("%W"),
        "year": local.strftime("%Y"),
    }


def parse_set_output(text: str) -> dict[str, str]:
    """``NAME=value`` lines of cmd's ``set`` → ``ansible_env`` (values without a trailing backslash)."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name and not name.startswith(" "):
            env[name] = value.rstrip("\\")
    return env


def address_facts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Addresses and interfaces from Win32_NetworkAdapterConfiguration rows (IPEnabled adapters)."""
    ipv4: list[str] = []
    ipv6: list[str] = []
    interfaces: list[dict[str, Any]] = []
    for row in rows:
        raw = row.get("IPAddress")
        addresses = [str(a) for a in (raw if isinstance(raw, list) else [raw] if raw else [])]
        v4: list[str] = []
        v6: list[str] = []
        for address in addresses:
            try:
                parsed = ipaddress.ip_address(address.split("%", 1)[0])
            except ValueError:
                continue
            (v4 if parsed.version == 4 else v6).append(address)
        ipv4.extend(a for a in v4 if a not in ipv4)
        ipv6.extend(a for a in v6 if a not in ipv6 and a != "::1")
        gateways = row.get("DefaultIPGateway")
        gateway = gateways[0] if isinstance(gateways, list) and gateways else gateways or None
        raw_subnets = row.get("IPSubnet")
        subnets: list[Any] = raw_subnets if isinstance(raw_subnets, list) else []
        interfaces.append(
            {
                "connection_name": row.get("Description"),
                "default_gateway": gateway,
                "dns_domain": row.get("DNSDomain") or None,
                "interface_index": _int(row.get("InterfaceIndex")),
                "interface_name": row.get("Description"),
                "ipv4": [{"address": a, "prefix": _prefix(subnets, i)} for i, a in enumerate(v4)],
                "ipv6": [{"address": a, "prefix": None} for a in v6],
                "macaddress": row.get("MACAddress"),
            }
        )
    return {
        "ansible_all_ipv4_addresses": ipv4,
        "ansible_all_ipv6_addresses": ipv6,
        "ansible_ip_addresses": ipv4 + ipv6,
        "ansible_interfaces": interfaces,
    }


def _int(value: Any) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _prefix(subnets: list[Any], index: int) -> str | None:
    if index >= len(subnets):
        return None
    try:
        return str(ipaddress.ip_network(f"0.0.0.0/{subnets[index]}").prefixlen)
    except ValueError:
        return None


#: Win32_OperatingSystem.ProductType → ansible_os_product_type (setup.ps1's names for OSVERSIONINFOEX.wProductType)
PRODUCT_TYPES = {1: "workstation", 2: "domain_controller", 3: "server"}


def distribution_facts(row: dict[str, Any]) -> dict[str, Any]:
    """setup.ps1's ``distribution`` facts from a Win32_OperatingSystem row (Caption, Version, ProductType,
    ServicePackMajorVersion, ServicePackMinorVersion).

    ``ansible_distribution_version`` and ``ansible_kernel`` are ``[Environment]::OSVersion.Version.ToString()``:
    four parts, the fourth being ``(service pack major << 16) | service pack minor`` as .NET builds it from
    GetVersionEx — ``10.0.19045.0`` on Windows 10, ``6.1.7601.65536`` on Windows 7 SP1 (published fact dumps of
    both). ``ansible_os_name`` is the caption trimmed (Windows 7's caption ends with a space), while
    ``ansible_distribution`` is the caption as WMI gives it."""
    caption = str(row.get("Caption") or "")
    version = str(row.get("Version") or "")
    if version.count(".") == 2:
        sp = ((_int(row.get("ServicePackMajorVersion")) or 0) << 16) | (_int(row.get("ServicePackMinorVersion")) or 0)
        version = f"{version}.{sp}"
    product_type = _int(row.get("ProductType"))
    return {
        "ansible_os_family": "Windows",
        "ansible_system": "Win32NT",
        "ansible_os_name": caption.strip(),
        "ansible_distribution": caption,
        "ansible_distribution_version": version,
        "ansible_distribution_major_version": version.split(".", maxsplit=1)[0] if version else "",
        "ansible_kernel": version,
        "ansible_os_product_type": PRODUCT_TYPES.get(product_type, "unknown") if product_type else "unknown",
    }


def domain_facts(row: dict[str, Any], hostname: str | None) -> dict[str, Any]:
    member = str(row.get("PartOfDomain")).strip().lower() == "true"  # WMI text or a boolean
    domain = str(row.get("Domain") or "")
    role = _int(row.get("DomainRole"))
    fqdn = f"{hostname}.{domain}" if member and hostname and domain else hostname
    return {
        "ansible_domain": domain if member else "",
        "ansible_fqdn": fqdn,
        "ansible_nodename": fqdn,
        "ansible_windows_domain": domain or str(row.get("Workgroup") or ""),
        "ansible_windows_domain_member": member,
        "ansible_windows_domain_role": DOMAIN_ROLES.get(role, "") if isinstance(role, int) else "",
    }


def gather_ansible_facts(ctx: ModuleContext, facts: dict[str, Any], subset: set[str]) -> dict[str, Any]:
    """The extra Ansible facts, from what ``facts`` (kmsfleet's OS facts) already holds plus two WMI queries and
    one ``set``."""
    every = "all" in subset
    out: dict[str, Any] = {}
    local = facts.get("kmsfleet_local_time")
    if isinstance(local, str) and local:
        out["ansible_date_time"] = date_time_facts(datetime.fromisoformat(local), facts.get("kmsfleet_timezone"))
    conn = ctx.conn
    rows = conn.wql("SELECT Domain, DomainRole, PartOfDomain, Workgroup FROM Win32_ComputerSystem")
    out.update(domain_facts(rows[0] if rows else {}, facts.get("ansible_hostname")))
    if every or "network" in subset or "interfaces" in subset:
        out.update(
            address_facts(
                conn.wql(
                    "SELECT Description, MACAddress, IPAddress, IPSubnet, DefaultIPGateway, DNSDomain, InterfaceIndex "
                    "FROM Win32_NetworkAdapterConfiguration WHERE IPEnabled = TRUE"
                )
            )
        )
    if every or "env" in subset:
        result = conn.run_command("cmd.exe", ["/c", "set"], read_only=True)
        if result.rc == 0:
            out["ansible_env"] = parse_set_output(result.stdout[:MAX_ENV_BYTES])
    return out


__all__ = [
    "address_facts",
    "date_time_facts",
    "distribution_facts",
    "domain_facts",
    "gather_ansible_facts",
    "parse_set_output",
]
