"""Fakes for tests of notifier and of code built on it: a clock that never sleeps for real,
an API context without a broker."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from notifier.api.deps import ApiContext
from notifier.clock import Clock
from notifier.directory import Directory
from notifier.links import LinkSigner
from notifier.settings import Settings
from notifier.store import Database


class FakeClock:
    """A clock tests move by hand; ``sleep`` advances it at once and records the delay."""

    def __init__(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._now = now
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        """The fake current time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self._now += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        """Advance the clock by ``seconds`` and yield to the event loop once."""
        self.sleeps.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)


async def _nothing_published(batch: Sequence[tuple[bytes, bytes]]) -> None:
    raise AssertionError("this API context publishes nothing")


async def _broker_ready() -> str | None:
    return None


def offline_api_context(
    settings: Settings, db: Database, directory: Directory, clock: Clock, **extra: Any
) -> ApiContext:
    """An API context without a broker (publishing fails the test; readiness says ready), for
    tests and benchmarks of the pages and the API; ``extra`` sets any other field."""
    return ApiContext(
        settings,
        db,
        directory,
        clock,
        LinkSigner(settings.links.secrets, 3600, clock),
        _nothing_published,
        _broker_ready,
        **extra,
    )
