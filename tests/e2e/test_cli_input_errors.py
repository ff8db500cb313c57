"""User mistakes at the command line get a clear message and exit 4 before any PC is contacted: never an
"internal error" (exit 250) or a traceback, and never a finished run whose report is then lost.

The PCs of these inventories sit on a claimed loopback block where nothing listens: had a run started, they
would end unreachable (exit 3) instead of the expected exit 4.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from labkit import run_cli

from orchestrator.lab.addresses import Claim

PLAYBOOK = "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: msg=hi\n"


@pytest.fixture
def files(lab_block: Claim, tmp_path: Path) -> tuple[Path, Path]:
    playbook = tmp_path / "pb.yml"
    playbook.write_text(PLAYBOOK)
    inventory = tmp_path / "inv.yml"
    inventory.write_text(
        "all:\n  vars:\n    ansible_port: 5985\n    ansible_user: administrator\n    ansible_password: x\n"
        f"    wol_broadcast: {lab_block.prefix}.0.255\n"  # should a wake ever get through: loopback only
        f"  hosts:\n    pc01:\n      ansible_host: {lab_block.prefix}.1.1\n"
    )
    return playbook, inventory


def _refused(proc: object, *needles: str) -> None:
    out, err, code = proc.stdout, proc.stderr, proc.returncode  # type: ignore[attr-defined]
    assert code == 4, (code, out, err)
    assert "Traceback" not in out + err and "internal error" not in err
    assert "PLAY" not in out  # refused before the run
    for needle in needles:
        assert needle in err, (needle, err)


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ('school="Main Street', "unbalanced quote"),
        ("kms={{ host", "unclosed template"),
        ("@", "give the name of a YAML file"),
    ],
)
def test_bad_extra_vars_exit_4(files: tuple[Path, Path], tmp_path: Path, value: str, needle: str) -> None:
    playbook, inventory = files
    proc = run_cli("run", str(playbook), "-i", str(inventory), "-e", value, "--db", str(tmp_path / "h.db"))
    _refused(proc, f"-e {value!r}" if value != "@" else "-e @", needle)


@pytest.mark.parametrize("command", ["run", "ping"])
def test_unknown_language_exit_4(files: tuple[Path, Path], tmp_path: Path, command: str) -> None:
    playbook, inventory = files
    args = [str(playbook)] if command == "run" else []
    proc = run_cli(command, *args, "-i", str(inventory), "--lang", "fr", "--db", str(tmp_path / "h.db"))
    _refused(proc, "unsupported language 'fr'", "--lang zh-TW")
    proc = run_cli(command, *args, "-i", str(inventory), "--db", str(tmp_path / "h.db"), env={"KMSFLEET_LANG": "de"})
    _refused(proc, "unsupported language 'de'")


def test_report_path_that_cannot_be_written_is_refused_before_the_run(files: tuple[Path, Path], tmp_path: Path) -> None:
    playbook, inventory = files
    folder = tmp_path / "out.json"
    folder.mkdir()
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("x")
    db = str(tmp_path / "h.db")
    proc = run_cli("run", str(playbook), "-i", str(inventory), "--report", str(folder), "--db", db)
    _refused(proc, "--report: this is a folder")
    proc = run_cli("run", str(playbook), "-i", str(inventory), "--report", str(not_a_folder / "r.html"), "--db", db)
    _refused(proc, "notes.txt is a file, not a folder")
    assert not_a_folder.read_text() == "x"
    proc = run_cli("run", str(playbook), "-i", str(inventory), "--report", "/proc/kmsfleet-report.json", "--db", db)
    _refused(proc, "--report: cannot write in folder /proc")  # /proc takes no new files, even from root
    proc = run_cli("report", "last", "--output", str(folder), "--db", db)
    _refused(proc, "--output: this is a folder")


def test_empty_inventory_is_an_error_not_all_zero_pcs_fine(files: tuple[Path, Path], tmp_path: Path) -> None:
    playbook, _ = files
    db = str(tmp_path / "h.db")
    for name, text in (("empty.yml", ""), ("nohosts.yml", "all:\n  hosts:\n"), ("room.ini", "[room101]\n")):
        inventory = tmp_path / name
        inventory.write_text(text)
        proc = run_cli("run", str(playbook), "-i", str(inventory), "--db", db)
        _refused(proc, "the inventory lists no PCs", name)
    proc = run_cli("audit", "-i", str(inventory), "--db", db, "--lang", "zh-TW")
    _refused(proc, "the inventory lists no PCs")


@pytest.mark.parametrize("group", ["schedule", "lab"])
def test_command_group_help_teaches_with_examples(group: str) -> None:
    proc = run_cli(group, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Examples" in proc.stdout and f"kmsfleet {group} " in proc.stdout


def test_lab_inventory_path_that_cannot_be_written_is_named_as_such() -> None:
    proc = run_cli("lab", "serve", "--hosts", "1", "-o", "/proc/kmsfleet-lab.yml", timeout=60)
    _refused(proc, "--inventory-out: cannot write in folder /proc")
    assert "could not listen" not in proc.stderr


@pytest.mark.parametrize("typed", ["", "\n"])
def test_ask_pass_with_nothing_typed_signs_in_nowhere(files: tuple[Path, Path], tmp_path: Path, typed: str) -> None:
    playbook, inventory = files
    proc = run_cli("run", str(playbook), "-i", str(inventory), "-k", "--db", str(tmp_path / "h.db"), stdin=typed)
    _refused(proc, "--ask-pass: no password was given")


@pytest.mark.parametrize("limit", ["", ",", " , "])
@pytest.mark.parametrize("command", ["run", "wake"])
def test_a_limit_that_names_nothing_is_not_every_pc(
    files: tuple[Path, Path], tmp_path: Path, limit: str, command: str
) -> None:
    """`--limit "$PCS"` with PCS unset must not activate the whole school."""
    playbook, inventory = files
    args = [str(playbook)] if command == "run" else ["--wait", "1s"]
    proc = run_cli(command, *args, "-i", str(inventory), "--limit", limit, "--db", str(tmp_path / "h.db"))
    _refused(proc, f"--limit {limit!r} names no PC")
    assert "Already on" not in proc.stdout and "Waking" not in proc.stdout


@pytest.mark.parametrize("command", [["run"], ["audit"], ["schedule", "add"], ["lab", "serve"]])
def test_help_shows_no_value_for_flags_and_one_value_type_for_repeatable_options(command: list[str]) -> None:
    proc = run_cli(*command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "<bool>" not in proc.stdout and "<list[" not in proc.stdout
    assert "--help" in proc.stdout
