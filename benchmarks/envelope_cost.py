"""CPU to build one WS-Man request, per shape: pypsrp's ``WSMan.invoke`` way (``_create_header`` + ``ET.tostring``)
against kmsfleet's cached template (``transport.envelope.render``), in the same process, no network.

    .venv/bin/python benchmarks/envelope_cost.py [--rounds 2000]

Prints one JSON object: per shape the microseconds per request both ways, and their ratio. Both sides produce the
same bytes (tests/unit/test_envelope.py); only the building is timed, not sending or parsing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pypsrp.wsman import NAMESPACES, SelectorSet, WSManAction

from orchestrator.transport import envelope, winrs, wmi
from orchestrator.transport.connection import connection_spec
from orchestrator.transport.pypsrp_adapter import WSManClient, build_wsman

SHELL_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
Request = tuple[str, str, envelope.Body | None, SelectorSet | None]


def _client() -> WSManClient:
    """The client a PC's connection builds (``build_wsman``), for a loopback address it never contacts: only
    requests are built here, none is sent."""
    values = {"ansible_host": "127.0.0.7", "ansible_port": 5985, "ansible_user": "u", "ansible_password": "p"}
    spec = connection_spec("pc01", values)
    return build_wsman(spec, around=lambda send: send(), on_session=lambda session: None)


def _requests() -> dict[str, Request]:
    shell = SelectorSet()
    shell.add_option("ShellId", "2D6534D0-6B12-40E3-B773-CBA26459CFA8")
    slp = wmi.class_uri("SoftwareLicensingProduct")
    query = "SELECT ID, Name, LicenseStatus FROM SoftwareLicensingProduct WHERE PartialProductKey IS NOT NULL"
    command = envelope.Body(("command", 6), winrs._command_element, ("powershell.exe", *["-NoProfile"] * 5, "x" * 400))
    return {
        "enumerate": (WSManAction.ENUMERATE, wmi.enumerate_uri(), wmi.enumerate_body(query), None),
        "pull": (
            WSManAction.PULL,
            wmi.enumerate_uri(),
            wmi.pull_body("uuid:5B3C1F7E-3A52-4C0B-9F57-1D8B2A6C9E01"),
            None,
        ),
        "invoke": (f"{slp}/Activate", slp, wmi.invoke_body("SoftwareLicensingProduct", "Activate", {}), None),
        "command": (WSManAction.COMMAND, SHELL_URI, command, shell),
        "receive": (
            WSManAction.RECEIVE,
            SHELL_URI,
            envelope.Body(("receive",), winrs._receive_element, ("C1",)),
            shell,
        ),
    }


def _pypsrp_way(client: WSManClient, request: Request) -> bytes:
    """What ``WSMan.invoke`` does before sending (pypsrp 0.9)."""
    action, uri, body, selectors = request
    s = NAMESPACES["s"]
    root = ET.Element(f"{{{s}}}Envelope")
    _message_id, header = client._create_header(action, uri, None, selectors, 20)
    root.append(header)
    body_element = ET.SubElement(root, f"{{{s}}}Body")
    if body is not None:
        body_element.append(body.element())
    xml: bytes = ET.tostring(root, encoding="utf-8", method="xml")
    return xml


def _template_way(client: WSManClient, request: Request) -> bytes:
    action, uri, body, selectors = request
    rendered = envelope.render(client, action, uri, body, None, selectors, 20)
    assert rendered is not None
    return rendered[1]


def _per_call_us(run: Callable[[], bytes], rounds: int) -> float:
    run()
    start = time.process_time()
    for _ in range(rounds):
        run()
    return (time.process_time() - start) / rounds * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    client = _client()
    out: dict[str, dict[str, float]] = {}
    for name, request in _requests().items():
        pypsrp_us = _per_call_us(lambda r=request: _pypsrp_way(client, r), args.rounds)  # type: ignore[misc]
        template_us = _per_call_us(lambda r=request: _template_way(client, r), args.rounds)  # type: ignore[misc]
        out[name] = {"pypsrp_us": round(pypsrp_us, 1), "template_us": round(template_us, 1)}
        out[name]["ratio"] = round(pypsrp_us / template_us, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
