"""Decoding: Kafka record bytes and headers in, validated events out.

Accepted inputs (the fixed contract in DESIGN.md):

* CloudEvents 1.0 in structured JSON mode, of type ``notifier.alert.v1`` or
  ``notifier.policy.changed.v1``;
* CloudEvents 1.0 in Kafka binary mode: attributes in ``ce_*`` headers, ``data`` as the value;
* Prometheus Alertmanager webhook payloads (``"version": "4"``), each alert becoming one
  ``notifier.alert.v1`` event (:mod:`notifier.alertmanager`).

Everything else raises :class:`~notifier.errors.RejectedInput` with a code and a detail that
names the offending field, so the record can go to the dead-letter topic with a reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Literal

import orjson
from pydantic import Field, TypeAdapter, ValidationError

from notifier.alertmanager import alertmanager_events
from notifier.errors import RejectedInput, RejectionCode
from notifier.events import (
    ALERT_TYPE,
    EVENT_TYPES,
    AlertData,
    CloudEvent,
    Event,
    Header,
    PolicyData,
    validate_model,
)


class _AlertEnvelope(CloudEvent):
    type: Literal["notifier.alert.v1"]
    data: AlertData


class _PolicyEnvelope(CloudEvent):
    type: Literal["notifier.policy.changed.v1"]
    data: PolicyData


_ENVELOPES: TypeAdapter[_AlertEnvelope | _PolicyEnvelope] = TypeAdapter(
    Annotated[_AlertEnvelope | _PolicyEnvelope, Field(discriminator="type")]
)


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
    envelope = validate_model(CloudEvent, body, "")
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
    data = validate_model(model, envelope.data, "data.")
    return Event(
        id=envelope.id, source=envelope.source, type=envelope.type, time=envelope.time, data=data
    )
