"""What due reminder timers do: pure decisions, no I/O.

Three kinds of timer follow an alert besides its escalation steps (see
:mod:`notifier.escalation`), each deciding from the alert as it is *now*, so a timer left over
from an earlier state does nothing (the fencing token is the occurrence, plus the state the
timer was set for):

- **acknowledgment reminders** (set when someone acknowledges): while the alert stays
  acknowledged and unresolved, remind the acknowledger every ``remind_every``, ``reminders``
  times; at the next tick tell ``then_notify`` instead, and stop;
- **status updates** (set when the alert starts): while the incident is open, remind its
  commander (the acknowledger, else the policy's ``commander``) to post an update, unless
  one was posted since the last tick, and send the latest update to the stakeholders;
- **receipts** (set when a policy notice reaches a tier that must confirm): remind who has not
  confirmed (step 0), then tell the liaison who still has not by the deadline (step 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from notifier.escalation import Plan, Stop


@dataclass(frozen=True, slots=True)
class AlertNow:
    """The alert as a due timer finds it."""

    status: str
    occurrence: int
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    last_update_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Reminder:
    """Remind (or escalate to) these people; the next reminder is due then, if any."""

    kind: str
    people: tuple[str, ...]
    next_due: datetime | None
    reminders_left: int


@dataclass(frozen=True, slots=True)
class UpdateRound:
    """One tick of the status-update cadence."""

    number: int
    commanders: tuple[str, ...]
    stakeholders: tuple[str, ...]
    next_due: datetime


@dataclass(frozen=True, slots=True)
class ReceiptCheck:
    """Remind ``people`` (step 0) or tell ``people`` (the liaison) who has not confirmed."""

    kind: str
    people: tuple[str, ...]
    pending: tuple[str, ...]


def _moved_on(timer_occurrence: int, alert: AlertNow) -> Stop | None:
    if timer_occurrence != alert.occurrence:
        return Stop.STALE
    if alert.status == "resolved":
        return Stop.RESOLVED
    return None


def decide_reminder(
    plan: Plan, step: int, *, timer_occurrence: int, alert: AlertNow, now: datetime
) -> Reminder | Stop:
    """Decide what a due acknowledgment reminder does."""
    stop = _moved_on(timer_occurrence, alert)
    if stop is not None:
        return stop
    reminders = plan.reminders
    if alert.status != "acknowledged" or alert.acknowledged_by is None or reminders is None:
        return Stop.STALE
    if step < reminders.count:
        return Reminder(
            f"ack-reminder-{step + 1}",
            (alert.acknowledged_by,),
            now + timedelta(seconds=reminders.every_seconds),
            reminders.count - step - 1,
        )
    return Reminder("ack-escalated", reminders.then, None, 0)


def decide_update(
    plan: Plan,
    step: int,
    *,
    timer_occurrence: int,
    alert: AlertNow,
    due_at: datetime,
    now: datetime,
) -> UpdateRound | Stop:
    """Decide what a due status-update tick does.

    The next tick keeps the cadence (due + every); after downtime, missed ticks are not
    replayed one after another: the next one is a full interval from now.
    """
    stop = _moved_on(timer_occurrence, alert)
    if stop is not None:
        return stop
    updates = plan.updates
    if updates is None or alert.status not in ("firing", "acknowledged"):
        return Stop.FINISHED
    every = timedelta(seconds=updates.every_seconds)
    next_due = due_at + every
    if next_due <= now:
        next_due = now + every
    posted_recently = alert.last_update_at is not None and alert.last_update_at > due_at - every
    if posted_recently:
        commanders: tuple[str, ...] = ()
    elif alert.acknowledged_by is not None:
        commanders = (alert.acknowledged_by,)
    else:
        commanders = updates.commanders
    return UpdateRound(step + 1, commanders, updates.stakeholders, next_due)


def decide_receipt(
    step: int,
    *,
    timer_occurrence: int,
    alert_occurrence: int,
    pending: tuple[str, ...],
    liaison: tuple[str, ...],
) -> ReceiptCheck | Stop:
    """Decide what a due receipt timer does: nothing once everyone has confirmed."""
    if timer_occurrence != alert_occurrence:
        return Stop.STALE
    if not pending:
        return Stop.FINISHED
    if step == 0:
        return ReceiptCheck("receipt-reminder", pending, pending)
    return ReceiptCheck("receipt-overdue", liaison, pending)
