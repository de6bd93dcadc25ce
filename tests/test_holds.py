"""Silences and inhibition on both stores, with a fake clock: what is held, what is released
when, and what is never sent; plus the pure rules behind them.

The routing is the shipped one (config/routing.yaml): a critical mainnet alert pages five
people at once and escalates after 5 minutes; a warning finality lag is inhibited while a
network partition fires on the same network.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select
from stories import SAMPLES, T0, Story, alert_event

from notifier.inhibition import FiringAlert, InhibitRule, inhibitor
from notifier.matchers import parse
from notifier.silences import SilenceRefused, covering, new_silence
from notifier.store import Database
from notifier.store.audit import entries
from notifier.store.holds import would_hold
from notifier.store.outbox import claim_due
from notifier.store.queries import alert_detail
from notifier.store.schema import holds, notifications
from notifier.store.silences import expire_silence
from notifier.store.timeline import timeline

ROUTED = 7  # notifications of a critical mainnet page (five people, two also on Slack)


# --- silences ---------------------------------------------------------------------------------


async def test_silenced_alert_is_tracked_not_paged_and_paged_when_the_silence_ends(
    db: Database,
) -> None:
    """Inside the window the alert is stored and correlated but nobody is paged and it does
    not escalate; when the window ends it pages then, and escalation resumes with the delay
    it had left."""
    story = Story(db)
    silence = story.silence(30, 'network="mainnet"', 'alertname="ConsensusFinalityLag"')
    story.ingest(alert_event("e1"))
    alert_id = story.alert_id()
    assert story.statuses(alert_id) == Counter({("firing", "held"): ROUTED})
    assert story.holds(alert_id) == [("silence", silence.id, None)]
    with db.engine.connect() as conn:
        assert claim_due(conn, story.clock.now(), 100, 60, skip_locked=False) == []
        reasons = set(conn.scalars(select(notifications.c.error_reason)))
    assert reasons == {"silenced"}

    await story.at(20)  # the first escalation step (5 min) would have fired by now
    assert story.statuses(alert_id) == Counter({("firing", "held"): ROUTED})

    await story.at(31)  # the silence is over: paged now
    assert story.statuses(alert_id) == Counter({("firing", "pending"): ROUTED})
    assert story.holds(alert_id) == [("silence", silence.id, "released")]
    escalation = [t for t in story.timers(alert_id) if t[0] == "escalation"]
    assert escalation == [
        ("escalation", "pending", story.clock.now() + timedelta(minutes=5)),
    ]
    await story.at(36)
    kinds = {kind for kind, _ in story.statuses(alert_id)}
    assert "escalated-1" in kinds
    with db.engine.connect() as conn:
        steps = [s["kind"] for s in timeline(conn, alert_id)]
    assert steps[:3] == ["triggered", "silenced", "released"]


async def test_alert_resolved_inside_the_window_never_reaches_anyone(db: Database) -> None:
    """Fired and resolved while silenced: nothing is sent, not even the resolve, and the
    end of the silence releases nothing."""
    story = Story(db)
    story.silence(30, 'network="mainnet"')
    story.ingest(alert_event("e1"))
    await story.at(10)
    story.ingest(alert_event("e2", status="resolved"))
    alert_id = story.alert_id()
    assert story.statuses(alert_id) == Counter(
        {("firing", "suppressed"): ROUTED, ("resolved", "suppressed"): ROUTED}
    )
    assert [h[2] for h in story.holds(alert_id)] == ["lapsed"]
    await story.at(31)
    assert story.statuses(alert_id)[("firing", "pending")] == 0
    assert all(state != "pending" for _, state, _ in story.timers(alert_id))


async def test_silence_created_while_paging_stops_the_escalation(db: Database) -> None:
    """A silence on an alert that already paged: unsent notifications and the escalation
    wait; expiring it early releases them at once."""
    story = Story(db)
    story.ingest(alert_event("e1"))
    alert_id = story.alert_id()
    await story.at(2)
    silence = story.silence(60, 'alertname="ConsensusFinalityLag"')
    assert story.statuses(alert_id) == Counter({("firing", "held"): ROUTED})
    await story.at(30)
    assert {kind for kind, _ in story.statuses(alert_id)} == {"firing"}

    with db.transaction() as conn:
        expired, outcome = expire_silence(
            conn, silence.id, "lukas.meier", story.clock.now(), story.rules
        )
    assert expired.expired_by == "lukas.meier"
    assert (outcome.released, outcome.notifications_released) == (1, ROUTED)
    assert story.statuses(alert_id) == Counter({("firing", "pending"): ROUTED})
    with db.engine.connect() as conn:
        audit = entries(conn, action="silence.")
    assert [(e["action"], e["actor"], e["subject"]) for e in audit] == [
        ("silence.expire", "lukas.meier", silence.id),
        ("silence.create", "mei.lin", silence.id),
    ]
    with db.transaction() as conn, pytest.raises(SilenceRefused, match="already over"):
        expire_silence(conn, silence.id, "lukas.meier", story.clock.now(), story.rules)


async def test_silence_starting_later_holds_from_its_start(db: Database) -> None:
    """A maintenance window scheduled ahead: alerts before it page as usual; from its start
    the hold keeper holds what fires (its escalation stops) until it ends."""
    story = Story(db)
    story.silence(60, 'network="mainnet"', starts_in=10)
    story.ingest(alert_event("e1"))
    alert_id = story.alert_id()
    assert story.statuses(alert_id) == Counter({("firing", "pending"): ROUTED})
    await story.at(6)  # step 1 pages the commanders
    paged = story.statuses(alert_id)[("escalated-1", "pending")]
    assert paged > 0
    await story.at(10)
    assert story.statuses(alert_id)[("escalated-1", "held")] == paged
    await story.at(40)  # step 2 (due at 15) waits
    assert not any(k.startswith("escalated-2") for k, _ in story.statuses(alert_id))
    await story.at(71)
    assert story.statuses(alert_id)[("escalated-1", "pending")] == paged
    assert story.holds(alert_id)[-1][2] == "released"


async def test_two_silences_release_when_the_last_ends(db: Database) -> None:
    """Covered by two silences: held by the one ending last, released once, when it ends."""
    story = Story(db)
    story.silence(20, 'network="mainnet"')
    long = story.silence(45, 'alertname="ConsensusFinalityLag"')
    story.ingest(alert_event("e1"))
    alert_id = story.alert_id()
    assert story.holds(alert_id) == [("silence", long.id, None)]
    await story.at(21)
    assert story.statuses(alert_id) == Counter({("firing", "held"): ROUTED})
    await story.at(46)
    assert story.statuses(alert_id) == Counter({("firing", "pending"): ROUTED})


async def test_expiring_one_of_two_silences_moves_the_hold(db: Database) -> None:
    """Expiring the silence that holds an alert which another silence also covers keeps it
    held, now by the other one."""
    story = Story(db)
    short = story.silence(20, 'network="mainnet"')
    story.ingest(alert_event("e1"))
    alert_id = story.alert_id()
    long = story.silence(120, 'alertname="ConsensusFinalityLag"')
    with db.transaction() as conn:
        _, outcome = expire_silence(conn, short.id, "mei.lin", story.clock.now(), story.rules)
    assert (outcome.released, outcome.held) == (0, 1)
    assert story.holds(alert_id) == [
        ("silence", short.id, "moved"),
        ("silence", long.id, None),
    ]
    assert story.statuses(alert_id) == Counter({("firing", "held"): ROUTED})


async def test_policy_notices_are_never_silenced(db: Database) -> None:
    """A silence matching everything a policy notice carries still lets the notice out."""
    story = Story(db)
    story.silence(60, 'change=~".+"')
    story.ingest((SAMPLES / "policy-emergency-upgrade.json").read_bytes())
    with db.engine.connect() as conn:
        statuses = set(conn.scalars(select(notifications.c.status)))
    assert statuses == {"pending"}


# --- inhibition -------------------------------------------------------------------------------


async def test_partition_inhibits_lag_warnings_on_its_network_until_it_resolves(
    db: Database,
) -> None:
    """While NetworkPartition fires on mainnet, a mainnet finality-lag warning is held; one on
    another network is not; when the partition resolves, the held warning pages."""
    story = Story(db)
    story.ingest(alert_event("p1", name="NetworkPartition"))
    story.ingest(alert_event("w1", severity="warning"))
    story.ingest(alert_event("w2", severity="warning", network="holesky"))
    partition = story.alert_id("NetworkPartition")
    lag = story.alert_id()
    other = story.alert_id(network="holesky")
    assert {s for _, s in story.statuses(partition)} == {"pending"}
    assert {s for _, s in story.statuses(lag)} == {"held"}
    assert {s for _, s in story.statuses(other)} == {"pending"}
    assert story.holds(lag) == [("inhibition", partition, None)]
    detail = alert_detail(db, lag)
    assert "NetworkPartition" in detail["holds"][0]["detail"]
    assert {n["error_reason"] for n in detail["notifications"]} == {"inhibited"}

    await story.at(5)
    story.ingest(alert_event("p2", name="NetworkPartition", status="resolved"))
    assert {s for _, s in story.statuses(lag)} == {"pending"}
    assert story.holds(lag) == [("inhibition", partition, "released")]


async def test_inhibited_alert_that_resolves_first_is_never_sent(db: Database) -> None:
    """The symptom clears before the cause: nothing about it is ever sent."""
    story = Story(db)
    story.ingest(alert_event("p1", name="NetworkPartition"))
    story.ingest(alert_event("w1", severity="warning"))
    story.ingest(alert_event("w2", severity="warning", status="resolved"))
    lag = story.alert_id()
    assert {s for _, s in story.statuses(lag)} == {"suppressed"}
    story.ingest(alert_event("p2", name="NetworkPartition", status="resolved"))
    assert {s for _, s in story.statuses(lag)} == {"suppressed"}


async def test_critical_lag_is_not_inhibited(db: Database) -> None:
    """The shipped rule holds warnings only: a critical lag pages during a partition."""
    story = Story(db)
    story.ingest(alert_event("p1", name="NetworkPartition"))
    story.ingest(alert_event("c1"))
    assert {s for _, s in story.statuses(story.alert_id())} == {"pending"}


async def test_would_hold_explains_silence_and_inhibition(db: Database) -> None:
    """The explanation `routes test` prints: the silence (id, author, reason), or the
    inhibiting alert and rule, or nothing."""
    story = Story(db)
    labels = {"alertname": "ConsensusFinalityLag", "severity": "warning", "network": "mainnet"}
    with db.engine.connect() as conn:
        assert would_hold(conn, labels, story.clock.now(), story.rules) is None
    story.ingest(alert_event("p1", name="NetworkPartition"))
    with db.engine.connect() as conn:
        cause = would_hold(conn, labels, story.clock.now(), story.rules)
    assert cause is not None and cause.reason == "inhibited"
    assert "partition-explains-finality-lag" in cause.detail
    silence = story.silence(30, 'network="mainnet"')
    with db.engine.connect() as conn:
        cause = would_hold(conn, labels, story.clock.now(), story.rules)
    assert cause is not None and cause.reason == "silenced"
    assert silence.id in cause.detail and "mei.lin" in cause.detail


# --- the pure rules ---------------------------------------------------------------------------


def test_new_silence_refuses_what_would_hide_too_much_or_make_no_sense() -> None:
    now = T0
    ok = {"created_by": "mei.lin", "comment": "why", "now": now}
    with pytest.raises(SilenceRefused, match="match every alert"):
        new_silence(['team=~".*"'], duration=timedelta(hours=1), **ok)  # type: ignore[arg-type]
    with pytest.raises(SilenceRefused, match="at least one matcher"):
        new_silence([], duration=timedelta(hours=1), **ok)  # type: ignore[arg-type]
    with pytest.raises(SilenceRefused, match="end time or a duration"):
        new_silence(['network="x"'], **ok)  # type: ignore[arg-type]
    with pytest.raises(SilenceRefused, match="at most 90 days"):
        new_silence(['network="x"'], duration=timedelta(days=91), **ok)  # type: ignore[arg-type]
    with pytest.raises(SilenceRefused, match="already be over"):
        new_silence(
            ['network="x"'],
            starts_at=now - timedelta(hours=2),
            ends_at=now - timedelta(hours=1),
            **ok,  # type: ignore[arg-type]
        )
    with pytest.raises(SilenceRefused, match="comment"):
        new_silence(
            ['network="x"'], duration=timedelta(hours=1), created_by="a", comment=" ", now=now
        )
    with pytest.raises(SilenceRefused, match="write name"):
        new_silence(['network=="x"'], duration=timedelta(hours=1), **ok)  # type: ignore[arg-type]


def test_silence_states_and_covering() -> None:
    a = new_silence(
        ['network="mainnet"'], created_by="a", comment="c", now=T0, duration=timedelta(hours=1)
    )
    b = new_silence(
        ['network=~"main.*"'], created_by="b", comment="c", now=T0, duration=timedelta(hours=2)
    )
    later = new_silence(
        ['network="mainnet"'],
        created_by="c",
        comment="c",
        now=T0,
        starts_at=T0 + timedelta(hours=5),
        duration=timedelta(hours=1),
    )
    labels = {"network": "mainnet"}
    assert covering([a, b, later], labels, T0) is b  # the one ending last
    assert covering([a, later], labels, T0 + timedelta(hours=1)) is None  # ends exclusive
    assert covering([a, b, later], labels, T0 + timedelta(hours=5, minutes=1)) is later
    assert covering([a, b], {"network": "testnet"}, T0) is None


def rule(equal: tuple[str, ...] = ("network",)) -> InhibitRule:
    return InhibitRule(
        name="r",
        source_matchers=(parse('alertname="Partition"'),),
        target_matchers=(parse('severity="warning"'),),
        equal=equal,
    )


def test_inhibitor_needs_a_firing_source_in_the_same_scope() -> None:
    target = {"alertname": "Lag", "severity": "warning", "network": "mainnet"}
    source = FiringAlert(
        "s", {"alertname": "Partition", "severity": "critical", "network": "mainnet"}
    )
    elsewhere = FiringAlert("t", {"alertname": "Partition", "network": "holesky"})
    assert inhibitor([rule()], "x", target, [source]) == (rule(), source)
    assert inhibitor([rule()], "x", target, [elsewhere]) is None
    assert inhibitor([rule()], "x", target, []) is None
    # A label missing on both sides is equal.
    bare = FiringAlert("u", {"alertname": "Partition"})
    assert inhibitor([rule()], "x", {"severity": "warning"}, [bare]) is not None


def test_an_alert_never_inhibits_itself_and_two_mutual_alerts_do_not_hold_each_other() -> None:
    both = {"alertname": "Partition", "severity": "warning", "network": "mainnet"}
    assert inhibitor([rule()], "a", both, [FiringAlert("a", both)]) is None
    assert inhibitor([rule()], "a", both, [FiringAlert("b", both)]) is None


# --- flapping ---------------------------------------------------------------------------------


def by_occurrence(db: Database, alert_id: str) -> dict[int, set[tuple[str, str]]]:
    """(kind, status) of the notifications of each occurrence."""
    found: dict[int, set[tuple[str, str]]] = {}
    with db.engine.connect() as conn:
        for occurrence, kind, status in conn.execute(
            select(notifications.c.occurrence, notifications.c.kind, notifications.c.status).where(
                notifications.c.alert_id == alert_id
            )
        ):
            found.setdefault(occurrence, set()).add((kind, status))
    return found


async def test_flapping_alert_pages_once_when_it_settles(db: Database) -> None:
    """Toggling every minute: the first occurrences page; once six changes fall within 30
    minutes, re-fires are held and their resolves never sent; when it stays firing for the
    quiet 15 minutes, it pages once."""
    story = Story(db)
    minute = 0
    for n in range(6):
        await story.at(minute)
        story.ingest(alert_event(f"f{n}"))
        await story.at(minute + 0.5)
        story.ingest(alert_event(f"r{n}", status="resolved"))
        minute += 1
    await story.at(minute)
    story.ingest(alert_event("last"))  # fires and stays firing
    alert_id = story.alert_id()
    seen = by_occurrence(db, alert_id)
    assert seen[1] == {("firing", "pending"), ("resolved", "pending")}
    assert seen[3] == {("firing", "pending"), ("resolved", "pending")}
    assert seen[4] == {("firing", "suppressed"), ("resolved", "suppressed")}
    assert seen[7] == {("firing", "held")}
    flaps = [h for h in story.holds(alert_id) if h[0] == "flapping"]
    assert [h[2] for h in flaps] == ["lapsed", "lapsed", "lapsed", None]
    with db.engine.connect() as conn:
        detail = conn.scalar(select(holds.c.detail).where(holds.c.ended_at.is_(None)))
    assert detail is not None and "changes within 30 min" in detail

    await story.at(minute + 14)
    assert by_occurrence(db, alert_id)[7] == {("firing", "held")}
    await story.at(minute + 15)
    assert by_occurrence(db, alert_id)[7] == {("firing", "pending")}
    assert story.holds(alert_id)[-1][2] == "released"
