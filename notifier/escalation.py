"""Escalation: policies as validated data, plans frozen when an alert starts, pure step decisions.

A routing rule may name an escalation policy. When its alert fires, the policy is *frozen*
into a :class:`Plan` (steps with delays and the people they reach, resolved then), so a later
configuration change never rewrites a running escalation. Each step is a timer row; when it
is due, :func:`decide_step` says whom to notify and when the next step is due, or why the
escalation stops (someone acknowledged, the alert resolved, or the timer belongs to an
earlier occurrence: the fencing token).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

# The engine's own message templates (beside the ones routing rules name).
REMINDER_TEMPLATE = "reminder"
UPDATE_TEMPLATE = "status-update"
RECEIPT_TEMPLATE = "receipt"


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


class AckReminders(BaseModel):
    """While an acknowledged alert stays unresolved: remind whoever took charge, then escalate.

    Every ``remind_every`` the acknowledger is reminded, ``reminders`` times; at the next tick
    ``then_notify`` hears that the alert is acknowledged but still not resolved.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    remind_every: timedelta = Field(description="ISO 8601 duration (PT30M) or seconds")
    reminders: int = Field(default=2, ge=0, le=20)
    then_notify: Targets

    @model_validator(mode="after")
    def _positive(self) -> AckReminders:
        if self.remind_every <= timedelta(0):
            raise ValueError("remind_every must be positive")
        return self


class StatusUpdates(BaseModel):
    """While the incident is open, every ``every``: remind its commander to post an update,
    and send the latest update to the stakeholders.

    The commander is whoever acknowledged the alert; until someone does, ``commander``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    every: timedelta = Field(description="ISO 8601 duration (PT30M) or seconds")
    commander: Targets
    stakeholders: Targets | None = None

    @model_validator(mode="after")
    def _long_enough(self) -> StatusUpdates:
        if self.every < timedelta(minutes=1):
            raise ValueError("every must be at least one minute")
        return self


class EscalationPolicy(BaseModel):
    """Ordered steps, run ``repeat`` more times if still nobody acknowledges; optionally
    announce acknowledgments, remind whoever acknowledged, and keep a status-update cadence."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: tuple[EscalationStep, ...] = Field(default=(), max_length=20)
    repeat: int = Field(default=0, ge=0, le=10)
    announce_acknowledgment: bool = Field(
        default=False,
        description="tell everyone paged before the acknowledgment who took charge",
    )
    acknowledged: AckReminders | None = None
    status_updates: StatusUpdates | None = None

    @model_validator(mode="after")
    def _does_something(self) -> EscalationPolicy:
        if not (self.steps or self.acknowledged or self.status_updates):
            raise ValueError("a policy needs steps, acknowledged reminders or status_updates")
        return self

    def targets(self) -> list[Targets]:
        """Every audience the policy names (for validation against tiers and the directory)."""
        found = [step.notify for step in self.steps]
        if self.acknowledged is not None:
            found.append(self.acknowledged.then_notify)
        if self.status_updates is not None:
            found.append(self.status_updates.commander)
            if self.status_updates.stakeholders is not None:
                found.append(self.status_updates.stakeholders)
        return found

    def templates(self) -> set[str]:
        """The engine's own templates this policy's messages use."""
        used = set()
        if self.acknowledged is not None:
            used.add(REMINDER_TEMPLATE)
        if self.status_updates is not None:
            used |= {REMINDER_TEMPLATE, UPDATE_TEMPLATE}
        return used


class ReceiptPolicy(BaseModel):
    """A tier whose members must confirm they received a policy notice.

    Who has not confirmed after ``remind_after`` is reminded; at ``deadline`` (both counted
    from the notice) the ``liaison`` hears who still has not.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    remind_after: timedelta = Field(description="ISO 8601 duration (PT4H) or seconds")
    deadline: timedelta = Field(description="ISO 8601 duration (P1D) or seconds")
    liaison: Targets

    @model_validator(mode="after")
    def _ordered(self) -> ReceiptPolicy:
        if not timedelta(0) < self.remind_after < self.deadline:
            raise ValueError("remind_after must be positive and before the deadline")
        return self


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """One frozen step: its delay and the people (ids) it notifies."""

    delay_seconds: float
    people: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReminderPlan:
    """Frozen :class:`AckReminders`."""

    every_seconds: float
    count: int
    then: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UpdatePlan:
    """Frozen :class:`StatusUpdates`."""

    every_seconds: float
    commanders: tuple[str, ...]
    stakeholders: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """An escalation frozen at alert start.

    ``clearance`` is the rule's confidentiality; ``clearances`` what each person in the plan
    may read (never more than the rule allows, and no more than their tiers are cleared for).
    """

    policy: str
    template: str
    clearance: str
    steps: tuple[PlannedStep, ...]
    clearances: dict[str, str] = field(default_factory=dict)
    announce: bool = False
    reminders: ReminderPlan | None = None
    updates: UpdatePlan | None = None

    def clearance_for(self, person_id: str) -> str:
        """What ``person_id`` may read in messages of this plan."""
        return self.clearances.get(person_id, "public")

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form, stored with each timer."""
        raw: dict[str, Any] = {
            "policy": self.policy,
            "template": self.template,
            "clearance": self.clearance,
            "steps": [{"delay": s.delay_seconds, "people": list(s.people)} for s in self.steps],
            "clearances": self.clearances,
            "announce": self.announce,
        }
        if self.reminders is not None:
            r = self.reminders
            raw["reminders"] = {"every": r.every_seconds, "count": r.count, "then": list(r.then)}
        if self.updates is not None:
            u = self.updates
            raw["updates"] = {
                "every": u.every_seconds,
                "commanders": list(u.commanders),
                "stakeholders": list(u.stakeholders),
            }
        return raw

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Plan:
        """Rebuild a stored plan."""
        reminders = raw.get("reminders")
        updates = raw.get("updates")
        return cls(
            policy=raw["policy"],
            template=raw["template"],
            clearance=raw["clearance"],
            steps=tuple(PlannedStep(float(s["delay"]), tuple(s["people"])) for s in raw["steps"]),
            clearances=dict(raw.get("clearances", {})),
            announce=bool(raw.get("announce", False)),
            reminders=None
            if reminders is None
            else ReminderPlan(
                float(reminders["every"]), int(reminders["count"]), tuple(reminders["then"])
            ),
            updates=None
            if updates is None
            else UpdatePlan(
                float(updates["every"]),
                tuple(updates["commanders"]),
                tuple(updates["stakeholders"]),
            ),
        )


def plan_key(body: dict[str, Any]) -> str:
    """The content address of a stored plan: equal plans share one row."""
    raw = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class FrozenPlan:
    """A plan with its stored form and content key, computed once per rule and policy."""

    plan: Plan
    body: dict[str, Any]
    key: str

    @classmethod
    def of(cls, plan: Plan) -> FrozenPlan:
        """Wrap ``plan``."""
        body = plan.to_json()
        return cls(plan, body, plan_key(body))


Resolve = Callable[[Targets], list[tuple[str, str]]]
"""Turns targets into ``(person id, clearance)`` pairs, capped by the rule's clearance."""


def freeze(
    name: str, policy: EscalationPolicy, resolve: Resolve, *, template: str, clearance: str
) -> Plan:
    """Resolve every target to people now, remember what each may read, and expand repeats."""
    clearances: dict[str, str] = {}

    def people(targets: Targets) -> tuple[str, ...]:
        found = resolve(targets)
        for person_id, level in found:
            # Someone reached through several targets reads the most any of them allows.
            if _RANK.get(level, 0) > _RANK.get(clearances.get(person_id, ""), -1):
                clearances[person_id] = level
        return tuple(person_id for person_id, _ in found)

    once = [PlannedStep(step.delay.total_seconds(), people(step.notify)) for step in policy.steps]
    reminders = None
    if policy.acknowledged is not None:
        a = policy.acknowledged
        reminders = ReminderPlan(a.remind_every.total_seconds(), a.reminders, people(a.then_notify))
    updates = None
    if policy.status_updates is not None:
        u = policy.status_updates
        updates = UpdatePlan(
            u.every.total_seconds(),
            people(u.commander),
            people(u.stakeholders) if u.stakeholders else (),
        )
    return Plan(
        name,
        template,
        clearance,
        tuple(once * (policy.repeat + 1)),
        clearances,
        policy.announce_acknowledgment,
        reminders,
        updates,
    )


_RANK = {"public": 0, "restricted": 1, "confidential": 2}


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
