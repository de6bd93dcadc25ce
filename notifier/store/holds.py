"""Holding alerts that silences or inhibition cover, and releasing them when that ends.

A held alert occurrence keeps its notifications in the outbox with status ``held`` (the
reason in ``error_reason``: ``silenced`` or ``inhibited``, the explanation in
``last_error``) and its timers in state ``held``, so nothing is sent and its escalation does
not advance. A row in ``holds`` says why and since when. When the cause ends:

- the alert still fires → **released**: its held notifications become pending (sent now),
  its timers pending again with the delay they had left when they were held;
- it resolved meanwhile → **lapsed**: nothing was sent, and nothing will be (the resolve
  notifications are suppressed too: nobody heard of the alert, so nobody needs its end);
- another silence or inhibiting alert covers it → **moved** to that cause.

Every function runs in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, RowMapping, and_, func, insert, select, type_coerce, update

from notifier.correlate import Effect, Transition
from notifier.events import ALERT_TYPE
from notifier.flapping import FlapPolicy
from notifier.inhibition import FiringAlert, InhibitRule, inhibitor
from notifier.matchers import Op, parse
from notifier.silences import Silence, alert_labels, covering
from notifier.store.schema import (
    UTCDateTime,
    alert_timeline,
    alerts,
    holds,
    notifications,
    silences,
    timers,
)

__all__ = [
    "Cause",
    "HoldOutcome",
    "firing_alerts",
    "hold_batch",
    "judge",
    "judge_batch",
    "load_silences",
    "open_holds",
    "reconsider",
    "release_quiet_flaps",
    "silence_from_row",
    "would_hold",
]

SILENCE = "silence"
INHIBITION = "inhibition"
FLAPPING = "flapping"
_REASON = {SILENCE: "silenced", INHIBITION: "inhibited", FLAPPING: "flapping"}
_CHANGES = ("triggered", "resolved")


@dataclass(frozen=True, slots=True)
class Cause:
    """Why an alert is held: a silence, or an inhibiting alert under a rule."""

    kind: str  # SILENCE or INHIBITION
    id: str  # the silence id, or the inhibiting alert's id
    detail: str  # one line for people: which silence or alert, and why

    @property
    def reason(self) -> str:
        """The notifications' ``error_reason``: ``silenced`` or ``inhibited``."""
        return _REASON[self.kind]


@dataclass
class HoldOutcome:
    """What holding and releasing did, for logs, metrics and waking the workers."""

    held: int = 0
    released: int = 0
    lapsed: int = 0
    notifications_released: int = 0
    timers_released: int = 0
    suppressed: int = 0
    digests: int = 0  # repeat digests the hold keeper wrote for groups still firing
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, other: HoldOutcome) -> None:
        """Fold ``other`` into this outcome."""
        self.held += other.held
        self.released += other.released
        self.lapsed += other.lapsed
        self.notifications_released += other.notifications_released
        self.timers_released += other.timers_released
        self.suppressed += other.suppressed
        self.digests += other.digests
        for reason, count in other.reasons.items():
            self.reasons[reason] = self.reasons.get(reason, 0) + count


def silence_from_row(row: RowMapping) -> Silence:
    """A :class:`Silence` from a ``silences`` row."""
    return Silence(
        id=row["id"],
        matchers=tuple(parse(m) for m in row["matchers"]),
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        created_by=row["created_by"],
        comment=row["comment"],
        created_at=row["created_at"],
        expired_at=row["expired_at"],
        expired_by=row["expired_by"],
    )


def load_silences(conn: Connection, now: datetime) -> list[Silence]:
    """Silences not yet over at ``now`` (active and pending)."""
    rows = conn.execute(
        select(silences).where(silences.c.ends_at > now, silences.c.expired_at.is_(None))
    ).mappings()
    return [silence_from_row(r) for r in rows]


def firing_alerts(conn: Connection, rules: Sequence[InhibitRule]) -> list[FiringAlert]:
    """Firing alerts that could inhibit others under ``rules`` (none without rules).

    When every rule names its sources' ``alertname`` exactly, only alerts of those names are
    read; otherwise every firing alert is.
    """
    if not rules:
        return []
    names: set[str] | None = set()
    for rule in rules:
        exact = [m.value for m in rule.source_matchers if m.name == "alertname" and m.op is Op.EQ]
        if not exact or names is None:
            names = None
        else:
            names.add(exact[0])
    query = select(alerts.c.id, alerts.c.name, alerts.c.severity, alerts.c.labels).where(
        alerts.c.status == "firing", alerts.c.kind == "alert"
    )
    if names is not None:
        query = query.where(alerts.c.name.in_(sorted(names)))
    return [
        FiringAlert(alert_id, alert_labels(name, severity, labels or {}))
        for alert_id, name, severity, labels in conn.execute(query)
    ]


def covering_silence(
    alert_id: str, labels: Mapping[str, str], now: datetime, active: Iterable[Silence]
) -> Cause | None:
    """The silence cause for an alert with ``labels`` at ``now``, or None."""
    silence = covering(active, labels, now)
    return None if silence is None else Cause(SILENCE, silence.id, silence.describe())


def _recent_changes(
    conn: Connection, alert_ids: Sequence[str], now: datetime, policy: FlapPolicy | None
) -> dict[str, int]:
    """Firing/resolved changes of these alerts on the timeline within the flapping window."""
    if policy is None or not alert_ids:
        return {}
    counts: dict[str, int] = {}
    since = now - policy.window
    for start in range(0, len(alert_ids), 500):
        for alert_id, n in conn.execute(
            select(alert_timeline.c.alert_id, func.count())
            .where(
                alert_timeline.c.alert_id.in_(alert_ids[start : start + 500]),
                alert_timeline.c.kind.in_(_CHANGES),
                alert_timeline.c.at >= since,
            )
            .group_by(alert_timeline.c.alert_id)
        ):
            counts[alert_id] = n
    return counts


def release_quiet_flaps(
    conn: Connection, now: datetime, rules: Sequence[InhibitRule], policy: FlapPolicy | None
) -> HoldOutcome:
    """Reconsider flapping holds whose alert has not changed for the policy's ``quiet``."""
    rows = conn.execute(
        select(holds.c.id, holds.c.alert_id, holds.c.occurrence, holds.c.held_at).where(
            holds.c.ended_at.is_(None), holds.c.cause == FLAPPING
        )
    ).all()
    if not rows:
        return HoldOutcome()
    quiet_for = policy.quiet if policy is not None else timedelta(0)
    last: dict[str, datetime] = dict(
        conn.execute(
            select(
                alert_timeline.c.alert_id,
                type_coerce(func.max(alert_timeline.c.at), UTCDateTime()),
            )
            .where(
                alert_timeline.c.alert_id.in_(sorted({r[1] for r in rows})),
                alert_timeline.c.kind.in_(_CHANGES),
            )
            .group_by(alert_timeline.c.alert_id)
        ).all()
    )
    quiet = [tuple(r) for r in rows if last.get(r[1]) is None or now - last[r[1]] >= quiet_for]
    return reconsider(conn, quiet, now, rules)


def judge(
    alert_id: str,
    labels: Mapping[str, str],
    now: datetime,
    active: Iterable[Silence],
    rules: Sequence[InhibitRule],
    firing: Sequence[FiringAlert],
) -> Cause | None:
    """Why an alert with ``labels`` must be held at ``now``, or None: silences first."""
    silence = covering(active, labels, now)
    if silence is not None:
        return Cause(SILENCE, silence.id, silence.describe())
    found = inhibitor(rules, alert_id, labels, firing)
    if found is not None:
        rule, source = found
        name = source.labels.get("alertname", "?")
        return Cause(
            INHIBITION,
            source.id,
            f"inhibited by firing alert {name} ({source.id}) under rule {rule.name}",
        )
    return None


def would_hold(
    conn: Connection, labels: Mapping[str, str], now: datetime, rules: Sequence[InhibitRule]
) -> Cause | None:
    """What would hold a new alert with ``labels`` arriving at ``now`` (for explanations)."""
    return judge("", labels, now, load_silences(conn, now), rules, firing_alerts(conn, rules))


def open_holds(conn: Connection, alert_ids: Iterable[str]) -> dict[tuple[str, int], Cause]:
    """The open holds of these alerts, by (alert id, occurrence)."""
    found: dict[tuple[str, int], Cause] = {}
    ids = sorted(set(alert_ids))
    for start in range(0, len(ids), 500):
        rows = conn.execute(
            select(
                holds.c.alert_id,
                holds.c.occurrence,
                holds.c.cause,
                holds.c.cause_id,
                holds.c.detail,
            ).where(holds.c.alert_id.in_(ids[start : start + 500]), holds.c.ended_at.is_(None))
        )
        for alert_id, occurrence, cause, cause_id, detail in rows:
            found[(alert_id, occurrence)] = Cause(cause, cause_id, detail)
    return found


def hold(conn: Connection, alert_id: str, occurrence: int, cause: Cause, now: datetime) -> int:
    """Hold an occurrence: its pending notifications and timers wait; returns how many
    notifications were held."""
    _record_hold(conn, alert_id, occurrence, cause, since=now)
    held = _notifications(
        conn,
        alert_id,
        occurrence,
        ("pending",),
        status="held",
        error_reason=cause.reason,
        last_error=cause.detail,
    )
    _timers(conn, alert_id, occurrence, "pending", state="held")
    _timeline(conn, alert_id, occurrence, now, cause.reason, cause.id, cause.detail)
    return held


def judge_batch(
    conn: Connection,
    transitions: Sequence[Transition],
    now: datetime,
    rules: Sequence[InhibitRule],
    flapping: FlapPolicy | None = None,
) -> dict[tuple[str, int], Cause]:
    """Before a batch's writes: which of its newly firing alerts a silence covers, which
    flap, and which an inhibiting alert covers (in that order of precedence)."""
    alerts_only = [t for t in transitions if t.event.type == ALERT_TYPE]
    firing = [t for t in alerts_only if t.effect is Effect.FIRING]
    if not firing:
        return {}
    active = load_silences(conn, now)
    sources = firing_alerts(conn, rules) if rules else []
    if rules:
        # The batch's own changes count: what it resolves stops inhibiting, what it fires
        # starts (the store does not show them yet).
        last = {t.alert.id: t for t in alerts_only}
        sources = [s for s in sources if s.id not in last]
        sources += [
            FiringAlert(t.alert.id, _labels(t)) for t in last.values() if t.effect is Effect.FIRING
        ]
    refired = [t for t in firing if t.alert.occurrence > 1] if flapping else []
    if not (active or sources or refired):
        return {}
    refired_ids = {t.alert.id for t in refired}
    flaps = _recent_changes(conn, sorted(refired_ids), now, flapping)
    for t in alerts_only:  # this batch's changes are not on the timeline yet
        if t.alert.id in refired_ids:
            flaps[t.alert.id] = flaps.get(t.alert.id, 0) + 1
    judged: dict[tuple[str, int], Cause] = {}
    for t in firing:
        labels = _labels(t)
        cause = covering_silence(t.alert.id, labels, now, active)
        changes = flaps.get(t.alert.id, 0)
        if cause is None and flapping is not None and flapping.is_flapping(changes):
            cause = Cause(FLAPPING, t.alert.id, flapping.describe(changes))
        if cause is None:
            cause = judge(t.alert.id, labels, now, (), rules, sources)
        if cause is not None:
            judged[(t.alert.id, t.alert.occurrence)] = cause
    return judged


def _labels(t: Transition) -> dict[str, str]:
    return alert_labels(t.event.labels.get("alertname", ""), t.event.severity.value, t.event.labels)


def hold_batch(
    conn: Connection,
    transitions: Sequence[Transition],
    now: datetime,
    rules: Sequence[InhibitRule],
    judged: Mapping[tuple[str, int], Cause],
) -> HoldOutcome:
    """After a batch's writes: hold what :func:`judge_batch` found, settle the held alerts
    the batch resolves, and reconsider what the alerts it resolves were inhibiting."""
    outcome = HoldOutcome()
    alerts_only = [t for t in transitions if t.event.type == ALERT_TYPE]
    resolved = [t for t in alerts_only if t.effect is Effect.RESOLVED]
    for (alert_id, occurrence), cause in judged.items():
        hold(conn, alert_id, occurrence, cause, now)
        outcome.held += 1
        outcome.reasons[cause.reason] = outcome.reasons.get(cause.reason, 0) + 1
    if resolved:
        held = open_holds(conn, (t.alert.id for t in resolved))
        for t in resolved:
            key = (t.alert.id, t.alert.occurrence)
            if key in held:
                outcome.suppressed += _lapse(conn, *key, now)
                outcome.lapsed += 1
        if rules:
            inhibited = conn.execute(
                select(holds.c.id, holds.c.alert_id, holds.c.occurrence, holds.c.held_at).where(
                    holds.c.ended_at.is_(None),
                    holds.c.cause == INHIBITION,
                    holds.c.cause_id.in_(sorted({t.alert.id for t in resolved})),
                )
            ).all()
            if inhibited:
                outcome.add(reconsider(conn, [tuple(r) for r in inhibited], now, rules))
    return outcome


def reconsider(
    conn: Connection,
    open_rows: Sequence[tuple[Any, ...]],
    now: datetime,
    rules: Sequence[InhibitRule],
) -> HoldOutcome:
    """Judge open holds again (``(hold id, alert id, occurrence, held_at)`` rows) whose
    cause may have ended: release, lapse, or move each to what covers it now."""
    outcome = HoldOutcome()
    if not open_rows:
        return outcome
    active = load_silences(conn, now)
    sources = firing_alerts(conn, rules)
    ids = sorted({r[1] for r in open_rows})
    state: dict[str, tuple[str, int, dict[str, str]]] = {}
    for start in range(0, len(ids), 500):
        for alert_id, status, occurrence, name, severity, labels in conn.execute(
            select(
                alerts.c.id,
                alerts.c.status,
                alerts.c.occurrence,
                alerts.c.name,
                alerts.c.severity,
                alerts.c.labels,
            ).where(alerts.c.id.in_(ids[start : start + 500]))
        ):
            state[alert_id] = (status, occurrence, alert_labels(name, severity, labels or {}))
    for hold_id, alert_id, occurrence, held_at in open_rows:
        status, current, labels = state.get(alert_id, ("gone", -1, {}))
        if status != "firing" or current != occurrence:
            outcome.suppressed += _lapse(conn, alert_id, occurrence, now)
            outcome.lapsed += 1
            continue
        cause = judge(alert_id, labels, now, active, rules, sources)
        if cause is not None:
            _end(conn, hold_id, now, "moved")
            # Held since the first cause: released timers keep the delay they had then.
            _record_hold(conn, alert_id, occurrence, cause, since=held_at)
            _notifications(
                conn,
                alert_id,
                occurrence,
                ("held",),
                error_reason=cause.reason,
                last_error=cause.detail,
            )
            outcome.held += 1
            outcome.reasons[cause.reason] = outcome.reasons.get(cause.reason, 0) + 1
            continue
        notes, due = _release(conn, alert_id, occurrence, held_at, now)
        _end(conn, hold_id, now, "released")
        _timeline(conn, alert_id, occurrence, now, "released", "notifier", None)
        outcome.released += 1
        outcome.notifications_released += notes
        outcome.timers_released += due
    return outcome


def _release(
    conn: Connection, alert_id: str, occurrence: int, held_at: datetime, now: datetime
) -> tuple[int, int]:
    released = _notifications(
        conn,
        alert_id,
        occurrence,
        ("held",),
        status="pending",
        next_attempt_at=now,
        error_reason=None,
        last_error=None,
    )
    held_timers = conn.execute(
        select(timers.c.id, timers.c.due_at).where(
            timers.c.alert_id == alert_id,
            timers.c.occurrence == occurrence,
            timers.c.state == "held",
        )
    ).all()
    for timer_id, due_at in held_timers:
        # The delay it had left when it was held, counted from now.
        left = max(due_at - held_at, timedelta(0))
        conn.execute(
            update(timers).where(timers.c.id == timer_id).values(state="pending", due_at=now + left)
        )
    return released, len(held_timers)


def _lapse(conn: Connection, alert_id: str, occurrence: int, now: datetime) -> int:
    """The occurrence ended while held: nothing of it is ever sent."""
    suppressed = _notifications(
        conn,
        alert_id,
        occurrence,
        ("held", "pending"),
        status="suppressed",
        last_error="the alert resolved while held",
    )
    _timers(conn, alert_id, occurrence, "held", state="done", fired_at=now, outcome="suppressed")
    conn.execute(
        update(holds)
        .where(
            and_(
                holds.c.alert_id == alert_id,
                holds.c.occurrence == occurrence,
                holds.c.ended_at.is_(None),
            )
        )
        .values(ended_at=now, outcome="lapsed")
    )
    return suppressed


def _record_hold(
    conn: Connection, alert_id: str, occurrence: int, cause: Cause, *, since: datetime
) -> None:
    conn.execute(
        insert(holds).values(
            alert_id=alert_id,
            occurrence=occurrence,
            cause=cause.kind,
            cause_id=cause.id,
            detail=cause.detail,
            held_at=since,
        )
    )


def _notifications(
    conn: Connection, alert_id: str, occurrence: int, statuses: tuple[str, ...], **values: Any
) -> int:
    """Set ``values`` on an occurrence's notifications in ``statuses``; how many changed."""
    changed = conn.execute(
        update(notifications)
        .where(
            notifications.c.alert_id == alert_id,
            notifications.c.occurrence == occurrence,
            notifications.c.status.in_(statuses),
        )
        .values(**values)
    ).rowcount
    return max(changed, 0)


def _timers(conn: Connection, alert_id: str, occurrence: int, in_state: str, **values: Any) -> None:
    """Set ``values`` on an occurrence's timers in ``in_state``."""
    conn.execute(
        update(timers)
        .where(
            timers.c.alert_id == alert_id,
            timers.c.occurrence == occurrence,
            timers.c.state == in_state,
        )
        .values(**values)
    )


def _end(conn: Connection, hold_id: int, now: datetime, outcome: str) -> None:
    conn.execute(update(holds).where(holds.c.id == hold_id).values(ended_at=now, outcome=outcome))


def _timeline(
    conn: Connection,
    alert_id: str,
    occurrence: int,
    now: datetime,
    kind: str,
    actor: str,
    note: str | None,
) -> None:
    conn.execute(
        insert(alert_timeline).values(
            alert_id=alert_id,
            occurrence=occurrence,
            at=now,
            kind=kind,
            actor=actor[:255],
            channel="notifier",
            note=note,
        )
    )
