"""Crash safety with real processes: SIGKILL the engine mid-batch and mid-send, restart it."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import yaml

from notifier.broker import EmbeddedBroker, ensure_topics, publish, records_for
from notifier.mailcatcher import MailCatcher

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
EVENTS = 1200
CONCURRENCY = 4


def _write_config(tmp: Path, broker: EmbeddedBroker, catcher: MailCatcher) -> Path:
    suffix = uuid.uuid4().hex[:8]
    (tmp / "directory.yaml").write_text(
        yaml.safe_dump(
            {
                "people": [
                    {
                        "id": "oncall",
                        "name": "On Call",
                        "roles": ["oncall"],
                        "locale": "de_CH",
                        "timezone": "Europe/Zurich",
                        "contacts": [{"channel": "email", "address": "oncall@example.net"}],
                    },
                ]
            }
        )
    )
    (tmp / "routing.yaml").write_text(
        yaml.safe_dump(
            {
                "tiers": {"oncall": {"roles": ["oncall"], "clearance": "confidential"}},
                "rules": [{"name": "all", "tiers": ["oncall"], "template": "alert"}],
            }
        )
    )
    config = {
        "kafka": {
            "bootstrap_servers": broker.bootstrap_servers,
            "topic": f"crash-{suffix}",
            "dlq_topic": f"crash-dlq-{suffix}",
            "group_id": f"crash-{suffix}",
            "partitions": 2,
            "max_batch": 40,
            "poll_timeout_ms": 100,
            "session_timeout_ms": 2000,
            "heartbeat_interval_ms": 300,
            "rebalance_timeout_ms": 2000,
        },
        "store": {"url": f"sqlite:///{tmp / 'notifier.db'}"},
        "smtp": {"host": catcher.host, "port": catcher.port, "starttls": False},
        "delivery": {"concurrency": CONCURRENCY, "lease_seconds": 3, "batch_size": 20},
        "templates": {
            "directory": str(ROOT / "templates"),
            "locales_directory": str(ROOT / "locales"),
        },
        "log": {"level": "WARNING", "format": "json"},
    }
    path = tmp / "notifier.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _events() -> list[tuple[bytes, bytes]]:
    base = orjson.loads((ROOT / "config" / "samples" / "alert-firing.json").read_bytes())
    records = []
    for i in range(EVENTS):
        base["id"] = f"crash-{i}"
        base["data"]["labels"]["instance"] = f"node-{i}"
        records += records_for(orjson.dumps(base), max_bytes=1 << 20)
    return records


def _count(db: Path, sql: str) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=10) as conn:
            return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # not migrated yet


async def _start(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "notifier",
        "--config",
        str(config),
        "run",
        cwd=ROOT,
        env={**os.environ, "NOTIFIER_CONFIG": str(config)},
    )


async def _until(check: Callable[[], bool], timeout: float) -> None:
    """Wait for the engine process to get somewhere (bounded; the work is the engine's)."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


async def _kill(proc: asyncio.subprocess.Process) -> None:
    proc.send_signal(signal.SIGKILL)
    await proc.wait()


async def test_sigkill_mid_batch_and_mid_send_loses_nothing_and_doubles_nothing(
    broker: EmbeddedBroker, mailcatcher: MailCatcher, tmp_path: Path
) -> None:
    """Two SIGKILLs (while ingesting, while sending): every event applied once, every mail sent."""
    config = _write_config(tmp_path, broker, mailcatcher)
    settings = yaml.safe_load(config.read_text())["kafka"]
    db = tmp_path / "notifier.db"
    await ensure_topics(broker.bootstrap_servers, [settings["topic"]], 2)
    await publish(broker.bootstrap_servers, settings["topic"], _events())

    def events() -> int:
        return _count(db, "select count(*) from event_keys")

    def sent() -> int:
        return _count(db, "select count(*) from notifications where status='sent'")

    proc = await _start(config)
    await _until(lambda: events() >= EVENTS // 4, timeout=60)
    await _kill(proc)
    applied_at_first_kill = events()
    assert applied_at_first_kill < EVENTS, "the engine finished before it could be killed"

    proc = await _start(config)
    await _until(lambda: len(mailcatcher.messages) >= EVENTS // 3, timeout=90)
    await _kill(proc)

    proc = await _start(config)
    try:
        await _until(lambda: events() == EVENTS and sent() == EVENTS, timeout=120)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=30) == 0

    assert _count(db, "select count(*) from alerts") == EVENTS
    assert _count(db, "select count(*) from notifications") == EVENTS
    assert _count(db, "select count(*) from notifications where status != 'sent'") == 0
    ids = Counter(m.message["Message-ID"] for m in mailcatcher.messages)
    assert len(ids) == EVENTS, "every notification reached the inbox"
    repeated = sum(n - 1 for n in ids.values())
    # Only sends in flight at a kill may repeat (same Message-ID, so the receiver can dedupe).
    print(f"mails repeated after two kills: {repeated}")
    assert repeated <= 2 * CONCURRENCY, repeated
