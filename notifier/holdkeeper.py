"""The hold keeper: applies silences when they start and releases alerts when they end,
pages flapping alerts once they have settled, and repeats groups that are still firing
(``fatigue.grouping.repeat``).

Silences created as active are applied at once, in the transaction that stores them (the API
and the CLI do that). This worker covers time: a silence that starts later holds the alerts
firing then, and one that ends releases (or re-holds) what it held. It sleeps until the next
silence starts or ends, or until woken (a silence was created or expired elsewhere).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime

import structlog

from notifier.clock import Clock
from notifier.directory import Directory
from notifier.fatigue import FatigueConfig
from notifier.flapping import FlapPolicy
from notifier.inhibition import InhibitRule
from notifier.silences import SilenceState
from notifier.store import Database
from notifier.store.fatigue import repeat_groups
from notifier.store.holds import HoldOutcome, load_silences, release_quiet_flaps
from notifier.store.silences import apply_silence, next_change, release_ended
from notifier.worker import Wakeup, work_until_stopped

__all__ = ["HoldKeeper"]

log = structlog.get_logger(__name__)


class HoldKeeper:
    """Keeps holds in step with the silences' windows."""

    def __init__(
        self,
        db: Database,
        rules: Sequence[InhibitRule],
        clock: Clock,
        flapping: FlapPolicy | None = None,
        fatigue: FatigueConfig | None = None,
        directory: Directory | None = None,
        on_change: Callable[[HoldOutcome], None] = lambda _: None,
        max_sleep: float = 60.0,
    ) -> None:
        self._db = db
        self._rules = tuple(rules)
        self._flapping = flapping
        self._fatigue = fatigue
        self._directory = directory
        self._clock = clock
        self._on_change = on_change
        self._max_sleep = max_sleep
        self._wakeup = Wakeup()
        # Silences already applied by this process (applying again is harmless: alerts
        # already held are skipped; this only saves the scan of firing alerts).
        self._applied: set[str] = set()

    def wake(self) -> None:
        """A silence was created or expired: look again now."""
        self._wakeup.ring()

    async def run(self, stop: asyncio.Event) -> None:
        """Keep holds in step until ``stop`` is set."""
        await work_until_stopped(
            "holds",
            once=self.sweep,
            next_due=self._next_due,
            wakeup=self._wakeup,
            clock=self._clock,
            stop=stop,
            max_sleep=self._max_sleep,
        )

    async def sweep(self) -> int:
        """Apply started silences and release ended ones; return 0 (one pass is enough)."""
        outcome = await asyncio.to_thread(self._sweep, self._clock.now())
        if outcome.held or outcome.released or outcome.lapsed or outcome.digests:
            log.info(
                "holds.changed",
                held=outcome.held,
                released=outcome.released,
                lapsed=outcome.lapsed,
                notifications_released=outcome.notifications_released,
                repeat_digests=outcome.digests,
            )
            self._on_change(outcome)
        return 0

    def _sweep(self, now: datetime) -> HoldOutcome:
        outcome = HoldOutcome()
        with self._db.transaction() as conn:
            for silence in load_silences(conn, now):
                if silence.id not in self._applied and silence.state(now) is SilenceState.ACTIVE:
                    outcome.add(apply_silence(conn, silence, now))
                    self._applied.add(silence.id)
            outcome.add(release_ended(conn, now, self._rules))
            outcome.add(release_quiet_flaps(conn, now, self._rules, self._flapping))
            if self._fatigue is not None and self._directory is not None:
                outcome.digests += repeat_groups(conn, now, self._fatigue, self._directory)
        return outcome

    def _next_due(self) -> datetime | None:
        with self._db.engine.connect() as conn:
            return next_change(conn, self._clock.now())
