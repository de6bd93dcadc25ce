"""Connecting to the database, migrating it, and running transactions.

SQLite runs in WAL mode with ``BEGIN IMMEDIATE`` transactions (the write lock is taken up
front, so two writers queue instead of failing half-way); PostgreSQL runs at READ COMMITTED
and the batch code locks the rows it depends on. The store is synchronous: the async engine
calls it through ``asyncio.to_thread`` so a batch's transaction never blocks the event loop.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url

from notifier.errors import ConfigError


class StaleOffsetsError(Exception):
    """The stored offsets moved on since this batch was read: another consumer processed it."""


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class Database:
    """A SQLAlchemy engine with the pragmas, migrations and transaction style notifier needs."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        try:
            parsed = make_url(url)
        except Exception as exc:  # SQLAlchemy raises ArgumentError; keep the message
            raise ConfigError(f"store.url {url!r} is not a database URL: {exc}") from None
        self.url = parsed
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {
            "echo": echo,
            "json_serializer": _json_dumps,
            "json_deserializer": orjson.loads,
            # Keep a connection for every thread of asyncio's default executor (the store's
            # work runs there) and the event loop: with SQLAlchemy's default of five, the
            # connections beyond it were opened and closed again about twice a second.
            "pool_size": min(32, (os.cpu_count() or 1) + 4) + 1,
        }
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            if parsed.drivername == "postgresql":
                parsed = parsed.set(drivername="postgresql+psycopg")
            kwargs["pool_pre_ping"] = True
            kwargs["isolation_level"] = "READ COMMITTED"
        self.engine: Engine = create_engine(parsed, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_on_connect)
            event.listen(self.engine, "begin", _sqlite_on_begin)

    @property
    def dialect(self) -> str:
        """The backend name: ``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema to ``revision``, by default the newest migration (idempotent)."""
        cfg = Config()
        cfg.set_main_option("script_location", str(files("notifier.store") / "migrations"))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    def tables(self) -> set[str]:
        """The tables that exist (for health checks and tests)."""
        return set(inspect(self.engine).get_table_names())

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A read-only snapshot for pages and reports, which must not hold up ingest.

        On SQLite a deferred transaction: it never takes the write lock (a WAL reader does not
        block the writer), where every other transaction here begins IMMEDIATE. On PostgreSQL
        without JIT compilation: a report's plan can cost more than ``jit_above_cost`` and
        would compile for tens of milliseconds before a query that takes fewer.
        """
        with self.engine.connect() as conn:
            conn.execution_options(notifier_read_only=True)
            if not self.is_sqlite:
                conn.exec_driver_sql("SET LOCAL jit = off")
            yield conn

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's implicit BEGIN is deferred,
    # which would upgrade to a write lock mid-transaction and fail with SQLITE_BUSY).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # NORMAL is durable against process crashes in WAL mode (only a power loss can drop the
    # last transactions), at a fraction of FULL's fsync cost.
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    # The default page cache is 2 MiB; the dedup and alert indexes outgrow it within minutes
    # and every batch then reads pages back through the kernel. 64 MiB keeps them resident.
    cur.execute("PRAGMA cache_size=-65536")
    cur.execute("PRAGMA mmap_size=268435456")
    cur.execute("PRAGMA temp_store=MEMORY")
    # Checkpoint the WAL less often (default 1,000 pages): fewer, larger copies back.
    cur.execute("PRAGMA wal_autocheckpoint=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_on_begin(conn: Connection) -> None:
    read_only = conn.get_execution_options().get("notifier_read_only", False)
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
