"""Benchmark: notifier against Prometheus Alertmanager, both paging once per alert by webhook.

Usage: python bench/vs_alertmanager.py [--count 10000] [--runs 3]

Needs /usr/bin/prometheus-alertmanager (the Debian package prometheus-alertmanager, 0.25).

One receiver process (this file with --receiver, aiohttp.web, pinned to CPU 0) takes both
engines' webhooks: it checks every notifier signature and counts distinct notification ids,
and counts the alerts in each Alertmanager payload by fingerprint; it stamps each arrival.
Each run measures both engines, one after the other (which one goes first alternates), on
--count distinct critical alerts (alertname ConsensusFinalityLag, instance node-<i>):

- Alertmanager, started directly (no cluster; group_by [alertname, instance], group_wait
  0s, so one webhook per alert) and pinned to CPU 1; the driver (pinned to CPU 0) posts the
  alerts to /api/v2/alerts in batches of 64, as Prometheus does, four requests at a time;
- notifier, `notifier run` (consume and deliver, SQLite store) pinned to CPU 1, fed through
  the embedded Tansu broker (pinned to CPU 0): one CloudEvent per alert, made from
  config/samples/alert-firing.json, routed by a single rule to one person reached by one
  webhook endpoint, no escalation.

Before each phase one warm-up alert goes through the engine and is delivered (so the engine
has started, joined its consumer group, opened its connections); then the receiver's counts
are cleared. Wall time is from the start of the first publish to the arrival of the last
alert's first delivery; CPU is the engine process's user + system time (/proc/PID/stat) over
the same span. The broker's CPU is reported too: it is notifier's ingest infrastructure.
notifier's phase also checks the store: exactly one notification per alert, all sent.

Prints each run and the medians (and notifier/Alertmanager ratios); writes
bench/results/vs_alertmanager.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml
from aiohttp import web
from aiokafka import AIOKafkaProducer
from delivery import SAMPLE, SECRET, stop
from delivery import config as delivery_config
from pipeline import DRIVER_CPU, ENGINE_CPU, PARTITIONS, committed, write_config
from procs import cpu_seconds

from notifier.broker import EmbeddedBroker, ensure_topics, free_port, produce, records_for
from notifier.channels.webhook import verify

ROOT = Path(__file__).resolve().parent.parent
ALERTMANAGER = Path("/usr/bin/prometheus-alertmanager")
AM_BATCH = 64  # alerts per POST /api/v2/alerts (Prometheus's default max per request)
AM_POSTERS = 4  # concurrent POSTs from the driver
SOURCES = ("alertmanager", "notifier")
POLL = 0.05  # seconds between looks at the receiver's counts
SETTLE = 1.0  # seconds of quiet after the warm-up, before the CPU baseline
MAX_EVENT_BYTES = 1_048_576


# --- the receiver (run as `python bench/vs_alertmanager.py --receiver PORT`) -----------------


@dataclass
class Tally:
    """What one source delivered: requests, distinct items, duplicates, arrival times."""

    requests: int = 0
    distinct: int = 0
    duplicates: int = 0
    rejected: int = 0
    first: float | None = None
    last: float | None = None
    last_new: float | None = None  # arrival of the latest request that brought a new item
    seen: set[str] = field(default_factory=set)

    def record(self, keys: Iterable[str], now: float) -> None:
        """Count one accepted request carrying ``keys`` that arrived at ``now``."""
        self.requests += 1
        if self.first is None:
            self.first = now
        self.last = now
        for key in keys:
            if key in self.seen:
                self.duplicates += 1
            else:
                self.seen.add(key)
                self.distinct += 1
                self.last_new = now

    def report(self) -> dict[str, Any]:
        """The counts and times, JSON-ready."""
        return {
            "requests": self.requests,
            "distinct": self.distinct,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "first": self.first,
            "last": self.last,
            "last_new": self.last_new,
        }


def receiver_app(secret: bytes) -> web.Application:
    """The receiver: /notifier (signed), /alertmanager, GET /stats, POST /reset."""
    tallies = {source: Tally() for source in SOURCES}
    app = web.Application()

    async def notifier_hook(request: web.Request) -> web.Response:
        body = await request.read()
        now = time.time()
        tally = tallies["notifier"]
        ok = verify(
            secret,
            request.headers.get("X-Notifier-Timestamp", ""),
            body,
            request.headers.get("X-Notifier-Signature", ""),
            now=now,
        )
        if not ok:
            tally.rejected += 1
            return web.Response(status=401)
        tally.record([request.headers.get("X-Notifier-Id", "")], now)
        return web.Response(status=204)

    async def alertmanager_hook(request: web.Request) -> web.Response:
        body = await request.read()
        now = time.time()
        alerts = orjson.loads(body).get("alerts", [])
        keys = [
            a.get("fingerprint") or orjson.dumps(a["labels"], option=orjson.OPT_SORT_KEYS).decode()
            for a in alerts
        ]
        tallies["alertmanager"].record(keys, now)
        return web.Response(status=200)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({source: t.report() for source, t in tallies.items()})

    async def reset(request: web.Request) -> web.Response:
        for source in SOURCES:
            tallies[source] = Tally()
        return web.Response(status=204)

    app.router.add_post("/notifier", notifier_hook)
    app.router.add_post("/alertmanager", alertmanager_hook)
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    return app


async def serve_receiver(port: int, secret: bytes) -> None:
    """Serve the receiver on 127.0.0.1:``port`` until SIGTERM or SIGINT."""
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    runner = web.AppRunner(receiver_app(secret), access_log=None, handle_signals=False)
    await runner.setup()
    # A deep accept queue: Alertmanager opens a connection per group, thousands at once.
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    await done.wait()
    await runner.cleanup()


# --- the driver's side ---------------------------------------------------------------------


def start_pinned(
    argv: Sequence[str], cpus: set[int], *, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` confined to ``cpus`` from its first instruction.

    Pinning before exec (not after start) matters for Alertmanager: the Go runtime starts
    its threads at once and sizes GOMAXPROCS from the affinity it finds.
    """
    return subprocess.Popen(list(argv), cwd=cwd, preexec_fn=lambda: os.sched_setaffinity(0, cpus))


def start_receiver(port: int) -> subprocess.Popen[bytes]:
    """This file as the receiver, pinned with the driver (CPU 0)."""
    return start_pinned(
        [sys.executable, __file__, "--receiver", str(port), "--secret", SECRET],
        DRIVER_CPU,
        cwd=ROOT,
    )


async def wait_http(
    http: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes], within: float = 30.0
) -> None:
    """Wait until ``GET url`` answers 200; fail if ``proc`` exits first."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with code {proc.returncode}")
        try:
            async with http.get(url) as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} was not ready within {within:g}s")


async def stats(http: aiohttp.ClientSession, rport: int, source: str) -> dict[str, Any]:
    """The receiver's counts for ``source``."""
    async with http.get(f"http://127.0.0.1:{rport}/stats") as r:
        r.raise_for_status()
        report: dict[str, Any] = (await r.json())[source]
        return report


async def reset(http: aiohttp.ClientSession, rport: int) -> None:
    """Clear the receiver's counts."""
    async with http.post(f"http://127.0.0.1:{rport}/reset") as r:
        r.raise_for_status()


async def wait_delivered(
    http: aiohttp.ClientSession,
    rport: int,
    source: str,
    count: int,
    engine: subprocess.Popen[bytes],
    within: float,
) -> dict[str, Any]:
    """Wait until ``count`` distinct items from ``source`` arrived; return the counts."""
    deadline = time.monotonic() + within
    while True:
        report = await stats(http, rport, source)
        if report["distinct"] >= count:
            return report
        if engine.poll() is not None:
            raise RuntimeError(f"{source} exited with code {engine.returncode}: {report}")
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{source}: not all {count} alerts delivered in {within:g}s: {report}"
            )
        await asyncio.sleep(POLL)


def deadline_for(count: int) -> float:
    """Seconds to wait for ``count`` deliveries before calling the phase failed."""
    return 60.0 + count / 20


def now_iso() -> str:
    """The current UTC time, RFC 3339."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- Alertmanager --------------------------------------------------------------------------


def am_alert(instance: str, starts_at: str) -> dict[str, Any]:
    """One alert as Prometheus posts it to /api/v2/alerts."""
    return {
        "labels": {
            "alertname": "ConsensusFinalityLag",
            "instance": instance,
            "network": "mainnet",
            "severity": "critical",
        },
        "annotations": {"summary": SAMPLE["data"]["annotations"]["summary"]},
        "startsAt": starts_at,
    }


def am_config(tmp: Path, rport: int) -> Path:
    """am.yml: one webhook receiver, a group (and so a webhook) per alert, sent at once."""
    config = {
        "route": {
            "receiver": "hook",
            "group_by": ["alertname", "instance"],
            "group_wait": "0s",
            "group_interval": "5m",
            "repeat_interval": "4h",
        },
        "receivers": [
            {
                "name": "hook",
                "webhook_configs": [
                    {
                        "url": f"http://127.0.0.1:{rport}/alertmanager",
                        "send_resolved": False,
                        "max_alerts": 0,
                    }
                ],
            }
        ],
    }
    path = tmp / "am.yml"
    path.write_text(yaml.safe_dump(config))
    return path


async def post_batches(http: aiohttp.ClientSession, url: str, bodies: list[bytes]) -> None:
    """POST each body to ``url``, ``AM_POSTERS`` at a time; every one must be accepted."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def poster() -> None:
        while not queue.empty():
            body = queue.get_nowait()
            headers = {"Content-Type": "application/json"}
            async with http.post(url, data=body, headers=headers) as r:
                text = await r.text()
                if r.status != 200:
                    raise RuntimeError(f"Alertmanager refused alerts: {r.status} {text[:200]}")

    await asyncio.gather(*(poster() for _ in range(AM_POSTERS)))


async def alertmanager_phase(
    http: aiohttp.ClientSession, rport: int, count: int
) -> dict[str, float]:
    """Alertmanager on ``count`` alerts: wall time, CPU, and the receiver's counts."""
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        aport = free_port()
        base = f"http://127.0.0.1:{aport}"
        proc = start_pinned(
            [
                str(ALERTMANAGER),
                f"--config.file={am_config(tmp, rport)}",
                f"--storage.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{aport}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            ENGINE_CPU,
        )
        try:
            await wait_http(http, f"{base}/-/ready", proc)
            url = f"{base}/api/v2/alerts"
            await post_batches(http, url, [orjson.dumps([am_alert("warmup", now_iso())])])
            await wait_delivered(http, rport, "alertmanager", 1, proc, 30)
            await asyncio.sleep(SETTLE)
            await reset(http, rport)
            starts_at = now_iso()
            alerts = [am_alert(f"node-{i}", starts_at) for i in range(count)]
            bodies = [orjson.dumps(alerts[i : i + AM_BATCH]) for i in range(0, count, AM_BATCH)]
            cpu_before = cpu_seconds(proc.pid)
            start = time.time()
            await post_batches(http, url, bodies)
            published = time.time()
            report = await wait_delivered(
                http, rport, "alertmanager", count, proc, deadline_for(count)
            )
            cpu = cpu_seconds(proc.pid) - cpu_before
        finally:
            stop(proc)
    if report["duplicates"]:
        print(f"  alertmanager: {report['duplicates']} duplicate deliveries", flush=True)
    return {
        "wall_s": report["last_new"] - start,
        "cpu_s": cpu,
        "publish_s": published - start,
        "first_delivery_s": report["first"] - start,
        "requests": report["requests"],
        "duplicates": report["duplicates"],
    }


# --- notifier ------------------------------------------------------------------------------


def notifier_config(tmp: Path, bootstrap: str, topic: str, rport: int) -> Path:
    """bench/delivery.py's configuration (one person, one rule, no escalation) with
    bench/pipeline.py's Kafka settings; the person's only contact is the webhook endpoint."""
    kafka_dir = tmp / "kafka"
    kafka_dir.mkdir()
    kafka = yaml.safe_load(write_config(kafka_dir, bootstrap, topic).read_text())["kafka"]
    path = delivery_config(tmp, f"sqlite:///{tmp / 'bench.db'}", free_port(), rport)
    directory_file = tmp / "directory.yaml"
    directory = yaml.safe_load(directory_file.read_text())
    for person in directory["people"]:
        person["contacts"] = [c for c in person["contacts"] if c["channel"] == "webhook"]
    directory_file.write_text(yaml.safe_dump(directory))
    settings = yaml.safe_load(path.read_text())
    settings["kafka"] = kafka
    del settings["smtp"]
    settings["webhooks"]["endpoints"]["bench"]["url"] = f"http://127.0.0.1:{rport}/notifier"
    path.write_text(yaml.safe_dump(settings))
    return path


def cloud_events(instances: Iterable[str], tag: str) -> list[tuple[bytes, bytes]]:
    """One firing critical CloudEvent per instance, keyed by its alert's fingerprint."""
    now = now_iso()
    records: list[tuple[bytes, bytes]] = []
    for instance in instances:
        data = {
            **SAMPLE["data"],
            "labels": {**SAMPLE["data"]["labels"], "instance": instance},
            "severity": "critical",
            "status": "firing",
            "starts_at": now,
        }
        doc = {**SAMPLE, "id": f"{tag}-{instance}", "time": now, "data": data}
        records.extend(records_for(orjson.dumps(doc), max_bytes=MAX_EVENT_BYTES))
    return records


async def watch_ingest(db: Path, offsets: int, since: float) -> float:
    """Seconds from ``since`` until the engine's store holds ``offsets`` committed offsets
    (every event consumed, correlated, routed and its notifications written)."""
    while sum(committed(db).values()) < offsets:
        await asyncio.sleep(POLL)
    return time.time() - since


def store_notifications(db: Path) -> dict[str, int]:
    """Notifications in the engine's store, per ``kind/channel/status``."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        rows = conn.execute(
            "select kind, channel, status, count(*) from notifications "
            "group by kind, channel, status"
        ).fetchall()
    return {f"{kind}/{channel}/{status}": n for kind, channel, status, n in rows}


async def notifier_phase(
    http: aiohttp.ClientSession,
    rport: int,
    bootstrap: str,
    broker_pid: int,
    count: int,
    run: int,
) -> dict[str, float]:
    """notifier on ``count`` alerts: wall time, engine and broker CPU, the receiver's counts."""
    topic = f"vs-am-{run}-{uuid.uuid4().hex[:6]}"
    await ensure_topics(bootstrap, [topic, f"{topic}-dlq"], PARTITIONS)
    tag = f"r{run}"
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        cfg = notifier_config(tmp, bootstrap, topic, rport)
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=5
        )
        await producer.start()
        proc: subprocess.Popen[bytes] | None = None
        ingest: asyncio.Future[float] | None = None
        try:
            proc = start_pinned(
                [sys.executable, "-m", "notifier", "--config", str(cfg), "run"],
                ENGINE_CPU,
                cwd=ROOT,
            )
            await produce(producer, topic, cloud_events(["warmup"], tag))
            await wait_delivered(http, rport, "notifier", 1, proc, 60)
            await asyncio.sleep(SETTLE)
            await reset(http, rport)
            records = cloud_events((f"node-{i}" for i in range(count)), tag)
            cpu_before = cpu_seconds(proc.pid)
            broker_before = cpu_seconds(broker_pid)
            start = time.time()
            ingest = asyncio.ensure_future(watch_ingest(tmp / "bench.db", count + 1, start))
            await produce(producer, topic, records)
            published = time.time()
            done = await wait_delivered(http, rport, "notifier", count, proc, deadline_for(count))
            cpu = cpu_seconds(proc.pid) - cpu_before
            broker_cpu = cpu_seconds(broker_pid) - broker_before
            ingested = await asyncio.wait_for(ingest, 30)
            await asyncio.sleep(SETTLE)  # anything beyond one webhook per alert shows up now
            report = await stats(http, rport, "notifier")
        finally:
            if ingest is not None:
                ingest.cancel()
            if proc is not None:
                stop(proc)
            await producer.stop()
        notes = store_notifications(tmp / "bench.db")
    problems = []
    if report["distinct"] != count or report["duplicates"] or report["rejected"]:
        problems.append(f"receiver counted {report}")
    if notes != {"firing/webhook/sent": count + 1}:  # + the warm-up alert
        problems.append(f"store holds notifications {notes}")
    if problems:
        print(f"  notifier: not one webhook per alert: {'; '.join(problems)}", flush=True)
    return {
        "wall_s": done["last_new"] - start,
        "cpu_s": cpu,
        "broker_cpu_s": broker_cpu,
        "publish_s": published - start,
        "ingest_s": ingested,
        "first_delivery_s": done["first"] - start,
        "requests": report["requests"],
        "duplicates": report["duplicates"],
    }


# --- runs ----------------------------------------------------------------------------------


async def one_run(
    receiver: subprocess.Popen[bytes],
    rport: int,
    bootstrap: str,
    broker_pid: int,
    count: int,
    run: int,
) -> dict[str, float]:
    """Both engines on the same alerts; Alertmanager first in odd runs, notifier in even."""
    order = SOURCES if run % 2 else tuple(reversed(SOURCES))
    result: dict[str, float] = {}
    async with aiohttp.ClientSession() as http:
        await wait_http(http, f"http://127.0.0.1:{rport}/stats", receiver)
        for source in order:
            await reset(http, rport)
            if source == "alertmanager":
                figures = await alertmanager_phase(http, rport, count)
            else:
                figures = await notifier_phase(http, rport, bootstrap, broker_pid, count, run)
            result.update({f"{source}_{k}": v for k, v in figures.items()})
    result["wall_ratio"] = result["notifier_wall_s"] / result["alertmanager_wall_s"]
    result["cpu_ratio"] = result["notifier_cpu_s"] / result["alertmanager_cpu_s"]
    print(f"run {run} ({' first, '.join(order)} second):\n{summary(result, count)}", flush=True)
    return result


def summary(r: dict[str, float], count: int) -> str:
    """Lines for one run's (or the medians') figures."""
    am_wall, nf_wall = r["alertmanager_wall_s"], r["notifier_wall_s"]
    return (
        f"  alertmanager: {am_wall:.2f} s wall ({count / am_wall:,.0f} alerts/s; published "
        f"by {r['alertmanager_publish_s']:.2f} s, first delivery at "
        f"{r['alertmanager_first_delivery_s']:.2f} s), {r['alertmanager_cpu_s']:.2f} s CPU\n"
        f"  notifier:     {nf_wall:.2f} s wall ({count / nf_wall:,.0f} alerts/s; published "
        f"by {r['notifier_publish_s']:.2f} s, first delivery at "
        f"{r['notifier_first_delivery_s']:.2f} s, all ingested by {r['notifier_ingest_s']:.2f} "
        f"s), {r['notifier_cpu_s']:.2f} s CPU (+ broker {r['notifier_broker_cpu_s']:.2f} s)\n"
        f"  notifier/alertmanager: wall {r['wall_ratio']:.2f}x, CPU {r['cpu_ratio']:.2f}x"
    )


def main() -> None:
    """Parse arguments; run the receiver, or the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="distinct alerts per phase")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--secret", default=SECRET, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver is not None:
        asyncio.run(serve_receiver(args.receiver, args.secret.encode()))
        return
    if not os.access(ALERTMANAGER, os.X_OK):
        sys.exit(f"{ALERTMANAGER} not found: install the Debian package prometheus-alertmanager")
    os.sched_setaffinity(0, DRIVER_CPU)
    rport = free_port()
    results: list[dict[str, float]] = []
    with EmbeddedBroker() as broker:
        assert broker._proc is not None
        os.sched_setaffinity(broker._proc.pid, DRIVER_CPU)
        receiver = start_receiver(rport)
        try:
            print(
                f"engines pinned to CPU {sorted(ENGINE_CPU)}; driver, receiver and broker to "
                f"{sorted(DRIVER_CPU)}; {args.count:,} alerts x {args.runs} runs",
                flush=True,
            )
            for run in range(1, args.runs + 1):
                results.append(
                    asyncio.run(
                        one_run(
                            receiver,
                            rport,
                            broker.bootstrap_servers,
                            broker._proc.pid,
                            args.count,
                            run,
                        )
                    )
                )
        finally:
            stop(receiver)
    medians = {k: statistics.median(r[k] for r in results) for k in results[0]}
    print(f"\nmedian of {len(results)} runs:\n{summary(medians, args.count)}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    report = {"count": args.count, "runs": results, "median": medians}
    (out / "vs_alertmanager.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
