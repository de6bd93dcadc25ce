"""Applying fatigue control to a batch: grouping, rate limits and quiet hours (see
:mod:`notifier.fatigue` for the rules).

Runs in the batch's transaction before its notifications are written (the decisions become
their status). A notification that may go now stays pending; one that may not is written
``bundled`` (its ``error_reason`` says why: ``grouped``, ``throttled`` or ``quiet``;
``last_error`` names the digest) and listed in a digest notification (kind ``digest:<id>``)
that is pending until its due time. A digest accepts members until shortly before it is due,
so one the outbox may be claiming is never changed; a member arriving later starts the next.

When a recipient's budget is short, a new group or morning digest would only queue up
behind it: it joins the recipient's throttled digest instead, so however many groups a
storm touches, a recipient gets at most their rate of messages.

The state a batch needs (buckets, open digests) is read in a few queries up front and
written back with one statement per table.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from notifier.correlate import Effect
from notifier.directory import ChannelKind, Directory
from notifier.events import ALERT_TYPE, AlertData
from notifier.fatigue import (
    DIGEST_TEMPLATE,
    BundleReason,
    FatigueConfig,
    admit,
    bundle_key,
    group_due,
    group_key,
    next_admitted,
)
from notifier.intents import Intent
from notifier.routing import Clearance, Recipient
from notifier.store.bulk import Bulk
from notifier.store.outbox import notification_row
from notifier.store.schema import alerts, bundles, notifications, pacing

__all__ = [
    "DIGEST_MARGIN",
    "MAX_LISTED",
    "Decision",
    "GateOutcome",
    "digest_kind",
    "explain",
    "gate_batch",
    "repeat_groups",
]

DIGEST_MARGIN = timedelta(seconds=2)
"""A digest due sooner than this accepts no more members (the outbox may be claiming it)."""
MAX_LISTED = 50
"""Alerts a digest lists one by one; it counts the rest."""

_EFFECTS = (Effect.FIRING, Effect.RESOLVED)
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Decision:
    """A notification held back into a digest: why, and which digest."""

    reason: str
    digest_id: str

    @property
    def note(self) -> str:
        """The member's ``last_error``."""
        return f"in digest {self.digest_id}"


@dataclass
class GateOutcome:
    """What the gate decided for a batch."""

    decisions: dict[str, Decision] = field(default_factory=dict)
    digests: int = 0

    @property
    def held_back(self) -> int:
        """Notifications that became digest members."""
        return len(self.decisions)

    def by_reason(self) -> dict[str, int]:
        """Members per reason."""
        found: dict[str, int] = {}
        for d in self.decisions.values():
            found[d.reason] = found.get(d.reason, 0) + 1
        return found


@dataclass
class _Digest:
    id: str
    details: dict[str, Any]
    new: bool
    row: dict[str, Any] | None = None


Bucket = tuple[str, str, str]  # contact address, channel, lane


def _address(intent: Intent) -> str:
    """Whose budget a message spends: its address on its channel. A Slack channel or a
    webhook endpoint that several people reach shares one budget."""
    return intent.recipient.contact.address


class _Gate:
    """One batch's decisions over state read up front; writes collected for the end."""

    def __init__(self, conn: Connection, config: FatigueConfig, now: datetime, lock: bool):
        self.conn = conn
        self.config = config
        self.now = now
        self.lock = lock
        self.tats: dict[Bucket, datetime | None] = {}
        self.dirty_tats: set[Bucket] = set()
        self.known_tats: set[Bucket] = set()
        self.bundles: dict[str, dict[str, Any] | None] = {}
        self.dirty_bundles: set[str] = set()
        self.known_bundles: set[str] = set()
        self.digests: dict[str, _Digest] = {}
        self.outcome = GateOutcome()

    # --- reading ----------------------------------------------------------------------------

    def preload(self, addresses: set[str], keys: set[str]) -> None:
        """Read the buckets of ``addresses`` and the digests ``keys`` (locked on PostgreSQL)."""
        names = sorted(addresses)
        for start in range(0, len(names), _CHUNK):
            query = select(pacing).where(pacing.c.recipient.in_(names[start : start + _CHUNK]))
            for row in self.conn.execute(query.with_for_update() if self.lock else query):
                bucket = (row.recipient, row.channel, row.lane)
                self.tats[bucket] = row.tat
                self.known_tats.add(bucket)
        wanted = sorted(keys)
        digest_ids: list[str] = []
        for start in range(0, len(wanted), _CHUNK):
            query = select(bundles).where(bundles.c.key.in_(wanted[start : start + _CHUNK]))
            result = self.conn.execute(query.with_for_update() if self.lock else query)
            for mapping in result.mappings():
                state = dict(mapping)
                self.bundles[state["key"]] = state
                self.known_bundles.add(state["key"])
                if self.joinable(state):
                    digest_ids.append(state["notification_id"])
        for start in range(0, len(digest_ids), _CHUNK):
            for digest_id, details in self.conn.execute(
                select(notifications.c.id, notifications.c.details).where(
                    notifications.c.id.in_(digest_ids[start : start + _CHUNK])
                )
            ):
                self.digests[digest_id] = _Digest(digest_id, dict(details or {}), new=False)

    def tat(self, bucket: Bucket) -> datetime | None:
        return self.tats.get(bucket)

    def set_tat(self, bucket: Bucket, value: datetime) -> None:
        self.tats[bucket] = value
        self.dirty_tats.add(bucket)

    def joinable(self, state: dict[str, Any] | None) -> bool:
        return (
            state is not None
            and state["notification_id"] is not None
            and state["due_at"] is not None
            and state["due_at"] > self.now + DIGEST_MARGIN
        )

    # --- deciding ---------------------------------------------------------------------------

    def join(
        self,
        intent: Intent,
        key: str,
        reason: str,
        due: Callable[[dict[str, Any] | None], datetime],
        labels: dict[str, str] | None = None,
    ) -> None:
        """Make ``intent`` a member of the recipient's open digest ``key``, or of a new one."""
        state = self.bundles.get(key)
        if self.joinable(state):
            assert state is not None
            digest = self.digests[state["notification_id"]]
        else:
            at = due(state)
            person, channel = intent.recipient.person.id, intent.recipient.contact.channel.value
            limit = self.config.limit_for(channel)
            if limit is not None:  # a digest is a message too: it waits for budget
                bucket = (_address(intent), channel, "normal")
                admitted = next_admitted(self.tat(bucket), at, limit)
                if admitted > at and reason != BundleReason.THROTTLED:
                    # The budget is short: rather than queue another digest behind it, join
                    # the recipient's throttled digest.
                    self.throttle(intent)
                    return
                at = admitted
                self.set_tat(bucket, admit(self.tat(bucket), at, limit)[1])
            digest = self.create(intent, reason, at, labels)
            self.bundles[key] = {
                "key": key,
                "person_id": person,
                "channel": channel,
                "reason": reason,
                "labels": labels,
                "notification_id": digest.id,
                "due_at": at,
                "last_flush_at": at if reason == BundleReason.GROUPED else None,
                "repeats": 0,
            }
            self.dirty_bundles.add(key)
        items = digest.details["items"]
        if len(items) < MAX_LISTED:
            items.append(_item(intent))
        digest.details["count"] += 1
        self.outcome.decisions[intent.id] = Decision(reason, digest.id)

    def throttle(self, intent: Intent) -> None:
        """Put ``intent`` in the recipient's throttled digest (due when budget allows)."""
        person, channel = intent.recipient.person.id, intent.recipient.contact.channel.value
        self.join(
            intent,
            bundle_key(person, channel, BundleReason.THROTTLED),
            BundleReason.THROTTLED,
            lambda _: self.now,  # join() moves it to when the budget allows one more message
        )

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
        alert = intent.transition.alert
        digest_id = uuid.uuid4().hex
        row = notification_row(
            digest_id,
            alert_id=alert.id,
            occurrence=alert.occurrence,
            kind=digest_kind(digest_id),
            event_key=intent.transition.event_key,
            recipient=recipient,
            now=self.now,
            created_at=intent.created_at,
        )
        row["next_attempt_at"] = at
        details: dict[str, Any] = {
            "reason": reason,
            "group": labels,
            "due_at": at.isoformat(),
            "count": 0,
            "items": [],
        }
        digest = _Digest(digest_id, details, new=True, row=row)
        self.digests[digest_id] = digest
        self.outcome.digests += 1
        return digest

    # --- writing ----------------------------------------------------------------------------

    def flush(self) -> None:
        new = [d for d in self.digests.values() if d.new and d.row is not None]
        _INSERT_DIGESTS.run(self.conn, [{**d.row, "details": d.details} for d in new if d.row])
        _UPDATE_DETAILS.run(
            self.conn,
            [
                {"b_id": d.id, "b_details": d.details}
                for d in self.digests.values()
                if not d.new and d.details.get("count")
            ],
        )
        tats = [
            {"b_recipient": b[0], "b_channel": b[1], "b_lane": b[2], "b_tat": self.tats[b]}
            for b in self.dirty_tats
        ]
        _UPDATE_TATS.run(self.conn, [t for t in tats if _bucket(t) in self.known_tats])
        _INSERT_TATS.run(
            self.conn,
            [
                {
                    "recipient": t["b_recipient"],
                    "channel": t["b_channel"],
                    "lane": t["b_lane"],
                    "tat": t["b_tat"],
                }
                for t in tats
                if _bucket(t) not in self.known_tats
            ],
        )
        states = [self.bundles[k] for k in self.dirty_bundles]
        _UPDATE_BUNDLES.run(
            self.conn,
            [
                {f"b_{k}": v for k, v in s.items()}
                for s in states
                if s is not None and s["key"] in self.known_bundles
            ],
        )
        _INSERT_BUNDLES.run(
            self.conn,
            [s for s in states if s is not None and s["key"] not in self.known_bundles],
        )


def digest_kind(digest_id: str) -> str:
    """A digest's notification kind: ``digest:<id>``. Unique per digest, since two digests
    may list the same alert occurrence first (its firing in one, its resolve in another)."""
    return f"digest:{digest_id[:16]}"


def _bucket(row: dict[str, Any]) -> Bucket:
    return (row["b_recipient"], row["b_channel"], row["b_lane"])


def _types(table: Any, prefix: str = "") -> dict[str, Any]:
    return {f"{prefix}{c.name}": c.type for c in table.columns}


_INSERT_DIGESTS = Bulk(insert(notifications), _types(notifications))
_UPDATE_DETAILS = Bulk(
    update(notifications)
    .where(notifications.c.id == bindparam("b_id"))
    .values(details=bindparam("b_details")),
    {"b_id": notifications.c.id.type, "b_details": notifications.c.details.type},
)
_UPDATE_TATS = Bulk(
    update(pacing)
    .where(
        pacing.c.recipient == bindparam("b_recipient"),
        pacing.c.channel == bindparam("b_channel"),
        pacing.c.lane == bindparam("b_lane"),
    )
    .values(tat=bindparam("b_tat")),
    {
        "b_recipient": pacing.c.recipient.type,
        "b_channel": pacing.c.channel.type,
        "b_lane": pacing.c.lane.type,
        "b_tat": pacing.c.tat.type,
    },
)
_INSERT_TATS = Bulk(insert(pacing), _types(pacing))
_UPDATE_BUNDLES = Bulk(
    update(bundles)
    .where(bundles.c.key == bindparam("b_key"))
    .values({c.name: bindparam(f"b_{c.name}") for c in bundles.columns if c.name != "key"}),
    _types(bundles, "b_"),
)
_INSERT_BUNDLES = Bulk(insert(bundles), _types(bundles))


def gate_batch(
    conn: Connection,
    intents: Sequence[Intent],
    now: datetime,
    config: FatigueConfig,
    *,
    lock: bool,
    skip: frozenset[str] = frozenset(),
) -> GateOutcome:
    """Decide, for every notification an alert's firing or resolve causes in this batch
    (except those of the alerts in ``skip``, which are held), whether it goes now or into a
    digest; write the digests and the recipients' buckets. The caller writes the
    notifications with the returned decisions."""
    if not config.may_bundle(any(i.recipient.person.quiet_hours for i in intents)):
        return GateOutcome()
    candidates = [
        i
        for i in intents
        if i.transition.event.type == ALERT_TYPE
        and i.transition.effect in _EFFECTS
        and i.transition.alert.id not in skip
    ]
    if not candidates:
        return GateOutcome()
    # Critical alerts first: when the budget is short, they take it.
    ordered = sorted(candidates, key=lambda i: i.transition.event.severity.value != "critical")
    gate = _Gate(conn, config, now, lock)
    addresses: set[str] = set()
    keys: set[str] = set()
    for intent in ordered:
        person = intent.recipient.person.id
        channel = intent.recipient.contact.channel.value
        addresses.add(_address(intent))
        keys.add(bundle_key(person, channel, BundleReason.THROTTLED))
        keys.add(bundle_key(person, channel, BundleReason.QUIET))
        if config.grouping is not None:
            labels = intent.transition.event.labels
            keys.add(group_key(person, channel, labels, config.grouping.by)[0])
    gate.preload(addresses, keys)
    for intent in ordered:
        _decide(gate, intent)
    gate.flush()
    return gate.outcome


def _decide(gate: _Gate, intent: Intent) -> None:
    config, now = gate.config, gate.now
    person = intent.recipient.person
    channel = intent.recipient.contact.channel.value
    severity = intent.transition.event.severity.value
    until = config.quiet_until(person, severity, now)
    if until is not None:
        key = bundle_key(person.id, channel, BundleReason.QUIET)
        gate.join(intent, key, BundleReason.QUIET, lambda _: until)
        return
    grouping = config.grouping
    if grouping is not None and config.groups(severity):
        key, values = group_key(person.id, channel, intent.transition.event.labels, grouping.by)

        def due(state: dict[str, Any] | None) -> datetime:
            last = state["last_flush_at"] if state is not None else None
            return group_due(now, last, grouping)

        gate.join(intent, key, BundleReason.GROUPED, due, values)
        return
    limit = config.limit_for(channel)
    if limit is None:
        return
    bucket = (_address(intent), channel, "normal")
    ok, tat = admit(gate.tat(bucket), now, limit)
    if ok:
        gate.set_tat(bucket, tat)
        return
    ceiling = config.critical_ceiling
    if severity == "critical" and ceiling is not None:
        lane = (_address(intent), channel, "critical")
        ok, tat = admit(gate.tat(lane), now, ceiling)
        if ok:
            gate.set_tat(lane, tat)
            return
    gate.throttle(intent)


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
    until = config.quiet_until(person, severity, now)
    if until is not None:
        return f"quiet hours: in the morning digest at {until:%Y-%m-%d %H:%M} ({person.timezone})"
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
            pacing.c.recipient == recipient.contact.address,
            pacing.c.channel == channel,
            pacing.c.lane == "normal",
        )
    )
    if admit(tat, now, limit)[0]:
        return None
    if severity == "critical" and config.critical_ceiling is not None:
        ceiling = conn.scalar(
            select(pacing.c.tat).where(
                pacing.c.recipient == recipient.contact.address,
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


def repeat_groups(
    conn: Connection, now: datetime, config: FatigueConfig, directory: Directory
) -> int:
    """Remind recipients of groups that are still firing: once a group has gone
    ``grouping.repeat[n]`` without a message, its firing alerts are listed again. All groups
    of one recipient and channel due at once go out as one digest. Returns how many digests
    were written."""
    grouping = config.grouping
    if grouping is None or not grouping.repeat:
        return 0
    due = conn.execute(
        select(bundles).where(
            bundles.c.reason == BundleReason.GROUPED,
            bundles.c.last_flush_at <= now - min(grouping.repeat),
        )
    ).mappings()
    by_recipient: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for bundle in due:
        after = grouping.repeat_after(bundle["repeats"] or 0)
        if after is not None and bundle["last_flush_at"] + after <= now:
            key = (bundle["person_id"], bundle["channel"])
            by_recipient.setdefault(key, []).append(dict(bundle))
    written = 0
    for (person_id, channel), states in by_recipient.items():
        person = directory.get(person_id)
        contact = person.contact(ChannelKind(channel)) if person is not None else None
        firing = _still_firing(conn, person_id, channel, states) if contact else {}
        for state in states:
            alive = bool(firing.get(state["key"]))
            conn.execute(
                update(bundles)
                .where(bundles.c.key == state["key"])
                .values(
                    last_flush_at=now,
                    repeats=(state["repeats"] or 0) + 1 if alive else 0,
                )
            )
        listed = [item for s in states for item in firing.get(s["key"], [])]
        if person is None or contact is None or not listed:
            continue
        first = listed[0]
        digest_id = uuid.uuid4().hex
        row = notification_row(
            digest_id,
            alert_id=first["alert_id"],
            occurrence=first["occurrence"],
            kind=digest_kind(digest_id),
            event_key=first["event_key"],
            recipient=Recipient(
                person,
                contact,
                first["tier"],
                "fatigue:repeat",
                DIGEST_TEMPLATE,
                Clearance.PUBLIC,
            ),
            now=now,
        )
        groups = [s["labels"] for s in states if firing.get(s["key"])]
        row["details"] = {
            "reason": BundleReason.GROUPED,
            "repeat": True,
            "group": groups[0] if len(groups) == 1 else None,
            "due_at": now.isoformat(),
            "count": len(listed),
            "items": [
                {k: v for k, v in item.items() if k not in ("occurrence", "event_key", "tier")}
                for item in listed[:MAX_LISTED]
            ],
        }
        conn.execute(insert(notifications).values(**row))
        written += 1
    return written


def _still_firing(
    conn: Connection, person_id: str, channel: str, states: Sequence[dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """Per group (bundle key): the firing alerts of the group this person was paged about
    on this channel, as digest items."""
    names = {s["labels"].get("alertname") for s in states if s["labels"]}
    query = (
        select(
            notifications.c.alert_id,
            notifications.c.occurrence,
            notifications.c.event_key,
            notifications.c.tier,
            alerts.c.name,
            alerts.c.severity,
            alerts.c.summary,
            alerts.c.labels,
        )
        .join(
            alerts,
            (alerts.c.id == notifications.c.alert_id)
            & (alerts.c.occurrence == notifications.c.occurrence),
        )
        .where(
            notifications.c.person_id == person_id,
            notifications.c.channel == channel,
            notifications.c.kind == "firing",
            alerts.c.status == "firing",
        )
    )
    if None not in names:
        query = query.where(alerts.c.name.in_(sorted(n for n in names if n is not None)))
    found: dict[str, list[dict[str, Any]]] = {}
    seen: set[str] = set()
    for r in conn.execute(query).mappings():
        if r["alert_id"] in seen:
            continue
        labels = {"alertname": r["name"], **(r["labels"] or {})}
        for state in states:
            wanted = state["labels"] or {}
            if all(labels.get(k, "") == v for k, v in wanted.items()):
                seen.add(r["alert_id"])
                found.setdefault(state["key"], []).append(
                    {
                        "alert_id": r["alert_id"],
                        "occurrence": r["occurrence"],
                        "event_key": r["event_key"],
                        "tier": r["tier"],
                        "name": r["name"],
                        "severity": r["severity"],
                        "status": "firing",
                        "summary": r["summary"],
                        "labels": {k: v for k, v in labels.items() if k != "alertname"},
                    }
                )
                break
    return found
