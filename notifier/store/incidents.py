"""Read-only views for the console's Incidents page: the open alerts, and one alert's story.

:func:`open_alerts` is the live list (every open alert with its escalation progress and
whether it is held) in three queries whatever the number of alerts, each through an index,
so the cost grows with the open alerts, not with the history in the store.

:func:`timeline_entries` merges what the store knows about one alert (its timeline rows,
notifications, receipts and holds) into one chronological list of short English entries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Integer,
    RowMapping,
    Select,
    case,
    func,
    select,
    type_coerce,
)
from sqlalchemy.types import NullType

from notifier.intents import TimerKind, split_kind
from notifier.lifecycle import Status
from notifier.store.schema import (
    UTCDateTime,
    alert_timeline,
    alerts,
    holds,
    notifications,
    receipts,
    timers,
)
from notifier.store.timeline import AlertNotFound

__all__ = [
    "OPEN_STATUSES",
    "SEVERITY_ORDER",
    "OpenAlert",
    "TimelineEntry",
    "open_alerts",
    "open_alerts_query",
    "timeline_entries",
]

SEVERITY_ORDER = ("critical", "high", "warning", "info")
"""Most urgent first: the list's first sort key."""

OPEN_STATUSES = (Status.TRIGGERED.value, Status.ACKNOWLEDGED.value)
"""The statuses of an open alert (policy notices, status ``notice``, are not alerts)."""


@dataclass(frozen=True, slots=True)
class OpenAlert:
    """One row of the Incidents list."""

    id: str
    name: str
    summary: str
    severity: str
    status: str  # "firing" | "acknowledged"
    started_at: datetime  # when this occurrence started
    acknowledged_by: str | None  # person id
    escalation_step: int  # the highest escalation step notified so far; 0: only the first page
    next_escalation_at: datetime | None  # when the next step is due, if one will fire
    held: bool  # a silence, inhibition or flap hold keeps this occurrence quiet now
    occurrence: int
    labels: dict[str, str]


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One line of an alert's timeline."""

    at: datetime
    kind: str  # event, acknowledged, resolved, update, escalation, reminder, notification, ...
    title: str  # short English text
    detail: str | None
    actor: str | None  # a person id, the event source, or the engine's part that acted
    status: str | None  # notifications: sent, failed, pending, held, suppressed, bundled, ...
    occurrence: int
    earlier: bool = False  # of an earlier occurrence than the alert's current one


# --- the list -------------------------------------------------------------------------------

_RANK = case(
    {severity: rank for rank, severity in enumerate(SEVERITY_ORDER)},
    value=alerts.c.severity,
    else_=len(SEVERITY_ORDER),
)
_STARTED = type_coerce(func.coalesce(alerts.c.starts_at, alerts.c.created_at), UTCDateTime())

# Escalation progress comes from the escalation timers of the occurrence: step N's timer
# (steps count from 0) sends the notifications of kind ``escalated-{N+1}``, so the highest
# step notified is 1 + the highest step whose timer is done with outcome "fired" (a timer
# that stopped, e.g. "acknowledged", notified nobody). The timers are the cheapest correct
# source: one small row per step, found through ``ix_timers_alert_id`` (alert_id,
# occurrence), with the step as an integer. The notifications would do too, but there are
# several per step (one per person and channel), the step must be parsed out of the kind,
# and a step whose people all left the directory writes none.
_FIRED_STEP = (
    select(func.max(timers.c.step) + 1)
    .where(
        timers.c.alert_id == alerts.c.id,
        timers.c.occurrence == alerts.c.occurrence,
        timers.c.kind == TimerKind.ESCALATION.value,
        timers.c.state == "done",
        timers.c.outcome == "fired",
    )
    .scalar_subquery()
)

# The next step is the occurrence's pending escalation timer; the open holds say which
# occurrences are held. Both sets are small and found through an index of their own
# (``ix_timers_due``: state; ``ix_holds_open``: ended_at): at most one pending escalation
# timer per open occurrence (a resolved alert's fires as a no-op within one step's delay),
# and a hold ends with its cause or its alert. Reading them whole and matching in Python costs
# about a millisecond at 10,000 open alerts, where a correlated subquery per alert costs
# ten or more (one index seek per alert). A held occurrence's timer is "held", not pending:
# it has no next step until the hold ends.
_PENDING_ESCALATIONS = select(
    timers.c.alert_id, timers.c.occurrence, type_coerce(timers.c.due_at, NullType())
).where(timers.c.state == "pending", timers.c.kind == TimerKind.ESCALATION.value)
_OPEN_HOLDS = select(holds.c.alert_id, holds.c.occurrence).where(holds.c.ended_at.is_(None))


def open_alerts_query(
    *, severity: str | None = None, status: str | None = None, limit: int | None = None
) -> Select[Any]:
    """The main statement of :func:`open_alerts`: the alerts, in order, with their
    escalation step (for query plans and benchmarks)."""
    if status is not None and status not in OPEN_STATUSES:
        raise ValueError(f"status must be one of {', '.join(OPEN_STATUSES)}, not {status!r}")
    query = (
        select(
            alerts.c.id,
            alerts.c.name,
            alerts.c.summary,
            alerts.c.severity,
            alerts.c.status,
            # Read raw and converted by _utc (see there).
            type_coerce(_STARTED, NullType()).label("started_at"),
            alerts.c.acknowledged_by,
            type_coerce(func.coalesce(_FIRED_STEP, 0), Integer()).label("escalation_step"),
            alerts.c.occurrence,
            type_coerce(alerts.c.labels, NullType()).label("labels"),  # read by _labels
        )
        .where(
            alerts.c.kind == "alert",
            alerts.c.status == status if status else alerts.c.status.in_(OPEN_STATUSES),
        )
        .order_by(_RANK, _STARTED.desc(), alerts.c.id)
    )
    if severity is not None:
        query = query.where(alerts.c.severity == severity)
    if limit is not None:
        query = query.limit(limit)
    return query


def open_alerts(
    conn: Connection,
    *,
    severity: str | None = None,
    status: str | None = None,
    limit: int | None = None,
) -> list[OpenAlert]:
    """The open alerts (firing or acknowledged), most severe first, then newest first.

    Three queries whatever the number of alerts (run them in one transaction for a
    consistent snapshot). ``status`` narrows to ``firing`` or ``acknowledged`` (ValueError
    otherwise), ``severity`` to one severity."""
    rows = conn.execute(open_alerts_query(severity=severity, status=status, limit=limit)).all()
    if not rows:
        return []
    due = {(a, o): at for a, o, at in conn.execute(_PENDING_ESCALATIONS)}
    held = {(a, o) for a, o in conn.execute(_OPEN_HOLDS)}
    acknowledged = Status.ACKNOWLEDGED.value
    found = []
    for alert_id, name, summary, sev, state, started, by, step, occurrence, labels in rows:
        key = (alert_id, occurrence)
        # Acknowledging stops the escalation: its pending timer will fire as a no-op.
        next_at = None if state == acknowledged else due.get(key)
        found.append(
            OpenAlert(
                alert_id,
                name,
                summary,
                sev,
                state,
                _utc(started),
                by,
                step,
                None if next_at is None else _utc(next_at),
                key in held,
                occurrence,
                _labels(labels),
            )
        )
    return found


# The list reads its times and labels raw and converts them here, as the column types would,
# at a fraction of the cost: at 10,000 alerts, SQLAlchemy's generic result processing of
# these two columns took about a third of the list's time.


def _utc(value: str | datetime) -> datetime:
    """A stored UTC time as an aware datetime: SQLite's text (``2026-11-20 08:15:00.000000``)
    or PostgreSQL's naive datetime (what :class:`UTCDateTime` reads)."""
    if isinstance(value, str):
        return datetime.fromisoformat(value + "+00:00")  # its tzinfo is UTC itself
    return value.replace(tzinfo=UTC)


def _labels(value: str | bytes | dict[str, str] | None) -> dict[str, str]:
    """Stored labels as a dict: SQLite's JSON text, or PostgreSQL's (already decoded)."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    decoded: dict[str, str] = orjson.loads(value)
    return decoded


# --- one alert's timeline -------------------------------------------------------------------

# Sources in the order entries at the same instant are listed: what happened, why it was held,
# who was told, who confirmed.
_EVENT, _HOLD, _NOTIFICATION, _RECEIPT = range(4)

# Timeline rows the holds and receipts tables tell in more detail (with how a hold ended, and
# who has not confirmed yet): the row is left out, the table's entry stands for it.
_HOLD_KINDS = frozenset({"silenced", "inhibited", "flapping", "released"})


def timeline_entries(conn: Connection, alert_id: str) -> list[TimelineEntry]:
    """Everything that happened to the alert ``alert_id``, oldest first: events and people's
    actions, escalation steps and reminders, every notification with its delivery status,
    receipts (confirmed and pending) and holds; entries of earlier occurrences are marked
    ``earlier``. Five indexed queries. AlertNotFound for an unknown id."""
    current = conn.scalar(select(alerts.c.occurrence).where(alerts.c.id == alert_id))
    if current is None:
        raise AlertNotFound(f"no alert with id {alert_id!r}")
    found: list[tuple[datetime, int, int, TimelineEntry]] = []

    def add(source: int, order: int, entry: TimelineEntry) -> None:
        found.append((entry.at, source, order, entry))

    for row in conn.execute(
        select(alert_timeline)
        .where(alert_timeline.c.alert_id == alert_id)
        .order_by(alert_timeline.c.at, alert_timeline.c.id)
    ).mappings():
        entry = _from_timeline(row, current)
        if entry is not None:
            add(_EVENT, row["id"], entry)
    for order, entry in enumerate(_from_holds(conn, alert_id, current)):
        add(_HOLD, order, entry)
    for order, row in enumerate(
        conn.execute(
            select(notifications)
            .where(notifications.c.alert_id == alert_id)
            .order_by(notifications.c.created_at, notifications.c.id)
        ).mappings()
    ):
        add(_NOTIFICATION, order, _from_notification(row, current))
    for order, entry in enumerate(_from_receipts(conn, alert_id, current)):
        add(_RECEIPT, order, entry)
    found.sort(key=lambda item: item[:3])
    return [entry for *_, entry in found]


# Timeline kinds (as split by split_kind: "ack-reminder-2" is ack-reminder, step 2): the
# entry's kind and title.
_EVENT_TITLES = {
    "triggered": ("event", "Alert fired"),
    "notice": ("event", "Policy notice received"),
    "acknowledged": ("acknowledged", "Acknowledged by {actor}"),
    "update": ("update", "Status update by {actor}"),
    "escalated": ("escalation", "Escalation step taken"),
    "ack-reminder": ("reminder", "Reminder {n}: acknowledged but not resolved"),
    "ack-escalated": ("reminder", "Still not resolved after the reminders: escalated"),
    "update-round": ("update", "Status-update round"),
    "receipt-reminder": ("receipt", "Reminded who has not confirmed receipt"),
    "receipt-overdue": ("receipt", "Receipt deadline passed: liaison told"),
}


def _from_timeline(row: RowMapping, current: int) -> TimelineEntry | None:
    kind, actor, channel = row["kind"], row["actor"], row["channel"]
    if kind == "receipt" or (kind in _HOLD_KINDS and channel == "notifier"):
        return None  # told by the receipts and holds tables
    if kind == "resolved":
        if channel == "event":
            shown, title = "event", "Resolved by its source"
        else:
            shown, title = "resolved", f"Resolved by {actor}"
    else:
        base, step = split_kind(kind)
        shown, template = _EVENT_TITLES.get(base, (base, base.replace("-", " ").capitalize()))
        title = template.format(actor=actor, n=step if step is not None else "")
    detail = row["note"]
    if kind in ("acknowledged", "update") or (kind == "resolved" and channel != "event"):
        via = f"via {channel}"
        detail = f"{detail} ({via})" if detail else via
    return TimelineEntry(
        at=row["at"],
        kind=shown,
        title=title,
        detail=detail,
        actor=actor,
        status=None,
        occurrence=row["occurrence"],
        earlier=row["occurrence"] < current,
    )


_NOTIFICATION_TITLES = {
    "firing": "Page",
    "notice": "Policy notice",
    "resolved": "Resolved notice",
    "acknowledged": "Acknowledgment announcement",
    "escalated": "Escalation step {n} page",
    "ack-reminder": "Resolve reminder {n}",
    "ack-escalated": "Still-unresolved notice",
    "update-due": "Update reminder {n}",
    "status-update": "Status update {n}",
    "receipt-reminder": "Receipt reminder",
    "receipt-overdue": "Overdue receipts notice",
    "unreachable": "Could-not-reach notice",
    "digest": "Digest",
}

_WHY = {
    "held": "held",
    "suppressed": "suppressed",
    "bundled": "bundled into a digest",
    "failed": "failed",
}


def _from_notification(row: RowMapping, current: int) -> TimelineEntry:
    base, step = split_kind(row["kind"])
    label = _NOTIFICATION_TITLES.get(base, base.replace("-", " ").capitalize())
    label = label.format(n=step if step is not None else "").replace("  ", " ")
    title = f"{label} to {row['recipient_name']} by {row['channel']} ({row['tier']})"
    status = row["status"]
    reason, error = row["error_reason"], row["last_error"]
    if status in _WHY:
        cause = ": ".join(part for part in (reason, error) if part)
        detail = f"{_WHY[status]}: {cause}" if cause else _WHY[status]
    elif status == "pending" and (reason or error):
        cause = ": ".join(part for part in (reason, error) if part)
        detail = f"retrying after {cause}"
    elif status == "sent" and row["template_version"]:
        # Which approved words went out: the library versions that rendered it.
        detail = f"in {row['language']}, from {row['template_version']}"
    else:
        detail = None
    # When it was sent, or failed (recorded as its last attempt), or else was written.
    at = row["sent_at"] or (row["next_attempt_at"] if status == "failed" else row["created_at"])
    return TimelineEntry(
        at=at,
        kind="notification",
        title=title,
        detail=detail,
        actor=row["person_id"],
        status=status,
        occurrence=row["occurrence"],
        earlier=row["occurrence"] < current,
    )


_HOLD_REASON = {"silence": "silenced", "inhibition": "inhibited", "flapping": "flapping"}
_HOLD_END = {
    "released": "Hold ended: notifications released",
    "lapsed": "Hold ended: resolved while held, nothing sent",
}


def _from_holds(conn: Connection, alert_id: str, current: int) -> Iterable[TimelineEntry]:
    """A hold starts (or moves to another cause, which the next hold row records, with the
    first cause's start) and ends; an open hold has no end yet."""
    moved_at: dict[int, datetime] = {}
    for row in conn.execute(
        select(holds).where(holds.c.alert_id == alert_id).order_by(holds.c.id)
    ).mappings():
        occurrence, reason = row["occurrence"], _HOLD_REASON.get(row["cause"], row["cause"])
        earlier = occurrence < current
        since = moved_at.pop(occurrence, None)
        yield TimelineEntry(
            at=since or row["held_at"],
            kind="hold",
            title=f"Hold moved: {reason}" if since else f"Held: {reason}",
            detail=row["detail"],
            actor=row["cause_id"],
            status="open" if row["ended_at"] is None else row["outcome"],
            occurrence=occurrence,
            earlier=earlier,
        )
        if row["ended_at"] is None:
            continue
        if row["outcome"] == "moved":
            moved_at[occurrence] = row["ended_at"]
            continue
        yield TimelineEntry(
            at=row["ended_at"],
            kind="hold",
            title=_HOLD_END.get(row["outcome"], f"Hold ended: {row['outcome']}"),
            detail=None,
            actor=None,
            status=row["outcome"],
            occurrence=occurrence,
            earlier=earlier,
        )


def _from_receipts(conn: Connection, alert_id: str, current: int) -> Iterable[TimelineEntry]:
    """Who confirmed receipt (when, how), and who still has not (as of the request)."""
    rows = conn.execute(
        select(
            receipts.c.occurrence,
            receipts.c.person_id,
            receipts.c.tier,
            receipts.c.requested_at,
            receipts.c.deadline_at,
            receipts.c.confirmed_at,
            receipts.c.confirmed_via,
            notifications.c.recipient_name,
        )
        .outerjoin(notifications, notifications.c.id == receipts.c.notification_id)
        .where(receipts.c.alert_id == alert_id)
        .order_by(receipts.c.requested_at, receipts.c.tier, receipts.c.person_id)
    )
    for occurrence, person, tier, requested, deadline, confirmed, via, name in rows:
        who = name or person
        if confirmed is not None:
            at, title, status = confirmed, f"{who} confirmed receipt", "confirmed"
            detail = f"tier {tier}, via {via}" if via else f"tier {tier}"
        else:
            at, title, status = requested, f"Waiting for {who} to confirm receipt", "pending"
            detail = f"tier {tier}, deadline {deadline.isoformat()}"
        yield TimelineEntry(
            at=at,
            kind="receipt",
            title=title,
            detail=detail,
            actor=person,
            status=status,
            occurrence=occurrence,
            earlier=occurrence < current,
        )
