"""What follows a page, with a fake clock on both stores: escalation through every step with an
acknowledgment at each, announcements, resolve follow-ups to everyone paged, acknowledgment
reminders, the status-update cadence, and stakeholder receipts.

The policy under test is the shipped one (config/routing.yaml, ``critical-incident``): steps
at 5 and 15 minutes, repeated once (25 and 35 minutes); acknowledgments announced; the
acknowledger reminded every 30 minutes, twice, then the incident commanders told; a status
update every hour for the partner operators.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select, update

from notifier.compose import compose
from notifier.directory import Directory
from notifier.escalation import plan_key
from notifier.i18n import Catalogs
from notifier.intents import Timer, TimerKind, split_kind
from notifier.lifecycle import Action, Verb
from notifier.pipeline import BatchProcessor, RawRecord
from notifier.routing import Router, RoutingConfig
from notifier.scheduler import Scheduler
from notifier.settings import DeliverySettings, Settings
from notifier.store import Database
from notifier.store.outbox import claim_due, mark_sent
from notifier.store.queries import alert_detail
from notifier.store.receipts import Confirmation, confirm_receipt, receipt_status
from notifier.store.schema import alerts, notifications, timers
from notifier.store.timeline import UpdateRefused, apply_action, post_update, timeline
from notifier.store.timers import load_plans, next_due, write_timers
from notifier.templating import Renderer
from notifier.testing import FakeClock

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "config" / "samples"
T0 = datetime(2026, 11, 20, 8, 15, tzinfo=UTC)

ROUTED = {"ana.costa", "jonas.weber", "priya.raman", "lukas.meier", "mei.lin"}
PARTNERS = {"carlos.ruiz", "helga.berg"}
COMMANDERS = {"mei.lin", "lukas.meier"}
RESPONDERS = {"ana.costa", "jonas.weber", "priya.raman", "lukas.meier"}
# Who each escalation step pages (shipped policy: commanders, then responders + commanders).
STEP_PEOPLE = [COMMANDERS, RESPONDERS | COMMANDERS, COMMANDERS, RESPONDERS | COMMANDERS]
STEP_MINUTES = [5, 15, 20, 30]


class Story:
    """The engine's ingest and scheduler on one store, driven minute by minute."""

    def __init__(self, db: Database) -> None:
        self.directory = Directory.load(ROOT / "config" / "directory.yaml")
        self.router = Router(RoutingConfig.load(ROOT / "config" / "routing.yaml"), self.directory)
        self.clock = FakeClock(T0)
        self.db = db
        self.offset = 0
        self.scheduler = Scheduler(db, self.directory, DeliverySettings(), self.clock)

    def ingest(self, sample: str) -> None:
        proc = BatchProcessor(
            self.db, self.router, self.clock, group="g", topic="t", max_event_bytes=1 << 20
        )
        doc = (SAMPLES / sample).read_bytes()
        records = [RawRecord("t", 0, self.offset, None, doc, ())]
        self.offset += 1
        proc.apply(records, proc.decode(records))

    async def at(self, minutes: float) -> int:
        """Move the clock to T0 + minutes and fire what is due (all of it)."""
        self.clock.advance(minutes * 60 - (self.clock.now() - T0).total_seconds())
        fired = 0
        while count := await self.scheduler.fire_due():
            fired += count
        return fired

    def alert_id(self, kind: str = "alert") -> str:
        with self.db.engine.connect() as conn:
            return str(conn.scalar(select(alerts.c.id).where(alerts.c.kind == kind)))

    def act(self, verb: Verb, by: str, note: str | None = None) -> None:
        alert_id = self.alert_id()
        with self.db.transaction() as conn:
            apply_action(
                conn,
                alert_id,
                Action(verb, by, "api", self.clock.now(), note),
                lock=not self.db.is_sqlite,
                directory=self.directory,
            )

    def sent(self) -> dict[str, set[str]]:
        """Who got which kind of notification."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(select(notifications.c.kind, notifications.c.person_id)).all()
        found: dict[str, set[str]] = defaultdict(set)
        for kind, person in rows:
            found[kind].add(person)
        return dict(found)

    def details(self, kind: str) -> dict[str, Any]:
        with self.db.engine.connect() as conn:
            value = conn.scalar(
                select(notifications.c.details).where(notifications.c.kind == kind).limit(1)
            )
        assert isinstance(value, dict), kind
        return value

    def timeline_kinds(self) -> list[str]:
        with self.db.engine.connect() as conn:
            return [s["kind"] for s in timeline(conn, self.alert_id())]


def _escalations(sent: dict[str, set[str]]) -> dict[int, set[str]]:
    steps = {}
    for kind, people in sent.items():
        status, step = split_kind(kind)
        if status == "escalated" and step is not None:
            steps[step] = people
    return steps


@pytest.mark.parametrize("acked_after", [0, 1, 2, 3, 4])
async def test_escalation_through_every_step_stops_at_the_acknowledgment(
    db: Database, acked_after: int
) -> None:
    """Acknowledged after N steps: exactly steps 1..N paged, each once; the acknowledgment is
    announced to everyone paged so far except the acknowledger; later steps do nothing."""
    story = Story(db)
    story.ingest("alert-firing.json")
    for minutes in STEP_MINUTES[:acked_after]:
        await story.at(minutes)
    await story.at(STEP_MINUTES[acked_after - 1] + 1 if acked_after else 1)
    story.act(Verb.ACKNOWLEDGE, "lukas.meier", note="rolling back")
    await story.at(45)
    sent = story.sent()
    assert _escalations(sent) == {i + 1: STEP_PEOPLE[i] for i in range(acked_after)}
    paged_so_far = ROUTED | PARTNERS | set().union(*STEP_PEOPLE[:acked_after])
    assert sent["acknowledged"] == paged_so_far - {"lukas.meier"}
    details = story.details("acknowledged")
    assert (details["by"], details["note"]) == ("Lukas Meier", "rolling back")
    kinds = story.timeline_kinds()
    assert kinds[: acked_after + 2] == ["triggered"] + ["escalated"] * acked_after + [
        "acknowledged"
    ]


async def test_a_full_unacknowledged_escalation_then_a_resolve_by_hand(db: Database) -> None:
    """Nobody acknowledges: all four steps page; resolving by hand tells everyone ever paged
    (routed and escalated), except the resolver, who resolved it and with what note."""
    story = Story(db)
    story.ingest("alert-firing.json")
    for minutes in STEP_MINUTES:
        assert await story.at(minutes) == 1
    assert _escalations(story.sent()) == dict(enumerate(STEP_PEOPLE, start=1))
    story.act(Verb.RESOLVE, "mei.lin", note="validators upgraded")
    resolved = story.sent()["resolved"]
    assert resolved == (ROUTED | PARTNERS) - {"mei.lin"}
    details = story.details("resolved")
    assert (details["by"], details["note"]) == ("Mei Lin", "validators upgraded")
    assert datetime.fromisoformat(details["at"]) == story.clock.now()


async def test_a_source_resolve_reaches_everyone_the_escalation_paged(db: Database) -> None:
    """Resolved by the monitoring system after step 2: responders, commanders and partners
    hear it once each (nobody twice, though some were paged twice)."""
    story = Story(db)
    story.ingest("alert-firing.json")
    await story.at(5)
    await story.at(15)
    story.ingest("alert-resolved.json")
    with db.engine.connect() as conn:
        people = list(
            conn.scalars(
                select(notifications.c.person_id).where(notifications.c.kind == "resolved")
            )
        )
    assert sorted(people) == sorted(ROUTED | PARTNERS)
    await story.at(120)
    assert _escalations(story.sent()) == {1: STEP_PEOPLE[0], 2: STEP_PEOPLE[1]}


async def test_acknowledged_but_unresolved_reminds_then_escalates(db: Database) -> None:
    """Acknowledged at minute 6: reminders to the acknowledger at 36 and 66, the commanders
    told at 96, then nothing more; each reminder says how many are left."""
    story = Story(db)
    story.ingest("alert-firing.json")
    await story.at(6)
    story.act(Verb.ACKNOWLEDGE, "priya.raman")
    await story.at(35.9)
    assert "ack-reminder-1" not in story.sent()
    await story.at(36)
    assert story.sent()["ack-reminder-1"] == {"priya.raman"}
    assert story.details("ack-reminder-1")["reminders_left"] == 1
    await story.at(66)
    assert story.sent()["ack-reminder-2"] == {"priya.raman"}
    await story.at(96)
    assert story.sent()["ack-escalated"] == COMMANDERS
    escalated = story.details("ack-escalated")
    assert escalated["by"] == "Priya Raman"
    with db.engine.connect() as conn:
        started = conn.scalar(select(alerts.c.starts_at))
    assert started is not None
    assert escalated["open_for"] == (story.clock.now() - started).total_seconds()
    await story.at(500)
    assert not any(k.startswith("ack-reminder-3") for k in story.sent())


async def test_resolving_stops_the_reminders(db: Database) -> None:
    """A reminder due after the resolve does nothing (its outcome says why)."""
    story = Story(db)
    story.ingest("alert-firing.json")
    await story.at(6)
    story.act(Verb.ACKNOWLEDGE, "priya.raman")
    await story.at(20)
    story.act(Verb.RESOLVE, "priya.raman")
    await story.at(200)
    assert not any(k.startswith(("ack-reminder", "ack-escalated")) for k in story.sent())
    with db.engine.connect() as conn:
        outcome = conn.scalar(select(timers.c.outcome).where(timers.c.kind == "ack-reminder"))
    assert outcome == "resolved"


async def test_status_update_cadence(db: Database) -> None:
    """Hourly: the commander is reminded to post an update (the commanders until someone
    acknowledges, then the acknowledger, and not when an update was just posted), and the
    partners receive the latest update; resolving ends the cadence."""
    story = Story(db)
    story.ingest("alert-firing.json")
    await story.at(60)
    sent = story.sent()
    assert sent["update-due-1"] == COMMANDERS
    assert sent["status-update-1"] == PARTNERS
    first = story.details("status-update-1")
    assert (first["state"], first["by"], first["update"]) == ("firing", None, None)
    story.act(Verb.ACKNOWLEDGE, "jonas.weber")
    await story.at(120)
    assert story.sent()["update-due-2"] == {"jonas.weber"}
    await story.at(130)
    alert_id = story.alert_id()
    with db.transaction() as conn:
        post_update(
            conn,
            alert_id,
            "jonas.weber",
            "Half the validators upgraded",
            story.clock.now(),
        )
    await story.at(180)
    sent = story.sent()
    assert "update-due-3" not in sent  # the commander had just posted one
    assert sent["status-update-3"] == PARTNERS
    third = story.details("status-update-3")
    assert (third["state"], third["by"]) == ("acknowledged", "Jonas Weber")
    assert (third["update"], third["update_by"]) == ("Half the validators upgraded", "Jonas Weber")
    story.act(Verb.RESOLVE, "jonas.weber")
    await story.at(600)
    assert not any(k.startswith("status-update-4") for k in story.sent())
    with db.transaction() as conn, pytest.raises(UpdateRefused, match="resolved"):
        post_update(conn, alert_id, "jonas.weber", "late", story.clock.now())


async def test_the_cadence_does_not_replay_missed_ticks_after_downtime(db: Database) -> None:
    """Down for five hours: one update goes out on restart, the next a full hour later."""
    story = Story(db)
    story.ingest("alert-firing.json")
    await story.at(5 * 60 + 10)
    updates = [k for k in story.sent() if k.startswith("status-update")]
    assert updates == ["status-update-1"]
    with db.engine.connect() as conn:
        due = conn.scalar(
            select(timers.c.due_at).where(timers.c.kind == "status-update", timers.c.step == 1)
        )
    assert due == T0 + timedelta(minutes=5 * 60 + 10 + 60)


async def test_stakeholders_confirm_receipt_or_are_reminded_and_reported(db: Database) -> None:
    """A policy notice asks partners (remind 4 h, deadline 24 h) and the regulator liaison
    (2 h, 12 h) to confirm; only who has not confirmed is reminded; at each deadline the
    liaison hears who still has not; confirming twice is harmless."""
    story = Story(db)
    story.ingest("policy-emergency-upgrade.json")
    notice = story.alert_id("policy")
    with db.engine.connect() as conn:
        status = receipt_status(conn, notice, 1)
    assert status is not None
    assert {p["person"] for p in status["pending"]} == PARTNERS | {"sofia.navarro"}
    with db.transaction() as conn:
        first = confirm_receipt(conn, notice, 1, "carlos.ruiz", story.clock.now(), "api")
        again = confirm_receipt(conn, notice, 1, "carlos.ruiz", story.clock.now(), "api")
        stranger = confirm_receipt(conn, notice, 1, "mei.lin", story.clock.now(), "api")
    assert (first, again, stranger) == (
        Confirmation.CONFIRMED,
        Confirmation.ALREADY,
        Confirmation.NOT_ASKED,
    )
    await story.at(2 * 60)
    assert story.sent()["receipt-reminder"] == {"sofia.navarro"}
    await story.at(4 * 60)
    assert story.sent()["receipt-reminder"] == {"sofia.navarro", "helga.berg"}
    await story.at(12 * 60)
    assert story.sent()["receipt-overdue:regulators"] == {"mei.lin"}
    with db.transaction() as conn:
        confirm_receipt(conn, notice, 1, "helga.berg", story.clock.now(), "email-link")
    await story.at(24 * 60)
    assert "receipt-overdue:partners" not in story.sent()  # everyone confirmed in time
    overdue = story.details("receipt-overdue:regulators")
    assert overdue["pending"] == [
        {
            "name": "Sofía Navarro",
            "organization": "Financial Market Supervisory Authority",
            "tier": "regulators",
        }
    ]
    detail = alert_detail(db, notice)
    assert [p["person"] for p in detail["receipts"]["pending"]] == ["sofia.navarro"]
    assert {c["person"] for c in detail["receipts"]["confirmed"]} == PARTNERS
    assert "receipt" in [s["kind"] for s in detail["timeline"]]


async def test_escalation_reveals_no_more_than_each_persons_tiers(db: Database) -> None:
    """Frozen plans cap what each person may read by their tiers: the regulator liaison
    (restricted) reached by name never reads confidential details; a commander does."""
    raw = yaml.safe_load((ROOT / "config" / "routing.yaml").read_text())
    raw["escalation_policies"]["critical-incident"]["steps"][0]["notify"] = {
        "people": ["sofia.navarro", "mei.lin", "public-advisories"]
    }
    story = Story(db)
    story.router = Router(RoutingConfig.model_validate(raw), story.directory)
    story.ingest("alert-firing.json")
    with db.engine.connect() as conn:
        key = str(conn.scalar(select(timers.c.plan_id).limit(1)))
        plan = load_plans(conn, [key])[key][1]
    assert plan is not None
    assert plan.clearance_for("mei.lin") == "confidential"
    assert plan.clearance_for("sofia.navarro") == "restricted"
    assert plan.clearance_for("public-advisories") == "public"
    await story.at(5)
    with db.engine.connect() as conn:
        levels = dict(
            conn.execute(
                select(notifications.c.person_id, notifications.c.clearance).where(
                    notifications.c.kind == "escalated-1"
                )
            ).all()
        )
    assert levels == {
        "sofia.navarro": "restricted",
        "mei.lin": "confidential",
        "public-advisories": "public",
    }


async def test_every_follow_up_renders_in_its_readers_language(db: Database) -> None:
    """Each follow-up kind renders with the shipped templates, in the reader's language,
    with what its details say (no template error anywhere)."""
    story = Story(db)
    story.ingest("alert-firing.json")
    story.ingest("policy-emergency-upgrade.json")
    await story.at(6)
    story.act(Verb.ACKNOWLEDGE, "jonas.weber", note="Rollback läuft")
    for minutes in (36, 60, 66, 96, 120, 240, 720, 1440):
        await story.at(minutes)
    story.act(Verb.RESOLVE, "jonas.weber")
    settings = Settings(config_dir=ROOT / "config")
    renderer = Renderer(
        settings.templates,
        Catalogs.load(settings.templates.locales_directory, settings.templates.default_locale),
    )
    pending = []
    while True:  # later messages about an alert wait for the earlier ones to a reader
        with db.transaction() as conn:
            batch = claim_due(conn, story.clock.now(), 10_000, 60, skip_locked=False)
            for n in batch:
                mark_sent(
                    conn, n.id, story.clock.now(), provider_id="x", language="en", template_hash="h"
                )
        if not batch:
            break
        pending += batch
    statuses = {split_kind(n.kind)[0] for n in pending}
    assert statuses >= {
        "firing",
        "notice",
        "escalated",
        "acknowledged",
        "ack-reminder",
        "ack-escalated",
        "update-due",
        "status-update",
        "receipt-reminder",
        "receipt-overdue",
        "resolved",
    }
    for n in pending:
        message = compose(renderer, n)
        assert message.rendered.subject, n.kind
        status, _ = split_kind(n.kind)
        if status == "acknowledged":
            assert "Jonas Weber" in message.rendered.text
        if status == "receipt-overdue":
            assert n.details is not None
            for pending in n.details["pending"]:
                assert pending["name"] in message.rendered.text


async def test_timers_of_an_unknown_kind_wait_for_an_engine_that_knows_them(
    db: Database,
) -> None:
    """During a rolling upgrade an older engine leaves a newer kind of timer pending (it
    neither fires nor discards it) and does not count it as due."""
    story = Story(db)
    future = Timer(
        "t-future", "a-1", 1, TimerKind.ESCALATION, 0, T0, "k", plan_key({"x": 1}), {"x": 1}
    )
    with db.transaction() as conn:
        write_timers(conn, [future])
        conn.execute(update(timers).values(kind="from-the-future"))
    assert await story.at(10) == 0
    with db.engine.connect() as conn:
        assert conn.scalar(select(timers.c.state)) == "pending"
        assert next_due(conn) is None
