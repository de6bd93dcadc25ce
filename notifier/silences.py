"""Silences and maintenance windows: which alerts are tracked but not notified, and until when.

A silence is a set of label matchers (:mod:`notifier.matchers`), a window (``starts_at`` to
``ends_at``), who created it and why. While it is active, a firing alert whose labels match
every matcher is held: stored, correlated and shown, but nobody is paged and its escalation
does not advance. When the silence ends (or is expired early) and the alert is still firing,
it is notified then. Silences apply to alerts, never to policy notices: those are approved
communications that must go out.

The labels a silence sees are the alert's labels plus ``alertname`` and ``severity``.

This module is pure: it decides; :mod:`notifier.store.holds` stores and applies.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from notifier.errors import NotifierError, Reason
from notifier.matchers import Matcher, matches_all, matches_everything, parse

__all__ = [
    "MAX_COMMENT_CHARS",
    "MAX_MATCHERS",
    "MAX_SILENCE",
    "Silence",
    "SilenceRefused",
    "SilenceState",
    "alert_labels",
    "covering",
    "new_silence",
]

MAX_SILENCE = timedelta(days=90)
"""The longest a silence may last: a forgotten silence must not hide alerts for ever."""
MAX_COMMENT_CHARS = 1000
MAX_MATCHERS = 32


class SilenceRefused(NotifierError):
    """A silence that cannot be created or expired as asked; the message says why."""

    reason = Reason.CLIENT


class SilenceState(StrEnum):
    """Where a silence is in its life, at a given time."""

    PENDING = "pending"  # starts later
    ACTIVE = "active"
    EXPIRED = "expired"  # ended, or expired early by someone


@dataclass(frozen=True, slots=True)
class Silence:
    """One silence, as stored."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    created_at: datetime
    expired_at: datetime | None = None
    expired_by: str | None = None

    @property
    def ends(self) -> datetime:
        """When it stops holding alerts: its end, or when it was expired, if earlier."""
        if self.expired_at is not None and self.expired_at < self.ends_at:
            return self.expired_at
        return self.ends_at

    def state(self, now: datetime) -> SilenceState:
        """Pending, active or expired at ``now``."""
        if now >= self.ends:
            return SilenceState.EXPIRED
        if now < self.starts_at:
            return SilenceState.PENDING
        return SilenceState.ACTIVE

    def covers(self, labels: Mapping[str, str], now: datetime) -> bool:
        """Whether an alert with ``labels`` is silenced by this at ``now``."""
        return self.state(now) is SilenceState.ACTIVE and matches_all(self.matchers, labels)

    def describe(self) -> str:
        """One line for explanations: id, who, until when, why."""
        matchers = ", ".join(str(m) for m in self.matchers)
        return (
            f"silence {self.id} by {self.created_by} until {self.ends.isoformat()} "
            f"({{{matchers}}}): {self.comment}"
        )


def alert_labels(name: str, severity: str, labels: Mapping[str, str]) -> dict[str, str]:
    """The labels silences and inhibition rules match: the alert's own, plus ``alertname``
    and ``severity`` (an explicit label of the same name wins)."""
    return {"alertname": name, "severity": severity, **labels}


def covering(
    silences: Iterable[Silence], labels: Mapping[str, str], now: datetime
) -> Silence | None:
    """The active silence holding an alert with ``labels`` (the one ending last, so the alert
    is released once, when the last of them ends), or None."""
    found = [s for s in silences if s.covers(labels, now)]
    return max(found, key=lambda s: (s.ends, s.id)) if found else None


def new_silence(
    matchers: Sequence[str | Matcher],
    *,
    created_by: str,
    comment: str,
    now: datetime,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    duration: timedelta | None = None,
) -> Silence:
    """Validate and build a silence; raise :class:`SilenceRefused` saying what to fix.

    The window is ``starts_at`` (default ``now``) to ``ends_at``, or ``starts_at + duration``.
    """
    if not matchers:
        raise SilenceRefused('a silence needs at least one matcher, e.g. alertname="NodeDown"')
    if len(matchers) > MAX_MATCHERS:
        raise SilenceRefused(f"a silence takes at most {MAX_MATCHERS} matchers")
    parsed: list[Matcher] = []
    for m in matchers:
        try:
            parsed.append(m if isinstance(m, Matcher) else parse(m))
        except ValueError as exc:
            raise SilenceRefused(str(exc)) from None
    if matches_everything(parsed):
        raise SilenceRefused(
            "these matchers match every alert (each one matches an empty label); add a "
            'matcher that names what to silence, e.g. network="testnet"'
        )
    text = comment.strip()
    if not text:
        raise SilenceRefused("say why: a silence needs a comment (the change, the ticket)")
    if len(text) > MAX_COMMENT_CHARS:
        raise SilenceRefused(f"the comment is longer than {MAX_COMMENT_CHARS} characters")
    start = starts_at or now
    if ends_at is None and duration is None:
        raise SilenceRefused("give an end time or a duration")
    end = ends_at if ends_at is not None else start + (duration or timedelta())
    if end <= start:
        raise SilenceRefused("the silence must end after it starts")
    if end <= now:
        raise SilenceRefused("the silence would already be over; give a later end")
    if end - start > MAX_SILENCE:
        raise SilenceRefused(
            f"a silence may last at most {MAX_SILENCE.days} days; create a new one when "
            "it ends if the work really takes longer"
        )
    return Silence(
        id="sil-" + secrets.token_hex(8),
        matchers=tuple(parsed),
        starts_at=start,
        ends_at=end,
        created_by=created_by,
        comment=text,
        created_at=now,
    )
