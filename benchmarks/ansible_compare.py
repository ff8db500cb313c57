"""kmsfleet against real Ansible on the same 40-PC lab, the same command procedure, in one run.

    .venv/bin/python benchmarks/ansible_compare.py            # 40 PCs (creates benchmarks/.ansible-venv once)
    .venv/bin/python benchmarks/ansible_compare.py --hosts 10 # smaller
    .venv/bin/python benchmarks/ansible_compare.py --hosts 120 # a whole school (Ansible forks 5: about 9 min)

Ansible: ``ansible-core`` and ``pywinrm`` from PyPI in their own virtualenv ``benchmarks/.ansible-venv`` (created
by this script with pip on first use, then reused). It runs the bureau's command procedure with
``ansible.builtin.raw`` over ``ansible_connection: winrm`` (NTLM with message encryption, HTTP 5985): slmgr /skms,
/ato, /dlv and ospp /sethst, /setprt, /act, /dstatus, each verdict taken from the output (``failed_when``), exactly like
kmsfleet's seed-procedure playbook. Ansible's raw module over WinRM wraps each command in
``powershell -EncodedCommand``; the lab runs those wrappers like the bare commands. Once with the default forks
(5), once with forks 40. Environment: no fact gathering, no host key checking, no retry files, every Ansible
directory in a temporary folder, no proxies (only loopback is contacted).

kmsfleet: ``kmsfleet run seed-procedure.yml`` (the same commands: the apples-to-apples figure) and
``kmsfleet run site.yml`` (the WMI path, Windows and Office), both through the CLI as child processes, like
``ansible-playbook``: every figure includes interpreter start-up.

``--latency-ms M`` adds a per-request latency drawn from [0.6 M, 1.4 M] to every PC (default 0: loopback speed,
where both sides are CPU-bound on a small machine).

Every contender gets a FRESH lab from the same spec and seed (every PC unlicensed, KMS host unset), so each
does the same work, and every contender's result is checked (all PCs must end licensed; Ansible's recap must show
no failed or unreachable host).

Keys: kmsfleet_s (seed-procedure.yml, same commands as Ansible), kmsfleet_forks (the --forks its history recorded:
kmsfleet's default unless ``--kmsfleet-forks`` is given), ansible_forks5_s, ansible_forks40_s,
speedup_forks5 = ansible_forks5_s / kmsfleet_s (target >= 20), speedup_forks40 (target >= 3); extras:
kmsfleet_site_s and the speedups of site.yml.
"""

from __future__ import annotations

import argparse
import heapq
import re
import subprocess
import sys
import tempfile
import venv
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import (  # noqa: E402
    BENCH,
    BenchTimeout,
    ChildUsage,
    LabProcess,
    add_timing_options,
    bench_env,
    emit_json,
    fmt,
    kmsfleet_run,
    licensed_products,
    measure_with_instant,
    playbook,
    print_table,
    run_measured,
    running_lab,
    time_limit,
    write_inventory,
)
from orchestrator.lab.timing import LabTiming  # noqa: E402

ANSIBLE_VENV = BENCH / ".ansible-venv"
ANSIBLE_REQUIREMENTS = ("ansible-core>=2.15,<2.20", "pywinrm>=0.4.3,<0.6")
PASSWORD = "Ansible-Bench-1!"
OSPP = r"C:\Program Files (x86)\Microsoft Office\Office16\OSPP.VBS"

ANSIBLE_PLAYBOOK = f"""\
# The bureau's command procedure through Ansible's raw module (what kmsfleet's seed-procedure playbook runs).
- name: KMS activation, the bureau's commands
  hosts: all
  gather_facts: false
  tasks:
    - name: slmgr /skms
      ansible.builtin.raw: cscript //nologo C:\\Windows\\System32\\slmgr.vbs /skms {{{{ kms_host }}}}:{{{{ kms_port }}}}
    - name: slmgr /ato
      ansible.builtin.raw: cscript //nologo C:\\Windows\\System32\\slmgr.vbs /ato
      register: ato
      failed_when: "'successfully' not in ato.stdout"
    - name: slmgr /dlv
      ansible.builtin.raw: cscript //nologo C:\\Windows\\System32\\slmgr.vbs /dlv
      register: dlv
      failed_when: "'License Status: Licensed' not in dlv.stdout"
    - name: ospp /sethst
      ansible.builtin.raw: cscript //nologo "{OSPP}" /sethst:{{{{ kms_host }}}}
    - name: ospp /setprt
      ansible.builtin.raw: cscript //nologo "{OSPP}" /setprt:{{{{ kms_port }}}}
    - name: ospp /act
      ansible.builtin.raw: cscript //nologo "{OSPP}" /act
      register: act
      failed_when: "'successful' not in act.stdout"
    - name: ospp /dstatus
      ansible.builtin.raw: cscript //nologo "{OSPP}" /dstatus
      register: dstatus
      failed_when: "'---LICENSED---' not in dstatus.stdout"
"""


SCHOOL = 120  # PCs of a whole school, for the model's extra keys


def pc_names(hosts: int) -> list[str]:
    """The PC names ``build_spec`` gives (``pc01``…, ``pc001``… from 100 PCs)."""
    width = max(2, len(str(hosts)))
    return [f"pc{i:0{width}d}" for i in range(1, hosts + 1)]


def build_spec(hosts: int, latency_ms: float = 0.0) -> dict[str, Any]:
    width = max(2, len(str(hosts)))
    latency = [round(0.6 * latency_ms, 1), round(1.4 * latency_ms, 1)]
    return {
        "room": "room101",
        "subnet": "127.0.1",
        "credentials": {"user": "administrator", "password": PASSWORD},
        "defaults": {
            "os": "Windows 10 Education",
            "office": {"version": 2016, "bitness": "x86", "channel": "volume", "state": "unlicensed"},
            "latency_ms": latency,
        },
        "hosts": [{"name": f"pc[{1:0{width}d}:{hosts:0{width}d}]"}],
    }


def ensure_ansible(timeout: float = 900.0) -> Path:
    """``benchmarks/.ansible-venv`` with ansible-core and pywinrm (created once, then reused)."""
    bin_dir = ANSIBLE_VENV / "bin"
    stamp = ANSIBLE_VENV / ".kmsfleet-bench-installed"
    if not stamp.exists():
        print(f"creating {ANSIBLE_VENV} (ansible-core, pywinrm) …", flush=True)
        venv.EnvBuilder(with_pip=True, clear=not (bin_dir / "python").exists()).create(ANSIBLE_VENV)
        subprocess.run(
            [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", *ANSIBLE_REQUIREMENTS],
            check=True,
            timeout=timeout,
        )
        stamp.write_text(" ".join(ANSIBLE_REQUIREMENTS) + "\n", encoding="utf-8")
    return bin_dir


def ansible_inventory(lab: LabProcess, out: Path) -> Path:
    hosts: dict[str, Any] = {}
    for name, hv in lab.inventory_hosts().items():
        hosts[name] = {
            "ansible_host": hv["ansible_host"],
            "ansible_port": 5985,
            "ansible_user": hv["ansible_user"],
            "ansible_password": hv["ansible_password"],
            "kms_host": hv["kms_host"],
            "kms_port": hv["kms_port"],
        }
    data = {
        "all": {
            "hosts": hosts,
            "vars": {
                "ansible_connection": "winrm",
                "ansible_winrm_transport": "ntlm",
                "ansible_winrm_scheme": "http",
                "ansible_winrm_server_cert_validation": "ignore",
                "ansible_winrm_message_encryption": "auto",
            },
        }
    }
    out.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    out.chmod(0o600)
    return out


def ansible_env(workdir: Path, forks: int) -> dict[str, str]:
    home = workdir / "ansible-home"
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    cfg = workdir / f"ansible-{forks}.cfg"
    cfg.write_text(
        "[defaults]\n"
        f"forks = {forks}\n"
        "gathering = explicit\n"
        "host_key_checking = False\n"
        "retry_files_enabled = False\n"
        f"local_tmp = {home / 'tmp'}\n"
        "interpreter_python = auto_silent\n"
        "nocows = True\n",
        encoding="utf-8",
    )
    return bench_env(
        ANSIBLE_CONFIG=str(cfg),
        ANSIBLE_HOME=str(home),
        ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
        ANSIBLE_GATHERING="explicit",
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_RETRY_FILES_ENABLED="False",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_PYTHON_INTERPRETER="auto_silent",
    )


_RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)


def check_ansible(usage: ChildUsage, hosts: int, forks: int) -> None:
    recap = _RECAP.findall(usage.stdout)
    bad = [r for r in recap if int(r[3]) or int(r[4])]
    if usage.returncode != 0 or len(recap) != hosts or bad:
        tail = usage.stdout[-1500:] + usage.stderr[-1500:]
        raise RuntimeError(
            f"ansible forks {forks}: exit {usage.returncode}, {len(recap)} recaps, bad {bad[:3]}\n{tail}"
        )


def check_lab(lab: LabProcess, hosts: int, who: str) -> None:
    snaps = lab.ctl.hosts()
    licensed = sum(1 for s in snaps if all(licensed_products(s).values()))
    if licensed != hosts:
        raise RuntimeError(f"{who}: only {licensed}/{hosts} PCs licensed afterwards (lab ground truth)")


# What the lab counted, per PC: the requests it answered (by WS-Management action) and what its timing model
# charged (figure -> seconds). Request labels are the lab's counters (lab/server.py, lab/wsman/service.py).
_REQUEST_KEYS = {
    "http_requests": None,
    "soap_requests": None,
    "signins": "auth:ok",
    "shells": "Create",
    "commands": "Command",
    "receives": "Receive",
    "shell_deletes": "Delete",
    "wql_enumerates": "Enumerate",
    "wql_pulls": "Pull",
}


def per_pc_counts(stats: dict[str, Any], hosts: int) -> dict[str, float]:
    """One contender's per-PC work from the lab's ``/stats``: request counts and the seconds each timing figure
    charged (``s_<figure>``), each divided by the number of PCs."""
    requests = stats.get("requests", {})
    out: dict[str, float] = {}
    for key, label in _REQUEST_KEYS.items():
        value = stats.get(key, 0) if label is None else requests.get(label, 0)
        out[key] = round(float(value) / hosts, 2)
    invokes = sum(n for label, n in requests.items() if label.startswith("Invoke:"))
    out["invokes"] = round(invokes / hosts, 2)
    charged = (stats.get("timing") or {}).get("charged", {})
    for name, figure in charged.items():
        out[f"n_{name}"] = round(float(figure["count"]) / hosts, 2)
        out[f"s_{name}"] = round(float(figure["seconds"]) / hosts, 3)
    out["s_charged_total"] = round(sum(float(f["seconds"]) for f in charged.values()) / hosts, 3)
    out["s_slowest_pc"] = float((stats.get("timing") or {}).get("slowest_pc_s", 0.0))
    return out


# The bureau's seven commands (the cscript argument text) and whether the command waits for the KMS host.
_PROCEDURE = (
    ("//nologo C:\\Windows\\System32\\slmgr.vbs /skms kms:1688", False),
    ("//nologo C:\\Windows\\System32\\slmgr.vbs /ato", True),
    ("//nologo C:\\Windows\\System32\\slmgr.vbs /dlv", False),
    (f'//nologo "{OSPP}" /sethst:kms', False),
    (f'//nologo "{OSPP}" /setprt:1688', False),
    (f'//nologo "{OSPP}" /act', True),
    (f'//nologo "{OSPP}" /dstatus', False),
)


def model_bounds(names: list[str], seed: int, forks: tuple[int, ...] = (5, 40)) -> dict[str, float]:
    """What the lab's Windows timing alone allows, from the same per-PC draws (lab/timing.py, same seed and PC
    names), with no client CPU at all: ``model_ideal_s`` = the slowest PC's time for the seven commands on one
    shell after one sign-in (the best any tool can do); ``model_ansible_forks<k>_s`` = Ansible's linear strategy
    (every task on every PC before the next task, at most k PCs at once, each task signing in, creating a shell
    and starting powershell.exe around cscript); ``model_bound_forks<k>`` = their ratio, the speedup ceiling."""
    timing = LabTiming("windows", seed)
    ideal: list[float] = []
    tasks: list[list[float]] = []
    for name in names:
        pc = timing.pc(name)
        base = pc.figures["signin"] + pc.figures["shell_create"]
        runs = [pc.figures["cmd_start"] + pc.program_start("cscript", args) for args, _ in _PROCEDURE]
        runs = [
            r + (pc.figures["kms_round_trip"] if kms else 0.0) for r, (_, kms) in zip(runs, _PROCEDURE, strict=True)
        ]
        ideal.append(base + sum(runs))
        tasks.append([base + pc.program_start("powershell", "") + r for r in runs])
    out = {"model_ideal_s": max(ideal)}
    for k in forks:
        wall = sum(pool_wall([per_pc[index] for per_pc in tasks], k) for index in range(len(_PROCEDURE)))
        out[f"model_ansible_forks{k}_s"] = wall
        out[f"model_bound_forks{k}"] = wall / out["model_ideal_s"]
    return out


def pool_wall(times: list[float], forks: int) -> float:
    """The wall time of jobs taken in order by ``forks`` workers, each starting the next job when it is free."""
    free = [0.0] * max(1, min(forks, len(times)))
    for seconds in times:
        heapq.heappush(free, heapq.heappop(free) + seconds)
    return max(free)


def model_kmsfleet_s(names: list[str], seed: int, forks: int) -> float:
    """kmsfleet's ``seed-procedure.yml`` in the same model, no client CPU: per PC one sign-in and one shell, the
    ospp.vbs probe (one cmd.exe line), the seven commands, then the one licence read (Win32_OperatingSystem,
    SoftwareLicensingService, SoftwareLicensingProduct, the SQL Server services); PCs taken by ``forks`` workers
    as they come free (the free strategy)."""
    timing = LabTiming("windows", seed)
    per_pc: list[float] = []
    for name in names:
        f = timing.pc(name).figures
        commands = sum(
            f["cmd_start"] + timing.pc(name).program_start("cscript", args) + (f["kms_round_trip"] if kms else 0.0)
            for args, kms in _PROCEDURE
        )
        licence_read = 3 * f["wql_query"] + f["slp_query"]
        per_pc.append(f["signin"] + f["shell_create"] + f["cmd_start"] + commands + licence_read)
    return pool_wall(per_pc, forks)


def model_figures(names: list[str], seed: int, kmsfleet_forks: int) -> dict[str, float]:
    """``model_bounds`` and kmsfleet's own figure in the model, with ``--forks 50`` (the old default) and with
    the forks the measured run used."""
    out = model_bounds(names, seed)
    for forks in sorted({50, kmsfleet_forks}):
        out[f"model_kmsfleet_forks{forks}_s"] = model_kmsfleet_s(names, seed, forks)
    return out


def recorded_forks(db: Path) -> int:
    """The ``--forks`` a kmsfleet run used, as its history recorded it (the default unless the run was given one)."""
    import sqlite3

    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT forks FROM runs").fetchone()
    return int(row[0]) if row else 0


def measure(opts: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    bin_dir = ensure_ansible()
    spec = build_spec(opts.hosts, opts.latency_ms)
    seed_pb, seed_real = playbook("seed-procedure.yml", standin_only=opts.standin)
    site_pb, site_real = playbook("site.yml", standin_only=opts.standin)
    ansible_pb = workdir / "ansible-procedure.yml"
    ansible_pb.write_text(ANSIBLE_PLAYBOOK, encoding="utf-8")
    out: dict[str, Any] = {}
    per_pc: dict[str, dict[str, float]] = {}
    names: list[str] = []

    def kmsfleet(name: str, pb: Path) -> ChildUsage:
        with running_lab(workdir / name, spec=spec, seed=opts.seed, timing=opts.timing, name=name) as lab:
            inv = write_inventory(lab.inventory, workdir / f"{name}.yml")
            db = workdir / f"{name}.db"
            args = ["--db", str(db), *(["--forks", str(opts.kmsfleet_forks)] if opts.kmsfleet_forks else [])]
            usage = kmsfleet_run(pb, inv, workdir, timeout=opts.run_timeout, args=args)
            if usage.returncode != 0:
                raise RuntimeError(f"kmsfleet {pb.name}: exit {usage.returncode}\n{usage.stdout[-2000:]}")
            check_lab(lab, opts.hosts, f"kmsfleet {pb.name}")
            per_pc[name] = per_pc_counts(lab.ctl.stats(), opts.hosts)
            out["kmsfleet_forks"] = recorded_forks(db)
            return usage

    def ansible(forks: int) -> ChildUsage:
        with running_lab(
            workdir / f"ansible{forks}", spec=spec, seed=opts.seed, timing=opts.timing, name=f"ansible{forks}"
        ) as lab:
            inv = ansible_inventory(lab, workdir / f"ansible-inventory-{forks}.yml")
            usage = run_measured(
                [str(bin_dir / "ansible-playbook"), "-i", str(inv), str(ansible_pb)],
                timeout=opts.run_timeout,
                env=ansible_env(workdir, forks),
                cwd=workdir,
                out_dir=workdir,
            )
            check_ansible(usage, opts.hosts, forks)
            check_lab(lab, opts.hosts, f"ansible forks {forks}")
            per_pc[f"ansible{forks}"] = per_pc_counts(lab.ctl.stats(), opts.hosts)
            names.extend([] if names else lab.inventory_hosts())
            return usage

    runs = {
        "kmsfleet": kmsfleet("kmsfleet-seed", seed_pb),
        "kmsfleet_site": kmsfleet("kmsfleet-site", site_pb),
        "ansible_forks5": ansible(5),
        "ansible_forks40": ansible(40),
    }
    for key, usage in runs.items():
        out[f"{key}_s"] = usage.wall_s
    for key, usage in runs.items():
        # CPU of the contender's process and the children it reaped (Ansible's forks): both sides are
        # CPU-bound on a 2-core machine, which these figures show.
        out[f"{key}_cpu_s"] = usage.cpu_s
    out["speedup_forks5"] = out["ansible_forks5_s"] / out["kmsfleet_s"]
    out["speedup_forks40"] = out["ansible_forks40_s"] / out["kmsfleet_s"]
    out["speedup_site_forks5"] = out["ansible_forks5_s"] / out["kmsfleet_site_s"]
    out["speedup_site_forks40"] = out["ansible_forks40_s"] / out["kmsfleet_site_s"]
    out["per_pc"] = per_pc
    if opts.timing == "windows":
        out.update(model_figures(names, opts.seed, out["kmsfleet_forks"]))
        if opts.hosts < SCHOOL:  # the same model for a whole school (measuring it takes Ansible ~9 min at forks 5)
            school = model_figures(pc_names(SCHOOL), opts.seed, out["kmsfleet_forks"])
            out.update({f"school{SCHOOL}_{key}": value for key, value in school.items()})
    out["hosts"] = opts.hosts
    out["latency_ms"] = opts.latency_ms
    out["seed_playbook"] = seed_pb.name
    out["site_playbook"] = site_pb.name
    out["real_playbooks"] = seed_real and site_real
    version = subprocess.run(
        [str(bin_dir / "ansible"), "--version"], capture_output=True, text=True, timeout=120, check=False
    ).stdout.splitlines()
    out["ansible_version"] = version[0] if version else "?"
    return out


_PER_PC_ROWS = (
    "soap_requests", "signins", "shells", "commands", "receives", "wql_enumerates", "invokes",
    "n_powershell_cold_start", "n_powershell_start", "n_cscript_start", "n_slp_query", "n_ospp_query",
    "s_signin", "s_shell_create", "s_cmd_start", "s_powershell_cold_start", "s_powershell_start",
    "s_cscript_start", "s_slp_query", "s_ospp_query", "s_wql_query", "s_kms_round_trip", "s_charged_total",
    "s_slowest_pc",
)  # fmt: skip


_KMSFLEET_MODEL = re.compile(r"^(?:school(\d+)_)?model_kmsfleet_forks(\d+)_s$")


def _kmsfleet_model_rows(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``model_kmsfleet_forks<F>_s`` (and its ``school<N>_`` twin) as table rows."""
    rows = []
    for key, value in res.items():
        match = _KMSFLEET_MODEL.match(key)
        if match:
            where = f", {match[1]} PCs" if match[1] else ""
            rows.append((f"model{where}: kmsfleet --forks {match[2]}", fmt(value, "s"), ""))
    return rows


def _model_rows(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The Windows timing model's own ceiling (``model_bounds``), when measured on windows timing."""
    if "model_ideal_s" not in res:
        return []
    return [
        ("model: ideal tool, slowest PC", fmt(res["model_ideal_s"], "s"), ""),
        (
            "model: ansible forks 5 / 40",
            f"{res['model_ansible_forks5_s']:.1f} / {res['model_ansible_forks40_s']:.1f} s",
            "",
        ),
        *_kmsfleet_model_rows(res),
        ("model: speedup ceiling forks 5", fmt(res["model_bound_forks5"], "x", 1), ""),
        ("model: speedup ceiling forks 40", fmt(res["model_bound_forks40"], "x", 1), ""),
        *[
            (f"model, {SCHOOL} PCs: ceiling forks {k}", fmt(res[f"school{SCHOOL}_model_bound_forks{k}"], "x", 1), "")
            for k in (5, 40)
            if f"school{SCHOOL}_model_bound_forks{k}" in res
        ],
    ]


def print_per_pc(per_pc: dict[str, dict[str, float]]) -> None:
    """Per PC, side by side: what each contender sent and what the lab's Windows timing charged it."""
    names = list(per_pc)
    print("\nper PC (lab counters; s_* = seconds the timing model charged)")
    print(f"{'':<26}" + "".join(f"{n:>16}" for n in names))
    for row in _PER_PC_ROWS:
        print(f"{row:<26}" + "".join(f"{per_pc[n].get(row, 0):>16}" for n in names))


def parse_options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=40)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="per-request latency of every PC, drawn from [0.6, 1.4] x this"
    )
    add_timing_options(parser)
    parser.add_argument(
        "--kmsfleet-forks", type=int, default=0, help="kmsfleet --forks (default: kmsfleet's own default)"
    )
    parser.add_argument("--standin", action="store_true", help="use the stand-in playbooks even if real ones exist")
    parser.add_argument("--quick", action="store_true", help="10 PCs instead of 40")
    parser.add_argument("--run-timeout", type=float, default=600.0, help="limit for one contender, seconds")
    parser.add_argument("--timeout", type=float, default=1800.0, help="overall time limit, seconds")
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.hosts = min(opts.hosts, 10)
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_options(argv)
    with tempfile.TemporaryDirectory(prefix="kmsfleet-ansible-") as tmp:
        try:
            with time_limit(opts.timeout):
                res = measure_with_instant(
                    measure,
                    opts,
                    Path(tmp),
                    (
                        "kmsfleet_s",
                        "kmsfleet_cpu_s",
                        "ansible_forks5_s",
                        "ansible_forks40_s",
                        "speedup_forks5",
                        "speedup_forks40",
                        "speedup_site_forks5",
                        "speedup_site_forks40",
                    ),
                )
        except BenchTimeout as exc:
            print(f"ansible_compare: {exc}", file=sys.stderr)
            emit_json({"error": str(exc)})
            return 1
    print_table(
        f"ansible_compare: {res['hosts']} PCs; {res['ansible_version']}; kmsfleet {res['seed_playbook']} / "
        f"{res['site_playbook']}",
        [
            ("kmsfleet seed-procedure (same commands)", fmt(res["kmsfleet_s"], "s"), ""),
            ("kmsfleet site.yml (WMI)", fmt(res["kmsfleet_site_s"], "s"), ""),
            ("kmsfleet --forks (as recorded)", str(res["kmsfleet_forks"]), ""),
            ("ansible raw, forks 5 (default)", fmt(res["ansible_forks5_s"], "s"), ""),
            ("ansible raw, forks 40", fmt(res["ansible_forks40_s"], "s"), ""),
            ("speedup vs forks 5", fmt(res["speedup_forks5"], "x", 1), ">= 20"),
            ("speedup vs forks 40", fmt(res["speedup_forks40"], "x", 1), ">= 3"),
            ("speedup site.yml vs forks 5", fmt(res["speedup_site_forks5"], "x", 1), ""),
            ("speedup site.yml vs forks 40", fmt(res["speedup_site_forks40"], "x", 1), ""),
            ("CPU: kmsfleet seed-procedure", fmt(res["kmsfleet_cpu_s"], "s"), ""),
            ("CPU: kmsfleet site.yml", fmt(res["kmsfleet_site_cpu_s"], "s"), ""),
            ("CPU: ansible forks 5", fmt(res["ansible_forks5_cpu_s"], "s"), ""),
            ("CPU: ansible forks 40", fmt(res["ansible_forks40_cpu_s"], "s"), ""),
            *_model_rows(res),
        ],
    )
    print_per_pc(res["per_pc"])
    emit_json(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
