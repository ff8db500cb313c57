"""`kmsfleet lab …`: run the simulated classroom.

`kmsfleet lab serve` starts the lab (every PC listening on 127.x.y.z:5985, HTTPS on 5986 unless --no-https),
writes an Ansible inventory for it, prints exactly one line

    lab ready: N hosts, inventory FILE, control http://127.A.0.1:PORT

once every listener is up, and runs until SIGINT/SIGTERM (exit 0). A bad spec is a clear error naming the
field, exit 4.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from orchestrator.cli.common import examples, fail, handle_errors
from orchestrator.errors import InputError, Location

if TYPE_CHECKING:  # pragma: no cover
    from orchestrator.lab.addresses import Claim
    from orchestrator.lab.runner import Lab
    from orchestrator.lab.spec import LabSpec
    from orchestrator.lab.timing import TimingMode

HELP = """Run the simulated classroom: Windows PCs on loopback addresses that speak real WS-Management."""

SERVE_HELP = (
    "Start a lab and keep it running until Ctrl-C (or SIGTERM).\n\n"
    "Each simulated PC listens on its own loopback address 127.A.R.N: port 5985 (HTTP, NTLM/Negotiate with "
    "message encryption) and 5986 (HTTPS, self-signed certificate generated at start), where R is the room and N "
    "the PC. With --hosts the PCs are 127.0.1.1, 127.0.1.2 … (rooms of up to 250 PCs on 127.0.1.x, 127.0.2.x, …) "
    "when that block is free, otherwise another free 127.A block.\n\n"
    "The inventory file describes every PC (address, port, user, password, MAC) plus the lab KMS host, the "
    "Wake-on-LAN listener and the control API. When everything listens, exactly one line is printed: "
    "lab ready: N hosts, inventory FILE, control http://127.A.0.1:PORT"
)


def _load_spec(hosts: int | None, spec_file: Path | None, profile: str, seed: int | None) -> tuple[LabSpec, Claim]:
    """(LabSpec, Claim) for the requested lab. The claim holds the 127.<A> block while the lab runs."""
    from orchestrator.lab.addresses import claim_prefix
    from orchestrator.lab.spec import load_spec

    if spec_file is not None:
        if hosts is not None:
            raise InputError("use either --hosts or --spec, not both")
        spec = load_spec(spec_file)
        octet = int(spec.rooms[0].subnet.split(".")[1])
        try:
            claim = claim_prefix(preferred=octet, low=octet, high=octet)
        except RuntimeError:
            raise InputError(
                f"the loopback block 127.{octet}.x.x of this spec is in use by another lab",
                Location(str(spec_file)),
                hint="stop the other lab or change the spec's subnets",
            ) from None
        return spec, claim
    count = 40 if hosts is None else hosts
    if count < 1 or count > 60000:
        raise InputError(f"--hosts must be between 1 and 60000, not {count}")
    from orchestrator.lab import profiles

    claim = claim_prefix(preferred=0)
    try:
        if profile == "mixed":
            spec = profiles.mixed(count, claim.octet, seed if seed is not None else 0)
        else:
            spec = profiles.classroom(count, claim.octet)
    except BaseException:
        claim.release()
        raise
    return spec, claim


def parse_timing(value: str) -> TimingMode:
    """``--timing``: windows or instant (a clear error for anything else)."""
    from orchestrator.lab.timing import TIMING_MODES

    for mode in TIMING_MODES:
        if value.strip().lower() == mode:
            return mode
    raise InputError(f"--timing must be windows or instant, not {value!r}")


def _check_inventory_out(path: Path) -> None:
    """Refuse an inventory path the lab could not write before it starts (its folder is created if missing)."""
    from orchestrator.results.reports import check_writable

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--inventory-out: cannot create folder {path.parent}: {exc.strerror}") from None
    check_writable(path, "--inventory-out")


async def _serve(lab: Lab, ready_line: Callable[[Lab], None]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await lab.start()
        ready_line(lab)
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await lab.stop()


@handle_errors
def serve(
    hosts: Annotated[
        int | None, typer.Option("--hosts", "-n", help="Number of PCs (default 40) when no --spec.")
    ] = None,
    spec: Annotated[Path | None, typer.Option("--spec", help="A classroom spec YAML file.", dir_okay=False)] = None,
    profile: Annotated[
        str, typer.Option("--profile", help="With --hosts: classroom (uniform) or mixed.")
    ] = "classroom",
    seed: Annotated[int | None, typer.Option("--seed", help="Seed for faults, latency and identities.")] = None,
    inventory_out: Annotated[
        Path, typer.Option("--inventory-out", "-o", help="Where to write the inventory.", dir_okay=False)
    ] = Path("lab-inventory.yml"),
    allow_unencrypted: Annotated[
        bool, typer.Option("--allow-unencrypted", help="Accept Basic auth and unencrypted messages over plain HTTP.")
    ] = False,
    no_https: Annotated[bool, typer.Option("--no-https", help="Do not listen on 5986.")] = False,
    control_port: Annotated[int, typer.Option("--control-port", help="Control API port (default: any free).")] = 0,
    wol_port: Annotated[int, typer.Option("--wol-port", help="Wake-on-LAN UDP port (default: any free).")] = 0,
    timing: Annotated[
        str,
        typer.Option(
            "--timing",
            help="windows: PCs take as long as real Windows (PowerShell start, licensing queries, KMS round trips; "
            "docs/lab-timing.md). instant: everything answers at once.",
        ),
    ] = "windows",
) -> None:
    if profile not in ("classroom", "mixed"):
        raise InputError(f"--profile must be classroom or mixed, not {profile!r}")
    timing_mode = parse_timing(timing)
    if spec is not None and not spec.is_file():
        raise InputError(f"spec file not found: {spec}")
    _check_inventory_out(inventory_out)
    from orchestrator.lab.runner import Lab

    lab_spec, claim = _load_spec(hosts, spec, profile, seed)
    try:
        lab = Lab(
            lab_spec,
            seed=seed,
            allow_unencrypted=allow_unencrypted,
            https=not no_https,
            inventory_path=inventory_out,
            control_port=control_port,
            wol_port=wol_port,
            timing=timing_mode,
        )

        def ready(running: Lab) -> None:
            sys.stdout.write(
                f"lab ready: {len(running.hosts)} hosts, inventory {running.inventory_path.resolve()}, "
                f"control {running.control_url}\n"
            )
            sys.stdout.flush()

        try:
            asyncio.run(_serve(lab, ready))
        except OSError as exc:
            fail(f"the lab could not listen: {exc}")
    finally:
        claim.release()


def register(app: typer.Typer) -> None:
    lab_app = typer.Typer(
        name="lab",
        help=HELP,
        epilog=examples(
            "kmsfleet lab serve --hosts 40 -o lab.yml",
            "kmsfleet lab serve --hosts 40 --profile mixed",
            "kmsfleet lab serve --spec classroom.yml --seed 7",
        ),
        no_args_is_help=True,
        rich_markup_mode="rich",
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    lab_app.command(
        "serve",
        help=SERVE_HELP,
        epilog=examples(
            "kmsfleet lab serve --hosts 40 --profile classroom --seed 7",
            "kmsfleet lab serve --spec classroom.yml --inventory-out lab.yml",
            "kmsfleet lab serve --hosts 500 --profile mixed --seed 3 --no-https",
            "kmsfleet lab serve --hosts 4 --allow-unencrypted   # for pywinrm's default plaintext transport",
            "kmsfleet lab serve --hosts 40 --timing instant     # answer at once (no Windows start-up times)",
        ),
    )(serve)
    app.add_typer(lab_app, name="lab")
