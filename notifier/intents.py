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

from notifier.correlate import Effect, Transition
from notifier.escalation import Plan, freeze
from notifier.routing import Recipient, Router


@dataclass(frozen=True, slots=True)
class Intent:
    """One message to send: a transition, rendered with a template for one recipient."""

    id: str
    transition: Transition
    recipient: Recipient
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
    intents = []
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
            intents.append(Intent(nid, transition, recipient, now))
    return intents


@dataclass(frozen=True, slots=True)
class EscalationTimer:
    """The first step of an escalation, due after its delay (a row for the timers table)."""

    id: str
    alert_id: str
    occurrence: int
    step: int
    due_at: datetime
    event_key: str
    plan: Plan


def timer_id(alert_id: str, occurrence: int, step: int) -> str:
    """Derive a timer's id from what it is for, so the same step is never scheduled twice."""
    raw = "\x00".join((alert_id, str(occurrence), "escalation", str(step)))
    return hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()


def escalations(
    transitions: Iterable[Transition], router: Router, now: datetime
) -> list[EscalationTimer]:
    """Freeze an escalation plan for every alert that starts firing under a rule with one."""
    timers = []
    for transition in transitions:
        if transition.effect is not Effect.FIRING:
            continue
        found = router.escalation_for(transition.event)
        if found is None:
            continue
        name, rule = found
        plan = freeze(
            name,
            router.policy(name),
            router.resolve_targets,
            template=rule.template,
            clearance=rule.confidentiality.value,
        )
        alert = transition.alert
        timers.append(
            EscalationTimer(
                timer_id(alert.id, alert.occurrence, 0),
                alert.id,
                alert.occurrence,
                0,
                now + timedelta(seconds=plan.steps[0].delay_seconds),
                transition.event_key,
                plan,
            )
        )
    return timers
