"""Shared pytest fixtures: real local servers, started per test and always stopped."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from notifier.broker import EmbeddedBroker
from notifier.mailcatcher import MailCatcher
from notifier.settings import SmtpSettings
from notifier.store import Database


@pytest.fixture
async def mailcatcher(tmp_path: Path) -> AsyncIterator[MailCatcher]:
    """A real aiosmtpd server on a free loopback port, saving .eml files under tmp_path/mail."""
    async with MailCatcher(tmp_path / "mail") as catcher:
        yield catcher


@pytest.fixture
def smtp_settings(mailcatcher: MailCatcher) -> SmtpSettings:
    """SMTP settings pointing at the mailcatcher fixture, with short timeouts."""
    return SmtpSettings(
        host=mailcatcher.host,
        port=mailcatcher.port,
        starttls=False,
        timeout_seconds=2.0,
        sender="Notifier <notifier@example.org>",
        message_id_domain="notifier.test",
    )


# --- broker, store and configuration fixtures ------------------------------------------------


PG_ADMIN_DSN = os.environ.get("NOTIFIER_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """A real Tansu broker (Kafka protocol) for the whole test session."""
    with EmbeddedBroker() as running:
        yield running


def _postgres_available() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]


@pytest.fixture(scope="session")
def postgres_admin() -> str:
    """The DSN of a PostgreSQL server that may create databases (skips when none runs)."""
    problem = _postgres_available()
    if problem is not None:
        if os.environ.get("NOTIFIER_REQUIRE_POSTGRES"):
            pytest.fail(
                f"PostgreSQL required (NOTIFIER_REQUIRE_POSTGRES) but unreachable: {problem}"
            )
        pytest.skip(f"PostgreSQL unreachable at {PG_ADMIN_DSN}: {problem}")
    return PG_ADMIN_DSN


@pytest.fixture
def postgres_url(postgres_admin: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"notifier_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = psycopg.conninfo.conninfo_to_dict(postgres_admin)
    user = base.get("user", "postgres")
    host = base.get("host", "127.0.0.1")
    port = base.get("port", 5432)
    yield f"postgresql+psycopg://{user}@{host}:{port}/{name}"
    with psycopg.connect(postgres_admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL for each backend: a SQLite file, and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'notifier.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def db(store_url: str) -> Iterator[Database]:
    """A migrated store on each backend."""
    database = Database(store_url)
    database.migrate()
    yield database
    database.dispose()
