"""Consumed offsets, stored with each batch: where to resume, and the fence against doubles."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Connection, bindparam, insert, select, update

from notifier.store.database import StaleOffsetsError
from notifier.store.schema import consumer_offsets


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


def advance_offsets(
    conn: Connection,
    group: str,
    topic: str,
    next_offsets: Mapping[int, int],
    stored: Mapping[int, int],
    now: datetime,
) -> None:
    """Store each partition's next offset (inside the batch's transaction)."""
    fresh = [p for p in next_offsets if p not in stored]
    known = [p for p in next_offsets if p in stored]
    if fresh:
        conn.execute(
            insert(consumer_offsets),
            [
                {
                    "group_id": group,
                    "topic": topic,
                    "partition": p,
                    "next_offset": next_offsets[p],
                    "updated_at": now,
                }
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
