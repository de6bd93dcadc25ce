"""Table definitions: the single description of the schema the migrations create.

``tests/test_store.py`` checks that the migrated database and these tables never drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store naive UTC."""
        if value is None:
            return None
        if value.tzinfo is UTC:
            return value.replace(tzinfo=None)
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """On SQLite, format directly in the layout SQLAlchemy's DATETIME stores (hot path)."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def to_text(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is not UTC:
                if value.tzinfo is None:
                    raise ValueError("naive datetime given to the store; pass an aware datetime")
                value = value.astimezone(UTC)
            return value.replace(tzinfo=None).isoformat(" ", "microseconds")

        return to_text

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Read back as aware UTC."""
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

consumer_offsets = Table(
    "consumer_offsets",
    metadata,
    Column("group_id", String(255), primary_key=True),
    Column("topic", String(255), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# The CloudEvents identity (a hash of source + id) of every accepted event: the dedup rule.
event_keys = Table(
    "event_keys",
    metadata,
    Column("event_key", String(32), primary_key=True),
    Column("received_at", UTCDateTime, nullable=False),
    sqlite_with_rowid=False,
)

# Events that changed something people hear about or see (an alert fired, resolved, a notice,
# a stale resolve), with their payload: rendering and the timeline need it. Repeats of a
# firing alert only bump its counters and are not kept one by one.
events = Table(
    "events",
    metadata,
    Column("event_key", String(32), primary_key=True),
    Column("source", Text, nullable=False),
    Column("id", Text, nullable=False),
    Column("type", String(64), nullable=False),
    Column("fingerprint", String(128), nullable=False),
    Column("alert_id", String(32), nullable=False),
    Column("effect", String(16), nullable=False),
    Column("event_time", UTCDateTime),
    Column("received_at", UTCDateTime, nullable=False),
    Column("topic", String(255)),
    Column("partition", Integer),
    Column("offset", BigInteger),
    Column("payload", JSON, nullable=False),
)
Index("ix_events_alert_id", events.c.alert_id)

alerts = Table(
    "alerts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("fingerprint", String(128), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("occurrence", Integer, nullable=False),
    Column("name", Text, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("risk", String(16)),
    Column("labels", JSON, nullable=False),
    Column("summary", Text, nullable=False),
    Column("starts_at", UTCDateTime),
    Column("ends_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("event_count", Integer, nullable=False),
    Column("last_event_key", String(32), nullable=False),
    Column("acknowledged_by", String(64)),
    Column("acknowledged_at", UTCDateTime),
)
Index("ix_alerts_status", alerts.c.status)

# Every lifecycle step of every alert: who, when, through which channel, with what note.
alert_timeline = Table(
    "alert_timeline",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_id", String(32), nullable=False),
    Column("occurrence", Integer, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("note", Text),
    Column("event_key", String(32)),
)
Index("ix_alert_timeline_alert_id", alert_timeline.c.alert_id)

notifications = Table(
    "notifications",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("alert_id", String(32), nullable=False),
    Column("occurrence", Integer, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("event_key", String(32), nullable=False),
    Column("person_id", String(64), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("address", Text, nullable=False),
    Column("recipient_name", Text, nullable=False),
    Column("tier", String(64), nullable=False),
    Column("rule", Text, nullable=False),
    Column("template", String(64), nullable=False),
    Column("clearance", String(16), nullable=False),
    Column("locale", String(32), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("dispatches", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("lease_expires_at", UTCDateTime),
    Column("error_reason", String(16)),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    Column("language", String(32)),
    Column("template_hash", String(64)),
    # Which approved library versions rendered it ("alert v3, shared v1").
    Column("template_version", String(128)),
    Column("provider_id", Text),
    # What a follow-up says beyond the event: who acknowledged, the latest status update, ...
    Column("details", JSON),
    # One message per alert occurrence, transition, person and channel: replays cannot double it.
    UniqueConstraint("alert_id", "occurrence", "kind", "person_id", "channel"),
)
Index("ix_notifications_due", notifications.c.status, notifications.c.next_attempt_at)
Index("ix_notifications_alert_id", notifications.c.alert_id)
# Per-alert delivery order: is an earlier message to this address still pending?
Index(
    "ix_notifications_order",
    notifications.c.alert_id,
    notifications.c.status,
    notifications.c.created_at,
)

rejections = Table(
    "rejections",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("topic", String(255), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("code", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    UniqueConstraint("topic", "partition", "offset"),
)

# Durable timers (escalation steps, acknowledgment reminders, status-update cadence, receipt
# checks): fired at most once, in the transaction that selects them. The occurrence is the
# fencing token: a timer of an earlier occurrence never acts on a newer one.
timers = Table(
    "timers",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("alert_id", String(32), nullable=False),
    Column("occurrence", Integer, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("step", Integer, nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Column("event_key", String(32), nullable=False),
    Column("plan_id", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("fired_at", UTCDateTime),
    Column("outcome", String(16)),
)
Index("ix_timers_due", timers.c.state, timers.c.due_at)
Index("ix_timers_alert_id", timers.c.alert_id, timers.c.occurrence)

# Frozen plans (escalation policies resolved to people, receipt checks), stored once under a
# hash of their content: thousands of timers share a handful of plans.
plans = Table(
    "plans",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("body", JSON, nullable=False),
)

# Recipients of policy notices who must confirm receipt, and when (and how) they did.
receipts = Table(
    "receipts",
    metadata,
    Column("notification_id", String(32), primary_key=True),
    Column("alert_id", String(32), nullable=False),
    Column("occurrence", Integer, nullable=False),
    Column("person_id", String(64), nullable=False),
    Column("tier", String(64), nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("deadline_at", UTCDateTime, nullable=False),
    Column("confirmed_at", UTCDateTime),
    Column("confirmed_via", String(32)),
)
Index("ix_receipts_alert_id", receipts.c.alert_id, receipts.c.occurrence)

# Acknowledgment links are single-use: a link's nonce is recorded when it is used.
used_links = Table(
    "used_links",
    metadata,
    Column("nonce", String(64), primary_key=True),
    Column("alert_id", String(32), nullable=False),
    Column("person_id", String(64), nullable=False),
    Column("used_at", UTCDateTime, nullable=False),
)

# Silences and maintenance windows: alerts whose labels match every matcher between
# starts_at and ends_at are tracked but not notified. Expiring one early sets expired_at.
silences = Table(
    "silences",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("matchers", JSON, nullable=False),
    Column("starts_at", UTCDateTime, nullable=False),
    Column("ends_at", UTCDateTime, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("comment", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expired_at", UTCDateTime),
    Column("expired_by", String(64)),
)
Index("ix_silences_ends_at", silences.c.ends_at)

# Why an alert occurrence is not being notified (a silence, or an inhibiting alert), from
# when, and how it ended: released (its notifications went out then) or lapsed (the alert
# resolved while held, so nothing was ever sent).
holds = Table(
    "holds",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_id", String(32), nullable=False),
    Column("occurrence", Integer, nullable=False),
    Column("cause", String(16), nullable=False),
    Column("cause_id", String(64), nullable=False),
    Column("detail", Text, nullable=False),
    Column("held_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),
    Column("outcome", String(16)),
)
Index("ix_holds_alert_id", holds.c.alert_id, holds.c.occurrence)
Index("ix_holds_open", holds.c.ended_at, holds.c.cause)

# Append-only record of what people did: silences, template and translation edits and
# approvals, acknowledgments and resolutions, sign-ins. Never updated or deleted by the engine.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", String(128), nullable=False),
    Column("details", JSON),
)
Index("ix_audit_log_at", audit_log.c.at)

# Rate-limit buckets (GCRA: one theoretical arrival time per contact address, channel and
# lane: "normal" for the channel's limit, "critical" for the ceiling critical alerts may use).
# Keyed by address, so a Slack channel or webhook endpoint several people reach shares one.
pacing = Table(
    "pacing",
    metadata,
    Column("recipient", String(320), primary_key=True),
    Column("channel", String(16), primary_key=True),
    Column("lane", String(16), primary_key=True),
    Column("tat", UTCDateTime, nullable=False),
)

# Digests being collected: per recipient and channel, one per group (grouped) or one for
# throttled and one for quiet-hours messages. ``notification_id`` is the digest notification
# (kind "digest:<id>") that members join until it is due; ``last_flush_at`` paces a group.
bundles = Table(
    "bundles",
    metadata,
    Column("key", String(32), primary_key=True),
    Column("person_id", String(64), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("reason", String(16), nullable=False),
    Column("labels", JSON),
    Column("notification_id", String(32)),
    Column("due_at", UTCDateTime),
    Column("last_flush_at", UTCDateTime),
    Column("repeats", Integer),
)

# The template library: every version of every template unit (a template folder, or
# "shared" for the top-level macro files) and of every locale's catalog (kind "catalog"),
# with its files ({path: source}). Drafts change until approved; an approved version never
# changes again. Approval is four-eyes and names the exact content hash that was reviewed.
library_versions = Table(
    "library_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("name", String(64), nullable=False),
    Column("number", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("files", JSON, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("based_on", Integer),
    Column("author", String(64), nullable=False),
    Column("note", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("approved_by", String(64)),
    Column("approved_at", UTCDateTime),
    UniqueConstraint("kind", "name", "number"),
)

# The version of each unit the engine renders now: an approved one (a rollback points it at
# an older approved version again).
library_live = Table(
    "library_live",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("version_id", Integer, nullable=False),
    Column("since", UTCDateTime, nullable=False),
    Column("by", String(64), nullable=False),
)

# Console sessions ended before their time (signed out): the session cookie is stateless and
# stays valid until it expires, so a copy of it must be refused after sign-out. Keyed by a
# hash of the session's secret; rows are purged once the session would have expired anyway.
revoked_sessions = Table(
    "revoked_sessions",
    metadata,
    Column("session_hash", String(64), primary_key=True),
    Column("person_id", String(64), nullable=False),
    Column("revoked_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)
Index("ix_revoked_sessions_expires_at", revoked_sessions.c.expires_at)
