"""Fuzzing kmsfleet's inputs with hypothesis: inventories, playbooks, lab specs, CLI arguments and hostile
WS-Management answers from a hostile server on loopback.

    .venv/bin/python benchmarks/fuzz.py --cases 10000     # the issue's size (a few minutes)
    .venv/bin/python benchmarks/fuzz.py --quick           # 300 cases (what CI runs)

Targets (cases split by ``--cases``: 30 % inventories, 30 % playbooks, 15 % lab specs, 5 % CLI, 20 % WS-Man):
- inventories: YAML and INI text built from inventory-like pieces (groups, children, host ranges such as
  ``pc[01:40]`` and broken ones, variables, Jinja, odd scalars, unicode, YAML tags and anchors), loaded with
  ``load_inventory`` and then exercised (``select`` with fuzzed limit patterns, ``host_vars`` of every host).
- playbooks: plays and tasks with real and misspelt module names, fuzzed arguments and keywords, blocks, loops,
  ``when``/``until`` expressions, loaded and validated with ``api.load_plan``.
- lab specs: ``lab.spec.load_spec_text`` + ``resolve``.
- CLI: ``kmsfleet`` in process (typer's CliRunner) with fuzzed arguments for run (a debug-only playbook: no PC is
  contacted), inventory, explain, history, and ``ping``/``audit`` against loopback addresses where nothing listens.
- WS-Man: a tiny raw-socket HTTP server on a claimed loopback block answers every request with a hostile reply
  (malformed and truncated XML, entity-expansion bombs and external entities, 17 MB bodies, lying
  Content-Length, wrong RelatesTo, truncated ``multipart/encrypted``, faults with garbage codes, 401s with garbage
  challenges, never-ending enumerations and commands, slow drips past the read timeout, dropped connections),
  mutated from real Windows answers (``tests/data/shared/wsman/samples`` shapes). The client is the real transport:
  ``orchestrator.transport.winrm.WinRMConnection`` doing ``wql``, ``get_instance``, ``invoke``, ``run_command``.

Documented error types (not counted): ``orchestrator.errors.KmsfleetError`` (``InputError`` …) from loaders,
``orchestrator.transport.errors.TransportError`` from the transport, documented exit codes (0 2 3 4 5 99) and no
"Traceback" from the CLI. Anything else that escapes is a TRACEBACK (listed with its first frames). Every case runs
under a time limit (a worker thread joined with a timeout); one still running after it is a HANG.
The process refuses to connect anywhere but loopback (a socket guard), whatever a fuzzed input says.

Keys: cases, tracebacks (0), hangs (0); extras: per target counts and the first findings.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ipaddress
import os
import random
import re
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from benchmarks._common import BenchTimeout, emit_json, print_table, time_limit  # noqa: E402
from orchestrator.lab.addresses import Claim, claim_prefix  # noqa: E402

CASE_TIMEOUT = 20.0
CLI_CODES = {0, 2, 3, 4, 5, 99}


# ---------------------------------------------------------------------------------------------------- safety


def loopback_only_guard() -> None:
    """Refuse every connect() to a non-loopback address in this process (fuzzed inputs name arbitrary hosts)."""
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex

    def check(address: Any) -> None:
        if isinstance(address, tuple) and address:
            host = str(address[0])
            try:
                ok = ipaddress.ip_address(host.split("%", maxsplit=1)[0]).is_loopback
            except ValueError:
                ok = False
            if not ok:
                raise ConnectionRefusedError(111, f"fuzz guard: {host} is not loopback")

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            check(address)
        original_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            check(address)
        return original_connect_ex(self, address)

    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]


# ---------------------------------------------------------------------------------------------------- bookkeeping


class Findings:
    def __init__(self) -> None:
        self.cases: Counter[str] = Counter()
        self.tracebacks: list[str] = []
        self.hangs: list[str] = []
        self.kinds: Counter[str] = Counter()
        self.lock = threading.Lock()

    def run(self, target: str, what: str, fn: Callable[[], None], allowed: tuple[type[BaseException], ...]) -> None:
        """One case: ``fn`` in a worker thread, bounded; classify what escapes."""
        box: dict[str, BaseException] = {}

        def work() -> None:
            try:
                fn()
            except allowed:
                pass
            except BaseException as exc:
                box["exc"] = exc

        thread = threading.Thread(target=work, name=f"fuzz-{target}", daemon=True)
        thread.start()
        thread.join(CASE_TIMEOUT)
        with self.lock:
            self.cases[target] += 1
            if thread.is_alive():
                self.hangs.append(f"{target}: {what[:200]}")
            elif "exc" in box:
                exc = box["exc"]
                tb = "".join(traceback.format_exception(exc)[-3:])
                self.kinds[f"{target}: {type(exc).__name__}"] += 1
                self.tracebacks.append(f"{target}: {type(exc).__name__}: {str(exc)[:200]} | input {what[:300]!r}\n{tb}")

    def record(self, target: str, problem: str | None, what: str) -> None:
        with self.lock:
            self.cases[target] += 1
            if problem:
                self.kinds[f"{target}: {problem.split(chr(10))[0][:60]}"] += 1
                self.tracebacks.append(f"{target}: {problem[:300]} | input {what[:300]!r}")


def _settings(n: int, s: int) -> Callable[[Any], Any]:
    def wrap(f: Any) -> Any:
        return seed(s)(
            settings(
                max_examples=max(1, n),
                deadline=None,
                database=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )(f)
        )

    return wrap


# ---------------------------------------------------------------------------------------------------- strategies

NAMES = st.sampled_from(
    [
        "all",
        "ungrouped",
        "room101",
        "room-102",
        "win10",
        "pc01",
        "pc[01:05]",
        "pc[a:c]",
        "pc[1:",
        "pc[05:01]",
        "127.0.1.[1:3]",
        "pc[0001:5000]",
        "教室",
        "",
        " ",
        "{{ x }}",
        "a:b",
        "~x",
        "@f",
        "pc[01:10:2]",
        "pc[0x:1]",
    ]
)
VAR_NAMES = st.sampled_from(
    [
        "ansible_host",
        "ansible_port",
        "ansible_user",
        "ansible_password",
        "ansible_winrm_transport",
        "ansible_winrm_scheme",
        "ansible_winrm_operation_timeout_sec",
        "ansible_winrm_read_timeout_sec",
        "kms_host",
        "kmsfleet_host_budget_sec",
        "kmsfleet_allow_insecure_basic",
        "x",
        "1bad",
        "hosts",
        "vars",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(
        [
            "{{ undefined_var }}",
            "{{ 1/0 }}",
            "{% for x in range(10**9) %}{% endfor %}",
            "{{ lookup('env', 'HOME') }}",
            "{{ ''.__class__.__mro__[1].__subclasses__() }}",
            "{{ cycler.__init__.__globals__ }}",
            "{{ lipsum.__globals__ }}",
            "{{ x | regex_search('(') }}",
            "!unsafe",
            "127.0.0.1",
            "0x10",
            "1e309",
            "{{ lookup('file', '/etc/passwd') }}",
            "{{ range(99999999) | list }}",
            "ntlm",
            "kerberos",
            "basic",
        ]
    ),
)
JSONISH = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(VAR_NAMES, NAMES, st.text(max_size=8)), children, max_size=4),
    ),
    max_leaves=20,
)


@st.composite
def inventory_yaml(draw: Any) -> str:
    def group(depth: int) -> Any:
        g: dict[str, Any] = {}
        if draw(st.booleans()):
            g["hosts"] = draw(
                st.one_of(
                    st.dictionaries(
                        NAMES, st.one_of(st.none(), st.dictionaries(VAR_NAMES, SCALARS, max_size=4)), max_size=4
                    ),
                    JSONISH,
                )
            )
        if draw(st.booleans()):
            g["vars"] = draw(st.one_of(st.dictionaries(VAR_NAMES, SCALARS, max_size=4), JSONISH))
        if depth < 2 and draw(st.booleans()):
            g["children"] = {draw(NAMES): group(depth + 1) for _ in range(draw(st.integers(0, 3)))}
        if draw(st.integers(0, 9)) == 0:
            g[draw(st.text(max_size=6))] = draw(JSONISH)
        return g

    data: Any = {"all": group(0)} if draw(st.booleans()) else {draw(NAMES): group(0)}
    if draw(st.integers(0, 7)) == 0:
        data = draw(JSONISH)
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    return _mangle(draw, text)


@st.composite
def inventory_ini(draw: Any) -> str:
    lines: list[str] = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.integers(0, 5))
        if kind == 0:
            lines.append(f"[{draw(NAMES)}{draw(st.sampled_from(['', ':vars', ':children', ':bogus']))}]")
        elif kind == 1:
            pairs = " ".join(f"{draw(VAR_NAMES)}={draw(SCALARS)!s}" for _ in range(draw(st.integers(0, 3))))
            lines.append(f"{draw(NAMES)} {pairs}")
        elif kind == 2:
            lines.append(f"{draw(VAR_NAMES)}={draw(SCALARS)!s}")
        elif kind == 3:
            lines.append(draw(st.sampled_from(["# comment", "; comment", "", "[", "]", "a=b=c", "x='unterminated"])))
        else:
            lines.append(draw(st.text(max_size=40)))
    return "\n".join(lines)


def _mangle(draw: Any, text: str) -> str:
    """Sometimes break valid YAML: truncate, inject tags, anchors, tabs, duplicate keys, control characters."""
    choice = draw(st.integers(0, 9))
    if choice == 0 and text:
        return text[: draw(st.integers(0, len(text)))]
    if choice == 1:
        return text + str(
            draw(
                st.sampled_from(
                    [
                        "\n!!python/object/apply:os.system ['true']\n",
                        "\n&a [*a]\n",
                        "\n\t- x\n",
                        "\nall: 1\nall: 2\n",
                        "\n? [a, b]\n: c\n",
                        "\n%YAML 9.9\n---\n",
                        "\x00\x07",
                    ]
                )
            )
        )
    if choice == 2:  # a billion-laughs style alias bomb (9 levels of 9 references)
        lines = ["a: &a [x,x,x,x,x,x,x,x,x]"]
        for i in range(8):
            prev, name = chr(97 + i), chr(98 + i)
            lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
        return "\n".join(lines) + "\n"
    return text


MODULES = st.sampled_from(
    [
        "debug",
        "set_fact",
        "assert",
        "fail",
        "pause",
        "win_ping",
        "win_command",
        "win_shell",
        "wmi_query",
        "wmi_method",
        "setup",
        "license_facts",
        "windows_kms",
        "office_kms",
        "time_sync",
        "sql_audit",
        "license_verdict",
        "win_comand",
        "ansible.windows.win_command",
        "include_tasks",
        "import_tasks",
        "import_playbook",
        "block",
        "shell",
        "",
        "x" * 300,
    ]
)
TASK_KEYS = st.sampled_from(
    [
        "name",
        "when",
        "register",
        "loop",
        "with_items",
        "retries",
        "until",
        "delay",
        "ignore_errors",
        "changed_when",
        "failed_when",
        "tags",
        "no_log",
        "notify",
        "vars",
        "block",
        "rescue",
        "always",
        "check_mode",
        "loop_control",
        "become",
        "delegate_to",
        "run_once",
        "serial",
        "bogus_key",
    ]
)
EXPRS = st.sampled_from(
    [
        "x is defined",
        "result is succeeded",
        "1 +",
        "{{ x }}",
        "item > 3",
        "true",
        "false",
        "not",
        "x == (",
        "lookup('env','PATH')",
        "''.__class__",
        "range(10**9) | list | length",
        "x | bool",
        "[1,2] | sum > 1",
    ]
)


@st.composite
def playbook_yaml(draw: Any) -> str:
    def task(depth: int) -> Any:
        t: dict[str, Any] = {}
        module = draw(MODULES)
        args = draw(
            st.one_of(st.text(max_size=40), st.dictionaries(st.text(max_size=10), SCALARS, max_size=3), JSONISH)
        )
        if module == "block" and depth < 2:
            t["block"] = [task(depth + 1) for _ in range(draw(st.integers(0, 2)))]
        else:
            t[module] = args
        for _ in range(draw(st.integers(0, 4))):
            key = draw(TASK_KEYS)
            t[key] = (
                draw(st.one_of(EXPRS, SCALARS, JSONISH))
                if key not in ("block", "rescue", "always")
                else [task(depth + 1) for _ in range(draw(st.integers(0, 2)))]
                if depth < 2
                else []
            )
        return t

    plays = []
    for _ in range(draw(st.integers(0, 3))):
        play: dict[str, Any] = {"hosts": draw(st.one_of(NAMES, SCALARS))}
        for key in draw(
            st.lists(
                st.sampled_from(
                    [
                        "name",
                        "gather_facts",
                        "vars",
                        "strategy",
                        "serial",
                        "tasks",
                        "handlers",
                        "pre_tasks",
                        "post_tasks",
                        "vars_files",
                        "check_mode",
                        "any_errors_fatal",
                        "max_fail_percentage",
                        "roles",
                        "x",
                    ]
                ),
                max_size=5,
            )
        ):
            play[key] = draw(JSONISH)
        play["tasks"] = [task(0) for _ in range(draw(st.integers(0, 4)))]
        plays.append(play)
    data: Any = plays if draw(st.integers(0, 9)) else draw(JSONISH)
    return _mangle(draw, yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


#: keys of a lab spec's host entry that lab_spec_yaml draws from
_SPEC_FIELDS = [
    "os",
    "windows_channel",
    "windows_state",
    "days_left",
    "office",
    "sql",
    "timezone",
    "clock_skew_minutes",
    "admin",
    "blocked_key",
    "cloned_cmid",
    "power",
    "latency_ms",
    "faults",
    "kms_host",
    "computer_name",
    "mac",
    "http",
    "https",
    "bogus",
]


#: values a lab spec's host keys are given (besides scalars and JSON)
_SPEC_VALUES = [
    "Windows 10 Education",
    "Windows 7 Professional",
    "volume",
    "oem_slic",
    "licensed",
    "2019 Standard",
    "none",
    "on",
    "off",
    "Taipei Standard Time",
    [5, 1],
    [1, 5],
    {"drop": 2.0},
    {"drop": 0.1, "hang": 0.9},
    {"version": 2016},
    {"version": 2031},
]


#: answers of the hostile endpoint that cost no read timeout
_FAST_KINDS = [
    "valid",
    "mutated",
    "truncated",
    "garbage",
    "bomb",
    "xxe",
    "wrong_relates",
    "multipart",
    "fault",
    "fault500",
    "status",
    "unauth",
    "drop",
    "chunked",
    "redirect",
    "empty200",
    "nonutf8",
    "deep",
]


#: WS-Man fault codes the hostile endpoint answers with (valid and not)
_FAULT_CODES = [
    "2150858793",
    "2150858843",
    "3221549172",
    "abc",
    "-1",
    "99999999999999999999",
    "",
    "0x80338029",
    "2150858770",
    "1e10",
]


@st.composite
def lab_spec_yaml(draw: Any) -> str:
    host: dict[str, Any] = {"name": draw(NAMES)}
    fields = _SPEC_FIELDS
    values = st.one_of(
        SCALARS,
        st.sampled_from(_SPEC_VALUES),
        JSONISH,
    )
    for key in draw(st.lists(st.sampled_from(fields), max_size=5)):
        host[key] = draw(values)
    room: dict[str, Any] = {
        "room": draw(st.one_of(NAMES, st.text(max_size=8))),
        "subnet": draw(st.sampled_from(["127.0.1", "127.3.4", "10.0.0", "127.0.0", "127.0", "127.0.999", "x"])),
        "hosts": [host] * draw(st.integers(0, 2)),
    }
    if draw(st.booleans()):
        room["kms"] = draw(
            st.one_of(
                st.dictionaries(st.sampled_from(["up", "port", "count", "address", "products"]), values, max_size=3),
                JSONISH,
            )
        )
    if draw(st.booleans()):
        room["credentials"] = draw(
            st.one_of(st.dictionaries(st.sampled_from(["user", "password", "x"]), SCALARS, max_size=2), JSONISH)
        )
    data: Any = (
        room
        if draw(st.booleans())
        else {"rooms": [room, room] if draw(st.booleans()) else [room], "seed": draw(SCALARS)}
    )
    return _mangle(draw, yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


# ---------------------------------------------------------------------------------------------------- targets


def fuzz_inventories(f: Findings, n: int, s: int, workdir: Path) -> None:
    from orchestrator.errors import KmsfleetError
    from orchestrator.inventory.loader import load_inventory

    patterns = st.sampled_from(
        [
            "all",
            "room101",
            "pc0*",
            "room101:&win10",
            "room101:!pc05",
            "~pc.*",
            "~(",
            "a,b",
            "@/nonexistent",
            "",
            ":",
            "!all",
            "pc[01:03]",
            "*",
            "&",
            "~[",
            "all:!all:&x",
        ]
    )

    @_settings(n, s)
    @given(st.one_of(inventory_yaml(), inventory_ini()), st.booleans(), st.lists(patterns, max_size=3))
    def case(text: str, ini: bool, limits: list[str]) -> None:
        path = workdir / ("inv.ini" if ini else "inv.yml")

        def go() -> None:
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
            inv = load_inventory([str(path)])
            for pattern in limits:
                with contextlib.suppress(KmsfleetError):
                    inv.select(pattern)
            for host in list(inv.hosts)[:50]:
                inv.host_vars(host)
                inv.host_groups(host)
            inv.groups_dict()

        f.run("inventory", text, go, (KmsfleetError,))

    case()


def fuzz_playbooks(f: Findings, n: int, s: int, workdir: Path) -> None:
    from orchestrator.api import load_plan
    from orchestrator.errors import KmsfleetError

    @_settings(n, s)
    @given(playbook_yaml())
    def case(text: str) -> None:
        path = workdir / "play.yml"

        def go() -> None:
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
            load_plan(path)

        f.run("playbook", text, go, (KmsfleetError,))

    case()


def fuzz_specs(f: Findings, n: int, s: int) -> None:
    from orchestrator.errors import KmsfleetError
    from orchestrator.lab.spec import load_spec_text, resolve

    @_settings(n, s)
    @given(lab_spec_yaml())
    def case(text: str) -> None:
        def go() -> None:
            resolve(load_spec_text(text, "<fuzz>"))

        f.run("lab_spec", text, go, (KmsfleetError,))

    case()


def _cli_files(workdir: Path, octet: int) -> tuple[Path, Path]:
    """A playbook and a two-PC inventory (on loopback) for the CLI fuzzer."""
    playbook = workdir / "debug.yml"
    playbook.write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - debug: msg='{{ inventory_hostname }} {{ x | default(1) }}'\n",
        encoding="utf-8",
    )
    inventory = workdir / "cli-inv.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {
                        f"pc{i}": {
                            "ansible_host": f"127.{octet}.9.{i}",
                            "ansible_port": 5985,
                            "ansible_user": "u",
                            "ansible_password": "p",
                        }
                        for i in (1, 2)
                    },
                    "vars": {"ansible_winrm_connection_timeout_sec": 2, "kms_host": "127.0.0.9"},
                }
            }
        ),
        encoding="utf-8",
    )
    return playbook, inventory


def _cli_tokens(inventory: Path, workdir: Path, db: Path) -> list[str]:
    """Command-line words the CLI fuzzer strings together, valid and not."""
    return [
        "-i",
        str(inventory),
        "--limit",
        "pc1",
        "pc*",
        "@failed",
        "--forks",
        "0",
        "-1",
        "5000",
        "abc",
        "--check",
        "--diff",
        "--strategy",
        "linear",
        "free",
        "bogus",
        "-t",
        "x",
        "--skip-tags",
        "-e",
        "x=1",
        "@missing.yml",
        "{'a':1}",
        "[1]",
        "--report",
        str(workdir / "r.json"),
        str(workdir / "r.txt"),
        "/nonexistent/r.json",
        "--db",
        str(db),
        "--lang",
        "zh-TW",
        "xx",
        "-v",
        "-vvv",
        "--host-timeout",
        "0",
        "1",
        "--no-history",
        "--list",
        "--graph",
        "--host",
        "0xC004F074",
        "KF_UNREACHABLE",
        "--json",
        "--help",
        "",
        "--",
        "-",
        "\x00",
    ]


def fuzz_cli(f: Findings, n: int, s: int, workdir: Path, octet: int) -> None:
    from typer.testing import CliRunner

    from orchestrator.cli.app import _usage_errors_exit_4, app

    _usage_errors_exit_4()
    playbook, inventory = _cli_files(workdir, octet)
    db = workdir / "cli.db"
    tokens = st.sampled_from(_cli_tokens(inventory, workdir, db))

    @_settings(n, s)
    @given(
        st.sampled_from(["run", "inventory", "explain", "history", "ping", "audit", "report", "nosuch"]),
        st.lists(tokens, max_size=8),
        st.booleans(),
    )
    def case(command: str, rest: list[str], with_playbook: bool) -> None:
        args = [command]
        if command == "run" and with_playbook:
            args.append(str(playbook))
        args += rest
        if command in ("run", "ping", "audit") and "-i" not in args:
            args += ["-i", str(inventory)]
        if "--db" not in args:
            args += ["--db", str(db)] if command in ("run", "ping", "audit", "history", "report") else []
        runner = CliRunner()
        started = time.monotonic()
        result = runner.invoke(app, args, catch_exceptions=True, env={"KMSFLEET_DB": str(db), "COLUMNS": "120"})
        problem = None
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            exc = result.exception
            tb = "".join(traceback.format_exception(exc)[-3:])
            problem = f"escaped {type(exc).__name__}: {exc}\n{tb}"
        elif result.exit_code not in CLI_CODES:
            problem = f"exit {result.exit_code}: {result.output[-300:]}"
        elif "Traceback (most recent call last)" in result.output:
            problem = f"traceback printed: {result.output[-300:]}"
        if time.monotonic() - started > CASE_TIMEOUT:
            f.hangs.append(f"cli: {args}")
        f.record("cli", problem, " ".join(args))

    case()


# ---- hostile WS-Man server ----------------------------------------------------------------------------------------

NS_S = "http://www.w3.org/2003/05/soap-envelope"
ENVELOPE = (
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
    'xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration" '
    'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" '
    'xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell" '
    'xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" '
    'xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/Win32_OperatingSystem">'
    "<s:Header><a:Action>{action}</a:Action><a:MessageID>uuid:11111111-2222-3333-4444-555555555555</a:MessageID>"
    "<a:RelatesTo>{relates}</a:RelatesTo></s:Header><s:Body>{body}</s:Body></s:Envelope>"
)
BODIES = {
    "enumerate": "<n:EnumerateResponse><n:EnumerationContext>{ctx}</n:EnumerationContext><w:Items>"
    "<p:Win32_OperatingSystem><p:CSName>PC01</p:CSName><p:Version>10.0</p:Version></p:Win32_OperatingSystem>"
    "</w:Items>{end}</n:EnumerateResponse>",
    "pull": "<n:PullResponse><n:EnumerationContext>{ctx}</n:EnumerationContext><n:Items>"
    "<p:Win32_OperatingSystem><p:CSName>PC01</p:CSName></p:Win32_OperatingSystem></n:Items>{end}</n:PullResponse>",
    "get": '<p:Win32_OperatingSystem><p:CSName>PC01</p:CSName><p:Caption xsi:nil="true" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"/></p:Win32_OperatingSystem>',
    "invoke": "<p:Activate_OUTPUT><p:ReturnValue>{rv}</p:ReturnValue></p:Activate_OUTPUT>",
    "create": "<rsp:Shell><rsp:ShellId>{shell}</rsp:ShellId></rsp:Shell>",
    "command": "<rsp:CommandResponse><rsp:CommandId>{cmd}</rsp:CommandId></rsp:CommandResponse>",
    "receive": '<rsp:ReceiveResponse><rsp:Stream Name="stdout" CommandId="{cmd}">{b64}</rsp:Stream>'
    '<rsp:CommandState CommandId="{cmd}" State="http://schemas.microsoft.com/wbem/wsman/1/windows/shell/'
    'CommandState/{state}"><rsp:ExitCode>{rc}</rsp:ExitCode></rsp:CommandState></rsp:ReceiveResponse>',
    "fault": "<s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>{sub}</s:Value></s:Subcode></s:Code>"
    '<s:Reason><s:Text xml:lang="en-US">{reason}</s:Text></s:Reason><s:Detail><f:WSManFault Code="{code}" '
    'Machine="x"><f:Message>{reason}</f:Message></f:WSManFault></s:Detail></s:Fault>',
}
BOMB = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
    + ']><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>&lol9;</s:Body></s:Envelope>'
)
XXE = (
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>&xxe;</s:Body></s:Envelope>'
)


class Reply:
    """One hostile answer plan: how to answer the k-th request of a case."""

    def __init__(self, draw: Any) -> None:
        fast = _FAST_KINDS
        slow = ["huge", "lying_length", "endless", "never_done", "slow"]  # each costs up to a read timeout
        self.kind = draw(st.sampled_from(fast * 4 + slow))
        self.status = draw(st.sampled_from([200, 200, 400, 401, 403, 404, 413, 500, 501, 503, 302, 100, 204, 999]))
        self.code = draw(st.sampled_from(_FAULT_CODES))
        self.sub = draw(
            st.sampled_from(["w:InternalError", "w:TimedOut", "w:InvalidSelectors", "", "x:&amp;", "w:AccessDenied"])
        )
        self.reason = draw(st.text(max_size=40))
        self.rv = draw(st.sampled_from(["0", "1", "-5", "abc", "3221549172", "", "99999999999999999999999"]))
        self.state = draw(st.sampled_from(["Done", "Running", "Pending", "x"]))
        self.rc = draw(st.sampled_from(["0", "1", "-1", "abc", "", "4294967295", "99999999999999999999"]))
        self.b64 = draw(
            st.sampled_from(
                ["aG9zdG5hbWU=", "!!notbase64!!", "", "//79/w==", base64.b64encode(os.urandom(64)).decode()]
            )
        )
        self.cut = draw(st.floats(0.0, 1.0))
        self.garbage = draw(st.binary(max_size=200))
        self.header = draw(
            st.sampled_from(
                [
                    "Negotiate",
                    "Negotiate !!!",
                    "NTLM TlRMTVNTUAACAAAA",
                    "Basic",
                    "Bogus x",
                    "Negotiate " + base64.b64encode(os.urandom(40)).decode(),
                ]
            )
        )
        self.mutation = draw(
            st.lists(
                st.tuples(st.integers(0, 4000), st.sampled_from(["<", ">", "&", "\x00", "]]>", '"', "</s:Body>", ""])),
                max_size=3,
            )
        )

    def body_for(self, request: bytes, n: int) -> bytes:
        text = request.decode("utf-8", "replace")
        mid = re.search(r"<[a-zA-Z]*:?MessageID[^>]*>([^<]+)<", text)
        relates = mid.group(1) if mid else "uuid:0"
        if self.kind == "wrong_relates":
            relates = "uuid:DEADBEEF-0000-0000-0000-000000000000"
        action = re.search(r"Action[^>]*>([^<]+)<", text)
        act = action.group(1) if action else ""
        key = (
            "enumerate"
            if act.endswith("/Enumerate")
            else "pull"
            if act.endswith("/Pull")
            else "create"
            if act.endswith("/Create")
            else "command"
            if act.endswith("/Command")
            else "receive"
            if act.endswith("/Receive")
            else "get"
            if act.endswith("/Get")
            else "invoke"
        )
        ctx = "uuid:ctx" if self.kind == "endless" else ""
        end = "" if self.kind == "endless" else "<w:EndOfSequence/>"
        state = "Running" if self.kind == "never_done" else self.state
        body = BODIES[key].format(
            ctx=ctx, end=end, rv=self.rv, shell="S-1", cmd="C-1", b64=self.b64, state=state, rc=self.rc
        )
        if self.kind in ("fault", "fault500"):
            body = BODIES["fault"].format(sub=self.sub, reason=_xml_escape(self.reason), code=self.code)
        if self.kind == "deep":
            body = "<x>" * 5000 + "</x>" * 5000
        env = ENVELOPE.format(action=act + "Response", relates=relates, body=body)
        if self.kind == "mutated":
            for pos, token in self.mutation:
                p = pos % (len(env) + 1)
                env = env[:p] + token + env[p:]
        if self.kind == "truncated":
            env = env[: int(len(env) * self.cut)]
        data = env.encode()
        if self.kind == "garbage":
            data = self.garbage
        elif self.kind == "bomb":
            data = BOMB.encode()
        elif self.kind == "xxe":
            data = XXE.encode()
        elif self.kind == "huge":
            data = b"<s:Envelope>" + b"A" * (17 * 1024 * 1024) + b"</s:Envelope>"
        elif self.kind == "nonutf8":
            data = b"\xff\xfe<\x00s\x00" + os.urandom(100)
        return data

    def response(self, request: bytes, n: int) -> tuple[bytes, float]:
        """(raw HTTP response bytes, seconds to stall before sending)."""
        body = self.body_for(request, n)
        status = 200
        ctype = "application/soap+xml;charset=UTF-8"
        extra = ""
        if self.kind in ("fault500",):
            status = 500
        elif self.kind == "status":
            status = self.status
        elif self.kind == "unauth":
            status, body, extra = 401, b"", f"WWW-Authenticate: {self.header}\r\n"
        elif self.kind == "multipart":
            ctype = (
                'multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted";boundary="Encrypted Boundary"'
            )
            body = (
                b"--Encrypted Boundary\r\nContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n"
                + body[: len(body) // 3]
            )
        elif self.kind == "redirect":
            status, extra = 302, "Location: http://127.0.0.1:9/wsman\r\n"
        elif self.kind == "empty200":
            body = b""
        if self.kind == "drop":
            return b"", 0.0
        reason = {200: "OK", 401: "Unauthorized", 500: "Internal Server Error"}.get(status, "X")
        if self.kind == "chunked":
            head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nTransfer-Encoding: chunked\r\n{extra}\r\n"
            return head.encode() + b"zz\r\n" + body[:50] + b"\r\n", 0.0
        length = len(body) + (1000 if self.kind == "lying_length" else 0)
        head = f"HTTP/1.1 {status} {reason}\r\nServer: Microsoft-HTTPAPI/2.0\r\nContent-Type: {ctype}\r\n"
        head += f"Content-Length: {length}\r\n{extra}\r\n"
        return head.encode() + body, (2.5 if self.kind == "slow" else 0.0)


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


class HostileServer:
    """A raw-socket HTTP/1.1 server on a loopback address; every request gets ``self.reply``'s answer."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, 0))
        self.sock.listen(64)
        self.address = address
        self.port = int(self.sock.getsockname()[1])
        self.reply: Reply | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="hostile-server", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(OSError):
            self.sock.close()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        n = 0
        try:
            with conn:
                buf = b""
                for _ in range(2000):  # bounded requests per connection
                    while b"\r\n\r\n" not in buf:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        buf += chunk
                    head, _, rest = buf.partition(b"\r\n\r\n")
                    m = re.search(rb"content-length:\s*(\d+)", head, re.IGNORECASE)
                    length = int(m.group(1)) if m else 0
                    while len(rest) < length:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        rest += chunk
                    request, buf = rest[:length], rest[length:]
                    reply = self.reply
                    if reply is None:
                        return
                    data, stall = reply.response(request, n)
                    n += 1
                    if not data:
                        return  # drop
                    if stall:
                        conn.sendall(data[:40])
                        if self.stop.wait(stall):
                            return
                        data = data[40:]
                    conn.sendall(data)
        except OSError:
            return


def fuzz_wsman(f: Findings, n: int, s: int, claim: Claim) -> None:
    from orchestrator.transport.connection import connection_spec
    from orchestrator.transport.errors import TransportError
    from orchestrator.transport.winrm import WinRMConnection

    server = HostileServer(f"{claim.prefix}.9.9")
    try:

        @_settings(n, s)
        @given(
            st.data(),
            st.sampled_from(["wql", "get", "invoke", "command", "powershell"]),
            st.sampled_from(["basic", "ntlm"]),
        )
        def case(data: Any, call: str, transport: str) -> None:
            reply = Reply(data.draw)
            server.reply = reply
            spec = connection_spec(
                "hostile",
                {
                    "ansible_host": server.address,
                    "ansible_port": server.port,
                    "ansible_winrm_scheme": "http",
                    "ansible_user": "administrator",
                    "ansible_password": "Fuzz-Passw0rd!",
                    "ansible_winrm_transport": transport,
                    "kmsfleet_allow_insecure_basic": True,
                    "ansible_winrm_operation_timeout_sec": 1,
                    "ansible_winrm_read_timeout_sec": 2,
                    "ansible_winrm_connection_timeout_sec": 2,
                },
            )

            def go() -> None:
                conn = WinRMConnection(spec, deadline=time.monotonic() + 12.0, retries=2)
                try:
                    if call == "wql":
                        conn.wql("SELECT * FROM Win32_OperatingSystem")
                    elif call == "get":
                        conn.get_instance("Win32_OperatingSystem", {"Name": "x"})
                    elif call == "invoke":
                        conn.invoke("SoftwareLicensingProduct", "Activate", {"ID": "x"}, {"A": "1"})
                    elif call == "command":
                        conn.run_command("hostname", timeout=2)
                    else:
                        conn.run_powershell("Get-Date", timeout=2)
                finally:
                    conn.close()

            f.run("wsman", f"{transport} {call} {reply.kind}", go, (TransportError,))

        case()
    finally:
        server.close()


# ---------------------------------------------------------------------------------------------------- driver


def fuzz(opts: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    loopback_only_guard()
    f = Findings()
    total = opts.cases
    shares = {"inventory": 0.3, "playbook": 0.3, "lab_spec": 0.15, "cli": 0.05, "wsman": 0.20}
    counts = {k: max(1, int(total * v)) for k, v in shares.items()}
    counts["wsman"] += total - sum(counts.values())
    claim = claim_prefix(low=60, high=240)
    started = time.monotonic()
    old_env = os.environ.get("KMSFLEET_DB")
    os.environ["KMSFLEET_DB"] = str(workdir / "cli.db")
    seconds: dict[str, float] = {}
    sigterm = signal.getsignal(signal.SIGTERM)
    steps: list[tuple[str, Callable[[], None]]] = [
        ("inventory", lambda: fuzz_inventories(f, counts["inventory"], opts.seed, workdir)),
        ("playbook", lambda: fuzz_playbooks(f, counts["playbook"], opts.seed + 1, workdir)),
        ("lab_spec", lambda: fuzz_specs(f, counts["lab_spec"], opts.seed + 2)),
        ("cli", lambda: fuzz_cli(f, counts["cli"], opts.seed + 3, workdir, claim.octet)),
        ("wsman", lambda: fuzz_wsman(f, counts["wsman"], opts.seed + 4, claim)),
    ]
    try:
        for name, step in steps:
            t0 = time.monotonic()
            step()
            seconds[name] = round(time.monotonic() - t0, 1)
    finally:
        signal.signal(signal.SIGTERM, sigterm)  # `kmsfleet run` in process turns SIGTERM into Ctrl-C
        claim.release()
        if old_env is None:
            os.environ.pop("KMSFLEET_DB", None)
        else:
            os.environ["KMSFLEET_DB"] = old_env
    return {
        "cases": sum(f.cases.values()),
        "tracebacks": len(f.tracebacks),
        "hangs": len(f.hangs),
        "wall_s": time.monotonic() - started,
        "by_target": dict(f.cases),
        "seconds_by_target": seconds,
        "seed": opts.seed,
        "finding_kinds": dict(f.kinds),
        "first_tracebacks": f.tracebacks[:5],
        "first_hangs": f.hangs[:5],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="300 cases")
    parser.add_argument("--timeout", type=float, default=1800.0, help="overall time limit, seconds")
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.cases = min(opts.cases, 300)
    random.seed(opts.seed)
    with tempfile.TemporaryDirectory(prefix="kmsfleet-fuzz-") as tmp:
        try:
            with time_limit(opts.timeout):
                res = fuzz(opts, Path(tmp))
        except BenchTimeout as exc:
            print(f"fuzz: {exc}", file=sys.stderr)
            emit_json({"error": str(exc)})
            return 1
    rows = [(f"cases: {k}", str(v), "") for k, v in res["by_target"].items()]
    rows += [
        ("cases", str(res["cases"]), ""),
        ("tracebacks", str(res["tracebacks"]), "0"),
        ("hangs", str(res["hangs"]), "0"),
        ("wall", f"{res['wall_s']:.1f} s", ""),
    ]
    print_table(f"fuzz: seed {res['seed']}", rows)
    for line in res["first_tracebacks"] + res["first_hangs"]:
        print("  finding:", line.replace("\n", "\n    "))
    emit_json(
        {k: v for k, v in res.items() if k not in ("first_tracebacks", "first_hangs")}
        | {"findings": [x.splitlines()[0][:300] for x in res["first_tracebacks"] + res["first_hangs"]]}
    )
    return 0 if not (res["tracebacks"] or res["hangs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
