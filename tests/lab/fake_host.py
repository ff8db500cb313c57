"""A deliberately tiny stand-in for ``orchestrator.lab.machine`` used ONLY by the front end's own unit tests
(``test_frontend_units.py``): it lets the WS-Management layer be tested in isolation with a few fixed commands
and WMI instances. Integration tests (``test_wire_*``) use the real simulated Windows PC."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from orchestrator.lab.provider import (
    CimInstance,
    CimProperty,
    CimValue,
    CommandOutcome,
    CommandPipe,
    PreparedCommand,
    ShellContext,
    WmiError,
)
from orchestrator.lab.spec import LabHostConfig
from orchestrator.lab.world import LabWorld

APP_ID = "55c92734-d682-4d71-983e-d6ec3f16059f"


class FakeUnitTestHost:
    def __init__(self, config: LabHostConfig, world: LabWorld | None = None) -> None:
        self.name = config.name
        self.address = config.address
        self.config = config
        self.license_status = 0
        self.kms_machine: str | None = None
        self.runs: list[str] = []

    def snapshot(self) -> dict[str, object]:
        return {"license_status": self.license_status, "kms_machine": self.kms_machine, "runs": list(self.runs)}

    def check_credentials(self, user: str, password: str) -> bool:
        return user.lower() == self.config.user.lower() and password == self.config.password

    def ntlm_credentials(self) -> tuple[str, str]:
        return self.config.user, self.config.password

    def class_names(self, namespace: str = "root/cimv2") -> frozenset[str]:
        return frozenset({"SoftwareLicensingProduct", "SoftwareLicensingService"})

    def _product(self) -> CimInstance:
        props: list[tuple[str, str, CimValue]] = [
            ("ID", "string", "73111121-5638-40f6-bc11-f1d7b0d64300"),
            ("ApplicationID", "string", APP_ID),
            ("Name", "string", "Windows(R), Education edition"),
            ("PartialProductKey", "string", "2YT43"),
            ("LicenseStatus", "uint32", self.license_status),
            ("KeyManagementServiceMachine", "string", self.kms_machine),
            ("EvaluationEndDate", "datetime", datetime(1601, 1, 1, tzinfo=UTC)),
            ("Tags", "string", ("a", "b")),
        ]
        return CimInstance("SoftwareLicensingProduct", tuple(CimProperty(n, t, v) for n, t, v in props))  # type: ignore[arg-type]

    def wql(self, query: str, namespace: str = "root/cimv2") -> list[CimInstance]:
        words = query.split()
        if len(words) < 4 or words[0].upper() != "SELECT" or words[2].upper() != "FROM":
            raise WmiError(0x80041017, "Invalid query", kind="invalid_query")
        cls = words[3]
        if cls.lower() == "softwarelicensingproduct":
            return [self._product()] * (3 if "many" not in query else 50)
        if cls.lower() == "softwarelicensingservice":
            return [CimInstance("SoftwareLicensingService", (CimProperty("Version", "string", "10.0.19041.1"),))]
        raise WmiError(0x80041010, "Invalid class", kind="invalid_class")

    def get_instance(self, class_name: str, selectors: dict[str, str], namespace: str = "root/cimv2") -> CimInstance:
        return self.wql(f"SELECT * FROM {class_name}")[0]

    async def invoke(
        self,
        class_name: str,
        method: str,
        selectors: dict[str, str],
        params: dict[str, str],
        user: str,
        namespace: str = "root/cimv2",
    ) -> list[CimProperty]:
        if method == "SetKeyManagementServiceMachine":
            self.kms_machine = params.get("MachineName")
        elif method == "Activate":
            if self.kms_machine is None:
                raise WmiError(0xC004F074, "No Key Management Service (KMS) could be contacted.")
            self.license_status = 1
        else:
            raise WmiError(0x80041055, "Method not implemented", kind="invalid_parameter")
        return [CimProperty("ReturnValue", "uint32", 0)]

    def prepare(self, command: str, arguments: list[str], shell: ShellContext) -> PreparedCommand:
        line = " ".join([command, *arguments]).strip()
        return PreparedCommand(line, needs_stdin=line.lower() in ("more", "findstr x*"))

    async def run(
        self, prepared: PreparedCommand, stdin: bytes, shell: ShellContext, pipe: CommandPipe | None = None
    ) -> CommandOutcome:
        line = prepared.command_line
        self.runs.append(line)
        await asyncio.sleep(0)
        low = line.lower()
        if low == "hostname":
            return CommandOutcome(self.config.computer_name.encode() + b"\r\n")
        if low.startswith("sleep "):
            return CommandOutcome(b"slept\r\n", duration_s=float(low.split()[1]))
        if low.startswith("big "):
            return CommandOutcome(b"x" * int(low.split()[1]), b"e" * 100, 3)
        if low == "more":
            return CommandOutcome(stdin)
        if low.startswith("fail"):
            return CommandOutcome(b"out \r\n", b"err \r\n", 1)
        return CommandOutcome(f"'{line}' ran\r\n".encode())
