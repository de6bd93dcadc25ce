"""``notifier console password`` and ``notifier templates export``: the console's CLI side."""

from __future__ import annotations

from pathlib import Path

import click

from notifier.api.console.auth import hash_password
from notifier.cli_state import CliState, pass_state
from notifier.directory import Directory
from notifier.library import export
from notifier.store import Database


@click.group()
def console() -> None:
    """The web console (served at <public_url>/console by `notifier run`)."""


@console.command()
@click.argument("person")
@pass_state
def password(state: CliState, person: str) -> None:
    """Set a console password for PERSON: prints the hash to put in the directory.

    Asks for the password twice (not echoed). The directory keeps only the Argon2id hash
    (``password_hash``), so the file can be reviewed in git without leaking a credential.
    """
    settings = state.settings()
    directory = Directory.load(settings.resolve(settings.directory_file))
    if directory.get(person) is None:
        raise click.ClickException(f"nobody with id {person!r} in the directory")
    secret = click.prompt(
        f"password for {person} (12 characters or more)",
        hide_input=True,
        confirmation_prompt=True,
    )
    if len(secret) < 12:
        raise click.ClickException("too short: use 12 characters or more")
    click.echo(f"add to {person}'s entry in {settings.directory_file}:")
    click.echo(f"  password_hash: '{hash_password(secret)}'")


@click.command(name="export")
@click.option(
    "--templates",
    "templates_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write the templates (default: the configured templates directory).",
)
@click.option(
    "--locales",
    "locales_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write the catalogs (default: the configured locales directory).",
)
@pass_state
def export_templates(state: CliState, templates_dir: Path | None, locales_dir: Path | None) -> None:
    """Write the approved (live) templates and catalogs back to files, for review in git."""
    settings = state.settings()
    db = Database(settings.store.url)
    try:
        if "library_live" not in db.tables():
            raise click.ClickException(
                f"the store at {settings.store.url.split('://')[0]} has no template library yet: "
                "start the engine once (`notifier run`) to create and seed it"
            )
        written = export(
            db,
            templates_dir or settings.templates.directory,
            locales_dir or settings.templates.locales_directory,
        )
    finally:
        db.dispose()
    for path in written:
        click.echo(f"wrote {path}" if path.exists() else f"removed {path}")
    click.echo(f"{len(written)} file(s) changed" if written else "files already match the library")
