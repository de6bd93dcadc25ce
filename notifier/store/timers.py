"""The timers table: scheduling escalation steps, claiming due ones, firing them once.

Due timers are selected and fired in one transaction (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so several instances share the work) that also writes the steps' notifications,
the next steps' timers and the timeline entries, and marks the timers done: a crash before
the commit leaves them pending for the next pass; after it, they are done. Timer ids
and notification ids derive from what they are for, so nothing can be scheduled or sent twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, type_coerce, update

from notifier.directory import ChannelKind, Directory
from notifier.escalation import Plan, StepDecision, Stop, decide_step
from notifier.intents import EscalationTimer, notification_id, timer_id
from notifier.routing import Clearance, Recipient
from notifier.store.outbox import notification_row
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
    timer: DueTimer
    lateness: float


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


def fire_due(
    conn: Connection, now: datetime, limit: int, directory: Directory, *, skip_locked: bool
) -> list[Fired]:
    """Fire up to ``limit`` due timers, earliest first, in the caller's transaction.

    Claiming and firing share the transaction: on PostgreSQL the selected rows stay locked
    (``SKIP LOCKED`` lets other instances take the next ones) until the commit that also
    holds their effects and marks them done, so a timer fires at most once; a crash before
    the commit leaves it pending for the next pass.
    """
    query = (
        select(timers)
        .where(timers.c.state == "pending", timers.c.due_at <= now)
        .order_by(timers.c.due_at)
        .limit(limit)
    )
    if skip_locked:
        query = query.with_for_update(skip_locked=True)
    due = [
        DueTimer(
            r["id"],
            r["alert_id"],
            r["occurrence"],
            r["step"],
            r["due_at"],
            r["event_key"],
            Plan.from_json(r["plan"]),
        )
        for r in conn.execute(query).mappings()
    ]
    if not due:
        return []
    head_query = select(alerts.c.id, alerts.c.status, alerts.c.occurrence).where(
        alerts.c.id.in_({t.alert_id for t in due})
    )
    if skip_locked:
        head_query = head_query.with_for_update()
    heads = {alert_id: (status, occ) for alert_id, status, occ in conn.execute(head_query)}
    writes = _Writes()
    fired = []
    for timer in due:
        status, occurrence = heads.get(timer.alert_id, ("resolved", timer.occurrence))
        decision = decide_step(
            timer.plan,
            timer.step,
            timer_occurrence=timer.occurrence,
            alert_occurrence=occurrence,
            alert_status=status,
            now=now,
        )
        if isinstance(decision, Stop):
            outcome, sent = decision.value, 0
        else:
            outcome, sent = "fired", writes.escalate(timer, decision, directory, now)
        writes.done.append({"b_id": timer.id, "b_outcome": outcome, "b_at": now})
        fired.append(Fired(timer.id, outcome, sent, timer, (now - timer.due_at).total_seconds()))
    writes.apply(conn)
    return fired


class _Writes:
    """Everything a pass over due timers writes, gathered to be written in bulk."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        self.timers: list[dict[str, Any]] = []
        self.timeline: list[dict[str, Any]] = []
        self.done: list[dict[str, Any]] = []

    def escalate(
        self, timer: DueTimer, decision: StepDecision, directory: Directory, now: datetime
    ) -> int:
        """Queue the step's notifications, the next step's timer and the timeline entry."""
        kind = f"escalated-{decision.step + 1}"
        before = len(self.notifications)
        for person_id in decision.people:
            person = directory.get(person_id)
            contact = person.contact(ChannelKind.EMAIL) if person is not None else None
            if person is None or contact is None:
                continue  # left the directory since the plan was frozen
            recipient = Recipient(
                person,
                contact,
                "escalation",
                timer.plan.policy,
                timer.plan.template,
                Clearance(timer.plan.clearance),
            )
            self.notifications.append(
                notification_row(
                    notification_id(timer.alert_id, timer.occurrence, kind, person.id, "email"),
                    alert_id=timer.alert_id,
                    occurrence=timer.occurrence,
                    kind=kind,
                    event_key=timer.event_key,
                    recipient=recipient,
                    now=now,
                )
            )
        if decision.next_due is not None:
            step = decision.step + 1
            self.timers.append(
                {
                    "id": timer_id(timer.alert_id, timer.occurrence, step),
                    "alert_id": timer.alert_id,
                    "occurrence": timer.occurrence,
                    "kind": "escalation",
                    "step": step,
                    "due_at": decision.next_due,
                    "event_key": timer.event_key,
                    "plan": timer.plan.to_json(),
                    "state": "pending",
                }
            )
        self.timeline.append(
            {
                "alert_id": timer.alert_id,
                "occurrence": timer.occurrence,
                "at": now,
                "kind": "escalated",
                "actor": f"escalation:{timer.plan.policy}",
                "channel": "timer",
                "note": f"step {decision.step + 1}: {', '.join(decision.people) or 'nobody'}",
            }
        )
        return len(self.notifications) - before

    def apply(self, conn: Connection) -> None:
        """Write everything gathered."""
        if self.notifications:
            conn.execute(insert(notifications), self.notifications)
        if self.timers:
            conn.execute(insert(timers), self.timers)
        if self.timeline:
            conn.execute(insert(alert_timeline), self.timeline)
        conn.execute(
            update(timers)
            .where(timers.c.id == bindparam("b_id"))
            .values(state="done", fired_at=bindparam("b_at"), outcome=bindparam("b_outcome")),
            self.done,
        )


def next_due(conn: Connection) -> datetime | None:
    """When the earliest pending timer is due."""
    earliest = func.min(timers.c.due_at)
    value: datetime | None = conn.execute(
        select(type_coerce(earliest, UTCDateTime())).where(timers.c.state == "pending")
    ).scalar()
    return value
