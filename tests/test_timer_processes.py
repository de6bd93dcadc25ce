"""Durable timers with real processes: SIGKILL and restart, and two engines on PostgreSQL."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from engines import start_delivering
from sqlalchemy import func, insert, select

from notifier.escalation import plan_key
from notifier.intents import Timer, TimerKind
from notifier.store import Database
from notifier.store.schema import alert_timeline, alerts, timers
from notifier.store.timers import write_timers

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
TIMERS = 1000
PLAN = {
    "policy": "p",
    "template": "alert",
    "clearance": "public",
    "steps": [{"delay": 60, "people": []}],
}


def _seed(db: Database, due: datetime, spread_ms: int = 0) -> None:
    """1,000 firing alerts, each with one escalation step, due from ``due`` on."""
    now = datetime.now(UTC)
    with db.transaction() as conn:
        conn.execute(
            insert(alerts),
            [
                {
                    "id": f"a{i:031d}",
                    "fingerprint": f"fp{i}",
                    "kind": "alert",
                    "status": "firing",
                    "occurrence": 1,
                    "name": f"Alert{i}",
                    "severity": "critical",
                    "risk": None,
                    "labels": {},
                    "summary": "s",
                    "starts_at": now,
                    "ends_at": None,
                    "created_at": now,
                    "updated_at": now,
                    "event_count": 1,
                    "last_event_key": "k",
                }
                for i in range(TIMERS)
            ],
        )
        write_timers(
            conn,
            [
                Timer(
                    f"t{i:031d}",
                    f"a{i:031d}",
                    1,
                    TimerKind.ESCALATION,
                    0,
                    due + timedelta(milliseconds=spread_ms * i),
                    "k",
                    plan_key(PLAN),
                    PLAN,
                )
                for i in range(TIMERS)
            ],
        )


def _config(tmp: Path, store_url: str) -> Path:
    path = tmp / "notifier.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "store": {"url": store_url},
                "http": {"enabled": False},
                "delivery": {"lease_seconds": 2, "batch_size": 5},
                "templates": {
                    "directory": str(ROOT / "templates"),
                    "locales_directory": str(ROOT / "locales"),
                },
                "log": {"level": "WARNING", "format": "json"},
                "routing_file": str(ROOT / "config" / "routing.yaml"),
                "directory_file": str(ROOT / "config" / "directory.yaml"),
            }
        )
    )
    return path


def _counts(db: Database) -> tuple[int, int, int]:
    """(timers done, escalation timeline entries, alerts escalated more than once)."""
    with db.engine.connect() as conn:
        done = conn.scalar(select(func.count()).select_from(timers).where(timers.c.state == "done"))
        fired = conn.scalar(
            select(func.count())
            .select_from(alert_timeline)
            .where(alert_timeline.c.kind == "escalated")
        )
        per_alert = (
            select(alert_timeline.c.alert_id)
            .where(alert_timeline.c.kind == "escalated")
            .group_by(alert_timeline.c.alert_id)
            .having(func.count() > 1)
            .subquery()
        )
        twice = conn.scalar(select(func.count()).select_from(per_alert))
    return int(done or 0), int(fired or 0), int(twice or 0)


async def _until(check: object, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)


async def test_sigkill_with_pending_timers_fires_each_exactly_once(tmp_path: Path) -> None:
    """Kill the engine while it fires 1,000 timers; after restart each fired once, none twice."""
    url = f"sqlite:///{tmp_path / 'timers.db'}"
    db = Database(url)
    db.migrate()
    # Due over ten seconds, so the kill lands mid-way even on a slow, busy machine.
    _seed(db, datetime.now(UTC) + timedelta(seconds=2), spread_ms=10)
    config = _config(tmp_path, url)
    proc = await start_delivering(config)
    await _until(lambda: _counts(db)[0] >= TIMERS // 10, 60)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    at_kill = _counts(db)[0]
    assert at_kill < TIMERS, "all timers fired before the kill"
    restarted = time.monotonic()
    proc = await start_delivering(config)
    try:
        await _until(lambda: _counts(db)[0] == TIMERS, 60)
    finally:
        await _stop(proc)
    done, fired, twice = _counts(db)
    print(
        f"killed after {at_kill} timers; the rest fired within "
        f"{time.monotonic() - restarted:.1f}s of the restart"
    )
    assert (done, fired, twice) == (TIMERS, TIMERS, 0)
    db.dispose()


@pytest.mark.postgres
async def test_two_engines_on_postgresql_share_due_timers(
    tmp_path: Path, postgres_url: str
) -> None:
    """Two engine processes on one PostgreSQL store fire 1,000 due timers once between them."""
    db = Database(postgres_url)
    db.migrate()
    _seed(db, datetime.now(UTC) - timedelta(seconds=1))
    config = _config(tmp_path, postgres_url)
    first, second = await start_delivering(config), await start_delivering(config)
    try:
        await _until(lambda: _counts(db)[0] == TIMERS, 90)
    finally:
        await _stop(first)
        await _stop(second)
    assert _counts(db) == (TIMERS, TIMERS, 0)
    db.dispose()
