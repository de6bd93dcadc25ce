"""Event models and decoding: Kafka record bytes and headers in, validated events out.

Accepted inputs (the fixed contract in DESIGN.md):

* CloudEvents 1.0 in structured JSON mode, of type ``notifier.alert.v1`` or
  ``notifier.policy.changed.v1``;
* CloudEvents 1.0 in Kafka binary mode: attributes in ``ce_*`` headers, ``data`` as the value;
* Prometheus Alertmanager webhook payloads (``"version": "4"``), each alert becoming one
  ``notifier.alert.v1`` event.

Everything else raises :class:`~notifier.errors.RejectedInput` with a code and a detail that
names the offending field, so the record can go to the dead-letter topic with a reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

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

# Alertmanager's severity label is free text; these are the spellings seen in the wild.
_SEVERITY_ALIASES = {
    "critical": Severity.CRITICAL,
    "page": Severity.CRITICAL,
    "emergency": Severity.CRITICAL,
    "high": Severity.HIGH,
    "error": Severity.HIGH,
    "major": Severity.HIGH,
    "warning": Severity.WARNING,
    "warn": Severity.WARNING,
    "minor": Severity.WARNING,
    "medium": Severity.WARNING,
    "low": Severity.INFO,
    "info": Severity.INFO,
    "informational": Severity.INFO,
    "none": Severity.INFO,
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


class _AlertEnvelope(CloudEvent):
    type: Literal["notifier.alert.v1"]
    data: AlertData


class _PolicyEnvelope(CloudEvent):
    type: Literal["notifier.policy.changed.v1"]
    data: PolicyData


_ENVELOPES: TypeAdapter[_AlertEnvelope | _PolicyEnvelope] = TypeAdapter(
    Annotated[_AlertEnvelope | _PolicyEnvelope, Field(discriminator="type")]
)


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


# ---------------------------------------------------------------------------------------------
# Decoding


def decode_record(
    value: bytes | None, headers: Sequence[Header] = (), *, max_bytes: int = 1_048_576
) -> list[Event]:
    """Decode one Kafka record into events (an Alertmanager payload yields several).

    Raises RejectedInput with a code and a detail naming the offending field.
    """
    if value is None or not value.strip():
        raise RejectedInput(RejectionCode.EMPTY, "record has no value")
    if len(value) > max_bytes:
        raise RejectedInput(
            RejectionCode.OVERSIZED, f"record is {len(value)} bytes, limit is {max_bytes}"
        )
    ce_headers = _ce_headers(headers)
    if not ce_headers and b'"specversion"' in value:
        # Fast path for the common case: one pass from bytes to models. Anything it refuses
        # goes through the path below, which says precisely what is wrong.
        try:
            envelope = _ENVELOPES.validate_json(value)
        except ValidationError:
            pass
        else:
            return [
                Event(
                    id=envelope.id,
                    source=envelope.source,
                    type=envelope.type,
                    time=envelope.time,
                    data=envelope.data,
                )
            ]
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise RejectedInput(RejectionCode.NOT_JSON, f"value is not JSON: {exc}") from None
    if ce_headers:
        return [_binary_mode(ce_headers, body)]
    if not isinstance(body, dict):
        raise RejectedInput(RejectionCode.SCHEMA, f"expected a JSON object, got {_kind(body)}")
    if "specversion" in body:
        return [_structured_mode(body)]
    if "alerts" in body and "version" in body:
        return alertmanager_events(body)
    raise RejectedInput(
        RejectionCode.SCHEMA,
        "neither a CloudEvent (no 'specversion') nor an Alertmanager webhook ('version', 'alerts')",
    )


def _kind(value: object) -> str:
    return type(value).__name__.replace("dict", "object").replace("list", "array")


def _ce_headers(headers: Iterable[Header]) -> dict[str, str]:
    """Collect binary-mode CloudEvent attributes from ``ce_*`` headers (and content-type)."""
    attrs: dict[str, str] = {}
    for name, raw in headers:
        lname = name.lower()
        if lname.startswith("ce_"):
            try:
                attrs[lname[3:]] = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise RejectedInput(RejectionCode.SCHEMA, f"header {name} is not UTF-8") from None
    return attrs


def _binary_mode(attrs: dict[str, str], data: Any) -> Event:
    envelope: dict[str, Any] = dict(attrs)
    envelope["data"] = data
    return _structured_mode(envelope)


def _structured_mode(body: dict[str, Any]) -> Event:
    if "specversion" in body and body["specversion"] != "1.0":
        raise RejectedInput(
            RejectionCode.UNSUPPORTED_SPEC,
            f"specversion {body['specversion']!r} is not supported (only '1.0')",
        )
    envelope = _validate(CloudEvent, body, "")
    if envelope.type not in EVENT_TYPES:
        raise RejectedInput(
            RejectionCode.UNKNOWN_TYPE,
            f"type {envelope.type!r} is not one of {', '.join(EVENT_TYPES)}",
        )
    if envelope.data is None:
        raise RejectedInput(RejectionCode.SCHEMA, "data: field required")
    model: type[AlertData] | type[PolicyData] = (
        AlertData if envelope.type == ALERT_TYPE else PolicyData
    )
    data = _validate(model, envelope.data, "data.")
    return Event(
        id=envelope.id, source=envelope.source, type=envelope.type, time=envelope.time, data=data
    )


def _validate(model: type[M], payload: Any, prefix: str) -> M:
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


class _AmAlert(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    generatorURL: str | None = None
    fingerprint: str | None = None


class _AmPayload(BaseModel):
    model_config = ConfigDict(extra="allow")

    version: Literal["4"]
    alerts: list[_AmAlert] = Field(max_length=10_000)
    externalURL: str | None = None
    groupKey: str | None = None


# Alertmanager sends this for "no end time".
_ZERO_TIME_YEAR = 1


def alertmanager_events(body: dict[str, Any]) -> list[Event]:
    """Turn an Alertmanager webhook payload (version 4) into ``notifier.alert.v1`` events.

    The event id hashes the alert's fingerprint, status and times, so Alertmanager's own retries
    of the same notification are duplicates and have no effect.
    """
    payload = _validate(_AmPayload, body, "")
    source = f"alertmanager/{payload.externalURL or 'unknown'}"
    events = []
    for index, am in enumerate(payload.alerts):
        labels = dict(am.labels)
        alertname = labels.pop("alertname", "")
        if not alertname:
            raise RejectedInput(RejectionCode.SCHEMA, f"alerts.{index}.labels.alertname: missing")
        severity = _SEVERITY_ALIASES.get(labels.get("severity", "").lower(), Severity.WARNING)
        risk = labels.get("risk", "").lower() or None
        annotations = dict(am.annotations)
        annotations.setdefault("summary", alertname)
        ends_at = am.endsAt if am.endsAt and am.endsAt.year > _ZERO_TIME_YEAR else None
        fingerprint = am.fingerprint or label_fingerprint(alertname, labels)
        raw: dict[str, Any] = {
            "status": am.status,
            "alertname": alertname,
            "severity": severity,
            "risk": risk if risk in Risk.__members__.values() else None,
            "labels": labels,
            "annotations": annotations,
            "starts_at": am.startsAt,
            "ends_at": ends_at,
            "fingerprint": fingerprint,
        }
        if am.generatorURL:
            raw["generator_url"] = am.generatorURL
        data = _validate(AlertData, raw, f"alerts.{index}.")
        digest = hashlib.blake2b(digest_size=12)
        for part in (fingerprint, am.status, str(am.startsAt), str(ends_at)):
            digest.update(part.encode())
            digest.update(b"\x00")
        events.append(
            Event(
                id=f"am-{digest.hexdigest()}",
                source=source,
                type=ALERT_TYPE,
                time=ends_at if am.status == "resolved" else am.startsAt,
                data=data,
            )
        )
    return events
