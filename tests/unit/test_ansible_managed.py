"""``ansible_managed`` in win_template from ansible.cfg's ``[defaults] ansible_managed``, as ansible-core makes it
(``{host}``/``{uid}``/``{file}`` become templates, ``strftime`` codes take the template's modification time); the
file is found by the CLI's rules (``ANSIBLE_CONFIG`` first, a world-writable current folder ignored); a value the
play sets wins, as ansible.windows' win_template keeps it."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import pytest
from test_win_template_role import _ctx as template_ctx

from orchestrator.ansiblecfg import load_config
from orchestrator.modules.base import TaskFailed
from orchestrator.modules.win_files import managed_text, render_template

MTIME = time.mktime((2026, 3, 4, 5, 6, 7, 0, 0, -1))


def _template(tmp_path: Path) -> Path:
    src = tmp_path / "school.ini.j2"
    src.write_text("; {{ ansible_managed }}\nroom={{ room }}\n")
    os.utime(src, (MTIME, MTIME))
    return src


def test_ansible_cfg_text_with_placeholders_and_date(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "site.cfg"
    cfg.write_text(
        "[defaults]\n# a comment line\nansible_managed = # Managed: {file} on {host} %Y-%m-%d ; an inline comment\n"
    )
    monkeypatch.setenv("ANSIBLE_CONFIG", str(cfg))
    src = _template(tmp_path)
    text = render_template(template_ctx(tmp_path, room="101"), "school.ini.j2", src, r"C:\School\school.ini")
    assert text == f"; # Managed: school.ini.j2 on {platform.node()} 2026-03-04\nroom=101\n"


def test_default_and_a_play_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANSIBLE_CONFIG", str(tmp_path / "none.cfg"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    src = _template(tmp_path)
    default = render_template(template_ctx(tmp_path, room="1"), "school.ini.j2", src, "C:\\x")
    assert default.splitlines()[0] in ("; Ansible managed", "; " + load_config().ansible_managed)
    played = template_ctx(tmp_path, room="1", ansible_managed="kept by the play")
    mine = render_template(played, "school.ini.j2", src, "C:\\x")
    assert mine.splitlines()[0] == "; kept by the play"


def test_world_writable_folder_is_not_a_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "ansible.cfg").write_text("[defaults]\nansible_managed = planted\n")
    monkeypatch.delenv("ANSIBLE_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    shared.chmod(0o777)
    assert load_config({"HOME": str(tmp_path)}, shared).ansible_managed != "planted"
    shared.chmod(0o755)
    assert load_config({"HOME": str(tmp_path)}, shared).ansible_managed == "planted"


def test_bad_braces_are_a_clear_failure() -> None:
    with pytest.raises(TaskFailed, match=r"only \{host\}, \{uid\} and \{file\} may appear in braces"):
        managed_text("Managed by {owner}", MTIME)
    assert managed_text("{uid}", MTIME) == "{{ template_uid }}"
