"""An alert's life in Slack, through the outbox and the local Slack stand-in over real HTTP:
the page with buttons, then the acknowledgment and the resolve as replies in the page's thread,
each updating the page itself."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from notifier.channels.email import EmailChannel
from notifier.channels.slack import SlackChannel
from notifier.directory import ChannelKind, Directory
from notifier.i18n import Catalogs
from notifier.lifecycle import Action, Verb
from notifier.mailcatcher import MailCatcher
from notifier.outbox import Dispatcher
from notifier.pipeline import BatchProcessor, RawRecord
from notifier.routing import Router, RoutingConfig
from notifier.settings import DeliverySettings, SlackSettings, SmtpSettings, TemplateSettings
from notifier.slack_standin import SlackStandIn
from notifier.store import Database
from notifier.store.schema import alerts, notifications
from notifier.store.timeline import apply_action
from notifier.templating import Renderer
from notifier.testing import FakeClock

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 11, 20, 8, 15, tzinfo=UTC)
TOKEN = "xoxb-flow-test"
SLACK_PEOPLE = {"jonas.weber", "priya.raman", "lukas.meier", "mei.lin", "carlos.ruiz"}


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    """The Slack stand-in on a free port."""
    async with SlackStandIn(token=TOKEN) as standin:
        yield standin


# The page's buttons in each reader's language (the approved labels.j2 and catalogs).
BUTTONS = {
    "en": ["Acknowledge", "Resolve"],
    "de": ["Quittieren", "Beheben"],
    "es": ["Reconocer", "Resolver"],
}


def _buttons(blocks: list[dict[str, Any]] | None) -> list[str]:
    found = []
    for block in blocks or []:
        if block["type"] == "actions":
            found += [e["text"]["text"] for e in block["elements"] if "value" in e]
    return found


def _channels(calls: list[Any]) -> list[str]:
    return [str(c.channel) for c in calls]


async def test_page_then_acknowledgment_and_resolve_in_the_thread(
    db: Database, slack: SlackStandIn, smtp_settings: SmtpSettings, mailcatcher: MailCatcher
) -> None:
    """People with a Slack id get the page as a direct message with Acknowledge and Resolve
    (in their own language); the others get email. Mei acknowledges: everyone else paged in
    Slack gets a reply in their page's thread mentioning her, and the page loses its
    Acknowledge button; the resolve replies again and leaves no buttons."""
    clock = FakeClock(T0)
    directory = Directory.load(
        ROOT / "config" / "directory.yaml", [ChannelKind.EMAIL, ChannelKind.SLACK]
    )
    router = Router(RoutingConfig.load(ROOT / "config" / "routing.yaml"), directory)
    proc = BatchProcessor(db, router, clock, group="g", topic="t", max_event_bytes=1 << 20)
    doc = (ROOT / "config" / "samples" / "alert-firing.json").read_bytes()
    records = [RawRecord("t", 0, 0, None, doc, ())]
    proc.apply(records, proc.decode(records))
    templates = TemplateSettings(directory=ROOT / "templates", locales_directory=ROOT / "locales")
    slack_channel = SlackChannel(
        SlackSettings(enabled=True, base_url=slack.base_url, bot_token=TOKEN, pace_seconds=0),
        clock=clock,
    )
    email = EmailChannel(smtp_settings)
    dispatcher = Dispatcher(
        db,
        Renderer(templates, Catalogs.load(templates.locales_directory)),
        {"email": email, "slack": slack_channel},
        DeliverySettings(),
        clock,
        random.Random(1),
        directory=directory,
    )

    async def drain() -> None:
        while await dispatcher.drain_once():
            pass

    def act(verb: Verb) -> None:
        with db.engine.connect() as conn:
            alert_id = str(conn.scalar(select(alerts.c.id)))
        with db.transaction() as conn:
            apply_action(
                conn,
                alert_id,
                Action(verb, "mei.lin", "slack", clock.now()),
                lock=not db.is_sqlite,
                directory=directory,
            )

    try:
        await drain()
        pages = [c for c in slack.calls if c.method == "chat.postMessage"]
        assert len(pages) == len({c.channel for c in pages}) == len(SLACK_PEOPLE)
        assert all(str(c.channel).startswith("U") for c in pages)  # direct messages
        for page_call in pages:
            person = directory.by_slack_id(str(page_call.channel))
            assert person is not None
            assert _buttons(page_call.blocks) == BUTTONS[person.locale[:2]], person.id
        assert {p.locale[:2] for p in map(directory.by_slack_id, _channels(pages)) if p} == {
            "en",
            "de",
            "es",
        }
        # Critical mainnet pages fan out: Slack people get an email too; Ana and Helga only that.
        assert len(await mailcatcher.wait_for(7)) == 7

        clock.advance(120)
        act(Verb.ACKNOWLEDGE)
        await drain()
        replies = [c for c in slack.calls if c.method == "chat.postMessage" and c.thread_ts]
        assert len(replies) == len(SLACK_PEOPLE) - 1  # everyone but Mei
        assert all("<@U04MEILIN>" in str(c.blocks) for c in replies)
        for reply in replies:
            [page] = [m for m in slack.messages(str(reply.channel)) if m.ts == reply.thread_ts]
            assert page.updates == 1
            # A direct message's conversation is "D" + the user id.
            person = directory.by_slack_id(str(reply.channel).removeprefix("D"))
            assert person is not None
            assert _buttons(page.blocks) == BUTTONS[person.locale[:2]][1:]

        clock.advance(600)
        act(Verb.RESOLVE)
        await drain()
        for person_channel in {c.channel for c in replies}:
            thread = slack.messages(str(person_channel))
            parent = next(m for m in thread if m.thread_ts is None)
            assert _buttons(parent.blocks) == []
            assert parent.updates == 2
    finally:
        await slack_channel.close()
        await email.close()
    with db.engine.connect() as conn:
        statuses = set(conn.scalars(select(notifications.c.status)))
    assert statuses == {"sent"}
