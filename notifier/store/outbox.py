"""The delivery side of the store: claiming due notifications and recording what happened.

A claim sets a lease instead of a status: if the process dies mid-send, the lease runs out and
the notification is claimed again (at-least-once; the stable Message-ID lets receivers dedupe).
On PostgreSQL claims use ``FOR UPDATE SKIP LOCKED`` so several instances share the outbox.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    exists,
    func,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from notifier.details import encode
from notifier.directory import Contact
from notifier.intents import notification_id as derive_id
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
    created_at: datetime | None = None
    claimed_at: datetime | None = None


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
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """A new pending row of the notifications table (the outbox) for one recipient, due ``now``.

    ``details`` is what a follow-up says beyond its event (see :mod:`notifier.details`);
    ``created_at`` (default ``now``) orders it among the messages about its alert.
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
        "created_at": created_at or now,
        "details": encode(details) if details else None,
    }


def claim_due(
    conn: Connection, now: datetime, limit: int, lease_seconds: float, *, skip_locked: bool
) -> list[PendingNotification]:
    """Lease up to ``limit`` due notifications, oldest first, and return them."""
    earlier = notifications.alias("earlier")
    due = (
        select(notifications.c.id)
        .where(
            notifications.c.status == "pending",
            notifications.c.next_attempt_at <= now,
            (notifications.c.lease_expires_at.is_(None))
            | (notifications.c.lease_expires_at <= now),
            # Messages about one alert reach one address in the order they were created: a
            # later one waits while an earlier one is still pending (being retried, say).
            ~exists().where(
                earlier.c.alert_id == notifications.c.alert_id,
                earlier.c.channel == notifications.c.channel,
                earlier.c.address == notifications.c.address,
                earlier.c.status == "pending",
                earlier.c.created_at < notifications.c.created_at,
            ),
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
            created_at=r["created_at"],
            claimed_at=now,
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
    mark_sent_many(conn, [Sent(notification_id, now, provider_id, language, template_hash)])


@dataclass(frozen=True, slots=True)
class Sent:
    """A delivery a channel accepted, to be recorded."""

    notification_id: str
    at: datetime
    provider_id: str
    language: str
    template_hash: str
    template_version: str = ""


def mark_sent_many(conn: Connection, sent: Sequence[Sent]) -> None:
    """Record several accepted deliveries in one statement."""
    if not sent:
        return
    conn.execute(
        update(notifications)
        .where(notifications.c.id == bindparam("b_id"))
        .values(
            status="sent",
            sent_at=bindparam("b_at"),
            provider_id=bindparam("b_provider"),
            language=bindparam("b_language"),
            template_hash=bindparam("b_hash"),
            template_version=bindparam("b_version"),
            lease_expires_at=None,
            error_reason=None,
            last_error=None,
        ),
        [
            {
                "b_id": s.notification_id,
                "b_at": s.at,
                "b_provider": s.provider_id,
                "b_language": s.language,
                "b_hash": s.template_hash,
                "b_version": s.template_version or None,
            }
            for s in sent
        ],
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


def fall_back(
    conn: Connection, notification_id: str, contact: Contact, now: datetime, *, reason: str
) -> str | None:
    """Record that ``notification_id`` failed and queue the same message for ``contact``
    (the person's next way to be reached); return the new notification's id, or None if
    that contact already has it."""
    row = (
        conn.execute(select(notifications).where(notifications.c.id == notification_id))
        .mappings()
        .one()
    )
    new_id = derive_id(
        row["alert_id"], row["occurrence"], row["kind"], row["person_id"], contact.channel.value
    )
    copy = {
        **dict(row),
        "id": new_id,
        "channel": contact.channel.value,
        "address": contact.address,
        "status": "pending",
        "dispatches": 0,
        "next_attempt_at": now,
        "lease_expires_at": None,
        "error_reason": None,
        "last_error": None,
        "created_at": now,
        "sent_at": None,
        "language": None,
        "template_hash": None,
        "template_version": None,
        "provider_id": None,
    }
    insert_ = sqlite_insert if conn.dialect.name == "sqlite" else postgresql_insert
    done = conn.execute(insert_(notifications).values(copy).on_conflict_do_nothing())
    mark_failed(
        conn,
        notification_id,
        now,
        reason=reason,
        error=f"gave up on {row['channel']}; sent to the next contact ({contact.channel.value})",
    )
    return new_id if done.rowcount else None


def thread_of(
    conn: Connection, alert_id: str, occurrence: int, channel: str, address: str
) -> str | None:
    """The provider id of the page (or notice) that opened an alert occurrence at this
    address: Slack threads the later messages about it under that one."""
    value: str | None = conn.scalar(
        select(notifications.c.provider_id)
        .where(
            notifications.c.alert_id == alert_id,
            notifications.c.occurrence == occurrence,
            notifications.c.channel == channel,
            notifications.c.address == address,
            notifications.c.status == "sent",
            or_(
                notifications.c.kind.in_(("firing", "notice")),
                notifications.c.kind.startswith("escalated-"),
            ),
        )
        .order_by(notifications.c.created_at, notifications.c.sent_at)
        .limit(1)
    )
    return value


def tell_unreachable(
    conn: Connection,
    failed_id: str,
    recipients: Sequence[Recipient],
    now: datetime,
    details: Mapping[str, Any],
) -> int:
    """Queue, for each of ``recipients``, a message saying the person ``failed_id`` was for
    could not be reached (once per alert occurrence, person and recipient); return how many."""
    row = conn.execute(
        select(
            notifications.c.alert_id,
            notifications.c.occurrence,
            notifications.c.event_key,
            notifications.c.person_id,
        ).where(notifications.c.id == failed_id)
    ).one()
    alert_id, occurrence, event_key, person_id = row
    # One kind per unreachable person (kinds are part of the uniqueness key), short enough.
    kind = "unreachable:" + hashlib.blake2b(person_id.encode(), digest_size=8).hexdigest()
    values = [
        notification_row(
            derive_id(alert_id, occurrence, kind, r.person.id, r.contact.channel.value),
            alert_id=alert_id,
            occurrence=occurrence,
            kind=kind,
            event_key=event_key,
            recipient=r,
            now=now,
            details=details,
        )
        for r in recipients
        if r.person.id != person_id
    ]
    if not values:
        return 0
    insert_ = sqlite_insert if conn.dialect.name == "sqlite" else postgresql_insert
    done = conn.execute(insert_(notifications).on_conflict_do_nothing(), values)
    return max(done.rowcount, 0)
