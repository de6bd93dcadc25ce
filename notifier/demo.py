"""``notifier demo``: the whole engine on embedded defaults, end to end, with a readable report.

Starts the embedded Tansu broker (unless NOTIFIER_KAFKA__BOOTSTRAP_SERVERS names one), a local
SMTP server saving mail under ``var/mail/``, a local Slack stand-in (people with a Slack id are
paged there), a fresh SQLite store at ``var/demo.db``; publishes the sample events plus a
duplicate and two malformed records; waits until every notification is delivered; prints who
got what, on which channel, in which language.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import shutil
import time
from pathlib import Path

import click
import orjson
from pydantic import SecretStr

from notifier.api.console.auth import hash_password
from notifier.app import Configuration, Engine, load_configuration
from notifier.broker import EmbeddedBroker, free_port, publish, records_for
from notifier.directory import Capability, Directory
from notifier.mailcatcher import MailCatcher
from notifier.settings import Settings
from notifier.slack_blocks import unescape
from notifier.slack_standin import SlackCall, SlackStandIn
from notifier.store.queries import counts, notification_summary

VAR = Path("var")
_DEMO_SLACK_TOKEN = "xoxb-demo-token"  # noqa: S105 (the local stand-in's, not a secret)
_BAD_RECORDS = [
    (b"demo-bad-1", b"{this is not json"),
    (
        b"demo-bad-2",
        orjson.dumps(
            {
                "specversion": "1.0",
                "id": "x-1",
                "source": "demo",
                "type": "com.example.unknown",
                "data": {},
            }
        ),
    ),
]


def _with_console_password(config: Configuration, password: str) -> Configuration:
    """The configuration with ``password`` for everyone the console lets in (demo only: the
    shipped directory has no passwords)."""
    directory = config.directory
    digest = hash_password(password)
    people = [
        p.model_copy(update={"password_hash": digest})
        if directory.may(p.id, Capability.VIEW)
        else p
        for p in directory
    ]
    updated = Directory(people, directory.permissions, directory.channels)
    return dataclasses.replace(config, directory=updated)


async def run_demo(settings: Settings, samples: Path, *, keep: bool = False) -> int:
    """Run the demo; return the process exit code (0 when every notification was sent)."""
    mail_dir = VAR / "mail"
    shutil.rmtree(mail_dir, ignore_errors=True)
    for suffix in ("", "-wal", "-shm"):
        (VAR / f"demo.db{suffix}").unlink(missing_ok=True)
    VAR.mkdir(exist_ok=True)

    broker: EmbeddedBroker | None = None
    bootstrap = settings.kafka.bootstrap_servers
    if "NOTIFIER_KAFKA__BOOTSTRAP_SERVERS" not in os.environ:
        broker = EmbeddedBroker(log_file=VAR / "tansu.log")
        await asyncio.to_thread(broker.start)
        bootstrap = broker.bootstrap_servers
        click.echo(f"▶ embedded Kafka-compatible broker (Tansu) on {bootstrap}")
    else:
        click.echo(f"▶ using the broker at {bootstrap}")

    http_port = free_port()
    catcher = MailCatcher(mail_dir)
    await catcher.start()
    click.echo(f"▶ SMTP capture on {catcher.host}:{catcher.port}, saving to {mail_dir}/")
    slack = SlackStandIn(token=_DEMO_SLACK_TOKEN)
    await slack.start()
    click.echo(f"▶ Slack stand-in (Web API) at {slack.base_url}")
    settings = settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(
                update={
                    "bootstrap_servers": bootstrap,
                    "group_id": f"notifier-demo-{os.getpid()}",
                    "session_timeout_ms": 6000,
                    "heartbeat_interval_ms": 500,
                    "rebalance_timeout_ms": 3000,
                }
            ),
            "smtp": settings.smtp.model_copy(
                update={
                    "host": catcher.host,
                    "port": catcher.port,
                    "starttls": False,
                    "use_tls": False,
                    "username": None,
                    "password": None,
                }
            ),
            "slack": settings.slack.model_copy(
                update={
                    "enabled": True,
                    "base_url": slack.base_url,
                    "bot_token": SecretStr(_DEMO_SLACK_TOKEN),
                    "signing_secret": SecretStr("demo-signing-secret"),
                }
            ),
            "store": settings.store.model_copy(update={"url": f"sqlite:///{VAR / 'demo.db'}"}),
            "http": settings.http.model_copy(
                update={
                    "host": "127.0.0.1",
                    "port": http_port,
                    "public_url": f"http://127.0.0.1:{http_port}",
                }
            ),
        }
    )
    config = load_configuration(settings)
    console_password = secrets.token_urlsafe(9) if keep else None
    if console_password is not None:
        config = _with_console_password(config, console_password)
    engine = Engine(config)
    stop = asyncio.Event()
    try:
        await engine.start(api=True)
        runner = asyncio.create_task(engine.run(stop, api=True))
        click.echo(f"▶ HTTP API on http://127.0.0.1:{http_port} (OpenAPI at /docs)")
        expected = await _publish_samples(settings, samples)
        ok = await _wait_until_done(engine, expected, runner)
        _report(engine, mail_dir, slack)
        if keep:
            people = ", ".join(p.id for p in config.directory if p.password_hash)
            click.echo(
                f"\n▶ web console on http://127.0.0.1:{http_port}/console: sign in as any of "
                f"{people} with the password {console_password} (this run only)"
            )
            click.echo(
                "running; publish more with `notifier publish FILE` "
                f"(NOTIFIER_KAFKA__BOOTSTRAP_SERVERS={bootstrap}); Ctrl-C to stop"
            )
            await runner
        else:
            click.echo(
                "\n`notifier demo --keep` keeps it running, with the web console "
                "(incidents, templates, translations, audit log)"
            )
        stop.set()
        await runner
        return 0 if ok else 1
    finally:
        stop.set()
        await catcher.stop()
        await slack.stop()
        if broker is not None:
            await asyncio.to_thread(broker.stop)


async def _publish_samples(settings: Settings, samples: Path) -> int:
    files = sorted(samples.glob("*.json"))
    if not files:
        raise click.ClickException(f"no sample events (*.json) in {samples}")
    records: list[tuple[bytes, bytes]] = []
    for path in files:
        records.extend(records_for(path.read_bytes(), max_bytes=settings.kafka.max_event_bytes))
    # A producer retry: the same event again. It must have no effect.
    duplicate = records[0]
    await publish(
        settings.kafka.bootstrap_servers, settings.kafka.topic, [*records, duplicate, *_BAD_RECORDS]
    )
    click.echo(
        f"▶ published {len(records)} sample events from {samples}/, 1 duplicate "
        f"and {len(_BAD_RECORDS)} malformed records"
    )
    return len(records) + 1 + len(_BAD_RECORDS)


async def _wait_until_done(engine: Engine, expected: int, runner: asyncio.Task[None]) -> bool:
    deadline = time.monotonic() + 60
    last = ""
    while time.monotonic() < deadline:
        if runner.done():
            await runner  # surfaces the engine's error
        totals = engine.ingestor.totals
        seen = totals["accepted"] + totals["duplicates"] + totals["rejected"]
        c = await asyncio.to_thread(counts, engine.db)
        line = (
            f"  consumed {seen}/{expected} · notifications: {c['notifications_sent']} sent, "
            f"{c['notifications_pending']} pending, {c['notifications_failed']} failed"
        )
        if c["digests_pending"]:
            line += (
                f" · {c['digests_pending']} digest(s) collecting grouped warnings "
                "(sent 30 s after a group's first alert)"
            )
        if line != last:
            click.echo(line)
            last = line
        if seen >= expected and c["notifications_pending"] == 0 and totals["notifications"]:
            return c["notifications_failed"] == 0
        await asyncio.sleep(0.2)
    click.echo("✗ timed out waiting for the engine (see var/tansu.log and the log above)")
    return False


def _report(engine: Engine, mail_dir: Path, slack: SlackStandIn) -> None:
    rows = notification_summary(engine.db)
    c = counts(engine.db)
    t = engine.ingestor.totals
    click.echo(
        f"\n{t['accepted']} events accepted, {t['duplicates']} duplicate ignored, "
        f"{t['rejected']} rejected to the dead-letter topic; {c['alerts']} alerts"
    )
    current = None
    for row in rows:
        heading = f"{row['alert_name']} ({row['kind']})"
        if heading != current:
            click.echo(f"\n■ {heading}")
            current = heading
        if row["status"] == "sent":
            status = "✓"
        elif row["status"] == "bundled":  # fatigue control: listed in a digest instead
            status = f"↳ in a digest ({row['error_reason']})"
        else:
            status = f"✗ {row['status']} ({row['error_reason']})"
        secret = "+confidential" if row["clearance"] == "confidential" else row["clearance"]
        click.echo(
            f"  {status} {row['recipient_name']:24} {row['channel']:6} {row['tier']:11} "
            f"{row['locale']:>6} → {row['language'] or '-':3} {row['template']:16} {secret}"
        )
    click.echo(
        "\n(locale → language actually rendered; +confidential: the message includes the "
        "confidential section)"
    )
    posts = [c for c in slack.calls if c.ok and c.method == "chat.postMessage"]
    replies = sum(1 for c in posts if c.thread_ts)
    updates = sum(1 for c in slack.calls if c.ok and c.method == "chat.update")
    click.echo(
        f"\n{len(list(mail_dir.glob('*.eml')))} emails saved in {mail_dir}/ "
        "(open one with any mail client, or `cat` it); "
        f"{len(posts)} Slack messages ({replies} of them replies in an alert's thread, "
        f"{updates} updates of the alert's first message)"
    )
    _show_slack_page(engine.config.directory, posts)


def _show_slack_page(directory: Directory, posts: list[SlackCall]) -> None:
    """Print the first Slack alert page (one with buttons) to a reader of another language
    than English, as Slack lays it out (its headings and buttons translated too)."""
    for call in posts:
        person = directory.by_slack_id(str(call.channel))
        if person is None or person.locale.startswith("en") or call.thread_ts:
            continue
        if not any(b["type"] == "actions" for b in call.blocks or []):
            continue
        click.echo(f"\nA Slack page to {person.name} ({person.locale}), as Slack shows it:")
        for block in call.blocks or []:
            if block["type"] == "header":
                click.echo(f"  ┃ {block['text']['text']}")
            elif block["type"] == "context":
                click.echo("  ┃ " + "   ".join(_plain(e["text"]) for e in block["elements"]))
            elif block["type"] == "section":
                for line in _plain(block["text"]["text"]).splitlines()[:6]:
                    click.echo(f"  ┃ {line}")
                click.echo("  ┃ …")
            elif block["type"] == "actions":
                buttons = (f"[ {e['text']['text']} ]" for e in block["elements"])
                click.echo("  ┃ " + "  ".join(buttons))
        return


def _plain(mrkdwn: str) -> str:
    """Slack mrkdwn as a terminal shows it: entities read back, no bold markers."""
    return unescape(mrkdwn.replace("*", ""))
