"""`kmsfleet keys`: the signing keys of distributed runs (docs/distributed.md, "Keys")."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

from orchestrator.cli.common import console, escape, examples, handle_errors

KEYS_HELP = (
    "Signing keys for --distributed: the controller signs every batch and each site's worker signs every "
    "result; each side runs only what the other side's pinned public key signed."
)
DIR_OPTION = typer.Option(None, "--keys", envvar="KMSFLEET_KEYS", help="Key folder (default ~/.config/kmsfleet/keys).")


def register(app: typer.Typer) -> None:
    keys_app = typer.Typer(
        name="keys",
        help=KEYS_HELP,
        epilog=examples(
            "kmsfleet keys init --role controller",
            "kmsfleet keys init --role worker --keys /etc/kmsfleet/keys",
            "kmsfleet keys trust --site school_a worker-school_a.pub",
        ),
        no_args_is_help=True,
        rich_markup_mode="rich",
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.add_typer(keys_app, name="keys")

    @keys_app.command(
        "init",
        help="Create this machine's keypair: ROLE.key (private, mode 0600) and ROLE.pub in the key folder.",
        epilog=examples(
            "kmsfleet keys init --role controller", "kmsfleet keys init --role worker --keys /etc/kmsfleet"
        ),
    )
    @handle_errors
    def init(
        role: str = typer.Option(..., "--role", help="controller or worker."),
        keys: str | None = DIR_OPTION,
        force: bool = typer.Option(False, "--force", help="Replace an existing keypair."),
    ) -> None:
        from orchestrator.distributed.keys import check_role, keys_dir, private_path, public_path
        from orchestrator.distributed.signing import generate

        folder = keys_dir(keys)
        check_role(role)
        kid = generate(private_path(folder, role), public_path(folder, role), force=force)
        other = "each site's worker" if role == "controller" else "the controller"
        console.print(f"{role} key {kid} written: {escape(str(private_path(folder, role)))} (private, 0600)")
        console.print(
            f"copy {escape(str(public_path(folder, role)))} to {other} and pin it there with: kmsfleet keys trust"
        )

    @keys_app.command(
        "trust",
        help="Pin a public key copied from the other side: the controller's (on a worker) or a site's worker's "
        "(on the controller, with --site).",
        epilog=examples(
            "kmsfleet keys trust --controller controller.pub", "kmsfleet keys trust --site school_a worker-a.pub"
        ),
    )
    @handle_errors
    def trust(
        public_key: Path = typer.Argument(..., help="The .pub file to pin."),
        site: str | None = typer.Option(None, "--site", help="On the controller: the site whose worker key this is."),
        controller: bool = typer.Option(False, "--controller", help="On a worker: this is the controller's key."),
        keys: str | None = DIR_OPTION,
    ) -> None:
        from orchestrator.distributed.celery_app import check_site
        from orchestrator.distributed.keys import keys_dir, public_path, site_key_path
        from orchestrator.distributed.signing import key_id, load_public
        from orchestrator.errors import InputError

        if (site is None) == (not controller):
            raise InputError("give exactly one of --site SITE (on the controller) or --controller (on a worker)")
        key = load_public(public_key, "the key to pin")
        folder = keys_dir(keys)
        target = site_key_path(folder, check_site(site)) if site is not None else public_path(folder, "controller")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(public_key, target)
        console.print(f"pinned key {key_id(key)} as {escape(str(target))}")
