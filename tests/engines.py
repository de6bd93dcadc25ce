"""Engines for the tests: settings for one on the embedded broker, and a real
`notifier run --deliver-only` process for the tests that kill one."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

from notifier.broker import EmbeddedBroker
from notifier.settings import (
    KafkaSettings,
    Settings,
    SmtpSettings,
    StoreSettings,
    TemplateSettings,
)

ROOT = Path(__file__).resolve().parent.parent


async def start_delivering(config: Path) -> asyncio.subprocess.Process:
    """`python -m notifier --config CONFIG run --deliver-only` from the repository root."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "notifier",
        "--config",
        str(config),
        "run",
        "--deliver-only",
        cwd=ROOT,
        env={**os.environ},
    )


def make_settings(
    broker: EmbeddedBroker, smtp: SmtpSettings, tmp_path: Path, **kafka: object
) -> Settings:
    """Settings for one test: its own topics and group, a SQLite file, the repo's config."""
    suffix = uuid.uuid4().hex[:8]
    return Settings(
        kafka=KafkaSettings(
            **{
                "bootstrap_servers": broker.bootstrap_servers,
                "topic": f"events-{suffix}",
                "dlq_topic": f"dlq-{suffix}",
                "group_id": f"group-{suffix}",
                "partitions": 2,
                "session_timeout_ms": 2000,
                "heartbeat_interval_ms": 300,
                "rebalance_timeout_ms": 2000,
                "poll_timeout_ms": 100,
                **kafka,
            }
        ),
        smtp=smtp,
        store=StoreSettings(url=f"sqlite:///{tmp_path / 'notifier.db'}"),
        templates=TemplateSettings(
            directory=ROOT / "templates", locales_directory=ROOT / "locales"
        ),
        config_dir=ROOT / "config",
    )
