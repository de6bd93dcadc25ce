"""The outbox dispatcher on a real store and a real SMTP server, with a fake clock."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from notifier.channels.email import EmailChannel
from notifier.directory import Directory
from notifier.i18n import Catalogs
from notifier.mailcatcher import MailCatcher
from notifier.outbox import Dispatcher
from notifier.pipeline import BatchProcessor, RawRecord
from notifier.routing import Router, RoutingConfig
from notifier.settings import DeliverySettings, SmtpSettings, TemplateSettings
from notifier.store import Database
from notifier.store import outbox as rows_module
from notifier.store.queries import counts
from notifier.store.schema import notifications
from notifier.templating import Renderer
from notifier.testing import FakeClock

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 11, 20, 8, 15, tzinfo=UTC)


def _seed(db: Database, clock: FakeClock, sample: str = "alert-firing.json") -> int:
    """Ingest one sample event; return how many notifications it produced."""
    router = Router(
        RoutingConfig.load(ROOT / "config" / "routing.yaml"),
        Directory.load(ROOT / "config" / "directory.yaml"),
    )
    proc = BatchProcessor(db, router, clock, group="g", topic="t", max_event_bytes=1 << 20)
    records = [RawRecord("t", 0, 0, None, (ROOT / "config" / "samples" / sample).read_bytes(), ())]
    return proc.apply(records, proc.decode(records)).notifications


@pytest.fixture
async def channel(smtp_settings: SmtpSettings) -> AsyncIterator[EmailChannel]:
    """An email channel to the test's SMTP server."""
    ch = EmailChannel(smtp_settings, concurrency=2)
    yield ch
    await ch.close()


def _dispatcher(
    db: Database, channel: EmailChannel, clock: FakeClock, **delivery: object
) -> Dispatcher:
    settings = DeliverySettings.model_validate(
        {"send_attempts": 2, "max_dispatches": 3, **delivery}
    )
    templates = TemplateSettings(directory=ROOT / "templates", locales_directory=ROOT / "locales")
    renderer = Renderer(templates, Catalogs.load(templates.locales_directory))
    return Dispatcher(db, renderer, {"email": channel}, settings, clock, random.Random(7))


def _rows(db: Database) -> list[dict[str, object]]:
    with db.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(notifications)).mappings()]


async def test_pending_notifications_are_sent_and_recorded(
    db: Database, channel: EmailChannel, mailcatcher: MailCatcher
) -> None:
    """Every pending notification is delivered once and marked sent with language and hash."""
    clock = FakeClock(T0)
    n = _seed(db, clock)
    dispatcher = _dispatcher(db, channel, clock)
    assert await dispatcher.drain_once() == n
    assert await dispatcher.drain_once() == 0
    mails = await mailcatcher.wait_for(n)
    rows = _rows(db)
    assert {r["status"] for r in rows} == {"sent"}
    assert {r["provider_id"] for r in rows} == {m.message["Message-ID"] for m in mails}
    by_person = {r["person_id"]: r for r in rows}
    assert by_person["lukas.meier"]["language"] == "de"
    assert by_person["ana.costa"]["language"] == "es"
    assert len({r["template_hash"] for r in rows}) == 1


async def test_transient_failures_are_rescheduled_then_sent(
    db: Database, channel: EmailChannel, mailcatcher: MailCatcher
) -> None:
    """A relay answering 451 puts notifications back with a backoff; later they go out."""
    clock = FakeClock(T0)
    n = _seed(db, clock)
    mailcatcher.fail_next(2 * n, code=451, message="greylisted")
    dispatcher = _dispatcher(db, channel, clock)
    await dispatcher.drain_once()
    rows = _rows(db)
    assert {r["status"] for r in rows} == {"pending"}
    assert {r["error_reason"] for r in rows} == {"server"}
    assert all(r["next_attempt_at"] >= T0 for r in rows)  # type: ignore[operator]
    assert mailcatcher.messages == []
    # The relay failed every send: its circuit opened, and after the cooldown one trial send
    # goes first; the rest follow once it succeeded.
    for _ in range(4):
        clock.advance(600)
        await dispatcher.drain_once()
    await mailcatcher.wait_for(n)
    assert counts(db)["notifications_sent"] == n


async def test_permanent_refusal_is_failed_without_retrying(
    db: Database, channel: EmailChannel, mailcatcher: MailCatcher
) -> None:
    """A 550 for one recipient fails that notification (reason client); the others go out."""
    clock = FakeClock(T0)
    n = _seed(db, clock)
    mailcatcher.reject_recipient("mei.lin@ops.example.net")
    dispatcher = _dispatcher(db, channel, clock)
    await dispatcher.drain_once()
    clock.advance(3600)
    assert await dispatcher.drain_once() == 0
    failed = [r for r in _rows(db) if r["status"] == "failed"]
    assert [(r["person_id"], r["error_reason"]) for r in failed] == [("mei.lin", "client")]
    assert len(await mailcatcher.wait_for(n - 1)) == n - 1


async def test_retries_stop_after_max_dispatches(
    db: Database, channel: EmailChannel, mailcatcher: MailCatcher
) -> None:
    """A relay that never recovers: after max_dispatches the notification is failed, not lost."""
    clock = FakeClock(T0)
    n = _seed(db, clock)
    mailcatcher.fail_next(10_000, code=421, message="down")
    dispatcher = _dispatcher(db, channel, clock, retry_for_seconds=10**6)
    for _ in range(5):
        await dispatcher.drain_once()
        clock.advance(3600)
    rows = _rows(db)
    assert {r["status"] for r in rows} == {"failed"}
    assert {r["dispatches"] for r in rows} == {3}
    assert len(rows) == n


async def test_a_broken_template_fails_with_reason_template(
    db: Database, channel: EmailChannel, mailcatcher: MailCatcher
) -> None:
    """A notification whose template cannot render is failed with reason template, others sent."""
    clock = FakeClock(T0)
    n = _seed(db, clock)
    with db.transaction() as conn:
        conn.execute(
            update(notifications)
            .where(notifications.c.person_id == "priya.raman")
            .values(template="no-such-template")
        )
    dispatcher = _dispatcher(db, channel, clock)
    await dispatcher.drain_once()
    rows = {r["person_id"]: r for r in _rows(db)}
    assert rows["priya.raman"]["status"] == "failed"
    assert rows["priya.raman"]["error_reason"] == "template"
    assert "no-such-template" in str(rows["priya.raman"]["last_error"])
    assert len(await mailcatcher.wait_for(n - 1)) == n - 1


async def test_confidential_section_reaches_only_cleared_recipients(
    db: Database, channel: EmailChannel, mailcatcher: MailCatcher
) -> None:
    """The emergency upgrade's confidential fields are in insiders' mail only."""
    clock = FakeClock(T0)
    n = _seed(db, clock, "policy-emergency-upgrade.json")
    await _dispatcher(db, channel, clock).drain_once()
    mails = {
        str(m.message["To"].addresses[0].addr_spec): m.message
        for m in await mailcatcher.wait_for(n)
    }
    secret = "Fork-choice weight underflow"

    def text(addr: str) -> str:
        body = mails[addr].get_body(("plain",))
        assert body is not None
        return str(body.get_content())

    assert secret in text("jonas.weber@ops.example.net")
    assert secret not in text("s.navarro@supervisor.example.gov")
    assert secret not in text("advisories@lists.example.net")


async def test_retries_stop_once_a_notification_has_failed_for_retry_for_seconds(
    db: Database, channel: EmailChannel, mailcatcher: MailCatcher
) -> None:
    """A relay down for longer than retry_for_seconds: each notification is failed at its
    first dispatch after that age (before max_dispatches), not retried forever."""
    clock = FakeClock(T0)
    _seed(db, clock)
    mailcatcher.fail_next(10_000, code=421, message="down")
    dispatcher = _dispatcher(db, channel, clock, retry_for_seconds=120, max_dispatches=100)
    await dispatcher.drain_once()
    assert {r["status"] for r in _rows(db)} == {"pending"}
    clock.advance(121)
    await dispatcher.drain_once()
    rows = _rows(db)
    assert {r["status"] for r in rows} == {"failed"}
    assert {r["dispatches"] for r in rows} == {2}


async def test_messages_about_one_alert_reach_a_reader_in_creation_order(
    db: Database, channel: EmailChannel, mailcatcher: MailCatcher
) -> None:
    """While a reader's firing page is being retried, the resolve that followed waits for it,
    and then goes out after it; other readers are not held up."""
    clock = FakeClock(T0)
    _seed(db, clock)
    clock.advance(60)
    _seed_resolve(db, clock)
    mailcatcher.reject_recipient("nobody@example.org")  # a live relay
    with db.transaction() as conn:
        conn.execute(
            update(notifications)
            .where(notifications.c.person_id == "mei.lin", notifications.c.kind == "firing")
            .values(next_attempt_at=T0 + timedelta(hours=1))  # as if being retried
        )
    dispatcher = _dispatcher(db, channel, clock)
    await dispatcher.drain_once()  # the firing pages (each resolve waits for its page)
    await dispatcher.drain_once()  # the resolves whose page went out
    rows = {(r["person_id"], r["kind"]): r["status"] for r in _rows(db)}
    assert rows[("mei.lin", "firing")] == rows[("mei.lin", "resolved")] == "pending"
    assert rows[("ana.costa", "firing")] == rows[("ana.costa", "resolved")] == "sent"
    clock.advance(3600)
    await dispatcher.drain_once()
    await dispatcher.drain_once()
    mails = await mailcatcher.wait_for(14)
    to_mei = [m.message["Subject"] for m in mails if "mei.lin" in str(m.message["To"])]
    assert len(to_mei) == 2 and to_mei[1].startswith("[Resolved]")


def _seed_resolve(db: Database, clock: FakeClock) -> None:
    router = Router(
        RoutingConfig.load(ROOT / "config" / "routing.yaml"),
        Directory.load(ROOT / "config" / "directory.yaml"),
    )
    proc = BatchProcessor(db, router, clock, group="g", topic="t", max_event_bytes=1 << 20)
    doc = (ROOT / "config" / "samples" / "alert-resolved.json").read_bytes()
    records = [RawRecord("t", 0, 1, None, doc, ())]
    proc.apply(records, proc.decode(records))


async def test_the_pump_sends_everything_due_across_batches_then_stops_claiming(
    db: Database, channel: EmailChannel, mailcatcher: MailCatcher
) -> None:
    """With batches of two, one pump sends all seven pages (claiming the next batch while
    sends finish); a dispatcher told to stop returns without claiming anything."""
    clock = FakeClock(T0)
    n = _seed(db, clock)
    dispatcher = _dispatcher(db, channel, clock, batch_size=2)
    assert await dispatcher.pump() == n
    assert len(await mailcatcher.wait_for(n)) == n
    assert {r["status"] for r in _rows(db)} == {"sent"}
    clock.advance(60)
    _seed_resolve(db, clock)
    stop = asyncio.Event()
    stop.set()
    await dispatcher.run(stop)  # stopping at once: nothing claimed
    assert {r["status"] for r in _rows(db) if r["kind"] == "resolved"} == {"pending"}


async def test_a_send_whose_lease_is_running_out_is_left_for_the_next_claim(
    db: Database, channel: EmailChannel, mailcatcher: MailCatcher
) -> None:
    """A claimed notification that waited in memory until too little of its lease is left is
    not sent (another claim may own it by then); it stays pending and goes out later."""
    clock = FakeClock(T0)
    _seed(db, clock)
    dispatcher = _dispatcher(db, channel, clock, lease_seconds=60, send_deadline_seconds=30)
    with db.transaction() as conn:
        claimed = rows_module.claim_due(conn, clock.now(), 1, 60, skip_locked=False)
    clock.advance(45)  # waited 45 s of a 60 s lease: 15 s left, less than a send may take
    await dispatcher._dispatch(claimed[0])
    assert mailcatcher.messages == []
    assert {r["status"] for r in _rows(db)} == {"pending"}
    clock.advance(60)
    assert await dispatcher.drain_once() == 7
    assert len(await mailcatcher.wait_for(7)) == 7
