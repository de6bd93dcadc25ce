"""Seed a store with open alerts for the Incidents page, and time ``open_alerts`` on it.

Usage: python bench/seed.py PATH.db [--alerts 10000] [--resolved 0] [--runs 7] [--plan]

Migrates the SQLite file, seeds ``--alerts`` open alerts (and ``--resolved`` resolved ones,
as history the page must not pay for) unless it already holds alerts, then prints the median
time of ``open_alerts`` over ``--runs`` runs (query and rows, no HTML). ``--plan`` prints
SQLite's query plan of the statement.

:func:`seed_open_alerts` is also what the tests use to check that ``open_alerts`` issues a
fixed number of queries, on SQLite and PostgreSQL. The rows look like the engine's: severities
mixed, about 20% acknowledged, critical and high alerts escalating (steps fired and done, the
next one pending), a few pages per alert with every delivery outcome, some flapping alerts on
their second or third occurrence, some silenced (an open hold) and some released.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, bindparam, func, insert, select, text

from notifier.escalation import plan_key
from notifier.intents import notification_id, timer_id
from notifier.store import Database
from notifier.store.bulk import Bulk
from notifier.store.incidents import open_alerts, open_alerts_query
from notifier.store.schema import alert_timeline, alerts, holds, notifications, plans, timers

RESPONDERS = (
    ("ana.costa", "Ana Costa"),
    ("jonas.weber", "Jonas Weber"),
    ("priya.raman", "Priya Raman"),
    ("lukas.meier", "Lukas Meier"),
)
COMMANDERS = (("mei.lin", "Mei Lin"), ("lukas.meier", "Lukas Meier"))
NAMES = (
    "ConsensusFinalityLag",
    "NetworkPartition",
    "PeerCountLow",
    "DiskAlmostFull",
    "ValidatorMissedAttestations",
    "BlockProductionStalled",
    "RpcLatencyHigh",
    "CertificateExpiring",
)
NETWORKS = ("mainnet", "holesky", "sepolia", "testnet")
REGIONS = ("eu-west-1", "us-east-1", "ap-south-1")
SEVERITIES = ("critical", "high", "warning", "info")
SEVERITY_WEIGHTS = (10, 20, 45, 25)
SOURCE = "monitoring/prometheus/eu-west-1"
# The shipped critical-incident policy: steps after 5 and 10 minutes, repeated once.
STEP_DELAYS = (300, 600, 300, 600)
STEP_DUE = tuple(sum(STEP_DELAYS[: i + 1]) for i in range(len(STEP_DELAYS)))
PLAN: dict[str, Any] = {
    "policy": "critical-incident",
    "template": "alert",
    "clearance": "confidential",
    "steps": [
        {"delay": d, "people": [p for p, _ in (COMMANDERS if i % 2 == 0 else RESPONDERS)]}
        for i, d in enumerate(STEP_DELAYS)
    ],
    "clearances": {},
    "announce": True,
    "reminders": {"every": 1800, "count": 2, "then": [p for p, _ in COMMANDERS]},
    "updates": {"every": 3600, "commanders": [p for p, _ in COMMANDERS], "stakeholders": []},
}
PLAN_ID = plan_key(PLAN)
MAX_UPDATE_ROUNDS = 48  # status-update timers kept per occurrence (one per hour open)


def _bulk(table: Table, *, without: tuple[str, ...] = ()) -> Bulk:
    """An insert of every column but ``without`` (autoincrement keys), run as executemany."""
    names = [c.name for c in table.columns if c.name not in without]
    return Bulk(
        insert(table).values({n: bindparam(n) for n in names}),
        {n: table.c[n].type for n in names},
    )


_ALERTS = _bulk(alerts)
_TIMELINE = _bulk(alert_timeline, without=("id",))
_NOTIFICATIONS = _bulk(notifications)
_TIMERS = _bulk(timers)
_HOLDS = _bulk(holds, without=("id",))


@dataclass
class _Rows:
    """Everything a seed writes, gathered to be written in one transaction."""

    rng: random.Random
    now: datetime
    alerts: list[dict[str, Any]] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    timers: list[dict[str, Any]] = field(default_factory=list)
    holds: list[dict[str, Any]] = field(default_factory=list)

    def hex(self, bits: int = 128) -> str:
        return f"{self.rng.getrandbits(bits):0{bits // 4}x}"

    def log(
        self,
        alert_id: str,
        occurrence: int,
        at: datetime,
        kind: str,
        actor: str,
        channel: str,
        note: str | None = None,
    ) -> None:
        self.timeline.append(
            {
                "alert_id": alert_id,
                "occurrence": occurrence,
                "at": at,
                "kind": kind,
                "actor": actor,
                "channel": channel,
                "note": note,
                "event_key": None,
            }
        )

    def notify(
        self,
        alert_id: str,
        occurrence: int,
        kind: str,
        person: tuple[str, str],
        created_at: datetime,
        *,
        channel: str = "email",
        tier: str = "responders",
        status: str = "sent",
        reason: str | None = None,
        error: str | None = None,
    ) -> None:
        person_id, name = person
        sent = status == "sent"
        self.notifications.append(
            {
                "id": notification_id(alert_id, occurrence, kind, person_id, channel),
                "alert_id": alert_id,
                "occurrence": occurrence,
                "kind": kind,
                "event_key": "0" * 32,
                "person_id": person_id,
                "channel": channel,
                "address": f"{person_id}@example.org" if channel == "email" else f"@{person_id}",
                "recipient_name": name,
                "tier": tier,
                "rule": "critical-mainnet-alerts",
                "template": "alert",
                "clearance": "confidential",
                "locale": "en",
                "timezone": "UTC",
                "status": status,
                "dispatches": 1 if status in ("sent", "failed") else 0,
                "next_attempt_at": created_at,
                "lease_expires_at": None,
                "error_reason": reason,
                "last_error": error,
                "created_at": created_at,
                "sent_at": created_at + timedelta(seconds=self.rng.uniform(0.2, 3))
                if sent
                else None,
                "language": "en" if sent else None,
                "template_hash": None,
                "template_version": None,
                "provider_id": None,
                "details": None,
            }
        )

    def timer(
        self,
        alert_id: str,
        occurrence: int,
        kind: str,
        step: int,
        due_at: datetime,
        state: str,
        outcome: str | None = None,
    ) -> None:
        done = state == "done"
        self.timers.append(
            {
                "id": timer_id(alert_id, occurrence, kind, step),
                "alert_id": alert_id,
                "occurrence": occurrence,
                "kind": kind,
                "step": step,
                "due_at": due_at,
                "event_key": "0" * 32,
                "plan_id": PLAN_ID,
                "state": state,
                "fired_at": due_at if done else None,
                "outcome": outcome if done else None,
            }
        )

    def write(self, conn: Connection) -> None:
        stmt = select(plans.c.id).where(plans.c.id == PLAN_ID)
        if conn.execute(stmt).first() is None:
            conn.execute(insert(plans).values(id=PLAN_ID, body=PLAN))
        _ALERTS.run(conn, self.alerts)
        _TIMELINE.run(conn, self.timeline)
        _NOTIFICATIONS.run(conn, self.notifications)
        _TIMERS.run(conn, self.timers)
        _HOLDS.run(conn, self.holds)


def seed_open_alerts(db: Database, n: int, now: datetime, *, seed: int = 1) -> None:
    """Insert ``n`` open alerts as of ``now``, with the timeline, notifications, timers and
    holds the engine would have written for them, in one transaction."""
    rows = _Rows(random.Random(seed), now)
    for _ in range(n):
        _open_alert(rows)
    with db.transaction() as conn:
        rows.write(conn)


def seed_resolved_alerts(db: Database, n: int, now: datetime, *, seed: int = 2) -> None:
    """Insert ``n`` resolved alerts (history: paged, escalated once, resolved by the source)."""
    rows = _Rows(random.Random(seed), now)
    for _ in range(n):
        _resolved_alert(rows)
    with db.transaction() as conn:
        rows.write(conn)


def _age(rng: random.Random) -> timedelta:
    """How long ago an open alert started: many recent ones, a long tail of old ones."""
    bucket = rng.random()
    if bucket < 0.4:
        return timedelta(seconds=rng.uniform(10, 1800))
    if bucket < 0.7:
        return timedelta(seconds=rng.uniform(1800, 6 * 3600))
    return timedelta(seconds=rng.uniform(6 * 3600, 3 * 86400))


def _alert_row(
    rows: _Rows, alert_id: str, severity: str, occurrence: int, first: datetime, start: datetime
) -> dict[str, Any]:
    rng = rows.rng
    name = rng.choice(NAMES)
    network = rng.choice(NETWORKS)
    labels = {
        "alertname": name,
        "network": network,
        "region": rng.choice(REGIONS),
        "instance": f"node-{rng.randrange(1000):03d}",
        "team": "validators",
    }
    return {
        "id": alert_id,
        "fingerprint": rows.hex(),
        "kind": "alert",
        "status": "firing",
        "occurrence": occurrence,
        "name": name,
        "severity": severity,
        "risk": "high" if severity == "critical" else None,
        "labels": labels,
        "summary": f"{name} on {network} ({labels['instance']})",
        "starts_at": start,
        "ends_at": None,
        "created_at": first,
        "updated_at": rows.now,
        "event_count": rng.randrange(1, 500),
        "last_event_key": rows.hex(),
        "acknowledged_by": None,
        "acknowledged_at": None,
    }


def _open_alert(rows: _Rows) -> None:
    rng, now = rows.rng, rows.now
    alert_id = rows.hex()
    severity = rng.choices(SEVERITIES, SEVERITY_WEIGHTS)[0]
    occurrence = rng.choices((1, 2, 3), (85, 10, 5))[0]
    age = _age(rng)
    start = now - age
    # Earlier occurrences (a flapping alert): fired and resolved by the source, an hour apart.
    first = start - timedelta(hours=occurrence - 1, minutes=rng.uniform(0, 30))
    for before in range(1, occurrence):
        fired = start - timedelta(hours=occurrence - before, minutes=rng.uniform(20, 40))
        rows.log(alert_id, before, fired, "triggered", SOURCE, "event")
        rows.notify(alert_id, before, "firing", RESPONDERS[0], fired)
        ended = fired + timedelta(minutes=rng.uniform(2, 15))
        rows.log(alert_id, before, ended, "resolved", SOURCE, "event")
        rows.notify(alert_id, before, "resolved", RESPONDERS[0], ended)
    row = _alert_row(rows, alert_id, severity, occurrence, min(first, start), start)
    rows.alerts.append(row)
    rows.log(alert_id, occurrence, start, "triggered", SOURCE, "event")

    acked_at: datetime | None = None
    if rng.random() < 0.2:
        acked_at = start + age * rng.uniform(0.1, 0.9)
        by = rng.choice(RESPONDERS)
        row.update(status="acknowledged", acknowledged_by=by[0], acknowledged_at=acked_at)
        note = rng.choice((None, "looking into it", "rolling back the last deploy"))
        rows.log(alert_id, occurrence, acked_at, "acknowledged", by[0], "slack", note)
    held = acked_at is None and rng.random() < 0.04
    released_at: datetime | None = None
    if held or rng.random() < 0.03:
        silence = rows.hex()
        detail = (
            f"silence {silence} by mei.lin until {(now + timedelta(hours=2)).isoformat()} "
            f'({{network="{row["labels"]["network"]}"}}): maintenance CHG-{rng.randrange(999)}'
        )
        if not held:
            released_at = start + min(age / 2, timedelta(minutes=20))
        rows.holds.append(
            {
                "alert_id": alert_id,
                "occurrence": occurrence,
                "cause": "silence",
                "cause_id": silence,
                "detail": detail,
                "held_at": start,
                "ended_at": released_at,
                "outcome": None if held else "released",
            }
        )
        rows.log(alert_id, occurrence, start, "silenced", silence, "notifier", detail)
        if released_at is not None:
            rows.log(alert_id, occurrence, released_at, "released", "notifier", "notifier")

    # The first page: two to four responders, some on Slack as well.
    paged = rng.sample(RESPONDERS, rng.randint(2, 4))
    bundled = severity in ("warning", "info") and rng.random() < 0.3
    for i, person in enumerate(paged):
        created = (released_at or start) + timedelta(microseconds=i)
        for channel in ("email", "slack") if rng.random() < 0.3 else ("email",):
            status, reason, error = "sent", None, None
            if held:
                status, reason, error = "held", "silenced", "held by a silence"
            elif bundled:
                status, reason, error = "bundled", "grouped", f"in digest {rows.hex(64)}"
            elif age < timedelta(seconds=30):
                status = "pending"
            elif rng.random() < 0.04:
                status, reason, error = "failed", "permanent", "550 5.1.1 mailbox unavailable"
            rows.notify(
                alert_id,
                occurrence,
                "firing",
                person,
                created,
                channel=channel,
                status=status,
                reason=reason,
                error=error,
            )

    if severity in ("critical", "high"):
        _escalation(rows, alert_id, occurrence, start, acked_at, held=held)
        if acked_at is not None:
            for person in paged:
                if person[0] != row["acknowledged_by"]:
                    rows.notify(alert_id, occurrence, "acknowledged", person, acked_at)
            due = acked_at + timedelta(minutes=30)
            state = "pending" if due > now else "done"
            rows.timer(alert_id, occurrence, "ack-reminder", 0, due, state, "fired")
    if severity == "critical":
        rounds = min(int(age / timedelta(hours=1)), MAX_UPDATE_ROUNDS)
        for step in range(rounds):
            due = start + timedelta(hours=step + 1)
            rows.timer(alert_id, occurrence, "status-update", step, due, "done", "fired")
        due = start + timedelta(hours=rounds + 1)
        rows.timer(
            alert_id, occurrence, "status-update", rounds, due, "held" if held else "pending"
        )


def _escalation(
    rows: _Rows,
    alert_id: str,
    occurrence: int,
    start: datetime,
    acked_at: datetime | None,
    *,
    held: bool,
) -> None:
    """The escalation timers of an occurrence: the steps that fired (done, with their
    notifications and timeline entries), then the next one (pending, or held)."""
    if held:
        rows.timer(alert_id, occurrence, "escalation", 0, start + timedelta(seconds=300), "held")
        return
    until = (acked_at or rows.now) - start
    fired = sum(1 for due in STEP_DUE if timedelta(seconds=due) <= until)
    for step in range(fired):
        due = start + timedelta(seconds=STEP_DUE[step])
        rows.timer(alert_id, occurrence, "escalation", step, due, "done", "fired")
        people = COMMANDERS if step % 2 == 0 else RESPONDERS
        for i, person in enumerate(people):
            created = due + timedelta(microseconds=i)
            tier = "escalation"
            rows.notify(alert_id, occurrence, f"escalated-{step + 1}", person, created, tier=tier)
        names = ", ".join(p for p, _ in people)
        note = f"step {step + 1}: {names}"
        rows.log(
            alert_id, occurrence, due, "escalated", "escalation:critical-incident", "timer", note
        )
    if fired < len(STEP_DUE):
        due = start + timedelta(seconds=STEP_DUE[fired])
        if due <= rows.now:  # acknowledged before it was due: it fired and stopped
            rows.timer(alert_id, occurrence, "escalation", fired, due, "done", "acknowledged")
        else:
            rows.timer(alert_id, occurrence, "escalation", fired, due, "pending")


def _resolved_alert(rows: _Rows) -> None:
    rng, now = rows.rng, rows.now
    alert_id = rows.hex()
    severity = rng.choices(SEVERITIES, SEVERITY_WEIGHTS)[0]
    start = now - timedelta(days=rng.uniform(3, 90))
    end = start + timedelta(minutes=rng.uniform(1, 120))
    row = _alert_row(rows, alert_id, severity, 1, start, start)
    row.update(status="resolved", ends_at=end, updated_at=end)
    rows.alerts.append(row)
    rows.log(alert_id, 1, start, "triggered", SOURCE, "event")
    rows.log(alert_id, 1, end, "resolved", SOURCE, "event")
    for person in RESPONDERS[:2]:
        rows.notify(alert_id, 1, "firing", person, start)
        rows.notify(alert_id, 1, "resolved", person, end)
    if severity in ("critical", "high"):
        until = end - start
        fired = sum(1 for due in STEP_DUE if timedelta(seconds=due) <= until)
        for step in range(fired):
            due = start + timedelta(seconds=STEP_DUE[step])
            rows.timer(alert_id, 1, "escalation", step, due, "done", "fired")
        if fired < len(STEP_DUE):
            due = start + timedelta(seconds=STEP_DUE[fired])
            rows.timer(alert_id, 1, "escalation", fired, due, "done", "resolved")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("path", type=Path, help="the SQLite file to seed (migrated first)")
    parser.add_argument("--alerts", type=int, default=10_000, help="open alerts to seed")
    parser.add_argument("--resolved", type=int, default=0, help="resolved alerts to seed too")
    parser.add_argument("--runs", type=int, default=7, help="timed runs of open_alerts")
    parser.add_argument("--plan", action="store_true", help="print the query plan")
    args = parser.parse_args(argv)

    db = Database(f"sqlite:///{args.path}")
    db.migrate()
    now = datetime.now(UTC)
    with db.engine.connect() as conn:
        stored = conn.scalar(select(func.count()).select_from(alerts)) or 0
    if stored:
        print(f"{args.path} already holds {stored} alerts: timing them as they are")
    else:
        started = time.perf_counter()
        if args.resolved:
            seed_resolved_alerts(db, args.resolved, now)
        seed_open_alerts(db, args.alerts, now)
        took = time.perf_counter() - started
        print(f"seeded {args.alerts} open and {args.resolved} resolved alerts in {took:.1f} s")

    with db.engine.connect() as conn:
        if args.plan:
            compiled = open_alerts_query().compile(
                dialect=conn.dialect, compile_kwargs={"literal_binds": True}
            )
            for row in conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}")):
                print("  plan:", row[-1])
        wall, cpu = [], []
        found = 0
        for _ in range(args.runs):
            started, used = time.perf_counter(), time.process_time()
            found = len(open_alerts(conn))
            wall.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - used) * 1000)
    db.dispose()
    # CPU time too: on a shared machine the wall clock also counts other processes' turns.
    print(
        f"open_alerts: {found} open alerts, median {statistics.median(wall):.1f} ms "
        f"(min {min(wall):.1f}, max {max(wall):.1f}; CPU median {statistics.median(cpu):.1f}) "
        f"over {args.runs} runs"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
