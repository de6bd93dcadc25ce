"""Event decoding: CloudEvents (structured and binary), Alertmanager webhooks, rejections."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from notifier.broker import records_for, split_documents
from notifier.decoding import decode_record
from notifier.errors import RejectedInput, RejectionCode
from notifier.events import (
    ALERT_TYPE,
    POLICY_TYPE,
    AlertData,
    Event,
    PolicyChange,
    PolicyData,
    Risk,
    Severity,
    label_fingerprint,
)

SAMPLES = Path(__file__).resolve().parent.parent / "config" / "samples"
SAMPLE_FILES = sorted(p.name for p in SAMPLES.glob("*.json"))


def sample(name: str) -> dict[str, Any]:
    """Return a sample document as a fresh dict."""
    loaded: dict[str, Any] = orjson.loads((SAMPLES / name).read_bytes())
    return loaded


def encode(body: object) -> bytes:
    """Serialize a document as a Kafka record value."""
    return orjson.dumps(body)


def decode_one(body: object, headers: list[tuple[str, bytes]] | None = None) -> Event:
    """Decode a document that must yield exactly one event."""
    events = decode_record(encode(body), headers or [])
    assert len(events) == 1
    return events[0]


def rejection(value: bytes | None, headers: list[tuple[str, bytes]] | None = None) -> RejectedInput:
    """Decode a record that must be rejected, and return the rejection."""
    with pytest.raises(RejectedInput) as info:
        decode_record(value, headers or [])
    return info.value


def alert_ce(**data_overrides: Any) -> dict[str, Any]:
    """A valid structured alert CloudEvent, with some data fields replaced."""
    body = sample("alert-firing.json")
    body["data"].update(data_overrides)
    return body


def am_alert(**overrides: Any) -> dict[str, Any]:
    """One alert of the sample Alertmanager webhook, with some fields replaced."""
    alert: dict[str, Any] = copy.deepcopy(sample("alertmanager-webhook.json")["alerts"][0])
    alert.update(overrides)
    return alert


def am_payload(*alerts: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """The sample Alertmanager webhook carrying the given alerts."""
    body = sample("alertmanager-webhook.json")
    body["alerts"] = list(alerts)
    body.update(overrides)
    return body


# --- the shipped samples ---------------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_every_sample_decodes_to_known_event_types(name: str) -> None:
    """Each shipped sample decodes into at least one event of a contract type."""
    events = decode_record((SAMPLES / name).read_bytes())
    assert events
    assert {e.type for e in events} <= {ALERT_TYPE, POLICY_TYPE}


def test_samples_folder_is_not_empty() -> None:
    """The parametrized sample test really runs over the five shipped samples."""
    assert len(SAMPLE_FILES) == 5


def test_structured_alert_sample_fields() -> None:
    """The firing alert sample keeps its envelope and every data field."""
    event = decode_one(sample("alert-firing.json"))
    assert event.id == "9b1f7c2e-4c1a-4e55-9a52-0d6f3c1a7e01"
    assert event.source == "monitoring/prometheus/eu-west-1"
    assert event.type == ALERT_TYPE
    assert event.time == datetime(2026, 11, 20, 8, 14, 3, tzinfo=UTC)
    assert isinstance(event.data, AlertData)
    assert event.data.status == "firing"
    assert event.data.alertname == "ConsensusFinalityLag"
    assert event.severity is Severity.CRITICAL
    assert event.risk is Risk.HIGH
    assert event.data.labels["network"] == "mainnet"
    assert event.data.annotations.summary == "Finality lag above 4 epochs on mainnet"
    assert (
        event.data.annotations.runbook_url == "https://runbooks.example.net/consensus/finality-lag"
    )
    assert event.data.starts_at == datetime(2026, 11, 20, 8, 2, tzinfo=UTC)
    assert event.data.ends_at is None
    assert event.key == ("monitoring/prometheus/eu-west-1", "9b1f7c2e-4c1a-4e55-9a52-0d6f3c1a7e01")


def test_resolved_sample_has_end_time_and_same_fingerprint_as_firing() -> None:
    """The resolved sample carries ends_at and correlates with the firing sample."""
    firing = decode_one(sample("alert-firing.json"))
    resolved = decode_one(sample("alert-resolved.json"))
    assert isinstance(resolved.data, AlertData)
    assert resolved.data.status == "resolved"
    assert resolved.data.ends_at == datetime(2026, 11, 20, 9, 1, tzinfo=UTC)
    assert resolved.fingerprint == firing.fingerprint
    assert resolved.key != firing.key


def test_emergency_upgrade_policy_sample_fields() -> None:
    """The emergency-upgrade sample is a policy event with its confidential section intact."""
    event = decode_one(sample("policy-emergency-upgrade.json"))
    assert event.type == POLICY_TYPE
    assert isinstance(event.data, PolicyData)
    assert event.data.policy_id == "emergency-upgrade-policy"
    assert event.data.version == "3.2.0"
    assert event.data.change is PolicyChange.EMERGENCY_UPGRADE
    assert event.data.risk is Risk.CRITICAL
    assert event.data.effective_at == datetime(2026, 11, 21, 6, tzinfo=UTC)
    assert len(event.data.action_items) == 3
    assert event.data.confidential is not None
    assert "vulnerability" in event.data.confidential


def test_hot_patch_policy_sample_has_no_confidential_section() -> None:
    """A policy event without 'confidential' decodes with confidential None and no rollback."""
    event = decode_one(sample("policy-hot-patch.json"))
    assert isinstance(event.data, PolicyData)
    assert event.data.change is PolicyChange.HOT_PATCH
    assert event.data.confidential is None
    assert event.data.rollback_plan is None


# --- Alertmanager webhooks -------------------------------------------------------------------


def test_alertmanager_sample_becomes_one_alert_event() -> None:
    """The Alertmanager sample yields one alert event with its fingerprint and warning severity."""
    event = decode_one(sample("alertmanager-webhook.json"))
    assert event.type == ALERT_TYPE
    assert event.fingerprint == "dc17460e73bfdb15"
    assert event.severity is Severity.WARNING
    assert isinstance(event.data, AlertData)
    assert event.data.status == "firing"
    assert event.data.alertname == "ValidatorMissedAttestations"
    assert event.data.ends_at is None
    assert event.data.starts_at == datetime(2026, 11, 21, 22, 22, 19, tzinfo=UTC)
    assert event.time == event.data.starts_at


def test_alertmanager_labels_and_annotations_carry_over() -> None:
    """Alertmanager labels (minus alertname), annotations and generatorURL reach the event."""
    event = decode_one(sample("alertmanager-webhook.json"))
    assert isinstance(event.data, AlertData)
    assert event.data.labels == {
        "instance": "validator-07:5054",
        "network": "mainnet",
        "severity": "warning",
    }
    assert event.labels["alertname"] == "ValidatorMissedAttestations"
    assert event.data.annotations.summary.startswith("Validator 07 missed")
    assert event.data.annotations.runbook_url is not None
    assert event.data.model_extra == {
        "generator_url": "http://prometheus.example.net/graph?g0.expr=attestation_miss_ratio"
    }


def test_alertmanager_source_names_the_external_url() -> None:
    """The event source identifies the Alertmanager that sent it."""
    event = decode_one(sample("alertmanager-webhook.json"))
    assert event.source == "alertmanager/http://alertmanager.example.net:9093"


def test_alertmanager_resolved_alert_keeps_its_end_time() -> None:
    """A resolved Alertmanager alert has ends_at set and its time is the end time."""
    ended = "2026-11-21T23:00:00Z"
    event = decode_one(am_payload(am_alert(status="resolved", endsAt=ended)))
    assert isinstance(event.data, AlertData)
    assert event.data.status == "resolved"
    assert event.data.ends_at == datetime(2026, 11, 21, 23, tzinfo=UTC)
    assert event.time == event.data.ends_at


def test_alertmanager_alert_without_summary_uses_alertname() -> None:
    """An Alertmanager alert with no summary annotation gets the alertname as summary."""
    event = decode_one(am_payload(am_alert(annotations={})))
    assert isinstance(event.data, AlertData)
    assert event.data.annotations.summary == "ValidatorMissedAttestations"


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("critical", Severity.CRITICAL),
        ("page", Severity.CRITICAL),
        ("Error", Severity.HIGH),
        ("warn", Severity.WARNING),
        ("info", Severity.INFO),
        ("something-odd", Severity.WARNING),
    ],
)
def test_alertmanager_severity_label_spellings(label: str, expected: Severity) -> None:
    """Alertmanager severity labels map to the four severities; unknown ones mean warning."""
    labels = {"alertname": "Disk", "severity": label}
    event = decode_one(am_payload(am_alert(labels=labels)))
    assert event.severity is expected


def test_alertmanager_without_severity_label_is_warning() -> None:
    """An Alertmanager alert without a severity label is treated as a warning."""
    event = decode_one(am_payload(am_alert(labels={"alertname": "Disk"})))
    assert event.severity is Severity.WARNING


@pytest.mark.parametrize(("label", "expected"), [("High", Risk.HIGH), ("bogus", None)])
def test_alertmanager_risk_label(label: str, expected: Risk | None) -> None:
    """A valid risk label becomes the event's risk; an unknown one is dropped, not rejected."""
    event = decode_one(am_payload(am_alert(labels={"alertname": "Disk", "risk": label})))
    assert event.risk == expected


def test_alertmanager_payload_with_several_alerts_keeps_their_order() -> None:
    """Each alert of a webhook payload becomes its own event, in payload order."""
    first = am_alert(labels={"alertname": "A"}, fingerprint=None)
    second = am_alert(labels={"alertname": "B"}, fingerprint=None)
    events = decode_record(encode(am_payload(first, second)))
    assert [e.data.alertname for e in events if isinstance(e.data, AlertData)] == ["A", "B"]
    assert events[0].fingerprint != events[1].fingerprint


def test_alertmanager_empty_alert_list_yields_no_events() -> None:
    """A webhook payload with no alerts decodes to no events rather than an error."""
    assert decode_record(encode(am_payload())) == []


def test_alertmanager_alert_without_fingerprint_correlates_with_cloudevent() -> None:
    """Without a fingerprint, an Alertmanager alert gets the same one as the same CloudEvent."""
    labels = {"network": "mainnet", "instance": "validator-07:5054"}
    am = decode_one(am_payload(am_alert(labels={"alertname": "Down", **labels}, fingerprint=None)))
    ce = decode_one(alert_ce(alertname="Down", labels=labels))
    assert am.fingerprint == ce.fingerprint == label_fingerprint("Down", labels)


def test_alertmanager_retry_of_same_notification_has_same_event_id() -> None:
    """The same alert re-sent (another payload, same status and times) keeps its event id."""
    once = decode_one(sample("alertmanager-webhook.json"))
    other = am_alert(labels={"alertname": "Other"}, fingerprint="ffff000011112222")
    again = decode_record(encode(am_payload(other, am_alert(), groupKey="{}:{}")))[1]
    assert again.key == once.key


def test_alertmanager_firing_and_resolved_have_different_event_ids() -> None:
    """Firing and resolved notifications of one alert are different events, not duplicates."""
    firing = decode_one(am_payload(am_alert()))
    resolved = decode_one(am_payload(am_alert(status="resolved", endsAt="2026-11-21T23:00:00Z")))
    assert firing.id != resolved.id
    assert firing.fingerprint == resolved.fingerprint


def test_alertmanager_status_alone_changes_the_event_id() -> None:
    """Firing and resolved with identical times still have different event ids."""
    times = {"startsAt": "2026-11-21T22:22:19Z", "endsAt": "2026-11-21T23:00:00Z"}
    firing = decode_one(am_payload(am_alert(status="firing", **times)))
    resolved = decode_one(am_payload(am_alert(status="resolved", **times)))
    assert firing.id != resolved.id


def test_alertmanager_new_occurrence_has_a_new_event_id() -> None:
    """The same alert firing again with a later startsAt is a new event."""
    first = decode_one(am_payload(am_alert()))
    later = decode_one(am_payload(am_alert(startsAt="2026-11-22T01:00:00Z")))
    assert first.id != later.id


# --- binary mode -----------------------------------------------------------------------------


def binary_headers(body: dict[str, Any]) -> list[tuple[str, bytes]]:
    """The ce_* headers that carry a structured event's attributes in binary mode."""
    return [
        (f"ce_{name}", str(value).encode())
        for name, value in body.items()
        if name not in ("data", "datacontenttype")
    ] + [("content-type", b"application/json")]


@pytest.mark.parametrize(
    "name", ["alert-firing.json", "alert-resolved.json", "policy-emergency-upgrade.json"]
)
def test_binary_mode_equals_structured_mode(name: str) -> None:
    """Attributes in ce_ headers and data as the value give the same Event as structured mode."""
    body = sample(name)
    structured = decode_one(body)
    binary = decode_record(encode(body["data"]), binary_headers(body))
    assert binary == [structured]


def test_binary_mode_header_names_are_case_insensitive() -> None:
    """Upper-case CE_ header names are read as CloudEvent attributes too."""
    body = sample("alert-firing.json")
    headers = [(name.upper(), value) for name, value in binary_headers(body)]
    assert decode_record(encode(body["data"]), headers) == [decode_one(body)]


def test_binary_mode_rejects_header_that_is_not_utf8() -> None:
    """A ce_ header whose value is not UTF-8 is rejected, naming the header."""
    body = sample("alert-firing.json")
    headers = [*binary_headers(body), ("ce_subject", b"\xff\xfe")]
    err = rejection(encode(body["data"]), headers)
    assert err.code is RejectionCode.SCHEMA
    assert "ce_subject" in err.detail


def test_binary_mode_without_id_header_names_id() -> None:
    """A binary-mode record missing ce_id is rejected with a detail naming 'id'."""
    body = sample("alert-firing.json")
    headers = [(n, v) for n, v in binary_headers(body) if n != "ce_id"]
    err = rejection(encode(body["data"]), headers)
    assert err.code is RejectionCode.SCHEMA
    assert err.detail.startswith("id:")


def test_binary_mode_with_bad_data_names_the_data_field() -> None:
    """Binary-mode data is validated like structured data, naming data.<field>."""
    body = sample("alert-firing.json")
    data = {k: v for k, v in body["data"].items() if k != "alertname"}
    err = rejection(encode(data), binary_headers(body))
    assert "data.alertname" in err.detail


# --- rejections ------------------------------------------------------------------------------


def test_not_json_is_rejected() -> None:
    """A value that is not JSON is rejected as not_json."""
    err = rejection(b"{not json")
    assert err.code is RejectionCode.NOT_JSON
    assert "not JSON" in err.detail


@pytest.mark.parametrize("value", [None, b"", b"  \n\t "])
def test_empty_value_is_rejected(value: bytes | None) -> None:
    """A missing, empty or blank value is rejected as empty."""
    assert rejection(value).code is RejectionCode.EMPTY


def test_oversized_value_is_rejected_with_both_sizes() -> None:
    """A value above max_bytes is rejected as oversized, stating its size and the limit."""
    value = encode(sample("alert-firing.json"))
    with pytest.raises(RejectedInput) as info:
        decode_record(value, max_bytes=len(value) - 1)
    assert info.value.code is RejectionCode.OVERSIZED
    assert str(len(value)) in info.value.detail
    assert str(len(value) - 1) in info.value.detail


def test_value_of_exactly_max_bytes_is_accepted() -> None:
    """The size limit is inclusive: a value of exactly max_bytes decodes."""
    value = encode(sample("alert-firing.json"))
    assert len(decode_record(value, max_bytes=len(value))) == 1


@pytest.mark.parametrize("version", ["0.3", "2.0", 1.0])
def test_wrong_specversion_is_rejected_as_unsupported(version: object) -> None:
    """A CloudEvent of another spec version is rejected as unsupported_spec naming specversion."""
    body = sample("alert-firing.json")
    body["specversion"] = version
    err = rejection(encode(body))
    assert err.code is RejectionCode.UNSUPPORTED_SPEC
    assert "specversion" in err.detail


def test_unknown_type_is_rejected_naming_the_type() -> None:
    """A CloudEvent of a type outside the contract is rejected as unknown_type."""
    body = sample("alert-firing.json")
    body["type"] = "com.example.other.v1"
    err = rejection(encode(body))
    assert err.code is RejectionCode.UNKNOWN_TYPE
    assert "com.example.other.v1" in err.detail


@pytest.mark.parametrize("data", ["absent", None])
def test_missing_data_is_rejected(data: str | None) -> None:
    """A CloudEvent without data (absent or null) is rejected naming 'data'."""
    body = sample("alert-firing.json")
    if data == "absent":
        del body["data"]
    else:
        body["data"] = None
    err = rejection(encode(body))
    assert err.code is RejectionCode.SCHEMA
    assert err.detail.startswith("data:")


@pytest.mark.parametrize("field", ["id", "source", "type"])
def test_missing_envelope_attribute_is_named(field: str) -> None:
    """A CloudEvent missing a required attribute is rejected naming that attribute."""
    body = sample("alert-firing.json")
    del body[field]
    err = rejection(encode(body))
    assert err.code is RejectionCode.SCHEMA
    assert f"{field}: Field required" in err.detail


@pytest.mark.parametrize("field", ["status", "alertname", "severity", "annotations"])
def test_missing_alert_field_is_named(field: str) -> None:
    """An alert event missing a required data field is rejected naming data.<field>."""
    body = sample("alert-firing.json")
    del body["data"][field]
    err = rejection(encode(body))
    assert err.code is RejectionCode.SCHEMA
    assert f"data.{field}: Field required" in err.detail


@pytest.mark.parametrize(
    ("overrides", "location"),
    [
        ({"severity": "urgent"}, "data.severity:"),
        ({"status": "open"}, "data.status:"),
        ({"risk": "extreme"}, "data.risk:"),
        ({"alertname": ""}, "data.alertname:"),
        ({"labels": {"network": 1}}, "data.labels.network:"),
        ({"labels": ["network=mainnet"]}, "data.labels:"),
        ({"annotations": {"description": "no summary"}}, "data.annotations.summary:"),
        ({"starts_at": "yesterday"}, "data.starts_at:"),
    ],
)
def test_ill_typed_alert_field_is_named(overrides: dict[str, Any], location: str) -> None:
    """An alert event with an ill-typed data field is rejected naming that field's path."""
    err = rejection(encode(alert_ce(**overrides)))
    assert err.code is RejectionCode.SCHEMA
    assert location in err.detail


def test_too_many_labels_are_rejected() -> None:
    """An alert with more than 64 labels is rejected naming data.labels."""
    labels = {f"l{i}": "v" for i in range(65)}
    err = rejection(encode(alert_ce(labels=labels)))
    assert "data.labels" in err.detail
    assert "64" in err.detail


@pytest.mark.parametrize(
    ("overrides", "location"),
    [
        ({"change": "deleted"}, "data.change:"),
        ({"risk": None}, "data.risk:"),
        ({"effective_at": "soon"}, "data.effective_at:"),
        ({"affected": "everyone"}, "data.affected:"),
    ],
)
def test_ill_typed_policy_field_is_named(overrides: dict[str, Any], location: str) -> None:
    """A policy event with an ill-typed data field is rejected naming that field's path."""
    body = sample("policy-emergency-upgrade.json")
    body["data"].update(overrides)
    err = rejection(encode(body))
    assert err.code is RejectionCode.SCHEMA
    assert location in err.detail


def test_many_errors_are_summarized() -> None:
    """With more than five problems the detail lists five and counts the rest."""
    body = sample("policy-emergency-upgrade.json")
    body["data"] = {"unrelated": True}
    err = rejection(encode(body))
    assert err.detail.count("Field required") == 5
    assert err.detail.endswith("and 3 more")


@pytest.mark.parametrize(
    ("value", "kind"), [(b"[1, 2]", "array"), (b"42", "int"), (b'"text"', "str")]
)
def test_top_level_non_object_is_rejected(value: bytes, kind: str) -> None:
    """A JSON array or scalar at top level is rejected, saying what it got."""
    err = rejection(value)
    assert err.code is RejectionCode.SCHEMA
    assert err.detail == f"expected a JSON object, got {kind}"


def test_object_that_is_neither_format_is_rejected() -> None:
    """A JSON object that is neither a CloudEvent nor a webhook payload is rejected."""
    err = rejection(b'{"hello": "world"}')
    assert err.code is RejectionCode.SCHEMA
    assert "specversion" in err.detail
    assert "alerts" in err.detail


def test_alertmanager_alert_without_alertname_is_rejected_with_its_index() -> None:
    """An Alertmanager alert without alertname is rejected naming alerts.<i>.labels.alertname."""
    good = am_alert()
    nameless = am_alert(labels={"instance": "x"})
    err = rejection(encode(am_payload(good, nameless)))
    assert err.code is RejectionCode.SCHEMA
    assert err.detail == "alerts.1.labels.alertname: missing"


@pytest.mark.parametrize(
    ("payload", "location"),
    [
        (am_payload(am_alert(), version="3"), "version:"),
        (am_payload(am_alert(status="pending")), "alerts.0.status:"),
        (am_payload(am_alert(labels={"alertname": "A", "n": 1})), "alerts.0.labels.n:"),
        (am_payload(am_alert(startsAt="not a time")), "alerts.0.startsAt:"),
    ],
)
def test_bad_alertmanager_payload_names_the_field(payload: dict[str, Any], location: str) -> None:
    """A malformed Alertmanager payload is rejected naming the offending field."""
    err = rejection(encode(payload))
    assert err.code is RejectionCode.SCHEMA
    assert location in err.detail


def test_rejection_message_starts_with_the_code() -> None:
    """str(RejectedInput) is 'code: detail', as the dead-letter reason."""
    err = rejection(b"[]")
    assert str(err) == "schema: expected a JSON object, got array"


# --- extra fields ----------------------------------------------------------------------------


def test_extra_fields_are_kept_not_rejected() -> None:
    """Unknown envelope, data and annotation fields are accepted and data extras are kept."""
    body = alert_ce(team_channel="#validators", annotations={"summary": "s", "dashboard": "d1"})
    body["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    event = decode_one(body)
    assert isinstance(event.data, AlertData)
    assert event.data.model_extra == {"team_channel": "#validators"}
    assert event.data.annotations.model_extra == {"dashboard": "d1"}


def test_policy_extra_fields_are_kept() -> None:
    """Unknown policy data fields survive decoding."""
    body = sample("policy-hot-patch.json")
    body["data"]["ticket"] = "SEC-42"
    event = decode_one(body)
    assert event.data.model_extra == {"ticket": "SEC-42"}


# --- fingerprints ----------------------------------------------------------------------------

label_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
label_dicts = st.dictionaries(label_names, st.text(max_size=12), max_size=8)


@given(labels=label_dicts, data=st.data())
def test_fingerprint_ignores_label_order(labels: dict[str, str], data: st.DataObject) -> None:
    """Same alertname and labels in any insertion order give the same fingerprint."""
    shuffled_keys = data.draw(st.permutations(list(labels)))
    reordered = {key: labels[key] for key in shuffled_keys}
    first = decode_one(alert_ce(alertname="Lag", labels=labels))
    second = decode_one(alert_ce(alertname="Lag", labels=reordered))
    assert first.fingerprint == second.fingerprint


@given(a=label_dicts, b=label_dicts)
def test_different_labels_give_different_fingerprints(a: dict[str, str], b: dict[str, str]) -> None:
    """Different label sets under one alertname give different fingerprints."""
    assume(a != b)
    assert label_fingerprint("Lag", a) != label_fingerprint("Lag", b)


@given(name=st.text(min_size=1, max_size=10), labels=label_dicts)
def test_fingerprint_is_sixteen_hex_digits(name: str, labels: dict[str, str]) -> None:
    """A derived fingerprint is always 16 lowercase hex digits."""
    fingerprint = label_fingerprint(name, labels)
    assert len(fingerprint) == 16
    assert set(fingerprint) <= set("0123456789abcdef")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({"a": "b\x00c\x01d"}, {"a": "b", "c": "d"}),
        ({"ab": ""}, {"a": "b"}),
        ({"a": "\x00b\x01"}, {"a": "", "b": ""}),
    ],
)
def test_label_boundaries_cannot_be_forged(a: dict[str, str], b: dict[str, str]) -> None:
    """Label text cannot imitate label separators and collide with another label set."""
    assert label_fingerprint("X", a) != label_fingerprint("X", b)


def test_alertname_is_part_of_the_fingerprint() -> None:
    """Two alerts with the same labels but different names have different fingerprints."""
    labels = {"network": "mainnet"}
    assert label_fingerprint("Lag", labels) != label_fingerprint("Down", labels)
    assert label_fingerprint("ab", {}) != label_fingerprint("a", {"b": ""})


def test_explicit_fingerprint_wins() -> None:
    """A fingerprint given in the data is used instead of the derived one."""
    event = decode_one(alert_ce(fingerprint="my-own-key"))
    assert event.fingerprint == "my-own-key"


def test_derived_fingerprint_matches_label_fingerprint() -> None:
    """Without a fingerprint, the event's fingerprint hashes alertname and labels."""
    body = sample("alert-firing.json")
    event = decode_one(body)
    assert event.fingerprint == label_fingerprint(body["data"]["alertname"], body["data"]["labels"])


# --- policy events ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("risk", "severity"),
    [
        ("critical", Severity.CRITICAL),
        ("high", Severity.HIGH),
        ("medium", Severity.WARNING),
        ("low", Severity.INFO),
    ],
)
def test_policy_severity_derives_from_risk(risk: str, severity: Severity) -> None:
    """A policy notice's severity is the one its risk implies."""
    body = sample("policy-hot-patch.json")
    body["data"]["risk"] = risk
    event = decode_one(body)
    assert event.severity is severity
    assert event.risk == Risk(risk)


def test_policy_labels_expose_policy_id_and_change() -> None:
    """Routing sees a policy event's policy_id and change as labels, and nothing else."""
    event = decode_one(sample("policy-emergency-upgrade.json"))
    assert event.labels == {"policy_id": "emergency-upgrade-policy", "change": "emergency_upgrade"}


def test_alert_labels_include_alertname() -> None:
    """Routing sees an alert's alertname as a label next to its own labels."""
    event = decode_one(sample("alert-firing.json"))
    assert event.labels["alertname"] == "ConsensusFinalityLag"
    assert event.labels["client"] == "lighthouse"


def test_policy_fingerprint_is_per_version_and_change() -> None:
    """Re-sends of one policy version+change share a fingerprint; another version does not."""
    body = sample("policy-emergency-upgrade.json")
    first = decode_one(body)
    body["id"] = "another-id"
    body["data"]["title"] = "Reworded title"
    resend = decode_one(body)
    body["data"]["version"] = "3.2.1"
    newer = decode_one(body)
    assert first.fingerprint == resend.fingerprint
    assert newer.fingerprint != first.fingerprint


# --- serialization ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_to_json_round_trips(name: str) -> None:
    """Event.to_json() decodes back to an equal Event."""
    for event in decode_record((SAMPLES / name).read_bytes()):
        assert decode_record(event.to_json()) == [event]


def test_to_json_round_trips_extras_and_missing_time() -> None:
    """Round-tripping keeps data extras and an absent time."""
    body = alert_ce(team_channel="#validators")
    del body["time"]
    event = decode_one(body)
    assert event.time is None
    assert decode_record(event.to_json()) == [event]


def test_to_json_is_a_structured_cloudevent() -> None:
    """to_json() writes specversion 1.0 and a JSON content type."""
    body = orjson.loads(decode_one(sample("alertmanager-webhook.json")).to_json())
    assert body["specversion"] == "1.0"
    assert body["datacontenttype"] == "application/json"
    assert body["data"]["fingerprint"] == "dc17460e73bfdb15"


# --- broker helpers --------------------------------------------------------------------------


def test_split_single_object() -> None:
    """One compact JSON object is one document."""
    raw = encode(sample("alert-firing.json"))
    assert split_documents(raw + b"\n") == [raw]


def test_split_pretty_printed_object() -> None:
    """A pretty-printed object spanning many lines stays one document."""
    raw = (SAMPLES / "alert-firing.json").read_bytes()
    documents = split_documents(raw)
    assert len(documents) == 1
    assert orjson.loads(documents[0]) == sample("alert-firing.json")


def test_split_pretty_printed_object_with_one_line_members() -> None:
    """A pretty-printed object whose lines all look like objects is still one document."""
    raw = b'{"a": 1,\n"b": {"c": 2}}'
    assert split_documents(raw) == [raw]


def test_split_json_array() -> None:
    """A JSON array is split into one document per element, in order."""
    items = [sample("alert-firing.json"), sample("policy-hot-patch.json")]
    documents = split_documents(orjson.dumps(items, option=orjson.OPT_INDENT_2))
    assert [orjson.loads(d) for d in documents] == items


def test_split_json_lines() -> None:
    """JSON lines are split into one document per non-blank line, byte-for-byte."""
    first = encode(sample("alert-firing.json"))
    second = encode(sample("alert-resolved.json"))
    assert split_documents(first + b"\n\n" + second + b"\n") == [first, second]


def test_split_invalid_array_is_kept_whole() -> None:
    """An array that is not valid JSON is one document, left for decoding to reject."""
    assert split_documents(b"[1, 2") == [b"[1, 2"]


def test_records_for_cloudevent_passes_through_keyed_by_fingerprint() -> None:
    """A CloudEvent document is produced byte-for-byte, keyed by its fingerprint."""
    raw = (SAMPLES / "alert-firing.json").read_bytes()
    [(key, value)] = records_for(raw, max_bytes=1_048_576)
    assert value == raw
    assert key == decode_one(sample("alert-firing.json")).fingerprint.encode()


def test_records_for_splits_alertmanager_payload() -> None:
    """An Alertmanager payload becomes one CloudEvent record per alert, keyed by fingerprint."""
    payload = am_payload(am_alert(), am_alert(labels={"alertname": "B"}, fingerprint="b" * 16))
    records = records_for(encode(payload), max_bytes=1_048_576)
    assert [key for key, _ in records] == [b"dc17460e73bfdb15", b"b" * 16]
    decoded = [decode_record(value)[0] for _, value in records]
    assert decoded == decode_record(encode(payload))
    assert all(orjson.loads(value)["specversion"] == "1.0" for _, value in records)


def test_records_for_single_alert_payload_mentioning_specversion_is_split() -> None:
    """A one-alert webhook whose text mentions 'specversion' is still turned into a CloudEvent."""
    alert = am_alert(annotations={"summary": "events with a bad specversion seen"})
    [(_, value)] = records_for(encode(am_payload(alert)), max_bytes=1_048_576)
    assert orjson.loads(value)["type"] == ALERT_TYPE


def test_records_for_rejects_like_the_consumer() -> None:
    """records_for raises the same rejection the consumer would."""
    with pytest.raises(RejectedInput) as info:
        records_for(b"{not json", max_bytes=1_048_576)
    assert info.value.code is RejectionCode.NOT_JSON
