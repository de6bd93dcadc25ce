"""The one retry stage around a channel send, and the backoff for durable re-dispatch.

Two layers of retrying, each in exactly one place:

* :func:`send_with_retry`: a few quick in-process attempts with exponential backoff and a
  deadline, for blips (a 451, a dropped connection). Permanent errors are never retried.
* :func:`next_dispatch_delay`: when those attempts are exhausted, the outbox keeps the intent
  pending and schedules the next dispatch this far in the future (full jitter, so a relay
  outage does not turn into a synchronized thundering herd when it ends).

Both honour a receiver's ``Retry-After`` (:attr:`DeliveryError.retry_after`) as a floor.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from notifier.channels.base import Channel
from notifier.errors import DeliveryError, NotifierError, Reason, is_retriable
from notifier.message import OutgoingMessage

__all__ = ["next_dispatch_delay", "send_with_retry"]

_log = structlog.get_logger(__name__)
_rng = random.Random()
# 2**62 * any sane initial is already far beyond any max; stops float overflow.
_MAX_EXPONENT = 62


async def send_with_retry(
    channel: Channel,
    message: OutgoingMessage,
    *,
    attempts: int,
    deadline_seconds: float,
    initial_backoff: float,
    max_backoff: float,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> str:
    """Send ``message`` on ``channel``, retrying transient errors; return the provider's id.

    Stops after ``attempts`` tries, or before a wait that would end past ``deadline_seconds``
    from the first try (an attempt in progress is bounded by the channel's own timeout).
    Raises the last :class:`~notifier.errors.DeliveryError` unchanged, so the caller sees its
    reason and retriability.
    """
    started = time.monotonic()
    try:
        # The first attempt runs without tenacity's machinery: almost every send succeeds at
        # once, and building the retry state cost more than the rest of a send's bookkeeping.
        return await channel.send(message)
    except DeliveryError as exc:
        first: DeliveryError = exc
    # Tenacity takes over as if it had made the first attempt itself: that attempt "fails"
    # with the error already seen, so waits, attempt numbers and the deadline (what is left
    # of it) are exactly what they would have been.
    left = deadline_seconds - (time.monotonic() - started)
    return await _retry(
        channel, message, first, attempts, left, initial_backoff, max_backoff, sleep
    )


async def _retry(
    channel: Channel,
    message: OutgoingMessage,
    first: DeliveryError,
    attempts: int,
    deadline_seconds: float,
    initial_backoff: float,
    max_backoff: float,
    sleep: Callable[[float], Awaitable[None]],
) -> str:
    log = _log.bind(notification_id=message.notification_id, channel=channel.name)

    def before_sleep(state: RetryCallState) -> None:
        log.info(
            "delivery.retrying",
            attempt=state.attempt_number,
            reason=_reason_of(state),
            delay=round(state.upcoming_sleep, 3),
        )

    # 'multiplier' is tenacity 9's name for the first wait (it deprecated 'initial').
    backoff = wait_exponential_jitter(
        multiplier=initial_backoff, max=max_backoff, jitter=initial_backoff
    )

    def wait(state: RetryCallState) -> float:
        # The receiver's Retry-After is a floor: never come back sooner than it asked.
        exc = state.outcome.exception() if state.outcome is not None else None
        asked = exc.retry_after if isinstance(exc, DeliveryError) else None
        return max(backoff(state), asked or 0.0)

    retrying = AsyncRetrying(
        # stop_before_delay, not stop_after_delay: never start a backoff that would already
        # overrun the deadline only to give up after it (a Retry-After past the deadline
        # hands the message back to the outbox, which waits that long).
        stop=stop_after_attempt(attempts) | stop_before_delay(deadline_seconds),
        wait=wait,
        retry=retry_if_exception(is_retriable),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    tried = 0
    try:
        async for attempt in retrying:
            tried = attempt.retry_state.attempt_number
            with attempt:
                if tried == 1:
                    raise first
                return await channel.send(message)
    except NotifierError as exc:
        log.warning(
            "delivery.failed",
            attempts=tried,
            reason=exc.reason.value,
            retriable=exc.retriable,
        )
        raise
    raise AssertionError("tenacity returned without a result or an error")  # pragma: no cover


def next_dispatch_delay(
    dispatch_count: int, initial: float, max: float, *, rng: random.Random | None = None
) -> float:
    """Seconds until the outbox dispatches a pending intent again ("full jitter" backoff).

    ``dispatch_count`` is how many dispatches already failed (1 after the first). The result
    is uniform in ``[0, min(max, initial * 2 ** (dispatch_count - 1))]``; pass ``rng`` to make
    it deterministic in tests.
    """
    exponent = min(_MAX_EXPONENT, dispatch_count - 1) if dispatch_count > 0 else 0
    ceiling = min(max, initial * 2.0**exponent)
    return (rng or _rng).uniform(0.0, ceiling)


def _reason_of(state: RetryCallState) -> str:
    exc = state.outcome.exception() if state.outcome is not None else None
    return exc.reason.value if isinstance(exc, NotifierError) else Reason.OTHER.value
