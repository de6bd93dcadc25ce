"""The Incidents page's reads on both stores: the open-alert list (what is open, in which order,
how far it escalated, who acknowledged, what is held) and one alert's merged timeline, driven
through the engine with a fake clock; plus the list's cost: a fixed number of queries, each
through an index, however many alerts are open.

The routing is the shipped one (config/routing.yaml): a critical mainnet alert is paged with
seven notifications at once and escalates after 5 minutes (step 1), 10 minutes later (step 2),
then repeats; acknowledgments are announced and followed by reminders every 30 minutes.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Connection, event, select
from stories import SAMPLES, T0, Story, alert_event

from notifier.lifecycle import Action, Verb
from notifier.store import Database
from notifier.store.incidents import OpenAlert, open_alerts, timeline_entries
from notifier.store.outbox import claim_due, mark_failed, mark_sent
from notifier.store.receipts import confirm_receipt
from notifier.store.schema import alerts
from notifier.store.timeline import AlertNotFound, apply_action

sys.path.append(str(Path(__file__).resolve().parent.parent / "bench"))  # bench/seed.py
from seed import seed_open_alerts

MINUTE = timedelta(minutes=1)


def firing(
    event_id: str,
    instance: str,
    *,
    severity: str = "critical",
    started: datetime | None = None,
    status: str = "firing",
) -> bytes:
    """The sample alert on another instance (another alert), with its own start."""
    doc = orjson.loads(alert_event(event_id, severity=severity, status=status, instance=instance))
    if started is not None:
        doc["data"]["starts_at"] = started.isoformat()
    return orjson.dumps(doc)


def alert_id(db: Database, instance: str) -> str:
    with db.engine.connect() as conn:
        for found, labels in conn.execute(select(alerts.c.id, alerts.c.labels)):
            if labels.get("instance") == instance:
                return str(found)
    raise AssertionError(f"no alert on {instance}")


def listed(db: Database, **filters: Any) -> list[OpenAlert]:
    with db.engine.connect() as conn:
        return open_alerts(conn, **filters)


def one(db: Database, alert: str) -> OpenAlert:
    (found,) = [a for a in listed(db) if a.id == alert]
    return found


def act(story: Story, alert: str, verb: Verb, by: str, note: str | None = None) -> None:
    with story.db.transaction() as conn:
        apply_action(
            conn,
            alert,
            Action(verb, by, "api", story.clock.now(), note),
            lock=not story.db.is_sqlite,
            directory=story.directory,
        )


@contextmanager
def statements(conn: Connection) -> Iterator[list[tuple[str, Any]]]:
    """The statements (with their parameters) run on ``conn`` inside the block."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Connection, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    conn.execute(select(1))  # begin first: BEGIN (IMMEDIATE, on SQLite) is not the list's
    event.listen(conn, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(conn, "before_cursor_execute", record)


# --- the list ---------------------------------------------------------------------------------


def test_resolved_alerts_and_policy_notices_are_not_listed(db: Database) -> None:
    """Resolved by the source or by hand: gone from the list; a policy notice is not an
    alert; what still fires is listed."""
    story = Story(db)
    story.ingest(firing("e1", "a"), firing("e2", "b"), firing("e3", "c"))
    story.ingest((SAMPLES / "policy-emergency-upgrade.json").read_bytes())
    with db.engine.connect() as conn:
        notice = str(conn.scalar(select(alerts.c.id).where(alerts.c.kind == "policy")))
    act(story, notice, Verb.ACKNOWLEDGE, "mei.lin")  # acknowledged, yet still not an alert
    assert {a.id for a in listed(db)} == {alert_id(db, i) for i in "abc"}

    story.ingest(firing("e4", "a", status="resolved"))
    act(story, alert_id(db, "b"), Verb.RESOLVE, "mei.lin")
    assert [a.id for a in listed(db)] == [alert_id(db, "c")]


def test_most_severe_first_then_the_newest(db: Database) -> None:
    """Critical before high before warning before info; within a severity the alert that
    started last comes first; filters and the limit apply to that order."""
    story = Story(db)
    story.ingest(
        firing("e1", "old-critical", started=T0 - 30 * MINUTE),
        firing("e2", "info", severity="info", started=T0 - 10 * MINUTE),
        firing("e3", "new-warning", severity="warning", started=T0 - 2 * MINUTE),
        firing("e4", "high", severity="high", started=T0 - 1 * MINUTE),
        firing("e5", "new-critical", started=T0 - 5 * MINUTE),
        firing("e6", "old-warning", severity="warning", started=T0 - 40 * MINUTE),
    )
    order = ["new-critical", "old-critical", "high", "new-warning", "old-warning", "info"]
    ids = [alert_id(db, i) for i in order]
    found = listed(db)
    assert [a.id for a in found] == ids
    assert [a.severity for a in found] == [
        "critical",
        "critical",
        "high",
        "warning",
        "warning",
        "info",
    ]
    assert found[0].started_at == T0 - 5 * MINUTE
    assert found[0].labels["instance"] == "new-critical"
    assert [a.id for a in listed(db, severity="warning")] == ids[3:5]
    assert [a.id for a in listed(db, limit=2)] == ids[:2]
    with pytest.raises(ValueError, match="status must be"):
        listed(db, status="resolved")


async def test_escalation_step_and_next_step_follow_the_escalation(db: Database) -> None:
    """Step 0 with the first step due at 5 minutes; step 1 once it paged, the next due 10
    minutes later; step 2 after that; a new occurrence starts again at step 0."""
    story = Story(db)
    story.ingest(firing("e1", "a"))
    alert = alert_id(db, "a")
    first = one(db, alert)
    assert (first.status, first.escalation_step, first.occurrence) == ("firing", 0, 1)
    assert first.next_escalation_at == T0 + 5 * MINUTE
    assert not first.held

    await story.at(6)
    after_one = one(db, alert)
    assert after_one.escalation_step == 1
    assert after_one.next_escalation_at == T0 + 16 * MINUTE
    await story.at(17)
    assert one(db, alert).escalation_step == 2

    await story.at(18)
    story.ingest(firing("e2", "a", status="resolved"))
    await story.at(19)
    story.ingest(firing("e3", "a"))
    again = one(db, alert)
    assert (again.occurrence, again.escalation_step) == (2, 0)
    assert again.next_escalation_at == T0 + 24 * MINUTE


async def test_acknowledgment_names_who_and_stops_the_escalation(db: Database) -> None:
    """Acknowledged after step 1: the list says by whom, shows no next step, and stays at
    step 1 when the next step's timer comes due (it fires, but pages nobody)."""
    story = Story(db)
    story.ingest(firing("e1", "a"), firing("e2", "b"))
    alert = alert_id(db, "a")
    await story.at(6)
    act(story, alert, Verb.ACKNOWLEDGE, "lukas.meier", "rolling back")
    acked = one(db, alert)
    assert (acked.status, acked.acknowledged_by) == ("acknowledged", "lukas.meier")
    assert acked.next_escalation_at is None
    assert one(db, alert_id(db, "b")).acknowledged_by is None

    await story.at(17)
    assert one(db, alert).escalation_step == 1
    assert one(db, alert_id(db, "b")).escalation_step == 2
    assert [a.id for a in listed(db, status="acknowledged")] == [alert]
    assert [a.id for a in listed(db, status="firing")] == [alert_id(db, "b")]


async def test_held_while_silenced_then_escalating_again(db: Database) -> None:
    """A silenced alert is listed as held with no next step; when the silence ends it is
    not held, and its first step is due the delay it had left (5 minutes)."""
    story = Story(db)
    story.silence(30, 'network="mainnet"')
    story.ingest(firing("e1", "a"))
    alert = alert_id(db, "a")
    held = one(db, alert)
    assert held.held
    assert held.next_escalation_at is None

    await story.at(31)
    released = one(db, alert)
    assert not released.held
    assert released.next_escalation_at == T0 + 36 * MINUTE


# --- the timeline -----------------------------------------------------------------------------


async def test_timeline_tells_the_hold_the_notifications_and_the_acknowledgment(
    db: Database,
) -> None:
    """Held pages say why; the hold (with its silence) starts and ends; every page has its
    delivery outcome (sent, failed with the error, pending); the acknowledgment names who and
    carries the note; oldest first."""
    story = Story(db)
    story.silence(30, 'network="mainnet"')
    story.ingest(firing("e1", "a"))
    alert = alert_id(db, "a")
    with db.engine.connect() as conn:
        entries = timeline_entries(conn, alert)
    pages = [e for e in entries if e.kind == "notification"]
    assert len(pages) == 7
    assert {e.status for e in pages} == {"held"}
    assert all(e.detail and e.detail.startswith("held: silenced") for e in pages)

    await story.at(31)
    now = story.clock.now()
    with db.transaction() as conn:
        claimed = claim_due(conn, now, 100, 60, skip_locked=False)
        mark_sent(conn, claimed[0].id, now, provider_id="p", language="en", template_hash="h")
        mark_failed(conn, claimed[1].id, now, reason="permanent", error="550 mailbox unavailable")
    await story.at(32)
    act(story, alert, Verb.ACKNOWLEDGE, "mei.lin", "on it")
    with db.engine.connect() as conn:
        entries = timeline_entries(conn, alert)

    assert [e.at for e in entries] == sorted(e.at for e in entries)
    assert (entries[0].kind, entries[0].title) == ("event", "Alert fired")
    holds = [e for e in entries if e.kind == "hold"]
    assert [(e.title, e.at) for e in holds] == [
        ("Held: silenced", T0),
        ("Hold ended: notifications released", T0 + 31 * MINUTE),
    ]
    assert holds[0].detail is not None and "validator upgrade CHG-7" in holds[0].detail
    pages = [e for e in entries if e.kind == "notification" and e.title.startswith("Page ")]
    assert Counter(e.status for e in pages) == Counter(sent=1, failed=1, pending=5)
    (failed,) = [e for e in pages if e.status == "failed"]
    assert failed.at == T0 + 31 * MINUTE
    assert failed.detail == "failed: permanent: 550 mailbox unavailable"
    assert failed.actor == claimed[1].person_id
    assert failed.title.startswith(f"Page to {claimed[1].recipient_name} by ")
    (acked,) = [e for e in entries if e.kind == "acknowledged"]
    assert (acked.actor, acked.detail) == ("mei.lin", "on it (via api)")
    # Everyone paged but the acknowledger hears who took charge (the shipped policy says so).
    told = [e for e in entries if e.title.startswith("Acknowledgment announcement to ")]
    assert told and all(e.at > acked.at or e.at == acked.at for e in told)
    assert "mei.lin" not in {e.actor for e in told}
    assert not any(e.earlier for e in entries)


async def test_timeline_marks_earlier_occurrences_and_what_was_never_sent(
    db: Database,
) -> None:
    """An occurrence that resolved while silenced: its pages and resolve notices suppressed
    (with why) and its hold lapsed, all marked as earlier once the alert fires again."""
    story = Story(db)
    story.silence(30, 'network="mainnet"')
    story.ingest(firing("e1", "a"))
    alert = alert_id(db, "a")
    await story.at(10)
    story.ingest(firing("e2", "a", status="resolved"))
    await story.at(40)
    story.ingest(firing("e3", "a"))
    with db.engine.connect() as conn:
        entries = timeline_entries(conn, alert)

    before = [e for e in entries if e.occurrence == 1]
    now = [e for e in entries if e.occurrence == 2]
    assert before and all(e.earlier for e in before)
    assert now and not any(e.earlier for e in now)
    assert entries.index(before[-1]) < entries.index(now[0])
    suppressed = [e for e in before if e.status == "suppressed"]
    what = Counter(e.title.split(" to ")[0] for e in suppressed)
    assert what == Counter({"Page": 7, "Resolved notice": 7})
    assert all(e.detail and "resolved while held" in e.detail for e in suppressed)
    assert "Hold ended: resolved while held, nothing sent" in [e.title for e in before]
    assert [e.title for e in now if e.kind == "event"] == ["Alert fired"]
    assert Counter(e.status for e in now if e.kind == "notification") == Counter(pending=7)


async def test_timeline_tells_escalation_steps_and_reminders(db: Database) -> None:
    """The step the engine took (and whom it paged), the acknowledgment, the reminder that
    followed it 30 minutes later and the reminder message itself."""
    story = Story(db)
    story.ingest(firing("e1", "a"))
    alert = alert_id(db, "a")
    await story.at(6)
    await story.at(7)
    act(story, alert, Verb.ACKNOWLEDGE, "lukas.meier")
    await story.at(38)
    with db.engine.connect() as conn:
        entries = timeline_entries(conn, alert)
    engine = [(e.kind, e.title, e.at) for e in entries if e.kind in ("escalation", "reminder")]
    assert engine == [
        ("escalation", "Escalation step taken", T0 + 6 * MINUTE),
        ("reminder", "Reminder 1: acknowledged but not resolved", T0 + 38 * MINUTE),
    ]
    (step,) = [e for e in entries if e.kind == "escalation"]
    assert step.detail is not None and step.detail.startswith("step 1: ")
    pages = [e.title for e in entries if e.title.startswith("Escalation step 1 page to ")]
    assert len(pages) == len(step.detail.split(": ")[1].split(", "))
    assert "Resolve reminder 1 to Lukas Meier by email (commander)" in [e.title for e in entries]


def test_timeline_tells_who_confirmed_receipt_and_who_has_not(db: Database) -> None:
    """A policy notice asks the partners and the regulator liaison to confirm receipt: one
    confirmed (once, by name and channel), the others pending."""
    story = Story(db)
    story.ingest((SAMPLES / "policy-emergency-upgrade.json").read_bytes())
    with db.engine.connect() as conn:
        notice = str(conn.scalar(select(alerts.c.id).where(alerts.c.kind == "policy")))
    with db.transaction() as conn:
        confirm_receipt(conn, notice, 1, "carlos.ruiz", story.clock.now() + MINUTE, "api")
    with db.engine.connect() as conn:
        entries = timeline_entries(conn, notice)
    receipts = {(e.actor, e.status): e for e in entries if e.kind == "receipt"}
    assert set(receipts) == {
        ("carlos.ruiz", "confirmed"),
        ("helga.berg", "pending"),
        ("sofia.navarro", "pending"),
    }
    confirmed = receipts[("carlos.ruiz", "confirmed")]
    assert confirmed.title == "Carlos Ruiz confirmed receipt"
    assert confirmed.detail == "tier partners, via api"
    assert confirmed.at == T0 + MINUTE
    assert entries[-1] is confirmed


def test_an_unknown_alert_has_no_timeline(db: Database) -> None:
    """AlertNotFound, as for every other way of naming an alert."""
    with db.engine.connect() as conn, pytest.raises(AlertNotFound):
        timeline_entries(conn, "0" * 32)


# --- cost -------------------------------------------------------------------------------------


def test_the_list_takes_the_same_few_queries_for_50_or_500_alerts(db: Database) -> None:
    """Three queries whatever the number of open alerts (no query per alert), over seeded
    alerts of every kind: acknowledged, escalated, escalating, held."""
    now = T0 + timedelta(days=3)
    counts = []
    for seed, n in ((1, 50), (2, 450)):
        seed_open_alerts(db, n, now, seed=seed)
        with db.engine.connect() as conn, statements(conn) as seen:
            found = open_alerts(conn)
        counts.append(len(seen))
        assert len(found) == {1: 50, 2: 500}[seed]
    assert counts == [3, 3]
    assert {a.status for a in found} == {"firing", "acknowledged"}
    assert any(a.escalation_step > 0 for a in found)
    assert any(a.next_escalation_at is not None for a in found)
    assert any(a.held for a in found)
    assert all(a.next_escalation_at is None for a in found if a.held)


def test_every_query_of_the_list_goes_through_an_index(tmp_path: Path) -> None:
    """SQLite's plan for each query the list runs: no full scan of a table (the history of
    resolved alerts, timers and holds only grows)."""
    db = Database(f"sqlite:///{tmp_path / 'plan.db'}")
    db.migrate()
    seed_open_alerts(db, 20, T0)
    try:
        with db.engine.connect() as conn:
            with statements(conn) as seen:
                open_alerts(conn, severity="critical", limit=10)
            plans = [
                [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)]
                for sql, params in seen
            ]
    finally:
        db.dispose()
    steps = [step for plan in plans for step in plan]
    assert not [step for step in steps if step.startswith("SCAN")], plans
    assert any("ix_alerts_status" in step for step in steps), plans
    assert any("ix_timers_alert_id" in step for step in steps), plans
