"""Correlation: which events open, repeat, resolve or re-fire an alert, and which are duplicates."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from notifier.correlate import (
    NOTIFYING,
    AlertState,
    Correlation,
    Effect,
    Positioned,
    correlate,
    event_key,
)
from notifier.events import ALERT_TYPE, POLICY_TYPE, AlertData, Event, PolicyData

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
STARTED = datetime(2026, 11, 20, 8, 2, tzinfo=UTC)
ENDED = datetime(2026, 11, 20, 9, 1, tzinfo=UTC)
SOURCE = "monitoring/prometheus/eu-west-1"
LABELS = {"network": "mainnet", "region": "eu-west-1"}


class Ids:
    """A deterministic alert id factory: alert-1, alert-2, ..."""

    def __init__(self) -> None:
        self.issued = 0

    def __call__(self) -> str:
        self.issued += 1
        return f"alert-{self.issued}"


def alert(
    event_id: str,
    status: str = "firing",
    *,
    source: str = SOURCE,
    labels: Mapping[str, str] = LABELS,
    summary: str = "Finality lag",
    time: datetime | None = STARTED,
    **data: Any,
) -> Event:
    """An alert event for the ConsensusFinalityLag alert."""
    return Event(
        id=event_id,
        source=source,
        type=ALERT_TYPE,
        time=time,
        data=AlertData.model_validate(
            {
                "status": status,
                "alertname": "ConsensusFinalityLag",
                "severity": "critical",
                "labels": dict(labels),
                "annotations": {"summary": summary},
                **data,
            }
        ),
    )


def policy(event_id: str, version: str = "3.2.0", change: str = "emergency_upgrade") -> Event:
    """A policy-change event for the emergency-upgrade policy."""
    return Event(
        id=event_id,
        source="governance/upgrade-council",
        type=POLICY_TYPE,
        time=NOW,
        data=PolicyData.model_validate(
            {
                "policy_id": "emergency-upgrade-policy",
                "version": version,
                "change": change,
                "risk": "critical",
                "title": "Mandatory client upgrade",
                "summary": "Upgrade to 5.3.1",
                "effective_at": datetime(2026, 11, 21, 6, tzinfo=UTC),
                "authorized_by": "Upgrade Council",
            }
        ),
    )


def run(
    *events: Event,
    known: Mapping[str, AlertState] | None = None,
    seen: set[str] | None = None,
    ids: Ids | None = None,
    now: datetime = NOW,
) -> Correlation:
    """Correlate events as one batch at a fixed time with deterministic ids."""
    return correlate(
        [Positioned(e) for e in events],
        known or {},
        set() if seen is None else seen,
        now,
        ids or Ids(),
    )


def state_after(result: Correlation) -> dict[str, AlertState]:
    """The alerts a batch wrote, keyed by fingerprint, as the store would return them."""
    return {a.fingerprint: a for a in result.alerts.values()}


def effects(result: Correlation) -> list[Effect]:
    """The effect of each recorded event, in order."""
    return [r.effect for r in result.records]


# --- event keys ------------------------------------------------------------------------------


def test_event_key_is_stable_hex() -> None:
    """event_key is deterministic and 32 hex digits."""
    key = event_key("src", "id-1")
    assert key == event_key("src", "id-1")
    assert len(key) == 32
    assert set(key) <= set("0123456789abcdef")


def test_event_key_separates_source_and_id() -> None:
    """Moving characters between source and id gives a different key."""
    assert event_key("ab", "c") != event_key("a", "bc")
    assert event_key("a", "b") != event_key("b", "a")


def test_notifying_effects() -> None:
    """Only firing, resolved and notice announce something to people."""
    assert frozenset({Effect.FIRING, Effect.RESOLVED, Effect.NOTICE}) == NOTIFYING


# --- alert lifecycle -------------------------------------------------------------------------


def test_first_firing_opens_an_alert() -> None:
    """The first firing event creates a firing alert and one FIRING transition."""
    event = alert("e1")
    result = run(event)
    assert effects(result) == [Effect.FIRING]
    [transition] = result.transitions
    assert transition.effect is Effect.FIRING
    assert transition.event is event
    state = transition.alert
    assert state.id == "alert-1"
    assert state.status == "firing"
    assert state.occurrence == 1
    assert state.fingerprint == event.fingerprint
    assert state.kind == "alert"
    assert state.name == "ConsensusFinalityLag"
    assert state.severity == "critical"
    assert state.summary == "Finality lag"
    assert state.starts_at == STARTED
    assert state.ends_at is None
    assert state.created_at == state.updated_at == NOW
    assert state.event_count == 1
    assert result.new_alert_ids == {"alert-1"}
    assert result.alerts == {"alert-1": state}
    assert result.duplicates == 0


def test_firing_start_falls_back_to_event_time_then_now() -> None:
    """Without starts_at an alert starts at the event time, and without that at now."""
    at_time = run(alert("e1", time=ENDED)).transitions[0].alert
    at_now = run(alert("e1", time=None)).transitions[0].alert
    assert at_time.starts_at == ENDED
    assert at_now.starts_at == NOW


def test_firing_start_prefers_starts_at() -> None:
    """An explicit starts_at is the alert's start, not the event time."""
    state = run(alert("e1", time=ENDED, starts_at=STARTED)).transitions[0].alert
    assert state.starts_at == STARTED


def test_repeat_firing_pages_nobody() -> None:
    """A firing event for an alert already firing is REPEAT, with no transition."""
    first = run(alert("e1"))
    later = NOW + timedelta(minutes=5)
    result = run(alert("e2", summary="Finality lag, worse"), known=state_after(first), now=later)
    assert effects(result) == [Effect.REPEAT]
    assert result.transitions == []
    assert result.new_alert_ids == set()
    [state] = result.alerts.values()
    assert state.id == "alert-1"
    assert state.status == "firing"
    assert state.occurrence == 1
    assert state.event_count == 2
    assert state.summary == "Finality lag, worse"
    assert state.created_at == NOW
    assert state.updated_at == later
    assert state.last_event_key == event_key(SOURCE, "e2")


def test_resolve_after_firing_is_announced() -> None:
    """A resolved event for a firing alert is a RESOLVED transition with ends_at."""
    first = run(alert("e1"))
    result = run(alert("e2", "resolved", ends_at=ENDED), known=state_after(first))
    assert effects(result) == [Effect.RESOLVED]
    [transition] = result.transitions
    assert transition.effect is Effect.RESOLVED
    assert transition.alert.id == "alert-1"
    assert transition.alert.status == "resolved"
    assert transition.alert.ends_at == ENDED
    assert transition.alert.event_count == 2
    assert result.new_alert_ids == set()


def test_resolve_end_falls_back_to_event_time_then_now() -> None:
    """A resolve without ends_at ends at the event time, and without that at now."""
    known = state_after(run(alert("e1")))
    by_time = run(alert("e2", "resolved", time=ENDED), known=known).transitions[0].alert
    by_now = run(alert("e2", "resolved", time=None), known=known).transitions[0].alert
    assert by_time.ends_at == ENDED
    assert by_now.ends_at == NOW


def test_resolve_for_unknown_alert_is_stale() -> None:
    """A resolved event for an alert nobody saw fire is STALE and announces nothing."""
    result = run(alert("e1", "resolved", ends_at=ENDED))
    assert effects(result) == [Effect.STALE]
    assert result.transitions == []
    [state] = result.alerts.values()
    assert state.status == "resolved"
    assert state.ends_at == ENDED
    assert result.new_alert_ids == {state.id}


def test_resolve_for_resolved_alert_is_stale() -> None:
    """A second resolve of an already resolved alert is STALE and announces nothing."""
    known = state_after(run(alert("e1"), alert("e2", "resolved", ends_at=ENDED)))
    result = run(alert("e3", "resolved"), known=known)
    assert effects(result) == [Effect.STALE]
    assert result.transitions == []
    [state] = result.alerts.values()
    assert state.ends_at == ENDED
    assert state.event_count == 3


def test_refire_after_resolve_is_a_new_occurrence_of_the_same_alert() -> None:
    """Firing after a resolve is FIRING again, occurrence 2, keeping the alert id."""
    ids = Ids()
    known = state_after(run(alert("e1"), alert("e2", "resolved", ends_at=ENDED), ids=ids))
    later = NOW + timedelta(hours=1)
    result = run(alert("e3", starts_at=later), known=known, ids=ids, now=later)
    assert effects(result) == [Effect.FIRING]
    [transition] = result.transitions
    state = transition.alert
    assert state.id == "alert-1"
    assert state.occurrence == 2
    assert state.status == "firing"
    assert state.ends_at is None
    assert state.starts_at == later
    assert state.created_at == NOW
    assert state.updated_at == later
    assert state.event_count == 3
    assert result.new_alert_ids == set()
    assert ids.issued == 1


def test_other_labels_make_another_alert() -> None:
    """Events with different labels correlate to different alerts."""
    result = run(alert("e1"), alert("e2", labels={"network": "testnet"}))
    assert effects(result) == [Effect.FIRING, Effect.FIRING]
    assert result.new_alert_ids == {"alert-1", "alert-2"}


def test_known_alerts_are_not_modified() -> None:
    """The known mapping handed in is left as it was."""
    known = state_after(run(alert("e1")))
    snapshot = dict(known)
    run(alert("e2", "resolved"), known=known)
    assert known == snapshot


# --- duplicates ------------------------------------------------------------------------------


def test_duplicate_within_batch_has_no_effect() -> None:
    """A second event with the same source and id in one batch is only counted."""
    result = run(alert("e1"), alert("e1", "resolved"))
    assert result.duplicates == 1
    assert effects(result) == [Effect.FIRING]
    [state] = result.alerts.values()
    assert state.status == "firing"
    assert state.event_count == 1


def test_duplicate_of_seen_event_has_no_effect() -> None:
    """An event whose key is already in seen is only counted."""
    seen = {event_key(SOURCE, "e1")}
    result = run(alert("e1"), seen=seen)
    assert result.duplicates == 1
    assert result.records == []
    assert result.alerts == {}
    assert result.transitions == []
    assert result.new_alert_ids == set()


def test_same_id_from_another_source_is_not_a_duplicate() -> None:
    """Duplicates are by (source, id): the same id from another source counts."""
    result = run(alert("e1"), alert("e1", "resolved", source="monitoring/other"))
    assert result.duplicates == 0
    assert effects(result) == [Effect.FIRING, Effect.RESOLVED]


def test_seen_is_updated_with_batch_keys() -> None:
    """correlate adds every processed event key to seen."""
    seen: set[str] = set()
    run(alert("e1"), alert("e2"), seen=seen)
    assert seen == {event_key(SOURCE, "e1"), event_key(SOURCE, "e2")}


def test_replayed_batch_is_all_duplicates() -> None:
    """Running the same batch again with the updated seen set changes nothing."""
    seen: set[str] = set()
    batch = (alert("e1"), alert("e2", "resolved"))
    first = run(*batch, seen=seen)
    replay = run(*batch, known=state_after(first), seen=seen)
    assert replay.duplicates == 2
    assert replay.records == []
    assert replay.transitions == []


# --- policy notices --------------------------------------------------------------------------


def test_first_policy_notice_is_announced() -> None:
    """A policy change seen for the first time is a NOTICE transition."""
    event = policy("p1")
    result = run(event)
    assert effects(result) == [Effect.NOTICE]
    [transition] = result.transitions
    state = transition.alert
    assert transition.effect is Effect.NOTICE
    assert state.kind == "policy"
    assert state.status == "notice"
    assert state.name == "Mandatory client upgrade"
    assert state.summary == "Upgrade to 5.3.1"
    assert state.severity == "critical"
    assert state.risk == "critical"
    assert state.starts_at == datetime(2026, 11, 21, 6, tzinfo=UTC)
    assert state.labels == {"policy_id": "emergency-upgrade-policy", "change": "emergency_upgrade"}


def test_repeated_policy_notice_with_new_id_is_a_repeat() -> None:
    """The same policy version and change again, under another event id, is REPEAT."""
    known = state_after(run(policy("p1")))
    result = run(policy("p2"), known=known)
    assert result.duplicates == 0
    assert effects(result) == [Effect.REPEAT]
    assert result.transitions == []
    [state] = result.alerts.values()
    assert state.event_count == 2


def test_repeated_policy_notice_in_one_batch_is_a_repeat() -> None:
    """Within one batch, only the first of two notices for one policy change is announced."""
    result = run(policy("p1"), policy("p2"))
    assert effects(result) == [Effect.NOTICE, Effect.REPEAT]
    assert len(result.transitions) == 1


def test_new_policy_version_is_a_new_notice() -> None:
    """Another version or change of the same policy is announced again."""
    known = state_after(run(policy("p1")))
    result = run(policy("p2", version="3.2.1"), policy("p3", change="rollback"), known=known)
    assert effects(result) == [Effect.NOTICE, Effect.NOTICE]
    assert len(result.new_alert_ids) == 2


# --- batches ---------------------------------------------------------------------------------


def test_one_fingerprint_many_times_is_one_alert_entry() -> None:
    """Many events of one alert in a batch write one alert entry with the final state."""
    events = [alert(f"e{i}") for i in range(10)] + [alert("end", "resolved", ends_at=ENDED)]
    result = run(*events)
    assert effects(result) == [Effect.FIRING] + [Effect.REPEAT] * 9 + [Effect.RESOLVED]
    assert [t.effect for t in result.transitions] == [Effect.FIRING, Effect.RESOLVED]
    assert list(result.alerts) == ["alert-1"]
    state = result.alerts["alert-1"]
    assert state.status == "resolved"
    assert state.event_count == 11
    assert result.new_alert_ids == {"alert-1"}


def test_fire_resolve_fire_in_one_batch() -> None:
    """A flap within one batch yields two FIRING transitions of one alert, occurrences 1 and 2."""
    result = run(alert("e1"), alert("e2", "resolved"), alert("e3"))
    assert [t.effect for t in result.transitions] == [
        Effect.FIRING,
        Effect.RESOLVED,
        Effect.FIRING,
    ]
    assert [t.alert.occurrence for t in result.transitions] == [1, 1, 2]
    assert {t.alert.id for t in result.transitions} == {"alert-1"}


def test_records_keep_order_position_and_keys() -> None:
    """Each record carries its event key, position and alert id; transitions share the key."""
    event = alert("e1")
    positioned = Positioned(event, topic="notifier.events", partition=2, offset=41)
    result = correlate([positioned], {}, set(), NOW, Ids())
    [record] = result.records
    assert record.key == event_key(SOURCE, "e1")
    assert record.positioned == positioned
    assert record.alert_id == "alert-1"
    assert result.transitions[0].event_key == record.key
    assert result.transitions[0].alert.last_event_key == record.key
