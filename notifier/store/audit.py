"""The audit log: who did what, when. Append-only: the engine inserts and never changes rows."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from notifier.store.schema import audit_log

__all__ = ["entries", "record"]


def record(
    conn: Connection,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Append one entry (inside the transaction that made the change it records)."""
    conn.execute(
        insert(audit_log).values(
            at=at,
            actor=actor[:64],
            action=action[:64],
            subject=subject[:128],
            details=dict(details) if details is not None else None,
        )
    )


def entries(
    conn: Connection,
    *,
    action: str | None = None,
    subject: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    address: str | None = None,
    limit: int | None = 500,
) -> list[dict[str, Any]]:
    """The newest entries first, optionally only one action (prefix, e.g. ``silence.``), one
    subject, one actor, a time range (``since`` inclusive, ``until`` exclusive), or one client
    address (``details["address"]``, as sign-ins record it)."""
    query = select(audit_log).order_by(audit_log.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    if action:
        query = query.where(audit_log.c.action.startswith(action, autoescape=True))
    if subject:
        query = query.where(audit_log.c.subject == subject)
    if actor:
        query = query.where(audit_log.c.actor == actor)
    if since is not None:
        query = query.where(audit_log.c.at >= since)
    if until is not None:
        query = query.where(audit_log.c.at < until)
    if address is not None:
        query = query.where(audit_log.c.details["address"].as_string() == address)
    return [dict(row) for row in conn.execute(query).mappings()]
