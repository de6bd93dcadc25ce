"""Silences through the HTTP API and the command line.

The API runs on a real uvicorn server over the ``db`` fixture's store (SQLite and
PostgreSQL) with a fake clock; the firing sample alert is ingested by a ``BatchProcessor``
with the shipped routing and directory, as the engine would. The command line runs in
process (click's ``CliRunner``) against a SQLite store named by a temporary settings file
that points at the shipped routing, directory and templates.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner, Result
from sqlalchemy import select, update
from stories import directory_with_tokens

import notifier.cli
import notifier.cli_state
from notifier.api.app import create_app
from notifier.api.server import HttpServer
from notifier.cli import cli
from notifier.directory import Directory
from notifier.pipeline import BatchProcessor, RawRecord
from notifier.routing import Router, RoutingConfig
from notifier.settings import Settings
from notifier.store import Database
from notifier.store.audit import entries
from notifier.store.schema import alerts, notifications
from notifier.testing import FakeClock, offline_api_context

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "config" / "samples"
FIRING = SAMPLES / "alert-firing.json"
T0 = datetime(2026, 11, 20, 8, 20, tzinfo=UTC)

COMMANDER = "mei.lin"  # incident-commander: may silence
OTHER_COMMANDER = "lukas.meier"  # incident-commander and oncall-operator: may silence
PARTNER = "carlos.ruiz"  # partner-operator: may not silence
TOKENS = {
    COMMANDER: "mei-silence-token",
    OTHER_COMMANDER: "lukas-silence-token",
    PARTNER: "carlos-silence-token",
}
MAINNET = 'network="mainnet"'  # the firing sample alert carries network=mainnet
SILENCES = "/api/v1/silences"


# --- the API harness ---------------------------------------------------------------------------


def _directory(tmp_path: Path) -> Directory:
    """The shipped directory, with personal API tokens for the people in TOKENS."""
    return directory_with_tokens(tmp_path, TOKENS)


def _auth(person: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[person]}"}


def _window(minutes: float = 60, comment: str = "mainnet upgrade, CHG-1234") -> dict[str, Any]:
    return {"matchers": [MAINNET], "duration_minutes": minutes, "comment": comment}


def _at(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@dataclass
class Api:
    """A running API, its store and clock, and the router its ingest uses."""

    client: httpx.AsyncClient
    db: Database
    clock: FakeClock
    router: Router
    changes: list[None] = field(default_factory=list)
    offset: int = 0

    def ingest(self, path: Path) -> None:
        """Apply one sample event as the engine's consumer would, at the clock's time."""
        proc = BatchProcessor(
            self.db, self.router, self.clock, group="g", topic="t", max_event_bytes=1 << 20
        )
        records = [RawRecord("t", 0, self.offset, None, path.read_bytes(), ())]
        self.offset += 1
        proc.apply(records, proc.decode(records))

    def alert_id(self) -> str:
        with self.db.engine.connect() as conn:
            found = conn.scalar(select(alerts.c.id).where(alerts.c.kind == "alert"))
        assert found is not None, "no alert ingested"
        return str(found)

    async def create(self, person: str, body: dict[str, Any]) -> httpx.Response:
        return await self.client.post(SILENCES, headers=_auth(person), json=body)

    async def created(self, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Create a silence as the commander; return the reply (asserting 201)."""
        reply = await self.create(COMMANDER, body or _window())
        assert reply.status_code == 201, reply.text
        made: dict[str, Any] = reply.json()
        return made

    async def alert(self) -> dict[str, Any]:
        reply = await self.client.get(f"/api/v1/alerts/{self.alert_id()}")
        assert reply.status_code == 200, reply.text
        shown: dict[str, Any] = reply.json()
        return shown

    async def listed(self, person: str = COMMANDER, state: str | None = None) -> list[str]:
        params = {"state": state} if state else {}
        reply = await self.client.get(SILENCES, headers=_auth(person), params=params)
        assert reply.status_code == 200, reply.text
        return [s["id"] for s in reply.json()]

    async def metrics(self) -> str:
        reply = await self.client.get("/metrics")
        assert reply.status_code == 200
        return reply.text


@pytest.fixture
async def api(db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    """The app on a free port over the ``db`` store (empty), with the shipped routing (and its
    inhibit rules) and a directory in which the commanders and a partner have API tokens."""
    directory = _directory(tmp_path)
    clock = FakeClock(T0)
    router = Router(RoutingConfig.load(ROOT / "config" / "routing.yaml"), directory)
    settings = Settings(config_dir=ROOT / "config")
    changes: list[None] = []
    ctx = offline_api_context(
        settings,
        db,
        directory,
        clock,
        on_change=lambda: changes.append(None),
        inhibit_rules=router.config.inhibit_rules,
    )
    server = HttpServer(create_app(ctx), "127.0.0.1", 0)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            yield Api(client, db, clock, router, changes)
    finally:
        await server.stop()


# --- API: create, list, show ---------------------------------------------------------------------


async def test_a_commander_creates_a_silence_and_reads_it_back(api: Api) -> None:
    """201 with the window, state active and the caller as creator; listed (also as active,
    not as expired or pending); shown by id; over once its hour has passed."""
    reply = await api.create(COMMANDER, _window(60, "  mainnet upgrade, CHG-1234 "))
    assert reply.status_code == 201, reply.text
    made = reply.json()
    assert re.fullmatch(r"sil-[0-9a-f]{16}", made["id"])
    assert made["matchers"] == [MAINNET]
    assert made["state"] == "active"
    assert made["created_by"] == COMMANDER
    assert made["comment"] == "mainnet upgrade, CHG-1234"  # trimmed
    assert (_at(made["starts_at"]), _at(made["ends_at"])) == (T0, T0 + timedelta(minutes=60))
    assert _at(made["created_at"]) == T0
    assert (made["expired_at"], made["expired_by"], made["held_now"]) == (None, None, 0)
    assert len(api.changes) == 1  # the hold keeper was woken

    assert await api.listed() == [made["id"]]
    assert await api.listed(state="active") == [made["id"]]
    assert await api.listed(state="expired") == []
    assert await api.listed(state="pending") == []
    bogus = await api.client.get(SILENCES, headers=_auth(COMMANDER), params={"state": "gone"})
    assert bogus.status_code == 422

    shown = await api.client.get(f"{SILENCES}/{made['id']}", headers=_auth(COMMANDER))
    assert shown.status_code == 200
    assert shown.json() == {**made, "held_now": None}
    missing = await api.client.get(f"{SILENCES}/sil-0000000000000000", headers=_auth(COMMANDER))
    assert missing.status_code == 404
    assert "sil-0000000000000000" in missing.json()["detail"]

    api.clock.advance(timedelta(minutes=60).total_seconds())
    assert await api.listed(state="active") == []
    assert await api.listed(state="expired") == [made["id"]]
    later = await api.client.get(f"{SILENCES}/{made['id']}", headers=_auth(COMMANDER))
    assert (later.json()["state"], later.json()["expired_by"]) == ("expired", None)


async def test_a_silence_starting_later_is_pending_and_holds_nothing_yet(api: Api) -> None:
    """A window starting in an hour: pending, listed as such, nothing held at creation."""
    api.ingest(FIRING)
    body = {
        "matchers": [MAINNET],
        "starts_at": (T0 + timedelta(hours=1)).isoformat(),
        "ends_at": (T0 + timedelta(hours=3)).isoformat(),
        "comment": "planned upgrade",
    }
    made = await api.created(body)
    assert (made["state"], made["held_now"]) == ("pending", 0)
    assert await api.listed(state="pending") == [made["id"]]
    assert await api.listed(state="active") == []
    assert (await api.alert())["holds"] == []


async def test_the_limit_counts_only_silences_in_the_state_asked_for(api: Api) -> None:
    """``?state=active&limit=1`` returns the one active silence even when newer pending
    ones exist."""
    active = await api.created()
    api.clock.advance(60)
    for _ in range(2):
        later = {**_window(), "starts_at": (api.clock.now() + timedelta(hours=1)).isoformat()}
        assert (await api.created(later))["state"] == "pending"
    reply = await api.client.get(
        SILENCES, headers=_auth(COMMANDER), params={"state": "active", "limit": 1}
    )
    assert [s["id"] for s in reply.json()] == [active["id"]]


# --- API: holding and releasing -------------------------------------------------------------------


async def test_a_silence_holds_the_matching_alert_that_fires_already(api: Api) -> None:
    """An alert firing before the silence is held at once: a hold naming the silence, its
    unsent notifications held as ``silenced``; one already sent stays sent. A silence that
    matches nothing firing holds nothing."""
    api.ingest(FIRING)
    before = await api.alert()
    assert before["holds"] == []
    assert {n["status"] for n in before["notifications"]} == {"pending"}
    sent_id = before["notifications"][0]["id"]
    with api.db.transaction() as conn:  # as if the outbox had delivered this one already
        conn.execute(
            update(notifications).where(notifications.c.id == sent_id).values(status="sent")
        )

    other = await api.created({**_window(), "matchers": ['network="testnet"']})
    assert other["held_now"] == 0
    assert (await api.alert())["holds"] == []

    made = await api.created()
    assert made["held_now"] == 1

    shown = await api.alert()
    assert len(shown["holds"]) == 1
    hold = shown["holds"][0]
    assert (hold["cause"], hold["cause_id"]) == ("silence", made["id"])
    assert (hold["ended_at"], hold["outcome"]) == (None, None)
    assert _at(hold["held_at"]) == T0
    assert made["id"] in hold["detail"] and COMMANDER in hold["detail"]
    assert hold["occurrence"] == shown["occurrence"]
    by_id = {n["id"]: n for n in shown["notifications"]}
    assert by_id.pop(sent_id)["status"] == "sent"
    assert by_id, "the sample alert pages more than one person"
    for n in by_id.values():
        assert (n["status"], n["error_reason"]) == ("held", "silenced"), n
        assert made["id"] in n["last_error"]
    assert "silenced" in [step["kind"] for step in shown["timeline"]]

    # Creating another covering silence does not hold the alert twice.
    again = await api.created(_window(120, "second window"))
    assert again["held_now"] == 0
    assert len((await api.alert())["holds"]) == 1


async def test_an_alert_firing_during_a_silence_is_held_on_arrival(api: Api) -> None:
    """The silence first, then the alert: the ingest holds it under that silence."""
    made = await api.created()
    api.ingest(FIRING)
    shown = await api.alert()
    assert [(h["cause"], h["cause_id"]) for h in shown["holds"]] == [("silence", made["id"])]
    assert shown["notifications"]
    assert {(n["status"], n["error_reason"]) for n in shown["notifications"]} == {
        ("held", "silenced")
    }


async def test_expiring_a_silence_releases_the_alert_it_held(api: Api) -> None:
    """DELETE by another commander: the notifications are pending again (released 1), the
    hold ends as released, the silence is expired by that caller; twice 409; unknown 404."""
    api.ingest(FIRING)
    made = await api.created()
    held = await api.alert()
    assert {n["status"] for n in held["notifications"]} == {"held"}

    api.clock.advance(timedelta(minutes=10).total_seconds())
    url = f"{SILENCES}/{made['id']}"
    reply = await api.client.delete(url, headers=_auth(OTHER_COMMANDER))
    assert reply.status_code == 200, reply.text
    done = reply.json()
    assert (done["released"], done["still_held"], done["lapsed"]) == (1, 0, 0)
    assert done["silence"]["id"] == made["id"]
    assert done["silence"]["state"] == "expired"
    assert done["silence"]["expired_by"] == OTHER_COMMANDER
    assert done["silence"]["created_by"] == COMMANDER
    assert _at(done["silence"]["expired_at"]) == T0 + timedelta(minutes=10)
    assert len(api.changes) == 2  # woken on create and on expire (the outbox sends now)

    released = await api.alert()
    assert released["notifications"]
    for n in released["notifications"]:
        assert (n["status"], n["error_reason"], n["last_error"]) == ("pending", None, None), n
    [hold] = released["holds"]
    assert (hold["outcome"], _at(hold["ended_at"])) == ("released", T0 + timedelta(minutes=10))
    assert "released" in [step["kind"] for step in released["timeline"]]

    shown = (await api.client.get(url, headers=_auth(COMMANDER))).json()
    assert (shown["state"], shown["expired_by"]) == ("expired", OTHER_COMMANDER)
    assert await api.listed(state="expired") == [made["id"]]
    assert await api.listed(state="active") == []

    twice = await api.client.delete(url, headers=_auth(COMMANDER))
    assert twice.status_code == 409
    assert "already over" in twice.json()["detail"]
    unknown = await api.client.delete(f"{SILENCES}/sil-nope", headers=_auth(COMMANDER))
    assert unknown.status_code == 404
    assert "no silence 'sil-nope'" in unknown.json()["detail"]


async def test_expiring_one_of_two_covering_silences_keeps_the_alert_held(api: Api) -> None:
    """Two silences cover the alert; expiring the one holding it moves the hold to the
    other (still_held 1), and nothing is released until that one ends too."""
    api.ingest(FIRING)
    first = await api.created(_window(120, "long window"))
    second = await api.created(_window(60, "short window"))
    assert (first["held_now"], second["held_now"]) == (1, 0)
    reply = await api.client.delete(f"{SILENCES}/{first['id']}", headers=_auth(COMMANDER))
    assert reply.status_code == 200, reply.text
    assert (reply.json()["released"], reply.json()["still_held"]) == (0, 1)
    shown = await api.alert()
    open_holds = [h for h in shown["holds"] if h["ended_at"] is None]
    assert [h["cause_id"] for h in open_holds] == [second["id"]]
    assert {n["status"] for n in shown["notifications"]} == {"held"}
    assert {n["error_reason"] for n in shown["notifications"]} == {"silenced"}


# --- API: who may ---------------------------------------------------------------------------------


async def test_silences_need_a_token_and_changing_them_the_silence_permission(api: Api) -> None:
    """No or a bad token: 401 everywhere. A partner (no ``silence`` permission): 403 on POST
    and DELETE, but may read. Nothing the partner tried changed anything."""
    made = await api.created()
    one = f"{SILENCES}/{made['id']}"
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        assert (await api.client.post(SILENCES, json=_window(), headers=headers)).status_code == 401
        assert (await api.client.get(SILENCES, headers=headers)).status_code == 401
        assert (await api.client.get(one, headers=headers)).status_code == 401
        refused = await api.client.delete(one, headers=headers)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"

    denied = await api.create(PARTNER, _window())
    assert denied.status_code == 403
    assert denied.json()["detail"] == f"{PARTNER} may not manage silences"
    not_expired = await api.client.delete(one, headers=_auth(PARTNER))
    assert not_expired.status_code == 403
    assert await api.listed(PARTNER) == [made["id"]]
    read = await api.client.get(one, headers=_auth(PARTNER))
    assert (read.status_code, read.json()["state"]) == (200, "active")
    with api.db.engine.connect() as conn:
        assert [e["action"] for e in entries(conn, action="silence.")] == ["silence.create"]


# --- API: validation ------------------------------------------------------------------------------


def _detail(reply: httpx.Response) -> str:
    """The error detail as one string (ours is a string; pydantic's a list of problems)."""
    detail = reply.json()["detail"]
    return detail if isinstance(detail, str) else json.dumps(detail)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"matchers": ['team=~".*"']}, "these matchers match every alert"),
        ({"matchers": ['team!="nobody"']}, "these matchers match every alert"),
        ({"matchers": ["network"]}, "expected an operator after 'network'"),
        ({"matchers": ['network="mainnet']}, "no closing double quote"),
        ({"matchers": ['network=~"(unclosed"']}, "invalid regex"),
        ({"matchers": []}, "matchers"),
        (
            {
                "duration_minutes": None,
                "starts_at": (T0 + timedelta(hours=2)).isoformat(),
                "ends_at": (T0 + timedelta(hours=1)).isoformat(),
            },
            "the silence must end after it starts",
        ),
        (
            {
                "duration_minutes": None,
                "starts_at": (T0 - timedelta(hours=2)).isoformat(),
                "ends_at": (T0 - timedelta(hours=1)).isoformat(),
            },
            "the silence would already be over",
        ),
        ({"duration_minutes": None}, "give an end time or a duration"),
        ({"duration_minutes": 0}, "duration_minutes"),
        ({"duration_minutes": 91 * 24 * 60}, "at most 90 days"),
        ({"duration_minutes": None, "ends_at": "2026-11-20T10:00:00"}, "timezone"),
        ({"comment": None}, "comment"),
        ({"comment": "   "}, "say why: a silence needs a comment"),
    ],
    ids=[
        "matches-everything",
        "negative-only",
        "no-operator",
        "unclosed-quote",
        "bad-regex",
        "no-matchers",
        "end-before-start",
        "already-over",
        "no-end-no-duration",
        "zero-duration",
        "too-long",
        "naive-end",
        "comment-missing",
        "comment-blank",
    ],
)
async def test_invalid_silences_are_refused_with_a_reason(
    api: Api, change: dict[str, Any], problem: str
) -> None:
    """422 naming what to fix; nothing stored, nothing audited."""
    body = {**_window(), **change}
    body = {key: value for key, value in body.items() if value is not None}
    reply = await api.create(COMMANDER, body)
    assert reply.status_code == 422, reply.text
    assert problem in _detail(reply)
    assert await api.listed() == []
    with api.db.engine.connect() as conn:
        assert entries(conn, action="silence.") == []
    assert api.changes == []


# --- API: audit and metrics -----------------------------------------------------------------------


async def test_creating_and_expiring_are_audited_with_actor_and_subject(api: Api) -> None:
    """Both changes are in the audit log, newest first, with who, what and which silence."""
    made = await api.created()
    api.clock.advance(300)
    reply = await api.client.delete(f"{SILENCES}/{made['id']}", headers=_auth(OTHER_COMMANDER))
    assert reply.status_code == 200
    with api.db.engine.connect() as conn:
        found = entries(conn, action="silence.")
        assert entries(conn, subject=made["id"]) == found
        assert entries(conn, action="silence.create") == found[1:]
    assert [(e["action"], e["actor"], e["subject"]) for e in found] == [
        ("silence.expire", OTHER_COMMANDER, made["id"]),
        ("silence.create", COMMANDER, made["id"]),
    ]
    assert [e["at"] for e in found] == [T0 + timedelta(seconds=300), T0]
    created = found[1]["details"]
    assert created["matchers"] == [MAINNET]
    assert created["comment"] == "mainnet upgrade, CHG-1234"
    assert _at(created["ends_at"]) == T0 + timedelta(minutes=60)
    assert found[0]["details"] == {"comment": "mainnet upgrade, CHG-1234"}


async def test_metrics_count_the_notifications_held_by_silences(api: Api) -> None:
    """``notifier_suppressed_notifications{reason="silenced",state="held"}`` counts the held
    notifications while the silence holds them, and is gone once it is expired."""
    api.ingest(FIRING)
    paged = len((await api.alert())["notifications"])
    assert paged > 0
    held_line = 'notifier_suppressed_notifications{reason="silenced",state="held"}'
    before = await api.metrics()
    assert "# TYPE notifier_suppressed_notifications gauge" in before
    assert held_line not in before

    made = await api.created()
    assert f"{held_line} {float(paged)}" in await api.metrics()

    await api.client.delete(f"{SILENCES}/{made['id']}", headers=_auth(COMMANDER))
    after = await api.metrics()
    assert held_line not in after
    assert 'notifier_notifications_total{channel="email",outcome="pending"}' in after


# --- the command line -----------------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A settings file using the shipped routing, directory and templates and a SQLite store
    in tmp_path; run from the repository root without the caller's NOTIFIER_* variables or
    logging setup (see tests/test_cli.py)."""
    monkeypatch.chdir(ROOT)
    for name in list(os.environ):
        if name.startswith("NOTIFIER_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(notifier.cli, "configure", lambda settings: None)
    monkeypatch.setattr(notifier.cli_state, "configure", lambda settings: None)
    settings = {
        "store": {"url": f"sqlite:///{tmp_path / 'cli.db'}"},
        "routing_file": str(ROOT / "config" / "routing.yaml"),
        "directory_file": str(ROOT / "config" / "directory.yaml"),
        "templates": {
            "directory": str(ROOT / "templates"),
            "locales_directory": str(ROOT / "locales"),
        },
    }
    path = tmp_path / "notifier.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def _run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args], prog_name="notifier")


def _add(config: Path, *args: str) -> Result:
    return _run(config, "silence", "add", *args)


def _created_id(result: Result) -> str:
    assert result.exit_code == 0, result.output
    found = re.match(r"created (sil-[0-9a-f]{16}): ", result.output)
    assert found is not None, result.output
    return found[1]


def _json_lines(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def test_cli_adds_lists_and_expires_a_silence(cli_env: Path) -> None:
    """add prints the id and the window; list shows it active (and not as expired); expire
    reports it and list then shows who expired it; expiring again or an unknown id fails."""
    added = _add(cli_env, "-m", MAINNET, "-d", "2h", "-c", "upgrade", "--by", COMMANDER)
    silence_id = _created_id(added)
    assert f"active   {{{MAINNET}}}" in added.output
    assert f"by {COMMANDER}: upgrade" in added.output
    assert "holding" not in added.output  # nothing fires in this store

    listed = _run(cli_env, "silence", "list")
    assert listed.exit_code == 0, listed.output
    [line] = listed.output.splitlines()
    assert line.startswith(f"{silence_id}  active ")
    assert _run(cli_env, "silence", "list", "--state", "expired").output == "no silences\n"
    [row] = _json_lines(_run(cli_env, "silence", "list", "--json"))
    assert (row["id"], row["state"], row["created_by"]) == (silence_id, "active", COMMANDER)
    assert (row["matchers"], row["comment"]) == ([MAINNET], "upgrade")
    window = datetime.fromisoformat(row["ends_at"]) - datetime.fromisoformat(row["starts_at"])
    assert window == timedelta(hours=2)

    expired = _run(cli_env, "silence", "expire", silence_id, "--by", OTHER_COMMANDER)
    assert expired.exit_code == 0, expired.output
    assert expired.output.startswith(f"expired {silence_id}: 0 alert(s) released")
    [row] = _json_lines(_run(cli_env, "silence", "list", "--json", "--state", "expired"))
    assert (row["id"], row["state"], row["expired_by"]) == (silence_id, "expired", OTHER_COMMANDER)
    assert _run(cli_env, "silence", "list", "--state", "active").output == "no silences\n"

    again = _run(cli_env, "silence", "expire", silence_id, "--by", COMMANDER)
    assert again.exit_code == 1
    assert f"silence {silence_id} is already over" in again.output
    unknown = _run(cli_env, "silence", "expire", "sil-nope", "--by", COMMANDER)
    assert unknown.exit_code == 1
    assert "no silence 'sil-nope'" in unknown.output


def test_cli_silence_holds_and_releases_a_firing_alert(cli_env: Path, tmp_path: Path) -> None:
    """With the sample alert firing in the store, add says it holds one alert and expire
    says it released it with all its notifications."""
    db = Database(f"sqlite:///{tmp_path / 'cli.db'}")
    try:
        db.migrate()
        directory = Directory.load(ROOT / "config" / "directory.yaml")
        router = Router(RoutingConfig.load(ROOT / "config" / "routing.yaml"), directory)
        proc = BatchProcessor(
            db, router, FakeClock(datetime.now(UTC)), group="g", topic="t", max_event_bytes=1 << 20
        )
        records = [RawRecord("t", 0, 0, None, FIRING.read_bytes(), ())]
        proc.apply(records, proc.decode(records))
        with db.engine.connect() as conn:
            paged = len(conn.execute(select(notifications.c.id)).all())
    finally:
        db.dispose()
    assert paged > 0

    added = _add(cli_env, "-m", MAINNET, "-d", "90m", "-c", "upgrade", "--by", COMMANDER)
    silence_id = _created_id(added)
    assert "holding 1 firing alert(s) now" in added.output
    expired = _run(cli_env, "silence", "expire", silence_id, "--by", COMMANDER)
    assert expired.exit_code == 0, expired.output
    assert f"1 alert(s) released ({paged} notifications sent now)" in expired.output


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["-d", "2h", "--by", "nobody"], "'nobody' is not in the directory"),
        (["-d", "2h", "--by", PARTNER], f"{PARTNER} may not manage silences"),
        (["-d", "soon", "--by", COMMANDER], "duration 'soon': write a number and a unit"),
        (["--by", COMMANDER], "give an end time or a duration"),
        (["-d", "2h", "-m", 'team=~".*"', "--by", COMMANDER], "these matchers match every alert"),
        (["-d", "2h", "-m", "network", "--by", COMMANDER], "expected an operator"),
        (["-d", "100d", "--by", COMMANDER], "at most 90 days"),
    ],
    ids=[
        "unknown-person",
        "no-permission",
        "bad-duration",
        "no-duration",
        "matches-everything",
        "bad-matcher",
        "too-long",
    ],
)
def test_cli_add_refuses_with_a_clear_message(cli_env: Path, args: list[str], problem: str) -> None:
    """A non-zero exit, one ``Error:`` line saying what is wrong, and no silence stored."""
    matchers = [] if "-m" in args else ["-m", MAINNET]
    result = _add(cli_env, *matchers, "-c", "upgrade", *args)
    assert result.exit_code == 1, result.output
    [line] = result.output.splitlines()
    assert line.startswith("Error: ") and problem in line, line
    assert "no silences" in _run(cli_env, "silence", "list").output


def test_cli_expire_refuses_people_without_the_permission(cli_env: Path) -> None:
    """Expiring needs a known person with the ``silence`` permission; the silence stays."""
    silence_id = _created_id(
        _add(cli_env, "-m", MAINNET, "-d", "1h", "-c", "upgrade", "--by", COMMANDER)
    )
    for person, problem in (
        ("nobody", "'nobody' is not in the directory"),
        (PARTNER, f"{PARTNER} may not manage silences"),
    ):
        result = _run(cli_env, "silence", "expire", silence_id, "--by", person)
        assert result.exit_code == 1, result.output
        assert f"Error: {problem}" in result.output
    [row] = _json_lines(_run(cli_env, "silence", "list", "--json"))
    assert (row["state"], row["expired_by"]) == ("active", None)


def test_cli_expire_on_a_store_without_silences_says_so(cli_env: Path) -> None:
    """Nothing was ever silenced here: a clear error naming the id, no traceback."""
    result = _run(cli_env, "silence", "expire", "sil-nope", "--by", COMMANDER)
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    [line] = result.output.splitlines()
    assert line.startswith("Error: ") and "sil-nope" in line, line


def _verdicts(output: str) -> list[str]:
    """The line under each recipient of ``routes test``: what would happen to it now."""
    lines = output.splitlines()
    found = [lines[i + 1].strip() for i, line in enumerate(lines) if line.strip().startswith("→")]
    assert found, output
    return found


def test_routes_test_says_which_silence_would_hold_the_alert(cli_env: Path) -> None:
    """Without a (matching) silence every recipient would be notified now; with one, each is
    held, naming the silence; once it is expired, they would be notified again."""
    event = ["routes", "test", "--event", str(FIRING)]
    fresh = _run(cli_env, *event)  # the store does not even exist yet
    assert fresh.exit_code == 0, fresh.output
    assert set(_verdicts(fresh.output)) == {"would be sent now"}

    _created_id(_add(cli_env, "-m", 'network="testnet"', "-d", "2h", "-c", "x", "--by", COMMANDER))
    unrelated = _run(cli_env, *event)
    assert set(_verdicts(unrelated.output)) == {"would be sent now"}

    silence_id = _created_id(
        _add(cli_env, "-m", MAINNET, "-d", "2h", "-c", "upgrade", "--by", COMMANDER)
    )
    held = _run(cli_env, *event)
    assert held.exit_code == 0, held.output
    verdicts = _verdicts(held.output)
    assert len(verdicts) == len(_verdicts(fresh.output))
    for verdict in verdicts:
        assert verdict.startswith(f"held now (silenced): silence {silence_id} by {COMMANDER}")
        assert verdict.endswith(": upgrade")

    _run(cli_env, "silence", "expire", silence_id, "--by", COMMANDER)
    assert set(_verdicts(_run(cli_env, *event).output)) == {"would be sent now"}
