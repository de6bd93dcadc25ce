"""Notification intents: who must receive which message about a transition, and how.

Pure: turns correlated transitions and the router's recipients into rows for the outbox. The
notification id is derived from its natural key (alert, occurrence, transition, person,
channel), so the same intent always has the same id and the same email ``Message-ID``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from notifier.correlate import Effect, Transition
from notifier.escalation import plan_key
from notifier.routing import Recipient, Router


@dataclass(frozen=True, slots=True)
class Intent:
    """One message to send: a transition, rendered with a template for one recipient.

    ``due_at`` is when it may go out; ``created_at`` orders it among the batch's messages
    (a microsecond apart, in transition order).
    """

    id: str
    transition: Transition
    recipient: Recipient
    due_at: datetime
    created_at: datetime

    @property
    def channel(self) -> str:
        """The channel the message goes out on."""
        return self.recipient.contact.channel.value


def notification_id(alert_id: str, occurrence: int, kind: str, person_id: str, channel: str) -> str:
    """Derive a notification's id from its natural key (stable across replays)."""
    raw = "\x00".join((alert_id, str(occurrence), kind, person_id, channel))
    return hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()


def plan(
    transitions: Iterable[Transition],
    router: Router,
    now: datetime,
    escalated: Mapping[tuple[str, int], Sequence[Recipient]] | None = None,
) -> list[Intent]:
    """Route every transition and return one intent per recipient.

    A resolve also reaches everyone an escalation paged about that occurrence
    (``escalated``), so nobody who was woken up is left wondering.
    """
    intents: list[Intent] = []
    for transition in transitions:
        alert = transition.alert
        recipients = router.route(transition.event)
        if transition.effect is Effect.RESOLVED and escalated:
            routed = {r.person.id for r in recipients}
            extra = escalated.get((alert.id, alert.occurrence), ())
            recipients += [r for r in extra if r.person.id not in routed]
        for recipient in recipients:
            nid = notification_id(
                alert.id,
                alert.occurrence,
                transition.effect.value,
                recipient.person.id,
                recipient.contact.channel.value,
            )
            # A microsecond apart, in the order of the batch's transitions: creation order is
            # delivery order per alert and address (a resolve after its page, not beside it).
            created = now + timedelta(microseconds=len(intents))
            intents.append(Intent(nid, transition, recipient, now, created))
    return intents


class TimerKind(StrEnum):
    """What a durable timer is for."""

    ESCALATION = "escalation"  # page the next step while nobody acknowledges
    REMINDER = "ack-reminder"  # acknowledged but unresolved: remind, then escalate
    UPDATE = "status-update"  # status-update cadence while the incident is open
    RECEIPT = "receipt"  # remind who has not confirmed receipt, then tell the liaison


@dataclass(frozen=True, slots=True)
class Timer:
    """A row for the timers table: what it is for, when it is due, and its frozen plan
    (stored once in the plans table under its content key, shared by every timer)."""

    id: str
    alert_id: str
    occurrence: int
    kind: TimerKind
    step: int
    due_at: datetime
    event_key: str
    plan_key: str
    plan: dict[str, Any]

    @classmethod
    def new(
        cls,
        alert_id: str,
        occurrence: int,
        kind: TimerKind,
        step: int,
        due_at: datetime,
        event_key: str,
        plan_key: str,
        plan: dict[str, Any],
        qualifier: str = "",
    ) -> Timer:
        """A timer whose id derives from what it is for (``qualifier`` tells apart several
        timers of one kind and step, e.g. one per tier)."""
        tid = timer_id(alert_id, occurrence, f"{kind.value}{qualifier}", step)
        return cls(tid, alert_id, occurrence, kind, step, due_at, event_key, plan_key, plan)

    def row(self) -> dict[str, Any]:
        """The timers table row."""
        return {
            "id": self.id,
            "alert_id": self.alert_id,
            "occurrence": self.occurrence,
            "kind": self.kind.value,
            "step": self.step,
            "due_at": self.due_at,
            "event_key": self.event_key,
            "plan_id": self.plan_key,
            "state": "pending",
        }


def timer_id(alert_id: str, occurrence: int, kind: str, step: int) -> str:
    """Derive a timer's id from what it is for, so the same step is never scheduled twice."""
    raw = "\x00".join((alert_id, str(occurrence), kind, str(step)))
    return hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()


def split_kind(kind: str) -> tuple[str, int | None]:
    """A notification kind's status and step: ``escalated-2`` -> ("escalated", 2).

    Kinds are ``status``, ``status-N`` (the N-th step, reminder or update) or
    ``status:qualifier`` (one per tier, say); the status is what templates see.
    """
    kind = kind.split(":", 1)[0]
    head, _, tail = kind.rpartition("-")
    if head and tail.isdigit():
        return head, int(tail)
    return kind, None


def start_timers(transitions: Iterable[Transition], router: Router, now: datetime) -> list[Timer]:
    """Freeze the policy of every alert that starts firing under a rule with one, and
    schedule its first escalation step and its first status update."""
    scheduled: list[Timer] = []
    for transition in transitions:
        if transition.effect is not Effect.FIRING:
            continue
        frozen = router.plan_for(transition.event)
        if frozen is None:
            continue
        alert, plan = transition.alert, frozen.plan
        first = []
        if plan.steps:
            first.append((TimerKind.ESCALATION, plan.steps[0].delay_seconds))
        if plan.updates is not None:
            first.append((TimerKind.UPDATE, plan.updates.every_seconds))
        scheduled += [
            Timer.new(
                alert.id,
                alert.occurrence,
                kind,
                0,
                now + timedelta(seconds=delay),
                transition.event_key,
                frozen.key,
                frozen.body,
            )
            for kind, delay in first
        ]
    return scheduled


@dataclass(frozen=True, slots=True)
class ReceiptRequest:
    """A recipient of a policy notice who must confirm receipt."""

    notification_id: str
    alert_id: str
    occurrence: int
    person_id: str
    tier: str
    requested_at: datetime
    deadline_at: datetime


def receipt_requests(
    intents: Iterable[Intent], router: Router, now: datetime
) -> tuple[list[ReceiptRequest], list[Timer]]:
    """Receipts asked of notice recipients in tiers that must confirm, and per alert and tier
    a reminder timer (step 0) and a deadline timer (step 1)."""
    requests: list[ReceiptRequest] = []
    timers: dict[tuple[str, int, str], list[Timer]] = {}
    tiers = router.config.tiers
    for intent in intents:
        tier = tiers.get(intent.recipient.tier)
        if intent.transition.effect is not Effect.NOTICE or tier is None:
            continue
        policy = tier.confirm_receipt
        if policy is None:
            continue
        alert, tier_name = intent.transition.alert, intent.recipient.tier
        deadline = now + policy.deadline
        requests.append(
            ReceiptRequest(
                intent.id,
                alert.id,
                alert.occurrence,
                intent.recipient.person.id,
                tier_name,
                now,
                deadline,
            )
        )
        key = (alert.id, alert.occurrence, tier_name)
        if key in timers:
            continue
        cap = intent.recipient.clearance
        raw = {
            "tier": tier_name,
            "template": intent.recipient.template,
            "deadline": deadline.isoformat(),
            "liaison": router.audience(policy.liaison, cap),
        }
        key_of_raw = plan_key(raw)
        timers[key] = [
            Timer.new(
                alert.id,
                alert.occurrence,
                TimerKind.RECEIPT,
                step,
                due,
                intent.transition.event_key,
                key_of_raw,
                raw,
                qualifier=f":{tier_name}",
            )
            for step, due in ((0, now + policy.remind_after), (1, deadline))
        ]
    return requests, [t for pair in timers.values() for t in pair]
