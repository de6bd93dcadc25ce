"""What a person's action sets in motion: announcements, follow-ups and reminders.

When someone acknowledges, the policy the alert started under may say to tell everyone paged
so far who took charge, and to remind the acknowledger while the alert stays unresolved (a
timer). When someone resolves by hand, everyone paged hears that it is resolved (and by
whom). The notifications are written in the action's transaction, so they are not lost and
not doubled (their ids derive from alert, occurrence, kind and person).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, insert, or_, select

from notifier.directory import ChannelKind, Directory
from notifier.escalation import Plan
from notifier.intents import Timer, TimerKind, notification_id
from notifier.lifecycle import Action, Verb
from notifier.routing import Clearance, Recipient
from notifier.store.outbox import notification_row
from notifier.store.schema import notifications, timers


@dataclass(frozen=True, slots=True)
class FollowUps:
    """How many notifications and timers an action wrote."""

    notifications: int = 0
    timers: int = 0


def frozen_plan(conn: Connection, alert_id: str, occurrence: int) -> tuple[Plan, str] | None:
    """The plan an alert occurrence started under, and its starting event's key."""
    row = conn.execute(
        select(timers.c.plan, timers.c.event_key)
        .where(
            timers.c.alert_id == alert_id,
            timers.c.occurrence == occurrence,
            timers.c.kind.in_((TimerKind.ESCALATION.value, TimerKind.UPDATE.value)),
        )
        .limit(1)
    ).one_or_none()
    return None if row is None else (Plan.from_json(row[0]), row[1])


def paged(conn: Connection, alert_id: str, occurrence: int) -> list[dict[str, Any]]:
    """Everyone paged about an occurrence (routed or escalated), first page per person."""
    rows = conn.execute(
        select(
            notifications.c.person_id,
            notifications.c.tier,
            notifications.c.rule,
            notifications.c.template,
            notifications.c.clearance,
            notifications.c.event_key,
        )
        .where(
            notifications.c.alert_id == alert_id,
            notifications.c.occurrence == occurrence,
            or_(notifications.c.kind == "firing", notifications.c.kind.startswith("escalated-")),
        )
        .order_by(notifications.c.created_at, notifications.c.id)
    ).mappings()
    first: dict[str, dict[str, Any]] = {}
    for row in rows:
        first.setdefault(row["person_id"], dict(row))
    return list(first.values())


def after_action(
    conn: Connection,
    alert_id: str,
    occurrence: int,
    action: Action,
    directory: Directory,
) -> FollowUps:
    """Write what a *changed* alert's action sets in motion (in the caller's transaction)."""
    found = frozen_plan(conn, alert_id, occurrence)
    plan = found[0] if found else None
    if action.verb is Verb.ACKNOWLEDGE:
        announce = plan is not None and plan.announce
        kind = "acknowledged"
    else:
        announce, kind = True, "resolved"
    person = directory.get(action.by)
    details = {"by": person.name if person else action.by, "at": action.at, "note": action.note}
    rows = []
    if announce:
        for page in paged(conn, alert_id, occurrence):
            if page["person_id"] == action.by:
                continue  # they know: they did it
            reader = directory.get(page["person_id"])
            contact = reader.contact(ChannelKind.EMAIL) if reader else None
            if reader is None or contact is None:
                continue
            recipient = Recipient(
                reader,
                contact,
                page["tier"],
                page["rule"],
                page["template"],
                Clearance(page["clearance"]),
            )
            rows.append(
                notification_row(
                    notification_id(alert_id, occurrence, kind, reader.id, "email"),
                    alert_id=alert_id,
                    occurrence=occurrence,
                    kind=kind,
                    event_key=page["event_key"],
                    recipient=recipient,
                    now=action.at,
                    details=details,
                )
            )
    if rows:
        conn.execute(insert(notifications), rows)
    scheduled = 0
    if found is not None and plan is not None and plan.reminders and kind == "acknowledged":
        due = action.at + timedelta(seconds=plan.reminders.every_seconds)
        reminder = Timer.new(
            alert_id, occurrence, TimerKind.REMINDER, 0, due, found[1], plan.to_json()
        )
        conn.execute(insert(timers).values(reminder.row()))
        scheduled = 1
    return FollowUps(len(rows), scheduled)
