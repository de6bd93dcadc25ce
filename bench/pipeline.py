"""Benchmark: ingest → correlate → route → persist, one `notifier run` process on SQLite.

Usage: python bench/pipeline.py [--events 100000] [--runs 3] [--rate 1000] [--seconds 20]

Per run, against one embedded Tansu broker:

1. publish N alert events with a realistic mix (5% distinct alerts; each fires once, repeats,
   then resolves) to a fresh topic;
2. ceiling: a bare aiokafka consumer (same batch size) drains that topic, pinned to one core;
3. throughput: `notifier run --no-deliver` (pinned to the same core) drains it; the rate is
   measured from the store's committed offsets, from the first committed batch to the last;
4. latency: with the engine caught up, publish fresh events at --rate per second and record,
   per event, the time from publish until its offset is committed in the store.

Prints every run and the medians, and writes them to bench/results/pipeline.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from notifier.broker import EmbeddedBroker, ensure_topics, publish

ROOT = Path(__file__).resolve().parent.parent
ENGINE_CPU = {1} if (os.cpu_count() or 1) > 1 else {0}
DRIVER_CPU = {0}
PARTITIONS = 3
# NOTIFIER_BENCH_PROFILE=out.prof runs the engine under cProfile (for finding hot spots).
PROFILE = (
    ["-m", "cProfile", "-o", os.environ["NOTIFIER_BENCH_PROFILE"]]
    if os.environ.get("NOTIFIER_BENCH_PROFILE")
    else []
)
BATCH = int(os.environ.get("BENCH_BATCH", "4000"))


def make_events(count: int, tag: str, seed: int) -> list[tuple[bytes, bytes]]:
    """A realistic stream: 5% distinct alerts, each firing, repeating, then resolving."""
    rng = random.Random(seed)
    base = orjson.loads((ROOT / "config" / "samples" / "alert-firing.json").read_bytes())
    alerts = max(1, count // 20)
    per_alert = count // alerts
    order = sorted((rng.random() * 0.5 + k, a, k) for a in range(alerts) for k in range(per_alert))
    severities = ["critical", "high", "warning", "warning", "info"]
    records = []
    for i, (_, a, k) in enumerate(order):
        data = dict(base["data"])
        data["labels"] = {
            **base["data"]["labels"],
            "instance": f"node-{tag}-{a}",
            "network": "mainnet" if a % 3 else "testnet",
        }
        data["severity"] = severities[a % len(severities)]
        data["status"] = "resolved" if k == per_alert - 1 else "firing"
        doc = {**base, "id": f"{tag}-{i}", "data": data}
        fingerprint = f"{tag}-{a}".encode()
        records.append((fingerprint, orjson.dumps(doc)))
    return records


def write_config(tmp: Path, bootstrap: str, topic: str) -> Path:
    config = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topic": topic,
            "dlq_topic": f"{topic}-dlq",
            "group_id": f"bench-{uuid.uuid4().hex[:8]}",
            "partitions": PARTITIONS,
            "max_batch": BATCH,
            "poll_timeout_ms": 50,
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 500,
            "rebalance_timeout_ms": 3000,
        },
        "store": {"url": f"sqlite:///{tmp / 'bench.db'}"},
        "templates": {
            "directory": str(ROOT / "templates"),
            "locales_directory": str(ROOT / "locales"),
        },
        "log": {"level": "WARNING", "format": "json"},
        "routing_file": str(ROOT / "config" / "routing.yaml"),
        "directory_file": str(ROOT / "config" / "directory.yaml"),
    }
    path = tmp / "notifier.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def drain_rate(proc: subprocess.Popen[bytes], db: Path, events: int) -> float:
    """Wait until the engine ``proc`` has committed ``events`` offsets to the store ``db``;
    return its rate in events/s, from the first committed batch to the last."""
    first_t = first_n = None
    while True:
        n = sum(committed(db).values())
        now = time.perf_counter()
        if n and first_t is None:
            first_t, first_n = now, n
        if n >= events:
            break
        if proc.poll() is not None:
            raise RuntimeError("notifier run exited early")
        time.sleep(0.01)
    assert first_t is not None and first_n is not None
    return (n - first_n) / max(now - first_t, 1e-9)


def committed(db: Path) -> dict[int, int]:
    """The offsets the engine has committed to its store, per partition."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return dict(conn.execute("select partition, next_offset from consumer_offsets"))
    except sqlite3.OperationalError:
        return {}


async def raw_consumer_rate(bootstrap: str, topic: str, count: int) -> float:
    """Events/s of a bare aiokafka consumer draining ``topic`` (run in a pinned subprocess)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--raw-consumer",
        bootstrap,
        topic,
        str(count),
        stdout=asyncio.subprocess.PIPE,
    )
    os.sched_setaffinity(proc.pid, ENGINE_CPU)
    out, _ = await proc.communicate()
    return float(out.decode().strip().splitlines()[-1])


async def _raw_consume(bootstrap: str, topic: str, count: int) -> None:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"raw-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        rebalance_timeout_ms=3000,
    )
    await consumer.start()
    seen = 0
    start = None
    try:
        while seen < count:
            batch = await consumer.getmany(timeout_ms=100, max_records=BATCH)
            n = sum(len(v) for v in batch.values())
            if n and start is None:
                start = time.perf_counter()
                first = n
            seen += n
        assert start is not None
        rate = (seen - first) / (time.perf_counter() - start)
    finally:
        await consumer.stop()
    print(f"{rate:.1f}")


async def engine_run(
    bootstrap: str, events: int, rate: int, seconds: int, run: int
) -> dict[str, float]:
    topic = f"bench-{run}-{uuid.uuid4().hex[:6]}"
    await ensure_topics(bootstrap, [topic, f"{topic}-dlq"], PARTITIONS)
    records = make_events(events, f"r{run}", seed=run)
    await publish(bootstrap, topic, records)
    ceiling = await raw_consumer_rate(bootstrap, topic, events)

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        config = write_config(tmp, bootstrap, topic)
        db = tmp / "bench.db"
        proc = subprocess.Popen(
            [
                sys.executable,
                *PROFILE,
                "-m",
                "notifier",
                "--config",
                str(config),
                "run",
                "--no-deliver",
            ],
            cwd=ROOT,
        )
        os.sched_setaffinity(proc.pid, ENGINE_CPU)
        spy = None
        if os.environ.get("NOTIFIER_BENCH_PYSPY"):
            spy = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--pid",
                    str(proc.pid),
                    "-o",
                    os.environ["NOTIFIER_BENCH_PYSPY"],
                    "-f",
                    "raw",
                    "--nonblocking",
                    "-r",
                    "200",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        try:
            throughput = await asyncio.to_thread(drain_rate, proc, db, events)
            with sqlite3.connect(db) as conn:
                notes = conn.execute("select count(*) from notifications").fetchone()[0]
                alerts = conn.execute("select count(*) from alerts").fetchone()[0]
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait()
            latencies = await measure_latency(bootstrap, topic, db, rate, seconds, run)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    lat = sorted(latencies)
    result = {
        "throughput_eps": throughput,
        "raw_consumer_eps": ceiling,
        "ratio": throughput / ceiling,
        "alerts": alerts,
        "notifications": notes,
        "latency_p50_ms": lat[len(lat) // 2] * 1000,
        "latency_p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000,
        "latency_max_ms": lat[-1] * 1000,
        "latency_samples": len(lat),
    }
    print(
        f"run {run}: {throughput:,.0f} events/s (raw aiokafka {ceiling:,.0f}/s, "
        f"{result['ratio']:.0%}); {alerts} alerts, {notes} notifications; latency at "
        f"{rate}/s p50 {result['latency_p50_ms']:.0f} ms, p99 {result['latency_p99_ms']:.0f} ms",
        flush=True,
    )
    return result


async def measure_latency(
    bootstrap: str, topic: str, db: Path, rate: int, seconds: int, run: int
) -> list[float]:
    """Publish at ``rate``/s; return per-event seconds from publish to committed in the store."""
    records = make_events(rate * seconds, f"lat{run}", seed=1000 + run)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks=1)
    await producer.start()
    sent: dict[tuple[int, int], float] = {}
    pending: list[asyncio.Future[object]] = []

    async def send(key: bytes, value: bytes) -> None:
        t = time.perf_counter()
        meta = await (await producer.send(topic, value, key=key))
        sent[(meta.partition, meta.offset)] = t

    start = time.perf_counter()
    done_offsets = committed(db)
    latencies: list[float] = []
    try:
        for i, (key, value) in enumerate(records):
            target = start + i / rate
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(asyncio.ensure_future(send(key, value)))
            if i % 10 == 0:
                _collect(db, sent, done_offsets, latencies)
        await asyncio.gather(*pending)
        deadline = time.perf_counter() + 30
        while sent and time.perf_counter() < deadline:
            _collect(db, sent, done_offsets, latencies)
            await asyncio.sleep(0.005)
    finally:
        await producer.stop()
    if sent:
        raise RuntimeError(f"{len(sent)} events never committed")
    return latencies


def _collect(
    db: Path, sent: dict[tuple[int, int], float], done: dict[int, int], latencies: list[float]
) -> None:
    now = time.perf_counter()
    for partition, next_offset in committed(db).items():
        if next_offset > done.get(partition, 0):
            for key in [k for k in sent if k[0] == partition and k[1] < next_offset]:
                latencies.append(now - sent.pop(key))
            done[partition] = next_offset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=int, default=1000, help="events/s in the latency phase")
    parser.add_argument("--seconds", type=int, default=20, help="length of the latency phase")
    parser.add_argument("--raw-consumer", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_consumer:
        bootstrap, topic, count = args.raw_consumer
        asyncio.run(_raw_consume(bootstrap, topic, int(count)))
        return
    os.sched_setaffinity(0, DRIVER_CPU)
    with EmbeddedBroker() as broker:
        assert broker._proc is not None
        os.sched_setaffinity(broker._proc.pid, DRIVER_CPU)
        print(
            f"broker {broker.bootstrap_servers}; engine pinned to CPU {sorted(ENGINE_CPU)}; "
            f"{args.events:,} events x {args.runs} runs",
            flush=True,
        )
        results = [
            asyncio.run(
                engine_run(broker.bootstrap_servers, args.events, args.rate, args.seconds, run)
            )
            for run in range(1, args.runs + 1)
        ]
    medians = {k: statistics.median(r[k] for r in results) for k in results[0]}
    print(
        f"\nmedian of {len(results)} runs: {medians['throughput_eps']:,.0f} events/s persisted "
        f"(raw aiokafka consumer {medians['raw_consumer_eps']:,.0f}/s, ratio "
        f"{medians['ratio']:.0%}); latency at {args.rate}/s: p50 "
        f"{medians['latency_p50_ms']:.0f} ms, p99 {medians['latency_p99_ms']:.0f} ms"
    )
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "pipeline.json").write_text(json.dumps({"runs": results, "median": medians}, indent=2))


if __name__ == "__main__":
    main()
