"""The one truth table (``orchestrator.booleans``) against Ansible's ``convert_bool.boolean`` rules."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.booleans import BOOLEANS_FALSE, BOOLEANS_TRUE, boolean, parse_boolean


@pytest.mark.parametrize("value", [True, 1, 1.0, "y", "Yes", "ON", "1", "true", "T", " yes "])
def test_true_values(value: Any) -> None:
    assert parse_boolean(value) is True
    assert boolean(value) is True


@pytest.mark.parametrize("value", [False, 0, 0.0, "n", "No", "off", "0", "FALSE", "f", "\tno\n"])
def test_false_values(value: Any) -> None:
    assert parse_boolean(value) is False
    assert boolean(value) is False


@pytest.mark.parametrize("value", [None, 2, -1, 0.5, "", "maybe", "yess", [], {}, ["yes"]])
def test_other_values_are_not_booleans(value: Any) -> None:
    assert parse_boolean(value) is None
    assert boolean(value) is False


def test_the_words_are_ansibles() -> None:
    assert {"y", "yes", "on", "1", "true", "t"} == BOOLEANS_TRUE
    assert {"n", "no", "off", "0", "false", "f"} == BOOLEANS_FALSE
