"""Delivery through outages, with real transports and a fake clock: the SMTP relay down for
30 seconds while alerts keep coming, a webhook receiver failing for a while, fallback to a
person's next contact. Nothing lost, nothing doubled, order per alert kept."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from notifier.channels.email import EmailChannel
from notifier.channels.webhook import WebhookChannel
from notifier.directory import ChannelKind, Directory
from notifier.hookcatcher import HookCatcher
from notifier.i18n import Catalogs
from notifier.mailcatcher import MailCatcher
from notifier.outbox import Dispatcher
from notifier.pipeline import BatchProcessor, RawRecord
from notifier.routing import Router, RoutingConfig
from notifier.settings import DeliverySettings, SmtpSettings, TemplateSettings, WebhookSettings
from notifier.store import Database
from notifier.store.schema import notifications
from notifier.templating import Renderer
from notifier.testing import FakeClock

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "config" / "samples"
T0 = datetime(2026, 11, 20, 8, 15, tzinfo=UTC)
SECRET = "hook-secret"


class World:
    """Ingest, a dispatcher with email and webhook channels, and the clock, on one store."""

    def __init__(self, db: Database, directory: Directory, channels: dict[str, object]) -> None:
        self.db = db
        self.clock = FakeClock(T0)
        self.router = Router(RoutingConfig.load(ROOT / "config" / "routing.yaml"), directory)
        templates = TemplateSettings(
            directory=ROOT / "templates", locales_directory=ROOT / "locales"
        )
        settings = DeliverySettings(
            send_attempts=1,
            fallback_after_seconds=10,
            backoff_initial_seconds=1,
            backoff_max_seconds=8,
        )
        self.dispatcher = Dispatcher(
            db,
            Renderer(templates, Catalogs.load(templates.locales_directory)),
            channels,  # type: ignore[arg-type]
            settings,
            self.clock,
            random.Random(3),
            directory=directory,
        )
        self.offset = 0

    def ingest(self, sample: str) -> None:
        proc = BatchProcessor(
            self.db, self.router, self.clock, group="g", topic="t", max_event_bytes=1 << 20
        )
        records = [RawRecord("t", 0, self.offset, None, (SAMPLES / sample).read_bytes(), ())]
        self.offset += 1
        proc.apply(records, proc.decode(records))

    async def run_for(self, seconds: float, step: float = 1.0) -> None:
        """Advance the clock ``step`` at a time, draining the outbox at each step."""
        for _ in range(int(seconds / step)):
            while await self.dispatcher.drain_once():
                pass
            self.clock.advance(step)

    def rows(self) -> list[dict[str, object]]:
        with self.db.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(notifications)).mappings()]


def _directory(tmp_path: Path) -> Directory:
    """The shipped directory, where Priya can also be reached through the ops bridge."""
    raw = yaml.safe_load((ROOT / "config" / "directory.yaml").read_text())
    for person in raw["people"]:
        if person["id"] == "priya.raman":
            person["contacts"] = [
                {"channel": "email", "address": "priya.raman@ops.example.net"},
                {"channel": "webhook", "address": "ops-bridge"},
            ]
    path = tmp_path / "directory.yaml"
    path.write_text(yaml.safe_dump(raw))
    return Directory.load(path, [ChannelKind.EMAIL, ChannelKind.WEBHOOK])


@pytest.fixture
async def hooks() -> AsyncIterator[HookCatcher]:
    """A webhook receiver verifying signatures."""
    catcher = HookCatcher(SECRET.encode())
    await catcher.start()
    yield catcher
    await catcher.stop()


def _webhook(hooks: HookCatcher) -> WebhookChannel:
    settings = WebhookSettings(
        endpoints={"ops-bridge": {"url": hooks.url, "secret": SECRET, "timeout_seconds": 2}},
        allow_private_networks=True,
    )
    return WebhookChannel(settings)


async def test_smtp_down_for_30_seconds_nothing_lost_fallback_used(
    db: Database, tmp_path: Path, hooks: HookCatcher
) -> None:
    """The relay is down from the start; a second alert arrives 10 s in; the relay is back
    at 30 s. Priya, who has a webhook too, gets her page there after 10 s of failing
    email; everyone else gets every email once, after the relay is back."""
    mail = MailCatcher(tmp_path / "mail")
    await mail.start()
    await mail.stop()  # down, on a port that is known
    smtp = SmtpSettings(host=mail.host, port=mail.port, starttls=False, timeout_seconds=10)
    email = EmailChannel(smtp, concurrency=2)
    webhook = _webhook(hooks)
    world = World(db, _directory(tmp_path), {"email": email, "webhook": webhook})
    try:
        world.ingest("alert-firing.json")
        await world.run_for(10)
        world.ingest("policy-hot-patch.json")
        await world.run_for(20)
        assert mail.messages == []
        await mail.start()
        await world.run_for(400, step=5)
    finally:
        await email.close()
        await webhook.close()
        await mail.stop()
    rows = world.rows()
    delivered: dict[tuple[object, object], list[object]] = {}
    for r in rows:
        if r["status"] == "sent":
            delivered.setdefault((r["person_id"], r["kind"]), []).append(r["channel"])
    messages = {(r["person_id"], r["kind"]) for r in rows}
    assert all(len(delivered.get(m, [])) == 1 for m in messages)  # each message once
    assert delivered[("priya.raman", "firing")] == ["webhook"]  # failing 10 s: fell back
    failed = [r for r in rows if r["status"] == "failed"]
    assert {(r["person_id"], r["channel"]) for r in failed} == {("priya.raman", "email")}
    assert all("next contact (webhook)" in str(r["last_error"]) for r in failed)
    emails = [r for r in rows if r["status"] == "sent" and r["channel"] == "email"]
    ids = [m.message["Message-ID"] for m in mail.messages]
    assert len(ids) == len(set(ids)) == len(emails)  # every email once, none twice
    assert len(hooks.hooks) == len(failed) and hooks.duplicates == 0


async def test_webhook_receiver_down_then_back_every_message_once_in_order(
    db: Database, tmp_path: Path, hooks: HookCatcher
) -> None:
    """A receiver answering 503 (Retry-After 2) for a while, then fine: every message
    arrives once, and each alert's messages arrive in the order they were created."""
    directory = _webhook_only_directory(tmp_path)
    webhook = _webhook(hooks)
    world = World(db, directory, {"webhook": webhook})
    hooks.down()
    try:
        world.ingest("alert-firing.json")
        await world.run_for(5)
        world.ingest("alert-resolved.json")
        await world.run_for(15)
        assert hooks.hooks == [] and hooks.refused > 0
        hooks.up()
        await world.run_for(120, step=2)
    finally:
        await webhook.close()
    statuses = [h.body["alert"]["status"] for h in hooks.hooks]
    assert statuses == ["firing", "resolved"]
    assert hooks.duplicates == 0
    assert {r["status"] for r in world.rows()} == {"sent"}


def _webhook_only_directory(tmp_path: Path) -> Directory:
    """Everyone reached through the ops bridge only (one receiver sees every message)."""
    raw = yaml.safe_load((ROOT / "config" / "directory.yaml").read_text())
    raw["people"] = [p for p in raw["people"] if p["id"] == "priya.raman"] + [
        p for p in raw["people"] if p["id"] != "priya.raman"
    ]
    for person in raw["people"]:
        person["contacts"] = (
            [{"channel": "webhook", "address": "ops-bridge"}]
            if person["id"] == "priya.raman"
            else [{"channel": "email", "address": f"{person['id']}@example.org"}]
        )
    path = tmp_path / "webhook-directory.yaml"
    path.write_text(yaml.safe_dump(raw))
    return Directory.load(path, [ChannelKind.WEBHOOK])


async def test_a_page_that_reaches_nobody_is_reported_to_the_commanders(
    db: Database, tmp_path: Path, mailcatcher: MailCatcher, smtp_settings: SmtpSettings
) -> None:
    """Ana's only contact is refused for good (550): her page is recorded as failed, and each
    incident commander is told once that she could not be reached, and why."""
    mailcatcher.reject_recipient("ana.costa@ops.example.net")
    email = EmailChannel(smtp_settings, concurrency=2)
    directory = Directory.load(ROOT / "config" / "directory.yaml")
    world = World(db, directory, {"email": email})
    try:
        world.ingest("alert-firing.json")
        await world.run_for(5)
    finally:
        await email.close()
    rows = world.rows()
    failed = [r for r in rows if r["status"] == "failed"]
    assert [(r["person_id"], r["error_reason"]) for r in failed] == [("ana.costa", "client")]
    told = [r for r in rows if str(r["kind"]).startswith("unreachable:")]
    assert {r["person_id"] for r in told} == {"mei.lin", "lukas.meier"}
    assert all(r["status"] == "sent" for r in told)
    assert all(
        r["details"] == {"person": "Ana Costa", "channel": "email", "reason": "client"}
        for r in told
    )
