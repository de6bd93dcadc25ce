"""The alert lifecycle: pure decisions, and actions applied to a real store on both backends."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select

from notifier.correlate import AlertHead, Effect, Positioned, correlate
from notifier.decoding import decode_record
from notifier.directory import Directory
from notifier.lifecycle import Action, Status, TransitionRefused, Verb, decide
from notifier.pipeline import BatchProcessor, RawRecord
from notifier.routing import Router, RoutingConfig
from notifier.store import Database
from notifier.store.schema import alerts
from notifier.store.timeline import AlertNotFound, apply_action, find_alert_id, timeline
from notifier.testing import FakeClock

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "config" / "samples"
T0 = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)


def _action(verb: Verb, by: str = "mei.lin", at: datetime = T0, note: str | None = None) -> Action:
    return Action(verb, by, "cli", at, note)


@pytest.mark.parametrize("status", [Status.TRIGGERED, Status.NOTICE])
def test_acknowledging_an_open_alert_takes_it_to_acknowledged(status: Status) -> None:
    """Triggered alerts and policy notices can be acknowledged."""
    outcome = decide(status.value, _action(Verb.ACKNOWLEDGE))
    assert (outcome.after, outcome.changed) == (Status.ACKNOWLEDGED, True)


def test_acknowledging_twice_is_harmless_and_reported() -> None:
    """A second acknowledgment changes nothing and says so."""
    outcome = decide("acknowledged", _action(Verb.ACKNOWLEDGE))
    assert outcome.already
    assert outcome.after is Status.ACKNOWLEDGED


def test_a_resolved_alert_cannot_be_acknowledged() -> None:
    """Acknowledging a resolved alert is refused with a reason."""
    with pytest.raises(TransitionRefused, match="resolved"):
        decide("resolved", _action(Verb.ACKNOWLEDGE))


@pytest.mark.parametrize("status", ["firing", "acknowledged", "notice"])
def test_any_open_alert_can_be_resolved(status: str) -> None:
    """Resolve works from triggered, acknowledged and notice."""
    assert decide(status, _action(Verb.RESOLVE)).after is Status.RESOLVED


def test_resolving_twice_is_harmless() -> None:
    """A second resolve changes nothing."""
    assert decide("resolved", _action(Verb.RESOLVE)).already


def test_acknowledged_alerts_stay_open_for_correlation() -> None:
    """A repeat of an acknowledged alert is a repeat; its resolve event resolves it."""
    firing = decode_record((SAMPLES / "alert-firing.json").read_bytes())[0]
    resolved = decode_record((SAMPLES / "alert-resolved.json").read_bytes())[0]
    repeat = firing.model_copy(update={"id": "repeat-1"})
    head = AlertHead("a1", firing.fingerprint, "acknowledged", 1)
    result = correlate(
        [Positioned(repeat), Positioned(resolved)], {firing.fingerprint: head}, set(), T0
    )
    assert [r.effect for r in result.records] == [Effect.REPEAT, Effect.RESOLVED]


DIRECTORY = Directory.load(ROOT / "config" / "directory.yaml")


def _ingest_docs(db: Database, docs: list[bytes], start: int = 0) -> None:
    router = Router(RoutingConfig.load(ROOT / "config" / "routing.yaml"), DIRECTORY)
    proc = BatchProcessor(
        db,
        router,
        FakeClock(T0 - timedelta(minutes=10)),
        group="g",
        topic="t",
        max_event_bytes=1 << 20,
    )
    records = [RawRecord("t", 0, start + i, None, doc, ()) for i, doc in enumerate(docs)]
    proc.apply(records, proc.decode(records))


def _ingest(db: Database, *names: str) -> None:
    _ingest_docs(db, [(SAMPLES / n).read_bytes() for n in names])


def _only_alert(db: Database) -> str:
    with db.engine.connect() as conn:
        return str(conn.scalar(select(alerts.c.id)))


def test_ingest_writes_triggered_and_resolved_to_the_timeline(db: Database) -> None:
    """The timeline holds the source's firing and resolve with the event that caused each."""
    _ingest(db, "alert-firing.json", "alert-resolved.json")
    with db.engine.connect() as conn:
        steps = timeline(conn, _only_alert(db))
    assert [(s["kind"], s["channel"], s["actor"]) for s in steps] == [
        ("triggered", "event", "monitoring/prometheus/eu-west-1"),
        ("resolved", "event", "monitoring/prometheus/eu-west-1"),
    ]
    assert all(s["event_key"] for s in steps)


def test_acknowledge_then_resolve_through_the_store(db: Database) -> None:
    """Actions update the alert and append who, when, how and the note to the timeline."""
    _ingest(db, "alert-firing.json")
    alert_id = _only_alert(db)
    lock = not db.is_sqlite
    with db.transaction() as conn:
        first = apply_action(
            conn,
            alert_id[:8],
            _action(Verb.ACKNOWLEDGE, note="on it"),
            lock=lock,
            directory=DIRECTORY,
        )
    with db.transaction() as conn:
        again = apply_action(
            conn,
            alert_id,
            _action(Verb.ACKNOWLEDGE, by="lukas.meier"),
            lock=lock,
            directory=DIRECTORY,
        )
    later = T0 + timedelta(minutes=5)
    with db.transaction() as conn:
        done = apply_action(
            conn, alert_id, _action(Verb.RESOLVE, at=later), lock=lock, directory=DIRECTORY
        )
    assert first.outcome.changed and again.outcome.already and done.outcome.changed
    assert again.acknowledged_by == "mei.lin"
    with db.engine.connect() as conn:
        row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).mappings().one()
        steps = timeline(conn, alert_id)
    assert (row["status"], row["acknowledged_by"], row["ends_at"]) == ("resolved", "mei.lin", later)
    assert [(s["kind"], s["actor"], s["note"]) for s in steps] == [
        ("triggered", "monitoring/prometheus/eu-west-1", None),
        ("acknowledged", "mei.lin", "on it"),
        ("resolved", "mei.lin", None),
    ]


def test_a_new_occurrence_starts_unacknowledged(db: Database) -> None:
    """Acknowledged, resolved by the source, firing again: the new occurrence has no owner."""
    _ingest(db, "alert-firing.json")
    alert_id = _only_alert(db)
    with db.transaction() as conn:
        apply_action(
            conn, alert_id, _action(Verb.ACKNOWLEDGE), lock=not db.is_sqlite, directory=DIRECTORY
        )
    refire = orjson.loads((SAMPLES / "alert-firing.json").read_bytes())
    refire["id"] = "refire-1"
    _ingest_docs(
        db, [(SAMPLES / "alert-resolved.json").read_bytes(), orjson.dumps(refire)], start=1
    )
    with db.engine.connect() as conn:
        row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).mappings().one()
    assert (row["status"], row["occurrence"], row["acknowledged_by"]) == ("firing", 2, None)


def test_unknown_and_ambiguous_ids_are_refused(db: Database) -> None:
    """A short, unknown or ambiguous id gets a message that says what to do."""
    _ingest(db, "alert-firing.json")
    with db.engine.connect() as conn:
        with pytest.raises(AlertNotFound, match="at least 6"):
            find_alert_id(conn, "abc")
        with pytest.raises(AlertNotFound, match="notifier alerts"):
            find_alert_id(conn, "ffffffffffff")


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "NOTIFIER_STORE__URL": f"sqlite:///{tmp_path / 'n.db'}",
        "NOTIFIER_LOG__LEVEL": "WARNING",
    }
    return subprocess.run(
        [sys.executable, "-m", "notifier", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_ack_checks_roles_and_reports_twice(tmp_path: Path) -> None:
    """`notifier ack`: a partner may not, a commander may, twice is harmless, timeline shows it."""
    db = Database(f"sqlite:///{tmp_path / 'n.db'}")
    db.migrate()
    _ingest(db, "alert-firing.json")
    alert_id = _only_alert(db)
    db.dispose()
    refused = _cli(tmp_path, "ack", alert_id[:10], "--by", "carlos.ruiz")
    assert refused.returncode == 1
    assert "may not acknowledge" in refused.stderr
    ok = _cli(tmp_path, "ack", alert_id[:10], "--by", "mei.lin", "--note", "taking it")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("acknowledged by mei.lin: ConsensusFinalityLag")
    twice = _cli(tmp_path, "ack", alert_id[:10], "--by", "lukas.meier")
    assert twice.stdout.startswith("already acknowledged by mei.lin")
    shown = _cli(tmp_path, "alerts", alert_id[:10])
    assert "acknowledged by mei.lin via cli  “taking it”" in shown.stdout


def test_cli_update_posts_status_updates_on_open_alerts(tmp_path: Path) -> None:
    """`notifier update`: a partner may not; a commander's update is in the timeline; a
    resolved alert takes none, and the error says why."""
    db = Database(f"sqlite:///{tmp_path / 'n.db'}")
    db.migrate()
    _ingest(db, "alert-firing.json")
    alert_id = _only_alert(db)
    db.dispose()
    refused = _cli(tmp_path, "update", alert_id[:10], "--by", "carlos.ruiz", "--note", "x")
    assert refused.returncode == 1
    assert "may not post status updates" in refused.stderr
    note = "Half of the validators run 5.3.1"
    ok = _cli(tmp_path, "update", alert_id[:10], "--by", "mei.lin", "--note", note)
    assert ok.returncode == 0, ok.stderr
    assert "goes out with the next scheduled update" in ok.stdout
    shown = _cli(tmp_path, "alerts", alert_id[:10])
    assert f"update       by mei.lin via update  “{note}”" in shown.stdout
    _cli(tmp_path, "ack", alert_id[:10], "--by", "mei.lin", "--resolve")
    late = _cli(tmp_path, "update", alert_id[:10], "--by", "mei.lin", "--note", "late")
    assert late.returncode == 1
    assert "status updates are for open alerts" in late.stderr
