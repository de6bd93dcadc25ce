"""Console sessions ended by signing out (see ``revoked_sessions`` in the schema)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.exc import IntegrityError

from notifier.store.schema import revoked_sessions

__all__ = ["is_revoked", "revoke"]


def revoke(
    conn: Connection, session_hash: str, person_id: str, now: datetime, expires_at: datetime
) -> None:
    """Refuse this session from now on (idempotent); forget sessions expired anyway."""
    conn.execute(delete(revoked_sessions).where(revoked_sessions.c.expires_at < now))
    try:
        with conn.begin_nested():
            conn.execute(
                insert(revoked_sessions).values(
                    session_hash=session_hash,
                    person_id=person_id,
                    revoked_at=now,
                    expires_at=expires_at,
                )
            )
    except IntegrityError:
        pass  # signed out twice (two tabs): already refused


def is_revoked(conn: Connection, session_hash: str) -> bool:
    """Whether the session was ended by signing out."""
    found = conn.execute(
        select(revoked_sessions.c.session_hash).where(
            revoked_sessions.c.session_hash == session_hash
        )
    ).first()
    return found is not None
