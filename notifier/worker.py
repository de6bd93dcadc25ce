"""The loop the outbox dispatcher and the timer scheduler share: work, then sleep until due.

A worker does one pass (``once``) while it finds work; when there is none, it sleeps until the
next due time it knows of, a wake-up (new work committed), a stop, or ``max_sleep``, whichever
comes first: never a tight polling loop. A failing pass (the store locked or unreachable) is
logged and treated as idle, so the worker backs off and keeps going.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

import structlog

from notifier.clock import Clock

log = structlog.get_logger(__name__)


class Wakeup:
    """Rung when new work is committed; interrupts a worker's sleep."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def ring(self) -> None:
        """Wake the worker now."""
        self._event.set()

    async def sleep(self, stop: asyncio.Event, seconds: float) -> None:
        """Sleep up to ``seconds``, or until rung or stopped."""
        self._event.clear()
        waiters = [asyncio.ensure_future(self._event.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()


async def work_until_stopped(
    name: str,
    *,
    once: Callable[[], Awaitable[int]],
    next_due: Callable[[], datetime | None],
    wakeup: Wakeup,
    clock: Clock,
    stop: asyncio.Event,
    max_sleep: float,
) -> None:
    """Run ``once`` while it finds work; otherwise sleep until the next due time."""
    while not stop.is_set():
        try:
            done = await once()
        except Exception:
            log.exception("worker.pass_failed", worker=name)
            done = 0
        if done:
            continue
        due = await asyncio.to_thread(next_due)
        seconds = max_sleep
        if due is not None:
            seconds = min(max_sleep, max(0.0, (due - clock.now()).total_seconds()))
        await wakeup.sleep(stop, seconds)
