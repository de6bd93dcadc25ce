"""Escalation: policies as validated data, plans frozen when an alert starts, pure step decisions.

A routing rule may name an escalation policy. When its alert fires, the policy is *frozen*
into a :class:`Plan` (steps with delays and the people they reach, resolved then), so a later
configuration change never rewrites a running escalation. Each step is a timer row; when it
is due, :func:`decide_step` says whom to notify and when the next step is due, or why the
escalation stops (someone acknowledged, the alert resolved, or the timer belongs to an
earlier occurrence: the fencing token).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Targets(BaseModel):
    """Who a step reaches: people by id, everyone holding a role, or routing tiers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    people: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _not_empty(self) -> Targets:
        if not (self.people or self.roles or self.tiers):
            raise ValueError("a step must notify at least one person, role or tier")
        return self


class EscalationStep(BaseModel):
    """After ``delay`` without acknowledgment (since the previous step), notify ``notify``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    delay: timedelta = Field(description="ISO 8601 duration (PT5M) or seconds")
    notify: Targets

    @model_validator(mode="after")
    def _positive(self) -> EscalationStep:
        if self.delay <= timedelta(0):
            raise ValueError("delay must be positive")
        return self


class EscalationPolicy(BaseModel):
    """Ordered steps, run ``repeat`` more times if still nobody acknowledges."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: tuple[EscalationStep, ...] = Field(min_length=1, max_length=20)
    repeat: int = Field(default=0, ge=0, le=10)


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """One frozen step: its delay and the people (ids) it notifies."""

    delay_seconds: float
    people: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """An escalation frozen at alert start."""

    policy: str
    template: str
    clearance: str
    steps: tuple[PlannedStep, ...]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form, stored with each timer."""
        return {
            "policy": self.policy,
            "template": self.template,
            "clearance": self.clearance,
            "steps": [{"delay": s.delay_seconds, "people": list(s.people)} for s in self.steps],
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Plan:
        """Rebuild a stored plan."""
        return cls(
            policy=raw["policy"],
            template=raw["template"],
            clearance=raw["clearance"],
            steps=tuple(PlannedStep(float(s["delay"]), tuple(s["people"])) for s in raw["steps"]),
        )


def freeze(
    name: str,
    policy: EscalationPolicy,
    resolve: Callable[[Targets], list[str]],
    *,
    template: str,
    clearance: str,
) -> Plan:
    """Resolve every step's targets to people now and expand repeats."""
    once = [
        PlannedStep(step.delay.total_seconds(), tuple(resolve(step.notify)))
        for step in policy.steps
    ]
    return Plan(name, template, clearance, tuple(once * (policy.repeat + 1)))


class Stop(StrEnum):
    """Why an escalation ends instead of taking its next step."""

    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    STALE = "stale"
    FINISHED = "finished"


@dataclass(frozen=True, slots=True)
class StepDecision:
    """Notify these people; the next step (if any) is due then."""

    step: int
    people: tuple[str, ...]
    next_due: datetime | None


def decide_step(
    plan: Plan,
    step: int,
    *,
    timer_occurrence: int,
    alert_occurrence: int,
    alert_status: str,
    now: datetime,
) -> StepDecision | Stop:
    """Decide what a due escalation timer does (guard clauses first, no I/O)."""
    if timer_occurrence != alert_occurrence:
        return Stop.STALE
    if alert_status == "acknowledged":
        return Stop.ACKNOWLEDGED
    if alert_status == "resolved":
        return Stop.RESOLVED
    if step >= len(plan.steps):
        return Stop.FINISHED
    following = step + 1
    next_due = (
        now + timedelta(seconds=plan.steps[following].delay_seconds)
        if following < len(plan.steps)
        else None
    )
    return StepDecision(step, plan.steps[step].people, next_due)
