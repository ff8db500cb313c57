"""The lab's PowerShell: PSObjects as kmsfleet's win_powershell builds ``$Ansible`` (New-Object -Property, ``$o.P =
v``, ``[bool]$o.P`` in a joined string), and PowerShell's parser error for an operator with nothing after it."""

from __future__ import annotations

import base64

from test_commands import make, run

from orchestrator.lab.addresses import Claim
from orchestrator.modules.win_powershell import PowershellArgs, build_script


def _ps(script: str) -> tuple[str, ...]:
    return ("-NoProfile", "-EncodedCommand", base64.b64encode(script.encode("utf-16-le")).decode())


def test_ansible_object_round_trip_on_51_and_20(lab_block: Claim) -> None:
    _, pcs = make(lab_block, [{"name": "w10"}, {"name": "w7", "os": "Windows 7 Professional"}])
    script = build_script(PowershellArgs(script="$Ansible.Changed = $false\n$Ansible.Failed = $true\n'body'"))
    for pc in pcs.values():
        out = run(pc, "powershell", args=_ps(script))
        assert out.stdout == "body\r\nkmsfleet-ansible-state changed=False failed=True\n", pc.name
        assert out.stderr == "" and out.rc == 0


def test_missing_property_and_missing_operand(lab_block: Claim) -> None:
    _, pcs = make(lab_block, [{"name": "pc"}])
    pc = pcs["pc"]
    missing = run(pc, "powershell", args=_ps("$o = New-Object PSObject -Property @{A = 1}\n$o.B = 2\n[string]$o.A"))
    assert "The property 'B' cannot be found on this object." in missing.stderr
    assert "PropertyNotFound" in missing.stderr
    unary = run(pc, "powershell", args=_ps('if (-not) { "x" }\n"after"'))
    assert unary.stdout == "" and unary.rc == 1
    assert "Missing expression after unary operator '-not'." in unary.stderr
    binary = run(pc, "powershell", args=_ps('if ($a -eq) { "x" }'))
    assert "You must provide a value expression following the '-eq' operator." in binary.stderr
