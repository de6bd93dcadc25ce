"""A store driven like the engine drives it, on a fake clock: ingest events, let the hold keeper
and the scheduler do what is due, and read back what would be sent (for the fatigue tests)."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import yaml
from sqlalchemy import select

from notifier.directory import Directory
from notifier.fatigue import FatigueConfig
from notifier.holdkeeper import HoldKeeper
from notifier.pipeline import BatchProcessor, RawRecord
from notifier.routing import Router, RoutingConfig
from notifier.scheduler import Scheduler
from notifier.settings import DeliverySettings
from notifier.silences import Silence, new_silence
from notifier.store import Database
from notifier.store.schema import alerts, holds, notifications, timers
from notifier.store.silences import create_silence
from notifier.testing import FakeClock

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "config" / "samples"
T0 = datetime(2026, 11, 20, 8, 15, tzinfo=UTC)


def alert_event(
    event_id: str,
    *,
    name: str = "ConsensusFinalityLag",
    severity: str = "critical",
    network: str = "mainnet",
    status: str = "firing",
    instance: str | None = None,
) -> bytes:
    """The sample alert with another id, name, severity, network, status or instance."""
    doc: dict[str, Any] = orjson.loads((SAMPLES / "alert-firing.json").read_bytes())
    doc["id"] = event_id
    data = doc["data"]
    data.update(alertname=name, severity=severity, status=status)
    data["labels"] = {**data["labels"], "network": network}
    if instance is not None:  # another alert of the same name (another fingerprint)
        data["labels"]["instance"] = instance
    return orjson.dumps(doc)


def shipped_routing(fatigue: FatigueConfig | None = None) -> RoutingConfig:
    """The shipped routing with ``fatigue`` instead of its own (default: none, so that tests
    of other controls see every notification as it is routed)."""
    shipped = RoutingConfig.load(ROOT / "config" / "routing.yaml")
    return shipped.model_copy(update={"fatigue": fatigue or FatigueConfig()})


class Story:
    """Ingest, timers and the hold keeper on one store, driven by a fake clock."""

    def __init__(
        self,
        db: Database,
        *,
        config: RoutingConfig | None = None,
        directory: Directory | None = None,
        start: datetime = T0,
    ) -> None:
        self.db = db
        self.directory = directory or Directory.load(ROOT / "config" / "directory.yaml")
        config = config or shipped_routing()
        self.rules = config.inhibit_rules
        self.router = Router(config, self.directory)
        self.start = start
        self.clock = FakeClock(start)
        self.offset = 0
        self.scheduler = Scheduler(db, self.directory, DeliverySettings(), self.clock)
        self.keeper = HoldKeeper(
            db,
            self.rules,
            self.clock,
            flapping=config.flapping,
            fatigue=config.fatigue,
            directory=self.directory,
        )
        self.processor = BatchProcessor(
            db, self.router, self.clock, group="g", topic="t", max_event_bytes=1 << 20
        )

    def ingest(self, *docs: bytes) -> None:
        """Ingest ``docs`` as one batch."""
        records = [RawRecord("t", 0, self.offset + i, None, doc, ()) for i, doc in enumerate(docs)]
        self.offset += len(docs)
        self.processor.apply(records, self.processor.decode(records))

    async def at(self, minutes: float) -> None:
        """Move to start + minutes; let the hold keeper and the scheduler do what is due."""
        self.clock.advance(minutes * 60 - (self.clock.now() - self.start).total_seconds())
        await self.keeper.sweep()
        while await self.scheduler.fire_due():
            pass

    def silence(self, minutes: float, *matchers: str, starts_in: float = 0) -> Silence:
        now = self.clock.now()
        made = new_silence(
            list(matchers),
            created_by="mei.lin",
            comment="validator upgrade CHG-7",
            now=now,
            starts_at=now + timedelta(minutes=starts_in),
            duration=timedelta(minutes=minutes),
        )
        with self.db.transaction() as conn:
            create_silence(conn, made, now)
        return made

    def alert_id(self, name: str = "ConsensusFinalityLag", network: str = "mainnet") -> str:
        with self.db.engine.connect() as conn:
            for alert_id, labels in conn.execute(
                select(alerts.c.id, alerts.c.labels).where(alerts.c.name == name)
            ):
                if labels.get("network") == network:
                    return str(alert_id)
        raise AssertionError(f"no {name} alert on {network}")

    def statuses(self, alert_id: str) -> Counter[tuple[str, str]]:
        """(kind, status) of the alert's notifications, counted."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                select(notifications.c.kind, notifications.c.status).where(
                    notifications.c.alert_id == alert_id
                )
            ).all()
        return Counter((kind, status) for kind, status in rows)

    def timers(self, alert_id: str) -> list[tuple[str, str, datetime]]:
        with self.db.engine.connect() as conn:
            return [
                (kind, state, due)
                for kind, state, due in conn.execute(
                    select(timers.c.kind, timers.c.state, timers.c.due_at)
                    .where(timers.c.alert_id == alert_id)
                    .order_by(timers.c.due_at)
                )
            ]

    def holds(self, alert_id: str) -> list[tuple[str, str, str | None]]:
        with self.db.engine.connect() as conn:
            return [
                (cause, cause_id, outcome)
                for cause, cause_id, outcome in conn.execute(
                    select(holds.c.cause, holds.c.cause_id, holds.c.outcome)
                    .where(holds.c.alert_id == alert_id)
                    .order_by(holds.c.id)
                )
            ]


def directory_with_tokens(tmp_path: Path, tokens: dict[str, str]) -> Directory:
    """The shipped directory, with personal API tokens (person id -> token) for the API."""
    raw = yaml.safe_load((ROOT / "config" / "directory.yaml").read_text())
    for person in raw["people"]:
        if person["id"] in tokens:
            person["api_token_sha256"] = hashlib.sha256(tokens[person["id"]].encode()).hexdigest()
    path = tmp_path / "directory.yaml"
    path.write_text(yaml.safe_dump(raw))
    return Directory.load(path)
