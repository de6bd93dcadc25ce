"""The alert lifecycle: triggered → acknowledged → resolved, as pure transitions.

An alert is *triggered* while firing (stored status ``firing``; a policy notice starts as
``notice``), *acknowledged* once someone takes charge, *resolved* when the source says so or
someone resolves it. A resolved alert that fires again starts a new occurrence, triggered.
Acknowledging twice is harmless: the outcome says it was already acknowledged.

The functions here decide; :mod:`notifier.store.timeline` applies their outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from notifier.errors import NotifierError, Reason


class Status(StrEnum):
    """Where an alert is in its lifecycle (the values stored in ``alerts.status``)."""

    TRIGGERED = "firing"
    NOTICE = "notice"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


OPEN = frozenset({Status.TRIGGERED, Status.NOTICE, Status.ACKNOWLEDGED})


class Verb(StrEnum):
    """What a person can do to an alert."""

    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"
    SILENCE = "silence"  # create and expire silences (not an action on one alert)


class TransitionRefused(NotifierError):
    """The action does not apply to the alert in its current state. ``kind`` names the case
    for readers that say it in their own words (Slack's replies, ``slack_reply`` in
    ``labels.j2``)."""

    reason = Reason.CLIENT
    kind = "refused"


class AlreadyResolved(TransitionRefused):
    """Acknowledging an alert that is already resolved."""

    kind = "resolved"


class MovedOn(TransitionRefused):
    """An action from an older message: the alert has fired again since."""

    kind = "moved-on"


@dataclass(frozen=True, slots=True)
class Action:
    """Someone doing something to an alert, through some channel, with an optional note."""

    verb: Verb
    by: str
    channel: str
    at: datetime
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The decision: the status afterwards, and whether the action changed anything."""

    before: Status
    after: Status
    changed: bool

    @property
    def already(self) -> bool:
        """The alert was already where the action would take it (reported, not an error)."""
        return not self.changed


def decide(status: str, action: Action) -> Outcome:
    """Apply ``action`` to an alert in ``status``; TransitionRefused if it makes no sense."""
    before = Status(status)
    if action.verb is Verb.ACKNOWLEDGE:
        if before is Status.ACKNOWLEDGED:
            return Outcome(before, before, changed=False)
        if before is Status.RESOLVED:
            raise AlreadyResolved("the alert is already resolved; there is nothing to acknowledge")
        return Outcome(before, Status.ACKNOWLEDGED, changed=True)
    if action.verb is not Verb.RESOLVE:
        raise TransitionRefused(f"{action.verb.value!r} is not something done to one alert")
    if before is Status.RESOLVED:
        return Outcome(before, before, changed=False)
    return Outcome(before, Status.RESOLVED, changed=True)
