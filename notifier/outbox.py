"""The outbox dispatcher: drains pending notifications to their channels.

Every notification is in the store as pending before any send (the ingest transaction put it
there). The dispatcher claims due ones with a lease, renders each for its recipient, sends it
through the one retry stage, and records the outcome right after the send, so a crash repeats
at most the sends that were in flight. Transient failures go back to the outbox with a
backoff; permanent ones (and transient ones past ``max_dispatches``) are recorded as failed.
The dispatcher sleeps until woken (new work committed) or until the next due time.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

import structlog

from notifier.channels.base import Channel
from notifier.clock import Clock
from notifier.compose import compose
from notifier.delivery import next_dispatch_delay, send_with_retry
from notifier.errors import DeliveryError, Reason, TemplateError
from notifier.settings import DeliverySettings
from notifier.store import Database
from notifier.store import outbox as rows
from notifier.templating import Renderer
from notifier.worker import Wakeup, work_until_stopped

log = structlog.get_logger(__name__)


class Dispatcher:
    """Sends what the outbox holds, a bounded number at a time."""

    def __init__(
        self,
        db: Database,
        renderer: Renderer,
        channels: Mapping[str, Channel],
        settings: DeliverySettings,
        clock: Clock,
        rng: random.Random | None = None,
        links: Callable[[rows.PendingNotification], Mapping[str, str]] | None = None,
    ) -> None:
        self._db = db
        self._renderer = renderer
        self._channels = channels
        self._settings = settings
        self._clock = clock
        self._rng = rng or random.Random()
        self._links = links
        self._wakeup = Wakeup()
        self._slots = asyncio.Semaphore(settings.concurrency)

    def wake(self) -> None:
        """Tell the dispatcher that new notifications were committed."""
        self._wakeup.ring()

    async def run(self, stop: asyncio.Event) -> None:
        """Dispatch until ``stop`` is set; sends in flight finish before it returns."""
        await work_until_stopped(
            "outbox",
            once=self.drain_once,
            next_due=self._next_due,
            wakeup=self._wakeup,
            clock=self._clock,
            stop=stop,
            max_sleep=self._settings.poll_interval_seconds,
        )

    async def drain_once(self) -> int:
        """Claim one batch of due notifications and send them; return how many were claimed."""
        now = self._clock.now()
        claimed = await asyncio.to_thread(self._claim, now)
        if claimed:
            results = await asyncio.gather(
                *(self._dispatch(n) for n in claimed), return_exceptions=True
            )
            for n, result in zip(claimed, results, strict=True):
                if isinstance(result, Exception):
                    # A bug, not a channel failure: say so, and treat it like a transient
                    # error so it is retried a bounded number of times, then marked failed.
                    log.error(
                        "outbox.dispatch_crashed",
                        notification_id=n.id,
                        error_type=type(result).__name__,
                        error=str(result),
                    )
                    await self._after_failure(
                        n, DeliveryError(f"internal error: {type(result).__name__}: {result}")
                    )
        return len(claimed)

    def _claim(self, now: datetime) -> list[rows.PendingNotification]:
        with self._db.transaction() as conn:
            return rows.claim_due(
                conn,
                now,
                self._settings.batch_size,
                self._settings.lease_seconds,
                skip_locked=not self._db.is_sqlite,
            )

    def _next_due(self) -> datetime | None:
        with self._db.engine.connect() as conn:
            return rows.next_due(conn)

    async def _dispatch(self, n: rows.PendingNotification) -> None:
        bound = log.bind(notification_id=n.id, alert_id=n.alert_id, channel=n.channel)
        channel = self._channels.get(n.channel)
        if channel is None:
            await self._record_failure(n, Reason.CLIENT, f"no channel {n.channel!r} configured")
            return
        try:
            links = self._links(n) if self._links is not None else None
            message = compose(self._renderer, n, links=links)
        except TemplateError as exc:
            bound.error("outbox.template_failed", template=n.template, error=str(exc))
            await self._record_failure(n, exc.reason, str(exc))
            return
        async with self._slots:
            try:
                provider_id = await send_with_retry(
                    channel,
                    message,
                    attempts=self._settings.send_attempts,
                    deadline_seconds=self._settings.send_deadline_seconds,
                    initial_backoff=self._settings.backoff_initial_seconds,
                    max_backoff=self._settings.backoff_max_seconds,
                    sleep=self._clock.sleep,
                )
            except DeliveryError as exc:
                await self._after_failure(n, exc)
                return
        await asyncio.to_thread(
            self._mark_sent,
            n.id,
            provider_id,
            message.rendered.language,
            message.rendered.template_hash,
        )
        bound.info("outbox.sent", language=message.rendered.language, template=n.template)

    def _mark_sent(self, nid: str, provider_id: str, language: str, template_hash: str) -> None:
        with self._db.transaction() as conn:
            rows.mark_sent(
                conn,
                nid,
                self._clock.now(),
                provider_id=provider_id,
                language=language,
                template_hash=template_hash,
            )

    async def _after_failure(self, n: rows.PendingNotification, exc: DeliveryError) -> None:
        if exc.retriable and n.dispatches < self._settings.max_dispatches:
            await self._reschedule(n, exc)
        else:
            await self._record_failure(n, exc.reason, str(exc))

    async def _reschedule(self, n: rows.PendingNotification, exc: DeliveryError) -> None:
        delay = next_dispatch_delay(
            n.dispatches,
            self._settings.backoff_initial_seconds,
            self._settings.backoff_max_seconds,
            rng=self._rng,
        )
        at = self._clock.now() + timedelta(seconds=delay)

        def write() -> None:
            with self._db.transaction() as conn:
                rows.reschedule(conn, n.id, at, reason=exc.reason.value, error=str(exc))

        await asyncio.to_thread(write)
        log.warning(
            "outbox.rescheduled",
            notification_id=n.id,
            reason=exc.reason.value,
            dispatches=n.dispatches,
            delay=round(delay, 3),
        )

    async def _record_failure(
        self, n: rows.PendingNotification, reason: Reason, error: str
    ) -> None:
        def write() -> None:
            with self._db.transaction() as conn:
                rows.mark_failed(conn, n.id, self._clock.now(), reason=reason.value, error=error)

        await asyncio.to_thread(write)
        log.error("outbox.failed", notification_id=n.id, alert_id=n.alert_id, reason=reason.value)
