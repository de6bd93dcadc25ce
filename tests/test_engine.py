"""End to end on real components: Tansu broker → engine → SQLite → aiosmtpd inbox."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from email.message import EmailMessage
from pathlib import Path

import orjson
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from engines import make_settings

from notifier.app import Engine, load_configuration
from notifier.broker import EmbeddedBroker, ensure_topics, publish, records_for
from notifier.mailcatcher import MailCatcher
from notifier.settings import (
    Settings,
    SmtpSettings,
    StoreSettings,
)
from notifier.store.queries import counts

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "config" / "samples"
CONFIDENTIAL_TEXT = "Fork-choice weight underflow"


async def wait_until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait for a condition the engine makes true (event-driven work, bounded by timeout)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


class Running:
    """An engine running in this event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = Engine(load_configuration(settings))
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Running:
        await self.engine.start()
        self.task = asyncio.create_task(self.engine.run(self.stop))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        assert self.task is not None
        await self.task

    def consumed(self) -> int:
        t = self.engine.ingestor.totals
        return t["accepted"] + t["duplicates"] + t["rejected"]

    async def publish_files(self, *names: str) -> None:
        records = []
        for name in names:
            records += records_for((SAMPLES / name).read_bytes(), max_bytes=1 << 20)
        await publish(self.settings.kafka.bootstrap_servers, self.settings.kafka.topic, records)


@pytest.fixture
async def running(
    broker: EmbeddedBroker, smtp_settings: SmtpSettings, tmp_path: Path
) -> AsyncIterator[Running]:
    """An engine on the session's broker, delivering to the test's mailcatcher."""
    async with Running(make_settings(broker, smtp_settings, tmp_path)) as r:
        yield r


def _by_address(mails: list[EmailMessage]) -> dict[str, EmailMessage]:
    return {str(m["To"].addresses[0].addr_spec): m for m in mails}


def _text(mail: EmailMessage) -> str:
    body = mail.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


async def test_emergency_upgrade_reaches_every_tier_in_its_language(
    running: Running, mailcatcher: MailCatcher
) -> None:
    """The policy notice reaches all nine recipients, localized, confidential only to insiders."""
    await running.publish_files("policy-emergency-upgrade.json")
    captured = await mailcatcher.wait_for(9, timeout=30)
    mails = _by_address([c.message for c in captured])
    assert set(mails) == {
        "ana.costa@ops.example.net",
        "jonas.weber@ops.example.net",
        "priya.raman@ops.example.net",
        "mei.lin@ops.example.net",
        "lukas.meier@ops.example.net",
        "noc@andes-staking.example.org",
        "ops@nordlicht-nodes.example.org",
        "s.navarro@supervisor.example.gov",
        "advisories@lists.example.net",
    }
    languages = {addr: m["Content-Language"] for addr, m in mails.items()}
    assert languages["lukas.meier@ops.example.net"] == "de"  # de_CH falls back to de
    assert languages["noc@andes-staking.example.org"] == "es"
    assert languages["mei.lin@ops.example.net"] == "en"
    assert "Notfall-Upgrade" in mails["jonas.weber@ops.example.net"]["Subject"]
    assert "emergencia" in mails["ana.costa@ops.example.net"]["Subject"]
    insiders = [
        "ana.costa@ops.example.net",
        "jonas.weber@ops.example.net",
        "mei.lin@ops.example.net",
        "lukas.meier@ops.example.net",
    ]
    outsiders = [
        "noc@andes-staking.example.org",
        "ops@nordlicht-nodes.example.org",
        "s.navarro@supervisor.example.gov",
        "advisories@lists.example.net",
    ]
    for addr in insiders:
        assert CONFIDENTIAL_TEXT in _text(mails[addr]), addr
    for addr in outsiders:
        mail = mails[addr]
        html = mail.get_body(("html",))
        assert CONFIDENTIAL_TEXT not in _text(mail), addr
        assert html is not None and CONFIDENTIAL_TEXT not in str(html.get_content()), addr
    # Berlin reads the effective time (06:00Z) in its own zone.
    assert "07:00" in _text(mails["jonas.weber@ops.example.net"])
    await wait_until(lambda: counts(running.engine.db)["notifications_sent"] == 9)


async def test_repeats_and_duplicates_page_nobody_again(
    running: Running, mailcatcher: MailCatcher
) -> None:
    """A duplicate event and a repeat of a firing alert send nothing; the resolve does."""
    firing = (SAMPLES / "alert-firing.json").read_bytes()
    repeat = orjson.loads(firing)
    repeat["id"] = "repeat-of-the-same-alert"
    records = records_for(firing, max_bytes=1 << 20) * 2
    records += records_for(orjson.dumps(repeat), max_bytes=1 << 20)
    await publish(running.settings.kafka.bootstrap_servers, running.settings.kafka.topic, records)
    await mailcatcher.wait_for(7, timeout=30)
    await wait_until(lambda: running.consumed() == 3)
    await wait_until(lambda: counts(running.engine.db)["notifications_pending"] == 0)
    assert len(mailcatcher.messages) == 7
    assert running.engine.ingestor.totals["duplicates"] == 1

    await running.publish_files("alert-resolved.json")
    captured = await mailcatcher.wait_for(14, timeout=30)
    resolved = [c.message for c in captured[7:]]
    assert len(resolved) == 7
    assert {m["Message-ID"] for m in resolved}.isdisjoint(
        {c.message["Message-ID"] for c in captured[:7]}
    )
    await wait_until(lambda: counts(running.engine.db)["notifications_sent"] == 14)
    c = counts(running.engine.db)
    assert (c["alerts"], c["events"]) == (1, 3)


BAD_INPUTS: dict[str, tuple[bytes, list[tuple[str, bytes]]]] = {
    "not_json": (b"{oops", []),
    "schema": (
        orjson.dumps(
            {
                "specversion": "1.0",
                "id": "1",
                "source": "s",
                "type": "notifier.alert.v1",
                "data": {"status": "firing", "alertname": "X"},
            }
        ),
        [],
    ),
    "unknown_type": (
        orjson.dumps(
            {
                "specversion": "1.0",
                "id": "2",
                "source": "s",
                "type": "com.example.other",
                "data": {},
            }
        ),
        [],
    ),
    "oversized": (b'{"pad": "' + b"x" * 5000 + b'"}', []),
    "unsupported_spec": (
        orjson.dumps(
            {
                "specversion": "0.3",
                "id": "3",
                "source": "s",
                "type": "notifier.alert.v1",
                "data": {},
            }
        ),
        [],
    ),
    "binary-schema": (
        orjson.dumps({"status": "firing"}),
        [
            ("ce_specversion", b"1.0"),
            ("ce_id", b"4"),
            ("ce_source", b"s"),
            ("ce_type", b"notifier.alert.v1"),
        ],
    ),
}


async def test_bad_input_goes_to_the_dead_letter_topic_with_reasons(
    broker: EmbeddedBroker,
    smtp_settings: SmtpSettings,
    tmp_path: Path,
    mailcatcher: MailCatcher,
) -> None:
    """Each malformed record lands on the DLQ, original bytes and reason headers; work goes on."""
    settings = make_settings(broker, smtp_settings, tmp_path, max_event_bytes=4096)
    k = settings.kafka
    await ensure_topics(k.bootstrap_servers, [k.topic, k.dlq_topic], k.partitions)
    producer = AIOKafkaProducer(bootstrap_servers=k.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        for name, (value, headers) in BAD_INPUTS.items():
            await producer.send_and_wait(
                k.topic, value, key=b"bad", headers=[*headers, ("case", name.encode())]
            )
        await producer.send_and_wait(
            k.topic, (SAMPLES / "alert-firing.json").read_bytes(), key=b"bad"
        )
    finally:
        await producer.stop()

    async with Running(settings) as r:
        await mailcatcher.wait_for(7, timeout=30)
        await wait_until(lambda: r.consumed() == len(BAD_INPUTS) + 1)
        assert counts(r.engine.db)["rejections"] == len(BAD_INPUTS)

    consumer = AIOKafkaConsumer(
        k.dlq_topic,
        bootstrap_servers=k.bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=f"dlq-{uuid.uuid4().hex}",
        session_timeout_ms=2000,
        heartbeat_interval_ms=300,
        rebalance_timeout_ms=2000,
    )
    await consumer.start()
    try:
        dead: list[ConsumerRecord[bytes, bytes]] = []
        async with asyncio.timeout(20):
            while len(dead) < len(BAD_INPUTS):
                for msgs in (await consumer.getmany(timeout_ms=500)).values():
                    dead.extend(msgs)
    finally:
        await consumer.stop()
    by_case = {dict(m.headers)["case"].decode(): m for m in dead}
    assert set(by_case) == set(BAD_INPUTS)
    for name, (value, _) in BAD_INPUTS.items():
        record = by_case[name]
        dlq: dict[str, bytes] = dict(record.headers)
        expected_reason = "schema" if name == "binary-schema" else name
        assert record.value == value, name
        assert record.key == b"bad"
        assert dlq["notifier-dlq-reason"].decode() == expected_reason, name
        assert dlq["notifier-dlq-topic"].decode() == k.topic
        assert int(dlq["notifier-dlq-offset"]) >= 0
        assert dlq["notifier-dlq-detail"], name
    assert b"data.severity" in dict(by_case["schema"].headers)["notifier-dlq-detail"]
    assert b"5" in dict(by_case["oversized"].headers)["notifier-dlq-detail"]


async def test_restart_resumes_from_stored_offsets(
    broker: EmbeddedBroker,
    smtp_settings: SmtpSettings,
    tmp_path: Path,
    mailcatcher: MailCatcher,
) -> None:
    """A restarted engine continues after the last stored batch: nothing is consumed twice."""
    settings = make_settings(broker, smtp_settings, tmp_path)
    async with Running(settings) as r:
        await r.publish_files("alert-firing.json")
        await mailcatcher.wait_for(7, timeout=30)
    async with Running(settings) as r:
        await r.publish_files("alert-resolved.json")
        await mailcatcher.wait_for(14, timeout=30)
        await wait_until(lambda: r.consumed() == 1)
    assert len(mailcatcher.messages) == 14


def _warning_events(count: int, tag: str) -> list[tuple[bytes, bytes]]:
    base = orjson.loads((SAMPLES / "alert-firing.json").read_bytes())
    base["data"]["severity"] = "warning"  # rule warnings-to-oncall: four responders
    records = []
    for i in range(count):
        base["id"] = f"{tag}-{i}"
        base["data"]["labels"]["instance"] = f"{tag}-node-{i}"
        records += records_for(orjson.dumps(base), max_bytes=1 << 20)
    return records


@pytest.mark.postgres
async def test_two_instances_on_postgresql_share_the_work_exactly_once(
    broker: EmbeddedBroker,
    smtp_settings: SmtpSettings,
    tmp_path: Path,
    mailcatcher: MailCatcher,
    postgres_url: str,
) -> None:
    """Two engines in one group on one PostgreSQL store: a rebalance mid-stream, no doubles."""
    settings = make_settings(broker, smtp_settings, tmp_path)
    # Every page counted one by one: the shipped routing without grouping and rate limits.
    routing = yaml.safe_load((ROOT / "config" / "routing.yaml").read_text())
    routing.pop("fatigue")
    (tmp_path / "routing.yaml").write_text(yaml.safe_dump(routing))
    settings = settings.model_copy(
        update={
            "store": StoreSettings(url=postgres_url),
            "kafka": settings.kafka.model_copy(update={"partitions": 4, "max_batch": 20}),
            "routing_file": tmp_path / "routing.yaml",
        }
    )
    k = settings.kafka
    per_half = 100
    async with Running(settings) as first:
        await publish(k.bootstrap_servers, k.topic, _warning_events(per_half, "a"))
        async with Running(settings) as second:
            await publish(k.bootstrap_servers, k.topic, _warning_events(per_half, "b"))
            await mailcatcher.wait_for(8 * per_half, timeout=90)
            await wait_until(
                lambda: counts(first.engine.db)["notifications_sent"] == 8 * per_half, 60
            )
            c = counts(first.engine.db)
            assert (c["events"], c["alerts"]) == (2 * per_half, 2 * per_half)
            print(f"consumed: first {first.consumed()}, second {second.consumed()}")
            assert first.consumed() + second.consumed() >= 2 * per_half
    ids = Counter(m.message["Message-ID"] for m in mailcatcher.messages)
    assert len(ids) == 8 * per_half
    assert max(ids.values()) == 1
