"""A correctly signed batch whose plan or settings are hostile (a stolen controller key): the pieces that must
refuse it, without Redis. The same attacks run end to end against a real worker in ``test_broker.py``."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from orchestrator.distributed.message import (
    MAX_BATCH_HOSTS,
    BatchMessage,
    BatchOptions,
    batch_options,
    plan_for_workers,
)
from orchestrator.distributed.policy import (
    PolicyError,
    WorkerPolicy,
    _refusing,
    _revealed,
    check_plan,
    parse_networks,
    secret_placeholder,
)
from orchestrator.distributed.signing import DOMAIN_BATCH, SignatureError, Signer, Verifier
from orchestrator.errors import InputError
from orchestrator.executor.loading import load_plan, play_vars_loader
from orchestrator.executor.plan import BlockSpec, Plan, PlaySpec, TaskSpec
from orchestrator.executor.plan_codec import PlanCodecError, decode_plan, encode_plan
from orchestrator.executor.state import RunOptions
from orchestrator.modules.base import REGISTRY, TaskFailed
from orchestrator.transport.connection import connection_spec

# ------------------------------------------------------------------------------------------------ signed bodies


def _envelope(private: Ed25519PrivateKey, body: str) -> dict[str, Any]:
    """What a holder of the key could sign: any text, not only what ``Signer`` writes."""
    sig = private.sign(f"{DOMAIN_BATCH}\n{body}".encode())
    return {"v": 1, "kid": Signer(private).kid, "body": body, "sig": base64.b64encode(sig).decode("ascii")}


@pytest.mark.parametrize(
    "body",
    [
        '{"expires":NaN}',  # NaN compares false: "now > expires" would never say expired
        '{"expires":Infinity}',
        '{"expires":1e309}',  # overflows to infinity without the word Infinity
        '{"a":1,"a":2}',  # a duplicate key: two readers could disagree on which one counts
        '{"a": 1}',  # not the canonical spelling
        "[" * 100_000 + "]" * 100_000,  # deeper than the parser recurses (was RecursionError)
    ],
    ids=["nan", "infinity", "1e309", "duplicate-key", "not-canonical", "deep"],
)
def test_a_signed_body_must_be_canonical_json(body: str) -> None:
    private = Ed25519PrivateKey.generate()
    verifier = Verifier([private.public_key()])
    with pytest.raises(SignatureError, match="canonical"):
        verifier.open(DOMAIN_BATCH, _envelope(private, body))
    good = Signer(private).sign(DOMAIN_BATCH, {"expires": 1.5, "x": [1, "é"]})
    assert verifier.open(DOMAIN_BATCH, good) == {"expires": 1.5, "x": [1, "é"]}


# ------------------------------------------------------------------------------------------------ the plan codec


@pytest.mark.parametrize(
    "data",
    [{"!t": ["task"], "v": []}, {"!t": {"a": 1}, "v": "x"}, {"!t": None, "f": {}}],
    ids=["list-tag", "mapping-tag", "null-tag"],
)
def test_a_tag_that_is_not_text_is_a_codec_error(data: Any) -> None:
    with pytest.raises(PlanCodecError, match="type tag must be text"):  # was TypeError: unhashable
        decode_plan(data)


def test_a_flag_is_not_accepted_where_a_number_is_declared() -> None:
    task = TaskSpec(name="t", module="debug", args={}, retries=3)
    data = encode_plan(Plan(path="pb.yml", plays=(PlaySpec(name="p", hosts="all", tasks=(task,)),)))
    raw = json.dumps(data).replace('"retries": 3', '"retries": true')
    with pytest.raises(PlanCodecError, match="retries: bool"):
        decode_plan(json.loads(raw))


# ------------------------------------------------------------------------------------------------ worker files


def _plan(*tasks: TaskSpec, **play: Any) -> Plan:
    block = BlockSpec(name="b", block=(), rescue=tasks[:1])  # nested: the walk reaches rescue sections too
    return Plan(path="pb.yml", plays=(PlaySpec(name="p", hosts="all", tasks=(block, *tasks[1:]), **play),))


@pytest.mark.parametrize(
    ("module", "args"),
    [
        ("win_copy", {"src": "/etc/kmsfleet/worker.env", "dest": "C:\\x"}),
        ("win_copy", {"src": "{{ anything }}", "content": "x", "dest": "C:\\x"}),
        ("win_template", {"src": "leak.j2", "dest": "C:\\x"}),
        ("script", {"cmd": "/etc/kmsfleet/x.ps1"}),
        ("include_vars", {"file": "../../../../etc/kmsfleet/vars.yml"}),
        ("include_vars", {"dir": "/etc"}),
    ],
)
def test_a_plan_whose_modules_read_local_files_is_refused(module: str, args: dict[str, Any]) -> None:
    tasks = (TaskSpec(name="t", module=module, args=args),)
    with pytest.raises(PolicyError, match="reads files on the worker"):
        check_plan(_plan(*tasks))
    with pytest.raises(PolicyError, match="reads files on the worker"):  # also as a handler or a later task
        check_plan(_plan(TaskSpec(name="ok", module="win_ping", args={}), *tasks))


def test_what_travels_inside_the_plan_is_accepted_and_vars_files_are_not() -> None:
    copy = TaskSpec(name="t", module="win_copy", args={"content": "text", "dest": "C:\\x"})
    check_plan(_plan(copy, TaskSpec(name="p", module="win_ping", args={})))
    with pytest.raises(PolicyError, match="vars_files"):
        check_plan(_plan(copy, vars_files=("/etc/kmsfleet/worker.env",)))


def test_the_controller_names_a_file_reading_task_before_sending(tmp_path: Path) -> None:
    pb = tmp_path / "pb.yml"
    pb.write_text("- hosts: all\n  tasks:\n    - win_template: {src: a.j2, dest: 'C:\\\\a'}\n")
    with pytest.raises(InputError, match="win_template reads a file where it runs") as caught:
        plan_for_workers(load_plan(pb), {}, play_vars_loader)
    assert "content:" in caught.value.render()


@pytest.mark.parametrize("name", ["win_template", "script", "include_vars"])
def test_in_the_worker_process_file_reading_modules_refuse_to_run(name: str) -> None:
    cls = REGISTRY.get(name)
    assert cls is not None
    with pytest.raises(TaskFailed, match="refused by the worker's policy"):
        _refusing(cls)().run(None, cls.parse_args(_ARGS[name]))  # type: ignore[arg-type]


_ARGS = {
    "win_template": {"src": "/etc/passwd", "dest": "C:\\x"},
    "script": {"cmd": "/etc/x.ps1"},
    "include_vars": {"file": "/etc/x.yml"},
}


# ------------------------------------------------------------------------------------------------ connection vars


def test_the_worker_refuses_credssp_aliases_and_files_named_by_connection_vars() -> None:
    policy = WorkerPolicy("school_a", tuple(parse_networks(["127.0.0.0/8"])))
    fine = {"ansible_host": "127.0.0.5", "ansible_winrm_transport": "ntlm", "ansible_port": 5985}
    policy.check_vars("pc01", fine)
    policy.check_vars("pc01", {**fine, "ansible_winrm_server_cert_validation": "validate"})
    refused = {
        "credssp": {**fine, "ansible_winrm_transport": "credssp"},
        "credssp first of a list": {**fine, "ansible_winrm_transport": "CredSSP, ntlm"},
        "plaintext is basic": {**fine, "ansible_winrm_transport": "plaintext"},
        "ssl is basic": {**fine, "ansible_winrm_transport": "ssl", "ansible_winrm_scheme": "http"},
        "client certificate file": {**fine, "ansible_winrm_cert_pem": "/etc/kmsfleet/keys/worker.key"},
        "client key file": {**fine, "ansible_winrm_cert_key_pem": "/etc/shadow"},
        "CA bundle path": {**fine, "ansible_winrm_server_cert_validation": "/etc/kmsfleet/ca.pem"},
    }
    for label, variables in refused.items():
        with pytest.raises(PolicyError):
            policy.check_vars("pc01", variables)
            pytest.fail(label)


def test_a_host_name_over_http_is_pinned_to_the_address_the_policy_checked() -> None:
    """DNS rebinding: the name is resolved by the check and would be resolved again when connecting; over HTTP
    the worker connects to the address it checked instead."""
    policy = WorkerPolicy("school_a", tuple(parse_networks(["127.0.0.0/8", "::1/128"])))
    base = {"ansible_user": "u", "ansible_password": "p", "ansible_port": 5985}
    spec = policy.check_spec(connection_spec("pc01", {**base, "ansible_host": "localhost"}))
    assert spec.address == "127.0.0.1" and spec.host == "pc01"
    https = {**base, "ansible_host": "localhost", "ansible_port": 5986}
    assert policy.check_spec(connection_spec("pc01", https)).address == "localhost"  # the certificate names it
    literal = policy.check_spec(connection_spec("pc01", {**base, "ansible_host": "127.0.0.9"}))
    assert literal.address == "127.0.0.9"
    with pytest.raises(PolicyError, match="outside"):
        WorkerPolicy("school_a", tuple(parse_networks(["10.0.0.0/8"]))).check_spec(
            connection_spec("pc01", {**base, "ansible_host": "localhost"})
        )


@pytest.mark.parametrize(
    "options",
    [{"forks": 10**6}, {"forks": 0}, {"grace": 1e300}, {"host_budget": -1}, {"verbosity": 10**9}, {"strategy": "x"}],
)
def test_a_batch_cannot_ask_for_unbounded_work(options: dict[str, Any]) -> None:
    """10**6 forks would be as many threads; a grace of 1e300 s overflows ``threading.Event.wait``."""
    with pytest.raises(ValidationError):
        BatchOptions.model_validate(options)


def test_a_batch_holds_at_most_batch_size_pcs() -> None:
    hosts = [{"name": f"pc{i}", "groups": [], "vars": {}} for i in range(MAX_BATCH_HOSTS + 1)]
    body = {"run_id": "r1", "nonce": "0" * 32, "batch_id": "b1", "site": "s", "issued": 0.0, "expires": 1.0}
    body |= {"playbook": "pb.yml", "plan": {}, "options": {}, "hosts": hosts, "selections": {}}
    with pytest.raises(ValidationError, match="at most 5000"):
        BatchMessage.model_validate(body)
    BatchMessage.model_validate({**body, "hosts": hosts[:MAX_BATCH_HOSTS]})


def test_the_controller_clamps_what_ansible_cfg_may_set_beyond_the_cli_limits() -> None:
    options, _ = batch_options(RunOptions(forks=20_000, grace=1e9, host_budget=1e12, verbosity=50))
    assert (options.forks, options.grace, options.host_budget, options.verbosity) == (5000, 3600.0, 604800.0, 10)


def test_the_password_placeholder_becomes_the_value_only_as_a_password(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never as the user name (NTLM sends it in clear) or any other variable."""
    monkeypatch.setenv("KMSFLEET_PASSWORD", "Real-Pass-1")
    mark = secret_placeholder("KMSFLEET_PASSWORD")
    got = _revealed({"ansible_password": mark, "ansible_user": mark, "ansible_host": mark, "x": mark + " "})
    assert got == {"ansible_password": "Real-Pass-1", "ansible_user": mark, "ansible_host": mark, "x": mark + " "}
    assert _revealed({"ansible_winrm_password": mark})["ansible_winrm_password"] == "Real-Pass-1"
