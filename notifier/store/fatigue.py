"""Applying fatigue control to a batch: grouping, rate limits and quiet hours (see
:mod:`notifier.fatigue` for the rules).

Runs in the batch's transaction after the notifications are written and holds applied. A
notification that may go now stays pending; one that may not becomes ``bundled`` (its
``error_reason`` says why: ``grouped``, ``throttled`` or ``quiet``; ``last_error`` names the
digest) and is listed in a digest notification (kind ``digest``) that is pending until its
due time. A digest accepts members until shortly before it is due, so one that the outbox
may be claiming is never changed; a member arriving later starts the next digest.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from notifier.correlate import Effect
from notifier.events import ALERT_TYPE, AlertData
from notifier.fatigue import (
    DIGEST_TEMPLATE,
    BundleReason,
    FatigueConfig,
    admit,
    bundle_key,
    group_key,
    next_admitted,
    quiet_until,
)
from notifier.intents import Intent
from notifier.routing import Clearance, Recipient
from notifier.store.outbox import notification_row
from notifier.store.schema import bundles, notifications, pacing

__all__ = ["DIGEST_MARGIN", "MAX_LISTED", "GateOutcome", "explain", "gate_batch"]

DIGEST_MARGIN = timedelta(seconds=2)
"""A digest due sooner than this accepts no more members (the outbox may be claiming it)."""
MAX_LISTED = 50
"""Alerts a digest lists one by one; it counts the rest."""

_EFFECTS = (Effect.FIRING, Effect.RESOLVED)


@dataclass
class GateOutcome:
    """What the gate did to a batch."""

    bundled: dict[str, int] = field(default_factory=dict)
    digests: int = 0

    @property
    def held_back(self) -> int:
        """Notifications that became digest members."""
        return sum(self.bundled.values())


@dataclass
class _Digest:
    id: str
    details: dict[str, Any]
    new: bool


class _Gate:
    """One batch's decisions, with the rows it read cached and its writes collected."""

    def __init__(self, conn: Connection, config: FatigueConfig, now: datetime, lock: bool):
        self.conn = conn
        self.config = config
        self.now = now
        self.lock = lock
        self.tats: dict[tuple[str, str, str], datetime | None] = {}
        self.dirty_tats: set[tuple[str, str, str]] = set()
        self.bundles: dict[str, dict[str, Any] | None] = {}
        self.dirty_bundles: set[str] = set()
        self.digests: dict[str, _Digest] = {}
        self.members: list[dict[str, str]] = []
        self.outcome = GateOutcome()

    # --- buckets --------------------------------------------------------------------------

    def tat(self, key: tuple[str, str, str]) -> datetime | None:
        if key not in self.tats:
            query = select(pacing.c.tat).where(
                pacing.c.person_id == key[0], pacing.c.channel == key[1], pacing.c.lane == key[2]
            )
            self.tats[key] = self.conn.scalar(query.with_for_update() if self.lock else query)
        return self.tats[key]

    def set_tat(self, key: tuple[str, str, str], value: datetime) -> None:
        self.tats[key] = value
        self.dirty_tats.add(key)

    # --- digests --------------------------------------------------------------------------

    def bundle(self, key: str) -> dict[str, Any] | None:
        if key not in self.bundles:
            query = select(bundles).where(bundles.c.key == key)
            row = self.conn.execute(query.with_for_update() if self.lock else query)
            found = row.mappings().first()
            self.bundles[key] = dict(found) if found is not None else None
        return self.bundles[key]

    def join(
        self,
        intent: Intent,
        key: str,
        reason: str,
        due: Callable[[dict[str, Any] | None], datetime],
        labels: dict[str, str] | None = None,
    ) -> None:
        """Make ``intent`` a member of the recipient's open digest ``key``, or of a new one."""
        state = self.bundle(key)
        open_ = (
            state is not None
            and state["notification_id"] is not None
            and state["due_at"] is not None
            and state["due_at"] > self.now + DIGEST_MARGIN
        )
        if state is not None and open_:
            digest = self.digest(state["notification_id"])
        else:
            at = due(state)
            channel = intent.recipient.contact.channel.value
            limit = self.config.limit_for(channel)
            if limit is not None:  # the digest is a message too: it waits for budget
                bucket = (intent.recipient.person.id, channel, "normal")
                at = next_admitted(self.tat(bucket), at, limit)
                self.set_tat(bucket, admit(self.tat(bucket), at, limit)[1])
            digest = self.create(intent, reason, at, labels)
            state = {
                "key": key,
                "person_id": intent.recipient.person.id,
                "channel": channel,
                "reason": reason,
                "labels": labels,
                "notification_id": digest.id,
                "due_at": at,
                "last_flush_at": at if reason == BundleReason.GROUPED else None,
            }
            self.bundles[key] = state
            self.dirty_bundles.add(key)
        items = digest.details["items"]
        if len(items) < MAX_LISTED:
            items.append(_item(intent))
        digest.details["count"] += 1
        self.members.append(
            {"b_id": intent.id, "b_reason": reason, "b_note": f"in digest {digest.id}"}
        )
        self.outcome.bundled[reason] = self.outcome.bundled.get(reason, 0) + 1

    def digest(self, digest_id: str) -> _Digest:
        if digest_id not in self.digests:
            details = self.conn.scalar(
                select(notifications.c.details).where(notifications.c.id == digest_id)
            )
            self.digests[digest_id] = _Digest(digest_id, dict(details or {}), new=False)
        return self.digests[digest_id]

    def create(
        self, intent: Intent, reason: str, at: datetime, labels: dict[str, str] | None
    ) -> _Digest:
        r = intent.recipient
        recipient = Recipient(
            r.person,
            r.contact,
            r.tier,
            f"fatigue:{reason}",
            DIGEST_TEMPLATE,
            Clearance.PUBLIC,  # a digest lists summaries, never confidential details
        )
        digest = _Digest(
            uuid.uuid4().hex,
            {
                "reason": reason,
                "group": labels,
                "due_at": at.isoformat(),
                "count": 0,
                "items": [],
            },
            new=True,
        )
        alert = intent.transition.alert
        row = notification_row(
            digest.id,
            alert_id=alert.id,
            occurrence=alert.occurrence,
            kind="digest",
            event_key=intent.transition.event_key,
            recipient=recipient,
            now=self.now,
        )
        row["next_attempt_at"] = at
        row["details"] = digest.details
        self.conn.execute(insert(notifications).values(**row))
        self.digests[digest.id] = digest
        self.outcome.digests += 1
        return digest

    # --- writing --------------------------------------------------------------------------

    def flush(self) -> None:
        if self.members:
            self.conn.execute(
                update(notifications)
                .where(notifications.c.id == bindparam("b_id"))
                .values(
                    status="bundled",
                    error_reason=bindparam("b_reason"),
                    last_error=bindparam("b_note"),
                ),
                self.members,
            )
        for digest in self.digests.values():
            self.conn.execute(
                update(notifications)
                .where(notifications.c.id == digest.id)
                .values(details=digest.details)
            )
        for key in self.dirty_tats:
            value = self.tats[key]
            assert value is not None
            found = self.conn.execute(
                update(pacing)
                .where(
                    pacing.c.person_id == key[0],
                    pacing.c.channel == key[1],
                    pacing.c.lane == key[2],
                )
                .values(tat=value)
            ).rowcount
            if not found:
                self.conn.execute(
                    insert(pacing).values(person_id=key[0], channel=key[1], lane=key[2], tat=value)
                )
        for name in self.dirty_bundles:
            state = self.bundles[name]
            assert state is not None
            values = {k: v for k, v in state.items() if k != "key"}
            found = self.conn.execute(
                update(bundles).where(bundles.c.key == name).values(**values)
            ).rowcount
            if not found:
                self.conn.execute(insert(bundles).values(key=name, **values))


def gate_batch(
    conn: Connection,
    intents: Sequence[Intent],
    now: datetime,
    config: FatigueConfig,
    *,
    lock: bool,
) -> GateOutcome:
    """Decide, for every pending notification an alert's firing or resolve caused in this
    batch, whether it goes now or into a digest; write the decisions."""
    if not config.may_bundle(any(i.recipient.person.quiet_hours for i in intents)):
        return GateOutcome()
    candidates = [
        i
        for i in intents
        if i.transition.event.type == ALERT_TYPE and i.transition.effect in _EFFECTS
    ]
    if not candidates:
        return GateOutcome()
    pending: set[str] = set()
    ids = [i.id for i in candidates]
    for start in range(0, len(ids), 500):
        pending.update(
            conn.scalars(
                select(notifications.c.id).where(
                    notifications.c.id.in_(ids[start : start + 500]),
                    notifications.c.status == "pending",
                )
            )
        )
    # Critical alerts first: when the budget is short, they take it.
    ordered = sorted(
        (i for i in candidates if i.id in pending),
        key=lambda i: i.transition.event.severity.value != "critical",
    )
    gate = _Gate(conn, config, now, lock)
    for intent in ordered:
        _decide(gate, intent)
    gate.flush()
    return gate.outcome


def _decide(gate: _Gate, intent: Intent) -> None:
    config, now = gate.config, gate.now
    person = intent.recipient.person
    channel = intent.recipient.contact.channel.value
    severity = intent.transition.event.severity.value
    if person.quiet_hours is not None and severity != "critical":
        until = (
            quiet_until(now, person.timezone, person.quiet_hours)
            if severity in config.quiet_severities
            else None
        )
        if until is not None:
            gate.join(
                intent,
                bundle_key(person.id, channel, BundleReason.QUIET),
                BundleReason.QUIET,
                lambda _: until,
            )
            return
    grouping = config.grouping
    if grouping is not None and config.groups(severity):
        key, values = group_key(person.id, channel, intent.transition.event.labels, grouping.by)

        def group_due(state: dict[str, Any] | None) -> datetime:
            first = now + grouping.wait
            last = state["last_flush_at"] if state is not None else None
            return first if last is None else max(first, last + grouping.interval)

        gate.join(intent, key, BundleReason.GROUPED, group_due, values)
        return
    limit = config.limit_for(channel)
    if limit is None:
        return
    bucket = (person.id, channel, "normal")
    ok, tat = admit(gate.tat(bucket), now, limit)
    if ok:
        gate.set_tat(bucket, tat)
        return
    ceiling = config.critical_ceiling
    if severity == "critical" and ceiling is not None:
        lane = (person.id, channel, "critical")
        ok, tat = admit(gate.tat(lane), now, ceiling)
        if ok:
            gate.set_tat(lane, tat)
            return
    gate.join(
        intent,
        bundle_key(person.id, channel, BundleReason.THROTTLED),
        BundleReason.THROTTLED,
        lambda _: now,  # join() moves it to when the budget allows one more message
    )


def _item(intent: Intent) -> dict[str, Any]:
    event = intent.transition.event
    data = event.data
    summary = data.annotations.summary if isinstance(data, AlertData) else ""
    return {
        "alert_id": intent.transition.alert.id,
        "name": event.labels.get("alertname", ""),
        "severity": event.severity.value,
        "status": intent.transition.effect.value,
        "summary": summary,
        "labels": {k: v for k, v in event.labels.items() if k != "alertname"},
    }


def explain(
    conn: Connection | None,
    config: FatigueConfig,
    recipient: Recipient,
    severity: str,
    labels: dict[str, str],
    now: datetime,
) -> str | None:
    """Why a new alert's message to ``recipient`` would not go out alone now (quiet hours,
    grouping, rate limit), or None if it would. ``conn`` (None: no store yet) supplies the
    recipient's bucket and open digests."""
    person = recipient.person
    channel = recipient.contact.channel.value
    if person.quiet_hours is not None and severity != "critical":
        until = (
            quiet_until(now, person.timezone, person.quiet_hours)
            if severity in config.quiet_severities
            else None
        )
        if until is not None:
            return (
                f"quiet hours: in the morning digest at {until:%Y-%m-%d %H:%M} ({person.timezone})"
            )
    grouping = config.grouping
    if grouping is not None and config.groups(severity):
        key, values = group_key(person.id, channel, labels, grouping.by)
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        state = None
        if conn is not None:
            found = conn.execute(select(bundles).where(bundles.c.key == key)).mappings().first()
            state = dict(found) if found is not None else None
        if state is not None and state["due_at"] is not None and state["due_at"] > now:
            return f"grouped ({shown}): joins the digest due at {state['due_at']:%H:%M:%S} UTC"
        return f"grouped ({shown}): a digest within {int(grouping.wait.total_seconds())} s"
    limit = config.limit_for(channel)
    if limit is None or conn is None:
        return None
    tat = conn.scalar(
        select(pacing.c.tat).where(
            pacing.c.person_id == person.id, pacing.c.channel == channel, pacing.c.lane == "normal"
        )
    )
    if admit(tat, now, limit)[0]:
        return None
    if severity == "critical" and config.critical_ceiling is not None:
        ceiling = conn.scalar(
            select(pacing.c.tat).where(
                pacing.c.person_id == person.id,
                pacing.c.channel == channel,
                pacing.c.lane == "critical",
            )
        )
        if admit(ceiling, now, config.critical_ceiling)[0]:
            return None
    at = next_admitted(tat, now, limit)
    return (
        f"rate limited ({limit.count} per {int(limit.per.total_seconds() // 60)} min on "
        f"{channel}): in a digest at {at:%H:%M:%S} UTC"
    )
