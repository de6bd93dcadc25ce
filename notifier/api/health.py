"""``/healthz``, ``/readyz`` and ``/metrics``.

Metrics are read from the store at scrape time, so every instance reports the same totals
(events, notifications by channel and outcome, open alerts, time to acknowledge, timer lag).
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import text

from notifier.api.alerts import context
from notifier.api.deps import ApiContext
from notifier.store.queries import metrics_snapshot

router = APIRouter(tags=["health"])

# Seconds: paging is about minutes, so from 30 s to two hours.
ACK_BUCKETS = (30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0)


def _le(bound: float) -> str:
    return f"{bound:g}"


Ctx = Annotated[ApiContext, Depends(context)]


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(ctx: Ctx) -> JSONResponse:
    """The store and the broker are reachable (503 and what is wrong otherwise)."""
    problems = {}

    def ping() -> None:
        with ctx.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    try:
        await asyncio.to_thread(ping)
    except Exception as exc:
        problems["store"] = type(exc).__name__
    broker = await ctx.broker_problem()
    if broker is not None:
        problems["broker"] = broker
    if problems:
        return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ready"})


class StoreCollector(Collector):
    """Prometheus metrics computed from the store when scraped."""

    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def collect(self) -> Iterator[Metric]:
        """Yield the metric families."""
        snap = metrics_snapshot(self._ctx.db)
        now: datetime = self._ctx.clock.now()
        events = CounterMetricFamily(
            "notifier_events", "Accepted and rejected events", labels=["outcome"]
        )
        events.add_metric(["accepted"], snap["events"])
        events.add_metric(["rejected"], snap["rejections"])
        yield events
        sent = CounterMetricFamily(
            "notifier_notifications",
            "Notifications by channel and outcome",
            labels=["channel", "outcome"],
        )
        for (channel, status), n in snap["notifications"].items():
            sent.add_metric([channel, status], n)
        yield sent
        suppressed = GaugeMetricFamily(
            "notifier_suppressed_notifications",
            "Notifications not sent alone because a control held them back, by reason "
            "(silenced, inhibited, flapping, grouped, throttled, quiet) and state (held: may "
            "still go out when the cause ends; suppressed: never will; bundled: listed in a "
            "digest instead)",
            labels=["reason", "state"],
        )
        for (reason, status), n in snap["suppressed"].items():
            suppressed.add_metric([reason, status], n)
        yield suppressed
        open_alerts = GaugeMetricFamily(
            "notifier_open_alerts", "Alerts not resolved", labels=["severity", "status"]
        )
        for (severity, status), n in snap["open_alerts"].items():
            open_alerts.add_metric([severity, status], n)
        yield open_alerts
        waits: list[float] = sorted(snap["time_to_ack"])
        ack = HistogramMetricFamily(
            "notifier_time_to_acknowledge_seconds",
            "Time from alert start to acknowledgment (alerts acknowledged in this occurrence)",
        )
        buckets = [(_le(bound), bisect_right(waits, bound)) for bound in ACK_BUCKETS]
        ack.add_metric([], [*buckets, ("+Inf", len(waits))], sum_value=sum(waits))
        yield ack
        due = snap["earliest_due_timer"]
        lag = GaugeMetricFamily(
            "notifier_timer_lag_seconds", "How overdue the most overdue pending timer is"
        )
        lag.add_metric([], max(0.0, (now - due).total_seconds()) if due else 0.0)
        yield lag


@router.get("/metrics")
async def metrics(ctx: Ctx) -> Response:
    """Prometheus exposition format."""
    registry = CollectorRegistry()
    registry.register(StoreCollector(ctx))
    body = await asyncio.to_thread(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
