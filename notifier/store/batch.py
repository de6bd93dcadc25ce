"""The ingest side of the store: everything one consumed batch reads and writes.

All functions take the open connection of the batch's single transaction, so a batch's
alerts, event records, notifications, rejections **and its consumed offsets** commit together.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Insert, Update, bindparam, insert, select, update
from sqlalchemy.types import TypeEngine

from notifier.correlate import AlertState, Correlation, NOTIFYING
from notifier.intents import Intent
from notifier.store.database import StaleOffsetsError
from notifier.store.schema import alerts, consumer_offsets, events, notifications, rejections

# SQLite allows 32,766 bound parameters per statement; stay far below for IN lists.
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record refused at ingest, kept in the store next to its dead-letter copy."""

    topic: str
    partition: int
    offset: int
    code: str
    detail: str


class _Bulk:
    """A statement compiled once per dialect and run through the driver's ``executemany``.

    The hot path writes thousands of rows per batch; SQLAlchemy's generic per-row parameter
    handling costs more than the database does. This keeps the same types (their public bind
    processors) but applies them in one tight loop.
    """

    def __init__(self, stmt: Insert | Update, types: Mapping[str, TypeEngine[Any]]) -> None:
        self._stmt = stmt
        self._types = types
        self._compiled: dict[str, tuple[str, list[str] | None, dict[str, Any]]] = {}

    def run(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute the statement once per row (rows are dicts keyed by bind parameter)."""
        if not rows:
            return
        dialect = conn.dialect
        cached = self._compiled.get(dialect.name)
        if cached is None:
            compiled = self._stmt.compile(dialect=dialect)
            processors = {}
            for name, type_ in self._types.items():
                proc = type_.bind_processor(dialect)
                if proc is not None:
                    processors[name] = proc
            order = list(compiled.positiontup) if compiled.positional and compiled.positiontup else None
            cached = (str(compiled), order, processors)
            self._compiled[dialect.name] = cached
        sql, order, processors = cached
        params: list[Any] = []
        for row in rows:
            values = dict(row)
            for name, proc in processors.items():
                values[name] = proc(values[name])
            params.append(tuple(values[n] for n in order) if order is not None else values)
        conn.exec_driver_sql(sql, params)


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def load_offsets(conn: Connection, group: str, topic: str) -> dict[int, int]:
    """Return the next offset to read per partition, as last committed with a batch."""
    rows = conn.execute(
        select(consumer_offsets.c.partition, consumer_offsets.c.next_offset).where(
            consumer_offsets.c.group_id == group, consumer_offsets.c.topic == topic
        )
    )
    return {int(p): int(o) for p, o in rows}


def fence_offsets(
    conn: Connection, group: str, topic: str, starts: Mapping[int, int], lock: bool
) -> dict[int, int]:
    """Check that no partition's stored offset is past where this batch starts.

    Raises StaleOffsetsError when another consumer already stored a later position (after
    a rebalance): applying the batch again would apply its events twice. On PostgreSQL the
    offset rows are locked until commit, so two instances cannot both pass the check.
    """
    query = select(consumer_offsets.c.partition, consumer_offsets.c.next_offset).where(
        consumer_offsets.c.group_id == group,
        consumer_offsets.c.topic == topic,
        consumer_offsets.c.partition.in_(list(starts)),
    )
    if lock:
        query = query.with_for_update()
    stored = {int(p): int(o) for p, o in conn.execute(query)}
    for partition, start in starts.items():
        # ">" rather than "!=": offsets may have gaps (compaction, transaction markers).
        if partition in stored and stored[partition] > start:
            raise StaleOffsetsError(
                f"partition {partition}: batch starts at {start}, store is at {stored[partition]}"
            )
    return stored


def seen_event_keys(conn: Connection, keys: Sequence[str]) -> set[str]:
    """Return which of ``keys`` the store already processed."""
    seen: set[str] = set()
    for chunk in _chunks(keys):
        seen.update(conn.scalars(select(events.c.event_key).where(events.c.event_key.in_(chunk))))
    return seen


def alerts_by_fingerprint(
    conn: Connection, fingerprints: Sequence[str], lock: bool
) -> dict[str, AlertState]:
    """Return the stored alerts for ``fingerprints`` (locked for update on PostgreSQL)."""
    found: dict[str, AlertState] = {}
    for chunk in _chunks(fingerprints):
        query = select(alerts).where(alerts.c.fingerprint.in_(chunk))
        if lock:
            query = query.with_for_update()
        for row in conn.execute(query).mappings():
            found[row["fingerprint"]] = AlertState(**row)
    return found


def write_batch(
    conn: Connection,
    *,
    correlation: Correlation,
    intents: Sequence[Intent],
    rejected: Sequence[Rejection],
    group: str,
    topic: str,
    next_offsets: Mapping[int, int],
    stored_offsets: Mapping[int, int],
    now: datetime,
) -> None:
    """Write every effect of a batch and advance its offsets (inside the caller's transaction)."""
    _write_alerts(conn, correlation)
    _INSERT_EVENTS.run(
        conn,
        [
            {
                "event_key": r.key,
                "source": r.positioned.event.source,
                "id": r.positioned.event.id,
                "type": r.positioned.event.type,
                "fingerprint": r.positioned.event.fingerprint,
                "alert_id": r.alert_id,
                "effect": r.effect.value,
                "event_time": r.positioned.event.time,
                "received_at": now,
                "topic": r.positioned.topic,
                "partition": r.positioned.partition,
                "offset": r.positioned.offset,
                # Rendering needs the payload of events people hear about; repeats only
                # count, so their bodies are not kept.
                "payload": r.positioned.event.to_cloudevent() if r.effect in NOTIFYING else None,
            }
            for r in correlation.records
        ],
    )
    if intents:
        conn.execute(insert(notifications), [_intent_row(i) for i in intents])
    if rejected:
        conn.execute(
            insert(rejections),
            [
                {
                    "topic": r.topic,
                    "partition": r.partition,
                    "offset": r.offset,
                    "code": r.code,
                    "detail": r.detail,
                    "received_at": now,
                }
                for r in rejected
            ],
        )
    _advance_offsets(conn, group, topic, next_offsets, stored_offsets, now)


def _alert_row(alert: AlertState) -> dict[str, Any]:
    return {
        "id": alert.id,
        "fingerprint": alert.fingerprint,
        "kind": alert.kind,
        "status": alert.status,
        "occurrence": alert.occurrence,
        "name": alert.name,
        "severity": alert.severity,
        "risk": alert.risk,
        "labels": dict(alert.labels),
        "summary": alert.summary,
        "starts_at": alert.starts_at,
        "ends_at": alert.ends_at,
        "created_at": alert.created_at,
        "updated_at": alert.updated_at,
        "event_count": alert.event_count,
        "last_event_key": alert.last_event_key,
    }


_ALERT_UPDATE_COLUMNS = (
    "status", "occurrence", "severity", "risk", "summary", "starts_at", "ends_at",
    "updated_at", "event_count", "last_event_key",
)


def _write_alerts(conn: Connection, correlation: Correlation) -> None:
    created = [a for a in correlation.alerts.values() if a.id in correlation.new_alert_ids]
    changed = [a for a in correlation.alerts.values() if a.id not in correlation.new_alert_ids]
    if created:
        conn.execute(insert(alerts), [_alert_row(a) for a in created])
    _UPDATE_ALERTS.run(
        conn,
        [
            {"b_id": a.id, **{f"b_{col}": getattr(a, col) for col in _ALERT_UPDATE_COLUMNS}}
            for a in changed
        ],
    )


_INSERT_EVENTS = _Bulk(insert(events), {c.name: c.type for c in events.columns})
_UPDATE_ALERTS = _Bulk(
    update(alerts)
    .where(alerts.c.id == bindparam("b_id"))
    .values({col: bindparam(f"b_{col}") for col in _ALERT_UPDATE_COLUMNS}),
    {f"b_{col}": alerts.c[col].type for col in _ALERT_UPDATE_COLUMNS},
)


def _intent_row(intent: Intent) -> dict[str, Any]:
    recipient = intent.recipient
    alert = intent.transition.alert
    return {
        "id": intent.id,
        "alert_id": alert.id,
        "occurrence": alert.occurrence,
        "kind": intent.transition.effect.value,
        "event_key": intent.transition.event_key,
        "person_id": recipient.person.id,
        "channel": intent.channel,
        "address": recipient.contact.address,
        "recipient_name": recipient.person.name,
        "tier": recipient.tier,
        "rule": recipient.rule,
        "template": recipient.template,
        "clearance": recipient.clearance.value,
        "locale": recipient.person.locale,
        "timezone": recipient.person.timezone,
        "status": "pending",
        "dispatches": 0,
        "next_attempt_at": intent.created_at,
        "created_at": intent.created_at,
    }


def _advance_offsets(
    conn: Connection,
    group: str,
    topic: str,
    next_offsets: Mapping[int, int],
    stored: Mapping[int, int],
    now: datetime,
) -> None:
    fresh = [p for p in next_offsets if p not in stored]
    known = [p for p in next_offsets if p in stored]
    if fresh:
        conn.execute(
            insert(consumer_offsets),
            [
                {"group_id": group, "topic": topic, "partition": p,
                 "next_offset": next_offsets[p], "updated_at": now}
                for p in fresh
            ],
        )
    if known:
        conn.execute(
            update(consumer_offsets)
            .where(
                consumer_offsets.c.group_id == group,
                consumer_offsets.c.topic == topic,
                consumer_offsets.c.partition == bindparam("b_partition"),
            )
            .values(next_offset=bindparam("b_next"), updated_at=bindparam("b_now")),
            [{"b_partition": p, "b_next": next_offsets[p], "b_now": now} for p in known],
        )
