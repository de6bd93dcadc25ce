"""What a person's action sets in motion: announcements, follow-ups and reminders.

When someone acknowledges, the policy the alert started under may say to tell everyone paged
so far who took charge, and to remind the acknowledger while the alert stays unresolved (a
timer). When someone resolves by hand, everyone paged hears that it is resolved (and by
whom). The notifications are written in the action's transaction, so they are not lost and
not doubled (their ids derive from alert, occurrence, kind and person).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, insert, or_, select

from notifier.directory import Directory
from notifier.escalation import FrozenPlan
from notifier.intents import Timer, TimerKind, notification_id
from notifier.lifecycle import Action, Verb
from notifier.routing import Clearance, Recipient
from notifier.store.outbox import notification_row
from notifier.store.schema import notifications, timers
from notifier.store.timers import load_plans, write_timers


@dataclass(frozen=True, slots=True)
class FollowUps:
    """How many notifications and timers an action wrote."""

    notifications: int = 0
    timers: int = 0


def frozen_plan(conn: Connection, alert_id: str, occurrence: int) -> tuple[FrozenPlan, str] | None:
    """The plan an alert occurrence started under, and its starting event's key."""
    row = conn.execute(
        select(timers.c.plan_id, timers.c.event_key)
        .where(
            timers.c.alert_id == alert_id,
            timers.c.occurrence == occurrence,
            timers.c.kind.in_((TimerKind.ESCALATION.value, TimerKind.UPDATE.value)),
        )
        .limit(1)
    ).one_or_none()
    if row is None:
        return None
    body, plan = load_plans(conn, [row[0]]).get(row[0], ({}, None))
    return None if plan is None else (FrozenPlan(plan, body, row[0]), row[1])


@dataclass(frozen=True, slots=True)
class Paged:
    """Someone paged about an alert occurrence, as their first page reached them."""

    recipient: Recipient
    event_key: str


def paged(
    conn: Connection,
    occurrences: Sequence[tuple[str, int]],
    directory: Directory,
    *,
    escalated_only: bool = False,
) -> dict[tuple[str, int], list[Paged]]:
    """Everyone paged about these occurrences (routed or, with ``escalated_only``, only by
    escalation steps), once each, in the order they were paged; people who left the
    directory or have no email contact are skipped."""
    found: dict[tuple[str, int], list[Paged]] = {}
    if not occurrences:
        return found
    escalated = notifications.c.kind.startswith("escalated-")
    rows = conn.execute(
        select(
            notifications.c.alert_id,
            notifications.c.occurrence,
            notifications.c.person_id,
            notifications.c.tier,
            notifications.c.rule,
            notifications.c.template,
            notifications.c.clearance,
            notifications.c.event_key,
        )
        .where(
            notifications.c.alert_id.in_({a for a, _ in occurrences}),
            escalated if escalated_only else or_(notifications.c.kind == "firing", escalated),
            # Held or suppressed pages (silences, inhibition) never reached anyone.
            notifications.c.status.not_in(("held", "suppressed")),
        )
        .order_by(notifications.c.created_at, notifications.c.id)
    )
    wanted = set(occurrences)
    seen: set[tuple[str, int, str]] = set()
    for alert_id, occurrence, person_id, tier, rule, template, clearance, event_key in rows:
        key = (alert_id, occurrence)
        if key not in wanted or (alert_id, occurrence, person_id) in seen:
            continue
        seen.add((alert_id, occurrence, person_id))
        person = directory.get(person_id)
        contact = directory.reach(person) if person is not None else None
        if person is None or contact is None:
            continue
        recipient = Recipient(person, contact, tier, rule, template, Clearance(clearance))
        found.setdefault(key, []).append(Paged(recipient, event_key))
    return found


def after_action(
    conn: Connection,
    alert_id: str,
    occurrence: int,
    action: Action,
    directory: Directory,
) -> FollowUps:
    """Write what a *changed* alert's action sets in motion (in the caller's transaction)."""
    found = frozen_plan(conn, alert_id, occurrence)
    plan = found[0].plan if found else None
    if action.verb is Verb.ACKNOWLEDGE:
        announce = plan is not None and plan.announce
        kind = "acknowledged"
    else:
        announce, kind = True, "resolved"
    person = directory.get(action.by)
    details = {
        "by": person.name if person else action.by,
        "by_id": action.by,
        "at": action.at,
        "note": action.note,
    }
    rows = []
    if announce:
        for page in paged(conn, [(alert_id, occurrence)], directory).get(
            (alert_id, occurrence), []
        ):
            reader = page.recipient.person
            if reader.id == action.by:
                continue  # they know: they did it
            rows.append(
                notification_row(
                    notification_id(alert_id, occurrence, kind, reader.id, "email"),
                    alert_id=alert_id,
                    occurrence=occurrence,
                    kind=kind,
                    event_key=page.event_key,
                    recipient=page.recipient,
                    now=action.at,
                    details=details,
                )
            )
    if rows:
        conn.execute(insert(notifications), rows)
    scheduled = 0
    if found is not None and plan is not None and plan.reminders and kind == "acknowledged":
        due = action.at + timedelta(seconds=plan.reminders.every_seconds)
        frozen, event_key = found
        reminder = Timer.new(
            alert_id, occurrence, TimerKind.REMINDER, 0, due, event_key, frozen.key, frozen.body
        )
        write_timers(conn, [reminder])
        scheduled = 1
    return FollowUps(len(rows), scheduled)
