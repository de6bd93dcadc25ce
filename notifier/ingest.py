"""The Kafka side of ingest: consume batches, dead-letter refusals, apply, commit.

Offsets live in the store, committed in the same transaction as the batch's effects; on start
and on every partition assignment the consumer seeks to the stored offsets. Kafka's own
committed offsets are written afterwards, only so lag monitoring works. Refused records go to
the dead-letter topic *before* the batch commits, so a crash can at worst dead-letter a record
twice, never lose it.

Dead-letter records keep the original key, value and headers, and add:
``notifier-dlq-reason`` (a code: not_json, oversized, schema, unknown_type, ...),
``notifier-dlq-detail`` (what exactly is wrong), ``notifier-dlq-topic``,
``notifier-dlq-partition``, ``notifier-dlq-offset``, ``notifier-dlq-group`` and
``notifier-dlq-rejected-at``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from sqlalchemy.exc import SQLAlchemyError

from notifier.clock import Clock
from notifier.pipeline import BatchOutcome, BatchProcessor, RawRecord, Refused
from notifier.settings import KafkaSettings
from notifier.store import Database
from notifier.store.offsets import load_offsets

log = structlog.get_logger(__name__)

_DETAIL_LIMIT = 2000
_RETRY_BACKOFF_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0)


def dead_letter_headers(refused: Refused, group: str, rejected_at: str) -> list[tuple[str, bytes]]:
    """The headers of a dead-letter record: the original ones plus why and where from."""
    r = refused.record
    return [
        *r.headers,
        ("notifier-dlq-reason", refused.error.code.value.encode()),
        ("notifier-dlq-detail", refused.error.detail[:_DETAIL_LIMIT].encode()),
        ("notifier-dlq-topic", r.topic.encode()),
        ("notifier-dlq-partition", str(r.partition).encode()),
        ("notifier-dlq-offset", str(r.offset).encode()),
        ("notifier-dlq-group", group.encode()),
        ("notifier-dlq-rejected-at", rejected_at.encode()),
    ]


@dataclass(frozen=True, slots=True)
class _Inflight:
    """A batch being applied in the store's worker thread."""

    records: list[RawRecord]
    task: asyncio.Task[BatchOutcome]


def _partitions(records: Sequence[RawRecord]) -> list[TopicPartition]:
    return list({TopicPartition(r.topic, r.partition) for r in records})


class _SeekToStored(ConsumerRebalanceListener):  # type: ignore[misc]
    """On assignment, resume every partition from the offset stored with its last batch."""

    def __init__(self, ingestor: Ingestor) -> None:
        self._ingestor = ingestor

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        """Let the batch being applied finish before the partitions move to someone else."""
        await self._ingestor.wait_inflight()

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        """Seek to the stored offsets."""
        await self._ingestor.seek_to_stored(assigned)


class Ingestor:
    """Consumes the events topic and applies each batch exactly once."""

    def __init__(
        self,
        settings: KafkaSettings,
        processor: BatchProcessor,
        db: Database,
        clock: Clock,
        on_batch: Callable[[BatchOutcome], None] = lambda _: None,
    ) -> None:
        self._settings = settings
        self._processor = processor
        self._db = db
        self._clock = clock
        self._on_batch = on_batch
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._inflight: _Inflight | None = None
        self.totals = {"accepted": 0, "duplicates": 0, "rejected": 0, "notifications": 0}

    async def start(self) -> None:
        """Connect the DLQ producer and join the consumer group."""
        s = self._settings
        self._producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap_servers,
            client_id=f"{s.client_id}-dlq",
            acks="all",
            enable_idempotence=False,
        )
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap_servers,
            client_id=s.client_id,
            group_id=s.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=max(1_048_576, s.max_event_bytes * 2),
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
            rebalance_timeout_ms=s.rebalance_timeout_ms,
        )
        self._consumer.subscribe([s.topic], listener=_SeekToStored(self))
        await self._consumer.start()
        log.info("ingest.started", topic=s.topic, group=s.group_id)

    async def stop(self) -> None:
        """Leave the group and close connections (the last batch is already committed)."""
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def seek_to_stored(self, partitions: Sequence[TopicPartition]) -> None:
        """Position the consumer at the stored offsets of ``partitions``."""
        assert self._consumer is not None
        stored = await asyncio.to_thread(self._load_offsets)
        for tp in partitions:
            if tp.topic == self._settings.topic and tp.partition in stored:
                self._consumer.seek(tp, stored[tp.partition])
        log.info(
            "ingest.assigned",
            partitions=sorted(tp.partition for tp in partitions),
            resumed=len([tp for tp in partitions if tp.partition in stored]),
        )

    def _load_offsets(self) -> dict[int, int]:
        with self._db.transaction() as conn:
            return load_offsets(conn, self._settings.group_id, self._settings.topic)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; errors are logged and the batch retried, never lost.

        Two batches overlap: while one is applied in the store's worker thread, the next is
        fetched and decoded on the event loop. Batches still commit strictly in order, and a
        failed or stale batch rewinds the one fetched behind it too.
        """
        assert self._consumer is not None
        failures = 0
        inflight: _Inflight | None = None
        while not stop.is_set() or inflight is not None:
            records: list[RawRecord] = []
            if not stop.is_set():
                # With a batch in flight, take only what is already fetched: its completion
                # (Kafka commit, waking the dispatcher) must not wait for new records.
                fetched = await self._consumer.getmany(
                    timeout_ms=0 if inflight is not None else self._settings.poll_timeout_ms,
                    max_records=self._settings.max_batch,
                )
                records = [_raw(m) for msgs in fetched.values() for m in msgs]
            decoded = self._processor.decode(records) if records else None
            if inflight is not None:
                done, inflight = inflight, None
                try:
                    ok = await self._finish(done)
                    failures = 0
                except (KafkaError, SQLAlchemyError, OSError) as exc:
                    failures += 1
                    await self._after_failure(exc, failures, [*done.records, *records])
                    continue
                if not ok:
                    await self.seek_to_stored(_partitions([*done.records, *records]))
                    continue
            if decoded is None:
                continue
            try:
                if decoded.refused:
                    # Before the batch commits: a crash can dead-letter twice, never lose one.
                    await self._dead_letter(decoded.refused)
            except KafkaError as exc:
                failures += 1
                await self._after_failure(exc, failures, records)
                continue
            task = asyncio.create_task(asyncio.to_thread(self._processor.apply, records, decoded))
            inflight = self._inflight = _Inflight(records, task)

    async def wait_inflight(self) -> None:
        """Wait until the batch being applied (if any) has committed or failed."""
        current = self._inflight
        if current is not None:
            await asyncio.wait([current.task])

    async def _finish(self, batch: _Inflight) -> bool:
        """Account for an applied batch; False when it was stale (nothing was written)."""
        outcome = await batch.task
        if outcome.stale:
            return False
        for name in self.totals:
            self.totals[name] += getattr(outcome, name)
        log.info(
            "ingest.batch",
            records=len(batch.records),
            accepted=outcome.accepted,
            duplicates=outcome.duplicates,
            rejected=outcome.rejected,
            notifications=outcome.notifications,
        )
        self._on_batch(outcome)
        await self._commit_to_kafka(batch.records)
        return True

    async def _after_failure(
        self, exc: Exception, failures: int, records: Sequence[RawRecord]
    ) -> None:
        delay = _RETRY_BACKOFF_SECONDS[min(failures, len(_RETRY_BACKOFF_SECONDS)) - 1]
        log.error(
            "ingest.batch_failed", error_type=type(exc).__name__, error=str(exc), retry_in=delay
        )
        self._rewind(records)
        await self._clock.sleep(delay)

    async def _dead_letter(self, refused: Sequence[Refused]) -> None:
        assert self._producer is not None
        rejected_at = self._clock.now().isoformat()
        sends = [
            await self._producer.send(
                self._settings.dlq_topic,
                value=r.record.value,
                key=r.record.key,
                headers=dead_letter_headers(r, self._settings.group_id, rejected_at),
            )
            for r in refused
        ]
        await asyncio.gather(*sends)
        for r in refused:
            log.warning(
                "ingest.rejected",
                topic=r.record.topic,
                partition=r.record.partition,
                offset=r.record.offset,
                reason=r.error.code.value,
            )

    def _rewind(self, records: Sequence[RawRecord]) -> None:
        assert self._consumer is not None
        firsts: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            firsts[tp] = min(firsts.get(tp, r.offset), r.offset)
        for tp, offset in firsts.items():
            self._consumer.seek(tp, offset)

    async def _commit_to_kafka(self, records: Sequence[RawRecord]) -> None:
        assert self._consumer is not None
        nexts: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            nexts[tp] = max(nexts.get(tp, 0), r.offset + 1)
        try:
            await self._consumer.commit(nexts)
        except KafkaError as exc:
            # Only lag monitoring depends on Kafka's copy; the store holds the truth.
            log.warning("ingest.kafka_commit_failed", error_type=type(exc).__name__)


def _raw(m: ConsumerRecord[bytes, bytes]) -> RawRecord:
    return RawRecord(
        topic=m.topic,
        partition=m.partition,
        offset=m.offset,
        key=m.key,
        value=m.value,
        headers=tuple(m.headers or ()),
        timestamp_ms=m.timestamp,
    )
