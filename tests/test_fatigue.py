"""Grouping, rate limits, quiet hours and digests on both stores, with a fake clock; the storm
(5,000 alerts in 10 minutes across 3 networks) with every alert accounted for; and property
tests of the rate limiter and the quiet-hours window.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from stories import ROOT, Story, alert_event

from notifier.directory import Directory
from notifier.fatigue import (
    FatigueConfig,
    Grouping,
    QuietHours,
    RateLimit,
    admit,
    group_due,
    next_admitted,
    quiet_until,
)
from notifier.routing import RoutingConfig
from notifier.store import Database
from notifier.store.schema import notifications

T0 = datetime(2026, 11, 20, 8, 15, tzinfo=UTC)
RESPONDERS = {"ana.costa", "jonas.weber", "priya.raman", "lukas.meier"}


def routing(fatigue: FatigueConfig) -> RoutingConfig:
    """The shipped routing with ``fatigue`` instead of its own."""
    shipped = RoutingConfig.load(ROOT / "config" / "routing.yaml")
    return shipped.model_copy(update={"fatigue": fatigue, "flapping": None})


def rows(db: Database) -> list[dict[str, Any]]:
    with db.engine.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                select(
                    notifications.c.id,
                    notifications.c.alert_id,
                    notifications.c.kind,
                    notifications.c.person_id,
                    notifications.c.channel,
                    notifications.c.status,
                    notifications.c.error_reason,
                    notifications.c.last_error,
                    notifications.c.next_attempt_at,
                    notifications.c.details,
                )
            ).mappings()
        ]


def digests(db: Database, person: str, channel: str = "email") -> list[dict[str, Any]]:
    return sorted(
        (
            r
            for r in rows(db)
            if r["kind"].startswith("digest:")
            and r["person_id"] == person
            and r["channel"] == channel
        ),
        key=lambda r: r["next_attempt_at"],
    )


GROUPING = FatigueConfig(grouping=Grouping(by=("network", "alertname")))


async def test_warnings_in_one_group_wait_then_go_as_one_digest(db: Database) -> None:
    """Three warnings of one group within the wait: each responder gets one digest listing
    all three, due 30 s after the first; nothing goes out alone."""
    story = Story(db, config=routing(GROUPING))
    story.ingest(alert_event("w1", severity="warning", name="PeerCountLow"))
    story.clock.advance(10)
    story.ingest(
        alert_event("w2", severity="warning", name="PeerCountLow", instance="node-2"),
        alert_event("w3", severity="warning", name="PeerCountLow", instance="node-3"),
    )
    for person in RESPONDERS:
        [digest] = digests(db, person)
        assert digest["next_attempt_at"] == T0 + timedelta(seconds=30)
        assert digest["details"]["reason"] == "grouped"
        assert digest["details"]["count"] == 3
        assert digest["details"]["group"] == {"network": "mainnet", "alertname": "PeerCountLow"}
    members = [r for r in rows(db) if r["kind"] == "firing"]
    assert {r["status"] for r in members} == {"bundled"}
    assert {r["error_reason"] for r in members} == {"grouped"}


async def test_a_group_sends_changes_at_most_every_interval(db: Database) -> None:
    """After a group's digest went out, new alerts of the group wait for the interval; another
    group (another network) starts its own wait."""
    story = Story(db, config=routing(GROUPING))
    story.ingest(alert_event("w1", severity="warning", name="PeerCountLow"))
    await story.at(1)  # the first digest (due at 0:30) is closed
    story.ingest(alert_event("w2", severity="warning", name="PeerCountLow", instance="node-2"))
    story.ingest(alert_event("w3", severity="warning", name="PeerCountLow", network="holesky"))
    first, second = [
        d for d in digests(db, "ana.costa") if d["details"]["group"]["network"] == "mainnet"
    ]
    assert first["next_attempt_at"] == T0 + timedelta(seconds=30)
    assert first["details"]["count"] == 1
    assert second["next_attempt_at"] == T0 + timedelta(seconds=30) + timedelta(minutes=5)
    [other] = [d for d in digests(db, "ana.costa") if d["details"]["group"]["network"] == "holesky"]
    assert other["next_attempt_at"] == T0 + timedelta(minutes=1, seconds=30)


LIMITED = FatigueConfig(
    rate_limits=(RateLimit(channel="email", count=2, per=timedelta(hours=1), burst=2),),
    critical_ceiling=RateLimit(count=1, per=timedelta(hours=1), burst=1),
)


async def test_rate_limit_sends_what_fits_and_digests_the_rest(db: Database) -> None:
    """Email budget 2 an hour (burst 2), critical ceiling 1: of five critical pages, two go
    within the budget, one under the ceiling, and two wait in one digest, due when the
    budget allows one more message."""
    story = Story(db, config=routing(LIMITED))
    story.ingest(*(alert_event(f"c{n}", name=f"Critical{n}") for n in range(5)))
    mine = [r for r in rows(db) if r["person_id"] == "jonas.weber"]
    email = Counter(r["status"] for r in mine if r["channel"] == "email" and r["kind"] == "firing")
    assert email == Counter({"pending": 3, "bundled": 2})
    [digest] = digests(db, "jonas.weber")
    assert digest["details"]["reason"] == "throttled"
    assert digest["details"]["count"] == 2
    # Two messages at T0 put the bucket an hour ahead; it admits one more 30 min later.
    assert digest["next_attempt_at"] == T0 + timedelta(minutes=30)


async def test_critical_alerts_take_the_budget_first(db: Database) -> None:
    """In a batch of warnings and one critical, the critical page goes out even though the
    warnings came first in the batch; warnings beyond the budget are digested."""
    config = FatigueConfig(
        rate_limits=(RateLimit(channel="email", count=1, per=timedelta(hours=1), burst=1),)
    )
    story = Story(db, config=routing(config))
    story.ingest(
        alert_event("w1", severity="warning", name="A"),
        alert_event("w2", severity="warning", name="B"),
        alert_event("c1", name="C"),
    )
    ana = [r for r in rows(db) if r["person_id"] == "ana.costa" and r["kind"] == "firing"]
    by_status = {r["status"] for r in ana if r["channel"] == "email" and r["alert_id"]}
    assert "pending" in by_status
    critical = [r for r in ana if r["channel"] == "email" and r["status"] == "pending"]
    assert len(critical) == 1
    [digest] = digests(db, "ana.costa")
    assert {i["name"] for i in digest["details"]["items"]} == {"A", "B"}


def berlin_night_owl() -> Directory:
    """The shipped directory, with Ana in Berlin and quiet from 22:00 to 07:00."""
    shipped = Directory.load(ROOT / "config" / "directory.yaml")
    people = [
        p.model_copy(
            update={
                "timezone": "Europe/Berlin",
                "quiet_hours": QuietHours(start=time(22), end=time(7)),
            }
        )
        if p.id == "ana.costa"
        else p
        for p in shipped
    ]
    return Directory(people, shipped.permissions, shipped.channels)


async def test_quiet_hours_hold_warnings_until_the_morning_across_the_dst_change(
    db: Database,
) -> None:
    """A warning at 23:30 Berlin time on the night summer time ends waits for 07:00 local
    (06:00 UTC, not 05:00); a critical page at the same time goes at once."""
    night = datetime(2026, 10, 24, 21, 30, tzinfo=UTC)  # 23:30 CEST
    story = Story(db, config=routing(FatigueConfig()), directory=berlin_night_owl(), start=night)
    story.ingest(alert_event("w1", severity="warning"), alert_event("c1", name="Down"))
    ana = [r for r in rows(db) if r["person_id"] == "ana.costa"]
    [digest] = digests(db, "ana.costa")
    assert digest["details"]["reason"] == "quiet"
    assert digest["next_attempt_at"] == datetime(2026, 10, 25, 6, 0, tzinfo=UTC)
    warning = [r for r in ana if r["kind"] == "firing" and r["status"] == "bundled"]
    assert [r["error_reason"] for r in warning] == ["quiet"]
    critical = [r for r in ana if r["kind"] == "firing" and r["status"] == "pending"]
    assert critical, "critical pages ignore quiet hours"
    others = [r for r in rows(db) if r["person_id"] == "jonas.weber" and r["kind"] == "firing"]
    assert {r["status"] for r in others} == {"pending"}


# --- the storm ----------------------------------------------------------------------------------

STORM = FatigueConfig(
    grouping=Grouping(
        by=("network", "alertname"), wait=timedelta(seconds=30), interval=timedelta(minutes=5)
    ),
    rate_limits=(
        RateLimit(channel="email", count=30, per=timedelta(hours=1), burst=20),
        RateLimit(channel="slack", count=60, per=timedelta(hours=1), burst=30),
    ),
    critical_ceiling=RateLimit(count=60, per=timedelta(hours=1), burst=30),
)
NAMES = ["ConsensusFinalityLag", "PeerCountLow", "BlockProductionStalled", "DiskFull", "RpcErrors"]
NETWORKS = ["mainnet", "holesky", "sepolia"]


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
async def test_storm_reaches_each_recipient_as_a_bounded_number_of_messages(
    db: Database,
) -> None:
    """5,000 alerts in 10 minutes across 3 networks (5 alert names, mixed severities, some
    resolving): every recipient gets at most a few dozen messages, and every notification
    the storm caused is accounted for (sent alone, or listed in a digest)."""
    story = Story(db, config=routing(STORM))
    rng = random.Random(7)
    severities = ["critical"] * 1 + ["warning"] * 6 + ["high"] * 3
    fired: list[str] = []
    for batch in range(100):  # one batch every 6 s for 10 minutes, 50 events each
        docs = []
        for n in range(50):
            i = batch * 50 + n
            if fired and rng.random() < 0.1:
                docs.append(alert_event(f"r{i}", status="resolved", **_alert(fired.pop())))
                continue
            spec = f"{NAMES[i % 5]}|{NETWORKS[i % 3]}|{severities[i % 10]}|node-{i}"
            fired.append(spec)
            docs.append(alert_event(f"f{i}", **_alert(spec)))
        story.ingest(*docs)
        story.clock.advance(6)

    everything = rows(db)
    caused = [r for r in everything if r["kind"] in ("firing", "resolved")]
    members = [r for r in caused if r["status"] == "bundled"]
    alone = [r for r in caused if r["status"] == "pending"]
    held = [r for r in caused if r["status"] in ("held", "suppressed")]
    assert len(members) + len(alone) + len(held) == len(caused)
    listed: Counter[str] = Counter()
    for d in (r for r in everything if r["kind"].startswith("digest:")):
        listed[d["id"]] = d["details"]["count"]
    in_digest = Counter(r["last_error"].removeprefix("in digest ") for r in members)
    assert in_digest == listed  # each member is counted by exactly the digest it names

    received: dict[tuple[str, str], int] = defaultdict(int)
    plain: dict[tuple[str, str], int] = defaultdict(int)
    for r in everything:
        key = (r["person_id"], r["channel"])
        if r["kind"].startswith("digest:") or r["status"] == "pending":
            received[key] += 1
        if r["kind"] in ("firing", "resolved"):
            plain[key] += 1
    busiest = max(plain, key=lambda k: plain[k])
    assert plain[busiest] > 1000
    # 15 groups, each at most once per 5 minutes plus its first wait, over 10 minutes.
    assert max(received.values()) <= 15 * 3 + 5
    assert min(received[k] for k in plain) >= 1


def _alert(spec: str) -> dict[str, str]:
    name, network, severity, instance = spec.split("|")
    return {"name": name, "network": network, "severity": severity, "instance": instance}


# --- properties ---------------------------------------------------------------------------------


limits = st.builds(
    RateLimit,
    channel=st.just("email"),
    count=st.integers(1, 50),
    per=st.integers(1, 7200).map(lambda s: timedelta(seconds=s)),
    burst=st.integers(1, 20),
)


@settings(max_examples=200, deadline=None)
@given(limit=limits, gaps=st.lists(st.floats(0, 600, allow_nan=False), min_size=1, max_size=80))
def test_admitted_messages_never_exceed_the_bucket(limit: RateLimit, gaps: list[float]) -> None:
    """Whatever the arrival times, in any window of length W the bucket admits at most
    burst + W / interval messages, and a refused message is admitted at next_admitted()."""
    tat: datetime | None = None
    now = T0
    admitted: list[datetime] = []
    for gap in gaps:
        now += timedelta(seconds=gap)
        ok, new = admit(tat, now, limit)
        if ok:
            admitted.append(now)
            tat = new
        else:
            assert new == tat
            later = next_admitted(tat, now, limit)
            assert later > now
            assert admit(tat, later, limit)[0]
    for i, start in enumerate(admitted):
        for j in range(i, len(admitted)):
            window = admitted[j] - start
            allowed = limit.burst + window / limit.interval
            assert j - i + 1 <= allowed + 1e-9


@settings(max_examples=200, deadline=None)
@given(limit=limits, n=st.integers(1, 30))
def test_a_full_bucket_admits_exactly_its_burst_at_once(limit: RateLimit, n: int) -> None:
    tat: datetime | None = None
    taken = 0
    for _ in range(n):
        ok, new = admit(tat, T0, limit)
        if ok:
            taken += 1
            tat = new
    assert taken == min(n, limit.burst)


zones = st.sampled_from(
    ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "UTC"]
)
clock_times = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))


@settings(max_examples=300, deadline=None)
@given(
    zone=zones,
    start=clock_times,
    end=clock_times,
    moment=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    ),
)
def test_quiet_hours_end_is_the_next_local_end_time(
    zone: str, start: time, end: time, moment: datetime
) -> None:
    """Inside the window, the end is in the future, at the end's wall time (or just after a
    spring-forward gap) and within a day; outside, there is no end."""
    if start == end:
        return
    quiet = QuietHours(start=start, end=end)
    until = quiet_until(moment, zone, quiet)
    if until is None:
        return
    assert until > moment
    assert until - moment <= timedelta(hours=25)
    local = until.astimezone(until.tzinfo)
    assert (local.hour, local.minute) >= (end.hour, end.minute)
    assert quiet_until(until, zone, quiet) is None  # the window is over at its end


groupings = st.builds(
    Grouping,
    wait=st.integers(0, 600).map(lambda s: timedelta(seconds=s)),
    interval=st.integers(1, 3600).map(lambda s: timedelta(seconds=s)),
)


@settings(max_examples=300, deadline=None)
@given(grouping=groupings, gaps=st.lists(st.integers(0, 900), min_size=1, max_size=60))
def test_group_digests_wait_and_keep_their_interval(grouping: Grouping, gaps: list[int]) -> None:
    """Alerts joining one group at arbitrary times: a digest never goes out before the wait
    after the alert that opened it, consecutive digests are at least the interval apart,
    and every alert is in a digest due no later than wait + interval after it arrived."""
    now = T0
    last: datetime | None = None
    open_until: datetime | None = None
    flushes: list[datetime] = []
    for gap in gaps:
        now += timedelta(seconds=gap)
        if open_until is not None and open_until > now:
            due = open_until  # joins the digest being collected
        else:
            due = group_due(now, last, grouping)
            assert due >= now + grouping.wait
            if last is not None:
                assert due - last >= grouping.interval
            last = open_until = due
            flushes.append(due)
        assert due - now <= grouping.wait + grouping.interval
    assert flushes == sorted(flushes)


async def test_a_group_still_firing_is_repeated_with_backoff(db: Database) -> None:
    """Two warnings of one group stay open: after the first digest, the recipient hears of
    them again after 4 hours, then after a day (not every 4 hours); a repeat lists only the
    alerts still firing; a group with nothing firing is not repeated."""
    story = Story(db, config=routing(GROUPING))
    story.ingest(
        alert_event("w1", severity="warning", name="PeerCountLow", instance="node-1"),
        alert_event("w2", severity="warning", name="PeerCountLow", instance="node-2"),
    )

    def repeats() -> list[dict[str, Any]]:
        return [d for d in digests(db, "ana.costa") if d["details"].get("repeat")]

    await story.at(60 * 4 - 1)
    assert repeats() == []
    await story.at(60 * 4 + 1)
    [first] = repeats()
    assert first["details"]["count"] == 2
    assert first["details"]["group"] == {"network": "mainnet", "alertname": "PeerCountLow"}
    await story.at(60 * 8 + 2)
    assert len(repeats()) == 1  # backoff: the next one is a day later
    story.ingest(
        alert_event(
            "w1r", severity="warning", name="PeerCountLow", instance="node-1", status="resolved"
        )
    )
    await story.at(60 * 28 + 2)
    second = repeats()[-1]
    assert len(repeats()) == 2
    assert [i["labels"]["instance"] for i in second["details"]["items"]] == ["node-2"]
    story.ingest(
        alert_event(
            "w2r", severity="warning", name="PeerCountLow", instance="node-2", status="resolved"
        )
    )
    await story.at(60 * 24 * 3)
    assert len(repeats()) == 2


async def test_a_held_alert_that_resolves_is_not_put_in_a_digest(db: Database) -> None:
    """Grouping never sees a silenced alert: neither its firing nor, later, its resolve,
    which is suppressed with the held occurrence instead of being listed in a digest."""
    story = Story(db, config=routing(GROUPING))
    story.silence(30, 'network="mainnet"')
    story.ingest(alert_event("w1", severity="warning", name="PeerCountLow"))
    story.clock.advance(60)
    story.ingest(alert_event("w2", severity="warning", name="PeerCountLow", status="resolved"))
    caused = [r for r in rows(db) if r["kind"] in ("firing", "resolved")]
    assert {r["status"] for r in caused} == {"suppressed"}
    assert [r for r in rows(db) if r["kind"].startswith("digest:")] == []
