"""Correlation: events with the same fingerprint update one alert; duplicates have no effect.

Pure logic. Given a batch of events, the alerts the store already knows for their fingerprints
and the event keys it has already seen, :func:`correlate` decides each event's effect:

==========  ===========================================  ==========================
effect      when                                         notification
==========  ===========================================  ==========================
firing      firing, alert unknown or resolved            ``firing`` (a new occurrence)
repeat      firing, alert already firing; or a repeated  none: nobody is re-paged
            policy notice
resolved    resolved, alert firing                       ``resolved``
stale       resolved, alert unknown or already resolved  none
notice      a policy change seen for the first time      ``notice``
==========  ===========================================  ==========================

An event whose source + id was already processed (the CloudEvents rule) is a duplicate: it is
counted and otherwise ignored, so producer retries and replays are harmless.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from notifier.events import AlertData, Event


class Effect(StrEnum):
    """What an event did to its alert."""

    FIRING = "firing"
    REPEAT = "repeat"
    RESOLVED = "resolved"
    STALE = "stale"
    NOTICE = "notice"


# The effects that announce something to people.
NOTIFYING = frozenset({Effect.FIRING, Effect.RESOLVED, Effect.NOTICE})


@dataclass(frozen=True, slots=True)
class AlertState:
    """An alert as the store keeps it: one row per fingerprint, re-fired as new occurrences."""

    id: str
    fingerprint: str
    kind: str
    status: str
    occurrence: int
    name: str
    severity: str
    risk: str | None
    labels: Mapping[str, str]
    summary: str
    starts_at: datetime | None
    ends_at: datetime | None
    created_at: datetime
    updated_at: datetime
    event_count: int
    last_event_key: str


@dataclass(frozen=True, slots=True)
class Positioned:
    """An event and where it was read from (for the event record)."""

    event: Event
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """An accepted event and its effect, as stored."""

    key: str
    positioned: Positioned
    alert_id: str
    effect: Effect


@dataclass(frozen=True, slots=True)
class Transition:
    """A change people must hear about: the alert after the change and the event causing it."""

    alert: AlertState
    event: Event
    event_key: str
    effect: Effect


@dataclass
class Correlation:
    """Everything a batch changes: records to insert, alerts to write, transitions to route."""

    records: list[EventRecord] = field(default_factory=list)
    alerts: dict[str, AlertState] = field(default_factory=dict)
    new_alert_ids: set[str] = field(default_factory=set)
    transitions: list[Transition] = field(default_factory=list)
    duplicates: int = 0


def event_key(source: str, event_id: str) -> str:
    """Hash a CloudEvent's source and id into the 32-hex-digit key the store dedupes on."""
    return hashlib.blake2b(f"{source}\x00{event_id}".encode(), digest_size=16).hexdigest()


def new_alert_id() -> str:
    """Return a fresh random alert id."""
    return uuid.uuid4().hex


def correlate(
    batch: Iterable[Positioned],
    known: Mapping[str, AlertState],
    seen: set[str],
    now: datetime,
    new_id: Callable[[], str] = new_alert_id,
) -> Correlation:
    """Decide every event's effect, in order; ``seen`` is updated with the batch's keys."""
    result = Correlation()
    current: dict[str, AlertState] = dict(known)
    for positioned in batch:
        event = positioned.event
        key = event_key(event.source, event.id)
        if key in seen:
            result.duplicates += 1
            continue
        seen.add(key)
        fingerprint = event.fingerprint
        before = current.get(fingerprint)
        effect, after = _apply(event, key, before, now, new_id)
        if before is None:
            result.new_alert_ids.add(after.id)
        current[fingerprint] = after
        result.alerts[after.id] = after
        result.records.append(EventRecord(key, positioned, after.id, effect))
        if effect in NOTIFYING:
            result.transitions.append(Transition(after, event, key, effect))
    return result


def _apply(
    event: Event, key: str, before: AlertState | None, now: datetime, new_id: Callable[[], str]
) -> tuple[Effect, AlertState]:
    data = event.data
    if not isinstance(data, AlertData):
        if before is not None:
            return Effect.REPEAT, _touch(before, key, now)
        return Effect.NOTICE, _fresh(event, key, now, new_id(), occurrence=1, status="notice")
    if data.status == "firing":
        if before is None:
            return Effect.FIRING, _fresh(event, key, now, new_id(), occurrence=1, status="firing")
        if before.status == "firing":
            return Effect.REPEAT, _touch(before, key, now, summary=data.annotations.summary)
        refired = _fresh(event, key, now, before.id, before.occurrence + 1, "firing")
        return Effect.FIRING, replace(
            refired, created_at=before.created_at, event_count=before.event_count + 1
        )
    # A resolve for an alert nobody saw fire (or already resolved) changes nothing people need
    # to hear about; it is still recorded so the timeline is complete.
    if before is None:
        stale = _fresh(event, key, now, new_id(), occurrence=1, status="resolved")
        return Effect.STALE, replace(stale, ends_at=data.ends_at or event.time or now)
    if before.status != "firing":
        return Effect.STALE, _touch(before, key, now)
    resolved = replace(
        _touch(before, key, now),
        status="resolved",
        ends_at=data.ends_at or event.time or now,
    )
    return Effect.RESOLVED, resolved


def _touch(
    alert: AlertState, key: str, now: datetime, summary: str | None = None
) -> AlertState:
    return replace(
        alert,
        updated_at=now,
        event_count=alert.event_count + 1,
        last_event_key=key,
        summary=summary if summary is not None else alert.summary,
    )


def _fresh(
    event: Event, key: str, now: datetime, alert_id: str, occurrence: int, status: str
) -> AlertState:
    data = event.data
    if isinstance(data, AlertData):
        kind, name, summary = "alert", data.alertname, data.annotations.summary
        starts_at = data.starts_at or event.time or now
    else:
        kind, name, summary = "policy", data.title, data.summary
        starts_at = data.effective_at
    return AlertState(
        id=alert_id,
        fingerprint=event.fingerprint,
        kind=kind,
        status=status,
        occurrence=occurrence,
        name=name,
        severity=event.severity.value,
        risk=event.risk.value if event.risk else None,
        labels=event.labels,
        summary=summary,
        starts_at=starts_at,
        ends_at=None,
        created_at=now,
        updated_at=now,
        event_count=1,
        last_event_key=key,
    )
