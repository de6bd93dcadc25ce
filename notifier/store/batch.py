"""The ingest side of the store: everything one consumed batch reads and writes.

All functions take the open connection of the batch's single transaction, so a batch's
alerts, event records, notifications, rejections **and its consumed offsets** commit together.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    case,
    func,
    insert,
    null,
    select,
    update,
)
from sqlalchemy.types import TypeEngine

from notifier.correlate import AlertHead, Correlation, Effect
from notifier.intents import Intent, ReceiptRequest, Timer
from notifier.store.bulk import Bulk
from notifier.store.fatigue import Decision
from notifier.store.offsets import advance_offsets
from notifier.store.outbox import notification_row
from notifier.store.schema import (
    UTCDateTime,
    alert_timeline,
    alerts,
    event_keys,
    events,
    notifications,
    receipts,
    rejections,
)
from notifier.store.timers import write_timers

# SQLite allows 32,766 bound parameters per statement; stay far below for IN lists.
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record refused at ingest, kept in the store next to its dead-letter copy."""

    topic: str
    partition: int
    offset: int
    code: str
    detail: str


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def seen_event_keys(conn: Connection, keys: Sequence[str]) -> set[str]:
    """Return which of ``keys`` the store already processed."""
    seen: set[str] = set()
    for chunk in _chunks(keys):
        seen.update(
            conn.scalars(select(event_keys.c.event_key).where(event_keys.c.event_key.in_(chunk)))
        )
    return seen


def alert_heads(conn: Connection, fingerprints: Sequence[str], lock: bool) -> dict[str, AlertHead]:
    """Return the heads of the stored alerts for ``fingerprints`` (locked on PostgreSQL)."""
    found: dict[str, AlertHead] = {}
    for chunk in _chunks(fingerprints):
        query = select(alerts.c.id, alerts.c.fingerprint, alerts.c.status, alerts.c.occurrence)
        query = query.where(alerts.c.fingerprint.in_(chunk))
        if lock:
            query = query.with_for_update()
        for row in conn.execute(query):
            found[row[1]] = AlertHead(*row)
    return found


def write_batch(
    conn: Connection,
    *,
    correlation: Correlation,
    intents: Sequence[Intent],
    rejected: Sequence[Rejection],
    decisions: Mapping[str, Decision] | None = None,
    scheduled: Sequence[Timer] = (),
    receipts_asked: Sequence[ReceiptRequest] = (),
    group: str,
    topic: str,
    next_offsets: Mapping[int, int],
    stored_offsets: Mapping[int, int],
    now: datetime,
) -> None:
    """Write every effect of a batch and advance its offsets (inside the caller's transaction).

    ``decisions`` (from :func:`notifier.store.fatigue.gate_batch`) names the notifications
    held back into digests; they are written ``bundled``."""
    _write_alerts(conn, correlation)
    _INSERT_EVENT_KEYS.run(
        conn, [{"event_key": r.key, "received_at": now} for r in correlation.records]
    )
    _INSERT_EVENTS.run(
        conn,
        [
            {
                "event_key": r.key,
                "source": r.positioned.event.source,
                "id": r.positioned.event.id,
                "type": r.positioned.event.type,
                "fingerprint": r.positioned.event.fingerprint,
                "alert_id": r.alert_id,
                "effect": r.effect.value,
                "event_time": r.positioned.event.time,
                "received_at": now,
                "topic": r.positioned.topic,
                "partition": r.positioned.partition,
                "offset": r.positioned.offset,
                "payload": r.positioned.event.to_cloudevent(),
            }
            for r in correlation.records
            if r.effect is not Effect.REPEAT
        ],
    )
    decided = decisions or {}
    _INSERT_NOTIFICATIONS.run(conn, [_intent_row(i, decided.get(i.id)) for i in intents])
    write_timers(conn, scheduled)
    if receipts_asked:
        conn.execute(
            insert(receipts),
            [
                {
                    "notification_id": r.notification_id,
                    "alert_id": r.alert_id,
                    "occurrence": r.occurrence,
                    "person_id": r.person_id,
                    "tier": r.tier,
                    "requested_at": r.requested_at,
                    "deadline_at": r.deadline_at,
                }
                for r in receipts_asked
            ],
        )
    _INSERT_TIMELINE.run(
        conn,
        [
            {
                "alert_id": t.alert.id,
                "occurrence": t.alert.occurrence,
                "at": now,
                "kind": _TIMELINE_KIND[t.effect],
                "actor": t.event.source,
                "channel": "event",
                "event_key": t.event_key,
            }
            for t in correlation.transitions
        ],
    )
    _INSERT_REJECTIONS.run(
        conn,
        [
            {
                "topic": r.topic,
                "partition": r.partition,
                "offset": r.offset,
                "code": r.code,
                "detail": r.detail,
                "received_at": now,
            }
            for r in rejected
        ],
    )
    advance_offsets(conn, group, topic, next_offsets, stored_offsets, now)


def _write_alerts(conn: Connection, c: Correlation) -> None:
    _INSERT_ALERTS.run(
        conn,
        [
            {
                "id": a.id,
                "fingerprint": a.fingerprint,
                "kind": a.kind,
                "status": a.status,
                "occurrence": a.occurrence,
                "name": a.name,
                "severity": a.severity,
                "risk": a.risk,
                "labels": dict(a.labels),
                "summary": a.summary,
                "starts_at": a.starts_at,
                "ends_at": a.ends_at,
                "created_at": a.created_at,
                "updated_at": a.updated_at,
                "event_count": a.event_count,
                "last_event_key": a.last_event_key,
            }
            for a in c.inserts.values()
        ],
    )
    _REWRITE_ALERTS.run(
        conn,
        [
            {
                "b_id": alert_id,
                "b_status": w.status,
                "b_occurrence": w.occurrence,
                "b_severity": w.severity,
                "b_risk": w.risk,
                "b_summary": w.summary,
                "b_starts_at": w.starts_at,
                "b_ends_at": w.ends_at,
            }
            for alert_id, w in c.rewrites.items()
        ],
    )
    _TOUCH_ALERTS.run(
        conn,
        [
            {
                "b_id": alert_id,
                "b_count": t.count,
                "b_updated_at": t.updated_at,
                "b_last_event_key": t.last_event_key,
                "b_summary": t.summary,
            }
            for alert_id, t in c.touches.items()
        ],
    )


def _types(table: Table, prefix: str = "") -> dict[str, TypeEngine[Any]]:
    return {f"{prefix}{c.name}": c.type for c in table.columns}


_TIMELINE_KIND = {Effect.FIRING: "triggered", Effect.RESOLVED: "resolved", Effect.NOTICE: "notice"}
_TIMELINE_COLUMNS = (
    "alert_id",
    "occurrence",
    "at",
    "kind",
    "actor",
    "channel",
    "note",
    "event_key",
)
_INSERT_TIMELINE = Bulk(
    insert(alert_timeline).values({c: bindparam(c) for c in _TIMELINE_COLUMNS}),
    _types(alert_timeline),
)
_INSERT_EVENT_KEYS = Bulk(insert(event_keys), _types(event_keys))
_INSERT_EVENTS = Bulk(insert(events), _types(events))
_INSERT_ALERTS = Bulk(insert(alerts), _types(alerts))
_INSERT_NOTIFICATIONS = Bulk(insert(notifications), _types(notifications))
_INSERT_REJECTIONS = Bulk(
    insert(rejections).values(
        {c: bindparam(c) for c in ("topic", "partition", "offset", "code", "detail", "received_at")}
    ),
    _types(rejections),
)
_REWRITE_ALERTS = Bulk(
    update(alerts)
    .where(alerts.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        occurrence=bindparam("b_occurrence"),
        severity=bindparam("b_severity"),
        risk=bindparam("b_risk"),
        summary=bindparam("b_summary"),
        # A resolve that does not say when the alert started keeps the stored start.
        starts_at=func.coalesce(bindparam("b_starts_at", type_=UTCDateTime()), alerts.c.starts_at),
        ends_at=bindparam("b_ends_at"),
        # A new occurrence starts unacknowledged; a resolve keeps who had taken charge.
        acknowledged_by=case(
            (bindparam("b_status", type_=String()) == "firing", null()),
            else_=alerts.c.acknowledged_by,
        ),
        acknowledged_at=case(
            (bindparam("b_status", type_=String()) == "firing", null()),
            else_=alerts.c.acknowledged_at,
        ),
    ),
    _types(alerts, "b_"),
)
_TOUCH_ALERTS = Bulk(
    update(alerts)
    .where(alerts.c.id == bindparam("b_id"))
    .values(
        event_count=alerts.c.event_count + bindparam("b_count", type_=Integer()),
        updated_at=bindparam("b_updated_at"),
        last_event_key=bindparam("b_last_event_key"),
        summary=func.coalesce(bindparam("b_summary", type_=Text()), alerts.c.summary),
    ),
    {**_types(alerts, "b_"), "b_count": Integer()},
)


def _intent_row(intent: Intent, decision: Decision | None) -> dict[str, Any]:
    alert = intent.transition.alert
    row = notification_row(
        intent.id,
        alert_id=alert.id,
        occurrence=alert.occurrence,
        kind=intent.transition.effect.value,
        event_key=intent.transition.event_key,
        recipient=intent.recipient,
        now=intent.due_at,
        created_at=intent.created_at,
    )
    if decision is not None:  # held back into a digest (fatigue control)
        row.update(status="bundled", error_reason=decision.reason, last_error=decision.note)
    return row
