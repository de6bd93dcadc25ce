"""One consumed batch, from raw Kafka records to committed effects.

decode → correlate → route → persist, in that order, written once. :meth:`decode` is pure and
runs on the event loop; :meth:`apply` runs one store transaction (in a worker thread) that
holds the batch's alerts, event records, notifications, rejections and consumed offsets.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog
from sqlalchemy.exc import IntegrityError

from notifier.clock import Clock
from notifier.correlate import Effect, Positioned, correlate
from notifier.decoding import decode_record
from notifier.errors import RejectedInput
from notifier.events import Header
from notifier.intents import plan, receipt_requests, start_timers
from notifier.routing import Router
from notifier.store import Database, StaleOffsetsError
from notifier.store.batch import (
    Rejection,
    alert_heads,
    seen_event_keys,
    write_batch,
)
from notifier.store.fatigue import gate_batch
from notifier.store.followups import paged
from notifier.store.holds import hold_batch, judge_batch, open_holds
from notifier.store.offsets import fence_offsets

log = structlog.get_logger(__name__)


# Not frozen: a frozen dataclass's __init__ costs 4x, and this is made per event.
@dataclass(slots=True)
class RawRecord:
    """A Kafka record as the consumer hands it over."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[Header]
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    """A record that could not be accepted, and why."""

    record: RawRecord
    error: RejectedInput


@dataclass
class Decoded:
    """The accepted events and refused records of a batch."""

    events: list[Positioned] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What a batch did, for logs, metrics and the dispatcher's wake-up."""

    accepted: int
    duplicates: int
    rejected: int
    notifications: int
    stale: bool = False
    timers: int = 0
    held: int = 0
    bundled: int = 0


class BatchProcessor:
    """Applies consumed batches to the store exactly once."""

    def __init__(
        self,
        db: Database,
        router: Router,
        clock: Clock,
        *,
        group: str,
        topic: str,
        max_event_bytes: int,
    ) -> None:
        self._db = db
        self._router = router
        self._clock = clock
        self._group = group
        self._topic = topic
        self._max_event_bytes = max_event_bytes

    def decode(self, records: Sequence[RawRecord]) -> Decoded:
        """Decode every record; refusals keep the record so it can be dead-lettered."""
        out = Decoded()
        for record in records:
            try:
                events = decode_record(
                    record.value, record.headers, max_bytes=self._max_event_bytes
                )
            except RejectedInput as exc:
                out.refused.append(Refused(record, exc))
                continue
            out.events.extend(
                Positioned(e, record.topic, record.partition, record.offset) for e in events
            )
        return out

    def apply(self, records: Sequence[RawRecord], decoded: Decoded) -> BatchOutcome:
        """Apply a decoded batch in one transaction, offsets included.

        Returns a stale outcome, with nothing written, when another consumer already stored a
        later position for one of the batch's partitions (the caller re-seeks).
        """
        starts: dict[int, int] = {}
        nexts: dict[int, int] = {}
        for record in records:
            starts[record.partition] = min(
                starts.get(record.partition, record.offset), record.offset
            )
            nexts[record.partition] = max(nexts.get(record.partition, 0), record.offset + 1)
        now = self._clock.now()
        lock = not self._db.is_sqlite
        try:
            with self._db.transaction() as conn:
                stored = fence_offsets(conn, self._group, self._topic, starts, lock)
                keys = [p.event.dedup_key for p in decoded.events]
                seen = seen_event_keys(conn, keys)
                fingerprints = list({p.event.fingerprint for p in decoded.events})
                known = alert_heads(conn, fingerprints, lock)
                correlation = correlate(decoded.events, known, seen, now)
                resolved = [
                    (t.alert.id, t.alert.occurrence)
                    for t in correlation.transitions
                    if t.effect is Effect.RESOLVED
                ]
                escalated = {
                    occurrence: [p.recipient for p in pages]
                    for occurrence, pages in paged(
                        conn, resolved, self._router.directory, escalated_only=True
                    ).items()
                }
                intents = plan(correlation.transitions, self._router, now, escalated)
                scheduled = start_timers(correlation.transitions, self._router, now)
                asked, receipt_timers = receipt_requests(intents, self._router, now)
                scheduled += receipt_timers
                # Holds (silences, flapping, inhibition) and fatigue (grouping, limits, quiet
                # hours) are decided before the writes, so each notification is written once,
                # with its final status.
                config = self._router.config
                judged = judge_batch(
                    conn, correlation.transitions, now, config.inhibit_rules, config.flapping
                )
                # Held alerts are not gated: neither what fires now nor the resolves of
                # occurrences held earlier (those are suppressed with their hold).
                resolving = [
                    t.alert.id for t in correlation.transitions if t.effect is Effect.RESOLVED
                ]
                held_before = open_holds(conn, resolving) if resolving else {}
                skip = frozenset(a for a, _ in [*judged, *held_before])
                gated = gate_batch(conn, intents, now, config.fatigue, lock=lock, skip=skip)
                write_batch(
                    conn,
                    correlation=correlation,
                    intents=intents,
                    decisions=gated.decisions,
                    rejected=[
                        Rejection(
                            r.record.topic,
                            r.record.partition,
                            r.record.offset,
                            r.error.code.value,
                            r.error.detail,
                        )
                        for r in decoded.refused
                    ],
                    scheduled=scheduled,
                    receipts_asked=asked,
                    group=self._group,
                    topic=self._topic,
                    next_offsets=nexts,
                    stored_offsets=stored,
                    now=now,
                )
                held = hold_batch(conn, correlation.transitions, now, config.inhibit_rules, judged)
        except StaleOffsetsError as exc:
            log.warning("batch.stale", detail=str(exc))
            return BatchOutcome(0, 0, 0, 0, stale=True)
        except IntegrityError:
            # Another instance wrote the same rows first (a rebalance race): its transaction
            # holds these effects, so ours must not.
            log.warning("batch.conflict")
            return BatchOutcome(0, 0, 0, 0, stale=True)
        if log.is_enabled_for(logging.INFO):
            recipients = Counter(i.transition.event_key for i in intents)
            for t in correlation.transitions:
                log.info(
                    "alert." + t.effect.value,
                    event_id=t.event.id,
                    alert_id=t.alert.id,
                    occurrence=t.alert.occurrence,
                    recipients=recipients[t.event_key],
                )
        return BatchOutcome(
            accepted=len(correlation.records),
            duplicates=correlation.duplicates,
            rejected=len(decoded.refused),
            notifications=len(intents) + held.notifications_released,
            timers=len(scheduled) + held.timers_released,
            held=held.held,
            bundled=gated.held_back,
        )
