"""Applying people's actions to alerts, and reading an alert's timeline.

The decision is :func:`notifier.lifecycle.decide`; this module finds the alert, locks it, and
writes the outcome and its timeline entry in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from notifier.directory import Directory
from notifier.errors import NotifierError, Reason
from notifier.lifecycle import Action, MovedOn, Outcome, Status, Verb, decide
from notifier.store import audit
from notifier.store.followups import FollowUps, after_action
from notifier.store.schema import alert_timeline, alerts

_MIN_PREFIX = 6
_NOTHING = FollowUps()


class AlertNotFound(NotifierError):
    """No alert matches the given id (or the prefix matches several)."""

    reason = Reason.CLIENT


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What an action did to which alert."""

    alert_id: str
    name: str
    occurrence: int
    outcome: Outcome
    acknowledged_by: str | None
    follow_ups: FollowUps = _NOTHING


def find_alert_id(conn: Connection, ref: str) -> str:
    """Resolve a full alert id or a unique prefix of at least six characters."""
    ref = ref.strip().lower()
    if len(ref) < _MIN_PREFIX:
        raise AlertNotFound(
            f"alert id {ref!r} is too short: give at least {_MIN_PREFIX} characters"
        )
    # A range, not LIKE: SQLite's LIKE is case-insensitive and cannot use the primary key.
    upper = ref[:-1] + chr(ord(ref[-1]) + 1)
    ids = list(
        conn.scalars(select(alerts.c.id).where(alerts.c.id >= ref, alerts.c.id < upper).limit(2))
    )
    if not ids:
        raise AlertNotFound(f"no alert with id {ref!r} (list them with `notifier alerts`)")
    if len(ids) > 1:
        raise AlertNotFound(f"alert id {ref!r} is ambiguous: give more characters")
    return str(ids[0])


def apply_action(
    conn: Connection,
    ref: str,
    action: Action,
    *,
    lock: bool,
    directory: Directory,
    occurrence: int | None = None,
) -> ActionResult:
    """Apply ``action`` to the alert ``ref`` (inside the caller's transaction), with what it
    sets in motion (see :mod:`notifier.store.followups`). With ``occurrence``, the action is
    refused if the alert has moved on to another occurrence (an old message's button)."""
    alert_id = find_alert_id(conn, ref)
    query = select(
        alerts.c.status, alerts.c.occurrence, alerts.c.name, alerts.c.acknowledged_by
    ).where(alerts.c.id == alert_id)
    if lock:
        query = query.with_for_update()
    status, current, name, acknowledged_by = conn.execute(query).one()
    if occurrence is not None and occurrence != current:
        raise MovedOn(
            f"{name} has fired again since that message (occurrence {current}); act on the "
            "newest message"
        )
    occurrence = current
    outcome = decide(status, action)
    if outcome.changed:
        values: dict[str, Any] = {"status": outcome.after.value, "updated_at": action.at}
        if action.verb is Verb.ACKNOWLEDGE:
            values |= {"acknowledged_by": action.by, "acknowledged_at": action.at}
            acknowledged_by = action.by
        if outcome.after is Status.RESOLVED:
            values["ends_at"] = action.at
        conn.execute(update(alerts).where(alerts.c.id == alert_id).values(values))
        conn.execute(
            insert(alert_timeline).values(
                alert_id=alert_id,
                occurrence=occurrence,
                at=action.at,
                kind="acknowledged" if action.verb is Verb.ACKNOWLEDGE else "resolved",
                actor=action.by,
                channel=action.channel,
                note=action.note,
            )
        )
        # The audit log has every action of every person, whichever channel it came from.
        audit.record(
            conn,
            action.at,
            action.by,
            f"alert.{action.verb.value}",
            alert_id,
            {"alert": name, "occurrence": occurrence, "channel": action.channel},
        )
        follow_ups = after_action(conn, alert_id, occurrence, action, directory)
        return ActionResult(alert_id, name, occurrence, outcome, acknowledged_by, follow_ups)
    return ActionResult(alert_id, name, occurrence, outcome, acknowledged_by)


class UpdateRefused(NotifierError):
    """A status update for an alert that is not open."""

    reason = Reason.CLIENT


def post_update(conn: Connection, ref: str, by: str, note: str, at: datetime) -> str:
    """Record a status update on an open alert (the next scheduled update carries it to the
    stakeholders); return the alert id."""
    alert_id = find_alert_id(conn, ref)
    status, occurrence = conn.execute(
        select(alerts.c.status, alerts.c.occurrence).where(alerts.c.id == alert_id)
    ).one()
    if status not in (Status.TRIGGERED.value, Status.ACKNOWLEDGED.value):
        raise UpdateRefused(f"alert {alert_id} is {status}: status updates are for open alerts")
    conn.execute(
        insert(alert_timeline).values(
            alert_id=alert_id,
            occurrence=occurrence,
            at=at,
            kind="update",
            actor=by,
            channel="update",
            note=note,
        )
    )
    return alert_id


def timeline(conn: Connection, alert_id: str) -> list[dict[str, Any]]:
    """Every lifecycle step of an alert, oldest first."""
    query = (
        select(alert_timeline)
        .where(alert_timeline.c.alert_id == alert_id)
        .order_by(alert_timeline.c.at, alert_timeline.c.id)
    )
    return [dict(row) for row in conn.execute(query).mappings()]
