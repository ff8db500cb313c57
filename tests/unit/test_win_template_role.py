"""win_template and win_copy as Ansible runs them inside a role: ``src`` is looked up in the role's templates/
(files/) folder first, and a template sees the variables Ansible's template action adds (``ansible_managed``,
``template_path`` …). Checked against ansible-core 2.19 (``lookup('template', …)`` renders ``ansible_managed`` as
"Ansible managed")."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from orchestrator.modules.base import ModuleContext, TaskFailed
from orchestrator.modules.win_files import _local_file, controller_candidates, render_template
from orchestrator.templating import Templar


def _ctx(base: Path, **hostvars: Any) -> ModuleContext:
    def no_connection() -> Any:
        raise AssertionError("no connection expected")

    def render_with(value: Any, extra: dict[str, Any]) -> Any:
        return Templar({**hostvars, **extra}).render(value)

    return ModuleContext(
        host="pc01",
        hostvars=hostvars,
        check_mode=False,
        diff=False,
        connect=no_connection,
        cancel=threading.Event(),
        base_dir=str(base),
        render=Templar(hostvars).render,
        render_with=render_with,
    )


def test_role_templates_folder_is_searched_first(tmp_path: Path) -> None:
    role = tmp_path / "roles" / "baseline"
    (role / "templates").mkdir(parents=True)
    (role / "templates" / "school.ini.j2").write_text("role\n")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "school.ini.j2").write_text("playbook\n")
    (tmp_path / "only_here.j2").write_text("beside\n")
    ctx = _ctx(tmp_path, role_path=str(role))
    assert _local_file(ctx, "school.ini.j2", "templates") == role / "templates" / "school.ini.j2"
    assert _local_file(ctx, "only_here.j2", "templates") == tmp_path / "only_here.j2"  # then the playbook's
    assert _local_file(_ctx(tmp_path), "school.ini.j2", "templates") == tmp_path / "templates" / "school.ini.j2"
    with pytest.raises(TaskFailed, match=r"could not find src 'missing\.j2'"):
        _local_file(ctx, "missing.j2", "templates")


def test_template_sees_ansible_managed_and_template_path(tmp_path: Path) -> None:
    src = tmp_path / "m.j2"
    src.write_text("# {{ ansible_managed }}\n{{ template_path | basename }} -> {{ template_destpath }} {{ room }}\n")
    ctx = _ctx(tmp_path, room="101")
    assert render_template(ctx, "m.j2", src, r"C:\ProgramData\School\m.ini") == (
        "# Ansible managed\nm.j2 -> C:\\ProgramData\\School\\m.ini 101\n"
    )


def test_script_and_copy_sources_use_the_same_search(tmp_path: Path) -> None:
    role = tmp_path / "roles" / "r"
    (role / "files").mkdir(parents=True)
    (role / "files" / "check.ps1").write_text("Write-Output ok\n")
    ctx = _ctx(tmp_path, role_path=str(role))
    assert controller_candidates(ctx, "check.ps1", "files")[0] == role / "files" / "check.ps1"
    assert _local_file(ctx, "check.ps1", "files") == role / "files" / "check.ps1"
