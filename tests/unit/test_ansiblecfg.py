"""ansible.cfg lookup order and the keys kmsfleet uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.ansiblecfg import config_candidates, load_config
from orchestrator.errors import InputError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_order_env_then_cwd_then_home_then_etc(tmp_path: Path) -> None:
    env = {"ANSIBLE_CONFIG": str(tmp_path / "given.cfg")}
    found = config_candidates(env, tmp_path / "cwd")
    assert found[:2] == [tmp_path / "given.cfg", tmp_path / "cwd" / "ansible.cfg"]
    assert found[2] == Path("~/.ansible.cfg").expanduser()
    assert found[3] == Path("/etc/ansible/ansible.cfg")


def test_ansible_config_may_name_a_directory(tmp_path: Path) -> None:
    write(tmp_path / "conf" / "ansible.cfg", "[defaults]\nforks = 7\n")
    assert config_candidates({"ANSIBLE_CONFIG": str(tmp_path / "conf")}, tmp_path)[0] == tmp_path / "conf/ansible.cfg"


def test_first_found_wins(tmp_path: Path) -> None:
    write(tmp_path / "cwd" / "ansible.cfg", "[defaults]\nforks = 3\n")
    write(tmp_path / "env.cfg", "[defaults]\nforks = 9\n")
    assert load_config({"ANSIBLE_CONFIG": str(tmp_path / "env.cfg")}, tmp_path / "cwd").forks == 9
    assert load_config({}, tmp_path / "cwd").forks == 3
    # a missing ANSIBLE_CONFIG file falls through to the next place, as in Ansible
    assert load_config({"ANSIBLE_CONFIG": str(tmp_path / "nope.cfg")}, tmp_path / "cwd").forks == 3


def test_used_keys_relative_paths_and_notes(tmp_path: Path) -> None:
    write(
        tmp_path / "ansible.cfg",
        "[defaults]\ninventory = hosts.yml\nroles_path = roles:/opt/roles\nremote_user = labadmin\n"
        "timeout = 25\nhost_key_checking = False\nvault_password_file = ~/.vault_pass\n"
        "callbacks_enabled = timer ; comment\n\n[privilege_escalation]\nbecome = True\n",
    )
    cfg = load_config({}, tmp_path)
    assert cfg.inventory == (str(tmp_path / "hosts.yml"),)
    assert cfg.roles_path == (tmp_path / "roles", Path("/opt/roles"))
    assert (cfg.remote_user, cfg.timeout) == ("labadmin", 25.0)
    assert cfg.vault_password_file == Path("~/.vault_pass").expanduser()
    assert len(cfg.notes) == 2  # host_key_checking is silent; callbacks_enabled and the section are noted
    assert any("callbacks_enabled" in n for n in cfg.notes)
    assert any("[privilege_escalation]" in n for n in cfg.notes)


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    write(tmp_path / "ansible.cfg", "[defaults]\nroles_path = a\nforks = 2\n")
    cfg = load_config({"ANSIBLE_ROLES_PATH": "/x:/y", "ANSIBLE_FORKS": "12"}, tmp_path)
    assert cfg.roles_path == (Path("/x"), Path("/y"))
    assert cfg.forks == 12


def test_no_file_gives_empty_settings(tmp_path: Path) -> None:
    cfg = load_config({"HOME": str(tmp_path)}, tmp_path)
    assert cfg.inventory == () and cfg.forks is None


@pytest.mark.parametrize("text", ["[defaults]\nforks = many\n", "not a section\n"])
def test_bad_files_are_input_errors(tmp_path: Path, text: str) -> None:
    write(tmp_path / "ansible.cfg", text)
    with pytest.raises(InputError):
        load_config({}, tmp_path)
