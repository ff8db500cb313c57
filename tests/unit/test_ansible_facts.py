"""Ansible-named facts (ansible.windows setup.ps1 key names and formats) from WMI rows and cmd's ``set``."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from orchestrator.api import answer_vars_prompts
from orchestrator.executor.plan import Plan, PlaySpec
from orchestrator.modules.ansible_facts import (
    address_facts,
    date_time_facts,
    distribution_facts,
    domain_facts,
    parse_set_output,
)


def test_date_time_keys_and_formats() -> None:
    local = datetime(2026, 3, 1, 7, 5, 9, 123456, tzinfo=timezone(timedelta(hours=8)))
    dt = date_time_facts(local, "Taipei Standard Time")
    assert dt["date"] == "2026-03-01" and dt["time"] == "07:05:09"
    assert (dt["year"], dt["month"], dt["day"], dt["hour"], dt["minute"], dt["second"]) == (
        "2026", "03", "01", "07", "05", "09",
    )  # fmt: skip
    assert dt["iso8601"] == "2026-02-28T23:05:09Z"
    assert dt["iso8601_micro"] == "2026-02-28T23:05:09.123456Z"
    assert dt["iso8601_basic_short"] == "20260301T070509"
    assert dt["tz"] == "Taipei Standard Time" and dt["tz_offset"] == "+08:00"
    assert dt["weekday"] == "Sunday" and dt["weekday_number"] == "0"
    assert dt["epoch_int"] == int(local.timestamp()) and dt["epoch"] == str(int(local.timestamp()))


def test_negative_offsets() -> None:
    local = datetime(2026, 1, 5, 12, 0, tzinfo=timezone(timedelta(hours=-3, minutes=-30)))
    assert date_time_facts(local, None)["tz_offset"] == "-03:30"


def test_env_from_set_output() -> None:
    text = "ALLUSERSPROFILE=C:\\ProgramData\r\nPath=C:\\WINDOWS\\system32;C:\\WINDOWS\r\nX=a=b\r\nHOMEPATH=\\\r\n"
    env = parse_set_output(text)
    assert env["Path"] == "C:\\WINDOWS\\system32;C:\\WINDOWS"
    assert env["X"] == "a=b" and env["HOMEPATH"] == ""  # a trailing backslash is trimmed, as setup.ps1 does


def test_addresses_and_interfaces() -> None:
    rows: list[dict[str, Any]] = [
        {
            "Description": "Intel(R) Ethernet",
            "MACAddress": "52:54:00:00:00:01",
            "IPAddress": ["10.0.0.5", "fe80::1%12", "::1"],
            "IPSubnet": ["255.255.255.0", "64"],
            "DefaultIPGateway": ["10.0.0.1"],
            "DNSDomain": "school.example",
            "InterfaceIndex": "12",
        }
    ]
    facts = address_facts(rows)
    assert facts["ansible_ip_addresses"] == ["10.0.0.5", "fe80::1%12"]
    (nic,) = facts["ansible_interfaces"]
    assert nic["interface_index"] == 12 and nic["default_gateway"] == "10.0.0.1"
    assert nic["ipv4"] == [{"address": "10.0.0.5", "prefix": "24"}]


def test_domain_facts_workgroup_and_member() -> None:
    wg = domain_facts({"Domain": "WORKGROUP", "PartOfDomain": "False", "DomainRole": "0"}, "PC01")
    assert (wg["ansible_domain"], wg["ansible_fqdn"], wg["ansible_windows_domain"]) == ("", "PC01", "WORKGROUP")
    assert wg["ansible_windows_domain_role"] == "Stand-alone workstation"
    member = domain_facts({"Domain": "school.local", "PartOfDomain": True, "DomainRole": 1}, "PC01")
    assert member["ansible_fqdn"] == "PC01.school.local" and member["ansible_windows_domain_member"] is True


def test_vars_prompt_answers_join_play_vars_unless_given_with_e() -> None:
    class Prompt:
        def __init__(self, name: str) -> None:
            self.name, self.private = name, True

    play = PlaySpec(name="p", hosts="all", vars={"a": 1}, vars_prompt=(Prompt("kms_key"), Prompt("given")))
    asked: list[str] = []

    def ask(prompt: Any) -> str:
        asked.append(prompt.name)
        return "answer-" + prompt.name

    plan = answer_vars_prompts(Plan("<t>", (play,)), {"given": "x"}, ask)
    assert asked == ["kms_key"]
    assert plan.plays[0].vars == {"a": 1, "kms_key": "answer-kms_key"}


def test_distribution_version_has_four_parts_like_environment_osversion() -> None:
    """setup.ps1 reports [Environment]::OSVersion.Version: the fourth part is the service pack (major << 16 |
    minor), e.g. 10.0.17763.0 and 6.1.7601.65536 in published fact dumps; os_name is the caption trimmed."""
    win10 = distribution_facts(
        {"Caption": "Microsoft Windows 10 Education", "Version": "10.0.19045", "ProductType": 1,
         "ServicePackMajorVersion": 0, "ServicePackMinorVersion": 0}
    )  # fmt: skip
    assert win10["ansible_distribution_version"] == "10.0.19045.0" == win10["ansible_kernel"]
    assert win10["ansible_distribution_major_version"] == "10"
    assert win10["ansible_os_product_type"] == "workstation"
    win7 = distribution_facts(
        {"Caption": "Microsoft Windows 7 Professional ", "Version": "6.1.7601", "ProductType": "1",
         "ServicePackMajorVersion": "1", "ServicePackMinorVersion": "0"}
    )  # fmt: skip
    assert win7["ansible_distribution_version"] == "6.1.7601.65536"
    assert win7["ansible_distribution_major_version"] == "6"
    assert win7["ansible_os_name"] == "Microsoft Windows 7 Professional"
    assert win7["ansible_distribution"] == "Microsoft Windows 7 Professional "
    server = distribution_facts({"Caption": "Microsoft Windows Server 2019 Standard", "Version": "10.0.17763",
                                 "ProductType": 3})  # fmt: skip
    assert server["ansible_os_product_type"] == "server" and server["ansible_distribution_version"] == "10.0.17763.0"
