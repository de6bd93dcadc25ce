"""The outbox dispatcher: drains pending notifications to their channels.

Every notification is in the store as pending before any send (the ingest transaction put it
there). The dispatcher claims due ones with a lease, renders each for its recipient, sends it
through the one retry stage, and records the outcome right after the send, so a crash repeats
at most the sends that were in flight. Sends in flight are bounded per channel.

Failures: a transient one goes back to the outbox with a backoff (never sooner than the
receiver's ``Retry-After``); a permanent one, or one still failing after
``fallback_after_seconds``, goes to the person's next contact if they have one (the failed
notification is recorded with its reason); with no other contact, a transient failure keeps
being retried until ``retry_for_seconds`` or ``max_dispatches``, then is recorded as failed.
A circuit breaker per destination (the SMTP relay, Slack, each webhook endpoint) stops
hammering one that keeps failing. The dispatcher sleeps until woken or until the next due
time.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import structlog

from notifier.breaker import Breakers, CircuitOpen
from notifier.channels.base import Channel
from notifier.clock import Clock
from notifier.compose import compose
from notifier.delivery import next_dispatch_delay, send_with_retry
from notifier.directory import Directory
from notifier.errors import DeliveryError, Reason, TemplateError
from notifier.escalation import REMINDER_TEMPLATE
from notifier.intents import split_kind
from notifier.routing import Clearance, Recipient
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
        *,
        directory: Directory | None = None,
        limits: Mapping[str, int] | None = None,
        breakers: Breakers | None = None,
    ) -> None:
        self._db = db
        self._renderer = renderer
        self._channels = channels
        self._settings = settings
        self._clock = clock
        self._rng = rng or random.Random()
        self._links = links
        self._directory = directory
        self._wakeup = Wakeup()
        limits = limits or {}
        sizes = {name: limits.get(name, settings.concurrency) for name in channels}
        self._slots = {name: asyncio.Semaphore(size) for name, size in sizes.items()}
        self._refill_at = max(1, sum(sizes.values()))
        self.breakers = breakers or Breakers(clock)
        self._sent: list[tuple[rows.Sent, asyncio.Future[None]]] = []
        self._stop: asyncio.Event | None = None
        self._recording = asyncio.Lock()

    def wake(self) -> None:
        """Tell the dispatcher that new notifications were committed."""
        self._wakeup.ring()

    async def run(self, stop: asyncio.Event) -> None:
        """Dispatch until ``stop`` is set; sends in flight finish before it returns."""
        self._stop = stop
        await work_until_stopped(
            "outbox",
            once=self.pump,
            next_due=self._next_due,
            wakeup=self._wakeup,
            clock=self._clock,
            stop=stop,
            max_sleep=self._settings.poll_interval_seconds,
        )

    async def drain_once(self) -> int:
        """Claim one batch of due notifications and send them; return how many were claimed."""
        batch = await asyncio.to_thread(self._claim, self._clock.now())
        await asyncio.gather(*(self._dispatch_guarded(n) for n in batch))
        return len(batch)

    async def pump(self) -> int:
        """Send everything due; return how many notifications were claimed.

        The next batch is claimed as soon as the sends in flight fall to what the channels
        can take at once, so channels never idle while the tail of a batch finishes (claimed
        notifications wait in memory under their lease). When nothing more is due, the sends
        in flight are awaited (a later message about an alert may be waiting for them) and
        the outbox is asked once more. Once the dispatcher is stopping, it claims nothing more
        and returns when the sends in flight are done.
        """
        claimed = 0
        inflight: set[asyncio.Task[None]] = set()
        # One event for "a send finished" instead of asyncio.wait over every task in flight,
        # which walks (and re-registers callbacks on) the whole set at each completion.
        finished = asyncio.Event()

        def done(task: asyncio.Task[None]) -> None:
            inflight.discard(task)
            finished.set()

        while True:
            stopping = self._stop is not None and self._stop.is_set()
            if stopping or len(inflight) <= self._refill_at:
                batch = [] if stopping else await asyncio.to_thread(self._claim, self._clock.now())
                claimed += len(batch)
                for n in batch:
                    task = asyncio.create_task(self._dispatch_guarded(n))
                    inflight.add(task)
                    task.add_done_callback(done)
                if not batch:
                    if not inflight:
                        return claimed
                    await asyncio.gather(*inflight)
                    continue
            finished.clear()
            if inflight:
                await finished.wait()

    async def _dispatch_guarded(self, n: rows.PendingNotification) -> None:
        try:
            await self._dispatch(n)
        except Exception as exc:
            # A bug, not a channel failure: say so, and treat it like a transient error so
            # it is retried a bounded number of times, then marked failed.
            log.error(
                "outbox.dispatch_crashed",
                notification_id=n.id,
                error_type=type(exc).__name__,
                error=str(exc),
            )
            await self._after_failure(
                n, DeliveryError(f"internal error: {type(exc).__name__}: {exc}")
            )

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
        channel = self._channels.get(n.channel)
        if channel is None:
            await self._give_up(
                n, DeliveryError(f"no channel {n.channel!r} configured", reason=Reason.CLIENT)
            )
            return
        destination = _destination(n)
        try:
            # Spares the render while the circuit is open; the send is checked again (and may
            # be the half-open trial) once it has a slot.
            self.breakers.refuse_while_open(destination)
        except CircuitOpen as exc:
            await self._after_failure(n, exc)
            return
        try:
            links = self._links(n) if self._links is not None else None
            # A digest lists several alerts: it opens no thread and rewrites no page.
            threaded = n.channel == "slack" and split_kind(n.kind)[0] != "digest"
            thread = await asyncio.to_thread(self._thread, n) if threaded else None
            message = compose(
                self._renderer, n, links=links, thread=thread, mention=self._mention(n)
            )
        except TemplateError as exc:
            _bound(n).error("outbox.template_failed", template=n.template, error=str(exc))
            await self._record_failure(n, exc.reason, str(exc))
            return
        async with self._slots[n.channel]:
            if self._lease_running_out(n):
                # Waited too long for a slot: the lease may pass to another claim mid-send.
                # Leave it; it is claimed again when the lease runs out (nothing is lost).
                _bound(n).warning("outbox.lease_running_out")
                return
            try:
                self.breakers.check(destination)
                provider_id = await send_with_retry(
                    channel,
                    message,
                    attempts=self._settings.send_attempts,
                    deadline_seconds=self._settings.send_deadline_seconds,
                    initial_backoff=self._settings.backoff_initial_seconds,
                    max_backoff=self._settings.backoff_max_seconds,
                    sleep=self._clock.sleep,
                )
            except CircuitOpen as exc:
                await self._after_failure(n, exc)
                return
            except DeliveryError as exc:
                if exc.retriable or exc.reason is Reason.AUTH:
                    self.breakers.failure(destination)
                else:  # the destination answered: the message is at fault, not the receiver
                    self.breakers.success(destination)
                await self._after_failure(n, exc)
                return
            self.breakers.success(destination)
            # Recorded before the slot is freed: a crash repeats at most the sends in flight.
            await self._record_sent(
                rows.Sent(
                    n.id,
                    self._clock.now(),
                    provider_id,
                    message.rendered.language,
                    message.rendered.template_hash,
                    message.rendered.template_version,
                )
            )
        log.info(
            "outbox.sent",
            notification_id=n.id,
            alert_id=n.alert_id,
            channel=n.channel,
            language=message.rendered.language,
            template=n.template,
        )

    def _lease_running_out(self, n: rows.PendingNotification) -> bool:
        if n.claimed_at is None:
            return False
        left = self._settings.lease_seconds - (self._clock.now() - n.claimed_at).total_seconds()
        # What is left should cover a whole send, retries and deadline included (or at least
        # half the lease, when the lease is shorter than a send may take).
        return left < min(self._settings.send_deadline_seconds, self._settings.lease_seconds / 2)

    def _thread(self, n: rows.PendingNotification) -> str | None:
        with self._db.engine.connect() as conn:
            return rows.thread_of(conn, n.alert_id, n.occurrence, n.channel, n.address)

    def _mention(self, n: rows.PendingNotification) -> str | None:
        by = (n.details or {}).get("by_id")
        person = self._directory.get(by) if self._directory and isinstance(by, str) else None
        return person.slack_id if person is not None else None

    async def _record_sent(self, sent: rows.Sent) -> None:
        """Record a delivery before returning (group commit: one transaction records every
        delivery that finished while the previous one was being written). Raises if the
        write failed, for this delivery and every one written with it."""
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sent.append((sent, written))
        async with self._recording:
            if self._sent:  # else an earlier writer took this one along
                batch, self._sent = self._sent, []

                def write() -> None:
                    with self._db.transaction() as conn:
                        rows.mark_sent_many(conn, [s for s, _ in batch])

                try:
                    await asyncio.to_thread(write)
                except Exception as exc:
                    for _, future in batch:
                        future.set_exception(exc)
                else:
                    for _, future in batch:
                        future.set_result(None)
        await written

    async def _after_failure(self, n: rows.PendingNotification, exc: DeliveryError) -> None:
        age = (self._clock.now() - n.created_at).total_seconds() if n.created_at else 0.0
        s = self._settings
        due_for_fallback = not exc.retriable or age >= s.fallback_after_seconds
        if due_for_fallback and await self._fall_back(n, exc):
            return
        if exc.retriable and n.dispatches < s.max_dispatches and age < s.retry_for_seconds:
            await self._reschedule(n, exc)
        else:
            await self._give_up(n, exc)

    async def _fall_back(self, n: rows.PendingNotification, exc: DeliveryError) -> bool:
        """Send ``n`` to the person's next contact instead; False if they have none."""
        person = self._directory.get(n.person_id) if self._directory else None
        later = self._directory.fallbacks(person, n.channel) if self._directory and person else []
        if not later:
            return False
        now = self._clock.now()

        def write() -> str | None:
            with self._db.transaction() as conn:
                return rows.fall_back(conn, n.id, later[0], now, reason=exc.reason.value)

        new_id = await asyncio.to_thread(write)
        log.warning(
            "outbox.fell_back",
            notification_id=n.id,
            alert_id=n.alert_id,
            reason=exc.reason.value,
            to_channel=later[0].channel.value,
            new_notification_id=new_id,
        )
        self.wake()
        return True

    async def _give_up(self, n: rows.PendingNotification, exc: DeliveryError) -> None:
        await self._record_failure(n, exc.reason, str(exc))
        if split_kind(n.kind)[0] in ("firing", "escalated"):
            await self._tell_unreachable(n, exc)

    async def _tell_unreachable(self, n: rows.PendingNotification, exc: DeliveryError) -> None:
        """A page reached nobody: tell the incident commanders, so someone calls."""
        if self._directory is None:
            return
        directory = self._directory
        recipients = []
        for role in self._settings.unreachable_roles:
            for person in directory.with_role(role):
                contact = directory.reach(person)
                if contact is not None and person.id != n.person_id:
                    recipients.append(
                        Recipient(
                            person,
                            contact,
                            "commander",
                            "unreachable",
                            REMINDER_TEMPLATE,
                            Clearance.PUBLIC,
                        )
                    )
        if not recipients:
            return
        details = {"person": n.recipient_name, "channel": n.channel, "reason": exc.reason.value}
        now = self._clock.now()

        def write() -> int:
            with self._db.transaction() as conn:
                return rows.tell_unreachable(conn, n.id, recipients, now, details)

        told = await asyncio.to_thread(write)
        if told:
            log.warning("outbox.unreachable", notification_id=n.id, alert_id=n.alert_id, told=told)
            self.wake()

    async def _reschedule(self, n: rows.PendingNotification, exc: DeliveryError) -> None:
        delay = max(
            next_dispatch_delay(
                n.dispatches,
                self._settings.backoff_initial_seconds,
                self._settings.backoff_max_seconds,
                rng=self._rng,
            ),
            exc.retry_after or 0.0,
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


def _bound(n: rows.PendingNotification) -> Any:
    # Bound only on the rare paths that log: binding on every send cost more than the rest
    # of its bookkeeping (a filtered-out log call with its fields is nearly free).
    return log.bind(notification_id=n.id, alert_id=n.alert_id, channel=n.channel)


def _destination(n: rows.PendingNotification) -> str:
    """What a circuit breaker guards: the one SMTP relay, Slack, each webhook endpoint."""
    return f"webhook:{n.address}" if n.channel == "webhook" else n.channel
