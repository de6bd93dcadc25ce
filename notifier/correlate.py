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

Correlation needs only an alert's *head* (id, status, occurrence) from the store, and says
what to write as three kinds of change: whole new alerts (:class:`AlertState`), rewrites of an
existing alert's state when it re-fires or resolves (:class:`Rewrite`), and counter bumps for
every other event (:class:`Touch`). Repeats, the bulk of any stream, cost a counter bump.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from notifier.events import AlertData, Event, dedup_key
from notifier.lifecycle import Status


class Effect(StrEnum):
    """What an event did to its alert."""

    FIRING = "firing"
    REPEAT = "repeat"
    RESOLVED = "resolved"
    STALE = "stale"
    NOTICE = "notice"


# The effects that announce something to people.
NOTIFYING = frozenset({Effect.FIRING, Effect.RESOLVED, Effect.NOTICE})


# Not frozen: a frozen dataclass's __init__ costs 4x, and this is made per event.
@dataclass(slots=True)
class AlertHead:
    """What correlation needs of a stored alert: identity, status and occurrence."""

    id: str
    fingerprint: str
    status: str
    occurrence: int


@dataclass(frozen=True, slots=True)
class AlertState:
    """A whole alert row: one per fingerprint, re-fired as new occurrences."""

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

    @property
    def head(self) -> AlertHead:
        """The part of the state correlation decides on."""
        return AlertHead(self.id, self.fingerprint, self.status, self.occurrence)


@dataclass(frozen=True, slots=True)
class Rewrite:
    """The new state of an existing alert that re-fired or resolved (taken from the event)."""

    status: str
    occurrence: int
    severity: str
    risk: str | None
    summary: str
    starts_at: datetime | None
    ends_at: datetime | None


@dataclass(slots=True)
class Touch:
    """Events that reached an existing alert in this batch: how many, and the latest."""

    count: int
    updated_at: datetime
    last_event_key: str
    summary: str | None


# Not frozen: a frozen dataclass's __init__ costs 4x, and this is made per event.
@dataclass(slots=True)
class Positioned:
    """An event and where it was read from (for the event record)."""

    event: Event
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None


# Not frozen: a frozen dataclass's __init__ costs 4x, and this is made per event.
@dataclass(slots=True)
class EventRecord:
    """An accepted event and its effect, as stored."""

    key: str
    positioned: Positioned
    alert_id: str
    effect: Effect


# Not frozen: a frozen dataclass's __init__ costs 4x, and this is made per event.
@dataclass(slots=True)
class Transition:
    """A change people must hear about: the alert (after the change) and the event causing it."""

    alert: AlertHead
    event: Event
    event_key: str
    effect: Effect


@dataclass
class Correlation:
    """Everything a batch changes: records to insert, alert writes, transitions to route."""

    records: list[EventRecord] = field(default_factory=list)
    inserts: dict[str, AlertState] = field(default_factory=dict)
    rewrites: dict[str, Rewrite] = field(default_factory=dict)
    touches: dict[str, Touch] = field(default_factory=dict)
    transitions: list[Transition] = field(default_factory=list)
    duplicates: int = 0

    def bump(self, alert_id: str, key: str, now: datetime, summary: str | None) -> None:
        """Count one more event for an alert (in its insert if new, else as a touch)."""
        new = self.inserts.get(alert_id)
        if new is not None:
            self.inserts[alert_id] = replace(
                new,
                event_count=new.event_count + 1,
                updated_at=now,
                last_event_key=key,
                summary=summary if summary is not None else new.summary,
            )
            return
        touch = self.touches.get(alert_id)
        if touch is None:
            self.touches[alert_id] = Touch(1, now, key, summary)
            return
        touch.count += 1
        touch.updated_at = now
        touch.last_event_key = key
        if summary is not None:
            touch.summary = summary


event_key = dedup_key


def new_alert_id() -> str:
    """Return a fresh random alert id."""
    return uuid.uuid4().hex


def correlate(
    batch: Iterable[Positioned],
    known: Mapping[str, AlertHead],
    seen: set[str],
    now: datetime,
    new_id: Callable[[], str] = new_alert_id,
) -> Correlation:
    """Decide every event's effect, in order; ``seen`` is updated with the batch's keys."""
    result = Correlation()
    current: dict[str, AlertHead] = dict(known)
    for positioned in batch:
        event = positioned.event
        key = event.dedup_key
        if key in seen:
            result.duplicates += 1
            continue
        seen.add(key)
        effect, head = _apply(result, event, key, current.get(event.fingerprint), now, new_id)
        current[head.fingerprint] = head
        result.records.append(EventRecord(key, positioned, head.id, effect))
        if effect in NOTIFYING:
            result.transitions.append(Transition(head, event, key, effect))
    return result


def _apply(
    out: Correlation,
    event: Event,
    key: str,
    before: AlertHead | None,
    now: datetime,
    new_id: Callable[[], str],
) -> tuple[Effect, AlertHead]:
    data = event.data
    if before is None:
        if isinstance(data, AlertData) and data.status == "resolved":
            # A resolve for an alert nobody saw fire changes nothing people need to hear
            # about; it is still recorded so the timeline is complete.
            state = _fresh(event, key, now, new_id(), status="resolved")
            state = replace(state, ends_at=data.ends_at or event.time or now)
            effect = Effect.STALE
        else:
            status = "firing" if isinstance(data, AlertData) else "notice"
            state = _fresh(event, key, now, new_id(), status=status)
            effect = Effect.FIRING if isinstance(data, AlertData) else Effect.NOTICE
        out.inserts[state.id] = state
        return effect, state.head
    summary = data.annotations.summary if isinstance(data, AlertData) else None
    is_open = before.status in _OPEN_ALERT
    if not isinstance(data, AlertData) or (data.status == "firing" and is_open):
        effect, head = Effect.REPEAT, before
    elif data.status == "firing":
        head = AlertHead(before.id, before.fingerprint, "firing", before.occurrence + 1)
        _rewrite(out, head, event, data, ends_at=None, now=now)
        effect = Effect.FIRING
    elif is_open:
        head = AlertHead(before.id, before.fingerprint, "resolved", before.occurrence)
        _rewrite(out, head, event, data, ends_at=data.ends_at or event.time or now, now=now)
        effect = Effect.RESOLVED
    else:
        effect, head = Effect.STALE, before
    out.bump(head.id, key, now, summary)
    return effect, head


# Triggered or acknowledged: a repeat changes nothing, a resolve resolves.
_OPEN_ALERT = frozenset({Status.TRIGGERED.value, Status.ACKNOWLEDGED.value})


def _rewrite(
    out: Correlation,
    head: AlertHead,
    event: Event,
    data: AlertData,
    *,
    ends_at: datetime | None,
    now: datetime,
) -> None:
    # None keeps the stored start (a resolve often omits it).
    starts_at = (
        data.starts_at if head.status == "resolved" else (data.starts_at or event.time or now)
    )
    new = out.inserts.get(head.id)
    if new is not None:  # created earlier in this very batch: change the insert instead
        out.inserts[head.id] = replace(
            new,
            status=head.status,
            occurrence=head.occurrence,
            severity=data.severity.value,
            risk=data.risk.value if data.risk else None,
            summary=data.annotations.summary,
            starts_at=starts_at if starts_at is not None else new.starts_at,
            ends_at=ends_at,
        )
        return
    out.rewrites[head.id] = Rewrite(
        status=head.status,
        occurrence=head.occurrence,
        severity=data.severity.value,
        risk=data.risk.value if data.risk else None,
        summary=data.annotations.summary,
        starts_at=starts_at,
        ends_at=ends_at,
    )


def _fresh(event: Event, key: str, now: datetime, alert_id: str, status: str) -> AlertState:
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
        occurrence=1,
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
