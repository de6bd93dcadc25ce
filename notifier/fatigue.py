"""Fatigue control: grouping, rate limits and quiet hours, as pure decisions.

Configured under ``fatigue`` in the routing file (all optional)::

    fatigue:
      grouping:
        by: [network, alertname]      # labels that make a group (alertname, severity count)
        wait: PT30S                   # a new group waits this long before its first message
        interval: PT5M                # then changes go out at most this often
        repeat: [PT4H, P1D]           # still firing: repeated after 4 h, then every day
        severities: [warning, info]   # which alerts are grouped (default: all)
      rate_limits:                    # token buckets per contact address and channel
        - {channel: email, count: 20, per: PT1H, burst: 10}
        - {channel: slack, count: 60, per: PT1H, burst: 20}
      critical_ceiling: {count: 60, per: PT1H, burst: 30}
      quiet_severities: [warning, info]

Every decision is about one recipient on one channel. A message that must not go now is
**bundled**: it joins a digest (a notification of kind ``digest`` listing its alerts) that is
sent later: when its group's wait or interval is over (``grouped``), when the recipient's
budget allows another message (``throttled``: the digest says how many alerts came while
they were being paged), or when their quiet hours end (``quiet``, the morning digest).

Rate limits use GCRA, the token bucket written as one timestamp per bucket (the theoretical
arrival time): ``count`` messages per ``per`` on average, ``burst`` at once. Critical alerts
are decided first, and when the ordinary budget is spent they may still go out under the
``critical_ceiling`` bucket, a hard limit of its own. Quiet hours (per person, in their own
timezone, in the directory) hold only ``quiet_severities``; critical alerts always go through.

Grouping, limits and quiet hours apply to what events cause (an alert firing or resolving),
not to escalation steps, follow-ups or policy notices, which are deliberate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from notifier.events import Severity

if TYPE_CHECKING:
    from notifier.directory import Person

__all__ = [
    "DIGEST_TEMPLATE",
    "BundleReason",
    "FatigueConfig",
    "Grouping",
    "QuietHours",
    "RateLimit",
    "admit",
    "group_due",
    "group_key",
    "next_admitted",
    "quiet_until",
]

_ALL_SEVERITIES = tuple(Severity)

DIGEST_TEMPLATE = "digest"
"""The template digests are rendered with."""


class BundleReason:
    """Why a message was bundled into a digest (the member's ``error_reason``)."""

    GROUPED = "grouped"
    THROTTLED = "throttled"
    QUIET = "quiet"


class RateLimit(BaseModel):
    """At most ``count`` messages per ``per`` on average, ``burst`` at once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: Literal["email", "slack", "webhook"] | None = Field(
        default=None, description="the channel limited; none for the critical ceiling"
    )
    count: int = Field(ge=1, le=100_000)
    per: timedelta = Field(description="ISO 8601 duration (PT1H) or seconds")
    burst: int = Field(default=1, ge=1, le=10_000)

    @model_validator(mode="after")
    def _positive(self) -> RateLimit:
        if self.per <= timedelta(0):
            raise ValueError("rate limit 'per' must be a positive duration")
        return self

    @property
    def interval(self) -> timedelta:
        """The average time between two messages."""
        return self.per / self.count

    @property
    def tolerance(self) -> timedelta:
        """How far ahead of schedule a burst may run."""
        return self.interval * (self.burst - 1)


class Grouping(BaseModel):
    """Which alerts are batched per recipient, and how long batches wait."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    by: tuple[str, ...] = ("network", "alertname")
    wait: timedelta = Field(default=timedelta(seconds=30), description="ISO 8601 or seconds")
    interval: timedelta = Field(default=timedelta(minutes=5), description="ISO 8601 or seconds")
    severities: tuple[Severity, ...] = _ALL_SEVERITIES
    repeat: tuple[timedelta, ...] = Field(
        default=(timedelta(hours=4), timedelta(days=1)),
        description="a group still firing is repeated after each of these in turn (the last "
        "one again and again); empty: never",
    )

    @model_validator(mode="after")
    def _sane(self) -> Grouping:
        if self.wait < timedelta(0) or self.interval <= timedelta(0):
            raise ValueError("grouping wait must not be negative and interval must be positive")
        if any(r <= timedelta(0) for r in self.repeat):
            raise ValueError("grouping repeat intervals must be positive durations")
        return self

    def repeat_after(self, repeats: int) -> timedelta | None:
        """How long after its last message a group still firing is repeated, given how many
        times it was repeated already (the backoff); None: never."""
        if not self.repeat:
            return None
        return self.repeat[min(repeats, len(self.repeat) - 1)]


class QuietHours(BaseModel):
    """A daily window (in the person's timezone) without non-critical messages."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: time
    end: time

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet hours must start and end at different times")
        return self


class FatigueConfig(BaseModel):
    """The ``fatigue`` section of the routing file (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    grouping: Grouping | None = None
    rate_limits: tuple[RateLimit, ...] = ()
    critical_ceiling: RateLimit | None = None
    quiet_severities: tuple[Severity, ...] = (Severity.WARNING, Severity.INFO)

    @model_validator(mode="after")
    def _one_limit_per_channel(self) -> FatigueConfig:
        channels = [limit.channel for limit in self.rate_limits]
        if None in channels:
            raise ValueError("every rate limit names its channel (email, slack or webhook)")
        twice = sorted({c for c in channels if c is not None and channels.count(c) > 1})
        if twice:
            raise ValueError(f"one rate limit per channel; repeated: {', '.join(twice)}")
        return self

    def limit_for(self, channel: str) -> RateLimit | None:
        """The rate limit of ``channel``, if it has one."""
        return next((r for r in self.rate_limits if r.channel == channel), None)

    def may_bundle(self, anyone_has_quiet_hours: bool) -> bool:
        """Whether any message can end up in a digest."""
        return bool(self.grouping or self.rate_limits or anyone_has_quiet_hours)

    def quiet_until(self, person: Person, severity: str, now: datetime) -> datetime | None:
        """When ``person``'s quiet hours end, if they hold a ``severity`` alert at ``now``
        (never for critical ones); else None."""
        if person.quiet_hours is None or severity == "critical":
            return None
        if severity not in self.quiet_severities:
            return None
        return quiet_until(now, person.timezone, person.quiet_hours)

    def groups(self, severity: str) -> bool:
        """Whether alerts of ``severity`` are grouped."""
        return self.grouping is not None and severity in self.grouping.severities


def group_due(now: datetime, last_flush: datetime | None, grouping: Grouping) -> datetime:
    """When a group's next digest goes out if an alert joins it at ``now``: ``wait`` after
    the alert for a new group, and never sooner than ``interval`` after the last one."""
    first = now + grouping.wait
    return first if last_flush is None else max(first, last_flush + grouping.interval)


def admit(tat: datetime | None, at: datetime, limit: RateLimit) -> tuple[bool, datetime]:
    """May a message go at ``at`` under ``limit``, given the bucket's theoretical arrival time
    ``tat`` (None: a fresh, full bucket)? Returns whether, and the bucket's new ``tat``
    (unchanged when refused)."""
    current = at if tat is None else tat
    if at < current - limit.tolerance:
        return False, current
    return True, max(current, at) + limit.interval


def next_admitted(tat: datetime | None, at: datetime, limit: RateLimit) -> datetime:
    """The earliest time from ``at`` on when ``limit`` admits a message."""
    if tat is None:
        return at
    return max(at, tat - limit.tolerance)


def quiet_until(now: datetime, timezone: str, quiet: QuietHours) -> datetime | None:
    """When the quiet hours around ``now`` end (aware, in the person's timezone), or None if
    ``now`` is outside them. Windows may span midnight (22:00-07:00); a daylight-saving
    change inside the window is handled by the timezone rules."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    spans_midnight = quiet.start > quiet.end
    inside = (
        (clock >= quiet.start or clock < quiet.end)
        if spans_midnight
        else quiet.start <= clock < quiet.end
    )
    if not inside:
        return None
    day = local.date()
    if spans_midnight and clock >= quiet.start:
        day += timedelta(days=1)
    end = datetime.combine(day, quiet.end, tzinfo=zone)
    # A wall time inside a spring-forward gap does not exist; round trip through UTC to land
    # on a real instant (zoneinfo maps it past the gap).
    return end.astimezone(ZoneInfo("UTC")).astimezone(zone)


def group_key(
    person_id: str, channel: str, labels: Mapping[str, str], by: Sequence[str]
) -> tuple[str, dict[str, str]]:
    """The bundle key of a group for one recipient on one channel, and the group's labels."""
    values = {name: labels.get(name, "") for name in by}
    raw = orjson.dumps([person_id, channel, "group", values], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(raw, digest_size=16).hexdigest(), values


def bundle_key(person_id: str, channel: str, reason: str) -> str:
    """The bundle key of a recipient's throttled or quiet digest on one channel."""
    raw = orjson.dumps([person_id, channel, reason])
    return hashlib.blake2b(raw, digest_size=16).hexdigest()
