"""``notifier silence add|list|expire``: maintenance windows from the command line.

The commands write to the store directly, like ``notifier ack``; a running engine applies a
new silence to new alerts at once (it reads silences per batch) and picks up a silence's
start and end within its hold keeper's poll interval.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import orjson

from notifier.cli_state import CliState, pass_state
from notifier.directory import Directory
from notifier.lifecycle import Verb
from notifier.routing import RoutingConfig
from notifier.silences import Silence, SilenceRefused, SilenceState, new_silence
from notifier.store import Database
from notifier.store.holds import HoldOutcome
from notifier.store.silences import create_silence, expire_silence, list_silences

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|min|h|d|w)\s*$")
_UNITS = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``90m``, ``2h``, ``1.5d``, ``1w`` as a timedelta; ValueError says the accepted forms."""
    m = _DURATION.match(text)
    if m is None:
        raise ValueError(f"duration {text!r}: write a number and a unit, e.g. 90m, 2h, 1d, 1w")
    return timedelta(seconds=float(m[1]) * _UNITS[m[2]])


@click.group()
def silence() -> None:
    """Silences and maintenance windows: matching alerts are tracked but not notified."""


@silence.command(name="add")
@click.option(
    "--match",
    "-m",
    "matchers",
    multiple=True,
    required=True,
    help="A label matcher, e.g. -m 'alertname=\"NodeDown\"' -m 'network=~\"test.*\"'. Repeat.",
)
@click.option("--duration", "-d", help="How long, e.g. 90m, 2h, 1d (or give --until).")
@click.option(
    "--until", "until", type=click.DateTime(), help="End time (UTC unless it has an offset)."
)
@click.option("--start", "start", type=click.DateTime(), help="Start later (UTC); default now.")
@click.option("--comment", "-c", required=True, help="Why: the change, the ticket.")
@click.option("--by", "person", required=True, help="Your person id in the directory.")
@pass_state
def add(
    state: CliState,
    matchers: tuple[str, ...],
    duration: str | None,
    until: datetime | None,
    start: datetime | None,
    comment: str,
    person: str,
) -> None:
    """Create a silence. Alerts it covers that fire now are held at once."""
    settings = state.settings()
    _check_person(settings.resolve(settings.directory_file), person)
    now = datetime.now(UTC)
    try:
        length = parse_duration(duration) if duration else None
        made = new_silence(
            list(matchers),
            created_by=person,
            comment=comment,
            now=now,
            starts_at=_aware(start),
            ends_at=_aware(until),
            duration=length,
        )
    except (ValueError, SilenceRefused) as exc:
        raise click.ClickException(str(exc)) from None
    db = Database(settings.store.url)
    try:
        db.migrate()
        with db.transaction() as conn:
            outcome = create_silence(conn, made, now)
    finally:
        db.dispose()
    click.echo(f"created {made.id}: {_line(made, now)}")
    if outcome.held:
        click.echo(f"  holding {outcome.held} firing alert(s) now")


@silence.command(name="list")
@click.option(
    "--state",
    "wanted",
    type=click.Choice([s.value for s in SilenceState]),
    help="Only silences in this state.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@pass_state
def list_(state: CliState, wanted: str | None, as_json: bool) -> None:
    """List silences, newest first."""
    settings = state.settings()
    db = Database(settings.store.url)
    now = datetime.now(UTC)
    try:
        if "silences" not in db.tables():
            click.echo("no silences (the store is not migrated yet: `notifier run` does it)")
            return
        with db.engine.connect() as conn:
            found = list_silences(conn, now, SilenceState(wanted) if wanted else None)
    finally:
        db.dispose()
    for s in found:
        if as_json:
            click.echo(
                orjson.dumps(
                    {
                        "id": s.id,
                        "state": s.state(now).value,
                        "matchers": [str(m) for m in s.matchers],
                        "starts_at": s.starts_at,
                        "ends_at": s.ends_at,
                        "created_by": s.created_by,
                        "comment": s.comment,
                        "expired_at": s.expired_at,
                        "expired_by": s.expired_by,
                    }
                ).decode()
            )
        else:
            click.echo(f"{s.id}  {_line(s, now)}")
    if not found and not as_json:
        click.echo("no silences")


@silence.command()
@click.argument("silence_id")
@click.option("--by", "person", required=True, help="Your person id in the directory.")
@pass_state
def expire(state: CliState, silence_id: str, person: str) -> None:
    """End a silence now; alerts it held that still fire are notified at once."""
    settings = state.settings()
    _check_person(settings.resolve(settings.directory_file), person)
    rules = RoutingConfig.load(settings.resolve(settings.routing_file)).inhibit_rules
    db = Database(settings.store.url)
    now = datetime.now(UTC)
    try:
        if "silences" not in db.tables():
            raise SilenceRefused(f"no silence {silence_id!r}: this store has no silences yet")
        with db.transaction() as conn:
            _, outcome = expire_silence(conn, silence_id, person, now, rules)
    except SilenceRefused as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        db.dispose()
    click.echo(f"expired {silence_id}: {_released(outcome)}")


def _check_person(directory_file: Path, person: str) -> None:
    directory = Directory.load(directory_file)
    if directory.get(person) is None:
        raise click.ClickException(f"{person!r} is not in the directory")
    if not directory.may(person, Verb.SILENCE):
        raise click.ClickException(
            f"{person} may not manage silences (permissions.silence in the directory)"
        )


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _line(s: Silence, now: datetime) -> str:
    matchers = ", ".join(str(m) for m in s.matchers)
    window = f"{s.starts_at:%Y-%m-%d %H:%M} → {s.ends:%Y-%m-%d %H:%M} UTC"
    return f"{s.state(now).value:8} {{{matchers}}}  {window}  by {s.created_by}: {s.comment}"


def _released(outcome: HoldOutcome) -> str:
    parts = [
        f"{outcome.released} alert(s) released "
        f"({outcome.notifications_released} notifications sent now)"
    ]
    if outcome.held:
        parts.append(f"{outcome.held} still held by something else")
    if outcome.lapsed:
        parts.append(f"{outcome.lapsed} resolved meanwhile (nothing sent)")
    return "; ".join(parts)
