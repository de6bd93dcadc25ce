"""Stakeholder receipts: who must confirm a policy notice, and who has."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, insert, select, update

from notifier.store.schema import alert_timeline, receipts


class Confirmation(StrEnum):
    """What confirming did."""

    CONFIRMED = "confirmed"
    ALREADY = "already confirmed"
    NOT_ASKED = "not asked"


def confirm_receipt(
    conn: Connection, alert_id: str, occurrence: int, person_id: str, at: datetime, via: str
) -> Confirmation:
    """Record that ``person_id`` received the notice (idempotent: the first time counts)."""
    row = conn.execute(
        select(receipts.c.notification_id, receipts.c.confirmed_at).where(
            receipts.c.alert_id == alert_id,
            receipts.c.occurrence == occurrence,
            receipts.c.person_id == person_id,
        )
    ).first()
    if row is None:
        return Confirmation.NOT_ASKED
    if row[1] is not None:
        return Confirmation.ALREADY
    done = conn.execute(
        update(receipts)
        .where(receipts.c.notification_id == row[0], receipts.c.confirmed_at.is_(None))
        .values(confirmed_at=at, confirmed_via=via)
    )
    if done.rowcount == 0:  # a concurrent confirmation won
        return Confirmation.ALREADY
    conn.execute(
        insert(alert_timeline).values(
            alert_id=alert_id,
            occurrence=occurrence,
            at=at,
            kind="receipt",
            actor=person_id,
            channel=via,
            note="confirmed receipt",
        )
    )
    return Confirmation.CONFIRMED


def receipt_status(conn: Connection, alert_id: str, occurrence: int) -> dict[str, Any] | None:
    """Who has and has not confirmed receipt of an occurrence (None if nobody was asked)."""
    rows = conn.execute(
        select(receipts)
        .where(receipts.c.alert_id == alert_id, receipts.c.occurrence == occurrence)
        .order_by(receipts.c.tier, receipts.c.person_id)
    ).mappings()
    confirmed, pending = [], []
    for r in rows:
        entry = {"person": r["person_id"], "tier": r["tier"], "deadline_at": r["deadline_at"]}
        if r["confirmed_at"] is not None:
            confirmed.append({**entry, "at": r["confirmed_at"], "via": r["confirmed_via"]})
        else:
            pending.append(entry)
    if not confirmed and not pending:
        return None
    return {"confirmed": confirmed, "pending": pending}
