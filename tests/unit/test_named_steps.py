"""Pure steps split out of longer functions (issue 15's size rules), checked on their own; the commands and
modules that use them are covered end to end by the CLI, module and lab tests."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.cli.run_cmd import tag_set
from orchestrator.modules.win_service import ServiceArgs, planned_changes


def _service(state: str = "running", start_mode: str = "auto") -> dict[str, Any]:
    return {"exists": True, "name": "Spooler", "state": state, "start_mode": start_mode}


@pytest.mark.parametrize(
    ("args", "before", "actions", "after"),
    [
        ({"state": "started"}, _service("stopped"), ["start"], {"state": "running"}),
        ({"state": "started"}, _service("running"), [], {}),
        ({"state": "stopped"}, _service("running"), ["stop"], {"state": "stopped"}),
        ({"state": "restarted"}, _service("running"), ["restart"], {"state": "running"}),
        ({"state": "restarted"}, _service("stopped"), ["start"], {"state": "running"}),
        (
            {"state": "started", "start_mode": "manual"},
            _service("stopped"),
            ["set start mode manual", "start"],
            {"state": "running", "start_mode": "manual"},
        ),
    ],
)
def test_win_service_plans_the_actions_and_the_state_after(
    args: dict[str, Any], before: dict[str, Any], actions: list[str], after: dict[str, Any]
) -> None:
    got_actions, got_after = planned_changes(ServiceArgs(name="Spooler", **args), before, "Spooler")
    assert got_actions == actions
    assert got_after == {**before, **after}


def test_win_service_removal_plans_only_the_removal() -> None:
    actions, after = planned_changes(ServiceArgs(name="Spooler", state="absent"), _service(), "Spooler")
    assert actions == ["remove"]
    assert after == {"exists": False, "name": "Spooler"}


def test_tags_take_comma_lists_and_drop_blanks() -> None:
    assert tag_set(["a,b", " c ", ",", ""]) == frozenset({"a", "b", "c"})
    assert tag_set([]) == frozenset()
