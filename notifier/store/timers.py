"""The timers table: scheduling escalation steps, claiming due ones, firing them once.

A claim is a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several instances share the
work). Firing happens in one transaction that also writes the step's notifications, the next
step's timer and the timeline entry, and marks the timer done: a crash before the commit
leaves the timer to be claimed again after its lease; after it, the timer is done. Timer ids
and notification ids derive from what they are for, so nothing can be scheduled or sent twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select, type_coerce, update

from notifier.directory import ChannelKind, Directory
from notifier.escalation import Plan, StepDecision, Stop, decide_step
from notifier.intents import EscalationTimer, notification_id, timer_id
from notifier.store.schema import UTCDateTime, alert_timeline, alerts, notifications, timers


@dataclass(frozen=True, slots=True)
class DueTimer:
    """A claimed timer."""

    id: str
    alert_id: str
    occurrence: int
    step: int
    due_at: datetime
    event_key: str
    plan: Plan


@dataclass(frozen=True, slots=True)
class Fired:
    """What firing a timer did."""

    timer_id: str
    outcome: str
    notifications: int


def timer_rows(scheduled: Sequence[EscalationTimer]) -> list[dict[str, Any]]:
    """Rows for the timers table."""
    return [
        {
            "id": t.id,
            "alert_id": t.alert_id,
            "occurrence": t.occurrence,
            "kind": "escalation",
            "step": t.step,
            "due_at": t.due_at,
            "event_key": t.event_key,
            "plan": t.plan.to_json(),
            "state": "pending",
        }
        for t in scheduled
    ]


def claim_due(
    conn: Connection, now: datetime, limit: int, lease_seconds: float, *, skip_locked: bool
) -> list[DueTimer]:
    """Lease up to ``limit`` due timers, earliest first."""
    query = (
        select(timers)
        .where(
            timers.c.state == "pending",
            timers.c.due_at <= now,
            timers.c.lease_expires_at.is_(None) | (timers.c.lease_expires_at <= now),
        )
        .order_by(timers.c.due_at)
        .limit(limit)
    )
    if skip_locked:
        query = query.with_for_update(skip_locked=True)
    rows = list(conn.execute(query).mappings())
    if rows:
        conn.execute(
            update(timers)
            .where(timers.c.id.in_([r["id"] for r in rows]))
            .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
        )
    return [
        DueTimer(
            r["id"],
            r["alert_id"],
            r["occurrence"],
            r["step"],
            r["due_at"],
            r["event_key"],
            Plan.from_json(r["plan"]),
        )
        for r in rows
    ]


def fire(
    conn: Connection, timer: DueTimer, directory: Directory, now: datetime, *, lock: bool
) -> Fired:
    """Decide and apply one due timer (inside the caller's transaction)."""
    state_query = select(timers.c.state).where(timers.c.id == timer.id)
    alert_query = select(alerts.c.status, alerts.c.occurrence).where(alerts.c.id == timer.alert_id)
    if lock:
        state_query = state_query.with_for_update()
        alert_query = alert_query.with_for_update()
    if conn.execute(state_query).scalar() != "pending":
        return Fired(timer.id, "already", 0)  # another instance fired it meanwhile
    status, occurrence = conn.execute(alert_query).one()
    decision = decide_step(
        timer.plan,
        timer.step,
        timer_occurrence=timer.occurrence,
        alert_occurrence=occurrence,
        alert_status=status,
        now=now,
    )
    sent = 0
    if isinstance(decision, Stop):
        outcome = decision.value
    else:
        sent = _escalate(conn, timer, decision, directory, now)
        outcome = "fired"
    conn.execute(
        update(timers)
        .where(timers.c.id == timer.id)
        .values(state="done", fired_at=now, outcome=outcome, lease_expires_at=None)
    )
    return Fired(timer.id, outcome, sent)


def _escalate(
    conn: Connection, timer: DueTimer, decision: StepDecision, directory: Directory, now: datetime
) -> int:
    kind = f"escalated-{decision.step + 1}"
    rows = []
    for person_id in decision.people:
        person = directory.get(person_id)
        contact = person.contact(ChannelKind.EMAIL) if person is not None else None
        if person is None or contact is None:
            continue  # left the directory since the plan was frozen
        rows.append(
            {
                "id": notification_id(timer.alert_id, timer.occurrence, kind, person.id, "email"),
                "alert_id": timer.alert_id,
                "occurrence": timer.occurrence,
                "kind": kind,
                "event_key": timer.event_key,
                "person_id": person.id,
                "channel": "email",
                "address": contact.address,
                "recipient_name": person.name,
                "tier": "escalation",
                "rule": timer.plan.policy,
                "template": timer.plan.template,
                "clearance": timer.plan.clearance,
                "locale": person.locale,
                "timezone": person.timezone,
                "status": "pending",
                "dispatches": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
        )
    if rows:
        conn.execute(insert(notifications), rows)
    if decision.next_due is not None:
        step = decision.step + 1
        conn.execute(
            insert(timers).values(
                id=timer_id(timer.alert_id, timer.occurrence, step),
                alert_id=timer.alert_id,
                occurrence=timer.occurrence,
                kind="escalation",
                step=step,
                due_at=decision.next_due,
                event_key=timer.event_key,
                plan=timer.plan.to_json(),
                state="pending",
            )
        )
    conn.execute(
        insert(alert_timeline).values(
            alert_id=timer.alert_id,
            occurrence=timer.occurrence,
            at=now,
            kind="escalated",
            actor=f"escalation:{timer.plan.policy}",
            channel="timer",
            note=f"step {decision.step + 1}: {', '.join(decision.people) or 'nobody'}",
        )
    )
    return len(rows)


def next_due(conn: Connection) -> datetime | None:
    """When the earliest pending timer is due (or its lease runs out)."""
    earliest = func.min(func.coalesce(timers.c.lease_expires_at, timers.c.due_at))
    value: datetime | None = conn.execute(
        select(type_coerce(earliest, UTCDateTime())).where(timers.c.state == "pending")
    ).scalar()
    return value
