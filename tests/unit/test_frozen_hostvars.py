"""A finished PC's variables are compacted (``HostState.compact``, ``templating.FrozenVars``) and ``hostvars``
still shows the same values: a later play reads a first-play PC's registered result, its facts and set_fact
variables, ``-e`` wins over them, and a secret inside them stays masked in what is recorded."""

from __future__ import annotations

import hashlib
import pickle
import threading
import zlib
from dataclasses import dataclass
from typing import Any

from test_executor import Recorder, inventory, task

from orchestrator.executor.plan import Plan, PlaySpec
from orchestrator.executor.runner import Runner, new_run_info
from orchestrator.executor.state import HostState, RunOptions
from orchestrator.redact import MASK
from orchestrator.results.packed import MIN_ZDICT, Packer
from orchestrator.templating import FrozenVars, HostVars, Templar, freeze_vars
from orchestrator.yamlsource import UnsafeText

SECRET = "Pw-for-pc01-7781"


@dataclass(frozen=True)
class _Point:
    x: int


def _finished(values: dict[str, Any]) -> HostState:
    st = HostState("pc01", {"ansible_host": "127.0.0.1"}, ("all",))
    st.update_vars(values)
    st.set_facts({"ansible_os_family": UnsafeText("Windows")})
    assert st.finish() == ()
    return st


def test_compact_keeps_the_values_types_and_meaning() -> None:
    values = {"out": {"stdout": UnsafeText("{{ not a template }}"), "lines": ["a", "b"]}, "pt": _Point(3), "t": (1,)}
    st = _finished(values)
    before = st.vars_snapshot()
    packer = Packer()
    assert st.compact(packer) is True and st.compact(packer) is True  # once; a second call changes nothing
    assert isinstance(st.frozen, FrozenVars) and st.scope == {} and st.facts == {} and st.results == []
    after = st.hostvars()
    assert dict(after.items()) == before and st.vars_snapshot() == before
    assert isinstance(after["out"]["stdout"], UnsafeText)  # registered data stays unsafe: never templated
    assert after["ansible_facts"] == {"os_family": "Windows"}
    assert Templar({"hv": {"pc01": after}}).render("{{ hv.pc01.out.stdout }}") == "{{ not a template }}"
    assert "nope" not in after and after.get("nope", 5) == 5
    assert st.frozen.encoded_size < 600


def test_inventory_variables_are_shared_not_packed_per_pc() -> None:
    """``groups`` names every PC and is one mapping shared by all of them: packed per PC it would make the run's
    memory grow with the square of the fleet. The inventory variables stay shared; facts and results are packed."""
    groups = {"all": [f"pc{n:05d}" for n in range(5000)]}
    st = HostState("pc00001", {"groups": groups, "ansible_host": "127.0.0.1"}, ("all",))
    st.set_var("said", {"rc": 0})
    st.set_facts({"ansible_os_family": "Windows"})
    st.finish()
    assert st.compact(Packer())
    frozen = st.hostvars()
    assert frozen["groups"] is groups and frozen["said"] == {"rc": 0} and frozen["ansible_host"] == "127.0.0.1"
    assert st.frozen is not None and st.frozen.encoded_size < 300, st.frozen.encoded_size
    st.inventory_vars["ansible_os_family"] = "from the inventory"  # a fact wins over the inventory, as before
    assert frozen["ansible_os_family"] == "Windows" and st.vars_snapshot()["ansible_os_family"] == "Windows"


def test_a_running_or_unfreezable_host_stays_live() -> None:
    running = HostState("pc01", {"a": 1}, ("all",))
    assert running.compact(Packer()) is False and running.frozen is None and running.inventory_vars == {"a": 1}
    lock_holder = _finished({"lock": threading.Lock()})  # not picklable: kept as it is, same meaning
    assert lock_holder.compact(Packer()) is False and "lock" in lock_holder.scope
    assert isinstance(lock_holder.hostvars(), dict)


def test_reads_decode_once_per_key() -> None:
    plain = freeze_vars({}, {"kmsfleet_cmid": "abc"}, Packer())
    assert plain is not None
    first = plain["kmsfleet_cmid"]
    assert plain["kmsfleet_cmid"] is first  # the second read came from the per-key cache
    assert plain.get("absent") is None and "absent" not in plain


def test_a_frozen_pcs_templates_render_in_its_own_context_and_extra_vars_win() -> None:
    """A finished PC's variables, read through ``hostvars``: its templates see its own variables, ``-e`` wins."""
    frozen = freeze_vars({"ip": "127.0.0.2", "url": "http://{{ ip }}"}, {"said": "hello"}, Packer())
    assert frozen is not None and frozen["url"] == "http://{{ ip }}"
    asking = Templar({"ip": "127.0.0.1", "hostvars": HostVars({"pc02": frozen})})
    assert asking.render("{{ hostvars.pc02.url }}") == "http://127.0.0.2"
    with_extra = Templar({"hostvars": HostVars({"pc02": frozen}, extra={"ip": "127.0.0.9"})})
    assert with_extra.render("{{ hostvars.pc02.url }} {{ hostvars.pc02.ip }}") == "http://127.0.0.9 127.0.0.9"
    assert frozen["ip"] == "127.0.0.2"  # the frozen form itself is unchanged


def test_later_pcs_pack_against_the_first_ones_dictionary() -> None:
    """The first packed mapping of useful size is the preset dictionary of the later ones: a PC like it packs to a
    fraction of its own compressed size, and still decodes to its own values."""
    packer = Packer()

    shared = [hashlib.sha256(str(k).encode()).hexdigest() for k in range(40)]  # text zlib cannot shrink alone

    def pc(n: int) -> dict[str, Any]:
        return {f"kmsfleet_var_{k}": UnsafeText(v) for k, v in enumerate(shared)} | {"cmid": f"id-{n}"}

    first, second = packer.pack(pc(1)), packer.pack(pc(2))
    assert first is not None and second is not None and len(pickle.dumps(pc(1))) > MIN_ZDICT
    plain = len(zlib.compress(pickle.dumps(pc(2), protocol=pickle.HIGHEST_PROTOCOL), 6))
    assert second.size * 10 < plain, (second.size, plain)
    small = Packer()
    alone, later = small.pack({"x": 1}), small.pack(pc(2))  # too small to teach a dictionary: the next one does
    assert alone is not None and later is not None and later.size * 10 < plain
    assert second.decode() == pc(2) and first.decode() == pc(1) and alone.decode() == {"x": 1}
    assert isinstance(second.decode()["kmsfleet_var_3"], UnsafeText)


def _two_plays(extra: dict[str, Any]) -> tuple[Runner, Recorder]:
    first = PlaySpec(
        name="first",
        hosts="pc01",
        gather_facts=False,
        tasks=(
            task("say", args={"msg": "pw is {{ ansible_password }}"}, register="said"),
            task("fact", "set_fact", args={"room": "101", "pv": "fact", "creds": "{{ ansible_password }}"}),
        ),
    )
    second = PlaySpec(
        name="second",
        hosts="pc02",
        gather_facts=False,
        tasks=(
            task("copy", args={"msg": "{{ hostvars['pc01'].said.msg }}"}),
            task("creds", args={"msg": "user:{{ hostvars['pc01'].creds }}"}),
            task(
                "check",
                "assert",
                args={
                    "that": [
                        "hostvars['pc01'].room == '101'",
                        "hostvars.pc01.pv == 'extra'",  # -e wins over the frozen set_fact
                        "not hostvars.pc01.said.failed",
                    ]
                },
            ),
        ),
    )
    options = RunOptions(forks=2, extra_vars=extra)
    rec = Recorder()
    info = new_run_info("test", "<t>", ["<inv>"], options, None)
    runner = Runner(Plan("<t>", (first, second)), inventory(2, ansible_password=SECRET), info, options, rec)
    return runner, rec


def test_a_later_play_reads_a_compacted_pcs_registered_var_and_the_secret_stays_masked() -> None:
    runner, rec = _two_plays({"pv": "extra"})
    result = runner.run()
    pc01 = runner.states["pc01"]
    assert pc01.frozen is not None and pc01.scope == {}, "pc01 finished after the first play: compacted"
    assert runner.states["pc02"].frozen is not None
    pc02 = result.host("pc02")
    assert pc02 is not None and [t.status.value for t in pc02.tasks] == ["ok"] * 3, [t.msg for t in pc02.tasks]
    pc01_said = result.host("pc01").tasks[0].msg  # type: ignore[union-attr]
    assert pc02.tasks[0].msg == pc01_said and MASK in pc01_said
    assert MASK in pc02.tasks[1].msg and SECRET not in repr(rec.tasks) + repr(result)
    assert pc01.hostvars()["creds"] == SECRET  # the frozen form holds the value; only what is shown is masked
