"""Secrets never leak: the real CLI at -vvv with a known password from every source (inventory variable,
KMSFLEET_PASSWORD, --ask-pass on stdin, a lookup('env') in the inventory), through success, refused sign-ins (PCs
whose password differs), faults (HTTP 500s, dropped connections), a module forced to crash (``win_ping:
data=crash``), a playbook that tries to show the password (debug var=, msg=, fail, set_fact, a command line), and
an internal error (a report path that is a directory: the crash file). Then stdout, stderr, every report format
(--report json/csv/xml/html and ``kmsfleet report``/``show``/``history``), the SQLite files (db, -wal, -shm) and
crash files are searched for the password and its base64 / UTF-16-LE / base64-of-UTF-16 forms: 0 hits.

Also: Jinja2 sandbox escapes in a playbook or an inventory are refused with exit 4 and nothing is executed
(no file created on the controller, no WS-Management request reaches a PC)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from labkit import room_spec, run_cli, start_lab

from orchestrator.lab.addresses import Claim, claim_prefix
from orchestrator.lab.control_client import LabControl
from orchestrator.lab.runner import LabThread

SECRET = "Zq7-Secr3t-Horse!"
OTHER = "Other-Room-Pw-42"
PLAYBOOK = """\
- name: try to leak
  hosts: all
  gather_facts: false
  tasks:
    - name: ping
      win_ping:
    - name: forced module crash
      win_ping: data=crash
      ignore_errors: true
    - name: show the password variable
      debug: var=ansible_password
    - name: show it in a message
      debug:
        msg: "pw is {{ ansible_password | default('unset') }}"
    - name: copy it into a fact
      set_fact:
        copied: "{{ ansible_password | default('unset') }}"
    - name: put it on a command line
      win_command: "cmd /c echo {{ copied }}"
      ignore_errors: true
    - name: fail with it
      fail:
        msg: "failing with {{ copied }}"
      ignore_errors: true
    - name: quietly
      debug: var=copied
      no_log: true
"""


def _b64_cores(data: bytes) -> list[bytes]:
    """The base64 text of ``data`` at each of the 3 byte alignments it can have inside a longer encoded string
    (e.g. a password inside a base64 PowerShell -EncodedCommand): the characters that do not depend on the
    neighbouring bytes."""
    cores = []
    for k in range(3):
        encoded = base64.b64encode(b"\0" * k + data)
        start = (k * 4 + 2) // 3  # characters touched by the k leading bytes
        end = len(encoded) - (4 if (k + len(data)) % 3 else 0)  # the last group mixes with what follows
        cores.append(encoded[start:end])
    return cores


def _forms(secret: str) -> dict[str, bytes]:
    raw = secret.encode()
    utf16 = secret.encode("utf-16-le")
    forms = {"plain": raw, "utf-16-le": utf16, "hex": raw.hex().encode()}
    for k, core in enumerate(_b64_cores(raw)):
        forms[f"base64@{k}"] = core
    for k, core in enumerate(_b64_cores(utf16)):
        forms[f"base64(utf-16-le)@{k}"] = core
    return forms


FORMS = _forms(SECRET)


def _hits(data: bytes, where: str) -> list[str]:
    return [f"{where}: {name}" for name, form in FORMS.items() if form in data]


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[LabThread, Claim]]:
    claim = claim_prefix()
    spec = {
        "rooms": [
            room_spec(
                claim,
                [
                    {"name": "pc[01:04]"},
                    {"name": "pc05", "faults": {"http500": 0.4}},
                    {"name": "pc06", "faults": {"drop": 0.3}},
                ],
                password=SECRET,
            ),
            room_spec(claim, [{"name": "pc[07:08]"}], room="room102", room_index=2, password=OTHER),
        ],
        "seed": 3,
    }
    running = start_lab(spec)
    try:
        yield running, claim
    finally:
        running.stop()
        claim.release()


def _inventory(lab: LabThread, path: Path, password: Any) -> Path:
    """The lab's inventory with every PC's password replaced by ``password`` (None: no password at all)."""
    data = yaml.safe_load(lab.inventory_path.read_text(encoding="utf-8"))
    for group in data["all"]["children"].values():
        for host in group["hosts"].values():
            host.pop("ansible_password", None)
            if password is not None:
                host["ansible_password"] = password
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _scan_outputs(tmp: Path, outputs: list[tuple[str, str]], skip: set[Path]) -> list[str]:
    hits: list[str] = []
    for where, text in outputs:
        hits += _hits(text.encode("utf-8", "surrogateescape"), where)
    for file in sorted(tmp.rglob("*")):
        if file.is_file() and file not in skip:
            hits += _hits(file.read_bytes(), str(file.relative_to(tmp)))
    return hits


SOURCES = ["inventory", "environment", "ask-pass", "lookup-env"]


@pytest.mark.parametrize("source", SOURCES)
def test_password_never_leaks(lab: tuple[LabThread, Claim], tmp_path: Path, source: str) -> None:
    running, _ = lab
    env = {"TMPDIR": str(tmp_path), "KMSFLEET_DB": str(tmp_path / "history.db")}
    stdin = None
    args: list[str] = []
    if source == "inventory":
        inv = _inventory(running, tmp_path / "inventory.yml", SECRET)
    elif source == "environment":
        inv = _inventory(running, tmp_path / "inventory.yml", None)
        env["KMSFLEET_PASSWORD"] = SECRET
    elif source == "ask-pass":
        inv = _inventory(running, tmp_path / "inventory.yml", None)
        args.append("--ask-pass")
        stdin = SECRET + "\n"
    else:
        inv = _inventory(running, tmp_path / "inventory.yml", "{{ lookup('env', 'LAB_SECRET') }}")
        env["LAB_SECRET"] = SECRET
    playbook = tmp_path / "leak.yml"
    playbook.write_text(PLAYBOOK, encoding="utf-8")
    reports = [tmp_path / f"out.{ext}" for ext in ("json", "csv", "xml", "html")]
    db = tmp_path / "history.db"
    outputs: list[tuple[str, str]] = []

    run = run_cli(
        "run",
        str(playbook),
        "-i",
        str(inv),
        "-vvv",
        "--db",
        str(db),
        "--forks",
        "8",
        *[a for r in reports for a in ("--report", str(r))],
        *args,
        env=env,
        stdin=stdin,
        timeout=240,
    )
    outputs += [("run stdout", run.stdout), ("run stderr", run.stderr)]
    # pc07/pc08 refuse the password: auth_refused (5) unless a task failed somewhere (2)
    assert run.returncode in (2, 5), run.stdout[-3000:] + run.stderr[-2000:]
    for r in reports:
        assert r.exists() and r.stat().st_size > 0, r
    report = yaml.safe_load(reports[0].read_text(encoding="utf-8"))
    statuses = {h["host"]: h["status"] for h in report["hosts"]}
    assert statuses["pc07"] == statuses["pc08"] == "auth_refused"
    assert statuses["pc01"] in ("ok", "changed", "failed")

    # the stored run, in every format the history offers
    for fmt in ("json", "csv", "junit", "html"):
        rep = run_cli("report", "last", "--format", fmt, "--db", str(db), env=env)
        assert rep.returncode == 0, rep.stderr
        outputs.append((f"report {fmt}", rep.stdout + rep.stderr))
    for extra in (["show", "last", "--json"], ["show", "last", "--host", "pc01"], ["history", "--json"]):
        shown = run_cli(*extra, "--db", str(db), env=env)
        assert shown.returncode == 0, shown.stderr
        outputs.append((" ".join(extra), shown.stdout + shown.stderr))

    # an internal error: the report path is a directory -> exit 250 and a crash file in TMPDIR
    trap = tmp_path / "trap.json"
    trap.mkdir()
    crash = run_cli(
        "run",
        str(playbook),
        "-i",
        str(inv),
        "-vvv",
        "--limit",
        "pc01,pc07",
        "--db",
        str(db),
        "--report",
        str(trap),
        *args,
        env={**env, "KMSFLEET_DEBUG": "1"},
        stdin=stdin,
        timeout=240,
    )
    outputs += [("crash stdout", crash.stdout), ("crash stderr", crash.stderr)]
    assert crash.returncode in (4, 250), crash.stdout[-2000:] + crash.stderr[-2000:]

    skip = {tmp_path / "inventory.yml"} if source == "inventory" else set()
    hits = _scan_outputs(tmp_path, outputs, skip)
    assert hits == [], hits
    # the scan saw what it had to see
    assert db.exists()
    assert any(p.name.startswith("kmsfleet-crash-") for p in tmp_path.iterdir()) or crash.returncode == 4


def test_scanner_finds_every_form(tmp_path: Path) -> None:
    """The search itself works: the password planted in every encoding, inside other text, is found."""
    planted = {
        "plain.txt": b"x " + SECRET.encode() + b" y",
        "utf16.bin": ("pw=" + SECRET + ";").encode("utf-16-le"),
        "hex.txt": SECRET.encode().hex().encode(),
    }
    for prefix in ("", "a", "ab"):
        planted[f"b64-{len(prefix)}.txt"] = base64.b64encode(f"{prefix}{SECRET} tail".encode())
        planted[f"b64u16-{len(prefix)}.txt"] = base64.b64encode(f"{prefix}{SECRET}!".encode("utf-16-le"))
        planted[f"basic-{len(prefix)}.txt"] = b"Authorization: Basic " + base64.b64encode(
            f"{prefix}administrator:{SECRET}".encode()
        )
    for name, data in planted.items():
        (tmp_path / name).write_bytes(data)
    hits = _scan_outputs(tmp_path, [("stdout", f"[{SECRET}]")], set())
    found = {h.split(":")[0] for h in hits}
    assert found == {"stdout", *planted}, sorted(set(planted) - found)


ESCAPE_PLAYBOOKS = {
    "mro": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "cycler": "{{ cycler.__init__.__globals__.os.system('touch MARKER') }}",
    "lipsum": "{{ lipsum.__globals__['os'].popen('touch MARKER').read() }}",
}


@pytest.mark.parametrize("name", sorted(ESCAPE_PLAYBOOKS))
def test_sandbox_escape_in_playbook_is_refused(lab: tuple[LabThread, Claim], tmp_path: Path, name: str) -> None:
    running, _ = lab
    control = LabControl(running.control_url)
    playbook = tmp_path / "escape.yml"
    playbook.write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - win_ping:\n"
        f'    - win_command: "cmd /c echo {ESCAPE_PLAYBOOKS[name]}"\n',
        encoding="utf-8",
    )
    inv = _inventory(running, tmp_path / "inventory.yml", SECRET)
    before = control.stats()["soap_requests"]
    proc = run_cli("run", str(playbook), "-i", str(inv), "--db", str(tmp_path / "h.db"), cwd=tmp_path)
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "sandbox" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "MARKER").exists()
    assert control.stats()["soap_requests"] == before  # not even the harmless first task ran


@pytest.mark.parametrize("var", ["kms_host", "ansible_host"])
def test_sandbox_escape_in_inventory_is_refused(lab: tuple[LabThread, Claim], tmp_path: Path, var: str) -> None:
    running, _ = lab
    control = LabControl(running.control_url)
    data = yaml.safe_load(_inventory(running, tmp_path / "inventory.yml", SECRET).read_text(encoding="utf-8"))
    data["all"]["children"]["room101"]["hosts"]["pc01"][var] = "{{ lipsum.__globals__.os.system('touch MARKER') }}"
    inv = tmp_path / "inventory.yml"
    inv.write_text(yaml.safe_dump(data), encoding="utf-8")
    playbook = tmp_path / "ping.yml"
    playbook.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - win_ping:\n", encoding="utf-8")
    before = control.stats()["soap_requests"]
    proc = run_cli("run", str(playbook), "-i", str(inv), "--db", str(tmp_path / "h.db"), cwd=tmp_path)
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "sandbox" in proc.stderr and var in proc.stderr
    assert not (tmp_path / "MARKER").exists()
    assert control.stats()["soap_requests"] == before


# ------------------------------------------------------------------ escaped, encoded and derived renderings

HARD = "Q'uo\"te\\back-Pässwörd-密碼"
DERIVED_PLAYBOOK = """\
- name: show everything
  hosts: all
  gather_facts: false
  tasks:
    - win_ping:
    - name: every host variable, as Python repr
      debug: var=hostvars[inventory_hostname]
    - name: the indirect variable
      debug: var=winrm_pw
    - name: derived facts
      set_fact:
        shouted: "{{ ansible_password | upper }}"
        packed: "{{ ansible_password | b64encode }}"
        backwards: "{{ ansible_password[::-1] }}"
        wrapped: "{{ {'pw': ansible_password} | to_json }}"
    - name: a registered copy
      debug:
        msg: "{{ ansible_password }}"
      register: echoed
    - debug: var=echoed
    - debug: var=shouted
    - debug: var=packed
    - debug:
        msg: "{{ backwards }} {{ wrapped }} {{ hostvars[inventory_hostname] | to_json }}"
    - debug:
        msg: "{{ ansible_password | urlencode }} {{ ansible_password | to_json }} {{ ansible_password | b64encode }}"
"""


def _independent_forms(secret: str) -> dict[str, bytes]:
    """The renderings a formatter can give ``secret``, computed here without kmsfleet's code."""
    import json
    import urllib.parse

    raw = secret.encode()
    utf16 = secret.encode("utf-16-le")
    forms = {
        "plain": raw,
        "repr": repr(secret)[1:-1].encode(),
        "repr-quoted": repr(secret + "'\"")[1:-4].encode(),
        "ascii": ascii(secret)[1:-1].encode(),
        "json": json.dumps(secret)[1:-1].encode(),
        "json-utf8": json.dumps(secret, ensure_ascii=False)[1:-1].encode(),
        "json-of-repr": json.dumps(repr(secret)[1:-1])[1:-1].encode(),
        "url": urllib.parse.quote(secret, safe="").encode(),
        "url-plus": urllib.parse.quote_plus(secret).encode(),
        "hex": raw.hex().encode(),
        "utf-16-le": utf16,
        "utf-16-le-hex": utf16.hex().encode(),
    }
    for k, core in enumerate(_b64_cores(raw)):
        forms[f"base64@{k}"] = core
    for k, core in enumerate(_b64_cores(utf16)):
        forms[f"base64(utf-16-le)@{k}"] = core
    return forms


HARD_FORMS = {
    **{f"secret {k}": v for k, v in _independent_forms(HARD).items()},
    **{f"upper {k}": v for k, v in _independent_forms(HARD.upper()).items() if k in ("plain", "repr", "json")},
    **{f"reversed {k}": v for k, v in _independent_forms(HARD[::-1]).items() if k in ("plain", "repr", "json")},
    "b64 fact": base64.b64encode(HARD.encode()),
}


def test_escaped_and_derived_renderings_never_leak(tmp_path: Path) -> None:
    """A password with quotes, a backslash and non-ASCII, behind an indirect variable: shown through
    ``debug var=hostvars[...]`` (Python repr), set_fact-derived (upper, base64, reversed, inside JSON), a
    registered copy, to_json/urlencode: 0 hits in stdout/stderr, every report format, the database files, in any
    of the forms above. Reports and the database are created 0600."""
    claim = claim_prefix()
    lab = start_lab({"rooms": [room_spec(claim, [{"name": "pc[01:02]"}], password=HARD)], "seed": 5})
    try:
        data = yaml.safe_load(lab.inventory_path.read_text(encoding="utf-8"))
        for group in data["all"]["children"].values():
            for host in group["hosts"].values():
                host.pop("ansible_password", None)
        data["all"].setdefault("vars", {})["ansible_password"] = "{{ winrm_pw }}"
        env = {"TMPDIR": str(tmp_path), "KMSFLEET_DB": str(tmp_path / "history.db"), "WINRM_PW": HARD}
        data["all"]["vars"]["winrm_pw"] = "{{ lookup('env', 'WINRM_PW') }}"
        inv = tmp_path / "inventory.yml"
        inv.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        playbook = tmp_path / "show.yml"
        playbook.write_text(DERIVED_PLAYBOOK, encoding="utf-8")
        db = tmp_path / "history.db"
        reports = [tmp_path / f"out.{ext}" for ext in ("json", "csv", "xml", "html")]
        run = run_cli(
            "run", str(playbook), "-i", str(inv), "-vvv", "--db", str(db),
            *[a for r in reports for a in ("--report", str(r))], env=env, timeout=240,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
        assert "********" in run.stdout
        outputs = [("run stdout", run.stdout), ("run stderr", run.stderr)]
        for fmt in ("json", "csv", "junit", "html"):
            rep = run_cli("report", "last", "--format", fmt, "--db", str(db), env=env)
            assert rep.returncode == 0, rep.stderr
            outputs.append((f"report {fmt}", rep.stdout + rep.stderr))
        listed = run_cli("inventory", "-i", str(inv), "--list", env=env)
        outputs.append(("inventory --list", listed.stdout + listed.stderr))
        hits: list[str] = []
        for where, text in outputs:
            blob = text.encode("utf-8", "surrogateescape")
            hits += [f"{where}: {name}" for name, form in HARD_FORMS.items() if form in blob]
        for file in sorted(tmp_path.rglob("*")):
            if file.is_file() and file != inv:
                blob = file.read_bytes()
                hits += [f"{file.name}: {name}" for name, form in HARD_FORMS.items() if form in blob]
        assert hits == [], hits
        for path in [db, *reports]:
            assert path.stat().st_mode & 0o777 == 0o600, (path, oct(path.stat().st_mode))
    finally:
        lab.stop()
        claim.release()


def test_scanner_sees_escaped_forms() -> None:
    """The forms above do occur when the password is printed as Python or JSON would (the scan can fail)."""
    import json

    shown = repr({"ansible_password": HARD}) + json.dumps({"p": HARD}) + json.dumps(repr(HARD))
    found = {name for name, form in HARD_FORMS.items() if form in shown.encode()}
    assert {"secret repr-quoted", "secret json", "secret json-of-repr"} <= found


def test_extra_vars_connection_variables_win_over_the_inventory(lab: tuple[LabThread, Claim], tmp_path: Path) -> None:
    """Ansible precedence: ``-e ansible_password=…`` wins over the inventory's (a wrong one here) and works when
    the inventory has none; the value given with -e is masked like any other secret."""
    running, _ = lab
    playbook = tmp_path / "ping.yml"
    playbook.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - win_ping:\n", encoding="utf-8")
    for password in ("Wrong-Password-1", None):
        inv = _inventory(running, tmp_path / "inventory.yml", password)
        proc = run_cli(
            "run", str(playbook), "-i", str(inv), "--limit", "pc01", "--db", str(tmp_path / "h.db"),
            "-e", f"ansible_password={SECRET}", "-vvv", env={"KMSFLEET_PASSWORD": ""},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert _hits((proc.stdout + proc.stderr).encode(), "run") == []


def test_message_encryption_never_says_the_pc_requires_encryption(lab: tuple[LabThread, Claim], tmp_path: Path) -> None:
    running, _ = lab
    data = yaml.safe_load(_inventory(running, tmp_path / "inventory.yml", SECRET).read_text(encoding="utf-8"))
    data["all"].setdefault("vars", {})["ansible_winrm_message_encryption"] = "never"
    inv = tmp_path / "inventory.yml"
    inv.write_text(yaml.safe_dump(data), encoding="utf-8")
    playbook = tmp_path / "ping.yml"
    playbook.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - win_ping:\n", encoding="utf-8")
    report = tmp_path / "r.json"
    proc = run_cli(
        "run", str(playbook), "-i", str(inv), "--limit", "pc01", "--db", str(tmp_path / "h.db"), "-v",
        "--report", str(report),
    )  # fmt: skip
    assert proc.returncode == 5, proc.stdout[-2000:] + proc.stderr[-2000:]
    host = yaml.safe_load(report.read_text(encoding="utf-8"))["hosts"][0]
    assert "requires message encryption" in host["msg"] + json.dumps(host["tasks"]), host
