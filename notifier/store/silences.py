"""Silences in the store: create, expire, list; and applying them to firing alerts.

Creating or expiring a silence is audited in the same transaction. A silence that is active
when created holds the matching alerts that fire already (their unsent notifications and
their escalation wait); one that starts later is applied by the hold keeper when it starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from notifier.inhibition import InhibitRule
from notifier.silences import Silence, SilenceRefused, SilenceState, alert_labels
from notifier.store import audit
from notifier.store.holds import (
    SILENCE,
    Cause,
    HoldOutcome,
    hold,
    open_holds,
    reconsider,
    silence_from_row,
)
from notifier.store.schema import alerts, holds, silences

__all__ = [
    "apply_silence",
    "create_silence",
    "expire_silence",
    "get_silence",
    "list_silences",
    "next_change",
    "release_ended",
]


def create_silence(conn: Connection, silence: Silence, now: datetime) -> HoldOutcome:
    """Store a new silence, audit it, and hold what it covers if it is active already."""
    conn.execute(
        insert(silences).values(
            id=silence.id,
            matchers=[str(m) for m in silence.matchers],
            starts_at=silence.starts_at,
            ends_at=silence.ends_at,
            created_by=silence.created_by,
            comment=silence.comment,
            created_at=silence.created_at,
        )
    )
    audit.record(
        conn,
        now,
        silence.created_by,
        "silence.create",
        silence.id,
        {
            "matchers": [str(m) for m in silence.matchers],
            "starts_at": silence.starts_at.isoformat(),
            "ends_at": silence.ends_at.isoformat(),
            "comment": silence.comment,
        },
    )
    if silence.state(now) is SilenceState.ACTIVE:
        return apply_silence(conn, silence, now)
    return HoldOutcome()


def apply_silence(conn: Connection, silence: Silence, now: datetime) -> HoldOutcome:
    """Hold the firing alerts ``silence`` covers that nothing holds yet."""
    outcome = HoldOutcome()
    rows = conn.execute(
        select(
            alerts.c.id, alerts.c.occurrence, alerts.c.name, alerts.c.severity, alerts.c.labels
        ).where(alerts.c.status == "firing", alerts.c.kind == "alert")
    ).all()
    covered = [
        (alert_id, occurrence)
        for alert_id, occurrence, name, severity, labels in rows
        if silence.covers(alert_labels(name, severity, labels or {}), now)
    ]
    held = open_holds(conn, (a for a, _ in covered))
    cause = Cause(SILENCE, silence.id, silence.describe())
    for alert_id, occurrence in covered:
        if (alert_id, occurrence) not in held:
            hold(conn, alert_id, occurrence, cause, now)
            outcome.held += 1
            outcome.reasons[cause.reason] = outcome.reasons.get(cause.reason, 0) + 1
    return outcome


def get_silence(conn: Connection, silence_id: str) -> Silence | None:
    """One silence by id, or None."""
    row = conn.execute(select(silences).where(silences.c.id == silence_id)).mappings().first()
    return silence_from_row(row) if row is not None else None


def list_silences(
    conn: Connection, now: datetime, state: SilenceState | None = None, limit: int = 1000
) -> list[Silence]:
    """Silences, newest first; only those in ``state`` at ``now`` if given."""
    query = select(silences).order_by(silences.c.created_at.desc(), silences.c.id)
    live = (silences.c.ends_at > now) & silences.c.expired_at.is_(None)
    if state is SilenceState.EXPIRED:
        query = query.where(~live)
    elif state is SilenceState.ACTIVE:
        query = query.where(live, silences.c.starts_at <= now)
    elif state is SilenceState.PENDING:
        query = query.where(live, silences.c.starts_at > now)
    return [silence_from_row(r) for r in conn.execute(query.limit(limit)).mappings()]


def expire_silence(
    conn: Connection, silence_id: str, by: str, now: datetime, rules: Sequence[InhibitRule]
) -> tuple[Silence, HoldOutcome]:
    """End a silence now, audit it, and release (or re-hold) what it was holding."""
    silence = get_silence(conn, silence_id)
    if silence is None:
        raise SilenceRefused(f"no silence {silence_id!r}; `notifier silence list` shows them")
    if silence.state(now) is SilenceState.EXPIRED:
        raise SilenceRefused(f"silence {silence_id} is already over")
    # Conditional, so of two concurrent expiries exactly one wins (and is audited).
    changed = conn.execute(
        update(silences)
        .where(
            silences.c.id == silence_id,
            silences.c.expired_at.is_(None),
            silences.c.ends_at > now,
        )
        .values(expired_at=now, expired_by=by)
    ).rowcount
    if changed != 1:
        raise SilenceRefused(f"silence {silence_id} is already over")
    audit.record(conn, now, by, "silence.expire", silence_id, {"comment": silence.comment})
    rows = conn.execute(
        select(holds.c.id, holds.c.alert_id, holds.c.occurrence, holds.c.held_at).where(
            holds.c.ended_at.is_(None), holds.c.cause == SILENCE, holds.c.cause_id == silence_id
        )
    ).all()
    outcome = reconsider(conn, [tuple(r) for r in rows], now, rules)
    expired = get_silence(conn, silence_id)
    assert expired is not None
    return expired, outcome


def release_ended(conn: Connection, now: datetime, rules: Sequence[InhibitRule]) -> HoldOutcome:
    """Reconsider the alerts held by silences that have ended by ``now``."""
    ended = select(silences.c.id).where(
        (silences.c.ends_at <= now) | (silences.c.expired_at.is_not(None))
    )
    rows = conn.execute(
        select(holds.c.id, holds.c.alert_id, holds.c.occurrence, holds.c.held_at).where(
            holds.c.ended_at.is_(None),
            holds.c.cause == SILENCE,
            holds.c.cause_id.in_(ended.scalar_subquery()),
        )
    ).all()
    return reconsider(conn, [tuple(r) for r in rows], now, rules)


def next_change(conn: Connection, now: datetime) -> datetime | None:
    """When a silence next starts or ends (the hold keeper wakes then), or None."""
    found: datetime | None = None
    for starts_at, ends_at in conn.execute(
        select(silences.c.starts_at, silences.c.ends_at).where(
            silences.c.ends_at > now, silences.c.expired_at.is_(None)
        )
    ):
        moment = starts_at if starts_at > now else ends_at
        found = moment if found is None else min(found, moment)
    return found
