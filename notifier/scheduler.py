"""The timer scheduler: fires due timers once, in due order, and then sleeps.

It fires due timers in batches, each batch one transaction (see :mod:`notifier.store.timers`),
wakes the outbox when a step produced notifications, and then
sleeps until the next timer is due or new work is committed, never polling in a tight loop.
After downtime it catches up: every overdue timer is due, earliest first.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import datetime

import structlog

from notifier.clock import Clock
from notifier.directory import Directory
from notifier.settings import DeliverySettings
from notifier.store import Database
from notifier.store import timers as rows
from notifier.worker import Wakeup, work_until_stopped

log = structlog.get_logger(__name__)


class Scheduler:
    """Fires due timers."""

    def __init__(
        self,
        db: Database,
        directory: Directory,
        settings: DeliverySettings,
        clock: Clock,
        on_notifications: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._directory = directory
        self._settings = settings
        self._clock = clock
        self._on_notifications = on_notifications
        self._wakeup = Wakeup()

    def wake(self) -> None:
        """Tell the scheduler that new timers were committed."""
        self._wakeup.ring()

    async def run(self, stop: asyncio.Event) -> None:
        """Fire timers until ``stop`` is set."""
        await work_until_stopped(
            "timers",
            once=self.fire_due,
            next_due=self._next_due,
            wakeup=self._wakeup,
            clock=self._clock,
            stop=stop,
            max_sleep=self._settings.poll_interval_seconds * 30,
        )

    async def fire_due(self) -> int:
        """Fire one batch of due timers; return how many were due."""
        fired = await asyncio.to_thread(self._fire, self._clock.now())
        if not fired:
            return 0
        # One line per timer that notified someone (the ones worth tracing); timers that
        # only found their alert moved on are counted in the batch line.
        for f in fired:
            if f.notifications:
                log.info(
                    "timer.fired",
                    timer_id=f.timer_id,
                    kind=f.timer.kind.value,
                    alert_id=f.timer.alert_id,
                    step=f.timer.step + 1,
                    notifications=f.notifications,
                    lateness=round(f.lateness, 3),
                )
        log.info(
            "timers.batch",
            fired=len(fired),
            outcomes=dict(Counter(f.outcome for f in fired)),
            max_lateness=round(max(f.lateness for f in fired), 3),
        )
        if any(f.notifications for f in fired):
            self._on_notifications()
        return len(fired)

    def _fire(self, now: datetime) -> list[rows.Fired]:
        with self._db.transaction() as conn:
            return rows.fire_due(
                conn,
                now,
                self._settings.timer_batch_size,
                self._directory,
                skip_locked=not self._db.is_sqlite,
            )

    def _next_due(self) -> datetime | None:
        with self._db.engine.connect() as conn:
            return rows.next_due(conn)
