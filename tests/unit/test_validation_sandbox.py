"""Sandbox escapes are refused while playbooks and inventories are VALIDATED (exit 4 before any PC is
contacted), not only when a host renders them: ``templating.check_template`` and ``load_inventory``."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import InputError
from orchestrator.inventory.loader import load_inventory
from orchestrator.templating import check_template

ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ x['__class__'] }}",
    "{{ x._private }}",
    "{% for c in ''.__class__.__mro__ %}{{ c }}{% endfor %}",
]


@pytest.mark.parametrize("template", ESCAPES)
def test_check_template_refuses_private_access(template: str) -> None:
    problem = check_template(template)
    assert problem is not None and problem.startswith("refused by the template sandbox")


@pytest.mark.parametrize("expression", ["x.__class__ is defined", "y['__globals__'] == 1"])
def test_check_template_refuses_private_access_in_conditions(expression: str) -> None:
    assert (check_template(expression, expression=True) or "").startswith("refused by the template sandbox")


@pytest.mark.parametrize("template", ["{{ d['_key'] }}", "{{ x.y | default('_z') }}", "{{ '__' ~ name }}", "_plain_"])
def test_ordinary_templates_still_pass(template: str) -> None:
    assert check_template(template) is None


def test_inventory_with_an_escape_is_invalid_input(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yml"
    inv.write_text(
        "all:\n"
        "  hosts:\n"
        "    pc01:\n"
        "      ansible_host: 127.0.1.1\n"
        "  vars:\n"
        "    kms_host: \"{{ lipsum.__globals__.os.system('touch pwned') }}\"\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError) as info:
        load_inventory([str(inv)])
    assert "kms_host" in info.value.render() and "sandbox" in info.value.render()
    assert not (tmp_path / "pwned").exists()


def test_inventory_template_syntax_errors_are_found_at_load(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  hosts:\n    pc01:\n      x: '{{ 1 + }}'\n", encoding="utf-8")
    with pytest.raises(InputError, match="host 'pc01', variable 'x'"):
        load_inventory([str(inv)])
