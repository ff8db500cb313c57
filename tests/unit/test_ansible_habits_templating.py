"""Templating habits of public playbooks checked against ansible-core 2.19 (localhost, debug tasks) as the
oracle. Failures here are templating defects reported to the owner of orchestrator/templating/."""

from __future__ import annotations

from orchestrator.templating import Templar


def test_dict_lookup_as_in_ansible_loop_migration_guide() -> None:
    templar = Templar({"d": {"a": 1, "b": 2}})
    # ansible-core 2.19: "['a', 'b']"
    assert templar.render("{{ query('dict', d) | map(attribute='key') | list }}") == ["a", "b"]
    assert templar.render("{{ lookup('dict', d) }}") == [{"key": "a", "value": 1}, {"key": "b", "value": 2}]
