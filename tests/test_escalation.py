"""Escalation: frozen plans, pure step decisions, and durable timers on both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import yaml
from sqlalchemy import select

from notifier.directory import Directory
from notifier.escalation import (
    EscalationPolicy,
    Plan,
    PlannedStep,
    StepDecision,
    Stop,
    Targets,
    decide_step,
    freeze,
)
from notifier.lifecycle import Action, Verb
from notifier.pipeline import BatchProcessor, RawRecord
from notifier.routing import Router, RoutingConfig
from notifier.scheduler import Scheduler
from notifier.settings import DeliverySettings
from notifier.store import Database
from notifier.store.schema import notifications, timers
from notifier.store.timeline import apply_action, timeline
from notifier.testing import FakeClock

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "config" / "samples"
T0 = datetime(2026, 11, 20, 8, 15, tzinfo=UTC)

POLICY = {
    "steps": [
        {"delay": "PT5M", "notify": {"roles": ["incident-commander"]}},
        {"delay": "PT10M", "notify": {"people": ["priya.raman", "sofia.navarro"]}},
        {"delay": 900, "notify": {"tiers": ["partners"]}},
    ]
}


def test_freeze_resolves_people_and_expands_repeats() -> None:
    """A frozen plan lists each step's people at start, repeated as the policy says."""
    policy = EscalationPolicy.model_validate({**POLICY, "repeat": 1})
    plan = freeze(
        "p",
        policy,
        lambda t: [(p, "restricted") for p in t.people or t.roles],
        template="alert",
        clearance="confidential",
    )
    assert [s.delay_seconds for s in plan.steps] == [300, 600, 900] * 2
    assert plan.steps[1].people == ("priya.raman", "sofia.navarro")
    assert Plan.from_json(plan.to_json()) == plan


@pytest.mark.parametrize(
    ("status", "occurrence", "expected"),
    [
        ("acknowledged", 1, Stop.ACKNOWLEDGED),
        ("resolved", 1, Stop.RESOLVED),
        ("firing", 2, Stop.STALE),
    ],
)
def test_a_step_stops_when_the_alert_moved_on(status: str, occurrence: int, expected: Stop) -> None:
    """Acknowledged, resolved, or a newer occurrence (fencing token): the step does nothing."""
    plan = Plan("p", "alert", "public", (PlannedStep(60, ("a",)),))
    decision = decide_step(
        plan, 0, timer_occurrence=1, alert_occurrence=occurrence, alert_status=status, now=T0
    )
    assert decision is expected


def test_a_step_notifies_its_people_and_schedules_the_next() -> None:
    """A due step names its people; the next is due its own delay later; the last has none."""
    plan = Plan("p", "alert", "public", (PlannedStep(60, ("a",)), PlannedStep(120, ("b",))))
    first = decide_step(
        plan, 0, timer_occurrence=1, alert_occurrence=1, alert_status="firing", now=T0
    )
    last = decide_step(
        plan, 1, timer_occurrence=1, alert_occurrence=1, alert_status="firing", now=T0
    )
    assert first == StepDecision(0, ("a",), T0 + timedelta(seconds=120))
    assert last == StepDecision(1, ("b",), None)


def test_policies_are_validated_with_clear_errors() -> None:
    """Empty targets, a non-positive delay and an unknown policy name are refused."""
    with pytest.raises(ValueError, match="at least one person"):
        Targets()
    with pytest.raises(ValueError, match="positive"):
        EscalationPolicy.model_validate({"steps": [{"delay": 0, "notify": {"people": ["a"]}}]})
    routing = yaml.safe_load((ROOT / "config" / "routing.yaml").read_text())
    routing["rules"][0]["escalation"] = "nope"
    with pytest.raises(ValueError, match="unknown escalation policy 'nope'"):
        RoutingConfig.model_validate(routing)


class Harness:
    """Ingest and scheduler on one store, with a fake clock."""

    def __init__(self, db: Database) -> None:
        raw = yaml.safe_load((ROOT / "config" / "routing.yaml").read_text())
        raw["escalation_policies"] = {"critical-incident": POLICY}
        self.directory = Directory.load(ROOT / "config" / "directory.yaml")
        self.router = Router(RoutingConfig.model_validate(raw), self.directory)
        self.clock = FakeClock(T0)
        self.db = db
        self.offset = 0
        self.scheduler = Scheduler(db, self.directory, DeliverySettings(), self.clock)

    def ingest(self, *docs: bytes) -> None:
        proc = BatchProcessor(
            self.db, self.router, self.clock, group="g", topic="t", max_event_bytes=1 << 20
        )
        records = [RawRecord("t", 0, self.offset + i, None, d, ()) for i, d in enumerate(docs)]
        self.offset += len(docs)
        proc.apply(records, proc.decode(records))

    def escalations(self) -> dict[str, set[str]]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                select(notifications.c.kind, notifications.c.person_id).where(
                    notifications.c.kind.startswith("escalated")
                )
            ).all()
        found: dict[str, set[str]] = {}
        for kind, person in rows:
            found.setdefault(kind, set()).add(person)
        return found

    def outcomes(self) -> list[tuple[int, str | None]]:
        with self.db.engine.connect() as conn:
            return [
                tuple(r)
                for r in conn.execute(
                    select(timers.c.step, timers.c.outcome).order_by(timers.c.step)
                ).all()
            ]

    async def at(self, minutes: float) -> int:
        self.clock.advance(minutes * 60 - (self.clock.now() - T0).total_seconds())
        return await self.scheduler.fire_due()


FIRING = (SAMPLES / "alert-firing.json").read_bytes()


async def test_full_escalation_runs_every_step_once(db: Database) -> None:
    """Unacknowledged: steps fire at 5, 15 and 30 minutes, each once, then it stops."""
    h = Harness(db)
    h.ingest(FIRING)
    assert await h.at(4.9) == 0
    assert await h.at(5) == 1
    assert await h.at(5) == 0  # fired at most once
    assert await h.at(15) == 1
    assert await h.at(30) == 1
    assert h.escalations() == {
        "escalated-1": {"mei.lin", "lukas.meier"},
        "escalated-2": {"priya.raman", "sofia.navarro"},
        "escalated-3": {"carlos.ruiz", "helga.berg"},
    }
    assert h.outcomes() == [(0, "fired"), (1, "fired"), (2, "fired")]
    with db.engine.connect() as conn:
        alert_id = conn.scalar(select(timers.c.alert_id))
        kinds = [s["kind"] for s in timeline(conn, str(alert_id))]
    assert kinds == ["triggered", "escalated", "escalated", "escalated"]


async def test_acknowledging_stops_the_escalation(db: Database) -> None:
    """After an acknowledgment at step 1, step 2 does nothing and nothing follows."""
    h = Harness(db)
    h.ingest(FIRING)
    await h.at(5)
    with db.engine.connect() as conn:
        alert_id = str(conn.scalar(select(timers.c.alert_id)))
    with db.transaction() as conn:
        apply_action(
            conn,
            alert_id,
            Action(Verb.ACKNOWLEDGE, "mei.lin", "cli", h.clock.now()),
            lock=not db.is_sqlite,
            directory=h.directory,
        )
    assert await h.at(15) == 1
    assert await h.at(60) == 0
    assert h.outcomes() == [(0, "fired"), (1, "acknowledged")]
    assert set(h.escalations()) == {"escalated-1"}


async def test_resolving_stops_the_escalation(db: Database) -> None:
    """The source resolving the alert ends its escalation at the next due step."""
    h = Harness(db)
    h.ingest(FIRING)
    h.ingest((SAMPLES / "alert-resolved.json").read_bytes())
    assert await h.at(5) == 1
    assert h.outcomes() == [(0, "resolved")]
    assert h.escalations() == {}


async def test_a_timer_of_an_earlier_occurrence_never_acts(db: Database) -> None:
    """Resolved and re-fired before the step: the old timer is stale, the new one runs."""
    h = Harness(db)
    h.ingest(FIRING)
    refire = orjson.loads(FIRING)
    refire["id"] = "refire-1"
    h.clock.advance(60)
    h.ingest((SAMPLES / "alert-resolved.json").read_bytes(), orjson.dumps(refire))
    assert await h.at(5) == 1  # occurrence 1's step: stale
    assert await h.at(6) == 1  # occurrence 2's step, due 5 minutes after it started
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(timers.c.occurrence, timers.c.outcome)
            .where(timers.c.step == 0)
            .order_by(timers.c.occurrence)
        ).all()
    assert [tuple(r) for r in rows] == [(1, "stale"), (2, "fired")]


async def test_catching_up_after_downtime_fires_in_due_order(db: Database) -> None:
    """An hour of downtime: the overdue step fires at once; later steps follow their delays."""
    h = Harness(db)
    h.ingest(FIRING)
    assert await h.at(60) == 1
    assert h.outcomes() == [(0, "fired"), (1, None)]
    with db.engine.connect() as conn:
        due = conn.scalar(select(timers.c.due_at).where(timers.c.step == 1))
    assert due == T0 + timedelta(minutes=70)


async def test_resolve_reaches_everyone_an_escalation_paged(db: Database) -> None:
    """The regulator liaison, paged only by step 2, also hears that the alert resolved."""
    h = Harness(db)
    h.ingest(FIRING)
    await h.at(5)
    await h.at(15)
    h.ingest((SAMPLES / "alert-resolved.json").read_bytes())
    with db.engine.connect() as conn:
        resolved = set(
            conn.scalars(
                select(notifications.c.person_id).where(notifications.c.kind == "resolved")
            )
        )
    assert "sofia.navarro" in resolved
    assert {"mei.lin", "carlos.ruiz", "priya.raman"} <= resolved
