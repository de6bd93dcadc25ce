"""Benchmark: delivery rate to a local webhook receiver and a local SMTP server, against the
rate of a bare client loop, and memory while an endpoint is dead.

Usage: python bench/delivery.py [--count 10000] [--runs 3] [--dead-minutes 0]

Per run and channel (webhook, then email):

1. the receiver runs in its own process (`python -m notifier.hookcatcher`, which checks every
   signature, or `python -m notifier.mailcatcher`, aiosmtpd saving each message);
2. ceiling: a bare loop with the same client library and the same concurrency (aiohttp with
   signed bodies of the same size; aiosmtplib over as many reused connections) sends --count
   messages to that receiver, in its own process pinned to one core;
3. engine: a SQLite store holding --count pending notifications (one per alert) and one
   `notifier run --deliver-only` process pinned to the same core sends them; its rate is
   measured from the store, first send to last, and its CPU time per message while sending
   (less noisy than a rate on a shared machine), against the bare loop's CPU per message.

With --dead-minutes M, a last phase points the webhook endpoint at a closed port for M
minutes while 20 new notifications a second keep arriving, and samples the engine's resident
memory; growth is the last minute's median against the first minute's.

Prints each run and the medians; writes bench/results/delivery.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import orjson
import yaml
from procs import cpu_seconds, rss_mb
from sqlalchemy import func, insert, select

from notifier.broker import free_port
from notifier.store import Database
from notifier.store.schema import alerts, events, notifications

ROOT = Path(__file__).resolve().parent.parent
ENGINE_CPU = {1} if (os.cpu_count() or 1) > 1 else {0}
SECRET = "bench-secret"
CONCURRENCY = {"webhook": 16, "email": 8}
SAMPLE = orjson.loads((ROOT / "config" / "samples" / "alert-firing.json").read_bytes())


# --- the bare loops (run as `python bench/delivery.py --ceiling CHANNEL ...`) ----------------


async def bare_webhook(port: int, count: int, concurrency: int) -> float:
    """Send ``count`` signed webhooks with aiohttp, ``concurrency`` at a time; return msgs/s."""
    import aiohttp

    from notifier.channels.webhook import sign

    body_template = {
        "version": 1,
        "type": "notifier.notification",
        "recipient": "Bench",
        "language": "en",
        "subject": "[Critical] Alert: " + SAMPLE["data"]["annotations"]["summary"],
        "text": "x" * 1200,
    }
    url = f"http://127.0.0.1:{port}/hook"
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as client:

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                body = orjson.dumps({**body_template, "id": f"bare-{i}"})
                ts = int(time.time())
                headers = {
                    "Content-Type": "application/json",
                    "X-Notifier-Id": f"bare-{i}",
                    "X-Notifier-Timestamp": str(ts),
                    "X-Notifier-Signature": sign(SECRET.encode(), ts, body),
                }
                async with client.post(url, data=body, headers=headers) as r:
                    await r.read()
                    assert r.status == 204, r.status

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count / (time.perf_counter() - start)


async def bare_email(port: int, count: int, concurrency: int) -> float:
    """Send ``count`` emails with aiosmtplib over ``concurrency`` reused connections."""
    import aiosmtplib

    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=10)
        await client.connect()
        while not queue.empty():
            i = queue.get_nowait()
            mail = EmailMessage()
            mail["From"] = "bench@example.org"
            mail["To"] = "Bench <bench@example.org>"
            mail["Subject"] = "[Critical] Alert: " + SAMPLE["data"]["annotations"]["summary"]
            mail["Message-ID"] = f"<bare-{i}@bench>"
            mail.set_content("x" * 1200)
            mail.add_alternative("<p>" + "x" * 2400 + "</p>", subtype="html")
            await client.send_message(mail)
        await client.quit()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - start)


# --- the engine ---------------------------------------------------------------------------


def seed(db: Database, count: int, channel: str, start: int = 0) -> None:
    """``count`` firing alerts, each with its event and one pending notification."""
    now = datetime.now(UTC)
    address = "bench" if channel == "webhook" else "bench@example.org"
    for base in range(start, start + count, 2000):
        ids = range(base, min(start + count, base + 2000))
        with db.transaction() as conn:
            conn.execute(
                insert(alerts),
                [
                    {
                        "id": f"{i:032x}",
                        "fingerprint": f"fp{i}",
                        "kind": "alert",
                        "status": "firing",
                        "occurrence": 1,
                        "name": "ConsensusFinalityLag",
                        "severity": "critical",
                        "labels": {},
                        "summary": "s",
                        "created_at": now,
                        "updated_at": now,
                        "event_count": 1,
                        "last_event_key": f"e{i}",
                    }
                    for i in ids
                ],
            )
            conn.execute(
                insert(events),
                [
                    {
                        "event_key": f"e{i}",
                        "source": SAMPLE["source"],
                        "id": f"ev-{i}",
                        "type": SAMPLE["type"],
                        "fingerprint": f"fp{i}",
                        "alert_id": f"{i:032x}",
                        "effect": "firing",
                        "received_at": now,
                        "payload": {**SAMPLE, "id": f"ev-{i}"},
                    }
                    for i in ids
                ],
            )
            conn.execute(
                insert(notifications),
                [
                    {
                        "id": f"n{i:031x}",
                        "alert_id": f"{i:032x}",
                        "occurrence": 1,
                        "kind": "firing",
                        "event_key": f"e{i}",
                        "person_id": "bench",
                        "channel": channel,
                        "address": address,
                        "recipient_name": "Bench",
                        "tier": "responders",
                        "rule": "bench",
                        "template": "alert",
                        "clearance": "confidential",
                        "locale": "en",
                        "timezone": "UTC",
                        "status": "pending",
                        "dispatches": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                    }
                    for i in ids
                ],
            )


def config(tmp: Path, url: str, smtp_port: int, hook_port: int) -> Path:
    """A configuration whose one person is reached by webhook or email."""
    directory = {
        "people": [
            {
                "id": "bench",
                "name": "Bench",
                "roles": ["oncall-operator"],
                "contacts": [
                    {"channel": "webhook", "address": "bench"},
                    {"channel": "email", "address": "bench@example.org"},
                ],
            }
        ],
        "permissions": {"acknowledge": ["oncall-operator"], "resolve": ["oncall-operator"]},
    }
    (tmp / "directory.yaml").write_text(yaml.safe_dump(directory))
    routing = yaml.safe_load((ROOT / "config" / "routing.yaml").read_text())
    routing["tiers"] = {"responders": {"roles": ["oncall-operator"], "clearance": "confidential"}}
    routing["rules"] = [
        {"name": "all", "tiers": ["responders"], "template": "alert"},
    ]
    routing["escalation_policies"] = {}
    # One message per notification, as fast as it goes: no grouping, rate limits, quiet
    # hours, inhibition or flap detection (bench/storm.py measures those).
    routing["fatigue"] = {}
    routing.pop("inhibit_rules", None)
    routing.pop("flapping", None)
    (tmp / "routing.yaml").write_text(yaml.safe_dump(routing))
    settings = {
        "store": {"url": url},
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "starttls": False},
        "webhooks": {
            "endpoints": {"bench": {"url": f"http://127.0.0.1:{hook_port}/hook", "secret": SECRET}},
            "allow_private_networks": True,
            "concurrency": CONCURRENCY["webhook"],
        },
        "delivery": {"concurrency": CONCURRENCY["email"]},
        "templates": {
            "directory": str(ROOT / "templates"),
            "locales_directory": str(ROOT / "locales"),
        },
        "http": {"enabled": False},
        "log": {"level": "WARNING"},
        "routing_file": str(tmp / "routing.yaml"),
        "directory_file": str(tmp / "directory.yaml"),
    }
    path = tmp / "notifier.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def start_engine(cfg: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "notifier", "--config", str(cfg), "run", "--deliver-only"],
        cwd=ROOT,
    )
    os.sched_setaffinity(proc.pid, ENGINE_CPU)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_receiver(channel: str, port: int, tmp: Path) -> subprocess.Popen[bytes]:
    args = (
        ["-m", "notifier.hookcatcher", "--port", str(port), "--secret", SECRET]
        if channel == "webhook"
        else ["-m", "notifier.mailcatcher", "--port", str(port), "--dir", str(tmp / "mail")]
    )
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL)
    os.sched_setaffinity(proc.pid, {0})
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            import socket

            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{channel} receiver did not start")


def engine_rate(channel: str, count: int, port: int, tmp: Path) -> tuple[float, float]:
    """The engine's delivery rate (msgs/s, first send to last, from the store) and its CPU
    microseconds per message while sending (startup excluded: from the first poll that saw
    a send to the one that saw the last)."""
    url = f"sqlite:///{tmp / f'{channel}.db'}"
    db = Database(url)
    db.migrate()
    seed(db, count, channel)
    cfg = config(tmp, url, port if channel == "email" else free_port(), port)
    proc = start_engine(cfg)
    cpu_from: tuple[int, float] | None = None
    try:
        while True:
            with db.engine.connect() as conn:
                sent, first, last = conn.execute(
                    select(
                        func.count(),
                        func.min(notifications.c.sent_at),
                        func.max(notifications.c.sent_at),
                    ).where(notifications.c.status == "sent")
                ).one()
                failed = conn.scalar(select(func.count()).where(notifications.c.status == "failed"))
            cpu = cpu_seconds(proc.pid)
            if failed:
                raise RuntimeError(f"{failed} notifications failed")
            if sent and cpu_from is None:
                cpu_from = (sent, cpu)
            if sent == count:
                break
            if proc.poll() is not None:
                raise RuntimeError("engine exited")
            time.sleep(0.2)
    finally:
        stop(proc)
        db.dispose()
    first_at = datetime.fromisoformat(str(first))
    last_at = datetime.fromisoformat(str(last))
    assert cpu_from is not None
    per_message = (cpu - cpu_from[1]) / max(count - cpu_from[0], 1) * 1e6
    return (count - 1) / max((last_at - first_at).total_seconds(), 1e-6), per_message


def ceiling_rate(channel: str, count: int, port: int) -> tuple[float, float]:
    """The bare loop's rate (msgs/s) and CPU microseconds per message."""
    proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--ceiling",
            channel,
            "--port",
            str(port),
            "--count",
            str(count),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    os.sched_setaffinity(proc.pid, ENGINE_CPU)
    out, _ = proc.communicate(timeout=600)
    if proc.returncode != 0:
        raise RuntimeError("bare loop failed")
    measured = json.loads(out)
    return float(measured["rate"]), float(measured["cpu_us"])


def one_run(count: int, channels: list[str]) -> dict[str, float]:
    result: dict[str, float] = {}
    for channel in channels:
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            port = free_port()
            receiver = start_receiver(channel, port, tmp)
            try:
                ceiling, bare_cpu_us = ceiling_rate(channel, count, port)
                engine, cpu_us = engine_rate(channel, count, port, tmp)
            finally:
                receiver.send_signal(signal.SIGTERM)
                receiver.wait(timeout=30)
        result[f"{channel}_engine"] = engine
        result[f"{channel}_ceiling"] = ceiling
        result[f"{channel}_ratio"] = engine / ceiling
        result[f"{channel}_cpu_us"] = cpu_us
        result[f"{channel}_bare_cpu_us"] = bare_cpu_us
        print(
            f"{channel}: engine {engine:,.0f}/s, bare loop {ceiling:,.0f}/s, "
            f"ratio {engine / ceiling:.0%}; CPU per message: engine {cpu_us:,.0f} us, "
            f"bare loop {bare_cpu_us:,.0f} us",
            flush=True,
        )
    return result


def dead_endpoint(minutes: float) -> dict[str, Any]:
    """Memory of an engine retrying a dead webhook endpoint while traffic keeps coming."""
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        url = f"sqlite:///{tmp / 'dead.db'}"
        db = Database(url)
        db.migrate()
        cfg = config(tmp, url, free_port(), free_port())  # nothing listens on either
        proc = start_engine(cfg)
        samples: list[tuple[float, float, float]] = []
        start = time.time()
        next_id = 0
        try:
            while time.time() - start < minutes * 60:
                seed(db, 20, "webhook", start=next_id)
                next_id += 20
                samples.append((time.time() - start, *rss_mb(proc.pid)))
                time.sleep(1)
        finally:
            stop(proc)
            db.dispose()
    window = min(60.0, minutes * 60 / 3)

    def median(index: int, last: bool) -> float:
        edge = minutes * 60 - window
        return statistics.median(
            s[index] for s in samples if (s[0] >= edge if last else s[0] < window)
        )

    report = {
        "minutes": minutes,
        "notifications": next_id,
        "rss_first_mb": median(1, False),
        "rss_last_mb": median(1, True),
        "anon_first_mb": median(2, False),
        "anon_last_mb": median(2, True),
    }
    report["growth"] = report["rss_last_mb"] / report["rss_first_mb"] - 1
    report["anon_growth"] = report["anon_last_mb"] / report["anon_first_mb"] - 1
    print(
        f"dead endpoint for {minutes:g} min ({next_id:,} notifications): RSS "
        f"{report['rss_first_mb']:.0f} → {report['rss_last_mb']:.0f} MB "
        f"({report['growth']:+.1%}); anonymous {report['anon_first_mb']:.0f} → "
        f"{report['anon_last_mb']:.0f} MB ({report['anon_growth']:+.1%})",
        flush=True,
    )
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dead-minutes", type=float, default=0)
    parser.add_argument("--dead-only", action="store_true", help="only the dead-endpoint phase")
    parser.add_argument(
        "--channel", choices=["webhook", "email"], help="measure only this channel (default both)"
    )
    parser.add_argument("--ceiling", choices=["webhook", "email"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ceiling:
        loop = bare_webhook if args.ceiling == "webhook" else bare_email
        cpu = time.process_time()
        rate = asyncio.run(loop(args.port, args.count, CONCURRENCY[args.ceiling]))
        cpu_us = (time.process_time() - cpu) / args.count * 1e6
        print(json.dumps({"rate": rate, "cpu_us": cpu_us}))
        return
    os.sched_setaffinity(0, {0})
    if args.dead_only:
        dead_endpoint(args.dead_minutes or 10)
        return
    channels = [args.channel] if args.channel else ["webhook", "email"]
    results = [one_run(args.count, channels) for _ in range(args.runs)]
    medians = {k: statistics.median(r[k] for r in results) for k in results[0]}
    print(f"\nmedian of {len(results)}:")
    for channel in channels:
        print(
            f"  {channel}: engine {medians[f'{channel}_engine']:,.0f}/s vs bare loop "
            f"{medians[f'{channel}_ceiling']:,.0f}/s ({medians[f'{channel}_ratio']:.0%}); "
            f"CPU per message: engine {medians[f'{channel}_cpu_us']:,.0f} us, "
            f"bare loop {medians[f'{channel}_bare_cpu_us']:,.0f} us"
        )
    report: dict[str, Any] = {"runs": results, "median": medians}
    if args.dead_minutes:
        report["dead_endpoint"] = dead_endpoint(args.dead_minutes)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "delivery.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
