"""An attacker who can read and write the Redis broker, against a real redis-server, real `kmsfleet worker` and
controller subprocesses and a real lab (everything on loopback).

Each attack is refused; the lab's own control API is the ground truth that nothing ran on a PC (request
counters, each PC's KMS host), and the controller's report, history database and exit code stay true.
Fast checks of the pieces (signatures, policy, queue-entry shapes, key files, CLI errors, the dependency
metadata) come first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import secrets
import sqlite3
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from distkit import Keyring, Monitor, RedisServer, WorkerProcess, kombu_bodies, require_redis, serve_redis
from labkit import KMSFLEET, PASSWORD, hosts_by_name, read_report, room_spec, run_cli, start_lab

from orchestrator.distributed.celery_app import TASK_NAME, make_app, presence_key, queue_name
from orchestrator.distributed.keys import private_path, public_path
from orchestrator.distributed.kombu_guard import is_task_entry
from orchestrator.distributed.liveness import announce
from orchestrator.distributed.message import BatchMessage, BatchOptions, HostEntry
from orchestrator.distributed.policy import PolicyError, WorkerPolicy, parse_networks
from orchestrator.distributed.signing import (
    DOMAIN_BATCH,
    DOMAIN_EVENT,
    DOMAIN_OPEN,
    SignatureError,
    Signer,
    Verifier,
    canonical,
    generate,
    load_private,
    load_public,
)
from orchestrator.errors import InputError
from orchestrator.executor.loading import load_plan
from orchestrator.executor.plan_codec import encode_plan
from orchestrator.lab.addresses import claim_prefix
from orchestrator.lab.control_client import LabControl
from orchestrator.lab.runner import LabThread
from orchestrator.results.codec import host_result_to_json
from orchestrator.results.models import HostStatus

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "tests" / "fixtures" / "distributed" / "light.yml"
SITE = "school_a"
N = 4
NAMES = [f"pc{i:02d}" for i in range(1, N + 1)]
EVIL_KMS = "203.0.113.66"  # TEST-NET-3: only ever written into messages that must be refused, never contacted
EVIL_PLAYBOOK = f"""- name: injected
  hosts: all
  gather_facts: false
  tasks:
    - name: injected task
      wmi_method:
        class: SoftwareLicensingService
        method: SetKeyManagementServiceMachine
        params:
          MachineName: "{EVIL_KMS}"
"""
ENV_MARK = "env-" + secrets.token_hex(8)  # in the worker's environment
FILE_MARK = "file-" + secrets.token_hex(8)  # in a file beside the worker
redis_tests = pytest.mark.redis


# ------------------------------------------------------------------------------------------------ fast checks


def _keypair(folder: Path, role: str = "controller") -> Signer:
    generate(private_path(folder, role), public_path(folder, role))
    return load_private(private_path(folder, role), role)


def test_signatures_cover_every_byte_and_are_bound_to_their_purpose(tmp_path: Path) -> None:
    signer = _keypair(tmp_path / "a")
    other = _keypair(tmp_path / "b")
    verifier = Verifier([load_public(public_path(tmp_path / "a", "controller"), "a")])
    value = {"b": [1, "é"], "a": {"z": None, "y": True}}
    assert canonical(value) == '{"a":{"y":true,"z":null},"b":[1,"é"]}'
    envelope = signer.sign(DOMAIN_BATCH, value)
    assert verifier.open(DOMAIN_BATCH, envelope) == value
    with pytest.raises(SignatureError, match="bad signature"):
        verifier.open(DOMAIN_EVENT, envelope)  # a batch signature is no event signature
    for field, new in (("body", envelope["body"].replace("1", "2")), ("sig", "A" * 88), ("kid", other.kid)):
        with pytest.raises(SignatureError):
            verifier.open(DOMAIN_BATCH, {**envelope, field: new})
    with pytest.raises(SignatureError, match="not pinned"):
        verifier.open(DOMAIN_BATCH, other.sign(DOMAIN_BATCH, value))
    for bad in (None, [], {"body": "{}"}, {**envelope, "extra": 1}, {**envelope, "v": 2}):
        with pytest.raises(SignatureError):
            verifier.open(DOMAIN_BATCH, bad)


def test_private_keys_are_written_0600_and_refused_when_others_can_read_them(tmp_path: Path) -> None:
    _keypair(tmp_path)
    key = private_path(tmp_path, "controller")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    with pytest.raises(InputError, match="already exists"):
        generate(key, public_path(tmp_path, "controller"))
    key.chmod(0o644)
    with pytest.raises(InputError, match="can be read by other users"):
        load_private(key, "the controller's signing key")
    with pytest.raises(InputError, match="no private key"):
        load_private(tmp_path / "missing.key", "x")


def test_the_worker_policy_refuses_what_would_expose_its_password_or_leave_its_ranges() -> None:
    policy = WorkerPolicy(SITE, tuple(parse_networks(["127.0.0.0/8", "10.1.0.0/16"])))
    fine = {"ansible_host": "10.1.2.3", "ansible_winrm_transport": "ntlm", "ansible_port": 5985}
    policy.check_vars("pc01", fine)
    policy.check_vars("pc01", {**fine, "ansible_winrm_transport": "basic", "ansible_winrm_scheme": "https"})
    refused = {
        "outside": {**fine, "ansible_host": "192.0.2.1"},
        "basic over http": {**fine, "ansible_winrm_transport": "basic", "kmsfleet_allow_insecure_basic": True},
        "insecure flag": {**fine, "kmsfleet_allow_insecure_basic": "yes"},
        "cert ignore": {**fine, "ansible_winrm_server_cert_validation": "ignore"},
        "cert false": {**fine, "ansible_winrm_server_cert_validation": False},
        "proxy": {**fine, "ansible_winrm_proxy": "http://127.0.0.1:3128"},
        "plain messages": {**fine, "ansible_winrm_message_encryption": "never"},
        "template host": {**fine, "ansible_host": "{{ evil }}"},
    }
    for label, variables in refused.items():
        with pytest.raises(PolicyError):
            policy.check_vars("pc01", variables)
            pytest.fail(label)
    with pytest.raises(PolicyError, match="serves only"):
        policy.check_site("school_b")
    with pytest.raises(InputError, match="not an address range"):
        parse_networks(["10.0.0.0/33"])


def test_only_the_shape_of_a_kmsfleet_task_reaches_celery() -> None:
    import base64

    body = base64.b64encode(json.dumps([[{"v": 1}], {}, {}]).encode()).decode()
    good = {
        "body": body,
        "content-type": "application/json",
        "content-encoding": "utf-8",
        "headers": {"task": TASK_NAME, "id": "x"},
        "properties": {"body_encoding": "base64", "delivery_tag": "t", "delivery_info": {}},
    }
    assert is_task_entry(good) is None
    assert is_task_entry([1]) and is_task_entry({}) and is_task_entry({**good, "body": "!!"})
    assert is_task_entry({**good, "headers": {"task": "celery.evil", "id": "x"}})
    assert is_task_entry({**good, "content-type": "application/x-python-serialize"})
    two_args = base64.b64encode(json.dumps([[1, 2], {}, {}]).encode()).decode()
    assert is_task_entry({**good, "body": two_args})


def test_the_runtime_dependency_brings_kombus_redis_transport() -> None:
    """A fresh install must run `kmsfleet worker` (kombu's Redis transport imports `packaging`, which only
    Celery's `redis` extra pulls in): the declared requirement and the installed metadata say so."""
    import tomllib

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(re.match(r"celery\[redis\]", d) for d in declared), declared
    assert any(re.match(r"celery\[redis\]", d) for d in metadata.requires("kmsfleet") or [])
    celery_redis = [r for r in metadata.requires("celery") or [] if 'extra == "redis"' in r]
    assert any(r.startswith("kombu[redis]") for r in celery_redis), celery_redis
    kombu_redis = [r.split(";")[0] for r in metadata.requires("kombu") or [] if 'extra == "redis"' in r]
    assert any(r.startswith("packaging") for r in kombu_redis) and any(r.startswith("redis") for r in kombu_redis)


def test_keys_cli_and_clear_errors_when_keys_or_broker_are_missing(tmp_path: Path) -> None:
    env = {"KMSFLEET_KEYS": str(tmp_path / "ctl")}
    made = run_cli("keys", "init", "--role", "controller", env=env)
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE((tmp_path / "ctl" / "controller.key").stat().st_mode) == 0o600
    again = run_cli("keys", "init", "--role", "controller", env=env)
    assert again.returncode != 0 and "already exists" in again.stderr and "Traceback" not in again.stderr
    worker = run_cli("keys", "init", "--role", "worker", "--keys", str(tmp_path / "wrk"))
    assert worker.returncode == 0, worker.stderr
    pin = run_cli("keys", "trust", "--site", SITE, str(tmp_path / "wrk" / "worker.pub"), env=env)
    assert pin.returncode == 0 and (tmp_path / "ctl" / "workers" / f"{SITE}.pub").is_file(), pin.stderr
    pin2 = run_cli(
        "keys", "trust", "--controller", str(tmp_path / "ctl" / "controller.pub"), "--keys", str(tmp_path / "wrk")
    )
    assert pin2.returncode == 0 and (tmp_path / "wrk" / "controller.pub").is_file()

    inv = tmp_path / "inv.yml"
    inv.write_text(yaml.safe_dump({"all": {"hosts": {"pc01": {"site": "school_z", "ansible_host": "127.0.0.9"}}}}))
    url_file = tmp_path / "broker.url"
    url_file.write_text("# the broker\nredis://:s3cret-broker@127.0.0.1:1/0\n")
    run = run_cli("run", str(PLAYBOOK), "-i", str(inv), "--distributed", "--broker-url-file", str(url_file), env=env)
    out = run.stdout + run.stderr
    assert run.returncode != 0 and "Traceback" not in out
    assert "no pinned worker key for site(s) school_z" in out and "kmsfleet keys trust" in out
    assert "s3cret-broker" not in out
    nourl = run_cli("run", str(PLAYBOOK), "-i", str(inv), "--distributed", env={**env, "KMSFLEET_BROKER_URL": ""})
    assert nourl.returncode != 0 and "--broker-url-file" in nourl.stdout + nourl.stderr
    w = run_cli("worker", "--site", SITE, "--broker-url-file", str(url_file), "--keys", str(tmp_path / "wrk"))
    assert w.returncode != 0 and "--allow-hosts" in w.stdout + w.stderr and "Traceback" not in w.stderr
    w2 = run_cli(
        "worker",
        "--site",
        SITE,
        "--allow-hosts",
        "127.0.0.0/8",
        "--keys",
        str(tmp_path / "none"),
        env={"KMSFLEET_BROKER_URL": "redis://127.0.0.1:1/0"},
    )
    assert w2.returncode != 0 and "no private key" in w2.stdout + w2.stderr and "Traceback" not in w2.stderr


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def keyring(tmp_path_factory: pytest.TempPathFactory) -> Keyring:
    return Keyring(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    yield from serve_redis(tmp_path_factory.mktemp("redis"))


@pytest.fixture(scope="module")
def lab() -> Iterator[LabThread]:
    claim = claim_prefix()
    hosts = [{"name": name} for name in NAMES]
    defaults = {"os": "Windows 10 Education", "windows_channel": "volume", "windows_state": "unlicensed"}
    started = start_lab({"rooms": [room_spec(claim, hosts, defaults=defaults)], "seed": 3})
    try:
        yield started
    finally:
        started.stop()
        claim.release()


@pytest.fixture(scope="module")
def worker(
    redis_server: RedisServer, keyring: Keyring, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    log = tmp_path_factory.mktemp("worker") / f"{SITE}.log"
    (log.parent / "worker-secret.txt").write_text(FILE_MARK)
    proc = WorkerProcess(SITE, redis_server.url, log, keyring.worker(SITE)).start(env={"WORKER_MARK": ENV_MARK})
    try:
        yield proc
    finally:
        assert proc.proc is not None and proc.proc.poll() is None, "the worker must still be running"
        assert proc.stop() == 0


def inventory(lab: LabThread, path: Path, site: str = SITE) -> Path:
    data = yaml.safe_load(lab.inventory_path.read_text())
    for group in data["all"]["children"].values():
        group["vars"]["site"] = site
    path.write_text(yaml.safe_dump(data))
    return path


def truth(lab: LabThread) -> tuple[int, dict[str, str]]:
    """What the lab saw: WS-Management requests in all, and each PC's KMS host."""
    control = LabControl(lab.control_url)
    return int(control.stats()["http_requests"]), {
        h["name"]: str(h["machine"]["kms_host"]) for h in control.hosts() if h["name"] in NAMES
    }


def host_entries(lab: LabThread, **override: Any) -> list[HostEntry]:
    data = yaml.safe_load(lab.inventory_path.read_text())
    out = []
    for group_name, group in data["all"]["children"].items():
        for name, hv in group["hosts"].items():
            merged = {**group["vars"], **hv, "site": SITE, **override}
            merged.pop("ansible_password", None)
            out.append(HostEntry(name=name, groups=[group_name], vars=merged))
    return out


def batch(
    hosts: list[HostEntry],
    *,
    run_id: str,
    nonce: str,
    site: str = SITE,
    playbook: str = EVIL_PLAYBOOK,
    expires_in: float = 600.0,
    batch_id: str = "school_a-0001",
) -> dict[str, Any]:
    now = time.time()
    msg = BatchMessage(
        run_id=run_id,
        nonce=nonce,
        batch_id=batch_id,
        site=site,
        issued=now,
        expires=now + expires_in,
        playbook="pb.yml",
        plan=compiled(playbook),
        options=BatchOptions(forks=5),
        hosts=hosts,
        selections={"all": [h.name for h in hosts]},
    )
    return msg.model_dump(mode="json")


def compiled(playbook: str) -> dict[str, Any]:
    """A playbook's compiled plan as a batch carries it (a forger holding the controller key could send any)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pb.yml"
        path.write_text(playbook, encoding="utf-8")
        return encode_plan(load_plan(path))


def open_run(client: Any, signer: Signer, run_id: str, nonce: str, *, age: float = 0.0) -> None:
    token = signer.sign(DOMAIN_OPEN, {"run": run_id, "n": nonce, "ts": time.time() - age})
    client.set(f"kmsfleet:run:{run_id}:open", json.dumps(token), ex=600)


def send(url: str, *envelopes: Any, site: str = SITE) -> None:
    app = make_app(url)
    try:
        for envelope in envelopes:
            app.send_task(TASK_NAME, args=[envelope], queue=queue_name(site))
    finally:
        app.close()


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def log_count(worker: WorkerProcess, text: str) -> int:
    return worker.log.read_text(errors="replace").count(text)


def signed_events(client: Any, run_id: str, keyring: Keyring, site: str = SITE) -> list[dict[str, Any]]:
    verifier = Verifier([load_public(public_path(keyring.worker(site), "worker"), "worker")])
    out = []
    for _id, fields in client.xrange(f"kmsfleet:run:{run_id}:events"):
        out.append(verifier.open(DOMAIN_EVENT, json.loads(fields[b"m"])))
    return out


def controller(keyring: Keyring, url: str) -> Signer:
    return load_private(private_path(keyring.controller, "controller"), "controller")


# ------------------------------------------------------------------------------------------------ attacks


@redis_tests
def test_forged_and_unsigned_batches_are_refused_and_reach_no_pc(
    lab: LabThread, redis_server: RedisServer, keyring: Keyring, worker: WorkerProcess, tmp_path: Path
) -> None:
    before = truth(lab)
    client = redis_server.client()
    attacker = _keypair(tmp_path / "attacker")
    run_id, nonce = "evil00000001", secrets.token_hex(16)
    open_run(client, attacker, run_id, nonce)  # the attacker's own "open" token, and the old way: "1"
    client.set(f"kmsfleet:run:{run_id}:open", "1")
    plain = batch(host_entries(lab), run_id=run_id, nonce=nonce)
    base = log_count(worker, "refused a batch message")
    send(redis_server.url, plain, attacker.sign(DOMAIN_BATCH, plain), "slmgr /skms 203.0.113.66", {"v": 1})
    wait_for(lambda: log_count(worker, "refused a batch message") >= base + 4, 30, "the worker to refuse 4 batches")
    log = worker.log.read_text()
    assert "not a signed kmsfleet envelope" in log and "which is not pinned here" in log
    assert truth(lab) == before  # not one request reached a PC
    assert worker.proc is not None and worker.proc.poll() is None


@redis_tests
def test_a_signed_batch_whose_plan_is_not_a_plan_is_dropped_as_poison(
    lab: LabThread, redis_server: RedisServer, keyring: Keyring, worker: WorkerProcess
) -> None:
    before = truth(lab)
    client = redis_server.client()
    signer = controller(keyring, redis_server.url)
    plan = compiled(EVIL_PLAYBOOK)
    task = plan["f"]["plays"]["v"][0]["f"]["tasks"]["v"][0]
    unknown = json.loads(json.dumps(plan).replace('"!t": "task"', '"!t": "subprocess.Popen"', 1))
    wrong_type = json.loads(json.dumps(plan))
    wrong_type["f"]["plays"]["v"][0]["f"]["tasks"]["v"][0]["f"]["args"] = ["not", "a", "mapping"]
    assert task["!t"] == "task"
    base = log_count(worker, "refused a batch message")
    for i, bad in enumerate((unknown, wrong_type)):
        run_id, nonce = f"poison{i:06d}", secrets.token_hex(16)
        open_run(client, signer, run_id, nonce)
        body = batch(host_entries(lab), run_id=run_id, nonce=nonce)
        body["plan"] = bad
        send(redis_server.url, signer.sign(DOMAIN_BATCH, body))
    wait_for(lambda: log_count(worker, "refused a batch message") >= base + 2, 30, "the worker to refuse 2 plans")
    log = worker.log.read_text()
    assert "unknown type tag 'subprocess.Popen'" in log
    assert "args: list is not" in log
    assert truth(lab) == before  # not one request reached a PC
    assert worker.proc is not None and worker.proc.poll() is None


STOLEN_KEY_CASES: dict[str, dict[str, Any]] = {  # host vars a batch sets; each refused as a whole
    "basic over http": {"ansible_winrm_transport": "basic", "kmsfleet_allow_insecure_basic": True},
    "certificate ignore": {"ansible_winrm_scheme": "https", "ansible_winrm_server_cert_validation": "ignore"},
    "proxy": {"ansible_winrm_proxy": "http://127.0.0.1:3128"},
    "outside its ranges": {"ansible_host": "192.0.2.10"},
    "credssp (hands over the password)": {"ansible_winrm_transport": "credssp"},
    "plaintext (pywinrm's word for basic) over http": {"ansible_winrm_transport": "plaintext, ntlm"},
    "a client key file on the worker": {
        "ansible_winrm_transport": "certificate",
        "ansible_winrm_scheme": "https",
        "ansible_winrm_cert_pem": "/etc/ssl/certs/ca-certificates.crt",
        "ansible_winrm_cert_key_pem": "/etc/ssl/private/ssl-cert-snakeoil.key",
    },
}


@redis_tests
def test_a_stolen_controller_key_still_meets_the_workers_own_policy(
    lab: LabThread, redis_server: RedisServer, keyring: Keyring, worker: WorkerProcess
) -> None:
    before = truth(lab)
    client = redis_server.client()
    signer = controller(keyring, redis_server.url)
    runs = {}
    base = log_count(worker, "refused batch ")
    for label, override in STOLEN_KEY_CASES.items():
        run_id, nonce = f"steal{len(runs):07d}", secrets.token_hex(16)
        open_run(client, signer, run_id, nonce)
        send(
            redis_server.url,
            signer.sign(DOMAIN_BATCH, batch(host_entries(lab, **override), run_id=run_id, nonce=nonce)),
        )
        runs[label] = run_id
    wait_for(lambda: log_count(worker, "refused batch ") >= base + len(STOLEN_KEY_CASES), 40, "the policy refusals")
    for label, run_id in runs.items():
        events = signed_events(client, run_id, keyring)
        assert [e["t"] for e in events] == ["batch_failed"], label
        assert "refused by the worker's policy" in events[0]["error"], (label, events)

    # another site's batch, an expired one, and lookups of the worker's environment and files
    base = log_count(worker, "refused a batch message")
    run_id, nonce = "steal0000099", secrets.token_hex(16)
    open_run(client, signer, run_id, nonce)
    hosts = host_entries(lab)
    send(
        redis_server.url,
        signer.sign(DOMAIN_BATCH, batch(hosts, run_id=run_id, nonce=nonce, site="school_b")),
        signer.sign(DOMAIN_BATCH, batch(hosts, run_id=run_id, nonce=nonce, expires_in=-5)),
    )
    wait_for(lambda: log_count(worker, "refused a batch message") >= base + 2, 30, "site and expiry refusals")
    log = worker.log.read_text()
    assert "serves only 'school_a'" in log and "expired" in log

    peek = """- hosts: all
  gather_facts: false
  tasks:
    - debug: {msg: "{{ lookup('env', 'WORKER_MARK') }}"}
      ignore_errors: true
    - debug: {msg: "{{ lookup('file', '%s') }}"}
""" % (worker.log.parent / "worker-secret.txt")
    run_id = "steal0000100"
    open_run(client, signer, run_id, nonce)
    send(redis_server.url, signer.sign(DOMAIN_BATCH, batch(hosts, run_id=run_id, nonce=nonce, playbook=peek)))
    wait_for(
        lambda: any(e["t"] == "batch_done" for e in signed_events(client, run_id, keyring)), 60, "the lookup batch"
    )
    text = json.dumps(signed_events(client, run_id, keyring))
    assert "refused by the worker's policy: lookup('env', 'WORKER_MARK')" in text
    assert "refused by the worker's policy: lookup('file'" in text
    assert ENV_MARK not in text and FILE_MARK not in text
    assert truth(lab)[1] == before[1]  # no PC was pointed anywhere


FILE_READERS = {
    "include_vars absolute": "- include_vars: {file: '%(dir)s/leak.yml'}\n    - debug: {var: leak}",
    "include_vars traversal": "- include_vars: {file: '%(up)s/leak.yml'}\n    - debug: {var: leak}",
    "include_vars dir": "- include_vars: {dir: '%(dir)s'}\n    - debug: {var: leak}",
    "win_template absolute": "- win_template: {src: '%(dir)s/leak.j2', dest: 'C:\\\\leak.txt'}",
    "win_copy absolute": "- win_copy: {src: '%(dir)s/leak.yml', dest: 'C:\\\\leak.txt'}",
    "script absolute": "- script: '%(dir)s/leak.ps1'",
    "role_path from play vars": "- win_template: {src: leak.j2, dest: 'C:\\\\leak.txt'}",
}


@redis_tests
def test_a_signed_plan_cannot_make_the_worker_read_its_own_files(
    lab: LabThread, redis_server: RedisServer, keyring: Keyring, worker: WorkerProcess
) -> None:
    """Modules that read a file where they run (Ansible: on the controller) would read the *worker's* files:
    absolute paths, ``../`` out of the batch's private folder, ``role_path`` set by the plan's own vars, and a
    plan whose play still lists ``vars_files``. Each such batch is refused as a whole and its controller told."""
    before = truth(lab)
    client = redis_server.client()
    signer = controller(keyring, redis_server.url)
    folder = worker.log.parent
    (folder / "leak.yml").write_text(f"leak: {FILE_MARK}\n")
    (folder / "leak.j2").write_text(f"{FILE_MARK}\n")
    (folder / "leak.ps1").write_text(f"Write-Output '{FILE_MARK}'\n")
    where = {"dir": str(folder), "up": "../" * 20 + str(folder).lstrip("/")}
    runs: dict[str, str] = {}
    hosts = host_entries(lab)
    for i, (label, task) in enumerate(FILE_READERS.items()):
        play_vars = f"  vars: {{role_path: '{folder}'}}\n" if label.startswith("role_path") else ""
        playbook = f"- hosts: all\n  gather_facts: false\n{play_vars}  tasks:\n    {task % where}\n"
        run_id, nonce = f"files{i:07d}", secrets.token_hex(16)
        open_run(client, signer, run_id, nonce)
        body = batch(hosts, run_id=run_id, nonce=nonce, playbook=playbook)
        body["options"]["diff"] = True  # win_template would show what it read
        send(redis_server.url, signer.sign(DOMAIN_BATCH, body))
        runs[label] = run_id
    run_id, nonce = "files0000099", secrets.token_hex(16)
    open_run(client, signer, run_id, nonce)
    body = batch(hosts, run_id=run_id, nonce=nonce, playbook=PEEK_VAR)
    leak = {"candidates": {"!t": "tuple", "v": [str(folder / "leak.yml")]}, "base_dir": str(folder), "location": None}
    body["plan"]["f"]["plays"]["v"][0]["f"]["vars_files"] = {"!t": "tuple", "v": [{"!t": "vars_file", "f": leak}]}
    send(redis_server.url, signer.sign(DOMAIN_BATCH, body))
    runs["vars_files left in the plan"] = run_id

    def finished(run: str) -> bool:
        return any(e["t"] in ("batch_done", "batch_failed") for e in signed_events(client, run, keyring))

    wait_for(lambda: all(finished(r) for r in runs.values()), 90, "every file-reading batch")
    for label, run in runs.items():
        events = signed_events(client, run, keyring)
        assert FILE_MARK not in json.dumps(events), label
        assert [e["t"] for e in events] == ["batch_failed"], (label, events)
        assert "refused by the worker's policy" in events[0]["error"], (label, events)
        assert "reads files on the worker" in events[0]["error"] or "vars_files" in events[0]["error"], label
    assert truth(lab) == before  # nothing was copied to or run on a PC


_PING = "    - win_ping:\n      ignore_errors: true\n      ignore_unreachable: true\n"
RUNTIME_SETTINGS = {  # what each plan sets at run time -> the refusal expected (a PC's connection is made once)
    "    - set_fact: {ansible_winrm_transport: credssp}\n": "CredSSP delegates the password itself",
    "    - set_fact: {ansible_winrm_server_cert_validation: /etc/ssl/certs/ca-certificates.crt}\n": (
        "name files on the worker"
    ),
    "    - set_fact: {ansible_host: 192.0.2.10}\n": "192.0.2.10 is outside this worker's --allow-hosts",
}


@redis_tests
def test_connection_settings_a_plan_makes_at_run_time_meet_the_policy(
    lab: LabThread, redis_server: RedisServer, keyring: Keyring, worker: WorkerProcess
) -> None:
    """``set_fact`` is not in the batch's host variables, so the check before the batch runs cannot see it;
    each PC's final settings are checked again just before connecting, and nothing reaches a PC."""
    before = truth(lab)
    client = redis_server.client()
    signer = controller(keyring, redis_server.url)
    runs = {}
    for i, (task, refusal) in enumerate(RUNTIME_SETTINGS.items()):
        playbook = f"- hosts: all\n  gather_facts: false\n  tasks:\n{task}{_PING}"
        run_id, nonce = f"runtime{i:05d}", secrets.token_hex(16)
        open_run(client, signer, run_id, nonce)
        send(
            redis_server.url,
            signer.sign(DOMAIN_BATCH, batch(host_entries(lab), run_id=run_id, nonce=nonce, playbook=playbook)),
        )
        runs[run_id] = refusal
    for run_id, refusal in runs.items():
        wait_for(lambda r=run_id: any(e["t"] == "batch_done" for e in signed_events(client, r, keyring)), 60, run_id)  # type: ignore[misc]
        text = json.dumps(signed_events(client, run_id, keyring))
        assert (
            set(re.findall(r"refused by the worker's policy: host (pc\d+)", text)) == set(NAMES) and refusal in text
        ), text[-3000:]
    assert truth(lab) == before  # not one request reached a PC


READ_PASSWORD = """- hosts: all
  gather_facts: false
  tasks:
    - debug: {msg: "{{ lookup('env', 'KMSFLEET_PASSWORD') | reverse }}"}
    - debug: {msg: "{{ lookup('env', 'KMSFLEET_PASSWORD') | list | join('-') }}"}
    - debug: {msg: "{{ lookup('env', 'KMSFLEET_PASSWORD') | hash('sha1') }}"}
    - debug: {msg: "{{ lookup('env', 'KMSFLEET_PASSWORD')[::2] }} {{ lookup('env', 'KMSFLEET_PASSWORD')[1::2] }}"}
    - debug: {msg: "{{ ansible_password | reverse }}"}
    - win_ping:
"""


@redis_tests
def test_a_signed_plan_cannot_read_the_workers_password_through_a_template(
    lab: LabThread, redis_server: RedisServer, keyring: Keyring, worker: WorkerProcess
) -> None:
    """The mask catches the password and its encodings, not every transform a template can make of it
    (reversed, one character at a time, hashed). Templates on a worker never see the password itself."""
    client = redis_server.client()
    signer = controller(keyring, redis_server.url)
    run_id, nonce = "password0001", secrets.token_hex(16)
    open_run(client, signer, run_id, nonce)
    from_env = "{{ lookup('env', 'KMSFLEET_PASSWORD') }}"  # as inventories/city gives it: rendered on the worker
    hosts = [h.model_copy(update={"vars": {**h.vars, "ansible_password": from_env}}) for h in host_entries(lab)]
    body = batch(hosts, run_id=run_id, nonce=nonce, playbook=READ_PASSWORD)
    send(redis_server.url, signer.sign(DOMAIN_BATCH, body))
    wait_for(lambda: any(e["t"] == "batch_done" for e in signed_events(client, run_id, keyring)), 60, "the batch")
    text = json.dumps(signed_events(client, run_id, keyring), ensure_ascii=False)
    forms = {
        "reversed": PASSWORD[::-1],
        "joined": "-".join(PASSWORD),
        "sha1": hashlib.sha1(PASSWORD.encode()).hexdigest(),
        "halves": f"{PASSWORD[::2]} {PASSWORD[1::2]}",
    }
    assert not [label for label, form in forms.items() if json.dumps(form)[1:-1] in text], text[-2000:]
    done = [e["r"]["host"] for e in signed_events(client, run_id, keyring) if e["t"] == "host"]
    assert sorted(h["host"] for h in done if h["status"] == "ok") == NAMES, json.dumps(done)[:3000]  # signs in


PEEK_VAR = """- hosts: all
  gather_facts: false
  tasks:
    - debug: {var: leak}
"""


def _controller_run(keyring: Keyring, url: str, inv: Path, tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    out = open(tmp_path / "controller.out", "w", encoding="utf-8")  # noqa: SIM115 - closed by the caller's wait
    return subprocess.Popen(
        [
            KMSFLEET, "run", str(PLAYBOOK), "-i", str(inv), "--distributed", "--keys", str(keyring.controller),
            "--report", str(tmp_path / "run.json"), "--db", str(tmp_path / "run.db"), *extra,
        ],
        stdout=out, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "KMSFLEET_BROKER_URL": url},
    )  # fmt: skip


def _open_runs(client: Any) -> set[str]:
    return {k.decode().split(":")[2] for k in client.scan_iter(match="kmsfleet:run:*:open")}


def _run_id(client: Any, before: set[str], timeout: float = 30) -> str:
    """The id of the run a controller just opened (``before``: the runs open before it started)."""
    found: list[str] = []

    def check() -> bool:
        found.extend(_open_runs(client) - before)
        return bool(found)

    wait_for(check, timeout, "the controller to open its run")
    return found[0]


def _history(db: Path, run_id: str) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT host, status FROM host_results WHERE run_id = ?", (run_id,))
        return {str(h): str(s) for h, s in rows}


@redis_tests
def test_a_batch_rewritten_in_the_queue_is_refused_and_the_run_stays_true(
    lab: LabThread, redis_server: RedisServer, keyring: Keyring, tmp_path: Path
) -> None:
    site = "school_t"
    folder = keyring.worker(site)
    worker_key = load_private(private_path(folder, "worker"), "worker")
    client = redis_server.client()
    kms = str(yaml.safe_load(lab.inventory_path.read_text())["all"]["children"]["room101"]["vars"]["kms_host"])
    inv = inventory(lab, tmp_path / "inv.yml", site)
    # The site's worker announced itself (its genuine presence key) but is slow to take the batch: the batch
    # waits in the queue, where the attacker rewrites it.
    node = "slow@worker"
    announce(client, worker_key, site, node)
    proc = _controller_run(keyring, redis_server.url, inv, tmp_path, "--site-timeout", "30")
    queue = queue_name(site)
    real: WorkerProcess | None = None
    try:
        deadline = time.monotonic() + 30
        while client.llen(queue) == 0 and time.monotonic() < deadline:
            announce(client, worker_key, site, node)
            time.sleep(0.2)
        raw = client.rpop(queue)
        assert raw is not None, "the controller never queued the batch"
        entry = json.loads(raw)
        import base64

        args = json.loads(base64.b64decode(entry["body"]))
        envelope = args[0][0]
        body = json.loads(envelope["body"])
        body["plan"] = compiled(EVIL_PLAYBOOK)  # the injected task
        envelope["body"] = json.dumps(body)  # the controller's signature kept
        entry["body"] = base64.b64encode(json.dumps(args).encode()).decode()
        client.rpush(queue, json.dumps(entry))
        client.delete(presence_key(site, node))
        real = WorkerProcess(site, redis_server.url, tmp_path / "worker.log", folder).start()
        proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
        if real is not None:
            assert real.stop() == 0
    out = (tmp_path / "controller.out").read_text()
    assert "Traceback" not in out
    log = (tmp_path / "worker.log").read_text()
    assert "refused a batch message: not signed by the pinned controller key: bad signature" in log
    assert re.search(r"refused a copy of batch school_t-0001 .*; sent again", out), out[-3000:]
    assert proc.returncode == 0, out[-3000:]
    report = read_report(tmp_path / "run.json")
    hosts = hosts_by_name(report)
    assert sorted(hosts) == NAMES
    for h in hosts.values():
        assert h["status"] in ("ok", "changed") and "injected" not in json.dumps(h), h
    assert set(_history(tmp_path / "run.db", report["run"]["id"]).values()) <= {"ok", "changed"}
    assert truth(lab)[1] == dict.fromkeys(NAMES, kms)  # the genuine KMS host, never the injected one


@redis_tests
def test_an_old_batch_replayed_is_refused(
    lab: LabThread, redis_server: RedisServer, keyring: Keyring, worker: WorkerProcess, tmp_path: Path
) -> None:
    client = redis_server.client()
    inv = inventory(lab, tmp_path / "inv.yml")
    monitor = Monitor(redis_server.port, tmp_path / "monitor.log")
    tokens: list[bytes] = []
    try:
        before_runs = _open_runs(client)
        proc = _controller_run(keyring, redis_server.url, inv, tmp_path)
        run_id = _run_id(client, before_runs)
        while proc.poll() is None:
            token = client.get(f"kmsfleet:run:{run_id}:open")
            if token:
                tokens.append(token)
            time.sleep(0.05)
        proc.wait(120)
    finally:
        log = monitor.stop()
    assert proc.returncode == 0, (tmp_path / "controller.out").read_text()[-3000:]
    envelopes = [json.loads(b)[0][0] for b in kombu_bodies(log) if "batch_id" in b]
    assert envelopes, "no batch message recorded"
    open_tokens = [t for t in tokens if b"closed" not in t]
    assert open_tokens
    before = truth(lab)
    key = f"kmsfleet:run:{run_id}:open"
    base = log_count(worker, "refused a batch message")
    signer = controller(keyring, redis_server.url)
    nonce = json.loads(envelopes[0]["body"])["nonce"]
    # 1. the run's closed token as the controller left it; 2. "open" set by hand; 3. the last genuine open
    # token replayed (this worker already ran that batch); 4. a genuinely signed but old token
    attempts: list[Callable[[], Any]] = [
        lambda: None,
        lambda: client.set(key, "1"),
        lambda: client.set(key, open_tokens[-1]),
        lambda: open_run(client, signer, run_id, nonce, age=3600),
    ]
    for i, prepare in enumerate(attempts, 1):
        prepare()
        send(redis_server.url, envelopes[0])
        wait_for(lambda i=i: log_count(worker, "refused a batch message") >= base + i, 30, f"replay {i} refused")  # type: ignore[misc]
    log_text = worker.log.read_text()
    refusals = re.findall(r"refused a batch message: (.*)", log_text)[-4:]
    stale = [bool(re.search("has no fresh signed open token", r)) for r in refusals]
    assert stale == [True, True, False, True], refusals
    assert "was already run here (replay)" in refusals[2], refusals
    assert truth(lab) == before


def _forged_host(name: str, site: str, run_id: str, nonce: str) -> dict[str, Any]:
    from results_factory import make_host

    result = dataclasses.replace(make_host(2, host=name), status=HostStatus.OK, msg="All fine")
    return {
        "run": run_id,
        "n": nonce,
        "b": f"{site}-0001",
        "a": 1,
        "s": site,
        "t": "host",
        "r": host_result_to_json(result),
    }


@redis_tests
def test_forged_results_for_a_site_without_worker_are_not_believed(
    lab: LabThread, redis_server: RedisServer, keyring: Keyring, worker: WorkerProcess, tmp_path: Path
) -> None:
    site = "school_x"
    keyring.pin_sites(site)  # the controller knows the site's key; no worker of it runs
    client = redis_server.client()
    attacker = _keypair(tmp_path / "attacker", "worker")
    stolen_a = load_private(private_path(keyring.worker(SITE), "worker"), "worker")  # a *different* site's key
    before = truth(lab)
    inv = inventory(lab, tmp_path / "inv.yml", site)
    before_runs = _open_runs(client)
    proc = _controller_run(keyring, redis_server.url, inv, tmp_path, "--site-timeout", "8")
    try:
        run_id = _run_id(client, before_runs)
        token = json.loads(client.get(f"kmsfleet:run:{run_id}:open"))
        nonce = json.loads(token["body"])["n"]  # the nonce is no secret: anyone reading the broker sees it
        stream = f"kmsfleet:run:{run_id}:events"
        announce(client, attacker, site, "fake@worker")  # a worker that is not there
        for name in NAMES:
            event = _forged_host(name, site, run_id, nonce)
            client.xadd(stream, {"e": json.dumps(event)})  # the old, unsigned format
            client.xadd(stream, {"m": json.dumps(attacker.sign(DOMAIN_EVENT, event))})
            client.xadd(stream, {"m": json.dumps(stolen_a.sign(DOMAIN_EVENT, event))})
            client.xadd(stream, {"m": json.dumps(stolen_a.sign(DOMAIN_EVENT, {**event, "s": SITE}))})
        client.xadd(stream, {"m": "not json"})
        proc.wait(90)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = (tmp_path / "controller.out").read_text()
    assert "Traceback" not in out
    report = read_report(tmp_path / "run.json")
    for name, h in hosts_by_name(report).items():
        assert h["status"] == "unreachable" and f"no worker for site {site}" in h["msg"], (name, h)
    assert set(_history(tmp_path / "run.db", report["run"]["id"]).values()) == {"unreachable"}
    assert "All fine" not in out and "All fine" not in json.dumps(report)
    assert proc.returncode not in (0, 1), out[-2000:]  # honest: not "all fine"
    assert re.search(r"refused from the broker: .*an event not signed by any pinned worker key", out), out[-3000:]
    assert "worker presence key not signed" in out
    assert truth(lab) == before


@redis_tests
def test_poison_queue_entries_never_stop_the_worker(
    lab: LabThread, redis_server: RedisServer, keyring: Keyring, worker: WorkerProcess, tmp_path: Path
) -> None:
    import base64

    client = redis_server.client()
    queue = queue_name(SITE)

    def entry(body: Any, *, task: str = TASK_NAME, ctype: str = "application/json") -> str:
        return json.dumps({
            "body": base64.b64encode(json.dumps(body).encode()).decode(), "content-encoding": "utf-8",
            "content-type": ctype, "headers": {"task": task, "id": secrets.token_hex(8)},
            "properties": {"body_encoding": "base64", "delivery_tag": secrets.token_hex(8),
                           "delivery_info": {"exchange": "", "routing_key": queue}},
        })  # fmt: skip

    poison = [
        "not json at all", "[1,2,3]", "{}", json.dumps({"headers": {}, "properties": {}}),
        json.dumps({"body": "!!!", "headers": {"task": TASK_NAME, "id": "1"}, "properties": {}}),
        entry("gAR9lC4=", ctype="application/x-python-serialize"), entry([[], {}, {}], task="celery.evil"),
        entry([[1, 2, 3], {}, {}]), entry([[], {"x": 1}, {}]), entry({"a": 1}), entry([["not an envelope"], {}, {}]),
        "x" * 100_000,
    ]  # fmt: skip
    base = log_count(worker, "dropped a malformed entry") + log_count(worker, "refused a batch message")
    for item in poison:
        client.lpush(queue, item)
    wait_for(
        lambda: (
            log_count(worker, "dropped a malformed entry") + log_count(worker, "refused a batch message")
            >= base + len(poison)
        ),
        40,
        "every poison entry to be dropped or refused",
    )
    assert client.llen(queue) == 0
    assert worker.proc is not None and worker.proc.poll() is None
    # and the worker still does its job
    inv = inventory(lab, tmp_path / "inv.yml")
    proc = _controller_run(keyring, redis_server.url, inv, tmp_path)
    proc.wait(120)
    assert proc.returncode == 0, (tmp_path / "controller.out").read_text()[-3000:]
    assert {h["status"] for h in read_report(tmp_path / "run.json")["hosts"]} <= {"ok", "changed"}


@redis_tests
def test_celery_remote_control_cannot_stop_or_inspect_a_worker(
    redis_server: RedisServer, worker: WorkerProcess
) -> None:
    app = make_app(redis_server.url)
    try:
        assert app.control.inspect(timeout=1.0).ping() is None  # nobody listens to remote control
        app.control.broadcast("shutdown")
        app.control.shutdown()
        app.control.broadcast("pool_restart", arguments={"reload": True})
    finally:
        app.close()
    time.sleep(3)
    assert worker.proc is not None and worker.proc.poll() is None
    assert "shutdown" not in worker.log.read_text().lower().replace("shutting_down", "")


def _redis_tls_supported() -> bool:
    """Whether this redis-server build has TLS: asked for a TLS port without a certificate, a TLS build
    complains about the missing certificate (Debian's does); a build without TLS rejects the option itself."""
    from distkit import free_port

    argv = [require_redis(), "--port", "0", "--tls-port", str(free_port()), "--save", ""]
    try:
        proc = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return "tls-cert-file" in proc.stdout + proc.stderr


@redis_tests
def test_a_run_over_tls_with_one_acl_user_per_side(lab: LabThread, keyring: Keyring, tmp_path: Path) -> None:
    """Redis with TLS only and ACL users (no default user): the controller's user and a per-site worker user
    whose keys are its own queue, the runs' keys and its own presence key; no dangerous commands."""
    import redis

    if not _redis_tls_supported():
        pytest.skip("this redis-server build has no TLS")
    ctl_pw, wrk_pw = secrets.token_hex(16), secrets.token_hex(16)
    common = "~kmsfleet:run:* ~_kombu.* ~unacked* &* +@all -@dangerous"
    acl = [
        f"user kmsfleet-controller on >{ctl_pw} ~kmsfleet.site.* ~kmsfleet:presence:* {common}",
        # kombu keeps priority sub-queues beside each queue: NAME + "\x06\x16" + 3, 6 or 9
        f"user kmsfleet-{SITE} on >{wrk_pw} ~kmsfleet.site.{SITE} ~kmsfleet.site.{SITE}??[369] "
        f"~kmsfleet:presence:{SITE}:* {common}",
    ]
    server = RedisServer(tmp_path, tls=True, acl=acl).start()
    try:
        ctl_url = server.url_for("kmsfleet-controller", ctl_pw)
        wrk_url = server.url_for(f"kmsfleet-{SITE}", wrk_pw)
        with pytest.raises(redis.ConnectionError):  # no plain-text listener at all
            redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=3, socket_connect_timeout=3).ping()
        with pytest.raises(redis.AuthenticationError):  # no default user
            redis.Redis.from_url(server.url_for(), socket_timeout=3).ping()
        site_a = redis.Redis.from_url(wrk_url, socket_timeout=3)
        for forbidden in (
            lambda: site_a.lpush(queue_name("school_b"), "x"),
            lambda: site_a.set(presence_key("school_b", "n"), "x"),
            lambda: site_a.config_get("*"),
            site_a.flushall,
        ):
            with pytest.raises(redis.exceptions.NoPermissionError):
                forbidden()
        url_file = tmp_path / "broker.url"
        url_file.write_text(ctl_url + "\n")
        url_file.chmod(0o600)
        worker = WorkerProcess(SITE, wrk_url, tmp_path / "worker.log", keyring.worker(SITE)).start()
        try:
            inv = inventory(lab, tmp_path / "inv.yml")
            proc = run_cli(
                "run", str(PLAYBOOK), "-i", str(inv), "--distributed", "--broker-url-file", str(url_file),
                "--keys", str(keyring.controller), "--report", str(tmp_path / "run.json"),
                "--db", str(tmp_path / "run.db"),
            )  # fmt: skip
        finally:
            assert worker.stop() == 0
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-3000:]
        assert {h["status"] for h in read_report(tmp_path / "run.json")["hosts"]} <= {"ok", "changed"}
        assert ctl_pw not in out and wrk_pw not in worker.log.read_text()
    finally:
        server.stop()
