"""SIGKILL during sending, with real processes: the engine is killed while webhooks are in
flight to a slow receiver; after a restart every message has arrived, and the only repeats
are sends that were in flight at the kill (the receiver dedupes them by X-Notifier-Id)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import orjson
import pytest
import yaml
from engines import start_delivering
from sqlalchemy import func, select

from notifier.clock import SystemClock
from notifier.directory import ChannelKind, Directory
from notifier.hookcatcher import HookCatcher
from notifier.pipeline import BatchProcessor, RawRecord
from notifier.routing import Router, RoutingConfig
from notifier.store import Database
from notifier.store.schema import notifications

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = 200
CONCURRENCY = 8
SECRET = "crash-secret"


def _configure(tmp: Path, store_url: str, hook_url: str) -> Path:
    (tmp / "directory.yaml").write_text(
        yaml.safe_dump(
            {
                "people": [
                    {
                        "id": "ops",
                        "name": "Ops bridge",
                        "roles": ["oncall-operator"],
                        "contacts": [{"channel": "webhook", "address": "bridge"}],
                    }
                ]
            }
        )
    )
    (tmp / "routing.yaml").write_text(
        yaml.safe_dump(
            {
                "tiers": {"responders": {"roles": ["oncall-operator"]}},
                "rules": [{"name": "all", "tiers": ["responders"], "template": "alert"}],
            }
        )
    )
    path = tmp / "notifier.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "store": {"url": store_url},
                "http": {"enabled": False},
                "delivery": {"lease_seconds": 2, "batch_size": 20},
                "webhooks": {
                    "endpoints": {"bridge": {"url": hook_url, "secret": SECRET}},
                    "allow_private_networks": True,
                    "concurrency": CONCURRENCY,
                },
                "templates": {
                    "directory": str(ROOT / "templates"),
                    "locales_directory": str(ROOT / "locales"),
                },
                "log": {"level": "WARNING", "format": "json"},
                "routing_file": str(tmp / "routing.yaml"),
                "directory_file": str(tmp / "directory.yaml"),
            }
        )
    )
    return path


def _seed(db: Database, tmp: Path) -> None:
    """MESSAGES distinct firing alerts, each routed to the ops bridge's webhook."""
    directory = Directory.load(tmp / "directory.yaml", [ChannelKind.EMAIL, ChannelKind.WEBHOOK])
    router = Router(RoutingConfig.load(tmp / "routing.yaml"), directory)
    proc = BatchProcessor(db, router, SystemClock(), group="g", topic="t", max_event_bytes=1 << 20)
    base = orjson.loads((ROOT / "config" / "samples" / "alert-firing.json").read_bytes())
    records = []
    for i in range(MESSAGES):
        event = {**base, "id": f"crash-{i}"}
        event["data"] = {**base["data"], "alertname": f"Crash{i}"}
        records.append(RawRecord("t", 0, i, None, orjson.dumps(event), ()))
    outcome = proc.apply(records, proc.decode(records))
    assert outcome.notifications == MESSAGES


def _sent(db: Database) -> int:
    with db.engine.connect() as conn:
        count = conn.scalar(
            select(func.count()).select_from(notifications).where(notifications.c.status == "sent")
        )
    return int(count or 0)


async def test_sigkill_while_sending_loses_nothing_and_repeats_only_in_flight(
    tmp_path: Path,
) -> None:
    """Kill -9 with sends in flight to a slow receiver; restart; every message arrives, and
    the repeats are at most the sends that were in flight (the webhook concurrency)."""
    hooks = HookCatcher(SECRET.encode(), delay=0.05)
    await hooks.start()
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    db = Database(url)
    db.migrate()
    config = _configure(tmp_path, url, hooks.url)
    _seed(db, tmp_path)
    proc = await start_delivering(config)
    try:
        async with asyncio.timeout(60):
            while len(hooks.hooks) < MESSAGES // 4:
                await asyncio.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        at_kill = _sent(db)
        assert at_kill < MESSAGES, "everything was sent before the kill"
        proc = await start_delivering(config)
        await hooks.wait_for(MESSAGES, within=60)
        async with asyncio.timeout(30):
            while _sent(db) < MESSAGES:
                await asyncio.sleep(0.05)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 30)
        await hooks.stop()
        db.dispose()
    assert len({h.id for h in hooks.hooks}) == MESSAGES  # nothing lost
    print(f"killed with {at_kill} recorded as sent; {hooks.duplicates} repeated after restart")
    assert hooks.duplicates <= CONCURRENCY  # only what was in flight at the kill
