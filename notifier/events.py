"""Event models: the fixed contract of DESIGN.md as pydantic models, and the keys derived from them.

``notifier.alert.v1`` carries :class:`AlertData`, ``notifier.policy.changed.v1`` carries
:class:`PolicyData`; :class:`Event` is the validated form every input becomes (see
:mod:`notifier.decoding` for how bytes get there).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from notifier.errors import RejectedInput, RejectionCode

ALERT_TYPE = "notifier.alert.v1"
POLICY_TYPE = "notifier.policy.changed.v1"
EVENT_TYPES = (ALERT_TYPE, POLICY_TYPE)

Header = tuple[str, bytes]
M = TypeVar("M", bound=BaseModel)


class Severity(StrEnum):
    """How urgent an alert is, most urgent first."""

    CRITICAL = "critical"
    HIGH = "high"
    WARNING = "warning"
    INFO = "info"


class Risk(StrEnum):
    """How much is at stake if nobody acts."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class PolicyChange(StrEnum):
    """What happened to a policy."""

    ENACTED = "enacted"
    AMENDED = "amended"
    EMERGENCY_UPGRADE = "emergency_upgrade"
    HOT_PATCH = "hot_patch"
    ROLLBACK = "rollback"
    REVOKED = "revoked"


# A policy notice has no severity of its own; its risk decides how loudly it is announced.
RISK_SEVERITY = {
    Risk.CRITICAL: Severity.CRITICAL,
    Risk.HIGH: Severity.HIGH,
    Risk.MEDIUM: Severity.WARNING,
    Risk.LOW: Severity.INFO,
}

NonEmpty = Annotated[str, Field(min_length=1, max_length=1024)]


class Annotations(BaseModel):
    """Human text attached to an alert."""

    model_config = ConfigDict(extra="allow", frozen=True)

    summary: Annotated[str, Field(min_length=1, max_length=4096)]
    description: Annotated[str, Field(max_length=65536)] | None = None
    runbook_url: Annotated[str, Field(max_length=2048)] | None = None


class AlertData(BaseModel):
    """``data`` of a ``notifier.alert.v1`` event."""

    model_config = ConfigDict(extra="allow", frozen=True)

    status: Literal["firing", "resolved"]
    alertname: NonEmpty
    severity: Severity
    risk: Risk | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: Annotations
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    fingerprint: Annotated[str, Field(min_length=1, max_length=128)] | None = None

    @field_validator("labels")
    @classmethod
    def _bounded_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        if len(labels) > 64:
            raise ValueError("at most 64 labels")
        return labels

    def derived_fingerprint(self) -> str:
        """Return the fingerprint: the given one, else a hash of alertname and sorted labels."""
        if self.fingerprint:
            return self.fingerprint
        return label_fingerprint(self.alertname, self.labels)


class PolicyData(BaseModel):
    """``data`` of a ``notifier.policy.changed.v1`` event."""

    model_config = ConfigDict(extra="allow", frozen=True)

    policy_id: NonEmpty
    version: NonEmpty
    change: PolicyChange
    risk: Risk
    title: Annotated[str, Field(min_length=1, max_length=1024)]
    summary: Annotated[str, Field(min_length=1, max_length=65536)]
    effective_at: datetime
    authorized_by: NonEmpty
    affected: list[str] = Field(default_factory=list)
    action_items: list[str] = Field(default_factory=list)
    rollback_plan: str | None = None
    confidential: dict[str, Any] | None = None

    def derived_fingerprint(self) -> str:
        """One notice per policy version and change: repeats of it are the same alert."""
        return label_fingerprint(
            "policy", {"policy_id": self.policy_id, "version": self.version, "change": self.change}
        )


class CloudEvent(BaseModel):
    """The CloudEvents 1.0 envelope (structured mode); unknown extension attributes are kept."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"]
    id: NonEmpty
    source: NonEmpty
    type: str
    time: datetime | None = None
    datacontenttype: str | None = None
    subject: str | None = None
    data: Any = None


class Event(BaseModel):
    """A validated event, whatever form it arrived in."""

    model_config = ConfigDict(frozen=True)

    id: str
    source: str
    type: str
    time: datetime | None
    data: AlertData | PolicyData

    @property
    def key(self) -> tuple[str, str]:
        """The CloudEvents identity: two events with the same source and id are duplicates."""
        return (self.source, self.id)

    @cached_property
    def dedup_key(self) -> str:
        """A 32-hex-digit hash of source + id: the key duplicates are recognised by."""
        return dedup_key(self.source, self.id)

    @cached_property
    def fingerprint(self) -> str:
        """The correlation key: events with the same fingerprint update one alert."""
        return self.data.derived_fingerprint()

    @property
    def severity(self) -> Severity:
        """The alert's severity, or the one a policy notice's risk implies."""
        if isinstance(self.data, AlertData):
            return self.data.severity
        return RISK_SEVERITY[self.data.risk]

    @property
    def risk(self) -> Risk | None:
        """The risk, if the event states one."""
        return self.data.risk

    @property
    def labels(self) -> dict[str, str]:
        """Labels that routing matchers see (policy notices expose policy_id and change)."""
        if isinstance(self.data, AlertData):
            return {"alertname": self.data.alertname, **self.data.labels}
        return {"policy_id": self.data.policy_id, "change": self.data.change.value}

    def to_cloudevent(self) -> dict[str, Any]:
        """Return the event as a structured-mode CloudEvent (JSON-ready)."""
        return {
            "specversion": "1.0",
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time.isoformat() if self.time else None,
            "datacontenttype": "application/json",
            "data": self.data.model_dump(mode="json", exclude_none=True),
        }

    def to_json(self) -> bytes:
        """Serialize as a structured-mode CloudEvent."""
        return orjson.dumps(self.to_cloudevent())


def dedup_key(source: str, event_id: str) -> str:
    """Hash a CloudEvent's source and id into the 32-hex-digit key the store dedupes on."""
    return hashlib.blake2b(f"{source}\x00{event_id}".encode(), digest_size=16).hexdigest()


def label_fingerprint(name: str, labels: Mapping[str, str]) -> str:
    """Hash a name and a label set into a stable 16-hex-digit fingerprint (order-independent)."""
    # 0xff and 0xfe never occur in UTF-8, so label text cannot imitate a separator (as it could
    # with NUL) and two different label sets cannot hash the same bytes.
    h = hashlib.blake2b(digest_size=8)
    h.update(name.encode())
    for key in sorted(labels):
        h.update(b"\xff")
        h.update(key.encode())
        h.update(b"\xfe")
        h.update(labels[key].encode())
    return h.hexdigest()


def validate_model(model: type[M], payload: Any, prefix: str) -> M:
    """Validate ``payload``; RejectedInput(schema) names up to five offending fields."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        parts = []
        for err in errors[:5]:
            loc = prefix + ".".join(str(p) for p in err["loc"])
            parts.append(f"{loc.rstrip('.') or '(root)'}: {err['msg']}")
        if len(errors) > 5:
            parts.append(f"and {len(errors) - 5} more")
        raise RejectedInput(RejectionCode.SCHEMA, "; ".join(parts)) from None
