"""The delivery side of the store: claiming due notifications and recording what happened.

A claim sets a lease instead of a status: if the process dies mid-send, the lease runs out and
the notification is claimed again (at-least-once; the stable Message-ID lets receivers dedupe).
On PostgreSQL claims use ``FOR UPDATE SKIP LOCKED`` so several instances share the outbox.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select, type_coerce, update

from notifier.details import encode
from notifier.routing import Recipient
from notifier.store.schema import UTCDateTime, alerts, events, notifications


@dataclass(frozen=True, slots=True)
class PendingNotification:
    """A claimed notification with what rendering it needs."""

    id: str
    alert_id: str
    fingerprint: str
    occurrence: int
    kind: str
    person_id: str
    channel: str
    address: str
    recipient_name: str
    tier: str
    template: str
    clearance: str
    locale: str
    timezone: str
    dispatches: int
    payload: dict[str, Any]
    details: dict[str, Any] | None = None


def notification_row(
    notification_id: str,
    *,
    alert_id: str,
    occurrence: int,
    kind: str,
    event_key: str,
    recipient: Recipient,
    now: datetime,
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A new pending row of the notifications table (the outbox) for one recipient.

    ``details`` is what a follow-up says beyond its event (see :mod:`notifier.details`).
    """
    return {
        "id": notification_id,
        "alert_id": alert_id,
        "occurrence": occurrence,
        "kind": kind,
        "event_key": event_key,
        "person_id": recipient.person.id,
        "channel": recipient.contact.channel.value,
        "address": recipient.contact.address,
        "recipient_name": recipient.person.name,
        "tier": recipient.tier,
        "rule": recipient.rule,
        "template": recipient.template,
        "clearance": recipient.clearance.value,
        "locale": recipient.person.locale,
        "timezone": recipient.person.timezone,
        "status": "pending",
        "dispatches": 0,
        "next_attempt_at": now,
        "created_at": now,
        "details": encode(details) if details else None,
    }


def claim_due(
    conn: Connection, now: datetime, limit: int, lease_seconds: float, *, skip_locked: bool
) -> list[PendingNotification]:
    """Lease up to ``limit`` due notifications, oldest first, and return them."""
    due = (
        select(notifications.c.id)
        .where(
            notifications.c.status == "pending",
            notifications.c.next_attempt_at <= now,
            (notifications.c.lease_expires_at.is_(None))
            | (notifications.c.lease_expires_at <= now),
        )
        .order_by(notifications.c.next_attempt_at, notifications.c.created_at)
        .limit(limit)
    )
    if skip_locked:
        due = due.with_for_update(skip_locked=True)
    ids = list(conn.scalars(due))
    if not ids:
        return []
    conn.execute(
        update(notifications)
        .where(notifications.c.id.in_(ids))
        .values(
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            dispatches=notifications.c.dispatches + 1,
        )
    )
    rows = conn.execute(
        select(
            notifications,
            alerts.c.fingerprint,
            events.c.payload,
        )
        .join(alerts, alerts.c.id == notifications.c.alert_id)
        .join(events, events.c.event_key == notifications.c.event_key)
        .where(notifications.c.id.in_(ids))
        .order_by(notifications.c.next_attempt_at, notifications.c.created_at)
    ).mappings()
    return [
        PendingNotification(
            id=r["id"],
            alert_id=r["alert_id"],
            fingerprint=r["fingerprint"],
            occurrence=r["occurrence"],
            kind=r["kind"],
            person_id=r["person_id"],
            channel=r["channel"],
            address=r["address"],
            recipient_name=r["recipient_name"],
            tier=r["tier"],
            template=r["template"],
            clearance=r["clearance"],
            locale=r["locale"],
            timezone=r["timezone"],
            dispatches=r["dispatches"],
            payload=r["payload"],
            details=r["details"],
        )
        for r in rows
    ]


def mark_sent(
    conn: Connection,
    notification_id: str,
    now: datetime,
    *,
    provider_id: str,
    language: str,
    template_hash: str,
) -> None:
    """Record a delivery the channel accepted."""
    conn.execute(
        update(notifications)
        .where(notifications.c.id == notification_id)
        .values(
            status="sent",
            sent_at=now,
            provider_id=provider_id,
            language=language,
            template_hash=template_hash,
            lease_expires_at=None,
            error_reason=None,
            last_error=None,
        )
    )


def mark_failed(
    conn: Connection, notification_id: str, now: datetime, *, reason: str, error: str
) -> None:
    """Record that a notification will not be delivered, and why."""
    conn.execute(
        update(notifications)
        .where(notifications.c.id == notification_id)
        .values(
            status="failed",
            error_reason=reason,
            last_error=error,
            lease_expires_at=None,
            sent_at=None,
            next_attempt_at=now,
        )
    )


def reschedule(
    conn: Connection, notification_id: str, at: datetime, *, reason: str, error: str
) -> None:
    """Put a notification back in the outbox, due again at ``at``."""
    conn.execute(
        update(notifications)
        .where(notifications.c.id == notification_id)
        .values(next_attempt_at=at, lease_expires_at=None, error_reason=reason, last_error=error)
    )


def next_due(conn: Connection) -> datetime | None:
    """When the earliest pending notification becomes due (or its lease runs out)."""
    earliest = func.min(
        func.coalesce(notifications.c.lease_expires_at, notifications.c.next_attempt_at)
    )
    query = select(type_coerce(earliest, UTCDateTime())).where(notifications.c.status == "pending")
    value: datetime | None = conn.execute(query).scalar()
    return value
