"""The ``notifier`` command line: run, demo, publish, alerts, routes, templates, config check."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import click
import orjson
from aiokafka.errors import KafkaConnectionError

from notifier import __version__, i18n
from notifier.app import Configuration, Engine, load_configuration
from notifier.broker import publish, records_for, split_documents
from notifier.decoding import decode_record
from notifier.demo import run_demo
from notifier.directory import Directory
from notifier.errors import ConfigError, RejectedInput
from notifier.lifecycle import Action, TransitionRefused, Verb
from notifier.log import configure
from notifier.settings import Settings, load_settings
from notifier.store import Database
from notifier.store.queries import recent_alerts
from notifier.store.timeline import AlertNotFound, apply_action, find_alert_id, timeline


class _State:
    def __init__(self, config_file: Path | None) -> None:
        self.config_file = config_file
        self._settings: Settings | None = None

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_file)
            configure(self._settings.log)
        return self._settings

    def configuration(self) -> Configuration:
        return load_configuration(self.settings())


pass_state = click.make_pass_decorator(_State)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="NOTIFIER_CONFIG",
    help="YAML settings file [default: config/notifier.yaml; env NOTIFIER_CONFIG].",
)
@click.version_option(__version__, prog_name="notifier")
@click.pass_context
def cli(ctx: click.Context, config_file: Path | None) -> None:
    """notifier: Kafka events in, localized pre-approved notifications out.

    Every setting can be overridden with NOTIFIER_<SECTION>__<KEY> environment variables,
    e.g. NOTIFIER_KAFKA__BOOTSTRAP_SERVERS or NOTIFIER_SMTP__HOST.
    """
    ctx.obj = _State(config_file)


def main() -> None:
    """Entry point: turn configuration and input errors into one clear line and exit code 2."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KafkaConnectionError as exc:
        click.echo(
            f"error: cannot reach the Kafka broker ({exc}); check kafka.bootstrap_servers "
            "or NOTIFIER_KAFKA__BOOTSTRAP_SERVERS",
            err=True,
        )
        sys.exit(3)


def _run_until_signalled(engine: Engine, *, ingest: bool, deliver: bool, api: bool) -> None:
    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await engine.run(stop, ingest=ingest, deliver=deliver, api=api)

    asyncio.run(go())


@cli.command()
@click.option("--no-deliver", is_flag=True, help="Only ingest: leave notifications in the outbox.")
@click.option("--deliver-only", is_flag=True, help="Only drain the outbox; do not consume.")
@click.option("--api-only", is_flag=True, help="Only serve the HTTP API.")
@pass_state
def run(state: _State, no_deliver: bool, deliver_only: bool, api_only: bool) -> None:
    """Consume events, route them, deliver notifications and serve the HTTP API.

    Runs until SIGTERM or Ctrl-C. The HTTP API (http.host:http.port, OpenAPI at /docs) runs
    in the same process unless http.enabled is false.
    """
    if sum((no_deliver, deliver_only, api_only)) > 1:
        raise click.UsageError("--no-deliver, --deliver-only and --api-only exclude each other")
    config = state.configuration()
    engine = Engine(config)
    api = config.settings.http.enabled or api_only
    _run_until_signalled(
        engine,
        ingest=not (deliver_only or api_only),
        deliver=not (no_deliver or api_only),
        api=api,
    )


@cli.command()
@click.option("--keep", is_flag=True, help="Keep running after the summary until Ctrl-C.")
@click.option("--verbose", "-v", is_flag=True, help="Show the engine's log lines too.")
@click.option(
    "--samples",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("config/samples"),
    show_default=True,
    help="Folder of sample events to publish.",
)
@pass_state
def demo(state: _State, keep: bool, verbose: bool, samples: Path) -> None:
    """Run everything locally: embedded broker, SQLite, SMTP capture; publish samples; report.

    Uses the configured broker when NOTIFIER_KAFKA__BOOTSTRAP_SERVERS is set, otherwise starts
    the embedded Tansu broker. Mail is saved under var/mail/, the store is var/demo.db.
    """

    settings = state.settings()
    if not verbose:
        configure(settings.log.model_copy(update={"level": "WARNING", "format": "console"}))
    sys.exit(asyncio.run(run_demo(settings, samples, keep=keep)))


@cli.command(name="publish")
@click.argument("source", type=click.File("rb"))
@click.option("--topic", help="Topic to produce to [default: kafka.topic].")
@click.option("--dry-run", is_flag=True, help="Validate only; produce nothing.")
@pass_state
def publish_cmd(state: _State, source: BinaryIO, topic: str | None, dry_run: bool) -> None:
    """Validate events from SOURCE (a file or - for stdin) and produce them.

    SOURCE holds one CloudEvent or Alertmanager payload, a JSON array of them, or JSON lines.
    Nothing is produced if any document is invalid.
    """
    s = state.settings()
    raw = source.read()
    records: list[tuple[bytes, bytes]] = []
    for index, document in enumerate(split_documents(raw)):
        try:
            records.extend(records_for(document, max_bytes=s.kafka.max_event_bytes))
        except RejectedInput as exc:
            raise click.ClickException(
                f"document {index + 1} is invalid ({exc.code.value}): {exc.detail}"
            ) from None
    if dry_run:
        click.echo(f"{len(records)} event(s) valid; nothing produced (--dry-run)")
        return
    count = asyncio.run(publish(s.kafka.bootstrap_servers, topic or s.kafka.topic, records))
    click.echo(
        f"published {count} event(s) to {topic or s.kafka.topic} at {s.kafka.bootstrap_servers}"
    )


@cli.group()
def routes() -> None:
    """Inspect routing."""


@routes.command(name="test")
@click.option(
    "--event",
    "event_file",
    type=click.File("rb"),
    required=True,
    help="A CloudEvent or Alertmanager payload (file or -).",
)
@click.option("--verbose", "-v", is_flag=True, help="Also show rules that did not match.")
@pass_state
def routes_test(state: _State, event_file: BinaryIO, verbose: bool) -> None:
    """Print who would be notified about an event, and which rule and tier decided it."""
    config = state.configuration()
    try:
        events = decode_record(event_file.read(), max_bytes=config.settings.kafka.max_event_bytes)
    except RejectedInput as exc:
        raise click.ClickException(f"event is invalid ({exc.code.value}): {exc.detail}") from None
    for event in events:
        click.echo(
            f"event {event.id} ({event.type}) severity={event.severity} "
            f"risk={event.risk or '-'} fingerprint={event.fingerprint}"
        )
        for verdict in config.router.explain(event):
            if verdict.matched or verbose:
                mark = "✓" if verdict.matched else "·"
                click.echo(f"  {mark} rule {verdict.rule.name}: {verdict.reason}")
        recipients = config.router.route(event)
        if not recipients:
            click.echo("  nobody would be notified")
        for r in recipients:
            secret = (
                "with confidential details"
                if r.sees_confidential
                else "without confidential details"
            )
            click.echo(
                f"  → {r.person.name} <{r.contact.address}> tier={r.tier} "
                f"template={r.template} locale={r.person.locale} ({secret})"
            )


@cli.group()
def templates() -> None:
    """Manage translations of the templates (wraps Babel's extract/update/compile)."""


@templates.command()
@pass_state
def extract(state: _State) -> None:
    """Extract translatable messages from templates/ into locales/notifier.pot."""

    t = state.settings().templates
    pot = t.locales_directory / "notifier.pot"
    count = i18n.extract(t.directory, pot)
    click.echo(f"extracted {count} message(s) into {pot}")


@templates.command()
@click.option("--lang", "languages", multiple=True, help="Also create a catalog for this language.")
@pass_state
def update(state: _State, languages: tuple[str, ...]) -> None:
    """Merge locales/notifier.pot into every catalog (and create new ones with --lang)."""

    t = state.settings().templates
    pot = t.locales_directory / "notifier.pot"
    for path in i18n.update(pot, t.locales_directory, list(languages)):
        click.echo(f"updated {path}")
    missing = i18n.untranslated(t.locales_directory, pot)
    for language, msgids in sorted(missing.items()):
        if msgids:
            click.echo(f"{language}: {len(msgids)} message(s) need translating")


@templates.command(name="compile")
@pass_state
def compile_(state: _State) -> None:
    """Compile every catalog (.po) into the binary form the engine loads (.mo)."""

    t = state.settings().templates
    for path in i18n.compile_catalogs(t.locales_directory):
        click.echo(f"compiled {path}")


@templates.command(name="list")
@pass_state
def list_templates(state: _State) -> None:
    """List templates with their channels, parts and content hashes."""
    renderer = state.configuration().renderer
    for name in renderer.templates():
        for channel, parts in renderer.parts(name).items():
            click.echo(
                f"{name:20} {channel:8} {','.join(parts):20} "
                f"{renderer.template_hash(name, channel)[:12]}"
            )


@cli.group()
def config() -> None:
    """Check the configuration."""


@config.command()
@pass_state
def check(state: _State) -> None:
    """Validate settings, directory, routing and templates, and say what was loaded."""
    c = state.configuration()
    s = c.settings
    click.echo(
        f"settings ok: broker {s.kafka.bootstrap_servers}, topic {s.kafka.topic}, "
        f"store {s.store.url.split('://')[0]}"
    )
    click.echo(
        f"directory ok: {len(c.directory)} people, roles: {', '.join(sorted(c.directory.roles()))}"
    )
    click.echo(
        f"routing ok: {len(c.router.config.tiers)} tiers, {len(c.router.config.rules)} rules"
    )
    click.echo(
        f"templates ok: {', '.join(c.renderer.templates())}; "
        f"languages: {', '.join(c.catalogs.languages())}"
    )


@cli.command()
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
    state: _State, alert_id: str | None, status: str | None, limit: int, as_json: bool
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
        rows = recent_alerts(db, status=status, limit=limit)
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


@cli.command()
@click.argument("alert_id")
@click.option("--by", "person", required=True, help="Your person id in the directory.")
@click.option("--note", help="A note for the timeline (what you are doing about it).")
@click.option("--resolve", is_flag=True, help="Resolve the alert instead of acknowledging it.")
@pass_state
def ack(state: _State, alert_id: str, person: str, note: str | None, resolve: bool) -> None:
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
            result = apply_action(conn, alert_id, action, lock=not db.is_sqlite)
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


@cli.group()
def tokens() -> None:
    """Personal API tokens."""


@tokens.command(name="new")
@click.argument("person")
@pass_state
def new_token(state: _State, person: str) -> None:
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
