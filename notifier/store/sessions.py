"""Console sessions ended by signing out (see ``revoked_sessions`` in the schema).

A row ends one session (by the hash of its secret token), or, signing out everywhere, every
session of a person issued at or before ``revoked_at`` (keyed by :func:`everywhere_key`).
Rows are kept until every session they can end has expired anyway.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import Connection, and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from notifier.store.schema import revoked_sessions

__all__ = ["everywhere_key", "is_revoked", "revoke", "revoke_everywhere"]


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


def everywhere_key(person_id: str) -> str:
    """The row key that ends every earlier session of ``person_id`` (no session's hash: those
    are hashes of random tokens)."""
    return hashlib.sha256(f"everywhere:{person_id}".encode()).hexdigest()


def revoke_everywhere(
    conn: Connection, person_id: str, now: datetime, expires_at: datetime
) -> None:
    """Refuse every session of ``person_id`` issued until ``now`` (on every device);
    ``expires_at``: when the last of them expires anyway."""
    conn.execute(delete(revoked_sessions).where(revoked_sessions.c.expires_at < now))
    key = everywhere_key(person_id)
    moved = conn.execute(
        update(revoked_sessions)
        .where(revoked_sessions.c.session_hash == key)
        .values(revoked_at=now, expires_at=expires_at)
    ).rowcount
    if not moved:
        revoke(conn, key, person_id, now, expires_at)


def is_revoked(conn: Connection, session_hash: str, person_id: str, issued_at: datetime) -> bool:
    """Whether the session (issued to ``person_id`` at ``issued_at``) was ended by signing
    out, of it or everywhere."""
    found = conn.execute(
        select(revoked_sessions.c.session_hash)
        .where(
            or_(
                revoked_sessions.c.session_hash == session_hash,
                and_(
                    revoked_sessions.c.session_hash == everywhere_key(person_id),
                    revoked_sessions.c.revoked_at >= issued_at,
                ),
            )
        )
        .limit(1)
    ).first()
    return found is not None
