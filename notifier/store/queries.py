"""Read-only views of the store for the command line and the demo."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, select

from notifier.store.database import Database
from notifier.store.schema import alerts, event_keys, notifications, rejections


def recent_alerts(
    db: Database, *, status: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Alerts, newest first, with how many notifications each produced."""
    counts = (
        select(notifications.c.alert_id, func.count().label("n"))
        .group_by(notifications.c.alert_id)
        .subquery()
    )
    query = (
        select(alerts, func.coalesce(counts.c.n, 0).label("notifications"))
        .outerjoin(counts, counts.c.alert_id == alerts.c.id)
        .order_by(alerts.c.updated_at.desc())
        .limit(limit)
    )
    if status:
        query = query.where(alerts.c.status == status)
    with db.engine.connect() as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


def notification_summary(db: Database) -> list[dict[str, Any]]:
    """Every notification with its alert's name, oldest first (for the demo's report)."""
    query = (
        select(
            notifications.c.id,
            notifications.c.kind,
            notifications.c.person_id,
            notifications.c.recipient_name,
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
    for status in ("pending", "sent", "failed"):
        result.setdefault(f"notifications_{status}", 0)
    return result
