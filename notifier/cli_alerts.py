"""Commands for people on call: list alerts, show a timeline, acknowledge, post status
updates, API tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

import click
import orjson

from notifier.cli_state import CliState, pass_state
from notifier.directory import Directory
from notifier.lifecycle import Action, TransitionRefused, Verb
from notifier.store import Database
from notifier.store.queries import list_alerts
from notifier.store.timeline import (
    AlertNotFound,
    UpdateRefused,
    apply_action,
    find_alert_id,
    post_update,
    timeline,
)


@click.command()
@click.option(
    "--status",
    type=click.Choice(["firing", "acknowledged", "resolved", "notice"]),
    help="Filter by status.",
)
@click.argument("alert_id", required=False)
@click.option("--limit", default=50, show_default=True, help="How many to show, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@pass_state
def alerts(
    state: CliState, alert_id: str | None, status: str | None, limit: int, as_json: bool
) -> None:
    """List alerts from the store, newest first; with ALERT_ID, show one alert's timeline."""
    db = Database(state.settings().store.url)
    try:
        if "alerts" not in db.tables():
            click.echo("no alerts (the store is empty: `notifier run` creates it)", err=as_json)
            return
        if alert_id is not None:
            _show_timeline(db, alert_id, as_json)
            return
        rows = list_alerts(db, state=status, limit=limit)
    finally:
        db.dispose()
    for row in rows:
        if as_json:
            click.echo(orjson.dumps(row, default=str).decode())
        else:
            click.echo(
                f"{row['id'][:12]}  {row['status']:9} {row['severity']:9} "
                f"#{row['occurrence']} {row['name']}  ({row['event_count']} events, "
                f"{row['notifications']} notifications)"
            )
    if not rows and not as_json:
        click.echo("no alerts")


def _show_timeline(db: Database, ref: str, as_json: bool) -> None:
    try:
        with db.engine.connect() as conn:
            alert_id = find_alert_id(conn, ref)
            steps = timeline(conn, alert_id)
    except AlertNotFound as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"alert {alert_id}")
    for step in steps:
        if as_json:
            click.echo(orjson.dumps(step, default=str).decode())
            continue
        note = f"  “{step['note']}”" if step["note"] else ""
        click.echo(
            f"  {step['at']:%Y-%m-%d %H:%M:%S}Z  #{step['occurrence']} {step['kind']:12} "
            f"by {step['actor']} via {step['channel']}{note}"
        )


@click.command()
@click.argument("alert_id")
@click.option("--by", "person", required=True, help="Your person id in the directory.")
@click.option("--note", help="A note for the timeline (what you are doing about it).")
@click.option("--resolve", is_flag=True, help="Resolve the alert instead of acknowledging it.")
@pass_state
def ack(state: CliState, alert_id: str, person: str, note: str | None, resolve: bool) -> None:
    """Acknowledge an alert (take charge of it), or resolve it with --resolve.

    ALERT_ID is the id `notifier alerts` shows (a unique prefix of six or more characters is
    enough). Acknowledging an alert twice is harmless and reported as already acknowledged.
    """
    settings = state.settings()
    directory = Directory.load(settings.resolve(settings.directory_file))
    verb = Verb.RESOLVE if resolve else Verb.ACKNOWLEDGE
    if directory.get(person) is None:
        raise click.ClickException(f"nobody with id {person!r} in the directory")
    if not directory.may(person, verb):
        allowed = ", ".join(
            directory.permissions.resolve if resolve else directory.permissions.acknowledge
        )
        raise click.ClickException(
            f"{person} may not {verb.value} alerts; roles allowed by permissions.{verb.value} "
            f"in {settings.directory_file}: {allowed or 'none'}"
        )
    db = Database(settings.store.url)
    action = Action(verb, person, "cli", datetime.now(UTC), note)
    try:
        if "alerts" not in db.tables():
            raise click.ClickException("the store has no alerts yet (`notifier run` creates it)")
        with db.transaction() as conn:
            result = apply_action(
                conn, alert_id, action, lock=not db.is_sqlite, directory=directory
            )
    except (AlertNotFound, TransitionRefused) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        db.dispose()
    what = f"{result.name} (alert {result.alert_id[:12]}, occurrence {result.occurrence})"
    if result.outcome.already:
        who = f" by {result.acknowledged_by}" if result.acknowledged_by else ""
        click.echo(f"already {result.outcome.after.value}{who}: {what}")
    else:
        click.echo(f"{result.outcome.after.value} by {person}: {what}")


@click.command()
@click.argument("alert_id")
@click.option("--by", "person", required=True, help="Your person id in the directory.")
@click.option("--note", required=True, help="The update, as stakeholders should read it.")
@pass_state
def update(state: CliState, alert_id: str, person: str, note: str) -> None:
    """Post a status update on an open alert.

    Policies with status_updates send the latest update to their stakeholder tiers at each
    scheduled update, and stop reminding the commander while updates keep coming.
    """
    settings = state.settings()
    directory = Directory.load(settings.resolve(settings.directory_file))
    if directory.get(person) is None:
        raise click.ClickException(f"nobody with id {person!r} in the directory")
    if not directory.may(person, Verb.ACKNOWLEDGE):
        raise click.ClickException(
            f"{person} may not post status updates (permissions.acknowledge decides who may)"
        )
    db = Database(settings.store.url)
    try:
        if "alerts" not in db.tables():
            raise click.ClickException("the store has no alerts yet (`notifier run` creates it)")
        with db.transaction() as conn:
            found = post_update(conn, alert_id, person, note.strip(), datetime.now(UTC))
    except (AlertNotFound, UpdateRefused) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        db.dispose()
    click.echo(f"update recorded on alert {found[:12]}; it goes out with the next scheduled update")


@click.group()
def tokens() -> None:
    """Personal API tokens."""


@tokens.command(name="new")
@click.argument("person")
@pass_state
def new_token(state: CliState, person: str) -> None:
    """Make an API token for PERSON: give them the token, put its hash in the directory.

    The directory stores only the SHA-256 of the token (api_token_sha256), so the file can be
    reviewed in git without leaking a credential.
    """
    settings = state.settings()
    directory = Directory.load(settings.resolve(settings.directory_file))
    if directory.get(person) is None:
        raise click.ClickException(f"nobody with id {person!r} in the directory")
    token = secrets.token_urlsafe(32)
    click.echo(f"token for {person} (shown once; send it privately):\n  {token}\n")
    click.echo(f"add to {person}'s entry in {settings.directory_file}:")
    click.echo(f"  api_token_sha256: {hashlib.sha256(token.encode()).hexdigest()}")
