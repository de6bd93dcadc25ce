"""Circuit breakers per destination: stop hammering a receiver that keeps failing.

A destination (the SMTP relay, Slack, one webhook endpoint) that fails ``threshold`` times in
a row is *open*: sends to it fail at once, without touching the network, until ``cooldown``
has passed. Then it is *half-open*: one send is let through as a trial; success closes it,
failure opens it again for twice the previous cooldown (up to ``max_cooldown``).

Memory stays flat whatever happens: only destinations with failures are remembered, and at
most ``max_destinations`` of them (the least recently failing are forgotten first).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from notifier.clock import Clock
from notifier.errors import Reason, TransientDeliveryError

__all__ = ["Breakers", "CircuitOpen"]


class CircuitOpen(TransientDeliveryError):
    """A send refused because its destination's circuit is open."""


@dataclass(slots=True)
class _State:
    failures: int = 0
    open_until: datetime | None = None
    cooldown: float = 0.0
    trial: bool = False  # a half-open trial send is in flight


class Breakers:
    """One breaker per destination key."""

    def __init__(
        self,
        clock: Clock,
        *,
        threshold: int = 5,
        cooldown: float = 5.0,
        max_cooldown: float = 300.0,
        max_destinations: int = 1024,
    ) -> None:
        if threshold < 1 or cooldown <= 0 or max_cooldown < cooldown or max_destinations < 1:
            raise ValueError("breaker: threshold ≥ 1, 0 < cooldown ≤ max_cooldown, size ≥ 1")
        self._clock = clock
        self._threshold = threshold
        self._cooldown = cooldown
        self._max_cooldown = max_cooldown
        self._max = max_destinations
        self._states: OrderedDict[str, _State] = OrderedDict()

    def __len__(self) -> int:
        return len(self._states)

    def refuse_while_open(self, key: str) -> None:
        """Raise :class:`CircuitOpen` while ``key``'s circuit is open (cooling down); unlike
        :meth:`check`, never claims the half-open trial (a look before costly work)."""
        state = self._states.get(key)
        if state is not None and state.open_until is not None:
            self._refuse_if_cooling(key, state)

    def check(self, key: str) -> None:
        """Raise :class:`CircuitOpen` if sends to ``key`` must not be tried now."""
        state = self._states.get(key)
        if state is None or state.open_until is None:
            return
        self._refuse_if_cooling(key, state)
        if state.trial:
            raise CircuitOpen(
                f"{key} is being probed after failures; waiting for that send",
                reason=Reason.SERVER,
                retry_after=state.cooldown,
            )
        state.trial = True  # half-open: let this one through

    def _refuse_if_cooling(self, key: str, state: _State) -> None:
        assert state.open_until is not None
        now = self._clock.now()
        if now < state.open_until:
            wait = (state.open_until - now).total_seconds()
            raise CircuitOpen(
                f"{key} failed {state.failures} times in a row; not trying it for {wait:.0f} s",
                reason=Reason.SERVER,
                retry_after=wait,
            )

    def success(self, key: str) -> None:
        """Record a delivered send: the destination is healthy again."""
        self._states.pop(key, None)

    def failure(self, key: str) -> None:
        """Record a failed send (one that says something about the destination)."""
        state = self._states.pop(key, None) or _State()
        self._states[key] = state  # most recently failing last
        state.failures += 1
        if state.trial or state.failures >= self._threshold:
            state.cooldown = (
                min(self._max_cooldown, state.cooldown * 2) if state.trial else self._cooldown
            )
            state.open_until = self._clock.now() + timedelta(seconds=state.cooldown)
            state.trial = False
        while len(self._states) > self._max:
            self._states.popitem(last=False)

    def is_open(self, key: str) -> bool:
        """Whether sends to ``key`` are currently refused (for metrics and tests)."""
        state = self._states.get(key)
        return bool(state and state.open_until and self._clock.now() < state.open_until)
