"""The durable store: one schema (Alembic migrations) on SQLite or PostgreSQL, one access layer."""

from notifier.store.database import Database, StaleOffsetsError

__all__ = ["Database", "StaleOffsetsError"]
