"""The ``notifier`` command line: run, demo, publish, alerts, routes, templates, config check."""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import click
from aiokafka.errors import KafkaConnectionError

from notifier import __version__, i18n
from notifier.app import Configuration, Engine
from notifier.broker import publish, records_for, split_documents
from notifier.cli_alerts import ack, alerts, tokens
from notifier.cli_alerts import update as post_status_update
from notifier.cli_console import console, export_templates
from notifier.cli_silences import silence
from notifier.cli_state import CliState, pass_state
from notifier.decoding import decode_record
from notifier.demo import run_demo
from notifier.errors import ConfigError, RejectedInput
from notifier.events import AlertData, Event
from notifier.log import configure
from notifier.routing import Recipient
from notifier.silences import alert_labels
from notifier.store import Database
from notifier.store.fatigue import explain as explain_fatigue
from notifier.store.holds import would_hold


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
    ctx.obj = CliState(config_file)


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
def run(state: CliState, no_deliver: bool, deliver_only: bool, api_only: bool) -> None:
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
def demo(state: CliState, keep: bool, verbose: bool, samples: Path) -> None:
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
def publish_cmd(state: CliState, source: BinaryIO, topic: str | None, dry_run: bool) -> None:
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
def routes_test(state: CliState, event_file: BinaryIO, verbose: bool) -> None:
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
        held = _held_now(config, event) if recipients else None
        now = datetime.now(UTC)
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
            why = held or _fatigue_now(config, r, event, now)
            click.echo(f"      {why or 'would be sent now'}")


def _fatigue_now(
    config: Configuration, recipient: Recipient, event: Event, now: datetime
) -> str | None:
    """Quiet hours, grouping or a rate limit that would keep this message from going alone."""
    if not isinstance(event.data, AlertData):
        return None  # policy notices are never grouped or limited
    fatigue = config.router.config.fatigue
    if not fatigue.may_bundle(recipient.person.quiet_hours is not None):
        return None
    db = Database(config.settings.store.url)
    try:
        if "pacing" not in db.tables():
            return explain_fatigue(
                None, fatigue, recipient, event.severity.value, event.labels, now
            )
        with db.engine.connect() as conn:
            return explain_fatigue(
                conn, fatigue, recipient, event.severity.value, event.labels, now
            )
    finally:
        db.dispose()


def _held_now(config: Configuration, event: Event) -> str | None:
    """What would hold the event's alert now (silence, inhibition), read from the store;
    None when nothing would, or the store has no silences yet."""
    if not isinstance(event.data, AlertData):
        return None  # policy notices are never held
    db = Database(config.settings.store.url)
    try:
        if "silences" not in db.tables():
            return None
        labels = alert_labels(event.data.alertname, event.severity.value, event.labels)
        with db.engine.connect() as conn:
            cause = would_hold(conn, labels, datetime.now(UTC), config.router.config.inhibit_rules)
    finally:
        db.dispose()
    return None if cause is None else f"held now ({cause.reason}): {cause.detail}"


@cli.group()
def templates() -> None:
    """Templates and their translations: list, export the approved set, Babel's
    extract/update/compile."""


@templates.command()
@pass_state
def extract(state: CliState) -> None:
    """Extract translatable messages from templates/ into locales/notifier.pot."""

    t = state.settings().templates
    pot = t.locales_directory / "notifier.pot"
    count = i18n.extract(t.directory, pot)
    click.echo(f"extracted {count} message(s) into {pot}")


@templates.command()
@click.option("--lang", "languages", multiple=True, help="Also create a catalog for this language.")
@pass_state
def update(state: CliState, languages: tuple[str, ...]) -> None:
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
def compile_(state: CliState) -> None:
    """Compile every catalog (.po) into the binary form the engine loads (.mo)."""

    t = state.settings().templates
    for path in i18n.compile_catalogs(t.locales_directory):
        click.echo(f"compiled {path}")


@templates.command(name="list")
@pass_state
def list_templates(state: CliState) -> None:
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
def check(state: CliState) -> None:
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
    channels = [f"email via {s.smtp.host}:{s.smtp.port}"]
    if s.slack.enabled:
        signed = "signed actions" if s.slack.signing_secret else "no signing secret: buttons off"
        token = "token set" if s.slack.bot_token else "NO TOKEN (NOTIFIER_SLACK__BOT_TOKEN)"
        channels.append(f"slack at {s.slack.base_url} ({token}, {signed})")
    if s.webhooks.endpoints:
        channels.append(f"webhooks: {', '.join(sorted(s.webhooks.endpoints))}")
    click.echo(f"channels ok: {'; '.join(channels)}")


cli.add_command(alerts)
cli.add_command(ack)
cli.add_command(tokens)
cli.add_command(post_status_update)
cli.add_command(silence)
cli.add_command(console)
templates.add_command(export_templates)
