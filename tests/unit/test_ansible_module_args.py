"""Argument checks of the Ansible-compatible Windows modules, before any PC is contacted: Ansible's names,
aliases and choices are accepted; what kmsfleet does not implement is refused with the reason."""

from __future__ import annotations

import pytest

from orchestrator.modules.base import REGISTRY, TaskFailed
from orchestrator.modules.win_registry import normalise_data


def _problems(module: str, args: dict[str, object]) -> list[str]:
    cls = REGISTRY.get(module)
    assert cls is not None, module
    return cls.check_args(args)


@pytest.mark.parametrize(
    ("module", "args"),
    [
        ("win_service", {"name": "Spooler", "state": "stopped", "start_mode": "delayed"}),
        ("win_service_info", {"name": "MSSQL*"}),
        ("win_reg_stat", {"key": "HKLM:\\SOFTWARE", "entry": "x"}),
        ("win_regedit", {"path": "HKLM:\\SOFTWARE\\S", "name": "n", "data": "0x10", "datatype": "dword"}),
        ("win_stat", {"dest": "C:\\x.txt"}),
        ("win_file", {"name": "C:\\x", "state": "directory"}),
        ("win_copy", {"content": "x", "dest": "C:\\x.txt"}),
        ("win_template", {"src": "a.j2", "dest": "C:\\a.ini"}),
        ("win_timezone", {"timezone": "Taipei Standard Time"}),
        ("win_reboot", {"reboot_timeout_sec": 300, "test_command": "whoami"}),
        ("win_feature", {"name": ["FS-FileServer"], "state": "present"}),
        ("win_powershell", {"script": "Write-Output 1", "parameters": {"a": 1}}),
        ("raw", {"free_form": "hostname"}),
    ],
)
def test_ansible_arguments_accepted(module: str, args: dict[str, object]) -> None:
    assert _problems(module, args) == []


@pytest.mark.parametrize(
    ("module", "args", "needle"),
    [
        ("win_service", {"name": "x", "path": "C:\\x.exe", "username": "u"}, "path, username not supported"),
        ("win_service", {"name": "x", "state": "paused"}, "paused"),
        ("win_service", {"name": "x", "start_mode": "sometimes"}, "start_mode"),
        ("win_regedit", {"path": "HKLM:\\S", "hive": "C:\\h.dat"}, "hive"),
        ("win_copy", {"src": "a", "content": "b", "dest": "C:\\a"}, "exactly one"),
        ("win_copy", {"src": "a", "dest": "C:\\a", "remote_src": True}, "remote_src"),
        ("win_stat", {"path": "C:\\a", "checksum_algorithm": "md5"}, "sha1"),
        ("win_reboot", {"boot_time_command": "x"}, "boot_time_command"),
        ("win_updates", {"category_names": ["SecurityUpdates"]}, "not supported by kmsfleet"),
        ("win_auto_logon", {"username": "u"}, "credentials"),
        ("win_region", {"location": "244"}, "not supported by kmsfleet"),
    ],
)
def test_unsupported_refused_with_reason(module: str, args: dict[str, object], needle: str) -> None:
    problems = _problems(module, args)
    assert problems and needle in " ".join(problems), problems


def test_regedit_data_conversions_follow_ansible() -> None:
    assert normalise_data("dword", "0x258") == 600
    assert normalise_data("qword", 5) == 5
    assert normalise_data("binary", "hex:be,ef") == [0xBE, 0xEF]
    assert normalise_data("binary", ["0x01", 2]) == [1, 2]
    assert normalise_data("multistring", "a") == ["a"]
    assert normalise_data("string", None) == ""
    with pytest.raises(TaskFailed):
        normalise_data("dword", 2**32)
    with pytest.raises(TaskFailed):
        normalise_data("dword", "ten")
