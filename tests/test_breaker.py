"""Circuit breakers per destination, with a fake clock: open after failures, fail fast,
half-open trial, growing cooldown, flat memory."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifier.breaker import Breakers, CircuitOpen
from notifier.errors import Reason
from notifier.testing import FakeClock

T0 = datetime(2026, 11, 22, tzinfo=UTC)


def test_opens_after_threshold_consecutive_failures_and_fails_fast() -> None:
    """Four failures leave it closed; the fifth opens it; sends then fail at once with a
    Retry-After of the remaining cooldown."""
    clock = FakeClock(T0)
    breakers = Breakers(clock, threshold=5, cooldown=10)
    for _ in range(4):
        breakers.failure("smtp")
        breakers.check("smtp")
    breakers.failure("smtp")
    clock.advance(4)
    with pytest.raises(CircuitOpen) as refused:
        breakers.check("smtp")
    assert refused.value.retriable and refused.value.reason is Reason.SERVER
    assert refused.value.retry_after == pytest.approx(6)
    breakers.check("slack")  # other destinations are not affected


def test_a_success_resets_the_count() -> None:
    """Failures must be consecutive: a delivered send in between starts over."""
    breakers = Breakers(FakeClock(T0), threshold=3)
    breakers.failure("d")
    breakers.failure("d")
    breakers.success("d")
    breakers.failure("d")
    breakers.failure("d")
    breakers.check("d")
    assert not breakers.is_open("d")


def test_half_open_lets_one_trial_through_then_closes_or_reopens_longer() -> None:
    """After the cooldown one send is tried while others still wait; its failure reopens
    the circuit for twice as long, its success closes it."""
    clock = FakeClock(T0)
    breakers = Breakers(clock, threshold=1, cooldown=10, max_cooldown=15)
    breakers.failure("d")
    clock.advance(10)
    breakers.check("d")  # the trial
    with pytest.raises(CircuitOpen):
        breakers.check("d")  # others wait for the trial
    breakers.failure("d")
    clock.advance(14.9)
    assert breakers.is_open("d")  # cooldown doubled, capped at 15
    clock.advance(0.1)
    breakers.check("d")
    breakers.success("d")
    breakers.check("d")
    assert len(breakers) == 0


@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=3000))
def test_memory_stays_bounded_whatever_fails(keys: list[int]) -> None:
    """However many destinations fail, at most max_destinations are remembered."""
    breakers = Breakers(FakeClock(T0), threshold=2, max_destinations=50)
    for key in keys:
        breakers.failure(f"webhook:{key}")
    assert len(breakers) <= 50


def test_a_look_before_rendering_refuses_while_cooling_but_never_takes_the_trial() -> None:
    """refuse_while_open fails fast during the cooldown; after it, it lets the caller go on
    without claiming the half-open trial, which the send's own check then gets."""
    clock = FakeClock(T0)
    breakers = Breakers(clock, threshold=1, cooldown=10)
    breakers.failure("hook")
    with pytest.raises(CircuitOpen):
        breakers.refuse_while_open("hook")
    clock.advance(11)
    breakers.refuse_while_open("hook")
    breakers.refuse_while_open("hook")
    breakers.check("hook")  # the trial
    with pytest.raises(CircuitOpen, match="being probed"):
        breakers.check("hook")
    breakers.refuse_while_open("unknown")
