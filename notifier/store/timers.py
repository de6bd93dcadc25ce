"""The timers table: claiming due timers and firing them once.

Due timers are selected and fired in one transaction (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so several instances share the work) that also writes their notifications, the
next timers and the timeline entries, and marks them done: a crash before the commit leaves
them pending for the next pass; after it, they are done. Timer ids and notification ids
derive from what they are for, so nothing can be scheduled or sent twice.

What each kind does is decided by pure functions (:func:`notifier.escalation.decide_step`,
:mod:`notifier.reminders`); this module reads what they need and writes what they decide.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select, type_coerce, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from notifier.directory import Directory
from notifier.escalation import (
    RECEIPT_TEMPLATE,
    REMINDER_TEMPLATE,
    UPDATE_TEMPLATE,
    Plan,
    Stop,
    decide_step,
)
from notifier.intents import Timer, TimerKind, notification_id
from notifier.reminders import AlertNow, decide_receipt, decide_reminder, decide_update
from notifier.routing import Clearance, Recipient
from notifier.store.bulk import Bulk
from notifier.store.outbox import notification_row
from notifier.store.schema import (
    UTCDateTime,
    alert_timeline,
    alerts,
    notifications,
    plans,
    receipts,
    timers,
)


@dataclass(frozen=True, slots=True)
class DueTimer(Timer):
    """A claimed timer, with its escalation plan parsed (None for receipt checks)."""

    frozen: Plan | None = None


@dataclass(frozen=True, slots=True)
class Fired:
    """What firing a timer did."""

    timer_id: str
    outcome: str
    notifications: int
    timer: DueTimer
    lateness: float


@dataclass(frozen=True, slots=True)
class _Head:
    now: AlertNow
    starts_at: datetime | None
    update: tuple[datetime, str, str | None] | None  # latest status update: at, by, note


def write_timers(conn: Connection, scheduled: Sequence[Timer]) -> None:
    """Insert timers, and the plans they follow unless already stored (plans are keyed by
    their content, so another instance storing the same plan first is no conflict)."""
    if not scheduled:
        return
    bodies = {t.plan_key: t.plan for t in scheduled}
    stmt = (sqlite_insert if conn.dialect.name == "sqlite" else postgresql_insert)(plans)
    conn.execute(
        stmt.on_conflict_do_nothing(index_elements=["id"]),
        [{"id": key, "body": body} for key, body in bodies.items()],
    )
    _INSERT_TIMERS.run(conn, [t.row() for t in scheduled])


def load_plans(
    conn: Connection, keys: Iterable[str]
) -> dict[str, tuple[dict[str, Any], Plan | None]]:
    """Stored plans by key, each with the escalation plan it describes (None for receipt
    checks). Plans never change (their key is their content), so they are cached for good;
    callers share the returned objects and must not change them."""
    wanted = set(keys)
    missing = wanted - _PLANS.keys()
    if missing:
        if len(_PLANS) > _PLAN_CACHE_SIZE:
            _PLANS.clear()
        for key, body in conn.execute(
            select(plans.c.id, plans.c.body).where(plans.c.id.in_(missing))
        ):
            _PLANS[key] = (body, Plan.from_json(body) if "steps" in body else None)
    found = {key: _PLANS.get(key) for key in wanted}  # get: another thread may clear it
    return {key: value for key, value in found.items() if value is not None}


_KINDS = [kind.value for kind in TimerKind]
_PLANS: dict[str, tuple[dict[str, Any], Plan | None]] = {}
_PLAN_CACHE_SIZE = 4096
_INSERT_TIMERS = Bulk(insert(timers), {c.name: c.type for c in timers.columns})


def fire_due(
    conn: Connection, now: datetime, limit: int, directory: Directory, *, skip_locked: bool
) -> list[Fired]:
    """Fire up to ``limit`` due timers, earliest first, in the caller's transaction.

    Claiming and firing share the transaction: on PostgreSQL the selected rows stay locked
    (``SKIP LOCKED`` lets other instances take the next ones) until the commit that also
    holds their effects and marks them done, so a timer fires at most once; a crash before
    the commit leaves it pending for the next pass.
    """
    query = (
        select(
            timers.c.id,
            timers.c.alert_id,
            timers.c.occurrence,
            timers.c.kind,
            timers.c.step,
            timers.c.due_at,
            timers.c.event_key,
            timers.c.plan_id,
        )
        .where(
            timers.c.state == "pending",
            timers.c.due_at <= now,
            # Kinds this version knows: a newer instance's kinds wait for it (rolling upgrade).
            timers.c.kind.in_(_KINDS),
        )
        .order_by(timers.c.due_at)
        .limit(limit)
    )
    if skip_locked:
        query = query.with_for_update(skip_locked=True)
    rows = conn.execute(query).all()
    if not rows:
        return []
    stored = load_plans(conn, {r[7] for r in rows})
    due = []
    for tid, alert_id, occurrence, kind, step, due_at, event_key, plan_id in rows:
        plan, frozen = stored.get(plan_id, ({}, None))
        due.append(
            DueTimer(
                tid,
                alert_id,
                occurrence,
                TimerKind(kind),
                step,
                due_at,
                event_key,
                plan_id,
                plan,
                frozen,
            )
        )
    heads = _heads(conn, due, lock=skip_locked)
    pending = _pending_receipts(conn, [t for t in due if t.kind is TimerKind.RECEIPT])
    writes = _Writes(directory, now)
    fired = []
    for timer in due:
        head = heads.get(timer.alert_id)
        if head is None:  # the alert is gone: nothing to act on
            outcome, sent = Stop.STALE.value, 0
        else:
            outcome, sent = writes.fire(timer, head, pending)
        writes.done.append((timer.id, outcome))
        fired.append(Fired(timer.id, outcome, sent, timer, (now - timer.due_at).total_seconds()))
    writes.apply(conn)
    return fired


def _heads(conn: Connection, due: Sequence[DueTimer], *, lock: bool) -> dict[str, _Head]:
    ids = {t.alert_id for t in due}
    query = select(
        alerts.c.id,
        alerts.c.status,
        alerts.c.occurrence,
        alerts.c.acknowledged_by,
        alerts.c.acknowledged_at,
        alerts.c.starts_at,
    ).where(alerts.c.id.in_(ids))
    if lock:
        query = query.with_for_update()
    rows = conn.execute(query).all()
    latest: dict[str, tuple[datetime, str, str | None]] = {}
    cadenced = {t.alert_id for t in due if t.kind is TimerKind.UPDATE}
    if cadenced:
        occurrence_of = {r[0]: r[2] for r in rows}
        updates = conn.execute(
            select(
                alert_timeline.c.alert_id,
                alert_timeline.c.occurrence,
                alert_timeline.c.at,
                alert_timeline.c.actor,
                alert_timeline.c.note,
            )
            .where(alert_timeline.c.alert_id.in_(cadenced), alert_timeline.c.kind == "update")
            .order_by(alert_timeline.c.at, alert_timeline.c.id)
        )
        for alert_id, occurrence, at, actor, note in updates:
            if occurrence_of.get(alert_id) == occurrence:
                latest[alert_id] = (at, actor, note)
    heads = {}
    for alert_id, status, occurrence, by, acked_at, starts_at in rows:
        update_ = latest.get(alert_id)
        heads[alert_id] = _Head(
            AlertNow(status, occurrence, by, acked_at, update_[0] if update_ else None),
            starts_at,
            update_,
        )
    return heads


def _pending_receipts(
    conn: Connection, due: Sequence[DueTimer]
) -> dict[tuple[str, int, str], list[str]]:
    """Who has not confirmed receipt, by alert occurrence and tier."""
    found: dict[tuple[str, int, str], list[str]] = {}
    if not due:
        return found
    rows = conn.execute(
        select(receipts.c.alert_id, receipts.c.occurrence, receipts.c.tier, receipts.c.person_id)
        .where(
            receipts.c.alert_id.in_({t.alert_id for t in due}),
            receipts.c.confirmed_at.is_(None),
        )
        .order_by(receipts.c.person_id)
    )
    for alert_id, occurrence, tier, person_id in rows:
        found.setdefault((alert_id, occurrence, tier), []).append(person_id)
    return found


class _Writes:
    """Everything a pass over due timers writes, gathered to be written in bulk."""

    def __init__(self, directory: Directory, now: datetime) -> None:
        self.directory = directory
        self.now = now
        self.notifications: list[dict[str, Any]] = []
        self.timers: list[dict[str, Any]] = []
        self.timeline: list[dict[str, Any]] = []
        self.done: list[tuple[str, str]] = []  # (timer id, outcome)

    def fire(
        self,
        timer: DueTimer,
        head: _Head,
        pending: Mapping[tuple[str, int, str], list[str]],
    ) -> tuple[str, int]:
        """Decide and queue what ``timer`` does; return its outcome and how many it notifies."""
        before = len(self.notifications)
        plan = timer.frozen
        if timer.kind is TimerKind.RECEIPT:
            outcome = self._receipt(timer, head, pending)
        elif plan is None:  # a plan that does not parse as one: nothing to act on
            outcome = Stop.STALE.value
        else:
            if timer.kind is TimerKind.ESCALATION:
                outcome = self._escalate(timer, plan, head)
            elif timer.kind is TimerKind.REMINDER:
                outcome = self._remind(timer, plan, head)
            else:
                outcome = self._update(timer, plan, head)
        return outcome, len(self.notifications) - before

    # -- the kinds ---------------------------------------------------------------------------

    def _escalate(self, timer: DueTimer, plan: Plan, head: _Head) -> str:
        decision = decide_step(
            plan,
            timer.step,
            timer_occurrence=timer.occurrence,
            alert_occurrence=head.now.occurrence,
            alert_status=head.now.status,
            now=self.now,
        )
        if isinstance(decision, Stop):
            return decision.value
        kind = f"escalated-{decision.step + 1}"
        for person_id in decision.people:
            self._notify(timer, kind, person_id, "escalation", plan, plan.template)
        if decision.next_due is not None:
            self._next(timer, decision.next_due)
        people = ", ".join(decision.people) or "nobody"
        step = decision.step + 1
        self._log(timer, "escalated", f"escalation:{plan.policy}", f"step {step}: {people}")
        return "fired"

    def _remind(self, timer: DueTimer, plan: Plan, head: _Head) -> str:
        decision = decide_reminder(
            plan, timer.step, timer_occurrence=timer.occurrence, alert=head.now, now=self.now
        )
        if isinstance(decision, Stop):
            return decision.value
        details: dict[str, Any] = {
            "acknowledged_at": head.now.acknowledged_at,
            "open_for": self._open_for(head),
        }
        if decision.kind == "ack-escalated":
            details["by"] = self._name(head.now.acknowledged_by)
            tier = "escalation"
        else:
            details["reminders_left"] = decision.reminders_left
            tier = "commander"
        for person_id in decision.people:
            self._notify(timer, decision.kind, person_id, tier, plan, REMINDER_TEMPLATE, details)
        if decision.next_due is not None:
            self._next(timer, decision.next_due)
        self._log(timer, decision.kind[:16], "reminders", ", ".join(decision.people))
        return "fired"

    def _update(self, timer: DueTimer, plan: Plan, head: _Head) -> str:
        decision = decide_update(
            plan,
            timer.step,
            timer_occurrence=timer.occurrence,
            alert=head.now,
            due_at=timer.due_at,
            now=self.now,
        )
        if isinstance(decision, Stop):
            return decision.value
        state = {
            "state": head.now.status,
            "by": self._name(head.now.acknowledged_by) if head.now.acknowledged_by else None,
            "open_for": self._open_for(head),
        }
        every = timedelta(seconds=plan.updates.every_seconds if plan.updates else 0)
        due_note = {**state, "every": every, "last_update_at": head.now.last_update_at}
        for person_id in decision.commanders:
            kind = f"update-due-{decision.number}"
            self._notify(timer, kind, person_id, "commander", plan, REMINDER_TEMPLATE, due_note)
        posted = head.update
        news = {
            **state,
            "update": posted[2] if posted else None,
            "update_by": self._name(posted[1]) if posted else None,
            "update_at": posted[0] if posted else None,
        }
        for person_id in decision.stakeholders:
            kind = f"status-update-{decision.number}"
            self._notify(timer, kind, person_id, "stakeholders", plan, UPDATE_TEMPLATE, news)
        self._next(timer, decision.next_due)
        note = f"update {decision.number}: {len(decision.stakeholders)} stakeholders" + (
            "" if decision.commanders else " (commander had posted)"
        )
        self._log(timer, "update-round", "status-updates", note)
        return "fired"

    def _receipt(
        self, timer: DueTimer, head: _Head, pending: Mapping[tuple[str, int, str], list[str]]
    ) -> str:
        tier = str(timer.plan["tier"])
        liaison = [(str(p), str(c)) for p, c in timer.plan["liaison"]]
        waiting = tuple(pending.get((timer.alert_id, timer.occurrence, tier), ()))
        decision = decide_receipt(
            timer.step,
            timer_occurrence=timer.occurrence,
            alert_occurrence=head.now.occurrence,
            pending=waiting,
            liaison=tuple(p for p, _ in liaison),
        )
        if isinstance(decision, Stop):
            return decision.value
        deadline = datetime.fromisoformat(str(timer.plan["deadline"]))
        plan = Plan("receipts", RECEIPT_TEMPLATE, "restricted", (), dict(liaison))
        if decision.kind == "receipt-reminder":
            # Reminders repeat nothing confidential: their readers get public details only.
            for person_id in decision.people:
                self._notify(
                    timer,
                    decision.kind,
                    person_id,
                    tier,
                    plan,
                    RECEIPT_TEMPLATE,
                    {"deadline": deadline},
                )
        else:
            names = [self._who(p, tier) for p in decision.pending]
            for person_id in decision.people:
                self._notify(
                    timer,
                    f"receipt-overdue:{tier}",
                    person_id,
                    "liaison",
                    plan,
                    RECEIPT_TEMPLATE,
                    {"deadline": deadline, "pending": names},
                )
        self._log(timer, decision.kind[:16], f"receipts:{tier}", ", ".join(decision.pending))
        return "fired"

    # -- helpers -----------------------------------------------------------------------------

    def _notify(
        self,
        timer: DueTimer,
        kind: str,
        person_id: str,
        tier: str,
        plan: Plan,
        template: str,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        person = self.directory.get(person_id)
        contact = self.directory.reach(person) if person is not None else None
        if person is None or contact is None:
            return  # left the directory since the plan was frozen
        clearance = Clearance(plan.clearance_for(person_id))
        recipient = Recipient(person, contact, tier, plan.policy, template, clearance)
        self.notifications.append(
            notification_row(
                notification_id(timer.alert_id, timer.occurrence, kind, person.id, "email"),
                alert_id=timer.alert_id,
                occurrence=timer.occurrence,
                kind=kind,
                event_key=timer.event_key,
                recipient=recipient,
                now=self.now,
                details=details,
            )
        )

    def _next(self, timer: DueTimer, due: datetime) -> None:
        follow = Timer.new(
            timer.alert_id,
            timer.occurrence,
            timer.kind,
            timer.step + 1,
            due,
            timer.event_key,
            timer.plan_key,
            timer.plan,
        )
        self.timers.append(follow.row())

    def _log(self, timer: DueTimer, kind: str, actor: str, note: str) -> None:
        self.timeline.append(
            {
                "alert_id": timer.alert_id,
                "occurrence": timer.occurrence,
                "at": self.now,
                "kind": kind,
                "actor": actor,
                "channel": "timer",
                "note": note or None,
            }
        )

    def _name(self, person_id: str | None) -> str:
        person = self.directory.get(person_id) if person_id else None
        return person.name if person is not None else (person_id or "someone")

    def _who(self, person_id: str, tier: str) -> dict[str, Any]:
        person = self.directory.get(person_id)
        return {
            "name": person.name if person else person_id,
            "organization": person.organization if person else None,
            "tier": tier,
        }

    def _open_for(self, head: _Head) -> timedelta:
        return self.now - head.starts_at if head.starts_at else timedelta(0)

    def apply(self, conn: Connection) -> None:
        """Write everything gathered."""
        if self.notifications:
            conn.execute(insert(notifications), self.notifications)
        if self.timers:
            conn.execute(insert(timers), self.timers)
        if self.timeline:
            conn.execute(insert(alert_timeline), self.timeline)
        # One statement per outcome (there are a handful), not one per timer.
        by_outcome: dict[str, list[str]] = {}
        for timer_id, outcome in self.done:
            by_outcome.setdefault(outcome, []).append(timer_id)
        for outcome, ids in by_outcome.items():
            conn.execute(
                update(timers)
                .where(timers.c.id.in_(ids))
                .values(state="done", fired_at=self.now, outcome=outcome)
            )


def next_due(conn: Connection) -> datetime | None:
    """When the earliest pending timer is due."""
    earliest = func.min(timers.c.due_at)
    value: datetime | None = conn.execute(
        select(type_coerce(earliest, UTCDateTime())).where(
            timers.c.state == "pending", timers.c.kind.in_(_KINDS)
        )
    ).scalar()
    return value
