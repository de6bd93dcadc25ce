"""Correlation: which events open, repeat, resolve or re-fire an alert, and which are duplicates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from notifier.correlate import (
    NOTIFYING,
    AlertHead,
    AlertState,
    Correlation,
    Effect,
    Positioned,
    Rewrite,
    Touch,
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
    known: Mapping[str, AlertHead] | None = None,
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


class Stored:
    """Alert rows as the store keeps them, with a batch's writes applied as write_batch does.

    Inserts add whole rows; a rewrite replaces the state (a None start keeps the stored one);
    a touch adds to the event count and sets the latest update, event key and summary (a None
    summary keeps the stored one). Rewrites are applied before touches, as in the store.
    """

    def __init__(self, *batches: Correlation) -> None:
        self.rows: dict[str, AlertState] = {}
        for batch in batches:
            self.apply(batch)

    def apply(self, result: Correlation) -> Stored:
        """Write one batch's inserts, rewrites and touches."""
        for row in result.inserts.values():
            assert row.id not in self.rows, f"{row.id} inserted twice"
            self.rows[row.id] = row
        for alert_id, w in result.rewrites.items():
            row = self.rows[alert_id]
            self.rows[alert_id] = replace(
                row,
                status=w.status,
                occurrence=w.occurrence,
                severity=w.severity,
                risk=w.risk,
                summary=w.summary,
                starts_at=w.starts_at if w.starts_at is not None else row.starts_at,
                ends_at=w.ends_at,
            )
        for alert_id, t in result.touches.items():
            row = self.rows[alert_id]
            self.rows[alert_id] = replace(
                row,
                event_count=row.event_count + t.count,
                updated_at=t.updated_at,
                last_event_key=t.last_event_key,
                summary=t.summary if t.summary is not None else row.summary,
            )
        return self

    def heads(self) -> dict[str, AlertHead]:
        """The heads correlation is given, keyed by fingerprint, as the store loads them."""
        return {row.fingerprint: row.head for row in self.rows.values()}

    def one(self) -> AlertState:
        """The only stored alert."""
        [row] = self.rows.values()
        return row


def effects(result: Correlation) -> list[Effect]:
    """The effect of each recorded event, in order."""
    return [r.effect for r in result.records]


def no_writes(result: Correlation) -> bool:
    """Whether a batch writes no alert at all."""
    return result.inserts == {} and result.rewrites == {} and result.touches == {}


FINGERPRINT = alert("any").fingerprint


def test_stored_helper_applies_writes() -> None:
    """The test store applies inserts, rewrites and touches, rewrites before touches."""
    base = Stored(run(alert("e1", starts_at=STARTED)))
    later = NOW + timedelta(minutes=1)
    change = Correlation(
        rewrites={"alert-1": Rewrite("resolved", 1, "warning", "high", "rewritten", None, ENDED)},
        touches={"alert-1": Touch(3, later, "k", None)},
    )
    row = base.apply(change).one()
    assert (row.status, row.severity, row.risk, row.ends_at) == (
        "resolved",
        "warning",
        "high",
        ENDED,
    )
    assert row.starts_at == STARTED
    assert row.summary == "rewritten"
    assert (row.event_count, row.updated_at, row.last_event_key) == (4, later, "k")
    touched = base.apply(Correlation(touches={"alert-1": Touch(1, later, "k2", "touched")}))
    assert touched.one().summary == "touched"


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
    """The first firing event inserts a firing alert and makes one FIRING transition."""
    event = alert("e1")
    result = run(event)
    assert effects(result) == [Effect.FIRING]
    [transition] = result.transitions
    assert transition.effect is Effect.FIRING
    assert transition.event is event
    assert transition.alert == AlertHead("alert-1", event.fingerprint, "firing", 1)
    state = result.inserts["alert-1"]
    assert state.id == "alert-1"
    assert state.status == "firing"
    assert state.occurrence == 1
    assert state.fingerprint == event.fingerprint
    assert state.kind == "alert"
    assert state.name == "ConsensusFinalityLag"
    assert state.severity == "critical"
    assert state.risk is None
    assert state.summary == "Finality lag"
    assert state.starts_at == STARTED
    assert state.ends_at is None
    assert state.created_at == state.updated_at == NOW
    assert state.event_count == 1
    assert state.last_event_key == event_key(SOURCE, "e1")
    assert state.head == transition.alert
    assert result.inserts == {"alert-1": state}
    assert result.rewrites == {}
    assert result.touches == {}
    assert result.duplicates == 0


def test_firing_start_falls_back_to_event_time_then_now() -> None:
    """Without starts_at an alert starts at the event time, and without that at now."""
    at_time = run(alert("e1", time=ENDED)).inserts["alert-1"]
    at_now = run(alert("e1", time=None)).inserts["alert-1"]
    assert at_time.starts_at == ENDED
    assert at_now.starts_at == NOW


def test_firing_start_prefers_starts_at() -> None:
    """An explicit starts_at is the alert's start, not the event time."""
    state = run(alert("e1", time=ENDED, starts_at=STARTED)).inserts["alert-1"]
    assert state.starts_at == STARTED


def test_repeat_firing_pages_nobody() -> None:
    """A firing event for an alert already firing is REPEAT: no transition, only a touch."""
    store = Stored(run(alert("e1")))
    later = NOW + timedelta(minutes=5)
    result = run(alert("e2", summary="Finality lag, worse"), known=store.heads(), now=later)
    assert effects(result) == [Effect.REPEAT]
    assert result.transitions == []
    assert result.inserts == {}
    assert result.rewrites == {}
    assert result.touches == {
        "alert-1": Touch(1, later, event_key(SOURCE, "e2"), "Finality lag, worse")
    }
    state = store.apply(result).one()
    assert state.id == "alert-1"
    assert state.status == "firing"
    assert state.occurrence == 1
    assert state.event_count == 2
    assert state.summary == "Finality lag, worse"
    assert state.created_at == NOW
    assert state.updated_at == later
    assert state.last_event_key == event_key(SOURCE, "e2")


def test_resolve_after_firing_is_announced() -> None:
    """A resolved event for a firing alert is a RESOLVED transition and sets ends_at."""
    store = Stored(run(alert("e1")))
    result = run(alert("e2", "resolved", ends_at=ENDED), known=store.heads())
    assert effects(result) == [Effect.RESOLVED]
    [transition] = result.transitions
    assert transition.effect is Effect.RESOLVED
    assert transition.alert == AlertHead("alert-1", FINGERPRINT, "resolved", 1)
    assert result.inserts == {}
    state = store.apply(result).one()
    assert state.status == "resolved"
    assert state.ends_at == ENDED
    assert state.starts_at == STARTED
    assert state.event_count == 2


def test_resolve_end_falls_back_to_event_time_then_now() -> None:
    """A resolve without ends_at ends at the event time, and without that at now."""
    known = Stored(run(alert("e1"))).heads()
    by_time = run(alert("e2", "resolved", time=ENDED), known=known).rewrites["alert-1"]
    by_now = run(alert("e2", "resolved", time=None), known=known).rewrites["alert-1"]
    assert by_time.ends_at == ENDED
    assert by_now.ends_at == NOW


def test_resolve_for_unknown_alert_is_stale() -> None:
    """A resolved event for an alert nobody saw fire is STALE, announces nothing, is inserted."""
    result = run(alert("e1", "resolved", ends_at=ENDED))
    assert effects(result) == [Effect.STALE]
    assert result.transitions == []
    [state] = result.inserts.values()
    assert state.status == "resolved"
    assert state.occurrence == 1
    assert state.ends_at == ENDED
    assert state.event_count == 1
    assert result.rewrites == {}
    assert result.touches == {}


def test_resolve_for_resolved_alert_is_stale() -> None:
    """A second resolve of an already resolved alert is STALE: no transition, only a touch."""
    store = Stored(run(alert("e1"), alert("e2", "resolved", ends_at=ENDED)))
    result = run(alert("e3", "resolved"), known=store.heads())
    assert effects(result) == [Effect.STALE]
    assert result.transitions == []
    assert result.inserts == {}
    assert result.rewrites == {}
    assert list(result.touches) == ["alert-1"]
    assert result.touches["alert-1"].count == 1
    state = store.apply(result).one()
    assert state.status == "resolved"
    assert state.ends_at == ENDED
    assert state.event_count == 3


def test_refire_after_resolve_is_a_new_occurrence_of_the_same_alert() -> None:
    """Firing after a resolve is FIRING again, occurrence 2, keeping the alert id."""
    ids = Ids()
    store = Stored(run(alert("e1"), alert("e2", "resolved", ends_at=ENDED), ids=ids))
    later = NOW + timedelta(hours=1)
    result = run(alert("e3", starts_at=later), known=store.heads(), ids=ids, now=later)
    assert effects(result) == [Effect.FIRING]
    [transition] = result.transitions
    assert transition.alert == AlertHead("alert-1", FINGERPRINT, "firing", 2)
    assert result.inserts == {}
    state = store.apply(result).one()
    assert state.id == "alert-1"
    assert state.occurrence == 2
    assert state.status == "firing"
    assert state.ends_at is None
    assert state.starts_at == later
    assert state.created_at == NOW
    assert state.updated_at == later
    assert state.event_count == 3
    assert ids.issued == 1


def test_other_labels_make_another_alert() -> None:
    """Events with different labels correlate to different alerts."""
    result = run(alert("e1"), alert("e2", labels={"network": "testnet"}))
    assert effects(result) == [Effect.FIRING, Effect.FIRING]
    assert set(result.inserts) == {"alert-1", "alert-2"}
    assert result.inserts["alert-1"].fingerprint != result.inserts["alert-2"].fingerprint
    assert [r.alert_id for r in result.records] == ["alert-1", "alert-2"]


def test_known_alerts_are_not_modified() -> None:
    """The known mapping handed in is left as it was."""
    known = Stored(run(alert("e1"))).heads()
    snapshot = dict(known)
    result = run(alert("e2", "resolved"), alert("e3"), known=known)
    assert effects(result) == [Effect.RESOLVED, Effect.FIRING]
    assert known == snapshot
    assert known[FINGERPRINT] == AlertHead("alert-1", FINGERPRINT, "firing", 1)


# --- changes to existing alerts --------------------------------------------------------------


@pytest.mark.parametrize("repeats", [1, 2, 7])
def test_repeats_of_existing_alert_are_one_touch(repeats: int) -> None:
    """N repeats of a firing alert are one Touch counting N, with the latest event's details."""
    known = Stored(run(alert("e1"))).heads()
    events = [alert(f"r{i}", summary=f"Finality lag #{i}") for i in range(repeats)]
    result = run(*events, known=known)
    assert effects(result) == [Effect.REPEAT] * repeats
    last = repeats - 1
    assert result.touches == {
        "alert-1": Touch(repeats, NOW, event_key(SOURCE, f"r{last}"), f"Finality lag #{last}")
    }
    assert result.rewrites == {}
    assert result.inserts == {}
    assert result.transitions == []


def test_resolve_of_existing_alert_is_a_rewrite_and_a_touch() -> None:
    """Resolving a stored alert rewrites it as resolved with ends_at and touches it once."""
    known = Stored(run(alert("e1"))).heads()
    later = NOW + timedelta(minutes=1)
    result = run(
        alert("e2", "resolved", ends_at=ENDED, summary="Caught up"), known=known, now=later
    )
    assert result.rewrites == {
        "alert-1": Rewrite(
            status="resolved",
            occurrence=1,
            severity="critical",
            risk=None,
            summary="Caught up",
            starts_at=None,
            ends_at=ENDED,
        )
    }
    assert result.touches == {"alert-1": Touch(1, later, event_key(SOURCE, "e2"), "Caught up")}
    assert result.inserts == {}


def test_resolve_that_states_its_start_rewrites_the_start() -> None:
    """A resolve carrying starts_at rewrites the start; one without it keeps the stored start."""
    known = Stored(run(alert("e1"))).heads()
    stated = run(alert("e2", "resolved", starts_at=ENDED - timedelta(hours=2)), known=known)
    unstated = run(alert("e2", "resolved", time=ENDED), known=known)
    assert stated.rewrites["alert-1"].starts_at == ENDED - timedelta(hours=2)
    assert unstated.rewrites["alert-1"].starts_at is None


def test_refire_of_existing_alert_is_a_rewrite_with_next_occurrence() -> None:
    """Re-firing a stored resolved alert rewrites it firing, occurrence + 1, ends_at None."""
    store = Stored(run(alert("e1")))
    store.apply(run(alert("e2", "resolved", ends_at=ENDED), known=store.heads()))
    store.apply(run(alert("e3"), known=store.heads()))
    store.apply(run(alert("e4", "resolved", ends_at=ENDED), known=store.heads()))
    assert store.heads()[FINGERPRINT] == AlertHead("alert-1", FINGERPRINT, "resolved", 2)
    later = NOW + timedelta(hours=1)
    # A firing event may say when it expects to end (Alertmanager does); it is still firing.
    refire = alert("e5", time=later, summary="Again", ends_at=later + timedelta(hours=1))
    result = run(refire, known=store.heads(), now=later)
    assert result.rewrites == {
        "alert-1": Rewrite(
            status="firing",
            occurrence=3,
            severity="critical",
            risk=None,
            summary="Again",
            starts_at=later,
            ends_at=None,
        )
    }
    assert result.touches == {"alert-1": Touch(1, later, event_key(SOURCE, "e5"), "Again")}
    assert result.inserts == {}
    [transition] = result.transitions
    assert transition.effect is Effect.FIRING
    assert transition.alert == AlertHead("alert-1", FINGERPRINT, "firing", 3)


def test_rewrite_takes_severity_and_risk_from_the_event() -> None:
    """A re-fire with another severity and risk rewrites them; a repeat does not."""
    store = Stored(run(alert("e1")))
    store.apply(run(alert("e2", "resolved"), known=store.heads()))
    result = run(alert("e3", severity="warning", risk="high"), known=store.heads())
    assert (result.rewrites["alert-1"].severity, result.rewrites["alert-1"].risk) == (
        "warning",
        "high",
    )
    repeat = run(alert("e4", severity="info"), known=store.apply(result).heads())
    assert repeat.rewrites == {}
    assert store.apply(repeat).one().severity == "warning"


def test_resolve_then_refire_of_existing_alert_in_one_batch() -> None:
    """Resolve then re-fire of a stored alert in one batch ends firing at the next occurrence."""
    known = {FINGERPRINT: AlertHead("alert-7", FINGERPRINT, "firing", 3)}
    later = NOW + timedelta(minutes=3)
    result = run(alert("e1", "resolved", ends_at=ENDED), alert("e2", time=later), known=known)
    assert [(t.effect, t.alert) for t in result.transitions] == [
        (Effect.RESOLVED, AlertHead("alert-7", FINGERPRINT, "resolved", 3)),
        (Effect.FIRING, AlertHead("alert-7", FINGERPRINT, "firing", 4)),
    ]
    rewrite = result.rewrites["alert-7"]
    assert rewrite.status == "firing"
    assert rewrite.occurrence == 4
    assert rewrite.ends_at is None
    assert rewrite.starts_at == later
    assert result.touches == {"alert-7": Touch(2, NOW, event_key(SOURCE, "e2"), "Finality lag")}
    assert result.inserts == {}


def test_stored_and_new_alerts_in_one_batch_are_kept_apart() -> None:
    """Stored alerts are only rewritten or touched, and new ones only inserted."""
    known = {FINGERPRINT: AlertHead("stored", FINGERPRINT, "firing", 1)}
    testnet = {"network": "testnet"}
    result = run(
        alert("e1"),
        alert("e2", labels=testnet),
        alert("e3", "resolved"),
        alert("e4", "resolved", labels=testnet),
        known=known,
    )
    assert effects(result) == [Effect.REPEAT, Effect.FIRING, Effect.RESOLVED, Effect.RESOLVED]
    assert list(result.inserts) == ["alert-1"]
    assert list(result.rewrites) == ["stored"]
    assert list(result.touches) == ["stored"]
    assert result.touches["stored"].count == 2
    assert result.inserts["alert-1"].event_count == 2


# --- duplicates ------------------------------------------------------------------------------


def test_duplicate_within_batch_has_no_effect() -> None:
    """A second event with the same source and id in one batch is only counted."""
    result = run(alert("e1"), alert("e1", "resolved"))
    assert result.duplicates == 1
    assert effects(result) == [Effect.FIRING]
    [state] = result.inserts.values()
    assert state.status == "firing"
    assert state.event_count == 1
    assert result.rewrites == {}
    assert result.touches == {}


def test_duplicate_of_seen_event_has_no_effect() -> None:
    """An event whose key is already in seen is only counted."""
    seen = {event_key(SOURCE, "e1")}
    result = run(alert("e1"), seen=seen)
    assert result.duplicates == 1
    assert result.records == []
    assert no_writes(result)
    assert result.transitions == []


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
    assert effects(first) == [Effect.FIRING, Effect.RESOLVED]
    replay = run(*batch, known=Stored(first).heads(), seen=seen)
    assert replay.duplicates == 2
    assert replay.records == []
    assert replay.transitions == []
    assert no_writes(replay)


# --- policy notices --------------------------------------------------------------------------


def test_first_policy_notice_is_announced() -> None:
    """A policy change seen for the first time is a NOTICE transition and an insert."""
    event = policy("p1")
    result = run(event)
    assert effects(result) == [Effect.NOTICE]
    [transition] = result.transitions
    assert transition.effect is Effect.NOTICE
    assert transition.alert == AlertHead("alert-1", event.fingerprint, "notice", 1)
    state = result.inserts["alert-1"]
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
    store = Stored(run(policy("p1")))
    result = run(policy("p2"), known=store.heads())
    assert result.duplicates == 0
    assert effects(result) == [Effect.REPEAT]
    assert result.transitions == []
    assert result.touches == {"alert-1": Touch(1, NOW, event_key(policy("p2").source, "p2"), None)}
    assert result.rewrites == {}
    assert result.inserts == {}
    state = store.apply(result).one()
    assert state.event_count == 2
    assert state.summary == "Upgrade to 5.3.1"


def test_repeated_policy_notice_in_one_batch_is_a_repeat() -> None:
    """Within one batch, only the first of two notices for one policy change is announced."""
    result = run(policy("p1"), policy("p2"))
    assert effects(result) == [Effect.NOTICE, Effect.REPEAT]
    assert len(result.transitions) == 1
    assert result.inserts["alert-1"].event_count == 2


def test_new_policy_version_is_a_new_notice() -> None:
    """Another version or change of the same policy is announced again."""
    ids = Ids()
    known = Stored(run(policy("p1"), ids=ids)).heads()
    result = run(
        policy("p2", version="3.2.1"), policy("p3", change="rollback"), known=known, ids=ids
    )
    assert effects(result) == [Effect.NOTICE, Effect.NOTICE]
    assert set(result.inserts) == {"alert-2", "alert-3"}
    assert not {a.fingerprint for a in result.inserts.values()} & set(known)
    assert result.touches == {}


# --- batches ---------------------------------------------------------------------------------


def test_one_fingerprint_many_times_is_one_alert_entry() -> None:
    """Many events of one new alert in a batch are one insert with the final state."""
    events = [alert(f"e{i}") for i in range(10)] + [alert("end", "resolved", ends_at=ENDED)]
    result = run(*events)
    assert effects(result) == [Effect.FIRING] + [Effect.REPEAT] * 9 + [Effect.RESOLVED]
    assert [t.effect for t in result.transitions] == [Effect.FIRING, Effect.RESOLVED]
    assert list(result.inserts) == ["alert-1"]
    state = result.inserts["alert-1"]
    assert state.status == "resolved"
    assert state.ends_at == ENDED
    assert state.event_count == 11
    assert state.last_event_key == event_key(SOURCE, "end")
    assert result.rewrites == {}
    assert result.touches == {}


def test_created_and_resolved_in_one_batch_is_one_insert() -> None:
    """An alert that fires and resolves in one batch is a single resolved insert of 2 events."""
    result = run(alert("e1"), alert("e2", "resolved", ends_at=ENDED, summary="Caught up"))
    assert effects(result) == [Effect.FIRING, Effect.RESOLVED]
    [state] = result.inserts.values()
    assert state.status == "resolved"
    assert state.occurrence == 1
    assert state.event_count == 2
    assert state.starts_at == STARTED
    assert state.ends_at == ENDED
    assert state.summary == "Caught up"
    assert state.last_event_key == event_key(SOURCE, "e2")
    assert result.rewrites == {}
    assert result.touches == {}


def test_fire_resolve_fire_in_one_batch() -> None:
    """A flap within one batch yields two FIRING transitions of one alert, occurrences 1 and 2."""
    later = STARTED + timedelta(hours=2)
    refire = alert("e3", time=later, ends_at=later + timedelta(hours=1))
    result = run(alert("e1"), alert("e2", "resolved"), refire)
    assert [t.effect for t in result.transitions] == [
        Effect.FIRING,
        Effect.RESOLVED,
        Effect.FIRING,
    ]
    assert [t.alert.occurrence for t in result.transitions] == [1, 1, 2]
    assert [t.alert.status for t in result.transitions] == ["firing", "resolved", "firing"]
    assert {t.alert.id for t in result.transitions} == {"alert-1"}
    [state] = result.inserts.values()
    assert (state.status, state.occurrence, state.event_count) == ("firing", 2, 3)
    assert state.ends_at is None
    # The second occurrence starts when its event happened, as it would across batches.
    assert state.starts_at == later
    assert no_writes(replace(result, inserts={}))


# One alert's life, every event its own batch or all in one: the stored rows must agree.
LIVES = {
    "fire-repeat-resolve": [
        alert("e1", starts_at=STARTED),
        alert("e2", summary="worse"),
        alert("e3", "resolved", ends_at=ENDED),
    ],
    "flap-without-starts": [
        alert("e1", time=STARTED),
        alert("e2", "resolved", time=ENDED),
        alert("e3", time=ENDED + timedelta(minutes=5)),
        alert("e4", time=ENDED + timedelta(minutes=6)),
    ],
    "resolve-states-start": [
        alert("e1", time=ENDED),
        alert("e2", "resolved", starts_at=STARTED, ends_at=ENDED, summary="done"),
    ],
    "stale-then-fire": [
        alert("e1", "resolved", time=STARTED),
        alert("e2", "resolved", time=ENDED),
        alert("e3", time=ENDED, severity="warning", risk="low"),
    ],
    "policy-repeats": [policy("p1"), policy("p2"), policy("p3", version="4.0.0")],
}


@pytest.mark.parametrize("events", list(LIVES.values()), ids=list(LIVES))
def test_batching_does_not_change_what_is_stored(events: list[Event]) -> None:
    """Correlating events in one batch or one by one stores the same alerts."""
    together = Stored(run(*events))
    ids = Ids()
    apart = Stored()
    for event in events:
        apart.apply(run(event, known=apart.heads(), ids=ids))
    assert together.rows == apart.rows


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
    assert result.inserts["alert-1"].last_event_key == record.key
