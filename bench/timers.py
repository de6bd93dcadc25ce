"""Benchmark: timer lateness and memory at 100,000 open alerts, and API acknowledgment latency.

Usage: python bench/timers.py [--alerts 100000] [--spread 30] [--acks 1000] [--runs 3] [--stress]

Per run: a SQLite store with N firing alerts, each with an escalation step due at a random
moment in the next --spread seconds and an hourly status-update tick (2N pending timers, N due
during the run); with --stress the status-update ticks fall due in the same window too (2N
due). One `notifier run --deliver-only` process (pinned to one core) fires them. Lateness =
fired_at - due_at, from the store; memory = the engine's peak resident set size while it
works. Then --acks acknowledgments through
`POST /api/v1/alerts/{id}/ack` (one client, sequential, loopback), timed per request; each
acknowledgment also looks up the frozen plan and schedules its reminder.
Prints each run and the medians; writes bench/results/timers.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import yaml
from procs import rss_mb
from sqlalchemy import func, insert, select

from notifier.broker import free_port
from notifier.escalation import plan_key
from notifier.intents import Timer, TimerKind
from notifier.store import Database
from notifier.store.schema import alerts, timers
from notifier.store.timers import write_timers

ROOT = Path(__file__).resolve().parent.parent
ENGINE_CPU = {1} if (os.cpu_count() or 1) > 1 else {0}
TOKEN = "bench-token"
# Nobody to notify (no SMTP here): the cost measured is the scheduler's and the store's.
PLAN = {
    "policy": "bench",
    "template": "alert",
    "clearance": "public",
    "steps": [{"delay": 300, "people": []}],
    "announce": True,
    "reminders": {"every": 1800, "count": 2, "then": []},
    "updates": {"every": 3600, "commanders": [], "stakeholders": []},
}
KINDS = (TimerKind.ESCALATION, TimerKind.UPDATE)


def seed(db: Database, count: int, spread: float, start: datetime, stress: bool) -> None:
    """Firing alerts, each with an escalation step due within ``spread`` seconds of
    ``start`` and a status-update tick due an hour later (with ``stress``, also within
    ``spread`` seconds)."""
    rng = random.Random(1)
    now = datetime.now(UTC)
    chunk = 5000
    for base in range(0, count, chunk):
        ids = range(base, min(count, base + chunk))
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
                        "name": f"Alert{i}",
                        "severity": "critical",
                        "risk": None,
                        "labels": {},
                        "summary": "s",
                        "starts_at": now,
                        "ends_at": None,
                        "created_at": now,
                        "updated_at": now,
                        "event_count": 1,
                        "last_event_key": "k",
                    }
                    for i in ids
                ],
            )
            write_timers(
                conn,
                [
                    Timer(
                        f"{i:031x}{k}",
                        f"{i:032x}",
                        1,
                        kind,
                        0,
                        start
                        + timedelta(
                            seconds=rng.uniform(0, spread)
                            + (0 if stress or kind is TimerKind.ESCALATION else 3600)
                        ),
                        "k",
                        plan_key(PLAN),
                        PLAN,
                    )
                    for i in ids
                    for k, kind in enumerate(KINDS)
                ],
            )


def config(tmp: Path, url: str, port: int) -> Path:
    raw = yaml.safe_load((ROOT / "config" / "directory.yaml").read_text())
    for person in raw["people"]:
        if person["id"] == "mei.lin":
            person["api_token_sha256"] = hashlib.sha256(TOKEN.encode()).hexdigest()
    (tmp / "directory.yaml").write_text(yaml.safe_dump(raw))
    path = tmp / "notifier.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "store": {"url": url},
                "http": {"enabled": True, "host": "127.0.0.1", "port": port},
                "delivery": {"batch_size": 500},
                "templates": {
                    "directory": str(ROOT / "templates"),
                    "locales_directory": str(ROOT / "locales"),
                },
                "log": {"level": "WARNING", "format": "json"},
                "routing_file": str(ROOT / "config" / "routing.yaml"),
                "directory_file": str(tmp / "directory.yaml"),
            }
        )
    )
    return path


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def one_run(count: int, spread: float, acks: int, stress: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        url = f"sqlite:///{tmp / 'timers.db'}"
        db = Database(url)
        db.migrate()
        start = datetime.now(UTC) + timedelta(seconds=15)
        seed(db, count, spread, start, stress)
        horizon = start + timedelta(seconds=spread)
        port = free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "notifier",
                "--config",
                str(config(tmp, url, port)),
                "run",
                "--deliver-only",
            ],
            cwd=ROOT,
        )
        os.sched_setaffinity(proc.pid, ENGINE_CPU)
        peak = peak_anon = 0.0
        try:
            while True:
                rss, anon = rss_mb(proc.pid)
                peak, peak_anon = max(peak, rss), max(peak_anon, anon)
                with db.engine.connect() as conn:
                    # Fired status updates schedule their next tick an hour later: not waited for.
                    pending = conn.scalar(
                        select(func.count())
                        .select_from(timers)
                        .where(timers.c.state == "pending", timers.c.due_at <= horizon)
                    )
                if not pending:
                    break
                if proc.poll() is not None:
                    raise RuntimeError("engine exited")
                time.sleep(0.2)
            with db.engine.connect() as conn:
                rows = conn.execute(
                    select(timers.c.due_at, timers.c.fired_at).where(
                        timers.c.fired_at.is_not(None), timers.c.step == 0
                    )
                ).all()
            late = [(f - d).total_seconds() for d, f in rows]
            ids = [f"{i:032x}" for i in range(acks)]
            times = []
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                for alert_id in ids:
                    t = time.perf_counter()
                    r = client.post(
                        f"/api/v1/alerts/{alert_id}/ack",
                        headers={"Authorization": f"Bearer {TOKEN}"},
                    )
                    times.append(time.perf_counter() - t)
                    assert r.status_code == 200, r.text
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            db.dispose()
    result = {
        "lateness_p50_s": pct(late, 0.5),
        "lateness_p99_s": pct(late, 0.99),
        "lateness_max_s": max(late),
        "peak_rss_mb": peak,
        "peak_anon_mb": peak_anon,
        "ack_p50_ms": pct(times, 0.5) * 1000,
        "ack_p99_ms": pct(times, 0.99) * 1000,
    }
    print(
        f"{len(late):,} timers fired: lateness p50 {result['lateness_p50_s']:.3f}s p99 "
        f"{result['lateness_p99_s']:.3f}s max {result['lateness_max_s']:.3f}s; peak RSS "
        f"{peak:.0f} MB ({peak_anon:.0f} MB anonymous); API ack p50 "
        f"{result['ack_p50_ms']:.1f} ms p99 {result['ack_p99_ms']:.1f} ms",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--spread", type=float, default=30.0)
    parser.add_argument(
        "--stress", action="store_true", help="status-update ticks due in the window too"
    )
    parser.add_argument("--acks", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})
    results = [one_run(args.alerts, args.spread, args.acks, args.stress) for _ in range(args.runs)]
    medians = {k: statistics.median(r[k] for r in results) for k in results[0]}
    print(
        f"\nmedian of {len(results)}: lateness p50 {medians['lateness_p50_s']:.3f}s, p99 "
        f"{medians['lateness_p99_s']:.3f}s; peak RSS {medians['peak_rss_mb']:.0f} MB "
        f"({medians['peak_anon_mb']:.0f} MB anonymous); "
        f"API ack p99 {medians['ack_p99_ms']:.1f} ms"
    )
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    name = "timers-stress.json" if args.stress else "timers.json"
    (out / name).write_text(json.dumps({"runs": results, "median": medians}, indent=2))


if __name__ == "__main__":
    main()
