"""Alembic environment: migrations run on the connection the store hands over."""

from __future__ import annotations

from alembic import context

from notifier.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through notifier (Database.migrate), not bare alembic")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
