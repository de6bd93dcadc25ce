"""The store on both backends: schema, batch transactions with offsets, outbox claims."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text

from notifier.clock import SystemClock
from notifier.directory import Directory
from notifier.escalation import plan_key
from notifier.pipeline import BatchProcessor, RawRecord
from notifier.routing import Router, RoutingConfig
from notifier.store import Database
from notifier.store import outbox as rows
from notifier.store.offsets import load_offsets
from notifier.store.queries import counts
from notifier.store.schema import metadata, plans, timers

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "config" / "samples"
T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


class _Clock(SystemClock):
    def __init__(self, now: datetime) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at


def _router() -> Router:
    directory = Directory.load(ROOT / "config" / "directory.yaml")
    return Router(RoutingConfig.load(ROOT / "config" / "routing.yaml"), directory)


def _processor(db: Database, clock: _Clock | None = None) -> BatchProcessor:
    return BatchProcessor(
        db, _router(), clock or _Clock(T0), group="g", topic="events", max_event_bytes=1 << 20
    )


def _records(start: int, values: list[bytes], partition: int = 0) -> list[RawRecord]:
    return [RawRecord("events", partition, start + i, None, v, ()) for i, v in enumerate(values)]


def _sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def test_migrations_match_the_table_definitions(db: Database) -> None:
    """The migrated schema is exactly what schema.py describes (no drift)."""
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_migrate_twice_is_harmless(db: Database) -> None:
    """Running the migrations again on a migrated store changes nothing."""
    db.migrate()
    assert {"alerts", "events", "notifications", "consumer_offsets", "rejections"} <= db.tables()


def test_batch_commits_effects_and_offsets_together(db: Database) -> None:
    """One batch stores its events, alert, notifications, rejection and next offset at once."""
    proc = _processor(db)
    records = _records(0, [_sample("alert-firing.json"), b"not json"])
    outcome = proc.apply(records, proc.decode(records))
    assert (outcome.accepted, outcome.rejected, outcome.notifications) == (1, 1, 7)
    c = counts(db)
    assert (c["events"], c["alerts"], c["rejections"], c["notifications_pending"]) == (1, 1, 1, 7)
    with db.transaction() as conn:
        assert load_offsets(conn, "g", "events") == {0: 2}


def test_a_batch_behind_the_stored_offset_is_refused_whole(db: Database) -> None:
    """Re-applying records the store already moved past is stale and writes nothing."""
    proc = _processor(db)
    records = _records(0, [_sample("alert-firing.json")])
    proc.apply(records, proc.decode(records))
    again = proc.apply(records, proc.decode(records))
    assert again.stale
    assert counts(db)["notifications_pending"] == 7


def test_replayed_events_at_new_offsets_are_duplicates(db: Database) -> None:
    """The same CloudEvent (source + id) produced twice has an effect once."""
    proc = _processor(db)
    first = _records(0, [_sample("alert-firing.json")])
    proc.apply(first, proc.decode(first))
    replay = _records(1, [_sample("alert-firing.json")])
    outcome = proc.apply(replay, proc.decode(replay))
    assert (outcome.accepted, outcome.duplicates, outcome.notifications) == (0, 1, 0)
    assert counts(db)["events"] == 1


def test_resolve_in_a_later_batch_notifies_the_same_people(db: Database) -> None:
    """Firing then resolved across batches: one alert, two sets of notifications."""
    proc = _processor(db)
    a = _records(0, [_sample("alert-firing.json")])
    proc.apply(a, proc.decode(a))
    b = _records(1, [_sample("alert-resolved.json")])
    outcome = proc.apply(b, proc.decode(b))
    assert outcome.notifications == 7
    c = counts(db)
    assert (c["alerts"], c["notifications_pending"]) == (1, 14)


def _seed_notifications(db: Database, n_alerts: int = 1) -> None:
    proc = _processor(db)
    values = []
    for i in range(n_alerts):
        doc = orjson.loads(_sample("alert-firing.json"))
        doc["id"] = f"evt-{i}"
        doc["data"]["labels"]["instance"] = f"node-{i}"
        values.append(orjson.dumps(doc))
    records = _records(0, values)
    proc.apply(records, proc.decode(records))


def test_claimed_notifications_are_leased_until_the_lease_runs_out(db: Database) -> None:
    """A claim hides rows from other claims until its lease expires, then they come back."""
    _seed_notifications(db)
    with db.transaction() as conn:
        first = rows.claim_due(conn, T0, 100, 30, skip_locked=not db.is_sqlite)
    with db.transaction() as conn:
        second = rows.claim_due(
            conn, T0 + timedelta(seconds=10), 100, 30, skip_locked=not db.is_sqlite
        )
    with db.transaction() as conn:
        third = rows.claim_due(
            conn, T0 + timedelta(seconds=31), 100, 30, skip_locked=not db.is_sqlite
        )
    assert len(first) == 7 and second == [] and len(third) == 7
    assert {n.dispatches for n in third} == {2}
    assert first[0].payload["type"] == "notifier.alert.v1"


def test_sent_rows_leave_the_outbox_and_rescheduled_rows_wait(db: Database) -> None:
    """mark_sent removes a row from the outbox; reschedule makes it due later."""
    _seed_notifications(db)
    with db.transaction() as conn:
        claimed = rows.claim_due(conn, T0, 2, 30, skip_locked=False)
        rows.mark_sent(
            conn, claimed[0].id, T0, provider_id="<x@y>", language="de", template_hash="h"
        )
        rows.reschedule(
            conn, claimed[1].id, T0 + timedelta(minutes=5), reason="server", error="451"
        )
    with db.engine.connect() as conn:
        assert rows.next_due(conn) == T0
    with db.transaction() as conn:
        now_due = rows.claim_due(conn, T0 + timedelta(seconds=1), 100, 30, skip_locked=False)
    assert claimed[0].id not in {n.id for n in now_due}
    assert claimed[1].id not in {n.id for n in now_due}
    assert len(now_due) == 5


def test_concurrent_claims_never_share_a_row(postgres_url: str) -> None:
    """Two PostgreSQL claimers with SKIP LOCKED split the due rows between them."""
    db = Database(postgres_url)
    db.migrate()
    _seed_notifications(db, n_alerts=20)
    claimed: list[list[str]] = []
    barrier = threading.Barrier(4)

    def claim() -> None:
        barrier.wait()
        with db.transaction() as conn:
            got = rows.claim_due(conn, T0, 40, 30, skip_locked=True)
        claimed.append([n.id for n in got])

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    all_ids = [i for batch in claimed for i in batch]
    assert len(all_ids) == len(set(all_ids)) == 140
    db.dispose()


def test_upgrading_moves_each_timers_plan_into_the_plans_table(store_url: str) -> None:
    """A store with timers that carry their plan inline (revision 0004) keeps every timer,
    now pointing at one shared, content-addressed plan row."""
    db = Database(store_url)
    try:
        db.migrate("0004")
        plan = {"policy": "p", "template": "alert", "clearance": "public", "steps": []}
        with db.engine.begin() as conn:
            for i in range(3):
                conn.execute(
                    text(
                        "INSERT INTO timers (id, alert_id, occurrence, kind, step, due_at, "
                        "event_key, plan, state) VALUES (:id, 'a', 1, 'escalation', :step, "
                        "'2026-11-20 08:00:00', 'k', :plan, 'pending')"
                    ),
                    {"id": f"t{i}", "step": i, "plan": orjson.dumps(plan).decode()},
                )
        db.migrate()
        with db.engine.connect() as conn:
            keys = set(conn.scalars(select(timers.c.plan_id)))
            stored = list(conn.execute(select(plans.c.id, plans.c.body)))
        assert keys == {plan_key(plan)}
        assert [(k, body) for k, body in stored] == [(plan_key(plan), plan)]
    finally:
        db.dispose()


def test_the_pool_keeps_a_connection_for_every_executor_thread(tmp_path: Path) -> None:
    """As many threads as asyncio's default executor has, each holding a connection at once,
    all give theirs back to the pool to keep (none is closed as overflow and reopened)."""
    db = Database(f"sqlite:///{tmp_path / 'pool.db'}")
    workers = min(32, (os.cpu_count() or 1) + 4)
    all_in = threading.Barrier(workers)

    def hold() -> None:
        # A checkout without a transaction (the store's begin would serialise the threads).
        conn = db.engine.raw_connection()
        try:
            all_in.wait(timeout=10)
        finally:
            conn.close()

    threads = [threading.Thread(target=hold) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert db.engine.pool.checkedin() == workers  # type: ignore[attr-defined]
    db.dispose()
