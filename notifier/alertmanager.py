"""Prometheus Alertmanager webhook payloads (version 4) as ``notifier.alert.v1`` events."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from notifier.errors import RejectedInput, RejectionCode
from notifier.events import (
    ALERT_TYPE,
    AlertData,
    Event,
    Risk,
    Severity,
    label_fingerprint,
    validate_model,
)

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
    payload = validate_model(_AmPayload, body, "")
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
        data = validate_model(AlertData, raw, f"alerts.{index}.")
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
