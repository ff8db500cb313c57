"""Property: the playbook loader raises nothing but InputError, whatever YAML it is given."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_playbook_load import CATALOG

from orchestrator.errors import InputError
from orchestrator.playbook import load_playbook

KEYS = [
    "hosts", "name", "tasks", "handlers", "vars", "vars_files", "serial", "tags", "when", "register", "loop",
    "with_items", "loop_control", "block", "rescue", "always", "debug", "win_command", "msg", "args", "notify",
    "retries", "until", "ignore_errors", "import_tasks", "include_tasks", "import_playbook", "listen",
    "strategy", "gather_facts", "delegate_to", "changed_when", "label", "loop_var", "cmd", "become",
]  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-3, 200)
    | st.sampled_from(["all", "x == 1", "{{ x }}", "{{ x", "msg=hi", "a b", "site.yml", "30%", "item", "r"])
    | st.text(max_size=8)
)
DATA = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(KEYS), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(DATA, max_size=3) | DATA)
def test_loader_raises_only_input_errors(data: Any) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "site.yml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        try:
            load_playbook(path, CATALOG)
        except InputError:
            pass
