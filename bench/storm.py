"""Benchmark: what the fatigue stage costs the pipeline in a storm, and what it saves people.

Usage: python bench/storm.py [--alerts 100000] [--groups 10000] [--runs 3]

The storm: --alerts distinct firing alerts (warnings and a tenth critical) spread over
--groups groups of (network, alertname), published to one topic of the embedded broker. Per
run, one `notifier run --no-deliver` process (pinned to one core, SQLite) drains the topic
twice, into fresh stores, in alternating order:

- baseline: the shipped routing without fatigue control (no grouping, limits or quiet hours);
- fatigue: the same routing with grouping by (network, alertname), 30 s wait and 5 min
  interval, and rate limits on every channel (a critical ceiling too).

Time per event comes from the store's committed offsets, first batch to last. The figure to
watch is the overhead: fatigue time per event / baseline time per event - 1 (target < 20%).
From the fatigue store it also counts, per recipient and channel, the messages they would
receive during the storm (sent alone, plus digests) against the messages a plain per-alert
notifier would send them (one per alert routed to them).

Prints every run and the medians; writes bench/results/storm.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import yaml
from pipeline import DRIVER_CPU, ENGINE_CPU, PARTITIONS, drain_rate, write_config

from notifier.broker import EmbeddedBroker, ensure_topics, publish

ROOT = Path(__file__).resolve().parent.parent
FATIGUE: dict[str, Any] = {
    "grouping": {"by": ["network", "alertname"], "wait": "PT30S", "interval": "PT5M"},
    "rate_limits": [
        {"channel": "email", "count": 30, "per": "PT1H", "burst": 20},
        {"channel": "slack", "count": 60, "per": "PT1H", "burst": 30},
        {"channel": "webhook", "count": 600, "per": "PT1H", "burst": 100},
    ],
    "critical_ceiling": {"count": 60, "per": "PT1H", "burst": 30},
}


def storm(alerts: int, groups: int) -> list[tuple[bytes, bytes]]:
    """Distinct firing alerts over ``groups`` (network, alertname) pairs; a tenth critical."""
    base = orjson.loads((ROOT / "config" / "samples" / "alert-firing.json").read_bytes())
    names = max(1, int(groups**0.5))
    networks = max(1, groups // names)
    records = []
    for i in range(alerts):
        group = i % (names * networks)
        data = dict(base["data"])
        data["alertname"] = f"Storm{group % names:03d}"
        data["severity"] = "critical" if i % 10 == 0 else "warning"
        data["labels"] = {
            **base["data"]["labels"],
            "network": "mainnet" if group // names == 0 else f"net{group // names:03d}",
            "instance": f"node-{i}",
        }
        doc = {**base, "id": f"storm-{i}", "data": data}
        records.append((f"storm-{i}".encode(), orjson.dumps(doc)))
    return records


def routing_file(tmp: Path, fatigue: bool) -> Path:
    """The shipped routing, with the storm's fatigue control or with none."""
    routing = yaml.safe_load((ROOT / "config" / "routing.yaml").read_text())
    routing["fatigue"] = FATIGUE if fatigue else {}
    routing.pop("flapping", None)
    path = tmp / ("routing-fatigue.yaml" if fatigue else "routing-plain.yaml")
    path.write_text(yaml.safe_dump(routing))
    return path


def drain(bootstrap: str, topic: str, events: int, fatigue: bool) -> dict[str, Any]:
    """One engine process drains ``topic`` into a fresh store; seconds per event, and (with
    fatigue) what recipients would receive."""
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        config = write_config(tmp, bootstrap, topic)
        settings = yaml.safe_load(config.read_text())
        settings["kafka"]["group_id"] = f"storm-{uuid.uuid4().hex[:8]}"
        settings["routing_file"] = str(routing_file(tmp, fatigue))
        config.write_text(yaml.safe_dump(settings))
        db = tmp / "bench.db"
        proc = subprocess.Popen(
            [sys.executable, "-m", "notifier", "--config", str(config), "run", "--no-deliver"],
            cwd=ROOT,
        )
        os.sched_setaffinity(proc.pid, ENGINE_CPU)
        try:
            result: dict[str, Any] = {"seconds_per_event": 1 / drain_rate(proc, db, events)}
            if fatigue:
                result.update(received(db))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return result


def received(db: Path) -> dict[str, Any]:
    """Messages per recipient and channel: with fatigue control, and per alert."""
    alone: dict[str, int] = defaultdict(int)
    plain: dict[str, int] = defaultdict(int)
    with sqlite3.connect(db) as conn:
        for person, channel, kind, status, n in conn.execute(
            "select person_id, channel, kind, status, count(*) from notifications "
            "group by person_id, channel, kind, status"
        ):
            key = f"{person}/{channel}"
            if kind.startswith("digest:") or status == "pending":
                alone[key] += n
            if kind in ("firing", "resolved"):
                plain[key] += n
        groups = conn.execute("select count(*) from bundles where reason = 'grouped'").fetchone()[0]
        open_alerts = conn.execute("select count(*) from alerts where status = 'firing'").fetchone()
    busiest = max(plain, key=lambda k: plain[k])
    return {
        "open_alerts": open_alerts[0],
        "groups_per_recipients": groups,
        "busiest_recipient": busiest,
        "busiest_plain": plain[busiest],
        "busiest_received": alone[busiest],
        "received": dict(alone),
        "plain": dict(plain),
    }


async def one_run(bootstrap: str, alerts: int, groups: int, run: int) -> dict[str, Any]:
    topic = f"storm-{run}-{uuid.uuid4().hex[:6]}"
    await ensure_topics(bootstrap, [topic, f"{topic}-dlq"], PARTITIONS)
    await publish(bootstrap, topic, storm(alerts, groups))
    order = [False, True] if run % 2 else [True, False]
    results = {f: await asyncio.to_thread(drain, bootstrap, topic, alerts, f) for f in order}
    base, tired = results[False], results[True]
    overhead = tired["seconds_per_event"] / base["seconds_per_event"] - 1
    out = {
        "baseline_us_per_event": base["seconds_per_event"] * 1e6,
        "fatigue_us_per_event": tired["seconds_per_event"] * 1e6,
        "overhead": overhead,
        **{k: v for k, v in tired.items() if k != "seconds_per_event"},
    }
    print(
        f"run {run}: baseline {out['baseline_us_per_event']:.0f} us/event, with fatigue "
        f"{out['fatigue_us_per_event']:.0f} us/event ({overhead:+.0%}); "
        f"{out['open_alerts']:,} open alerts; busiest recipient {out['busiest_recipient']}: "
        f"{out['busiest_received']} messages instead of {out['busiest_plain']:,}",
        flush=True,
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    os.sched_setaffinity(0, DRIVER_CPU)
    with EmbeddedBroker() as broker:
        assert broker._proc is not None
        os.sched_setaffinity(broker._proc.pid, DRIVER_CPU)
        print(
            f"storm: {args.alerts:,} alerts in {args.groups:,} groups x {args.runs} runs; "
            f"engine pinned to CPU {sorted(ENGINE_CPU)}",
            flush=True,
        )
        results = [
            asyncio.run(one_run(broker.bootstrap_servers, args.alerts, args.groups, run))
            for run in range(1, args.runs + 1)
        ]
    numeric = [k for k, v in results[0].items() if isinstance(v, int | float)]
    medians = {k: statistics.median(r[k] for r in results) for k in numeric}
    print(
        f"\nmedian of {len(results)}: fatigue stage adds {medians['overhead']:+.0%} per event "
        f"({medians['baseline_us_per_event']:.0f} -> {medians['fatigue_us_per_event']:.0f} us); "
        f"busiest recipient gets {medians['busiest_received']:.0f} messages instead of "
        f"{medians['busiest_plain']:,.0f}"
    )
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    summary = {"runs": [{k: r[k] for k in numeric} for r in results], "median": medians}
    (out / "storm.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
