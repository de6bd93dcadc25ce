"""Read-only views of the store for the command line and the demo."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, select, type_coerce

from notifier.store.database import Database
from notifier.store.receipts import receipt_status
from notifier.store.schema import (
    UTCDateTime,
    alerts,
    event_keys,
    holds,
    notifications,
    rejections,
    timers,
)
from notifier.store.timeline import find_alert_id, timeline


def notification_summary(db: Database) -> list[dict[str, Any]]:
    """Every notification with its alert's name, oldest first (for the demo's report)."""
    query = (
        select(
            notifications.c.id,
            notifications.c.kind,
            notifications.c.person_id,
            notifications.c.recipient_name,
            notifications.c.channel,
            notifications.c.address,
            notifications.c.tier,
            notifications.c.template,
            notifications.c.clearance,
            notifications.c.locale,
            notifications.c.language,
            notifications.c.status,
            notifications.c.error_reason,
            alerts.c.name.label("alert_name"),
        )
        .join(alerts, alerts.c.id == notifications.c.alert_id)
        .order_by(
            alerts.c.created_at,
            alerts.c.name,
            case({"resolved": 1}, value=notifications.c.kind, else_=0),
            notifications.c.recipient_name,
        )
    )
    with db.engine.connect() as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


def counts(db: Database) -> dict[str, int]:
    """Counts of accepted events, alerts, rejections and notifications by status."""
    with db.engine.connect() as conn:
        result = {
            "events": conn.scalar(select(func.count()).select_from(event_keys)) or 0,
            "alerts": conn.scalar(select(func.count()).select_from(alerts)) or 0,
            "rejections": conn.scalar(select(func.count()).select_from(rejections)) or 0,
        }
        for status, n in conn.execute(
            select(notifications.c.status, func.count()).group_by(notifications.c.status)
        ):
            result[f"notifications_{status}"] = n
        result["digests_pending"] = (
            conn.scalar(
                select(func.count()).where(
                    notifications.c.kind.startswith("digest:"),
                    notifications.c.status == "pending",
                )
            )
            or 0
        )
    for status in ("pending", "sent", "failed"):
        result.setdefault(f"notifications_{status}", 0)
    return result


def list_alerts(
    db: Database, *, state: str | None = None, severity: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Alerts, most recently updated first, with how many notifications each produced."""
    sent = (
        select(notifications.c.alert_id, func.count().label("n"))
        .group_by(notifications.c.alert_id)
        .subquery()
    )
    query = (
        select(alerts, func.coalesce(sent.c.n, 0).label("notifications"))
        .outerjoin(sent, sent.c.alert_id == alerts.c.id)
        .order_by(alerts.c.updated_at.desc())
        .limit(limit)
    )
    if state:
        query = query.where(alerts.c.status == state)
    if severity:
        query = query.where(alerts.c.severity == severity)
    with db.engine.connect() as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


def alert_detail(db: Database, ref: str) -> dict[str, Any]:
    """One alert with its timeline and notifications; AlertNotFound if there is none."""
    with db.engine.connect() as conn:
        alert_id = find_alert_id(conn, ref)
        row = dict(conn.execute(select(alerts).where(alerts.c.id == alert_id)).mappings().one())
        row["timeline"] = timeline(conn, alert_id)
        row["notifications"] = [
            dict(n)
            for n in conn.execute(
                select(
                    notifications.c.id,
                    notifications.c.occurrence,
                    notifications.c.kind,
                    notifications.c.person_id,
                    notifications.c.channel,
                    notifications.c.tier,
                    notifications.c.status,
                    notifications.c.language,
                    notifications.c.sent_at,
                    notifications.c.error_reason,
                    notifications.c.last_error,
                )
                .where(notifications.c.alert_id == alert_id)
                .order_by(notifications.c.created_at, notifications.c.person_id)
            ).mappings()
        ]
        row["receipts"] = receipt_status(conn, alert_id, row["occurrence"])
        row["holds"] = [
            dict(h)
            for h in conn.execute(
                select(
                    holds.c.occurrence,
                    holds.c.cause,
                    holds.c.cause_id,
                    holds.c.detail,
                    holds.c.held_at,
                    holds.c.ended_at,
                    holds.c.outcome,
                )
                .where(holds.c.alert_id == alert_id)
                .order_by(holds.c.id)
            ).mappings()
        ]
    return row


def metrics_snapshot(db: Database) -> dict[str, Any]:
    """The figures ``/metrics`` exposes, in one read."""
    with db.engine.connect() as conn:
        snap: dict[str, Any] = {
            "events": conn.scalar(select(func.count()).select_from(event_keys)) or 0,
            "rejections": conn.scalar(select(func.count()).select_from(rejections)) or 0,
        }
        snap["notifications"] = {
            (channel, status): n
            for channel, status, n in conn.execute(
                select(notifications.c.channel, notifications.c.status, func.count()).group_by(
                    notifications.c.channel, notifications.c.status
                )
            )
        }
        snap["open_alerts"] = {
            (severity, status): n
            for severity, status, n in conn.execute(
                select(alerts.c.severity, alerts.c.status, func.count())
                .where(alerts.c.status != "resolved")
                .group_by(alerts.c.severity, alerts.c.status)
            )
        }
        acked = conn.execute(
            select(alerts.c.starts_at, alerts.c.acknowledged_at).where(
                alerts.c.acknowledged_at.is_not(None)
            )
        ).all()
        snap["time_to_ack"] = [(a - s).total_seconds() for s, a in acked if s is not None]
        snap["suppressed"] = {
            (reason or "other", status): n
            for reason, status, n in conn.execute(
                select(notifications.c.error_reason, notifications.c.status, func.count())
                .where(notifications.c.status.in_(("held", "suppressed", "bundled")))
                .group_by(notifications.c.error_reason, notifications.c.status)
            )
        }
        earliest = func.min(timers.c.due_at)
        snap["earliest_due_timer"] = conn.execute(
            select(type_coerce(earliest, UTCDateTime())).where(timers.c.state == "pending")
        ).scalar()
    return snap
