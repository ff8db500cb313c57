"""``kmsfleet inventory``: show an inventory the way ``ansible-inventory`` does (``--list``, ``--graph``,
``--host``). Passwords are shown as ******** unless ``--show-secrets``."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from orchestrator.cli.common import console, err_console, escape, examples, fail, handle_errors

EPILOG = examples(
    "kmsfleet inventory -i inventories/school.yml --graph",
    "kmsfleet inventory -i inventories/school.yml --graph room101 --vars",
    "kmsfleet inventory -i inventories/school.yml --list --limit 'room101:!pc05'",
    "kmsfleet inventory -i hosts.ini -i extra.yml --host pc01",
)


def register(app: typer.Typer) -> None:
    app.command(
        "inventory",
        help="Show hosts, groups and variables of an Ansible-style inventory (like ansible-inventory).",
        epilog=EPILOG,
        rich_help_panel="Inventory",
    )(inventory_command)


@handle_errors
def inventory_command(
    inventory: Annotated[
        list[str],
        typer.Option(
            "-i",
            "--inventory",
            help="Inventory file (YAML or INI), directory, or 'host1,host2,'. Repeat to merge several in order.",
        ),
    ],
    group: Annotated[
        str | None, typer.Argument(metavar="[GROUP]", help="With --graph: the group to start from.")
    ] = None,
    list_: Annotated[
        bool, typer.Option("--list", help="Print the whole inventory as JSON (ansible-inventory --list).")
    ] = False,
    graph: Annotated[bool, typer.Option("--graph", help="Print the group tree, from GROUP (default: all).")] = False,
    host: Annotated[
        str | None, typer.Option("--host", metavar="NAME", help="Print the variables of one host as JSON.")
    ] = None,
    limit: Annotated[
        str | None,
        typer.Option(
            "--limit", "-l", metavar="PATTERN", help="Only hosts matching this pattern (e.g. 'room101:!pc05')."
        ),
    ] = None,
    show_vars: Annotated[bool, typer.Option("--vars", help="With --graph: show variables too.")] = False,
    export: Annotated[
        bool,
        typer.Option("--export", help="With --list: keep group variables on the groups instead of merging them."),
    ] = False,
    show_secrets: Annotated[bool, typer.Option("--show-secrets", help="Show passwords instead of ********.")] = False,
) -> None:
    from orchestrator.inventory import load_inventory
    from orchestrator.inventory.output import mask_secrets

    chosen = [name for name, on in (("--list", list_), ("--graph", graph), ("--host", host is not None)) if on]
    if len(chosen) != 1:
        fail("choose exactly one of --list, --graph or --host" + (f" (got {', '.join(chosen)})" if chosen else ""))
    if group is not None and not graph:
        fail(f"unexpected argument {group!r}: a GROUP is only taken by --graph")
    if show_vars and not graph:
        fail("--vars goes with --graph (--list and --host always show variables)")

    inv = load_inventory(inventory)
    for warning in inv.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}")

    def secret_safe(data: Any) -> Any:
        return data if show_secrets else mask_secrets(inv, data)  # indirect ones too (a var a password reads)

    if list_:
        _print_json(secret_safe(inv.to_list_json(limit, export=export)))
    elif host is not None:
        if limit and host not in inv.select(limit):
            fail(f"host '{host}' is not in --limit {limit!r}")
        _print_json(secret_safe(inv.inventory_vars(host)))
    else:
        text = inv.graph(group or "all", show_vars=show_vars, limit=limit, mask_secrets=not show_secrets)
        console.print(escape(text), markup=False, highlight=False)


def _print_json(data: Any) -> None:
    console.print(
        json.dumps(data, indent=4, sort_keys=True, ensure_ascii=False, default=str), markup=False, highlight=False
    )
